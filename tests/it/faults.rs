//! Faults through the action's steps. Whatever the service or the disk does, a step ends with
//! exit 0, a `::warning::` (never an `::error::`), a miss or a skipped save, within the
//! `timeout` input plus a few seconds; faults that clear up in time (a few 5xx, a short
//! `Retry-After`, an expired signed URL) end in a clean restore. A restore that fails part-way
//! leaves an existing target directory exactly as it was.
//!
//! Each test prints `TIMING <test> <seconds>` for the step it times (`--nocapture` shows them).

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::support::action::{Job, Protocol, Step, snapshot};
use crate::support::cache_server::{CacheServer, Fault, Personality, Route, ServerConfig};
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
pub(crate) fn assert_no_leftovers(rig: &Rig) {
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
    // The post step takes the restore step's verdict: a notice, and no attempt.
    let post = job.post();
    assert_learned(&post, &format!("127.0.0.1:{closed}"));
    timed("connection_refused (save)", &post);
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

// ---- A dead or hung service: one verdict for the whole job ----------------------------

/// The post step of a job whose restore found the service down: exit 0, no warning (the
/// restore step gave the one), a notice naming the host, nothing tried.
fn assert_learned(post: &Step, host: &str) {
    assert_eq!(post.code, 0, "{}", post.log());
    assert!(!post.stdout.contains("::error::") && !post.stdout.contains("::warning::"), "{}", post.log());
    let notice = format!("::notice::not using the cache service at {host} in this step");
    assert!(post.stdout.contains(&notice), "{}", post.log());
    assert!(!post.stdout.contains(": saved "), "{}", post.log());
}

/// A port of 127.0.0.1 that nothing listens on: connections are refused.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A listener that accepts every connection and never answers (a hung server, a firewall
/// that lets the handshake through); it stops when dropped.
pub(crate) struct BlackHole {
    pub(crate) port: u16,
    stop: Arc<AtomicBool>,
}

impl BlackHole {
    pub(crate) fn start() -> BlackHole {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                held.extend(stream.ok());
            }
        });
        BlackHole { port, stop }
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Which backend a dead-service job is pointed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    V1,
    V2,
    S3,
}

/// A job of `rig` whose service (of `backend`) is at `port` of 127.0.0.1.
pub(crate) fn job_at(rig: &Rig, backend: Backend, port: u16) -> Job {
    let mut job = rig.job();
    let origin = format!("http://127.0.0.1:{port}");
    match backend {
        Backend::V1 => {
            job.use_service(rig.server(), crate::support::action::Protocol::V1);
            job.set_env("ACTIONS_CACHE_URL", &format!("{origin}/7f3e2a91/"));
        }
        Backend::V2 => {
            job.use_service(rig.server(), crate::support::action::Protocol::V2);
            job.set_env("ACTIONS_RESULTS_URL", &format!("{origin}/results-receiver/"));
        }
        Backend::S3 => {
            job.set_env("UV_NOX_CACHE_S3_BUCKET", "fleet-cache")
                .set_env("UV_NOX_CACHE_S3_ENDPOINT", &origin)
                .set_env("AWS_ACCESS_KEY_ID", "fleet-access-key")
                .set_env("AWS_SECRET_ACCESS_KEY", "fleet-secret-key-0123456789")
                .set_env("GITHUB_REPOSITORY", "octo/demo");
        }
    }
    job
}

/// A rig for `backend`: the runner services have a server (the dead one is elsewhere).
fn rig_for(backend: Backend) -> Rig {
    Rig::new(match backend {
        Backend::V1 => Service::ForgejoV1,
        Backend::V2 => Service::GithubV2,
        Backend::S3 => Service::Local,
    })
}

/// A whole job (restore, the job's work, save) against a service that is dead at `port`:
/// one warning naming the host and what it did, a miss, a post step that tries nothing, no
/// partial tree; returns both steps.
fn whole_job_against_a_dead_service(
    backend: Backend,
    port: u16,
    timing: Option<&str>,
    what: &str,
) -> (Step, Step) {
    let rig = rig_for(backend);
    let mut job = job_at(&rig, backend, port);
    if let Some(timing) = timing {
        job.set_env("UV_NOX_CACHE_TEST_TUNING", timing);
    }
    let main = job.main();
    let host = format!("127.0.0.1:{port}");
    assert_eq!(main.code, 0, "{}", main.log());
    assert!(!main.stdout.contains("::error::"), "{}", main.log());
    let warnings: Vec<&str> = main.stdout.lines().filter(|l| l.starts_with("::warning::")).collect();
    assert_eq!(warnings.len(), 1, "one warning for the whole step\n{}", main.log());
    assert!(warnings[0].contains(&host) && warnings[0].contains(what), "{}", main.log());
    assert!(warnings[0].contains("not using it again in this job"), "{}", main.log());
    assert_missed(&main);
    assert!(!rig.uv_dir().exists() && !rig.nox_dir().exists(), "half-restored\n{}", main.log());
    assert_no_leftovers(&rig);
    assert_eq!(job.state.get("CACHE_DOWN").map(|v| v.starts_with(&host)), Some(true), "{:?}", job.state);
    populate(&rig.machine, "unsaved");
    let post = job.post();
    assert_learned(&post, &host);
    assert!(fs::read_dir(job.dir.join("temp")).unwrap().next().is_none(), "no archive left in RUNNER_TEMP");
    eprintln!(
        "TIMING dead service {backend:?} {what}: restore {:.1} s + save {:.1} s",
        main.elapsed.as_secs_f64(),
        post.elapsed.as_secs_f64()
    );
    (main, post)
}

/// Short waits for the tests that are not about the default numbers.
const DEAD_TIMING: &str = "retry_delay=100ms,connect_timeout=2s,answer_timeout=2s,idle_timeout=2s,grace=1s";

fn refused_costs_one_retry(backend: Backend) {
    let (main, post) = whole_job_against_a_dead_service(backend, closed_port(), Some(DEAD_TIMING), "refused");
    let bound = Duration::from_secs(20);
    assert!(main.elapsed + post.elapsed < bound, "{:?} + {:?}", main.elapsed, post.elapsed);
}

fn black_hole_costs_two_answer_timeouts(backend: Backend) {
    let hole = BlackHole::start();
    let (main, post) =
        whole_job_against_a_dead_service(backend, hole.port, Some(DEAD_TIMING), "did not answer within 2 s");
    // Two answer timeouts of 2 s, and process start-up on a busy machine.
    let bound = Duration::from_secs(30);
    assert!(main.elapsed + post.elapsed < bound, "{:?} + {:?}", main.elapsed, post.elapsed);
    assert!(main.elapsed >= Duration::from_secs(4), "the service had its second chance: {:?}", main.elapsed);
}

mod dead {
    use super::Backend;
    macro_rules! per_backend {
        ($($test:ident),*) => {
            $( mod $test {
                #[test] fn v1() { super::super::$test(super::Backend::V1) }
                #[test] fn v2() { super::super::$test(super::Backend::V2) }
                #[test] fn s3() { super::super::$test(super::Backend::S3) }
            } )*
        };
    }
    per_backend!(refused_costs_one_retry, black_hole_costs_two_answer_timeouts);
}

/// A server that stops sending mid-download: each try gives up after the stall timeout (not
/// the longer idle timeout), the first is asked again at once from its last byte, the second
/// stall is the verdict, and the rest of the job tries nothing.
fn stall_costs_two_stall_timeouts(service: Service) {
    let (rig, _) = saved(service);
    rig.server().inject(Fault::Stall { route: Route::Download, times: FOREVER });
    let mut job = faulty_job(&rig);
    job.set_env("UV_NOX_CACHE_TEST_TUNING", &format!("{DEAD_TIMING},idle_timeout=30s,stall_timeout=2s"));
    let main = job.main();
    assert_degraded("stall_costs_two_stall_timeouts", &main);
    let warnings: Vec<&str> = main.stdout.lines().filter(|l| l.starts_with("::warning::")).collect();
    assert_eq!(warnings.len(), 1, "one warning for the whole step\n{}", main.log());
    assert!(warnings[0].contains("stopped sending for 2 s"), "{}", main.log());
    assert_missed(&main);
    assert!(!rig.uv_dir().exists() && !rig.nox_dir().exists(), "half-restored\n{}", main.log());
    assert_no_leftovers(&rig);
    let downloads = rig.routed(Route::Download).len();
    assert_eq!(downloads, 2, "one retry, then nothing more ({downloads} downloads)");
    let host = format!("127.0.0.1:{}", rig.server().port());
    populate(&rig.machine, "unsaved");
    let before = rig.server().entries();
    let post = job.post();
    assert_learned(&post, &host);
    assert_eq!(rig.server().entries(), before);
    // Two stall timeouts of 2 s and no retry delay, and process start-up on a busy machine.
    assert!(main.elapsed + post.elapsed < Duration::from_secs(15), "{:?} + {:?}", main.elapsed, post.elapsed);
    rig.server().clear_faults();
}

mod stall {
    #[test]
    fn v1() {
        super::stall_costs_two_stall_timeouts(super::Service::ForgejoV1)
    }
    #[test]
    fn v2() {
        super::stall_costs_two_stall_timeouts(super::Service::GithubV2)
    }
}

/// A rig whose saved nox entry holds `size` incompressible bytes (a slow download).
fn saved_large(service: Service, size: usize) -> Rig {
    let rig = Rig::new(service);
    let mut job = rig.job();
    crate::support::rig::assert_clean(&job.main());
    populate(&rig.machine, "large");
    fs::write(rig.nox_dir().join("tests/large.bin"), crate::support::noise(size, 1)).unwrap();
    crate::support::rig::assert_clean(&job.post());
    fresh_checkout(&rig.machine);
    rig
}

/// Slow but alive: a server that trickles the nox entry (600 kB at a few kB/s, over a minute)
/// is given up once the restore costs more than twice the saving job's work (here the 10 s
/// floor: the saving job did nothing); a notice with both numbers, a miss, no warning.
fn trickle_is_given_up(service: Service) {
    let rig = saved_large(service, 600_000);
    rig.server().inject(Fault::Trickle { route: Route::Download, bytes_per_sec: 2000, times: FOREVER });
    let mut job = faulty_job(&rig);
    job.input("timeout", "120");
    job.set_env("UV_NOX_CACHE_TEST_TUNING", &format!("{DEAD_TIMING},download_block=8192"));
    let main = job.main();
    crate::support::rig::assert_clean(&main);
    let notice = main.stdout.lines().find(|l| l.starts_with("::notice::nox: not restoring"));
    let notice = notice.unwrap_or_else(|| panic!("no notice\n{}", main.log()));
    assert!(notice.contains("kB/s") && notice.contains("more than 2 ×"), "{notice}");
    assert_eq!(main.output("nox-restored"), "false", "{}", main.log());
    assert!(!rig.nox_dir().exists(), "half-restored\n{}", main.log());
    assert_no_leftovers(&rig);
    assert!(main.summary.contains("too slow, given up"), "{}", main.summary);
    eprintln!("TIMING trickle {service:?}: {:.1} s: {notice}", main.elapsed.as_secs_f64());
    // The whole entry would take over a minute at this rate.
    assert!(main.elapsed < Duration::from_secs(40), "{:?}\n{}", main.elapsed, main.log());
    rig.server().clear_faults();
}

mod trickle {
    #[test]
    fn v1() {
        super::trickle_is_given_up(super::Service::ForgejoV1)
    }
    #[test]
    fn v2() {
        super::trickle_is_given_up(super::Service::GithubV2)
    }
}

/// docs/reliability.md's promise with the default timing: a refused service costs the whole
/// job's cache steps seconds (one retry after 2 s), not minutes.
#[test]
fn refused_whole_job_within_ten_seconds_by_default() {
    let (main, post) = whole_job_against_a_dead_service(Backend::V1, closed_port(), None, "refused");
    let total = main.elapsed + post.elapsed;
    assert!(total <= Duration::from_secs(10), "restore {:?} + save {:?}", main.elapsed, post.elapsed);
}

/// A black-holed service (accepts, never answers) with the default timing: two answer
/// timeouts of 20 s in the restore step, nothing in the post step; under a minute.
#[test]
fn black_holed_whole_job_within_a_minute_by_default() {
    let hole = BlackHole::start();
    let (main, post) =
        whole_job_against_a_dead_service(Backend::V2, hole.port, None, "did not answer within 20 s");
    let total = main.elapsed + post.elapsed;
    assert!(total <= Duration::from_secs(60), "restore {:?} + save {:?}", main.elapsed, post.elapsed);
}

/// A service down for the restore step and back for the post step: the job keeps its verdict
/// (the post step does not try), and the next job uses the service again.
#[test]
fn flapping_service_down_then_up() {
    let rig = Rig::new(Service::ForgejoV1);
    let port = closed_port();
    let mut job = job_at(&rig, Backend::V1, port);
    job.set_env("UV_NOX_CACHE_TEST_TUNING", DEAD_TIMING);
    let main = job.main();
    assert_degraded("flapping_service_down_then_up", &main);
    assert_missed(&main);
    let back = CacheServer::start_with(ServerConfig { port, ..ServerConfig::new(Personality::Forgejo) });
    populate(&rig.machine, "saved later");
    let post = job.post();
    assert_learned(&post, &format!("127.0.0.1:{port}"));
    assert!(back.requests().is_empty(), "the post step tried the service: {:?}", back.requests());
    // The next job finds the service up: it misses, and saves.
    let mut next = job_at(&rig, Backend::V1, port);
    crate::support::rig::assert_clean(&next.main());
    let post = next.post();
    crate::support::rig::assert_clean(&post);
    assert_eq!(back.entries().len(), 2, "{}", post.log());
}

/// A service that answers 503 to everything: every request retried within one retry budget
/// for the step, a warning, a miss, nothing stored.
fn server_error_storm(service: Service) {
    let (rig, _) = saved(service);
    rig.server().inject(Fault::Status { route: Route::Any, status: 503, times: FOREVER });
    let mut job = faulty_job(&rig);
    job.set_env("UV_NOX_CACHE_TEST_TUNING", "retry_delay=200ms,attempts=10,retry_budget=1s,grace=1s");
    let main = job.main();
    assert_degraded("server_error_storm", &main);
    assert_missed(&main);
    // Four lookups (two targets, two compressions) of up to ten attempts would wait ~1 min;
    // the budget stops the retries after about a second of waiting.
    let requests = rig.server().requests().len();
    assert!(requests < 12, "the retry budget bounds the attempts ({requests} requests)\n{}", main.log());
    let before = rig.server().entries();
    populate(&rig.machine, "unsaved");
    let post = job.post();
    assert_degraded("server_error_storm (save)", &post);
    assert_eq!(rig.server().entries(), before, "nothing saved half");
}

mod storm {
    #[test]
    fn v1() {
        super::server_error_storm(super::Service::ForgejoV1)
    }
    #[test]
    fn v2() {
        super::server_error_storm(super::Service::GithubV2)
    }
}

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

// ---- The table of docs/reliability.md: both tools, the same faults, the same server ------

/// Measures each fault on each backend with the default timing and inputs: a whole job of
/// uv-nox-cache (restore of `uv nox`, the job's work, save) beside `@actions/cache` 6.3.0
/// restoring and saving one directory through the same server, killed after 120 s. Prints the
/// Markdown table of docs/reliability.md; `scripts/bench --faults` runs it.
#[test]
#[ignore = "a measurement of several minutes: scripts/bench --faults"]
fn table_of_faults_for_both_tools() {
    use crate::support::official::{Endpoint, Official, Site};
    type Row = (&'static str, Backend);
    let rows: Vec<Row> = vec![
        ("refused", Backend::V1),
        ("refused", Backend::V2),
        ("refused", Backend::S3),
        ("black-holed", Backend::V1),
        ("black-holed", Backend::V2),
        ("black-holed", Backend::S3),
        ("503 on every request", Backend::V1),
        ("503 on every request", Backend::V2),
        ("stall mid-download", Backend::V1),
        ("stall mid-download", Backend::V2),
        ("trickle: 100 kB/s, 8 MB entry", Backend::V1),
        ("trickle: 100 kB/s, 8 MB entry", Backend::V2),
        ("down for the restore, up for the save", Backend::V1),
        ("down for the restore, up for the save", Backend::V2),
    ];
    let official = Official::provision();
    let limit = Duration::from_secs(120);
    let seconds = |d: Duration| format!("{:.1} s", d.as_secs_f64());
    let measured: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = rows
            .iter()
            .map(|&(fault, backend)| {
                let official = &official;
                scope.spawn(move || {
                    let service = match backend {
                        Backend::V1 => Service::ForgejoV1,
                        Backend::V2 => Service::GithubV2,
                        Backend::S3 => Service::Local,
                    };
                    let trickle = fault.starts_with("trickle");
                    let rig = if trickle { saved_large(service, 8_000_000) } else { saved(service).0 };
                    let hole = (fault == "black-holed").then(BlackHole::start);
                    let port = match (&hole, fault) {
                        (Some(hole), _) => hole.port,
                        (None, "refused" | "down for the restore, up for the save") => closed_port(),
                        _ => rig.server().port(),
                    };
                    let protocol = match backend {
                        Backend::V2 => Protocol::V2,
                        _ => Protocol::V1,
                    };
                    let endpoint = |port: u16| Endpoint {
                        cache_url: format!("http://127.0.0.1:{port}/7f3e2a91/"),
                        results_url: format!("http://127.0.0.1:{port}/results-receiver/"),
                        token: "test-runtime-token".into(),
                    };
                    // The official client's entry, saved while the service is well.
                    let official_home = rig.machine.root.path().join("official-home");
                    fs::create_dir_all(official_home.join("dir")).unwrap();
                    fs::write(
                        official_home.join("dir/data.bin"),
                        crate::support::noise(if trickle { 8_000_000 } else { 300_000 }, 1),
                    )
                    .unwrap();
                    let site = |port: u16| Site {
                        endpoint: endpoint(port),
                        protocol,
                        server_url: if protocol == Protocol::V2 {
                            "https://github.com"
                        } else {
                            "https://forgejo.example.org"
                        },
                        workspace: &official_home,
                        home: &official_home,
                    };
                    if backend != Backend::S3 {
                        let well = site(rig.server().port());
                        let saved = official.run(&well, &["save", "dir", "official-entry"]);
                        assert!(saved.starts_with("RESULT saved"), "{saved}");
                    }
                    match fault {
                        "503 on every request" => rig.server().inject(Fault::Status {
                            route: Route::Any,
                            status: 503,
                            times: FOREVER,
                        }),
                        "stall mid-download" => {
                            rig.server().inject(Fault::Stall { route: Route::Download, times: FOREVER })
                        }
                        _ if trickle => rig.server().inject(Fault::Trickle {
                            route: Route::Download,
                            bytes_per_sec: 100_000,
                            times: FOREVER,
                        }),
                        _ => {}
                    }
                    // uv-nox-cache: a whole job with the default timing and inputs.
                    let mut job = job_at(&rig, backend, port);
                    job.input("timeout", &crate::support::action::default_inputs()["timeout"]);
                    let main = job.main();
                    let back = (fault == "down for the restore, up for the save").then(|| {
                        CacheServer::start_with(ServerConfig {
                            port,
                            ..ServerConfig::new(if backend == Backend::V2 {
                                Personality::Github
                            } else {
                                Personality::Forgejo
                            })
                        })
                    });
                    populate(&rig.machine, "unsaved");
                    let post = job.post();
                    let ours = describe_ours(&main, &post);
                    let ours_time = format!("{} + {}", seconds(main.elapsed), seconds(post.elapsed));
                    // @actions/cache: restore, then save, of one directory.
                    let theirs = if backend == Backend::S3 {
                        ("no S3 backend".to_string(), "–".to_string())
                    } else {
                        let restore =
                            official.run_bounded(&site(port), &["restore", "dir", "official-entry"], limit);
                        fs::write(official_home.join("dir/new.bin"), b"changed").unwrap();
                        let save =
                            official.run_bounded(&site(port), &["save", "dir", "official-entry-2"], limit);
                        let time = |b: &crate::support::official::Bounded| {
                            if b.killed { format!("> {} s", limit.as_secs()) } else { seconds(b.elapsed) }
                        };
                        (
                            format!("{}; {}", describe_theirs(&restore), describe_theirs(&save)),
                            format!("{} + {}", time(&restore), time(&save)),
                        )
                    };
                    drop(back);
                    drop(hole);
                    let backend = match backend {
                        Backend::V1 => "v1",
                        Backend::V2 => "v2",
                        Backend::S3 => "s3",
                    };
                    format!("| {fault} | {backend} | {ours} | {ours_time} | {} | {} |", theirs.0, theirs.1)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // The same faults between the action and real servers (versitygw, act's own cache server).
    let measured: Vec<String> =
        measured.into_iter().chain(crate::proxied_faults::table_rows(&official, limit)).collect();
    println!(
        "| fault | backend | uv-nox-cache: what the user sees | restore + save | @actions/cache 6.3.0: what the user sees | restore + save |"
    );
    println!("|---|---|---|---|---|---|");
    for row in measured {
        println!("{row}");
    }
}

/// What a user sees of a whole job of uv-nox-cache, in a few words.
pub(crate) fn describe_ours(main: &Step, post: &Step) -> String {
    let warnings = |s: &Step| s.stdout.lines().filter(|l| l.starts_with("::warning::")).count();
    let exit = if main.code == 0 && post.code == 0 { "exit 0" } else { "the job FAILS" };
    let restored = match main.outputs.get("cache-hit").map(String::as_str) {
        Some("true") => "hit",
        _ if main.stdout.contains("costs more than it saves") => "uv hit, nox given up as too slow (notice)",
        _ if main.outputs.get("uv-restored").map(String::as_str) == Some("true") => "partial hit",
        _ => "miss",
    };
    let saved = if post.stdout.contains(": saved ") {
        "saved"
    } else if post.stdout.contains("::notice::not using the cache service") {
        "save not tried (notice)"
    } else {
        "not saved"
    };
    format!("{} warning(s), {restored}, {saved}, {exit}", warnings(main) + warnings(post))
}

/// What a user sees of one run of the official client.
pub(crate) fn describe_theirs(run: &crate::support::official::Bounded) -> String {
    if run.killed {
        return "still waiting, killed".into();
    }
    let result = match run.result.as_deref() {
        Some("RESULT miss") => "miss".to_string(),
        Some(r) if r.starts_with("RESULT restored") => "hit".into(),
        Some(r) if r.starts_with("RESULT saved") => "saved".into(),
        Some("RESULT failed") => "not saved".into(),
        _ => format!("error (exit {})", run.code.unwrap_or(-1)),
    };
    format!("{} warning(s), {result}", run.warnings)
}
