//! Faults through the action's steps. Whatever the service or the disk does, a step ends with
//! exit 0, a `::warning::` (never an `::error::`), a miss or a skipped save, within the
//! `timeout` input plus a few seconds; faults that clear up in time (a few 5xx, a short
//! `Retry-After`, an expired signed URL) end in a clean restore. A restore that fails part-way
//! leaves an existing target directory exactly as it was.
//!
//! Each test prints `TIMING <test> <seconds>` for the step it times (`--nocapture` shows them).

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::action::{Job, Step, snapshot};
use crate::support::cache_server::{Fault, Route};
use crate::support::rig::{FAST_TIMING, Rig, Service, Snapshot, fresh_checkout, populate, save_job};

/// The `timeout` input the faulty steps run with.
const TIMEOUT: Duration = Duration::from_secs(20);
/// What a step may take past `timeout`: the action's own grace period (1 s, [`FAST_TIMING`])
/// and process start-up on a busy machine.
const SLACK: Duration = Duration::from_secs(7);
/// The first retry delay of [`FAST_TIMING`].
const RETRY_DELAY: Duration = Duration::from_millis(100);

fn faulty_job(rig: &Rig) -> Job {
    let mut job = rig.job();
    job.input("timeout", &TIMEOUT.as_secs().to_string());
    job.set_env("UV_NOX_CACHE_TEST_TUNING", FAST_TIMING);
    job
}

/// A rig holding saved entries for both targets, and a fresh checkout.
fn saved(service: Service) -> (Rig, (Snapshot, Snapshot)) {
    let rig = Rig::new(service);
    let trees = save_job(&rig, "cached");
    fresh_checkout(&rig.machine);
    if let Some(server) = &rig.server {
        server.clear_requests();
    }
    (rig, trees)
}

fn timed(name: &str, step: &Step) {
    let test = std::thread::current().name().unwrap_or(name).to_string();
    let step_name = if step.stdout.contains(": save\n") { "post" } else { "main" };
    eprintln!(
        "TIMING {test} ({step_name}) {:.1} s (timeout {} s)",
        step.elapsed.as_secs_f64(),
        TIMEOUT.as_secs()
    );
    assert!(
        step.elapsed <= TIMEOUT + SLACK,
        "{name} took {:.1} s, past its limit of {} s (the `timeout` input, {} s, plus {} s of slack)\n{}",
        step.elapsed.as_secs_f64(),
        (TIMEOUT + SLACK).as_secs(),
        TIMEOUT.as_secs(),
        SLACK.as_secs(),
        step.log()
    );
}

/// Exit 0, a warning, no error, in time.
fn assert_degraded(name: &str, step: &Step) {
    assert_eq!(step.code, 0, "{}", step.log());
    assert!(step.stdout.lines().any(|l| l.starts_with("::warning::")), "no warning\n{}", step.log());
    assert!(!step.stdout.contains("::error::"), "{}", step.log());
    timed(name, step);
}

/// No staging directory (`.<target>.restoring-…`) is left beside either target.
fn assert_no_leftovers(rig: &Rig) {
    for parent in [rig.machine.workspace.clone(), rig.machine.home.join(".cache")] {
        let Ok(entries) = fs::read_dir(&parent) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(!name.contains(".restoring-"), "left behind: {}", parent.join(name).display());
        }
    }
}

fn assert_missed(step: &Step) {
    step.assert_hits("false");
}

fn assert_restored(name: &str, rig: &Rig, step: &Step, trees: &(Snapshot, Snapshot)) {
    crate::support::rig::assert_clean(step);
    timed(name, step);
    assert_eq!(step.output("cache-hit"), "true", "{}", step.log());
    assert_eq!(&(snapshot(&rig.uv_dir()), snapshot(&rig.nox_dir())), trees);
}

/// Restore under `fault`: a warning and a miss, nothing half-restored.
fn restore_misses_under(name: &str, service: Service, faults: &[Fault]) -> Rig {
    let (rig, _) = saved(service);
    for fault in faults {
        rig.server().inject(fault.clone());
    }
    let main = faulty_job(&rig).main();
    assert_degraded(name, &main);
    assert_missed(&main);
    assert!(!rig.uv_dir().exists() && !rig.nox_dir().exists(), "half-restored\n{}", main.log());
    assert_no_leftovers(&rig);
    rig
}

const FOREVER: usize = usize::MAX;

// ---- HTTP faults, on v1 and v2 ---------------------------------------------------------

fn server_errors_then_success(service: Service) {
    let (rig, trees) = saved(service);
    let server = rig.server();
    server.inject(Fault::Status { route: Route::Lookup, status: 500, times: 1 });
    server.inject(Fault::Status { route: Route::Lookup, status: 502, times: 1 });
    server.inject(Fault::Status { route: Route::Download, status: 503, times: 1 });
    let main = faulty_job(&rig).main();
    assert_restored("server_errors_then_success", &rig, &main, &trees);
    let lookups = rig.routed(Route::Lookup).len();
    assert!(lookups >= 3, "the two failed lookups were retried ({lookups} lookups)");
    // Three backoffs: 1×, ≥ 1.5× and 1× the first retry delay.
    let backoffs = RETRY_DELAY.mul_f64(3.5);
    assert!(main.elapsed >= backoffs, "three backoffs take at least {backoffs:?}: {:?}", main.elapsed);
}

fn persistent_server_errors(service: Service) {
    restore_misses_under(
        "persistent_server_errors",
        service,
        &[Fault::persistent_server_error(Route::Lookup)],
    );
}

fn rate_limit_within_the_timeout(service: Service) {
    let (rig, trees) = saved(service);
    rig.server().inject(Fault::RateLimit { route: Route::Lookup, retry_after_secs: 1, times: 1 });
    let main = faulty_job(&rig).main();
    assert_restored("rate_limit_within_the_timeout", &rig, &main, &trees);
    assert!(main.elapsed >= Duration::from_secs(1), "Retry-After (1 s) was honoured: {:?}", main.elapsed);
}

fn rate_limit_beyond_the_timeout(service: Service) {
    let fault = Fault::RateLimit { route: Route::Lookup, retry_after_secs: 600, times: FOREVER };
    let rig = restore_misses_under("rate_limit_beyond_the_timeout", service, &[fault]);
    let lookups = rig.routed(Route::Lookup).len();
    assert!(lookups <= 2, "no retry when Retry-After does not fit ({lookups} lookups)");
}

fn connection_refused(service: Service) {
    let (rig, _) = saved(service);
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut job = faulty_job(&rig);
    job.set_env("ACTIONS_CACHE_URL", &format!("http://127.0.0.1:{closed}/7f3e2a91/"));
    job.set_env("ACTIONS_RESULTS_URL", &format!("http://127.0.0.1:{closed}/"));
    let main = job.main();
    assert_degraded("connection_refused", &main);
    assert_missed(&main);
    assert!(main.stdout.contains(&format!("127.0.0.1:{closed}")), "names the host\n{}", main.log());
    populate(&rig.machine, "unsaved");
    let post = job.post();
    assert_degraded("connection_refused (save)", &post);
    assert!(post.stdout.contains("saving") && post.stdout.contains("failed"), "{}", post.log());
}

fn closes_mid_body(service: Service) {
    restore_misses_under(
        "closes_mid_body",
        service,
        &[Fault::Truncate { route: Route::Download, times: FOREVER }],
    );
}

/// A body that stops arriving: each attempt gives up after the idle timeout (1 s here).
fn stalls_mid_body(service: Service) {
    let (rig, _) = saved(service);
    rig.server().inject(Fault::Stall { route: Route::Download, times: FOREVER });
    let mut job = faulty_job(&rig);
    job.set_env("UV_NOX_CACHE_TEST_TUNING", &format!("{FAST_TIMING},idle_timeout=1s"));
    let main = job.main();
    assert_degraded("stalls_mid_body", &main);
    assert_missed(&main);
    assert!(!rig.uv_dir().exists() && !rig.nox_dir().exists(), "half-restored\n{}", main.log());
    assert_no_leftovers(&rig);
    rig.server().clear_faults();
}

fn truncated_chunked_body(service: Service) {
    let (rig, _) = saved(service);
    rig.server().set_ignore_range(true);
    rig.server().inject(Fault::Truncate { route: Route::Download, times: FOREVER });
    let main = faulty_job(&rig).main();
    assert_degraded("truncated_chunked_body", &main);
    assert_missed(&main);
    assert!(!rig.uv_dir().exists() && !rig.nox_dir().exists());
    assert_no_leftovers(&rig);
}

fn corrupt_archive(service: Service) {
    let body = "this is not a zstd frame, nor a tar archive ".repeat(50);
    restore_misses_under(
        "corrupt_archive",
        service,
        &[Fault::Answer { route: Route::Download, status: 200, body, times: FOREVER }],
    );
}

fn garbage_json(service: Service) {
    restore_misses_under(
        "garbage_json",
        service,
        &[Fault::GarbageJson { route: Route::Lookup, times: FOREVER }],
    );
}

fn expired_signed_url(service: Service) {
    let (rig, trees) = saved(service);
    rig.server().inject(Fault::expired_url());
    let main = faulty_job(&rig).main();
    assert_restored("expired_signed_url", &rig, &main, &trees);
    let lookups = rig.routed(Route::Lookup).len();
    let downloads = rig.routed(Route::Download).len();
    assert!(downloads >= 3, "the refused download was repeated ({downloads})");
    assert!(lookups >= 3, "a new lookup after the refusal ({lookups})");
}

fn save_fails_on_persistent_server_errors(service: Service) {
    let rig = Rig::new(service);
    rig.server().inject(Fault::persistent_server_error(Route::Upload));
    let mut job = faulty_job(&rig);
    job.main();
    populate(&rig.machine, "unsaved");
    let post = job.post();
    assert_degraded("save_fails_on_persistent_server_errors", &post);
    assert!(post.stdout.contains("::warning::uv: saving"), "{}", post.log());
    assert!(rig.server().entries().is_empty(), "nothing was committed");
    assert!(post.summary.contains("save failed"), "{}", post.summary);
}

fn save_rate_limited_beyond_the_timeout(service: Service) {
    let rig = Rig::new(service);
    rig.server().inject(Fault::RateLimit { route: Route::Reserve, retry_after_secs: 600, times: FOREVER });
    let mut job = faulty_job(&rig);
    job.main();
    populate(&rig.machine, "unsaved");
    let post = job.post();
    assert_degraded("save_rate_limited_beyond_the_timeout", &post);
    assert!(post.stdout.contains("rate limited"), "{}", post.log());
    assert!(rig.server().entries().is_empty());
}

/// A restore that breaks part-way leaves the directories already there untouched.
fn failed_restore_keeps_existing_dirs(service: Service) {
    let (rig, _) = saved(service);
    populate(&rig.machine, "already here");
    let before = (snapshot(&rig.uv_dir()), snapshot(&rig.nox_dir()));
    rig.server().inject(Fault::Truncate { route: Route::Download, times: FOREVER });
    let main = faulty_job(&rig).main();
    assert_degraded("failed_restore_keeps_existing_dirs", &main);
    assert_missed(&main);
    assert_eq!((snapshot(&rig.uv_dir()), snapshot(&rig.nox_dir())), before);
    assert_no_leftovers(&rig);
}

macro_rules! http_faults {
    ($($fault:ident),* $(,)?) => {
        mod v1 { $( #[test] fn $fault() { super::$fault(super::Service::ForgejoV1) } )* }
        mod v2 { $( #[test] fn $fault() { super::$fault(super::Service::GithubV2) } )* }
    };
}

http_faults!(
    server_errors_then_success,
    persistent_server_errors,
    rate_limit_within_the_timeout,
    rate_limit_beyond_the_timeout,
    connection_refused,
    closes_mid_body,
    stalls_mid_body,
    truncated_chunked_body,
    corrupt_archive,
    garbage_json,
    expired_signed_url,
    save_fails_on_persistent_server_errors,
    save_rate_limited_beyond_the_timeout,
    failed_restore_keeps_existing_dirs,
);

// ---- v2 only: `ok:false` ----------------------------------------------------------------

#[test]
fn v2_finalize_ok_false_skips_the_save() {
    let rig = Rig::new(Service::GithubV2);
    let body = r#"{"ok":false,"message":"cache write denied: over the repository's budget"}"#.to_string();
    rig.server().inject(Fault::Answer { route: Route::Commit, status: 200, body, times: FOREVER });
    let mut job = faulty_job(&rig);
    job.main();
    populate(&rig.machine, "unsaved");
    let post = job.post();
    assert_degraded("v2_finalize_ok_false_skips_the_save", &post);
    assert!(post.stdout.contains("budget"), "the service's reason is shown\n{}", post.log());
    assert!(rig.server().entries().is_empty());
}

#[test]
fn v2_lookup_ok_false_is_a_plain_miss() {
    let (rig, _) = saved(Service::GithubV2);
    let body = r#"{"ok":false,"signed_download_url":"","matched_key":""}"#.to_string();
    rig.server().inject(Fault::Answer { route: Route::Lookup, status: 200, body, times: FOREVER });
    let main = faulty_job(&rig).main();
    crate::support::rig::assert_clean(&main);
    assert_missed(&main);
}

// ---- The local store and the disk ------------------------------------------------------

/// The local store's entry files.
fn store_entries(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if !entry.file_name().to_string_lossy().starts_with('.') {
                out.push(path);
            }
        }
    }
    out
}

/// Rewrites every stored archive (the bytes after the header line) with `damage`.
fn damage_store(rig: &Rig, damage: impl Fn(&[u8]) -> Vec<u8>) {
    let entries = store_entries(&rig.machine.store);
    assert_eq!(entries.len(), 2, "{entries:?}");
    for path in entries {
        let bytes = fs::read(&path).unwrap();
        let header = bytes.iter().position(|b| *b == b'\n').unwrap() + 1;
        let mut out = bytes[..header].to_vec();
        out.extend(damage(&bytes[header..]));
        fs::write(&path, out).unwrap();
    }
}

fn local_damaged_store_keeps_existing_dirs(name: &str, damage: impl Fn(&[u8]) -> Vec<u8>) {
    let (rig, _) = saved(Service::Local);
    damage_store(&rig, damage);
    populate(&rig.machine, "already here");
    let before = (snapshot(&rig.uv_dir()), snapshot(&rig.nox_dir()));
    let main = faulty_job(&rig).main();
    assert_degraded(name, &main);
    assert_missed(&main);
    assert_eq!((snapshot(&rig.uv_dir()), snapshot(&rig.nox_dir())), before);
    assert_no_leftovers(&rig);
}

#[test]
fn local_truncated_archive() {
    local_damaged_store_keeps_existing_dirs("local_truncated_archive", |a| a[..a.len() / 2].to_vec());
}

#[test]
fn local_corrupt_archive() {
    local_damaged_store_keeps_existing_dirs("local_corrupt_archive", |a| {
        a.iter().map(|b| b ^ 0x5a).collect()
    });
}

#[test]
fn local_unwritable_restore_target() {
    let (rig, _) = saved(Service::Local);
    // `~/.cache` is a file: the uv cache cannot be restored below it; nox still is.
    fs::remove_dir_all(rig.machine.home.join(".cache")).unwrap();
    fs::write(rig.machine.home.join(".cache"), "not a directory").unwrap();
    let main = faulty_job(&rig).main();
    assert_degraded("local_unwritable_restore_target", &main);
    assert_eq!(main.output("uv-restored"), "false");
    assert_eq!(main.output("nox-restored"), "true", "{}", main.log());
    assert_eq!(main.output("cache-hit"), "false");
}

#[test]
fn local_unwritable_runner_temp_skips_the_save() {
    let rig = Rig::new(Service::Local);
    let mut job = faulty_job(&rig);
    job.main();
    populate(&rig.machine, "unsaved");
    let temp = rig.machine.root.path().join("temp-is-a-file");
    fs::write(&temp, "").unwrap();
    job.set_env("RUNNER_TEMP", &temp.display().to_string());
    let post = job.post();
    assert_degraded("local_unwritable_runner_temp_skips_the_save", &post);
    assert!(post.stdout.contains("not saving"), "{}", post.log());
    assert!(store_entries(&rig.machine.store).is_empty());
}
