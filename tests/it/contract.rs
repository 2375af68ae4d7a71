//! One scenario list, run through the action's own steps (`main` = restore, `post` = save)
//! against every cache service it speaks: v1 as Forgejo serves it (keys lower-cased, base URL
//! with a path), v1 as GHES serves it, v2 as github.com serves it, and the local store. Each
//! scenario checks what a workflow sees — outputs, restored trees — and, for the HTTP services,
//! what the server saw: the token on API calls only, the v1 `Accept` header, `Content-Range` on
//! every `PATCH`.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};

use uv_nox_cache::backend::version;

use crate::support::action::{Job, Machine, Protocol, Step, snapshot};
use crate::support::cache_server::{CacheServer, LoggedRequest, Personality, Route};

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
    fn refuses_duplicates(self) -> bool {
        matches!(self, Service::GithubV1 | Service::GithubV2)
    }
}

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

// ---- The scenarios ---------------------------------------------------------------------

fn miss(service: Service) {
    let rig = Rig::new(service);
    populate(&rig.machine, "a");
    fresh_checkout(&rig.machine);
    let main = rig.job().main();
    assert_clean(&main);
    main.assert_hits("false");
    assert_eq!(main.output("uv-matched-key"), "");
    assert_eq!(main.output("nox-matched-key"), "");
    assert!(!rig.nox_dir().exists() && !rig.uv_dir().exists());
    if rig.server.is_some() {
        assert!(rig.routed(Route::Download).is_empty());
        assert!(!rig.routed(Route::Lookup).is_empty());
    }
    rig.check_requests();
}

fn exact_hit_after_save(service: Service) {
    let rig = Rig::new(service);
    let (uv, nox) = save_job(&rig, "a");
    fresh_checkout(&rig.machine);
    let mut job = rig.job();
    let main = job.main();
    assert_clean(&main);
    main.assert_hits("true");
    for t in ["uv", "nox"] {
        let (key, matched) = (main.output(&format!("{t}-key")), main.output(&format!("{t}-matched-key")));
        assert!(key.eq_ignore_ascii_case(matched), "{key} vs {matched}");
    }
    assert_eq!(snapshot(&rig.uv_dir()), uv);
    assert_eq!(snapshot(&rig.nox_dir()), nox);
    let post = job.post();
    assert_clean(&post);
    assert!(post.stdout.contains("not saving"), "{}", post.log());
    if rig.server.is_some() {
        // The versions actions/cache computes for `path: ~/.cache/uv` and `path: .nox`
        // (docs/protocol.md §2.2).
        let uv_version = "5ba428ba583e06456281373eb4d3b9dcfffa872e0ab7793092420651d9c0bf1c";
        let saved: Vec<String> = vec![uv_version.into(), version(".nox", "zstd-without-long")];
        assert_eq!(rig.versions(Route::Reserve), saved.into_iter().collect());
        assert_eq!(rig.routed(Route::Reserve).len(), 2, "only the first job saved");
        assert!(!rig.routed(Route::Upload).is_empty());
        assert!(rig.routed(Route::Download).len() >= 2);
    }
    rig.check_requests();
}

fn restore_key_hit(service: Service) {
    let rig = Rig::new(service);
    let (uv, _) = save_job(&rig, "a");
    fresh_checkout(&rig.machine);
    fs::write(rig.machine.workspace.join("uv.lock"), "version = 2\n").unwrap();
    let main = rig.job().main();
    assert_clean(&main);
    assert_eq!(main.output("uv-cache-hit"), "false");
    assert_eq!(main.output("uv-restored"), "true", "{}", main.log());
    let (key, matched) = (main.output("uv-key"), main.output("uv-matched-key"));
    assert!(!matched.is_empty() && !key.eq_ignore_ascii_case(matched), "{key} vs {matched}");
    assert!(main.stdout.contains("`hash` component differs"), "{}", main.log());
    assert_eq!(snapshot(&rig.uv_dir()), uv);
    assert_eq!(main.output("nox-restored"), "false", "nox restores exact keys only");
    assert_eq!(main.output("nox-matched-key"), "");
    assert_eq!(main.output("cache-hit"), "false");
    assert!(!rig.nox_dir().exists());
    rig.check_requests();
}

fn newest_prefix_match_wins(service: Service) {
    let rig = Rig::new(service);
    let mut uv = Vec::new();
    for (i, tag) in ["old", "new"].iter().enumerate() {
        fs::write(rig.machine.workspace.join("uv.lock"), format!("version = {i}\n")).unwrap();
        uv.push(save_job(&rig, tag).0);
    }
    assert_ne!(uv[0], uv[1]);
    fresh_checkout(&rig.machine);
    fs::write(rig.machine.workspace.join("uv.lock"), "version = 99\n").unwrap();
    let main = rig.job().main();
    assert_clean(&main);
    assert_eq!(main.output("uv-restored"), "true", "{}", main.log());
    assert_eq!(main.output("uv-cache-hit"), "false");
    assert_eq!(snapshot(&rig.uv_dir()), uv[1], "the newest of the prefix matches");
    rig.check_requests();
}

fn version_mismatch_is_a_miss(service: Service) {
    let rig = Rig::new(service);
    populate(&rig.machine, "a");
    let mut first = rig.job();
    first.input("targets", "uv");
    let key = first.keys()["uv"].clone();
    assert_clean(&first.main());
    assert_clean(&first.post());
    fresh_checkout(&rig.machine);
    // The same key, but another path string (`~/uv-elsewhere`): another version, as
    // actions/cache would compute it, so the entry is not this job's.
    let mut job = rig.job();
    job.input("targets", "uv").input("uv-cache-dir", "~/uv-elsewhere");
    assert_eq!(job.keys()["uv"], key, "only the version differs");
    let main = job.main();
    assert_clean(&main);
    assert_eq!(main.output("uv-matched-key"), "", "{}", main.log());
    assert_eq!(main.output("uv-restored"), "false");
    assert_eq!(main.output("cache-hit"), "false");
    if rig.server.is_some() {
        let versions = rig.versions(Route::Lookup);
        assert!(versions.contains(&version("~/uv-elsewhere", "zstd-without-long")), "{versions:?}");
    }
    rig.check_requests();
}

fn other_nox_envdir_is_a_miss(service: Service) {
    let rig = Rig::new(service);
    save_job(&rig, "a");
    fresh_checkout(&rig.machine);
    fs::create_dir_all(rig.machine.workspace.join("envs")).unwrap();
    let mut job = rig.job();
    job.input("targets", "nox").input("nox-envdir", "envs");
    let main = job.main();
    assert_clean(&main);
    assert_eq!(main.output("nox-matched-key"), "", "{}", main.log());
    assert_eq!(main.output("nox-restored"), "false");
    assert_eq!(main.output("cache-hit"), "false");
    if rig.server.is_some() {
        let versions = rig.versions(Route::Lookup);
        assert!(versions.contains(&version("envs", "zstd-without-long")), "{versions:?}");
    }
    rig.check_requests();
}

fn lookup_only(service: Service) {
    let rig = Rig::new(service);
    save_job(&rig, "a");
    fresh_checkout(&rig.machine);
    if let Some(server) = &rig.server {
        server.clear_requests();
    }
    let mut job = rig.job();
    job.input("lookup-only", "true");
    let main = job.main();
    assert_clean(&main);
    assert_eq!(main.output("cache-hit"), "true", "{}", main.log());
    assert_eq!(main.output("nox-restored"), "false");
    assert_eq!(main.output("uv-restored"), "false");
    assert!(main.output("nox-key").eq_ignore_ascii_case(main.output("nox-matched-key")));
    assert!(!rig.nox_dir().exists() && !rig.uv_dir().exists());
    if rig.server.is_some() {
        assert!(rig.routed(Route::Download).is_empty(), "lookup-only downloads nothing");
    }
    rig.check_requests();
}

fn fail_on_cache_miss(service: Service) {
    let rig = Rig::new(service);
    populate(&rig.machine, "a");
    let mut job = rig.job();
    job.input("fail-on-cache-miss", "true");
    let main = job.main();
    assert_eq!(main.code, 1, "{}", main.log());
    assert!(main.stdout.contains("::error::no cache entry found"), "{}", main.log());
    assert_eq!(main.output("cache-hit"), "false");
    assert_clean(&job.post());
    fresh_checkout(&rig.machine);
    let mut job = rig.job();
    job.input("fail-on-cache-miss", "true");
    let main = job.main();
    assert_clean(&main);
    assert_eq!(main.output("cache-hit"), "true");
    rig.check_requests();
}

fn duplicate_save(service: Service) {
    let rig = Rig::new(service);
    populate(&rig.machine, "first");
    let (mut a, mut b) = (rig.job(), rig.job());
    assert_clean(&a.main());
    assert_clean(&b.main());
    let first = (snapshot(&rig.uv_dir()), snapshot(&rig.nox_dir()));
    assert_clean(&a.post());
    populate(&rig.machine, "second");
    let second = (snapshot(&rig.uv_dir()), snapshot(&rig.nox_dir()));
    let post = b.post();
    assert_eq!(post.code, 0, "{}", post.log());
    assert!(!post.stdout.contains("::error::") && !post.stdout.contains("::warning::"), "{}", post.log());
    if service.refuses_duplicates() {
        for t in ["uv", "nox"] {
            assert!(
                post.stdout.lines().any(|l| l.starts_with(&format!("::notice::{t}: another job saved"))),
                "{}",
                post.log()
            );
        }
    } else {
        assert!(post.stdout.contains("uv: saved") && post.stdout.contains("nox: saved"), "{}", post.log());
    }
    fresh_checkout(&rig.machine);
    let main = rig.job().main();
    assert_clean(&main);
    assert_eq!(main.output("cache-hit"), "true");
    let restored = (snapshot(&rig.uv_dir()), snapshot(&rig.nox_dir()));
    if service.refuses_duplicates() {
        assert_eq!(restored, first, "the first save stands");
    } else {
        assert_eq!(restored, second, "the newest save wins");
    }
    rig.check_requests();
}

fn case_insensitive_key(service: Service) {
    let rig = Rig::new(service);
    save_job(&rig, "a");
    fresh_checkout(&rig.machine);
    let mut job = rig.job();
    let main = job.main();
    assert_clean(&main);
    for t in ["uv", "nox"] {
        let key = main.output(&format!("{t}-key"));
        let matched = main.output(&format!("{t}-matched-key"));
        assert_ne!(key, key.to_lowercase(), "the key has upper-case letters (`Linux`, `X64`)");
        if service == Service::ForgejoV1 {
            assert_eq!(matched, key.to_lowercase(), "Forgejo answers with the lower-cased key");
        } else {
            assert_eq!(matched, key);
        }
        assert_eq!(main.output(&format!("{t}-cache-hit")), "true", "{}", main.log());
    }
    assert_eq!(main.output("cache-hit"), "true");
    let post = job.post();
    assert_clean(&post);
    assert!(post.stdout.contains("not saving"), "an exact hit is not saved again: {}", post.log());
    if rig.server.is_some() {
        assert_eq!(rig.routed(Route::Reserve).len(), 2);
    }
    rig.check_requests();
}

/// One `#[test]` per scenario and service: `contract::<service>::<scenario>`.
macro_rules! contract {
    ($($scenario:ident),* $(,)?) => {
        mod forgejo_v1 { $( #[test] fn $scenario() { super::$scenario(super::Service::ForgejoV1) } )* }
        mod github_v1 { $( #[test] fn $scenario() { super::$scenario(super::Service::GithubV1) } )* }
        mod github_v2 { $( #[test] fn $scenario() { super::$scenario(super::Service::GithubV2) } )* }
        mod local { $( #[test] fn $scenario() { super::$scenario(super::Service::Local) } )* }
    };
}

contract!(
    miss,
    exact_hit_after_save,
    restore_key_hit,
    newest_prefix_match_wins,
    version_mismatch_is_a_miss,
    other_nox_envdir_is_a_miss,
    lookup_only,
    fail_on_cache_miss,
    duplicate_save,
    case_insensitive_key,
);
