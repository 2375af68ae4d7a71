//! The action run by real workflow runners, built by `scripts/runners`: nektos/act and Gitea's
//! fork of act from the Go module proxy, the Forgejo runner and Gitea's act_runner from the
//! source snapshots in `../shared/runners-src/`. Each runs the workflows of `tests/workflows/`
//! in its local mode with the job on this host: the runner reads action.yml, fills `INPUT_*`,
//! runs `main` then `post`, evaluates `post-if`, and gates later steps on the `cache-hit`
//! output.
//!
//! The cache each job talks to is the runner's own: act's, Gitea's act's and act_runner's
//! servers as their local modes start them; for the Forgejo runner, whose `exec` starts a server
//! with no proxy in front (it refuses every call), its server behind its cache proxy with a
//! secret and a run registered, as its daemon wires them (tests/forgejo-cache-proxy), or its
//! `cache-server` shared by two runner homes. `exec` always sets `ACTIONS_CACHE_URL` to its own
//! server, after `--env` and over the workflow's `env:` (exec.go `LoadEnvs`, run_context.go
//! `GetEnv`), so the job gets the wired URL from `$GITHUB_ENV`, set by the workflows' first step.
//!
//! Every workflow runs twice with a fresh workspace and home, and the runner's cache kept: first
//! a miss that saves in the post step, then an exact hit that runs the gated step and saves
//! nothing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::action::{binary, network_env, repo_root};
use crate::support::tools;

/// One runner as `scripts/runners` lists it.
#[derive(Debug, Clone)]
pub(crate) struct Runner {
    name: String,
    version: String,
    pub(crate) bin: PathBuf,
}

/// What `scripts/runners` printed: `<name> <version> <path>` per binary, or `(not built: …)`.
struct Listing {
    lines: Vec<String>,
    stderr: String,
}

/// Builds (once) and lists the runners.
fn listing() -> &'static Listing {
    static BUILT: std::sync::OnceLock<Listing> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let out = Command::new(repo_root().join("scripts/runners"))
            .output()
            .expect("start scripts/runners (it needs bash and go)");
        let lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
        for line in &lines {
            println!("runner: {line}");
        }
        Listing { lines, stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
    })
}

/// One built runner; one that could not be built fails the test with what the script said
/// (for the Forgejo runner and act_runner without `../shared/runners-src`: where to get them).
pub(crate) fn runner(name: &str) -> Runner {
    let listing = listing();
    let line = listing.lines.iter().find(|l| l.split(' ').next() == Some(name)).unwrap_or_else(|| {
        panic!("scripts/runners lists no {name}:\n{}\n{}", listing.lines.join("\n"), listing.stderr)
    });
    let mut parts = line.splitn(3, ' ');
    let (name, version, bin) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap_or(""));
    assert!(
        !bin.starts_with('(') && Path::new(bin).is_file(),
        "the runner {name} {version} is not built: {bin}; build it with scripts/runners (it needs Go)\n{}",
        listing.stderr
    );
    Runner { name: name.into(), version: version.into(), bin: bin.into() }
}

/// The event a job runs for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Push,
    /// A pull request from a fork: on the Forgejo runner, its saves are kept apart under a
    /// write-isolation key (`refs/pull/1/head`).
    PullRequest,
}

/// What one runner machine keeps between jobs: the runner's cache storage, and a fixed place
/// for the nox envs.
struct Host {
    root: tempfile::TempDir,
    runner: Runner,
    /// The envs' fixed place outside the runners' per-job workspace (see tests/workflows/node.yml).
    envs: PathBuf,
    /// The Forgejo runner: an external `forgejo-runner cache-server` (`cache.external_server`)
    /// instead of a cache server of this host's own.
    external_cache: Option<String>,
    /// The Forgejo runner's `cache.secret`.
    secret: &'static str,
}

/// The Forgejo runner's cache secret in these tests (`cache.secret`).
const CACHE_SECRET: &str = "uv-nox-cache-test-secret";

/// What one run printed, and how it ended.
struct Run {
    success: bool,
    log: String,
}

impl Run {
    /// The line the workflow's `outputs` step printed (the runners put `| ` before a step's
    /// output; Gitea's act also logs the command in its debug lines).
    fn outputs(&self) -> &str {
        self.log
            .lines()
            .find_map(|l| l.split_once("| OUTPUTS ").map(|(_, rest)| rest))
            .unwrap_or_else(|| panic!("the outputs step did not run:\n{}", self.log))
    }

    fn ran_gated_step(&self) -> bool {
        self.log.contains("| GATED STEP RAN")
    }
}

impl Host {
    fn new(runner: &str) -> Self {
        let root = tempfile::tempdir().unwrap();
        let envs = root.path().join("envs");
        Host { root, runner: self::runner(runner), envs, external_cache: None, secret: CACHE_SECRET }
    }

    /// Where the runner's cache server keeps its entries.
    fn cache_dir(&self) -> PathBuf {
        match self.runner.name.as_str() {
            // act_runner's `exec` puts them in the runner's home (~/.cache/actcache).
            "act_runner" => self.runner_home().join(".cache/actcache"),
            _ => self.root.path().join("runner-cache"),
        }
    }

    /// The home of the user the runner runs as, at one path as on a runner machine, and
    /// emptied before every job (a fresh home) but for act_runner's cache, which its `exec`
    /// keeps there (~/.cache/actcache).
    fn runner_home(&self) -> PathBuf {
        self.root.path().join("runner-home")
    }

    fn run(&self, workflow: &str) -> Run {
        self.run_for(workflow, Event::Push)
    }

    fn run_for(&self, workflow: &str, event: Event) -> Run {
        self.run_with(workflow, event, &[], &|_| ())
    }

    /// A fresh job: a new repository (the test's "checkout" of the demo with this action in
    /// it), an emptied home (`prepare` may put something there first), and the runner started
    /// on `workflow` for `event`, with `env` added to the job's environment.
    fn run_with(&self, workflow: &str, event: Event, env: &[(&str, &str)], prepare: &dyn Fn(&Path)) -> Run {
        let n = fs::read_dir(self.root.path()).unwrap().count();
        let job = self.root.path().join(format!("job-{n}"));
        let repo = job.join("repo");
        let home = self.runner_home();
        wipe_except(&home, Path::new(".cache/actcache"));
        fs::create_dir_all(&home).unwrap();
        prepare(&home);
        // Empty at the start of every job, as on a fresh machine.
        let _ = fs::remove_dir_all(&self.envs);
        make_repo(&repo, workflow);
        let path = format!("{}:{}:/usr/bin:/bin", tools::python_tools_bin().display(), node_dir().display());
        let mut cmd = Command::new(&self.runner.bin);
        cmd.current_dir(&repo)
            .env_clear()
            .envs(network_env())
            .env("HOME", &home)
            .env("PATH", &path)
            .env("ACT_DISABLE_VERSION_CHECK", "1");
        let event_name = match event {
            Event::Push => "push",
            Event::PullRequest => "pull_request",
        };
        let mut proxy = None;
        match self.runner.name.as_str() {
            "act" | "gitea-act" => {
                cmd.args([event_name, "-W"])
                    .arg(format!(".github/workflows/{workflow}"))
                    .args(["-P", "ubuntu-latest=-self-hosted"])
                    .args(["--cache-server-addr", "127.0.0.1"])
                    .arg("--cache-server-path")
                    .arg(self.cache_dir());
            }
            "forgejo-runner" | "act_runner" => {
                cmd.args(["exec", "-i", "-self-hosted", "-E", event_name, "-W"])
                    .arg(format!(".github/workflows/{workflow}"));
            }
            other => panic!("no way to run {other}"),
        }
        if self.runner.name == "act_runner" {
            // Its `exec` also starts an artifact server, on port 34567 unless told otherwise:
            // jobs running side by side need one port each.
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            cmd.args(["--artifact-server-port", &port.to_string()]);
        }
        if self.runner.name == "forgejo-runner" {
            // `exec` gives the job its own cache server with no proxy in front, which refuses
            // every call; the job gets one wired as the runner's daemon wires it instead.
            let started = CacheProxy::start(self, event);
            cmd.arg("--env").arg(format!("JOB_ACTIONS_CACHE_URL={}", started.url));
            proxy = Some(started);
        }
        for (name, value) in env {
            cmd.arg("--env").arg(format!("{name}={value}"));
        }
        cmd.arg("--env")
            .arg(format!("UV_NOX_CACHE_BINARY={}", binary().display()))
            .arg("--env")
            .arg(format!("NOX_ENVDIR={}", self.envs.display()));
        let out = cmd.output().unwrap_or_else(|e| panic!("start {}: {e}", self.runner.bin.display()));
        let proxy_log = proxy.map(CacheProxy::stop).unwrap_or_default();
        let log = format!(
            "--- {} {} on {workflow} ({event_name}): {}\n{}{}{proxy_log}",
            self.runner.name,
            self.runner.version,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Shown with --nocapture (and for a failing test).
        println!("{log}");
        Run { success: out.status.success(), log }
    }

    /// The archives the runner's cache server holds.
    fn stored_archives(&self) -> usize {
        fn count(dir: &Path) -> usize {
            fs::read_dir(dir).map_or(0, |entries| {
                entries
                    .flatten()
                    .map(|e| {
                        let p = e.path();
                        if p.is_dir() { count(&p) } else { usize::from(p.metadata().unwrap().len() > 0) }
                    })
                    .sum()
            })
        }
        count(&self.cache_dir().join("cache"))
    }
}

/// Removes everything under `dir` but `keep` (a path relative to it).
fn wipe_except(dir: &Path, keep: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let mut first = keep.components();
    let head = first.next().map(|c| c.as_os_str().to_owned());
    for entry in entries.flatten() {
        if Some(entry.file_name()) == head {
            let rest = first.as_path();
            if !rest.as_os_str().is_empty() {
                wipe_except(&entry.path(), rest);
            }
            continue;
        }
        let path = entry.path();
        let _ = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
    }
}

/// The Forgejo runner's cache as its daemon wires it for one task (`forgejo-runner-cache-proxy`,
/// tests/forgejo-cache-proxy): its cache server (or the host's external one) behind its cache
/// proxy, the run registered with the secret, a pull request's under its write-isolation key.
struct CacheProxy {
    child: std::process::Child,
    url: String,
}

impl CacheProxy {
    fn start(host: &Host, event: Event) -> Self {
        use std::io::{BufRead, BufReader};
        let bin = runner("forgejo-runner-cache-proxy").bin;
        let mut cmd = Command::new(&bin);
        cmd.args(["--secret", host.secret, "--repo", "owner/demo", "--run", "7"]);
        match &host.external_cache {
            Some(url) => cmd.args(["--external", url]),
            None => cmd.arg("--dir").arg(host.cache_dir()),
        };
        if event == Event::PullRequest {
            cmd.args(["--write-isolation-key", "refs/pull/1/head"]);
        }
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let Some(url) = line.trim().strip_prefix("ACTIONS_CACHE_URL=").map(str::to_string) else {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("{} printed `{line}`: {}", bin.display(), String::from_utf8_lossy(&out.stderr))
        };
        assert!(url.starts_with("http://127.0.0.1:") && url.ends_with('/'), "{url}");
        CacheProxy { child, url }
    }

    /// Stops the proxy (closing its input); returns what it logged.
    fn stop(mut self) -> String {
        drop(self.child.stdin.take());
        let out = self.child.wait_with_output().unwrap();
        format!("--- cache proxy ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr))
    }
}

/// The folder holding `node` for the launcher.
fn node_dir() -> PathBuf {
    let node = Path::new("/usr/bin/node");
    assert!(node.exists(), "node is not installed");
    node.parent().unwrap().to_path_buf()
}

/// A git repository as a user's would be: the demo project in `demo/` (at the root for the
/// `sh-*` workflows), this action at the root
/// (its metadata, launchers and entries; the binary comes from UV_NOX_CACHE_BINARY) and the
/// workflow under `.github/workflows/`.
fn make_repo(repo: &Path, workflow: &str) {
    let root = repo_root();
    fs::create_dir_all(repo.join(".github/workflows")).unwrap();
    let cp = |from: &Path, to: &Path| {
        let status = Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap();
        assert!(status.success(), "cp {} {}", from.display(), to.display());
    };
    for file in ["action.yml", "restore", "save", "forgejo"] {
        cp(&root.join(file), repo);
    }
    fs::create_dir_all(repo.join("dist")).unwrap();
    for launcher in ["launch.js", "main.js", "post.js", "restore.js", "save.js"] {
        cp(&root.join("dist").join(launcher), &repo.join("dist"));
    }
    // The `sh` workflows leave `working-directory` at its default: the project is the
    // repository's root there.
    let project = if workflow.starts_with("sh-") { repo.to_path_buf() } else { repo.join("demo") };
    fs::create_dir_all(&project).unwrap();
    for entry in fs::read_dir(root.join("examples/demo")).unwrap().flatten() {
        if entry.file_name() != ".nox" {
            cp(&entry.path(), &project);
        }
    }
    cp(&root.join("tests/workflows").join(workflow), &repo.join(".github/workflows"));
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"],
        &["-c", "user.name=test", "-c", "user.email=test@example.org", "commit", "-qm", "demo"],
    ] {
        let out = Command::new("git").args(args).current_dir(repo).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// A miss that saves both targets, then in a fresh job an exact hit that saves nothing.
fn miss_then_exact_hit(runner: &str, workflow: &str) {
    let host = Host::new(runner);
    let cold = host.run(workflow);
    assert!(cold.success, "{}", cold.log);
    assert!(cold.outputs().starts_with("cache-hit=false uv=false nox=false"), "{}", cold.log);
    assert!(!cold.ran_gated_step(), "{}", cold.log);
    assert!(cold.log.contains("uv: saved") && cold.log.contains("nox: saved"), "{}", cold.log);
    assert_eq!(host.stored_archives(), 2, "{}", cold.log);

    let warm = host.run(workflow);
    assert!(warm.success, "{}", warm.log);
    assert!(warm.outputs().starts_with("cache-hit=true uv=true nox=true"), "{}", warm.log);
    assert!(warm.ran_gated_step(), "{}", warm.log);
    // These servers report no size; the log gives what was downloaded.
    for target in ["uv", "nox"] {
        let line = warm.log.lines().find(|l| l.contains(&format!("{target}: exact hit, "))).unwrap_or("");
        let size = line.split("exact hit, ").nth(1).unwrap_or("");
        assert!(
            size.starts_with(|c: char| c.is_ascii_digit()),
            "{target}: no size in `{line}`\n{}",
            warm.log
        );
    }
    assert!(!warm.log.contains(": saved"), "{}", warm.log);
    assert_eq!(host.stored_archives(), 2, "the warm job stored something:\n{}", warm.log);
    // The keys the runner's server handed back are the primary keys, lower-cased or not.
    // Every runner names this machine the same way (Gitea's act sets `linux`/`amd64`).
    let key = warm.outputs().split("uv-key=").nth(1).unwrap().trim().to_string();
    let arch = if cfg!(target_arch = "x86_64") { "X64" } else { "ARM64" };
    assert!(key.starts_with("uv-nox-cache-1-uv-Linux-") && key.contains(&format!("-{arch}-")), "{key}");
}

/// A job that fails after its work still saves with `save: always` (post-if), and the next job
/// finds what it saved.
fn failing_job_saves_with_save_always(runner: &str) {
    let host = Host::new(runner);
    let failed = host.run("failing.yml");
    assert!(!failed.success, "the job was meant to fail:\n{}", failed.log);
    assert!(failed.log.contains("uv: saved") && failed.log.contains("nox: saved"), "{}", failed.log);
    assert_eq!(host.stored_archives(), 2, "{}", failed.log);
}

mod act {
    #[test]
    fn node_entry_misses_then_hits() {
        super::miss_then_exact_hit("act", "node.yml");
    }

    #[test]
    fn restore_and_save_entries_miss_then_hit() {
        super::miss_then_exact_hit("act", "pair.yml");
    }

    #[test]
    fn a_failing_job_saves_with_save_always() {
        super::failing_job_saves_with_save_always("act");
    }
}

mod gitea_act {
    #[test]
    fn node_entry_misses_then_hits() {
        super::miss_then_exact_hit("gitea-act", "node.yml");
    }

    #[test]
    fn restore_and_save_entries_miss_then_hit() {
        super::miss_then_exact_hit("gitea-act", "pair.yml");
    }

    #[test]
    fn a_failing_job_saves_with_save_always() {
        super::failing_job_saves_with_save_always("gitea-act");
    }
}

mod forgejo_runner {
    #[test]
    fn node_entry_misses_then_hits() {
        super::miss_then_exact_hit("forgejo-runner", "node.yml");
    }

    #[test]
    fn restore_and_save_entries_miss_then_hit() {
        super::miss_then_exact_hit("forgejo-runner", "pair.yml");
    }

    #[test]
    fn a_failing_job_saves_with_save_always() {
        super::failing_job_saves_with_save_always("forgejo-runner");
    }

    #[test]
    fn sh_entry_with_no_with_saves_in_the_post_step() {
        super::sh_entry_with_no_with("forgejo-runner");
    }

    #[test]
    fn sh_entry_with_a_with_lacking_working_directory_misses_then_hits() {
        super::miss_then_exact_hit("forgejo-runner", "sh-partial.yml");
    }

    #[test]
    fn sh_entry_with_uv_python_misses_then_hits() {
        super::sh_entry_with_uv_python("forgejo-runner");
    }

    #[test]
    fn a_pull_request_saves_apart_from_what_pushes_read() {
        super::pull_request_saves_are_isolated();
    }

    #[test]
    fn a_wrong_cache_secret_is_a_warning_naming_it() {
        super::a_wrong_cache_secret_is_a_warning_naming_it();
    }

    #[test]
    fn two_runner_homes_share_an_external_cache_server() {
        super::external_cache_server_shared_by_two_homes();
    }
}

mod act_runner {
    #[test]
    fn node_entry_misses_then_hits() {
        super::miss_then_exact_hit("act_runner", "node.yml");
    }

    #[test]
    fn restore_and_save_entries_miss_then_hit() {
        super::miss_then_exact_hit("act_runner", "pair.yml");
    }

    #[test]
    fn a_failing_job_saves_with_save_always() {
        super::failing_job_saves_with_save_always("act_runner");
    }
}

/// The bare `sh` entry: both targets saved by the post step of a job whose workflow gives no
/// input at all; the next job hits uv exactly (nox's key holds the workspace's path, which
/// moves with every host job) and saves nothing for it.
fn sh_entry_with_no_with(runner: &str) {
    let host = Host::new(runner);
    let cold = host.run("sh-bare.yml");
    assert!(cold.success, "{}", cold.log);
    assert!(cold.outputs().starts_with("cache-hit=false uv=false nox=false"), "{}", cold.log);
    assert!(cold.log.contains("uv: saved") && cold.log.contains("nox: saved"), "{}", cold.log);
    assert!(!cold.log.contains("::error::"), "{}", cold.log);
    assert_eq!(host.stored_archives(), 2, "{}", cold.log);

    let warm = host.run("sh-bare.yml");
    assert!(warm.success, "{}", warm.log);
    assert!(warm.outputs().starts_with("cache-hit=false uv=true nox=false"), "{}", warm.log);
    assert!(!warm.log.contains("uv: saved"), "{}", warm.log);
}

/// The `sh` entry with `targets: uv uv-python nox`: the session's env is built on a Python uv
/// manages (made as tests/it/uv_python.rs makes it, since uv can download none here), which
/// the first job finds installed and the second gets back from the uv-python entry.
fn sh_entry_with_uv_python(runner: &str) {
    let host = Host::new(runner);
    let minor = crate::uv_python::tools_python_minor();
    let env = [("SESSION_PYTHON", minor.as_str())];
    let install = |home: &Path| {
        crate::uv_python::install_uv_managed_python_in(home);
    };
    let cold = host.run_with("sh-python.yml", Event::Push, &env, &install);
    assert!(cold.success, "{}", cold.log);
    assert!(cold.outputs().starts_with("cache-hit=false uv=false nox=false"), "{}", cold.log);
    for target in ["uv", "uv-python", "nox"] {
        assert!(cold.log.contains(&format!("{target}: saved")), "{target}:\n{}", cold.log);
    }
    let warm = host.run_with("sh-python.yml", Event::Push, &env, &|_| ());
    assert!(warm.success, "{}", warm.log);
    assert!(warm.outputs().starts_with("cache-hit=true uv=true nox=true"), "{}", warm.log);
    assert!(warm.ran_gated_step(), "{}", warm.log);
    assert!(!warm.log.contains(": saved"), "{}", warm.log);
}

/// A pull request's job saves under the run's write-isolation key: a push job after it finds
/// nothing and saves its own; a later job of the same pull request hits.
fn pull_request_saves_are_isolated() {
    let host = Host::new("forgejo-runner");
    let pr = host.run_for("node.yml", Event::PullRequest);
    assert!(pr.success, "{}", pr.log);
    assert!(pr.log.contains("uv: saved") && pr.log.contains("nox: saved"), "{}", pr.log);
    assert_eq!(host.stored_archives(), 2, "{}", pr.log);

    let push = host.run("node.yml");
    assert!(push.success, "{}", push.log);
    assert!(push.outputs().starts_with("cache-hit=false uv=false nox=false"), "{}", push.log);
    assert!(push.log.contains("uv: saved") && push.log.contains("nox: saved"), "{}", push.log);
    assert_eq!(host.stored_archives(), 4, "{}", push.log);
}

/// A runner whose `cache.secret` differs from its external cache server's: every call is
/// refused (403). The job goes on; the log says the save was refused, with the status and the
/// likely cause, and never that another job saved first.
fn a_wrong_cache_secret_is_a_warning_naming_it() {
    let server = ExternalCacheServer::start();
    let mut host = Host::new("forgejo-runner");
    host.external_cache = Some(server.url.clone());
    host.secret = "not-the-server-secret";
    let run = host.run("node.yml");
    assert!(run.success, "{}", run.log);
    assert!(run.outputs().starts_with("cache-hit=false"), "{}", run.log);
    let warnings: Vec<&str> =
        run.log.lines().filter(|l| l.contains("::warning::") && l.contains("save")).collect();
    assert!(
        warnings.iter().any(|w| w.contains("403") && w.contains("cache secret")),
        "no warning naming the 403 and the secret:\n{}",
        run.log
    );
    assert!(!run.log.contains("already saved") && !run.log.contains("uv: saved"), "{}", run.log);
}

/// `forgejo-runner cache-server`, started on its own with a secret; stopped on drop.
struct ExternalCacheServer {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl ExternalCacheServer {
    fn start() -> Self {
        use std::io::{BufRead, BufReader};
        let bin = runner("forgejo-runner").bin;
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(&bin)
            .arg("cache-server")
            .arg("--dir")
            .arg(dir.path())
            .args(["--host", "127.0.0.1", "--secret", CACHE_SECRET])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {} cache-server: {e}", bin.display()));
        // It logs `cache server is listening on http://127.0.0.1:<port>` (logrus, stderr).
        let mut seen = Vec::new();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let url = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| {
                let url = line
                    .split("listening on ")
                    .nth(1)
                    .map(|u| u.trim_matches(|c| c == '"' || c == ' ').to_string());
                seen.push(line);
                url
            })
            .unwrap_or_else(|| {
                panic!("forgejo-runner cache-server did not say where it listens:\n{}", seen.join("\n"))
            });
        // Go on reading what it logs: a write to a closed pipe would kill it.
        std::thread::spawn(move || lines.for_each(drop));
        ExternalCacheServer { child, url, _dir: dir }
    }
}

impl Drop for ExternalCacheServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two runner machines pointed at one `forgejo-runner cache-server` with the same secret
/// (`cache.external_server`): what one saves, the other hits. Both put the envs at the same
/// absolute path, as a fleet's runners would.
fn external_cache_server_shared_by_two_homes() {
    let server = ExternalCacheServer::start();
    let mut first = Host::new("forgejo-runner");
    first.external_cache = Some(server.url.clone());
    let mut second = Host::new("forgejo-runner");
    second.external_cache = Some(server.url.clone());
    second.envs = first.envs.clone();

    let cold = first.run("node.yml");
    assert!(cold.success, "{}", cold.log);
    assert!(cold.log.contains("uv: saved") && cold.log.contains("nox: saved"), "{}", cold.log);
    let warm = second.run("node.yml");
    assert!(warm.success, "{}", warm.log);
    assert!(warm.outputs().starts_with("cache-hit=true uv=true nox=true"), "{}", warm.log);
    assert!(warm.ran_gated_step(), "{}", warm.log);
    assert!(!warm.log.contains(": saved"), "{}", warm.log);
}

/// The runners' own cache servers on their own (`tests/runner-cache-server`), with this action's
/// steps and the official `@actions/cache` as their clients: what a job on those runners sees,
/// without the runner around it.
pub(crate) mod servers {
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, Stdio};

    use crate::support::action::{Job, Machine, Protocol, snapshot};
    use crate::support::official::{Endpoint, Official, Site};
    use crate::support::rig::{assert_clean, checkout, fresh_checkout, populate};

    /// A runner's cache server, killed on drop.
    pub(crate) struct RealServer {
        child: Child,
        /// `ACTIONS_CACHE_URL` as the runner hands it to its jobs.
        pub(crate) url: String,
        _dir: tempfile::TempDir,
    }

    impl RealServer {
        /// Starts the cache server of `runner` (`act`, `gitea-act`), as `scripts/runners` built it.
        pub(crate) fn start(runner: &str) -> Self {
            let bin = super::runner(&format!("{runner}-cache-server")).bin;
            let dir = tempfile::tempdir().unwrap();
            let mut child = Command::new(&bin)
                .arg("--dir")
                .arg(dir.path())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
            // All three lines, before the pipe closes: a later write to a closed pipe kills it.
            let lines: Vec<String> =
                BufReader::new(child.stdout.take().unwrap()).lines().take(3).map(Result::unwrap).collect();
            let first = lines.first().expect("the server printed nothing");
            let url =
                first.strip_prefix("ACTIONS_CACHE_URL=").unwrap_or_else(|| panic!("{lines:?}")).to_string();
            assert!(url.starts_with("http://127.0.0.1:"), "{url}");
            RealServer { child, url, _dir: dir }
        }

        /// The Forgejo runner's cache as its daemon wires it (`forgejo-runner-cache-proxy`,
        /// tests/forgejo-cache-proxy): its cache server behind its cache proxy, one push run
        /// registered; `url` is the proxy's, with the run's id, as the runner hands it to a job.
        pub(crate) fn forgejo() -> Self {
            let bin = super::runner("forgejo-runner-cache-proxy").bin;
            let dir = tempfile::tempdir().unwrap();
            let mut child = Command::new(&bin)
                .args(["--secret", super::CACHE_SECRET, "--repo", "owner/demo", "--run", "7", "--dir"])
                .arg(dir.path())
                // It serves until its input closes: the pipe stays open in `child` until drop.
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                // Its log would go to a closed pipe once read, which kills a Go program.
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
            let url = line.trim().strip_prefix("ACTIONS_CACHE_URL=").map(str::to_string);
            let url = url.unwrap_or_else(|| panic!("{} printed `{line}`", bin.display()));
            assert!(url.starts_with("http://127.0.0.1:") && url.ends_with('/'), "{url}");
            RealServer { child, url, _dir: dir }
        }

        /// A job on `machine` pointed at this server as the runner points its jobs at it.
        fn job(&self, machine: &Machine) -> Job {
            let mut job = machine.job();
            // `ACT=true` as both runners set it: saves reserve without a size and upload while
            // packing, which these servers accept.
            job.set_env("ACTIONS_CACHE_URL", &self.url)
                .set_env("ACTIONS_RUNTIME_TOKEN", "job-token")
                .set_env("GITHUB_SERVER_URL", "https://forgejo.example.org")
                .set_env("ACT", "true");
            job
        }

        /// `@actions/cache` run as a step of a job on `machine`; returns its `RESULT …` line.
        fn official(&self, machine: &Machine, args: &[&str]) -> String {
            let endpoint = Endpoint {
                cache_url: self.url.clone(),
                results_url: String::new(),
                token: "job-token".into(),
            };
            let site = Site {
                endpoint,
                protocol: Protocol::V1,
                server_url: "https://forgejo.example.org",
                workspace: &machine.workspace,
                home: &machine.home,
            };
            Official::provision().run(&site, args)
        }
    }

    impl Drop for RealServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn dirs(machine: &Machine) -> (super::PathBuf, super::PathBuf) {
        (machine.home.join(".cache/uv"), machine.workspace.join(".nox"))
    }

    /// The action saves and restores byte for byte; a changed lock file falls back to the
    /// newest entry of the same prefix for uv (the server's prefix match) and misses for nox.
    fn round_trip_and_fallback(runner: &str) {
        let server = RealServer::start(runner);
        let machine = Machine::new();
        checkout(&machine);
        let mut job = server.job(&machine);
        assert_clean(&job.main());
        populate(&machine, "first");
        let (uv, nox) = dirs(&machine);
        let before = (snapshot(&uv), snapshot(&nox));
        let post = job.post();
        assert_clean(&post);
        assert!(post.stdout.contains("uv: saved") && post.stdout.contains("nox: saved"), "{}", post.log());

        fresh_checkout(&machine);
        let mut job = server.job(&machine);
        let main = job.main();
        assert_clean(&main);
        main.assert_hits("true");
        assert_eq!((snapshot(&uv), snapshot(&nox)), before);
        assert!(job.post().stdout.contains("not saving"));

        fresh_checkout(&machine);
        std::fs::write(machine.workspace.join("uv.lock"), "version = 1\n# changed\n").unwrap();
        let main = server.job(&machine).main();
        assert_clean(&main);
        assert_eq!(main.output("uv-cache-hit"), "false", "{}", main.log());
        assert_eq!(main.output("uv-restored"), "true", "{}", main.log());
        assert_eq!(main.output("nox-restored"), "false", "{}", main.log());
        assert_eq!(snapshot(&uv), before.0);
    }

    /// Entries are interchangeable with `@actions/cache` both ways on the real server.
    fn interchange_with_the_official_client(runner: &str) {
        let server = RealServer::start(runner);
        let machine = Machine::new();
        checkout(&machine);
        populate(&machine, "official");
        let (uv, nox) = dirs(&machine);
        let before = (snapshot(&uv), snapshot(&nox));
        let keys = server.job(&machine).keys();
        for (target, path) in [("uv", "~/.cache/uv"), ("nox", ".nox")] {
            let result = server.official(&machine, &["save", path, &keys[target]]);
            assert!(result.starts_with("RESULT saved "), "{target}: {result}");
        }
        fresh_checkout(&machine);
        let main = server.job(&machine).main();
        assert_clean(&main);
        main.assert_hits("true");
        assert_eq!((snapshot(&uv), snapshot(&nox)), before);

        // And the other way: the action saves under new keys, the official client restores.
        populate(&machine, "action");
        let before = (snapshot(&uv), snapshot(&nox));
        let mut job = server.job(&machine);
        job.input("key-suffix", "other");
        assert_clean(&job.main());
        assert_clean(&job.post());
        fresh_checkout(&machine);
        let keys = job.keys();
        for (target, path) in [("uv", "~/.cache/uv"), ("nox", ".nox")] {
            let result = server.official(&machine, &["restore", path, &keys[target]]);
            let matched =
                result.strip_prefix("RESULT restored ").unwrap_or_else(|| panic!("{target}: {result}"));
            assert!(matched.eq_ignore_ascii_case(&keys[target]), "{target}: {result}");
        }
        assert_eq!((snapshot(&uv), snapshot(&nox)), before);
    }

    /// The server hands the key back lower-cased the Go way (`İstanbul` → `istanbul`): still
    /// an exact hit, and nothing is saved again.
    fn a_key_lower_cased_by_go_is_still_an_exact_hit(runner: &str) {
        let server = RealServer::start(runner);
        let machine = Machine::new();
        checkout(&machine);
        let mut job = server.job(&machine);
        job.input("key-suffix", "İstanbul");
        assert_clean(&job.main());
        populate(&machine, "first");
        let post = job.post();
        assert!(post.stdout.contains("uv: saved") && post.stdout.contains("nox: saved"), "{}", post.log());

        fresh_checkout(&machine);
        let mut job = server.job(&machine);
        job.input("key-suffix", "İstanbul");
        let main = job.main();
        assert_clean(&main);
        main.assert_hits("true");
        assert!(main.output("uv-matched-key").contains("-istanbul-"), "{}", main.log());
        let post = job.post();
        assert!(!post.stdout.contains(": saved"), "{}", post.log());
    }

    #[test]
    fn gitea_act_a_key_lower_cased_by_go_is_still_an_exact_hit() {
        a_key_lower_cased_by_go_is_still_an_exact_hit("gitea-act");
    }

    /// `entries` against the real server: it says plainly that the server cannot list, and
    /// answers `--for-key` with the server's own lookup; `prune` refuses a service it cannot
    /// prune.
    fn entries_say_what_the_server_can_answer(runner: &str) {
        let server = RealServer::start(runner);
        let machine = Machine::new();
        checkout(&machine);
        let mut job = server.job(&machine);
        assert_clean(&job.main());
        populate(&machine, "first");
        assert_clean(&job.post());
        let keys = job.keys();
        let run = |args: &[&str]| {
            let mut cmd = Command::new(super::binary());
            cmd.args(args).env_clear().current_dir(&machine.workspace).envs(&job.env);
            for (input, value) in &job.inputs {
                cmd.env(format!("INPUT_{}", input.to_uppercase()), value);
            }
            let out = cmd.output().expect("run uv-nox-cache");
            let text =
                format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            (out.status.code(), text)
        };
        let (code, text) = run(&["entries"]);
        assert_eq!(code, Some(0), "{text}");
        assert!(text.contains("cannot list its entries (it answered 405"), "{text}");
        let secret_path = server.url.trim_end_matches('/').rsplit('/').next().unwrap();
        assert!(
            secret_path.contains(':') || !text.contains(secret_path),
            "the URL's path is not shown: {text}"
        );

        let (code, text) = run(&["entries", "--for-key", &keys["uv"], "--for-key", "uv-nox-cache-"]);
        assert_eq!(code, Some(0), "{text}");
        let restores = text.lines().find(|l| l.trim_start().starts_with("uv (version")).unwrap_or_default();
        assert!(
            restores.to_lowercase().ends_with(&format!("restores {}", keys["uv"].to_lowercase())),
            "{text}"
        );
        let (code, text) = run(&["entries", "--for-key", "no-such-key"]);
        assert!(code == Some(0) && text.contains("uv (version") && text.contains("a miss"), "{text}");

        let (code, text) = run(&["prune", "--max-age", "1"]);
        assert_eq!(code, Some(1), "{text}");
        assert!(text.contains("evicts entries itself"), "{text}");
    }

    #[test]
    fn act_entries_say_what_the_server_can_answer() {
        entries_say_what_the_server_can_answer("act");
    }

    #[test]
    fn gitea_act_entries_say_what_the_server_can_answer() {
        entries_say_what_the_server_can_answer("gitea-act");
    }

    #[test]
    fn act_round_trip_and_fallback() {
        round_trip_and_fallback("act");
    }

    #[test]
    fn gitea_act_round_trip_and_fallback() {
        round_trip_and_fallback("gitea-act");
    }

    #[test]
    fn act_interchange_with_the_official_client() {
        interchange_with_the_official_client("act");
    }

    #[test]
    fn gitea_act_interchange_with_the_official_client() {
        interchange_with_the_official_client("gitea-act");
    }
}
