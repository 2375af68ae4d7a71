//! Runs the action the way a runner does: a cleared environment, `INPUT_*` with action.yml's
//! defaults filled in, the runner's files (`GITHUB_OUTPUT`, `GITHUB_STATE`, `GITHUB_ENV`,
//! `GITHUB_STEP_SUMMARY`), `RUNNER_TEMP`, and the state of the main step handed to the post step
//! as `STATE_*`. Steps go through the Node launcher in `dist/` when it is there, with the
//! freshly built binary.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::cache_server::CacheServer;

/// The freshly built binary.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_uv-nox-cache"))
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Inputs with the defaults declared in action.yml, as the runner fills them in.
pub fn default_inputs() -> BTreeMap<String, String> {
    let text = fs::read_to_string(repo_root().join("action.yml")).expect("read action.yml");
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("parse action.yml");
    let mut inputs = BTreeMap::new();
    for (name, spec) in doc["inputs"].as_mapping().expect("action.yml has inputs") {
        let default = match &spec["default"] {
            serde_yaml_ng::Value::String(s) => s.clone(),
            serde_yaml_ng::Value::Bool(b) => b.to_string(),
            serde_yaml_ng::Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        inputs.insert(name.as_str().unwrap().to_string(), default);
    }
    inputs
}

/// How this machine reaches the package registries (CA bundles, proxies, index settings): the
/// only variables a cleared test environment keeps, so real uv and nox can download.
pub fn network_env() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| {
            let k = k.to_ascii_uppercase();
            k.ends_with("_PROXY")
                || k.contains("CA_BUNDLE")
                || k.contains("CA_CERTS")
                || k.starts_with("SSL_CERT")
                || k.starts_with("PIP_")
                || k.starts_with("UV_INDEX")
                || k == "UV_NATIVE_TLS"
        })
        .collect()
}

/// A runner machine: a home directory, a workspace at a fixed path and a local cache store,
/// all under one temporary root. Jobs on it share the store, as jobs on a self-hosted runner do.
pub struct Machine {
    pub root: tempfile::TempDir,
    pub workspace: PathBuf,
    pub home: PathBuf,
    pub store: PathBuf,
    pub path: String,
}

impl Machine {
    pub fn new() -> Self {
        let root = tempfile::tempdir().expect("temp root");
        let workspace = root.path().join("work/repo/repo");
        let home = root.path().join("home");
        let store = root.path().join("store");
        let bin = root.path().join("bin");
        for dir in [&workspace, &home, &store, &bin] {
            fs::create_dir_all(dir).unwrap();
        }
        // Only what a plain runner has: node for the launcher and the system python3.
        std::os::unix::fs::symlink("/usr/bin/node", bin.join("node")).unwrap();
        std::os::unix::fs::symlink("/usr/bin/python3", bin.join("python3")).unwrap();
        let path = format!("{}:/usr/bin:/bin", bin.display());
        Machine { root, workspace, home, store, path }
    }

    /// `program` run in the workspace as a later `run:` step would: cleared environment, this
    /// machine's HOME and PATH with `extra_path` in front, registry access kept.
    pub fn command(&self, program: &Path, extra_path: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(&self.workspace)
            .env_clear()
            .envs(network_env())
            .env("HOME", &self.home)
            .env("PATH", format!("{}:{}", extra_path.display(), self.path));
        cmd
    }

    /// A new job on this machine: its own temp dir and runner files, the same paths.
    pub fn job(&self) -> Job {
        let n = fs::read_dir(self.root.path()).unwrap().count();
        let dir = self.root.path().join(format!("job-{n}"));
        fs::create_dir_all(dir.join("temp")).unwrap();
        let mut inputs = default_inputs();
        inputs.insert("local-dir".into(), self.store.display().to_string());
        let mut env = BTreeMap::new();
        for (k, v) in [
            ("GITHUB_WORKSPACE", self.workspace.display().to_string()),
            ("HOME", self.home.display().to_string()),
            ("PATH", self.path.clone()),
            ("RUNNER_TEMP", dir.join("temp").display().to_string()),
            ("RUNNER_OS", "Linux".into()),
            ("RUNNER_ARCH", "X64".into()),
            ("GITHUB_EVENT_NAME", "push".into()),
            ("GITHUB_REF", "refs/heads/main".into()),
            ("GITHUB_ACTIONS", "true".into()),
        ] {
            env.insert(k.to_string(), v);
        }
        Job { dir, inputs, env, state: BTreeMap::new() }
    }
}

/// One job: inputs and environment shared by its main and post steps.
pub struct Job {
    pub dir: PathBuf,
    pub inputs: BTreeMap<String, String>,
    pub env: BTreeMap<String, String>,
    /// What the main step left in `GITHUB_STATE`.
    pub state: BTreeMap<String, String>,
}

/// What one step did.
#[derive(Debug)]
pub struct Step {
    /// The exit code, -1 when the step was killed by a signal.
    pub code: i32,
    /// The signal that ended the step, if one did.
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub outputs: BTreeMap<String, String>,
    pub env_file: BTreeMap<String, String>,
    pub summary: String,
    /// The step's wall time.
    pub elapsed: Duration,
}

/// Which cache protocol of a [`CacheServer`] a job is pointed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `_apis/artifactcache` at `ACTIONS_CACHE_URL` (GHES, Forgejo, Gitea, act).
    V1,
    /// Twirp + blob at `ACTIONS_RESULTS_URL` (github.com).
    V2,
}

impl Step {
    pub fn output(&self, name: &str) -> &str {
        self.outputs
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no output `{name}`:\n{}", self.log()))
    }

    /// Asserts that every hit and restored output of both targets is `value`.
    pub fn assert_hits(&self, value: &str) {
        for output in ["cache-hit", "uv-cache-hit", "nox-cache-hit", "uv-restored", "nox-restored"] {
            assert_eq!(self.output(output), value, "{output}\n{}", self.log());
        }
    }

    pub fn log(&self) -> String {
        let end = match self.signal {
            Some(signal) => format!("killed by signal {signal}"),
            None => format!("exit {}", self.code),
        };
        format!("{end}\n--- stdout\n{}--- stderr\n{}", self.stdout, self.stderr)
    }
}

impl Job {
    pub fn input(&mut self, name: &str, value: &str) -> &mut Self {
        self.inputs.insert(name.into(), value.into());
        self
    }

    pub fn set_env(&mut self, name: &str, value: &str) -> &mut Self {
        self.env.insert(name.into(), value.into());
        self
    }

    /// Sets the runner variables a node action sees for `protocol` of `server`, as GitHub's
    /// runner sets them (v1 on a GHES-style host, v2 on github.com with the v2 flag); the
    /// `backend` input stays `auto`, so the action has to choose the service itself.
    pub fn use_service(&mut self, server: &CacheServer, protocol: Protocol) -> &mut Self {
        self.set_env("ACTIONS_RUNTIME_TOKEN", server.token());
        self.set_env("ACTIONS_CACHE_URL", &server.base_url_v1());
        self.set_env("ACTIONS_RESULTS_URL", &server.results_url());
        match protocol {
            Protocol::V1 => {
                self.env.remove("ACTIONS_CACHE_SERVICE_V2");
                self.set_env("GITHUB_SERVER_URL", "https://forgejo.example.org")
            }
            Protocol::V2 => {
                self.set_env("ACTIONS_CACHE_SERVICE_V2", "True");
                self.set_env("GITHUB_SERVER_URL", "https://github.com")
            }
        }
    }

    /// What `uv-nox-cache key` prints for this job: target → primary key.
    pub fn keys(&self) -> BTreeMap<String, String> {
        let mut cmd = Command::new(binary());
        cmd.arg("key").env_clear().current_dir(&self.env["GITHUB_WORKSPACE"]).envs(&self.env);
        for (input, value) in &self.inputs {
            cmd.env(format!("INPUT_{}", input.to_uppercase().replace(' ', "_")), value);
        }
        let out = cmd.output().expect("run uv-nox-cache key");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(t, k)| (t.to_string(), k.to_string()))
            .collect()
    }

    /// The main step (restore); keeps its state for the post step.
    pub fn main(&mut self) -> Step {
        let step = self.step("main", "restore", &BTreeMap::new());
        self.state =
            parse_file_commands(&fs::read_to_string(self.dir.join("main.state")).unwrap_or_default());
        step
    }

    /// The post step (save), given the main step's state.
    pub fn post(&mut self) -> Step {
        let state = self.state.clone();
        self.step("post", "save", &state)
    }

    fn step(&self, name: &str, command: &str, state: &BTreeMap<String, String>) -> Step {
        let started = Instant::now();
        let out = self.command(name, command, state).output().expect("run the action step");
        self.collect(name, out, started.elapsed())
    }

    /// Starts the main step (restore) without waiting for it, as [`Job::main`] would run it,
    /// with its stdout and stderr piped.
    pub fn start_main(&self) -> Running<'_> {
        self.start("main", "restore", &BTreeMap::new())
    }

    /// Starts the post step (save) without waiting for it, as [`Job::post`] would run it.
    pub fn start_post(&self) -> Running<'_> {
        let state = self.state.clone();
        self.start("post", "save", &state)
    }

    fn start(&self, name: &'static str, command: &str, state: &BTreeMap<String, String>) -> Running<'_> {
        let started = Instant::now();
        // In a process group of its own, so that `kill_tree` reaches the binary too.
        let child = self
            .command(name, command, state)
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the action step");
        Running { job: self, name, child, started }
    }

    /// The step's process as the runner starts it: the launcher in `dist/` when it is there,
    /// its runner files emptied.
    fn command(&self, name: &str, command: &str, state: &BTreeMap<String, String>) -> Command {
        let files = |ext: &str| self.dir.join(format!("{name}.{ext}"));
        for ext in ["output", "state", "env", "summary"] {
            fs::write(files(ext), "").unwrap();
        }
        let launcher = repo_root().join("dist").join(format!("{name}.js"));
        let mut cmd = if launcher.exists() {
            let mut c = Command::new("/usr/bin/node");
            c.arg(&launcher).env_clear().env("UV_NOX_CACHE_BINARY", binary());
            c
        } else {
            let mut c = Command::new(binary());
            c.arg(command).env_clear();
            c
        };
        cmd.current_dir(&self.env["GITHUB_WORKSPACE"]);
        cmd.envs(&self.env);
        for (input, value) in &self.inputs {
            cmd.env(format!("INPUT_{}", input.to_uppercase().replace(' ', "_")), value);
        }
        for (k, v) in state {
            cmd.env(format!("STATE_{k}"), v);
        }
        cmd.env("GITHUB_OUTPUT", files("output"))
            .env("GITHUB_STATE", files("state"))
            .env("GITHUB_ENV", files("env"))
            .env("GITHUB_STEP_SUMMARY", files("summary"));
        cmd
    }

    fn collect(&self, name: &str, out: Output, elapsed: Duration) -> Step {
        let read = |ext: &str| fs::read_to_string(self.dir.join(format!("{name}.{ext}"))).unwrap_or_default();
        Step {
            code: out.status.code().unwrap_or(-1),
            signal: out.status.signal(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            outputs: parse_file_commands(&read("output")),
            env_file: parse_file_commands(&read("env")),
            summary: read("summary"),
            elapsed,
        }
    }
}

/// A step started with [`Job::start_main`] or [`Job::start_post`].
pub struct Running<'a> {
    job: &'a Job,
    name: &'static str,
    child: Child,
    started: Instant,
}

impl Running<'_> {
    /// Sends `signal` to the step's entry process (the launcher), as a runner cancelling the
    /// step does.
    pub fn signal(&self, signal: i32) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: a plain kill(2) of our own child.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill {pid}");
    }

    /// SIGKILL to the step's whole process tree (the launcher and the binary), as the runner's
    /// last resort.
    pub fn kill_tree(&self) {
        let group = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: a plain killpg(2) of the group our own child leads.
        assert_eq!(unsafe { libc::killpg(group, libc::SIGKILL) }, 0, "killpg {group}");
    }

    /// Waits for the step to end.
    pub fn finish(self) -> Step {
        let out = self.child.wait_with_output().expect("wait for the action step");
        self.job.collect(self.name, out, self.started.elapsed())
    }
}

/// Parses the runner's `name<<DELIMITER` file format (and plain `name=value` lines).
pub fn parse_file_commands(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((name, delimiter)) = line.split_once("<<") {
            let mut value = Vec::new();
            for l in lines.by_ref() {
                if l == delimiter {
                    break;
                }
                value.push(l);
            }
            out.insert(name.to_string(), value.join("\n"));
        } else if let Some((name, value)) = line.split_once('=') {
            out.insert(name.to_string(), value.to_string());
        }
    }
    out
}

/// A directory tree as a map: path → kind, mode and content digest (or link target).
pub fn snapshot(root: &Path) -> BTreeMap<String, String> {
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let meta = fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            let value = if meta.file_type().is_symlink() {
                format!("link -> {}", fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                stack.push(path.clone());
                format!("dir {mode:o}")
            } else {
                format!("file {mode:o} {}", hex::encode(Sha256::digest(fs::read(&path).unwrap())))
            };
            out.insert(rel, value);
        }
    }
    out
}
