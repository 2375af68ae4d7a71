//! One scenario list, run through the action's own steps (`main` = restore, `post` = save)
//! against every cache service it speaks: v1 as Forgejo serves it (keys lower-cased, base URL
//! with a path), v1 as GHES serves it, v2 as github.com serves it, and the local store. Each
//! scenario checks what a workflow sees — outputs, restored trees — and, for the HTTP services,
//! what the server saw: the token on API calls only, the v1 `Accept` header, `Content-Range` on
//! every `PATCH`.

use std::fs;

use uv_nox_cache::key::version;

use crate::support::action::snapshot;
use crate::support::cache_server::Route;
use crate::support::rig::{Rig, Service, assert_clean, fresh_checkout, populate, save_job};

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
