//! The v1 and v2 backends against the local cache server in both personalities, its faults,
//! and — to prove the server faithful — against the official `@actions/cache` 6.3.0 client.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use uv_nox_cache::backend::artifact_cache::{ArtifactCacheBackend, Reservation};
use uv_nox_cache::backend::github::GithubBackend;
use uv_nox_cache::backend::transfer::SignedUrl;
use uv_nox_cache::backend::{self, Backend, BackendError, CacheMode, Hit, Locator, Saved, Secret, Tuning};

use crate::support::action::Protocol;
use crate::support::cache_server::{CacheServer, Fault, LoggedRequest, Personality, Route};
use crate::support::official::{Endpoint, Official, Site};

const CELLS: [(Personality, Protocol); 5] = [
    (Personality::Github, Protocol::V1),
    (Personality::Github, Protocol::V2),
    (Personality::Forgejo, Protocol::V1),
    (Personality::Forgejo, Protocol::V2),
    (Personality::Gitea, Protocol::V1),
];

/// Small chunks and short delays, so multi-chunk paths and retries run in milliseconds.
fn fast() -> Tuning {
    Tuning {
        upload_chunk: 1000,
        block_size: 1000,
        single_put_max: 2500,
        download_block: 1024,
        parallelism: 3,
        attempts: 4,
        retry_delay: Duration::from_millis(50),
        idle_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        ..Tuning::default()
    }
}

fn client(server: &CacheServer, proto: Protocol, deadline: Duration) -> Box<dyn Backend> {
    client_tuned(server, proto, deadline, fast())
}

fn client_tuned(
    server: &CacheServer,
    proto: Protocol,
    deadline: Duration,
    tuning: Tuning,
) -> Box<dyn Backend> {
    let token = Secret(server.token().to_string());
    let deadline = Instant::now() + deadline;
    match proto {
        Protocol::V1 => Box::new(ArtifactCacheBackend::new(
            &server.base_url_v1(),
            token,
            Reservation::SizeFirst,
            deadline,
            tuning,
        )),
        Protocol::V2 => Box::new(GithubBackend::new(&server.results_url(), token, deadline, tuning)),
    }
}

fn backend_for(server: &CacheServer, proto: Protocol) -> Box<dyn Backend> {
    client(server, proto, Duration::from_secs(30))
}

const VERSION: &str = "5ba428ba583e06456281373eb4d3b9dcfffa872e0ab7793092420651d9c0bf1c";
const OTHER_VERSION: &str = "5f6af6f65db26419d2aba9c43e2a283e0477e96793460dcb7f003598df130e92";

fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

fn archive_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    path
}

fn keys(list: &[&str]) -> Vec<String> {
    list.iter().map(|k| k.to_string()).collect()
}

fn fetch(backend: &dyn Backend, hit: &Hit) -> Vec<u8> {
    let mut bytes = Vec::new();
    backend.download(hit).expect("download").read_to_end(&mut bytes).expect("read the download");
    bytes
}

fn save(backend: &dyn Backend, key: &str, version: &str, bytes: &[u8]) -> Saved {
    let dir = tempfile::tempdir().unwrap();
    backend.save_file(key, version, &archive_file(dir.path(), "cache.tzst", bytes)).expect("save")
}

fn routed(server: &CacheServer, route: Route) -> Vec<LoggedRequest> {
    server.requests().into_iter().filter(|r| r.route == Some(route)).collect()
}

#[test]
fn miss_exact_hit_and_restore_key_hit() {
    for (personality, proto) in CELLS {
        let server = CacheServer::start(personality);
        let backend = backend_for(&server, proto);
        let cell = format!("{personality:?}/{proto:?}");
        assert!(backend.lookup(&keys(&["uv-linux-abc"]), VERSION).unwrap().is_none(), "{cell}: empty store");

        let bytes = payload(1800, 1);
        assert_eq!(save(&*backend, "uv-linux-abc", VERSION, &bytes), Saved::Stored, "{cell}");

        let hit = backend.lookup(&keys(&["uv-linux-abc", "uv-linux-"]), VERSION).unwrap().expect("exact hit");
        assert_eq!(hit.key, "uv-linux-abc", "{cell}");
        assert_eq!(fetch(&*backend, &hit), bytes, "{cell}");

        let hit =
            backend.lookup(&keys(&["uv-linux-zzz", "uv-linux-"]), VERSION).unwrap().expect("restore-key hit");
        assert_eq!(hit.key, "uv-linux-abc", "{cell}");
        assert_eq!(fetch(&*backend, &hit), bytes, "{cell}");

        // The primary key itself is prefix-matched too.
        let hit = backend.lookup(&keys(&["uv-linux"]), VERSION).unwrap().expect("primary prefix hit");
        assert_eq!(hit.key, "uv-linux-abc", "{cell}");

        assert!(
            backend.lookup(&keys(&["uv-linux-abc"]), OTHER_VERSION).unwrap().is_none(),
            "{cell}: version"
        );
        assert!(backend.lookup(&keys(&["nox-", "other-"]), VERSION).unwrap().is_none(), "{cell}: no prefix");
    }
}

#[test]
fn newest_prefix_match_wins() {
    for (personality, proto) in CELLS {
        let server = CacheServer::start(personality);
        let backend = backend_for(&server, proto);
        save(&*backend, "nox-1", VERSION, &payload(100, 1));
        save(&*backend, "nox-2", VERSION, &payload(100, 2));
        save(&*backend, "nox-0", OTHER_VERSION, &payload(100, 3));
        let hit = backend.lookup(&keys(&["nox-9", "nox-"]), VERSION).unwrap().expect("hit");
        assert_eq!(hit.key, "nox-2", "{personality:?}/{proto:?}");
        assert_eq!(fetch(&*backend, &hit), payload(100, 2));
        // Restore keys are tried in order: the first one that matches wins, not the newest overall.
        let hit = backend.lookup(&keys(&["x", "nox-1", "nox-"]), VERSION).unwrap().expect("hit");
        assert_eq!(hit.key, "nox-1", "{personality:?}/{proto:?}");
    }
}

#[test]
fn duplicate_saves_follow_the_personality() {
    for (personality, proto) in CELLS {
        let server = CacheServer::start(personality);
        let backend = backend_for(&server, proto);
        let cell = format!("{personality:?}/{proto:?}");
        assert_eq!(save(&*backend, "dup", VERSION, &payload(300, 1)), Saved::Stored, "{cell}");
        let second = save(&*backend, "dup", VERSION, &payload(300, 2));
        let hit = backend.lookup(&keys(&["dup"]), VERSION).unwrap().unwrap();
        match personality {
            Personality::Github => {
                let Saved::AlreadyExists(message) = second else { panic!("{cell}: {second:?}") };
                assert!(message.to_lowercase().contains("already exists"), "{cell}: {message}");
                assert_eq!(fetch(&*backend, &hit), payload(300, 1), "{cell}: the first save stays");
            }
            Personality::Forgejo | Personality::Gitea => {
                assert_eq!(second, Saved::Stored, "{cell}");
                assert_eq!(fetch(&*backend, &hit), payload(300, 2), "{cell}: newest wins");
            }
        }
        // Saving under another version is a different entry everywhere.
        assert_eq!(save(&*backend, "dup", OTHER_VERSION, &payload(10, 3)), Saved::Stored, "{cell}");
    }
}

#[test]
fn key_case_follows_the_personality() {
    for (personality, proto) in CELLS {
        let server = CacheServer::start(personality);
        let backend = backend_for(&server, proto);
        let cell = format!("{personality:?}/{proto:?}");
        save(&*backend, "UV-Linux-Key", VERSION, &payload(50, 1));
        let lower = backend.lookup(&keys(&["uv-linux-key"]), VERSION).unwrap();
        let exact = backend.lookup(&keys(&["UV-Linux-Key"]), VERSION).unwrap().expect("exact case hit");
        match personality {
            Personality::Github => {
                assert!(lower.is_none(), "{cell}: GitHub keeps case");
                assert_eq!(exact.key, "UV-Linux-Key");
            }
            Personality::Forgejo | Personality::Gitea => {
                assert_eq!(lower.expect("case-insensitive hit").key, "uv-linux-key", "{cell}");
                assert_eq!(exact.key, "uv-linux-key", "{cell}: stored lower-cased");
            }
        }
    }
}

#[test]
fn v1_uploads_equal_chunks_with_the_required_headers() {
    let server = CacheServer::start(Personality::Forgejo);
    let backend = backend_for(&server, Protocol::V1);
    let bytes = payload(3500, 7);
    assert_eq!(save(&*backend, "chunks", VERSION, &bytes), Saved::Stored);
    let hit = backend.lookup(&keys(&["chunks"]), VERSION).unwrap().unwrap();
    assert_eq!(fetch(&*backend, &hit), bytes);

    let mut ranges: Vec<String> = routed(&server, Route::Upload)
        .iter()
        .map(|r| r.header("content-range").unwrap().to_string())
        .collect();
    ranges.sort();
    assert_eq!(ranges, ["bytes 0-999/*", "bytes 1000-1999/*", "bytes 2000-2999/*", "bytes 3000-3499/*"]);

    let base_path = server.base_url_v1().splitn(4, '/').nth(3).map(|p| format!("/{p}")).unwrap();
    for request in server.requests() {
        assert!(!request.path.contains("//"), "{}", request.path);
        if request.route == Some(Route::Download) {
            assert_eq!(request.header("authorization"), None, "the archive URL gets no token");
            continue;
        }
        assert!(request.path.starts_with(&format!("{base_path}_apis/artifactcache/")), "{}", request.path);
        assert_eq!(request.header("authorization"), Some(format!("Bearer {}", server.token()).as_str()));
        assert_eq!(request.header("accept"), Some("application/json;api-version=6.0-preview.1"));
        if request.route == Some(Route::Upload) {
            assert_eq!(request.header("content-type"), Some("application/octet-stream"));
            assert_eq!(request.header("content-length").unwrap().parse::<usize>().unwrap(), request.body_len);
        }
    }
    let reserve = &routed(&server, Route::Reserve)[0];
    assert_eq!(reserve.header("content-type"), Some("application/json"));
    let lookup = &routed(&server, Route::Lookup)[0];
    assert!(lookup.query.contains(&format!("version={VERSION}")), "{}", lookup.query);
}

#[test]
fn v1_keys_are_comma_joined_and_encoded() {
    let server = CacheServer::start(Personality::Github);
    let backend = backend_for(&server, Protocol::V1);
    backend.lookup(&keys(&["a b", "c/d"]), VERSION).unwrap();
    let lookup = &routed(&server, Route::Lookup)[0];
    assert!(lookup.query.starts_with("keys=a%20b%2Cc%2Fd&"), "{}", lookup.query);
}

#[test]
fn v2_uploads_blocks_and_a_block_list() {
    let server = CacheServer::start(Personality::Github);
    let backend = backend_for(&server, Protocol::V2);
    let bytes = payload(3500, 9);
    assert_eq!(save(&*backend, "blocks", VERSION, &bytes), Saved::Stored);
    let hit = backend.lookup(&keys(&["blocks"]), VERSION).unwrap().unwrap();
    assert_eq!(fetch(&*backend, &hit), bytes);

    let puts = routed(&server, Route::Upload);
    let blocks: Vec<_> = puts.iter().filter(|r| r.query.contains("comp=block&")).collect();
    assert_eq!(blocks.len(), 4);
    assert!(blocks.iter().all(|b| b.body_len == 1000 || b.body_len == 500));
    let lists: Vec<_> = puts.iter().filter(|r| r.query.contains("comp=blocklist")).collect();
    assert_eq!(lists.len(), 1);
    for put in &puts {
        assert_eq!(put.header("authorization"), None);
        assert!(put.header("x-ms-version").is_some());
    }
    for block in blocks {
        // URL-encoded base64 of 48 bytes: 64 characters, `=`/`+`/`/` escaped.
        let id = block.query.split("blockid=").nth(1).unwrap();
        assert!(!id.contains(['+', '/', '=']), "{id}");
        assert_eq!(block.header("content-length").unwrap(), block.body_len.to_string());
    }
    let finalize = routed(&server, Route::Commit);
    assert_eq!(finalize.len(), 1);
}

#[test]
fn v2_small_archives_go_in_one_put_blob() {
    let server = CacheServer::start(Personality::Github);
    let backend = backend_for(&server, Protocol::V2);
    save(&*backend, "single", VERSION, &payload(2000, 1));
    let puts = routed(&server, Route::Upload);
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0].header("x-ms-blob-type"), Some("BlockBlob"));
    assert_eq!(puts[0].header("content-length"), Some("2000"));
    assert_eq!(puts[0].header("transfer-encoding"), None);
    for twirp in server.requests().iter().filter(|r| r.path.starts_with("/twirp/")) {
        assert_eq!(twirp.header("authorization"), Some(format!("Bearer {}", server.token()).as_str()));
        assert_eq!(twirp.header("content-type"), Some("application/json"));
    }
    // The results URL's path is discarded, as the toolkit does.
    assert!(server.requests().iter().all(|r| !r.path.starts_with("/results-receiver")));
}

#[test]
fn v2_refuses_to_upload_an_empty_archive() {
    let server = CacheServer::start(Personality::Github);
    let backend = backend_for(&server, Protocol::V2);
    let dir = tempfile::tempdir().unwrap();
    let error = backend.save_file("empty", VERSION, &archive_file(dir.path(), "e", b"")).unwrap_err();
    assert!(matches!(error, BackendError::Rejected { .. }), "{error:?}");
    assert!(server.requests().is_empty());
}

#[test]
fn ranged_parallel_download_and_range_ignoring_host() {
    let server = CacheServer::start(Personality::Github);
    let backend = backend_for(&server, Protocol::V2);
    let bytes = payload(5000, 4);
    save(&*backend, "ranged", VERSION, &bytes);
    let hit = backend.lookup(&keys(&["ranged"]), VERSION).unwrap().unwrap();

    server.clear_requests();
    assert_eq!(fetch(&*backend, &hit), bytes);
    let gets = routed(&server, Route::Download);
    assert_eq!(gets.len(), 5, "1 KiB ranges of a 5000-byte blob");
    let mut ranges: Vec<_> = gets.iter().map(|g| g.header("range").unwrap().to_string()).collect();
    ranges.sort();
    assert_eq!(ranges[0], "bytes=0-1023");
    assert!(ranges.contains(&"bytes=4096-4999".to_string()));
    assert!(gets.iter().all(|g| g.header("authorization").is_none()));

    server.clear_requests();
    server.set_ignore_range(true);
    assert_eq!(fetch(&*backend, &hit), bytes);
    assert_eq!(routed(&server, Route::Download).len(), 1, "one streaming GET");

    // The v1 archive host too: ranges where it serves them, one GET where it does not.
    let v1 = backend_for(&server, Protocol::V1);
    save(&*v1, "ranged-v1", VERSION, &bytes);
    let hit = v1.lookup(&keys(&["ranged-v1"]), VERSION).unwrap().unwrap();
    server.clear_requests();
    assert_eq!(fetch(&*v1, &hit), bytes);
    assert_eq!(routed(&server, Route::Download).len(), 1, "one streaming GET");
    server.set_ignore_range(false);
    server.clear_requests();
    assert_eq!(fetch(&*v1, &hit), bytes);
    let gets = routed(&server, Route::Download);
    assert_eq!(gets.len(), 5, "1 KiB ranges of a 5000-byte archive");
    assert!(gets.iter().all(|g| g.header("range").is_some() && g.header("authorization").is_none()));
}

#[test]
fn server_errors_are_retried() {
    for proto in [Protocol::V1, Protocol::V2] {
        let server = CacheServer::start(Personality::Github);
        let backend = backend_for(&server, proto);
        save(&*backend, "k", VERSION, &payload(1500, 1));
        server.clear_requests();
        server.inject(Fault::server_errors(Route::Lookup, 2));
        server.inject(Fault::server_errors(Route::Download, 1));
        let hit = backend.lookup(&keys(&["k"]), VERSION).unwrap().expect("hit after two 503s");
        assert_eq!(routed(&server, Route::Lookup).len(), 3, "{proto:?}");
        assert_eq!(fetch(&*backend, &hit), payload(1500, 1));

        server.inject(Fault::server_errors(Route::Upload, 1));
        server.inject(Fault::server_errors(Route::Commit, 1));
        assert_eq!(save(&*backend, "k2", VERSION, &payload(1500, 2)), Saved::Stored, "{proto:?}");
    }
}

#[test]
fn persistent_server_errors_give_up_with_the_status() {
    for proto in [Protocol::V1, Protocol::V2] {
        let server = CacheServer::start(Personality::Github);
        let backend = client(&server, proto, Duration::from_secs(10));
        server.inject(Fault::persistent_server_error(Route::Any));
        let started = Instant::now();
        let error = backend.lookup(&keys(&["k"]), VERSION).unwrap_err();
        assert!(matches!(error, BackendError::Status { status: 500, .. }), "{proto:?}: {error:?}");
        // Three 50 ms backoffs; the toolkit's would take 3 + 4.5 + 6.75 s.
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_secs(10), "{proto:?}: {elapsed:?}, past the 10 s limit");
        assert_eq!(routed(&server, Route::Lookup).len(), 4, "{proto:?}: tuning.attempts");
    }
}

#[test]
fn retries_stop_at_the_deadline() {
    let server = CacheServer::start(Personality::Github);
    // A retry delay far past the deadline: the client gives up at once instead of sleeping.
    let mut tuning = fast();
    tuning.retry_delay = Duration::from_secs(600);
    let left = Duration::from_secs(30);
    let backend = client_tuned(&server, Protocol::V2, left, tuning);
    server.inject(Fault::persistent_server_error(Route::Lookup));
    let started = Instant::now();
    assert!(backend.lookup(&keys(&["k"]), VERSION).is_err());
    let elapsed = started.elapsed();
    assert!(elapsed < left, "slept toward the 600 s retry delay: {elapsed:?}, past the {left:?} deadline");
    assert_eq!(routed(&server, Route::Lookup).len(), 1);
}

#[test]
fn rate_limits_honour_retry_after_within_the_deadline() {
    for proto in [Protocol::V1, Protocol::V2] {
        let server = CacheServer::start(Personality::Github);
        let backend = client(&server, proto, Duration::from_secs(10));
        server.inject(Fault::RateLimit { route: Route::Lookup, retry_after_secs: 1, times: 1 });
        let started = Instant::now();
        assert!(backend.lookup(&keys(&["k"]), VERSION).unwrap().is_none());
        assert!(started.elapsed() >= Duration::from_secs(1), "{proto:?}: waited for Retry-After");

        let left = Duration::from_secs(30);
        let backend = client(&server, proto, left);
        server.inject(Fault::RateLimit { route: Route::Any, retry_after_secs: 600, times: usize::MAX });
        let started = Instant::now();
        let error = backend.lookup(&keys(&["k"]), VERSION).unwrap_err();
        assert!(matches!(error, BackendError::RateLimited { .. }), "{proto:?}: {error:?}");
        assert!(error.to_string().contains("600 s"), "{error}");
        let elapsed = started.elapsed();
        assert!(
            elapsed < left,
            "{proto:?}: waited toward Retry-After 600 s: {elapsed:?}, past the {left:?} deadline"
        );
    }
}

/// A `503` with `Retry-After`, and a `429` that only gives `x-ratelimit-reset`, are waited out
/// as long as the deadline allows; past it the backend gives up at once with the service's word.
#[test]
fn unavailable_and_reset_headers_are_waited_out_within_the_deadline() {
    for proto in [Protocol::V1, Protocol::V2] {
        for fault in [
            Fault::Unavailable { route: Route::Lookup, retry_after_secs: 1, times: 1 },
            Fault::RateLimitReset { route: Route::Lookup, reset_in_secs: 2, times: 1 },
        ] {
            let server = CacheServer::start(Personality::Github);
            let backend = client(&server, proto, Duration::from_secs(30));
            server.inject(fault.clone());
            let started = Instant::now();
            assert!(backend.lookup(&keys(&["k"]), VERSION).unwrap().is_none(), "{proto:?} {fault:?}");
            // The reset time is whole seconds from now, so at least one of them passes.
            assert!(started.elapsed() >= Duration::from_millis(900), "{proto:?} {fault:?}: did not wait");
            assert_eq!(routed(&server, Route::Lookup).len(), 2, "{proto:?} {fault:?}");
        }
        let server = CacheServer::start(Personality::Github);
        // A client that slept until its 10 s deadline would be as wrong as one that slept 120 s.
        let backend = client(&server, proto, Duration::from_secs(10));
        server.inject(Fault::Unavailable { route: Route::Any, retry_after_secs: 120, times: usize::MAX });
        let started = Instant::now();
        let error = backend.lookup(&keys(&["k"]), VERSION).unwrap_err();
        assert!(error.to_string().contains("503"), "{proto:?}: {error}");
        let elapsed = started.elapsed();
        assert!(
            elapsed < Duration::from_secs(9),
            "{proto:?}: waited {elapsed:?} with 10 s left for a 120 s Retry-After"
        );
    }
}

#[test]
fn a_stalled_download_ends_at_the_deadline() {
    for proto in [Protocol::V1, Protocol::V2] {
        let server = CacheServer::start(Personality::Forgejo);
        save(&*backend_for(&server, proto), "k", VERSION, &payload(3000, 1));
        // The deadline, not the (here much longer) idle timeout, ends the stalled read.
        let mut tuning = fast();
        tuning.idle_timeout = Duration::from_secs(600);
        let backend = client_tuned(&server, proto, Duration::from_secs(2), tuning);
        let hit = backend.lookup(&keys(&["k"]), VERSION).unwrap().unwrap();
        server.inject(Fault::Stall { route: Route::Download, times: usize::MAX });
        let started = Instant::now();
        let result = backend.download(&hit).and_then(|mut r| {
            let mut sink = Vec::new();
            r.read_to_end(&mut sink).map_err(|e| BackendError::Io { op: "read", path: "-".into(), source: e })
        });
        assert!(result.is_err(), "{proto:?}");
        let elapsed = started.elapsed();
        let limit = Duration::from_secs(60);
        assert!(elapsed < limit, "{proto:?}: {elapsed:?}, past {limit:?} (deadline 2 s, idle timeout 600 s)");
    }
}

#[test]
fn a_truncated_download_is_an_error() {
    for proto in [Protocol::V1, Protocol::V2] {
        let server = CacheServer::start(Personality::Forgejo);
        let backend = backend_for(&server, proto);
        save(&*backend, "k", VERSION, &payload(3000, 1));
        let hit = backend.lookup(&keys(&["k"]), VERSION).unwrap().unwrap();
        server.inject(Fault::Truncate { route: Route::Download, times: usize::MAX });
        let result = backend.download(&hit).map(|mut r| r.read_to_end(&mut Vec::new()));
        assert!(!matches!(result, Ok(Ok(_))), "{proto:?}: truncation went unnoticed");
    }
}

#[test]
fn ranged_downloads_retry_broken_ranges_and_report_refused_ones() {
    let server = CacheServer::start(Personality::Github);
    let backend = backend_for(&server, Protocol::V2);
    let bytes = payload(5000, 6);
    save(&*backend, "k", VERSION, &bytes);
    let hit = backend.lookup(&keys(&["k"]), VERSION).unwrap().unwrap();

    // A broken first range and a broken later range are fetched again.
    server.inject(Fault::Truncate { route: Route::Download, times: 1 });
    assert_eq!(fetch(&*backend, &hit), bytes);
    server.clear_requests();
    server.inject(Fault::Later {
        skip: 2,
        fault: Box::new(Fault::Truncate { route: Route::Download, times: 1 }),
    });
    assert_eq!(fetch(&*backend, &hit), bytes);
    assert_eq!(routed(&server, Route::Download).len(), 6, "five ranges, one of them twice");

    // A URL that expires after the first range fails the read with an io::Error.
    server.clear_faults();
    let expire = Fault::Status { route: Route::Download, status: 403, times: usize::MAX };
    server.inject(Fault::Later { skip: 1, fault: Box::new(expire) });
    let started = Instant::now();
    let mut reader = backend.download(&hit).expect("the first range works");
    let error = reader.read_to_end(&mut Vec::new()).unwrap_err();
    assert!(error.to_string().contains("expired"), "{error}");
    assert!(!error.to_string().contains("sig="), "{error}");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}, past the 10 s limit");
}

fn answer(route: Route, status: u16, body: &str) -> Fault {
    Fault::Answer { route, status, body: body.to_string(), times: 1 }
}

/// The runners' own servers never refuse a taken key (they store the newest): a 403 on
/// reserve or commit is the runner's MAC or write-isolation check, and any other refusal is
/// trouble too. Each is a warning naming the status and the likely cause, not "saved first".
#[test]
fn v1_refusals_other_than_taken_or_too_big_name_the_status_and_the_likely_cause() {
    let dir = tempfile::tempdir().unwrap();
    let archive = archive_file(dir.path(), "a", &payload(100, 1));
    let server = CacheServer::start(Personality::Forgejo);
    let v1 = backend_for(&server, Protocol::V1);
    for route in [Route::Reserve, Route::Commit] {
        server.inject(answer(route, 403, r#"{"error":"validation error"}"#));
        let error = v1.save_file("k", VERSION, &archive).unwrap_err();
        assert!(matches!(error, BackendError::Refused { status: 403, .. }), "{route:?}: {error:?}");
        let text = error.to_string();
        for part in ["403", "validation error", "cache secret", "write-isolation key"] {
            assert!(text.contains(part), "{route:?}: no `{part}` in: {text}");
        }
    }
    server.inject(answer(Route::Reserve, 404, r#"{"error":"no such route"}"#));
    let error = v1.save_file("k", VERSION, &archive).unwrap_err();
    assert!(matches!(error, BackendError::Refused { status: 404, .. }), "{error:?}");
    assert!(error.to_string().contains("404"), "{error}");
}

#[test]
fn service_answers_map_to_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let archive = archive_file(dir.path(), "a", &payload(100, 1));

    let server = CacheServer::start(Personality::Github);
    let v1 = backend_for(&server, Protocol::V1);
    server.inject(answer(Route::Lookup, 403, r#"{"message":"cache read denied: no read scope"}"#));
    let error = v1.lookup(&keys(&["k"]), VERSION).unwrap_err();
    assert!(matches!(error, BackendError::Denied { .. }), "{error:?}");
    server.inject(answer(Route::Reserve, 400, "\u{feff}{\"message\":\"over the data cap\"}"));
    let error = v1.save_file("k", VERSION, &archive).unwrap_err();
    assert!(
        matches!(&error, BackendError::TooBig { size: 100, message, .. } if message == "over the data cap"),
        "{error:?}"
    );
    server.inject(answer(Route::Reserve, 403, r#"{"message":"cache write denied: read-only token"}"#));
    assert!(matches!(v1.save_file("k", VERSION, &archive), Err(BackendError::Denied { .. })));
    server.inject(answer(Route::Reserve, 200, r#"{}"#));
    assert!(matches!(v1.save_file("k", VERSION, &archive), Ok(Saved::AlreadyExists(_))));
    server.inject(answer(Route::Lookup, 200, r#"{"cacheKey":"k"}"#));
    assert!(
        matches!(v1.lookup(&keys(&["k"]), VERSION), Err(BackendError::Decode { .. })),
        "hit without archiveLocation"
    );

    let v2 = backend_for(&server, Protocol::V2);
    server.inject(answer(
        Route::Reserve,
        200,
        r#"{"ok":false,"message":"cache write denied: token has no writable scopes"}"#,
    ));
    assert!(matches!(v2.save_file("k", VERSION, &archive), Err(BackendError::Denied { .. })));
    server.inject(answer(Route::Reserve, 200, "{}"));
    assert!(matches!(v2.save_file("k", VERSION, &archive), Ok(Saved::AlreadyExists(_))));
    server.inject(answer(Route::Reserve, 409, r#"{"code":"already_exists","msg":"cache entry exists"}"#));
    assert_eq!(
        v2.save_file("k", VERSION, &archive).unwrap(),
        Saved::AlreadyExists("already_exists: cache entry exists".into())
    );
    server.inject(answer(Route::Commit, 200, r#"{"ok":false,"message":"quota exceeded"}"#));
    let error = v2.save_file("k2", VERSION, &archive).unwrap_err();
    assert!(
        matches!(&error, BackendError::Rejected { message, .. } if message == "quota exceeded"),
        "{error:?}"
    );
    server.inject(answer(Route::Lookup, 404, r#"{"code":"not_found","msg":"no entry"}"#));
    assert!(v2.lookup(&keys(&["k"]), VERSION).unwrap().is_none(), "Twirp not_found is a miss");
    server.inject(answer(
        Route::Lookup,
        403,
        r#"{"code":"permission_denied","msg":"cache read denied: nope"}"#,
    ));
    assert!(matches!(v2.lookup(&keys(&["k"]), VERSION), Err(BackendError::Denied { .. })));
    server.inject(answer(Route::Lookup, 401, r#"{"statusCode":401,"message":"token expired"}"#));
    let error = v2.lookup(&keys(&["k"]), VERSION).unwrap_err();
    assert!(
        matches!(&error, BackendError::Status { status: 401, body, .. } if body == "token expired"),
        "{error:?}"
    );

    // Lenient v2 parsing: camelCase names; a finalize answer with a numeric entry id.
    save(&*v2, "real", VERSION, &payload(100, 2));
    let url = v2.lookup(&keys(&["real"]), VERSION).unwrap().unwrap();
    let url = url.locator.get::<SignedUrl>().expect("a v2 hit carries a signed URL").url.clone();
    let camel =
        serde_json::json!({"ok": true, "signedDownloadUrl": url.expose(), "matchedKey": "Real"}).to_string();
    server.inject(answer(Route::Lookup, 200, &camel));
    let hit = v2.lookup(&keys(&["real"]), VERSION).unwrap().expect("camelCase hit");
    assert_eq!(hit.key, "Real");
    assert_eq!(fetch(&*v2, &hit), payload(100, 2));
    server.inject(answer(Route::Commit, 200, r#"{"ok":true,"entryId":42}"#));
    assert_eq!(save(&*v2, "other", VERSION, &payload(10, 3)), Saved::Stored);
}

/// A raw HTTP/1.1 exchange, for what our client never sends (chunked bodies, bad sizes).
fn raw(server: &CacheServer, request: &str) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn the_server_reads_chunked_bodies_and_checks_sizes() {
    let server = CacheServer::start(Personality::Forgejo);
    let base = server.base_url_v1();
    let path = base.splitn(4, '/').nth(3).map(|p| format!("/{p}_apis/artifactcache")).unwrap();
    let auth = format!("Authorization: Bearer {}\r\n", server.token());
    let reserve = |size: u64| {
        let body = format!(r#"{{"key":"Raw","version":"{VERSION}","cacheSize":{size}}}"#);
        let answer = raw(
            &server,
            &format!(
                "POST {path}/caches HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        );
        let json = answer.split("\r\n\r\n").nth(1).unwrap().to_string();
        serde_json::from_str::<serde_json::Value>(&json).unwrap()["cacheId"].as_u64().unwrap()
    };
    let patch_chunked = |id: u64| {
        raw(
            &server,
            &format!(
                "PATCH {path}/caches/{id} HTTP/1.1\r\nHost: x\r\n{auth}Content-Range: bytes 0-9/*\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n0123\r\n6\r\n456789\r\n0\r\n\r\n"
            ),
        )
    };
    let commit = |id: u64| {
        raw(
            &server,
            &format!("POST {path}/caches/{id} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 2\r\n\r\n{{}}"),
        )
    };

    let id = reserve(10);
    assert!(patch_chunked(id).starts_with("HTTP/1.1 204"));
    assert!(commit(id).starts_with("HTTP/1.1 204"), "10 bytes as reserved");
    let wrong = reserve(11);
    patch_chunked(wrong);
    let answer = commit(wrong);
    assert!(answer.starts_with("HTTP/1.1 500") && answer.contains("broken file"), "{answer}");

    let backend = backend_for(&server, Protocol::V1);
    let hit = backend.lookup(&keys(&["raw"]), VERSION).unwrap().expect("stored lower-cased");
    assert_eq!(fetch(&*backend, &hit), b"0123456789");
    assert_eq!(server.entries(), vec![("raw".to_string(), VERSION.to_string(), 10)]);
}

#[test]
fn garbage_json_is_retried_then_reported() {
    let server = CacheServer::start(Personality::Github);
    let backend = backend_for(&server, Protocol::V2);
    server.inject(Fault::GarbageJson { route: Route::Lookup, times: 1 });
    assert!(backend.lookup(&keys(&["k"]), VERSION).unwrap().is_none());
    server.inject(Fault::GarbageJson { route: Route::Lookup, times: usize::MAX });
    let error = backend.lookup(&keys(&["k"]), VERSION).unwrap_err();
    assert!(matches!(error, BackendError::Decode { .. }), "{error:?}");

    let server = CacheServer::start(Personality::Github);
    let backend = backend_for(&server, Protocol::V1);
    server.inject(Fault::GarbageJson { route: Route::Lookup, times: 1 });
    let error = backend.lookup(&keys(&["k"]), VERSION).unwrap_err();
    assert!(matches!(error, BackendError::Decode { .. }), "{error:?}");
}

#[test]
fn forced_conflicts_are_already_exists() {
    for (personality, proto) in CELLS {
        let server = CacheServer::start(personality);
        let backend = backend_for(&server, proto);
        server.inject(Fault::conflict());
        let saved = save(&*backend, "k", VERSION, &payload(10, 1));
        assert!(matches!(saved, Saved::AlreadyExists(_)), "{personality:?}/{proto:?}: {saved:?}");
        assert!(routed(&server, Route::Upload).is_empty());
    }
}

/// A signed URL refused once (expired) is looked up again inside the backend, and the
/// download goes on from the new URL; one refused for good ends as `Expired`.
#[test]
fn an_expired_signed_url_is_looked_up_again_by_the_backend() {
    for proto in [Protocol::V1, Protocol::V2] {
        let server = CacheServer::start(Personality::Github);
        let backend = backend_for(&server, proto);
        save(&*backend, "k", VERSION, &payload(2000, 1));
        let hit = backend.lookup(&keys(&["k"]), VERSION).unwrap().unwrap();
        server.clear_requests();
        server.inject(Fault::expired_url());
        assert_eq!(fetch(&*backend, &hit), payload(2000, 1), "{proto:?}");
        assert_eq!(routed(&server, Route::Lookup).len(), 1, "{proto:?}: one more lookup");
        server.inject(Fault::Status { route: Route::Download, status: 403, times: usize::MAX });
        let error = backend.download(&hit).err().expect("refused");
        assert!(matches!(error, BackendError::Expired { .. }), "{proto:?}: {error:?}");
    }
}

#[test]
fn wrong_tokens_and_denials_are_reported() {
    let server = CacheServer::start(Personality::Github);
    let deadline = Instant::now() + Duration::from_secs(10);
    let backend =
        GithubBackend::new(&server.results_url(), Secret("wrong-token-123".into()), deadline, fast());
    let error = backend.lookup(&keys(&["k"]), VERSION).unwrap_err();
    assert!(matches!(error, BackendError::Status { status: 401, .. }), "{error:?}");
    assert!(!format!("{error} {error:?}").contains("wrong-token-123"));

    server.inject(Fault::Status { route: Route::Reserve, status: 403, times: 1 });
    let backend = backend_for(&server, Protocol::V1);
    let error =
        backend.save_file("k", VERSION, &archive_file(tempfile::tempdir().unwrap().path(), "a", b"x"));
    assert!(
        matches!(error, Err(BackendError::Refused { status: 403, .. })),
        "v1: a 403 on reserve is a refusal, not someone else's reservation: {error:?}"
    );
}

#[test]
fn no_token_or_signed_query_in_any_error() {
    let server = CacheServer::start(Personality::Github);
    let token = server.token().to_string();
    let mut errors: Vec<BackendError> = Vec::new();
    for proto in [Protocol::V1, Protocol::V2] {
        let backend = client(&server, proto, Duration::from_secs(10));
        save(&*backend, &format!("k-{proto:?}"), VERSION, &payload(1500, 1));
        let hit = backend.lookup(&keys(&[&format!("k-{proto:?}")]), VERSION).unwrap().unwrap();
        server.inject(Fault::Status { route: Route::Download, status: 403, times: usize::MAX });
        errors.push(backend.download(&hit).err().unwrap());
        server.clear_faults();
        server.inject(Fault::persistent_server_error(Route::Any));
        errors.push(backend.lookup(&keys(&["k"]), VERSION).unwrap_err());
        errors.push(backend.download(&hit).err().unwrap());
        server.clear_faults();
        // A signed URL pointing nowhere: the transport error names the host only.
        let dead = Hit {
            key: "k".into(),
            size: None,
            locator: Locator::new(SignedUrl {
                url: Secret("http://127.0.0.1:9/blobstore/cache/1?sig=TOPSECRETSIG".into()),
                version: VERSION.into(),
            }),
        };
        errors.push(backend.download(&dead).err().unwrap());
        assert!(!format!("{dead:?}").contains("TOPSECRETSIG"));
    }
    let wrong = GithubBackend::new(
        &server.results_url(),
        Secret("wrong-token-456".into()),
        Instant::now() + Duration::from_secs(5),
        fast(),
    );
    errors.push(wrong.lookup(&keys(&["k"]), VERSION).unwrap_err());
    for error in &errors {
        let text = format!("{error} {error:?}");
        for secret in [token.as_str(), "TOPSECRETSIG", "sig=", "wrong-token-456"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }
}

#[test]
fn open_builds_both_runner_backends() {
    let server = CacheServer::start(Personality::Forgejo);
    let deadline = Instant::now() + Duration::from_secs(10);
    let token = Secret(server.token().into());
    let v1 = backend::open(
        &backend::BackendKind::ArtifactCache {
            url: server.base_url_v1(),
            token: token.clone(),
            reservation: Reservation::SizeFirst,
        },
        CacheMode::READ_WRITE,
        deadline,
        Tuning::default(),
    );
    let v2 = backend::open(
        &backend::BackendKind::Github { url: server.results_url(), token },
        CacheMode::READ_WRITE,
        deadline,
        Tuning::default(),
    );
    assert_eq!(v1.name(), "artifactcache (v1)");
    assert_eq!(v2.name(), "github (v2)");
    // Without the trailing slash the base still gets exactly one.
    let bare = backend::open(
        &backend::BackendKind::ArtifactCache {
            url: server.base_url_v1().trim_end_matches('/').into(),
            token: Secret(server.token().into()),
            reservation: Reservation::WhilePacking,
        },
        CacheMode::READ_WRITE,
        deadline,
        Tuning::default(),
    );
    assert!(bare.lookup(&keys(&["k"]), VERSION).unwrap().is_none());
    assert!(v1.lookup(&keys(&["k"]), VERSION).unwrap().is_none());
    assert!(v2.lookup(&keys(&["k"]), VERSION).unwrap().is_none());
}

// ---- The official client -------------------------------------------------------------

/// The official client run in `workspace` against `server` as github.com's runner would point
/// it (v1 without the v2 flag).
fn run_official(
    official: &Official,
    server: &CacheServer,
    proto: Protocol,
    workspace: &Path,
    args: &[&str],
) -> String {
    let endpoint = Endpoint::of(server);
    let site =
        Site { endpoint, protocol: proto, server_url: "https://github.com", workspace, home: workspace };
    official.run(&site, args)
}

/// A small `.nox`-like tree: nested dirs, an empty file, binary data, a symlink.
fn make_tree(root: &Path) {
    let venv = root.join(".nox/tests-3-12");
    fs::create_dir_all(venv.join("bin")).unwrap();
    fs::create_dir_all(venv.join("lib/python3.12/site-packages/pkg")).unwrap();
    fs::write(venv.join("pyvenv.cfg"), "home = /usr/bin\n").unwrap();
    fs::write(venv.join("lib/python3.12/site-packages/pkg/__init__.py"), "x = 1\n").unwrap();
    fs::write(venv.join("lib/python3.12/site-packages/pkg/data.bin"), payload(70_000, 5)).unwrap();
    fs::write(venv.join("bin/empty"), "").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink("../lib", venv.join("bin/lib-link")).unwrap();
}

/// Every path under `root` with its kind and content, for comparing trees.
fn listing(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                out.push((name, format!("link {}", fs::read_link(&path).unwrap().display())));
            } else if meta.is_dir() {
                out.push((name, "dir".into()));
                stack.push(path);
            } else {
                out.push((name, format!("file {}", hex::encode(sha2_digest(&fs::read(&path).unwrap())))));
            }
        }
    }
    out.sort();
    out
}

fn sha2_digest(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).to_vec()
}

fn official_saves_we_restore(personality: Personality, proto: Protocol) {
    let official = Official::provision();
    let server = CacheServer::start(personality);
    let workspace = tempfile::tempdir().unwrap();
    make_tree(workspace.path());
    let result =
        run_official(&official, &server, proto, workspace.path(), &["save", ".nox", "nox-Linux-abc"]);
    assert!(result.starts_with("RESULT saved"), "{result}");

    let backend = backend_for(&server, proto);
    let version = uv_nox_cache::key::version(".nox", "zstd-without-long");
    let hit = backend
        .lookup(&keys(&["nox-Linux-xyz", "nox-Linux-"]), &version)
        .unwrap()
        .expect("our lookup finds it");
    assert_eq!(hit.key.to_lowercase(), "nox-linux-abc");
    let mut archive = Vec::new();
    backend.download(&hit).unwrap().read_to_end(&mut archive).unwrap();

    let target = tempfile::tempdir().unwrap();
    let mut tar = Command::new("tar")
        .args(["-xf", "-", "-P", "--use-compress-program", "unzstd", "-C"])
        .arg(target.path())
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    tar.stdin.take().unwrap().write_all(&archive).unwrap();
    assert!(tar.wait().unwrap().success());
    assert_eq!(listing(&target.path().join(".nox")), listing(&workspace.path().join(".nox")));
}

fn we_save_official_restores(personality: Personality, proto: Protocol) {
    let official = Official::provision();
    let server = CacheServer::start(personality);
    let source = tempfile::tempdir().unwrap();
    make_tree(source.path());
    let scratch = tempfile::tempdir().unwrap();
    let archive = scratch.path().join("x.tzst");
    let status = Command::new("tar")
        .args(["--posix", "-cf"])
        .arg(&archive)
        .args(["-P", "-C"])
        .arg(source.path())
        .args([".nox", "--use-compress-program", "zstdmt"])
        .status()
        .unwrap();
    assert!(status.success());

    let backend = backend_for(&server, proto);
    let version = uv_nox_cache::key::version(".nox", "zstd-without-long");
    assert_eq!(backend.save_file("nox-Linux-abc", &version, &archive).unwrap(), Saved::Stored);

    let workspace = tempfile::tempdir().unwrap();
    let result = run_official(
        &official,
        &server,
        proto,
        workspace.path(),
        &["restore", ".nox", "nox-Linux-zzz", "nox-Linux-"],
    );
    assert_eq!(result.to_lowercase(), "result restored nox-linux-abc");
    assert_eq!(listing(&workspace.path().join(".nox")), listing(&source.path().join(".nox")));
}

#[test]
fn official_client_v1_saves_and_we_restore() {
    official_saves_we_restore(Personality::Forgejo, Protocol::V1);
}

#[test]
fn official_client_v2_saves_and_we_restore() {
    official_saves_we_restore(Personality::Github, Protocol::V2);
}

#[test]
fn we_save_and_official_client_v1_restores() {
    we_save_official_restores(Personality::Github, Protocol::V1);
}

#[test]
fn we_save_and_official_client_v2_restores() {
    we_save_official_restores(Personality::Github, Protocol::V2);
}

/// Field name → JSON type of a request body, so bodies with different sizes compare.
fn shape(value: &serde_json::Value) -> Vec<(String, &'static str)> {
    let mut fields: Vec<(String, &'static str)> = value
        .as_object()
        .expect("a JSON object")
        .iter()
        .map(|(name, v)| {
            let kind = match v {
                serde_json::Value::String(_) => "string",
                serde_json::Value::Number(_) => "number",
                serde_json::Value::Array(_) => "array",
                serde_json::Value::Bool(_) => "bool",
                serde_json::Value::Object(_) => "object",
                serde_json::Value::Null => "null",
            };
            (name.clone(), kind)
        })
        .collect();
    fields.sort();
    fields
}

/// The requests of one (method, route), minus downloads (the toolkit's GET is plain).
fn by_route(log: &[LoggedRequest], route: Route) -> Vec<&LoggedRequest> {
    log.iter().filter(|r| r.route == Some(route)).collect()
}

/// The official client and ours send the same requests: same routes, same lookup query (v1)
/// or body (v2), same JSON field names and types, the same credentials headers, and neither
/// sends the token to the archive / blob host.
fn requests_match_the_toolkit(personality: Personality, proto: Protocol) {
    let official = Official::provision();
    let server = CacheServer::start(personality);
    let workspace = tempfile::tempdir().unwrap();
    make_tree(workspace.path());
    run_official(&official, &server, proto, workspace.path(), &["save", ".nox", "nox-Linux-1"]);
    let scratch = tempfile::tempdir().unwrap();
    run_official(
        &official,
        &server,
        proto,
        scratch.path(),
        &["restore", ".nox", "nox-Linux-2", "nox-Linux-"],
    );
    let theirs = server.requests();
    server.clear_requests();

    let backend = backend_for(&server, proto);
    let version = uv_nox_cache::key::version(".nox", "zstd-without-long");
    let dir = tempfile::tempdir().unwrap();
    let archive = archive_file(dir.path(), "cache.tzst", &payload(1500, 1));
    assert_eq!(backend.save_file("nox-Linux-3", &version, &archive).unwrap(), Saved::Stored);
    let hit = backend.lookup(&keys(&["nox-Linux-2", "nox-Linux-"]), &version).unwrap().unwrap();
    fetch(&*backend, &hit);
    let ours = server.requests();

    let cell = format!("{personality:?}/{proto:?}");
    for route in [Route::Lookup, Route::Reserve, Route::Commit] {
        let (t, o) = (by_route(&theirs, route), by_route(&ours, route));
        assert_eq!(t.len(), 1, "{cell}: toolkit {route:?}");
        assert_eq!(o.len(), 1, "{cell}: ours {route:?}");
        let (t, o) = (t[0], o[0]);
        let shape_of_path = |p: &str| p.trim_end_matches(|c: char| c.is_ascii_digit()).to_string();
        assert_eq!(
            (&t.method, shape_of_path(&t.path)),
            (&o.method, shape_of_path(&o.path)),
            "{cell} {route:?}"
        );
        assert_eq!(t.header("authorization"), o.header("authorization"), "{cell} {route:?}");
        if proto == Protocol::V1 {
            assert_eq!(t.header("accept"), o.header("accept"), "{cell} {route:?}");
        }
        match (&t.json, &o.json) {
            (Some(tj), Some(oj)) => assert_eq!(shape(tj), shape(oj), "{cell} {route:?}: {tj} vs {oj}"),
            (None, None) => {}
            other => panic!("{cell} {route:?}: JSON bodies differ: {other:?}"),
        }
    }
    // Identical lookups for identical keys and version.
    let (t, o) = (by_route(&theirs, Route::Lookup)[0], by_route(&ours, Route::Lookup)[0]);
    assert_eq!(t.query, o.query, "{cell}");
    assert_eq!(t.json, o.json, "{cell}");
    if proto == Protocol::V1 {
        assert!(t.query.contains(&format!("version={version}")), "{cell}: the toolkit used our version hash");
        let patches = |log: &[LoggedRequest]| {
            by_route(log, Route::Upload).iter().all(|r| r.header("content-range").is_some())
        };
        assert!(patches(&theirs) && patches(&ours), "{cell}");
    } else {
        let body = t.json.as_ref().unwrap();
        assert_eq!(body["version"], version.as_str(), "{cell}: the toolkit used our version hash");
        let put = |log: &[LoggedRequest]| {
            by_route(log, Route::Upload)[0].header("x-ms-blob-type").map(str::to_string)
        };
        assert_eq!(put(&theirs), put(&ours), "{cell}: both send one Put Blob");
    }
    for request in theirs.iter().chain(&ours) {
        if matches!(request.route, Some(Route::Download)) || request.path.starts_with("/blobstore/") {
            assert_eq!(request.header("authorization"), None, "{cell}: {} {}", request.method, request.path);
        }
    }
}

#[test]
fn v1_requests_match_the_toolkit() {
    requests_match_the_toolkit(Personality::Github, Protocol::V1);
}

#[test]
fn v2_requests_match_the_toolkit() {
    requests_match_the_toolkit(Personality::Github, Protocol::V2);
}

/// Polls `ready` for up to 60 s (a generous bound for a busy machine).
fn eventually(what: &str, ready: impl Fn() -> bool) {
    let limit = Duration::from_secs(60);
    let until = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < until, "waited {limit:?} for {what}, in vain");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// v2 uploads the blocks of an archive that is still being written: the first blocks reach the
/// blob host before the archive is complete, and the entry still comes back whole.
#[test]
fn v2_uploads_blocks_while_the_archive_grows() {
    let server = CacheServer::start(Personality::Github);
    let backend = backend_for(&server, Protocol::V2);
    let dir = tempfile::tempdir().unwrap();
    let archive = backend::ArchiveFile::create_in(dir.path()).unwrap();
    let bytes = payload(5500, 9);
    std::thread::scope(|s| {
        let upload = s.spawn(|| backend.save("growing", VERSION, &archive));
        // More than `single_put_max` (2500): the archive will need blocks.
        archive.writer().write_all(&bytes[..3000]).unwrap();
        eventually("blocks uploaded from an unfinished archive", || {
            routed(&server, Route::Upload).iter().filter(|r| r.query.contains("comp=block&")).count() >= 3
        });
        assert!(routed(&server, Route::Commit).is_empty(), "nothing finalized before the archive ends");
        archive.writer().write_all(&bytes[3000..]).unwrap();
        assert_eq!(archive.finish().unwrap(), 5500);
        assert_eq!(upload.join().unwrap().expect("save"), Saved::Stored);
    });
    let blocks = routed(&server, Route::Upload).iter().filter(|r| r.query.contains("comp=block&")).count();
    assert_eq!(blocks, 6, "5500 bytes in blocks of 1000");
    let commit = &routed(&server, Route::Commit)[0];
    assert_eq!(commit.json.as_ref().unwrap()["size_bytes"], "5500");
    let hit = backend.lookup(&keys(&["growing"]), VERSION).unwrap().expect("hit");
    assert_eq!(fetch(&*backend, &hit), bytes);
}

/// On the runners' own servers a v1 save reserves without a size as soon as packing starts,
/// and sends chunks while the archive is still being written; the commit carries the size.
#[test]
fn v1_sends_chunks_while_the_archive_grows_when_reserving_without_a_size() {
    let server = CacheServer::start(Personality::Forgejo);
    let token = Secret(server.token().to_string());
    let deadline = Instant::now() + Duration::from_secs(30);
    let backend =
        ArtifactCacheBackend::new(&server.base_url_v1(), token, Reservation::WhilePacking, deadline, fast());
    let dir = tempfile::tempdir().unwrap();
    let archive = backend::ArchiveFile::create_in(dir.path()).unwrap();
    let bytes = payload(5500, 7);
    std::thread::scope(|s| {
        let upload = s.spawn(|| backend.save("growing", VERSION, &archive));
        archive.writer().write_all(&bytes[..3000]).unwrap();
        eventually("chunks uploaded from an unfinished archive", || {
            routed(&server, Route::Upload).len() >= 3
        });
        let reserve = &routed(&server, Route::Reserve)[0];
        assert!(reserve.json.as_ref().unwrap().get("cacheSize").is_none(), "{:?}", reserve.json);
        assert!(routed(&server, Route::Commit).is_empty(), "nothing committed before the archive ends");
        archive.writer().write_all(&bytes[3000..]).unwrap();
        assert_eq!(archive.finish().unwrap(), 5500);
        assert_eq!(upload.join().unwrap().expect("save"), Saved::Stored);
    });
    assert_eq!(routed(&server, Route::Upload).len(), 6, "5500 bytes in chunks of 1000");
    assert_eq!(routed(&server, Route::Commit)[0].json.as_ref().unwrap()["size"], 5500);
    let hit = backend.lookup(&keys(&["growing"]), VERSION).unwrap().expect("hit");
    assert_eq!(fetch(&backend, &hit), bytes);
}

/// When the key is taken, v2 says so while the archive is still being written and abandons it,
/// so the packer's next write fails instead of compressing for nothing; an archive that fails
/// before its first byte reserves nothing.
#[test]
fn v2_stops_the_packer_when_the_key_is_taken_and_reserves_nothing_for_a_failed_pack() {
    let server = CacheServer::start(Personality::Github);
    let backend = backend_for(&server, Protocol::V2);
    assert_eq!(save(&*backend, "taken", VERSION, &payload(100, 1)), Saved::Stored);
    let dir = tempfile::tempdir().unwrap();
    let archive = backend::ArchiveFile::create_in(dir.path()).unwrap();
    std::thread::scope(|s| {
        let upload = s.spawn(|| {
            let saved = backend.save("taken", VERSION, &archive);
            archive.abandon();
            saved
        });
        archive.writer().write_all(b"first bytes").unwrap();
        assert!(matches!(upload.join().unwrap(), Ok(Saved::AlreadyExists(_))));
        assert!(archive.writer().write_all(b"more").is_err(), "the packer is told to stop");
    });

    server.clear_requests();
    let failed = backend::ArchiveFile::create_in(dir.path()).unwrap();
    failed.fail("could not read .nox");
    let error = backend.save("never", VERSION, &failed).unwrap_err();
    assert!(error.to_string().contains("could not read .nox"), "{error}");
    assert!(server.requests().is_empty(), "no reservation for an archive that never began");
}

/// Gitea's act_runner: every cache call carries the Bearer token; the archive URL is signed
/// with an expiry and fetched without it; a URL that expired between lookup and download is
/// looked up again.
#[test]
fn gitea_signed_archive_urls_go_without_the_token_and_are_renewed_when_expired() {
    let server = CacheServer::start(Personality::Gitea);
    let backend = backend_for(&server, Protocol::V1);
    let bytes = payload(3000, 7);
    assert_eq!(save(&*backend, "uv-gitea", VERSION, &bytes), Saved::Stored);
    server.clear_requests();
    let hit = backend.lookup(&keys(&["uv-gitea"]), VERSION).unwrap().expect("hit");
    assert_eq!(fetch(&*backend, &hit), bytes);
    let requests = server.requests();
    let downloads: Vec<&LoggedRequest> =
        requests.iter().filter(|r| r.route == Some(Route::Download)).collect();
    assert!(!downloads.is_empty(), "{requests:?}");
    for r in &downloads {
        assert_eq!(r.header("authorization"), None, "the token went to the archive URL: {r:?}");
        assert!(r.query.contains("sig=") && r.query.contains("exp="), "unsigned: {r:?}");
    }
    for r in requests.iter().filter(|r| r.route != Some(Route::Download)) {
        assert_eq!(r.header("authorization"), Some(&*format!("Bearer {}", server.token())), "{r:?}");
    }

    // Handed out already expired: the download is refused, the entry is looked up again, and
    // the new URL (valid again) serves it.
    server.set_url_ttl(Duration::ZERO);
    let stale = backend.lookup(&keys(&["uv-gitea"]), VERSION).unwrap().expect("hit");
    server.set_url_ttl(Duration::from_secs(600));
    server.clear_requests();
    assert_eq!(fetch(&*backend, &stale), bytes);
    assert_eq!(routed(&server, Route::Lookup).len(), 1, "{:?}", server.requests());
}
