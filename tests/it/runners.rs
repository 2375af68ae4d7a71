//! The action run by real workflow runners, built from the Go module proxy by `scripts/runners`:
//! nektos/act and Gitea's fork of act (the engine of Gitea's act_runner). Each runs the
//! workflows of `tests/workflows/` in its local mode with the job on this host and its **own**
//! cache server on 127.0.0.1: the runner reads action.yml, fills `INPUT_*`, runs `main` then
//! `post`, evaluates `post-if`, and gates later steps on the `cache-hit` output.
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
struct Runner {
    name: String,
    version: String,
    bin: PathBuf,
}

/// Builds (once) and lists the runners. A runner that cannot be built fails every test here.
fn runners() -> Vec<Runner> {
    static BUILT: std::sync::OnceLock<Vec<Runner>> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let out = Command::new(repo_root().join("scripts/runners"))
                .output()
                .expect("start scripts/runners (it needs bash and go)");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "scripts/runners could not build the runners:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let list: Vec<Runner> = stdout
                .lines()
                .map(|line| {
                    let mut parts = line.splitn(3, ' ');
                    let (name, version, bin) = (parts.next(), parts.next(), parts.next());
                    Runner {
                        name: name.unwrap().into(),
                        version: version.unwrap().into(),
                        bin: bin.unwrap_or_else(|| panic!("scripts/runners: {line}")).into(),
                    }
                })
                .collect();
            for runner in &list {
                println!("runner: {} {} ({})", runner.name, runner.version, runner.bin.display());
            }
            assert!(list.len() >= 2, "scripts/runners listed {list:?}");
            list
        })
        .clone()
}

fn runner(name: &str) -> Runner {
    runners().into_iter().find(|r| r.name == name).unwrap_or_else(|| panic!("scripts/runners has no {name}"))
}

/// What one runner machine keeps between jobs: the runner's cache server storage.
struct Host {
    root: tempfile::TempDir,
    runner: Runner,
}

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
        Host { root: tempfile::tempdir().unwrap(), runner: self::runner(runner) }
    }

    fn cache_dir(&self) -> PathBuf {
        self.root.path().join("runner-cache")
    }

    /// A fresh job: a new repository (the test's "checkout" of the demo with this action in
    /// it), a new home, and the runner started on `workflow` for a push event.
    fn run(&self, workflow: &str) -> Run {
        let n = fs::read_dir(self.root.path()).unwrap().count();
        let job = self.root.path().join(format!("job-{n}"));
        let repo = job.join("repo");
        let home = job.join("home");
        fs::create_dir_all(&home).unwrap();
        // The envs' fixed place outside act's per-run workspace (see tests/workflows/node.yml),
        // empty at the start of every job as on a fresh machine.
        let envs = self.root.path().join("envs");
        let _ = fs::remove_dir_all(&envs);
        make_repo(&repo, workflow);
        let path = format!("{}:{}:/usr/bin:/bin", tools::python_tools_bin().display(), node_dir().display());
        let out = Command::new(&self.runner.bin)
            .current_dir(&repo)
            .env_clear()
            .envs(network_env())
            .env("HOME", &home)
            .env("PATH", &path)
            .env("ACT_DISABLE_VERSION_CHECK", "1")
            .args(["push", "-W"])
            .arg(format!(".github/workflows/{workflow}"))
            .args(["-P", "ubuntu-latest=-self-hosted"])
            .args(["--cache-server-addr", "127.0.0.1"])
            .arg("--cache-server-path")
            .arg(self.cache_dir())
            .arg("--env")
            .arg(format!("UV_NOX_CACHE_BINARY={}", binary().display()))
            .arg("--env")
            .arg(format!("NOX_ENVDIR={}", envs.display()))
            .output()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.runner.bin.display()));
        let log = format!(
            "--- {} {} on {workflow}: {}\n{}{}",
            self.runner.name,
            self.runner.version,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
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

/// The folder holding `node` for the launcher.
fn node_dir() -> PathBuf {
    let node = Path::new("/usr/bin/node");
    assert!(node.exists(), "node is not installed");
    node.parent().unwrap().to_path_buf()
}

/// A git repository as a user's would be: the demo project in `demo/`, this action at the root
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
    cp(&root.join("examples/demo"), &repo.join("demo"));
    let _ = fs::remove_dir_all(repo.join("demo/.nox"));
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

/// The runners' own cache servers on their own (`tests/runner-cache-server`), with this action's
/// steps and the official `@actions/cache` as their clients: what a job on those runners sees,
/// without the runner around it.
mod servers {
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, Stdio};

    use crate::support::action::{Job, Machine, Protocol, snapshot};
    use crate::support::official::{Endpoint, Official, Site};
    use crate::support::rig::{assert_clean, checkout, fresh_checkout, populate};

    /// A runner's cache server, killed on drop.
    struct RealServer {
        child: Child,
        url: String,
        _dir: tempfile::TempDir,
    }

    impl RealServer {
        fn start(runner: &str) -> Self {
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
