//! The rig the suites that run the action's steps share: a runner machine with a checked-out
//! project, pointed at one of the cache services the action speaks (v1 as Forgejo or GHES
//! serve it, v2 as github.com serves it, or the local store), and the few helpers that set up
//! and check its trees.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};

use super::action::{Job, Machine, Protocol, Step, snapshot};
use super::cache_server::{CacheServer, LoggedRequest, Personality, Route};

/// A cache service as a job meets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// v1 on Forgejo (act, Gitea alike): base URL `http://host/<run>/`, keys lower-cased.
    ForgejoV1,
    /// v1 on GHES: keys kept, one write per key + version.
    GithubV1,
    /// v2 on github.com: Twirp + signed blob URLs.
    GithubV2,
    /// No runner cache service: `backend: auto` falls back to the local store.
    Local,
}

impl Service {
    pub fn protocol(self) -> Option<Protocol> {
        match self {
            Service::ForgejoV1 | Service::GithubV1 => Some(Protocol::V1),
            Service::GithubV2 => Some(Protocol::V2),
            Service::Local => None,
        }
    }

    /// Whether a second save of a key is refused (GitHub) rather than stored (newest wins).
    pub fn refuses_duplicates(self) -> bool {
        matches!(self, Service::GithubV1 | Service::GithubV2)
    }
}

/// The toolkit's timing, shrunk through `UV_NOX_CACHE_TEST_TUNING` for the suites that make a
/// service fail on purpose: the first retry after 100 ms instead of 3 s, three attempts, and
/// one second of grace past the `timeout` input. The idle timeout stays long enough for a busy
/// machine.
pub const FAST_TIMING: &str = "retry_delay=100ms,attempts=3,connect_timeout=5s,idle_timeout=10s,grace=1s";

/// A runner machine and, for the HTTP services, the server its jobs talk to.
pub struct Rig {
    pub service: Service,
    pub machine: Machine,
    pub server: Option<CacheServer>,
}

impl Rig {
    pub fn new(service: Service) -> Rig {
        let server = match service {
            Service::ForgejoV1 => Some(CacheServer::start(Personality::Forgejo)),
            Service::GithubV1 | Service::GithubV2 => Some(CacheServer::start(Personality::Github)),
            Service::Local => None,
        };
        let machine = Machine::new();
        checkout(&machine);
        Rig { service, machine, server }
    }

    pub fn server(&self) -> &CacheServer {
        self.server.as_ref().expect("an HTTP service")
    }

    /// A new job pointed at this rig's service.
    pub fn job(&self) -> Job {
        let mut job = self.machine.job();
        if let (Some(server), Some(protocol)) = (&self.server, self.service.protocol()) {
            job.use_service(server, protocol);
        }
        if self.service == Service::ForgejoV1 {
            // As a Forgejo runner sets them for every job.
            job.set_env("FORGEJO_ACTIONS", "true").set_env("GITEA_ACTIONS", "true");
        }
        job.input("timeout", "60");
        job
    }

    pub fn nox_dir(&self) -> std::path::PathBuf {
        self.machine.workspace.join(".nox")
    }

    pub fn uv_dir(&self) -> std::path::PathBuf {
        self.machine.home.join(".cache/uv")
    }

    /// The requests of `route` the server saw so far.
    pub fn routed(&self, route: Route) -> Vec<LoggedRequest> {
        self.server().requests().into_iter().filter(|r| r.route == Some(route)).collect()
    }

    /// The `version` each request of `route` carried (v1 query or JSON body, v2 JSON body).
    pub fn versions(&self, route: Route) -> std::collections::BTreeSet<String> {
        self.routed(route)
            .iter()
            .filter_map(|r| {
                r.query
                    .split('&')
                    .find_map(|p| p.strip_prefix("version=").map(str::to_string))
                    .or_else(|| r.json.as_ref().and_then(|j| j["version"].as_str().map(str::to_string)))
            })
            .collect()
    }

    /// The headers every request must carry (or must not carry) on this service.
    pub fn check_requests(&self) {
        let Some(server) = &self.server else { return };
        let bearer = format!("Bearer {}", server.token());
        let log = server.requests();
        assert!(!log.is_empty(), "the server saw no request");
        for r in &log {
            let what = format!("{} {} {:?}", r.method, r.path, r.headers);
            assert!(r.route.is_some(), "a request the server does not know: {what}");
            let api = r.path.contains("/_apis/artifactcache/cache") || r.path.contains("/twirp/");
            let archive =
                r.path.contains("/_apis/artifactcache/artifacts/") || r.path.starts_with("/blobstore/");
            assert!(api != archive, "{what}");
            if api {
                assert_eq!(r.header("authorization"), Some(bearer.as_str()), "{what}");
            } else {
                assert_eq!(r.header("authorization"), None, "credentials sent to an archive URL: {what}");
            }
            if self.service.protocol() == Some(Protocol::V1) && api {
                assert_eq!(r.header("accept"), Some("application/json;api-version=6.0-preview.1"), "{what}");
            }
            if r.method == "PATCH" {
                let range = r.header("content-range").unwrap_or_else(|| panic!("no Content-Range: {what}"));
                let (start, end) = range
                    .strip_prefix("bytes ")
                    .and_then(|r| r.strip_suffix("/*"))
                    .and_then(|r| r.split_once('-'))
                    .unwrap_or_else(|| panic!("Content-Range `{range}`"));
                let (start, end): (usize, usize) = (start.parse().unwrap(), end.parse().unwrap());
                assert_eq!(end + 1 - start, r.body_len, "{what}");
            }
        }
    }
}

/// A project with lock files, a uv cache and a `.nox` of plain directories (no `pyvenv.cfg`,
/// so env validation leaves them alone); `tag` makes the cached contents distinguishable.
pub fn populate(machine: &Machine, tag: &str) {
    let ws = &machine.workspace;
    let uv = machine.home.join(".cache/uv");
    let _ = fs::remove_dir_all(&uv);
    fs::create_dir_all(uv.join("archive-v0/abc/pkg")).unwrap();
    fs::write(uv.join("archive-v0/abc/pkg/__init__.py"), format!("tag = {tag:?}\n")).unwrap();
    fs::create_dir_all(uv.join("wheels-v6")).unwrap();
    symlink("../archive-v0/abc", uv.join("wheels-v6/pkg")).unwrap();
    fs::write(uv.join("CACHEDIR.TAG"), "Signature: 8a477f597d28d172789f06886806bc55\n").unwrap();
    let nox = ws.join(".nox");
    let _ = fs::remove_dir_all(&nox);
    let bin = nox.join("tests/bin");
    fs::create_dir_all(&bin).unwrap();
    fs::write(bin.join("pytest"), format!("#!/bin/sh\necho {tag}\n")).unwrap();
    fs::set_permissions(bin.join("pytest"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(nox.join("tests/data.bin"), (0..=255u8).cycle().take(70_000).collect::<Vec<u8>>()).unwrap();
    fs::create_dir_all(nox.join("lint/empty")).unwrap();
}

/// The checked-out project: the key files.
pub fn checkout(machine: &Machine) {
    let ws = &machine.workspace;
    fs::write(ws.join("pyproject.toml"), "[project]\nname = \"demo\"\nversion = \"0.1.0\"\n").unwrap();
    fs::write(ws.join("uv.lock"), "version = 1\n").unwrap();
    fs::write(ws.join("noxfile.py"), "import nox\nnox.options.reuse_venv = 'yes'\n").unwrap();
}

/// A fresh job's starting point: the checkout, without `.nox` or the uv cache.
pub fn fresh_checkout(machine: &Machine) {
    let _ = fs::remove_dir_all(machine.workspace.join(".nox"));
    let _ = fs::remove_dir_all(machine.home.join(".cache/uv"));
}

/// Exit 0, no `::error::`, no `::warning::`.
pub fn assert_clean(step: &Step) {
    assert_eq!(step.code, 0, "{}", step.log());
    assert!(!step.stdout.contains("::error::"), "{}", step.log());
    assert!(!step.stdout.contains("::warning::"), "{}", step.log());
}

/// Runs a job that restores what it finds, then writes the trees of `tag` (as the job's own
/// work would) and saves them; returns their snapshots.
pub fn save_job(rig: &Rig, tag: &str) -> (Snapshot, Snapshot) {
    let mut job = rig.job();
    assert_clean(&job.main());
    populate(&rig.machine, tag);
    let before = (snapshot(&rig.uv_dir()), snapshot(&rig.nox_dir()));
    let post = job.post();
    assert_clean(&post);
    assert!(post.stdout.contains("uv: saved"), "{}", post.log());
    assert!(post.stdout.contains("nox: saved"), "{}", post.log());
    before
}

pub type Snapshot = std::collections::BTreeMap<String, String>;
