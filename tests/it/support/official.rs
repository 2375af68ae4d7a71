//! The official `@actions/cache@6.3.0`, provisioned from npm and driven by
//! `tests/interop/actions-cache.js`; the protocol and interop tests run it as a runner would.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::action::Protocol;
use super::cache_server::CacheServer;
use super::tools;

/// Where the official client and its driver script are.
pub struct Official {
    /// The toolkit's `lib/cache.js`.
    pub module: PathBuf,
    /// The Node driver: `save <path> <key>` / `restore <path> <key> [restore keys...]`.
    pub driver: PathBuf,
}

/// The cache service a run of the driver talks to: the test server, or a runner's own.
pub struct Endpoint {
    /// `ACTIONS_CACHE_URL` (v1).
    pub cache_url: String,
    /// `ACTIONS_RESULTS_URL` (v2); empty where the service has no v2.
    pub results_url: String,
    /// `ACTIONS_RUNTIME_TOKEN`.
    pub token: String,
}

impl Endpoint {
    pub fn of(server: &CacheServer) -> Endpoint {
        Endpoint {
            cache_url: server.base_url_v1(),
            results_url: server.results_url(),
            token: server.token().to_string(),
        }
    }
}

/// Where one run of the driver happens, as the runner would set it up for a node action.
pub struct Site<'a> {
    pub endpoint: Endpoint,
    pub protocol: Protocol,
    /// `GITHUB_SERVER_URL`: github.com, or a GHES-style host.
    pub server_url: &'a str,
    pub workspace: &'a Path,
    pub home: &'a Path,
}

impl Official {
    pub fn provision() -> Official {
        let project = tools::npm_project("actions-cache", tools::ACTIONS_CACHE_PACKAGES);
        let module = project.join("node_modules/@actions/cache/lib/cache.js");
        assert!(module.exists(), "{} is missing", module.display());
        let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/actions-cache.js");
        Official { module, driver }
    }

    /// Runs the driver with `args` at `site` in a cleared environment; returns its `RESULT …`
    /// line, and panics with its output when it fails or prints none.
    pub fn run(&self, site: &Site, args: &[&str]) -> String {
        let temp = tempfile::tempdir().unwrap();
        let output = self.command(site, args, temp.path()).stdin(Stdio::null()).output().expect("run node");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "driver {args:?} failed:\n{stdout}\n{stderr}");
        let result = stdout.lines().rfind(|l| l.starts_with("RESULT "));
        result.unwrap_or_else(|| panic!("no RESULT line:\n{stdout}\n{stderr}")).to_string()
    }

    /// Runs the driver with `args` at `site`, killing it (and the tar it runs) after `limit`:
    /// for measuring what the official client does when the service misbehaves.
    pub fn run_bounded(&self, site: &Site, args: &[&str], limit: Duration) -> Bounded {
        let temp = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let mut child = self
            .command(site, args, temp.path())
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run node");
        let group = libc::pid_t::try_from(child.id()).unwrap();
        // The limit is a wall-clock cap on a measurement, not an event to wait for.
        let killed = loop {
            if child.try_wait().expect("wait for node").is_some() {
                break false;
            }
            if started.elapsed() >= limit {
                // SAFETY: a plain killpg(2) of the group our own child leads.
                unsafe { libc::killpg(group, libc::SIGKILL) };
                break true;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let output = child.wait_with_output().expect("collect node's output");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        Bounded {
            result: stdout.lines().rfind(|l| l.starts_with("RESULT ")).map(str::to_string),
            warnings: stdout.lines().filter(|l| l.starts_with("::warning::")).count(),
            code: output.status.code(),
            killed,
            elapsed: started.elapsed(),
        }
    }

    fn command(&self, site: &Site, args: &[&str], temp: &Path) -> Command {
        let mut command = Command::new("/usr/bin/node");
        command
            .arg(&self.driver)
            .args(args)
            .current_dir(site.workspace)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", site.home)
            .env("ACTIONS_CACHE_MODULE", &self.module)
            .env("ACTIONS_CACHE_URL", &site.endpoint.cache_url)
            .env("ACTIONS_RESULTS_URL", &site.endpoint.results_url)
            .env("ACTIONS_RUNTIME_TOKEN", &site.endpoint.token)
            .env("GITHUB_SERVER_URL", site.server_url)
            .env("GITHUB_WORKSPACE", site.workspace)
            .env("GITHUB_REF", "refs/heads/main")
            .env("RUNNER_TEMP", temp);
        if site.protocol == Protocol::V2 {
            command.env("ACTIONS_CACHE_SERVICE_V2", "True");
        }
        command
    }
}

/// What a run of [`Official::run_bounded`] did.
#[derive(Debug)]
pub struct Bounded {
    /// The `RESULT …` line, when the driver got that far.
    pub result: Option<String>,
    /// `::warning::` lines the toolkit printed.
    pub warnings: usize,
    pub code: Option<i32>,
    /// Killed at the limit.
    pub killed: bool,
    pub elapsed: Duration,
}
