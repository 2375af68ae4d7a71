//! Faults between the action and real servers: a fault proxy (`tests/cache_server/proxy.rs`)
//! in front of versitygw (the s3 backend, `scripts/object-store`), in front of the cache
//! servers act and Gitea's act embed (`tests/runner-cache-server`, built by `scripts/runners`),
//! and in front of the Forgejo runner's cache as its daemon wires it, its cache proxy before its
//! cache server (`tests/forgejo-cache-proxy`, built by `scripts/runners`).
//! The test server injects these faults into its own answers (`faults.rs`); these servers cannot
//! be told to misbehave, so the proxy does it, worded as they word their errors.
//!
//! Each test saves through the real server, then runs a whole job (restore of `uv nox`, the
//! job's work, save) through the faulty proxy and asserts: exit 0, the warning (or the notice),
//! a miss, no partial tree and no staging directory, no archive left in `RUNNER_TEMP`, the wall
//! time of both steps under a generous bound derived from the timing the job runs with, and
//! nothing saved half — a later job, with the proxy well again, restores exactly what was saved
//! before (and the bucket holds the same entries).

use std::fs;
use std::time::Duration;

use crate::runners::servers::RealServer;
use crate::s3::ObjectStore;
use crate::support::action::{Job, Machine, Step, snapshot};
use crate::support::cache_server::proxy::{Dialect, FaultProxy, Mode};
use crate::support::cache_server::{Fault, Route};
use crate::support::rig::{Snapshot, assert_clean, checkout, fresh_checkout, populate};

/// The short waits these jobs run with: each silence costs at most [`WAIT`].
const WAIT: Duration = Duration::from_secs(2);
/// What each step may spend waiting between attempts, all requests together.
const RETRY_BUDGET: Duration = Duration::from_secs(1);
/// Process start-up, packing and unpacking on a busy two-core machine, for both steps.
const SLACK: Duration = Duration::from_secs(25);

fn timing() -> String {
    let s = WAIT.as_secs();
    let budget = RETRY_BUDGET.as_secs();
    format!(
        "retry_delay=100ms,retry_budget={budget}s,connect_timeout={s}s,answer_timeout={s}s,idle_timeout={s}s,grace=1s"
    )
}

/// A real server, and the fault proxy in front of it.
struct Proxied {
    proxy: FaultProxy,
    real: Real,
}

enum Real {
    S3(ObjectStore),
    Runner(RealServer),
}

impl Proxied {
    fn s3() -> Proxied {
        let store = ObjectStore::start();
        let proxy = FaultProxy::start(store.port(), Dialect::S3);
        Proxied { proxy, real: Real::S3(store) }
    }

    fn is_s3(&self) -> bool {
        matches!(self.real, Real::S3(_))
    }

    /// The cache server of `runner` (`act`, `gitea-act`); fails naming `scripts/runners` when
    /// it is not built and cannot be.
    fn runner(runner: &str) -> Proxied {
        let server = RealServer::start(runner);
        let port = port_of(&server.url);
        let proxy = FaultProxy::start(port, Dialect::ActV1);
        Proxied { proxy, real: Real::Runner(server) }
    }

    /// The Forgejo runner's cache proxy and cache server, the fault proxy in front of the cache
    /// proxy (the address a job gets); fails naming `scripts/runners` when not built.
    fn forgejo() -> Proxied {
        let server = RealServer::forgejo();
        let proxy = FaultProxy::start(port_of(&server.url), Dialect::ForgejoV1);
        Proxied { proxy, real: Real::Runner(server) }
    }

    /// A job on `machine` pointed at the proxy (`through_proxy`) or straight at the server.
    fn job(&self, machine: &Machine, through_proxy: bool) -> Job {
        let mut job = machine.job();
        job.input("timeout", "60");
        match &self.real {
            Real::S3(store) => {
                store.configure(&mut job);
                if through_proxy {
                    job.set_env("UV_NOX_CACHE_S3_ENDPOINT", &self.proxy.origin());
                }
            }
            Real::Runner(server) => {
                let url = if through_proxy {
                    server
                        .url
                        .replace(&format!(":{}/", port_of(&server.url)), &format!(":{}/", self.proxy.port()))
                } else {
                    server.url.clone()
                };
                // As act, Gitea's act and the Forgejo runner set them for every job.
                job.set_env("ACTIONS_CACHE_URL", &url)
                    .set_env("ACTIONS_RUNTIME_TOKEN", "job-token")
                    .set_env("GITHUB_SERVER_URL", "https://forgejo.example.org")
                    .set_env("ACT", "true");
            }
        }
        job
    }

    /// The bucket's entries (S3 only: the runners' servers cannot list theirs).
    fn entries(&self) -> Vec<String> {
        match &self.real {
            Real::S3(store) => store.entries(),
            Real::Runner(_) => Vec::new(),
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.proxy.port())
    }
}

fn port_of(url: &str) -> u16 {
    let rest = url.strip_prefix("http://127.0.0.1:").unwrap_or_else(|| panic!("{url}"));
    rest.split('/').next().unwrap().parse().unwrap_or_else(|_| panic!("{url}"))
}

/// A machine whose `uv nox` entries were saved through the real server; the checkout is fresh.
fn saved(site: &Proxied, large_nox: Option<usize>) -> (Machine, (Snapshot, Snapshot)) {
    let machine = Machine::new();
    checkout(&machine);
    let mut job = site.job(&machine, false);
    assert_clean(&job.main());
    populate(&machine, "cached");
    if let Some(size) = large_nox {
        fs::write(dirs(&machine).1.join("tests/large.bin"), crate::support::noise(size, 1)).unwrap();
    }
    let trees = (snapshot(&dirs(&machine).0), snapshot(&dirs(&machine).1));
    let post = job.post();
    assert_clean(&post);
    assert!(post.stdout.contains("uv: saved") && post.stdout.contains("nox: saved"), "{}", post.log());
    fresh_checkout(&machine);
    (machine, trees)
}

fn dirs(machine: &Machine) -> (std::path::PathBuf, std::path::PathBuf) {
    (machine.home.join(".cache/uv"), machine.workspace.join(".nox"))
}

fn warnings(step: &Step) -> Vec<&str> {
    step.stdout.lines().filter(|l| l.starts_with("::warning::")).collect()
}

/// What a faulty job must show in every case.
fn assert_survived(machine: &Machine, job: &Job, step: &Step) {
    assert_eq!(step.code, 0, "{}", step.log());
    assert!(!step.stdout.contains("::error::"), "{}", step.log());
    for parent in [machine.workspace.clone(), machine.home.join(".cache")] {
        for entry in fs::read_dir(&parent).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(
                !name.contains(".restoring-"),
                "left behind: {}\n{}",
                parent.join(name).display(),
                step.log()
            );
        }
    }
    let temp: Vec<_> = fs::read_dir(job.dir.join("temp")).into_iter().flatten().flatten().collect();
    assert!(temp.is_empty(), "left in RUNNER_TEMP: {temp:?}\n{}", step.log());
}

/// A miss with a warning, nothing restored, nothing half-restored.
fn assert_missed(machine: &Machine, job: &Job, main: &Step) {
    assert_survived(machine, job, main);
    assert!(!warnings(main).is_empty(), "no warning\n{}", main.log());
    main.assert_hits("false");
    let (uv, nox) = dirs(machine);
    assert!(!uv.exists() && !nox.exists(), "half-restored\n{}", main.log());
}

/// The post step of a job whose restore found the service down: a notice, nothing tried.
fn assert_learned(site: &Proxied, post: &Step) {
    let notice = format!("::notice::not using the cache service at {} in this step", site.host());
    assert!(post.stdout.contains(&notice), "{}", post.log());
    assert!(warnings(post).is_empty() && !post.stdout.contains(": saved "), "{}", post.log());
}

/// Both steps within `bound`.
fn assert_within(what: &str, main: &Step, post: &Step, bound: Duration) {
    let test = std::thread::current().name().unwrap_or(what).to_string();
    eprintln!(
        "TIMING {test}: restore {:.1} s + save {:.1} s (bound {} s)",
        main.elapsed.as_secs_f64(),
        post.elapsed.as_secs_f64(),
        bound.as_secs()
    );
    assert!(
        main.elapsed + post.elapsed <= bound,
        "{what}: restore {:?} + save {:?}, past {bound:?}",
        main.elapsed,
        post.elapsed
    );
}

/// Nothing saved half: with the proxy well again, a later job restores exactly what was saved
/// before the fault, and the bucket holds the same entries.
fn assert_nothing_saved_half(
    site: &Proxied,
    machine: &Machine,
    trees: &(Snapshot, Snapshot),
    entries: &[String],
) {
    site.proxy.clear_faults();
    site.proxy.set_mode(Mode::Forward);
    assert_eq!(site.entries(), entries, "the bucket's entries changed");
    fresh_checkout(machine);
    let later = site.job(machine, true).main();
    assert_clean(&later);
    later.assert_hits("true");
    let (uv, nox) = dirs(machine);
    assert_eq!(&(snapshot(&uv), snapshot(&nox)), trees, "a later restore took another entry");
}

/// The restore step of a job through the proxy, `fault` set first.
fn faulty_job(site: &Proxied, machine: &Machine, fault: impl FnOnce(&FaultProxy)) -> (Job, Step) {
    site.proxy.clear_requests();
    fault(&site.proxy);
    let mut job = site.job(machine, true);
    job.set_env("UV_NOX_CACHE_TEST_TUNING", &timing());
    let main = job.main();
    (job, main)
}

fn save_after(machine: &Machine, job: &mut Job) -> Step {
    populate(machine, "unsaved");
    let post = job.post();
    assert_survived(machine, job, &post);
    post
}

// ---- The faults ---------------------------------------------------------------------------

/// Connections refused: one retry, the verdict, a post step that tries nothing.
fn refused(site: Proxied) {
    let (machine, trees) = saved(&site, None);
    let entries = site.entries();
    let (mut job, main) = faulty_job(&site, &machine, |proxy| proxy.set_mode(Mode::Down));
    assert_missed(&machine, &job, &main);
    let warned = warnings(&main);
    assert!(
        warned.len() == 1 && warned[0].contains(&site.host()) && warned[0].contains("refused"),
        "{}",
        main.log()
    );
    let post = save_after(&machine, &mut job);
    assert_learned(&site, &post);
    assert_within("refused", &main, &post, 2 * WAIT + SLACK);
    assert_nothing_saved_half(&site, &machine, &trees, &entries);
}

/// Accepts, never answers: two answer timeouts, the verdict.
fn black_holed(site: Proxied) {
    let (machine, trees) = saved(&site, None);
    let entries = site.entries();
    let (mut job, main) = faulty_job(&site, &machine, |proxy| proxy.set_mode(Mode::BlackHole));
    assert_missed(&machine, &job, &main);
    let warned = warnings(&main);
    let words = format!("did not answer within {} s", WAIT.as_secs());
    assert!(warned.len() == 1 && warned[0].contains(&words), "{}", main.log());
    assert!(main.elapsed >= 2 * WAIT, "the service had its second chance: {:?}", main.elapsed);
    let post = save_after(&machine, &mut job);
    assert_learned(&site, &post);
    assert_within("black-holed", &main, &post, 2 * WAIT + SLACK);
    assert_nothing_saved_half(&site, &machine, &trees, &entries);
}

/// The real server's answer stops half-way through the body: two idle timeouts, the verdict.
fn stalls_mid_download(site: Proxied) {
    let (machine, trees) = saved(&site, None);
    let entries = site.entries();
    let (mut job, main) = faulty_job(&site, &machine, |proxy| {
        proxy.inject(Fault::Stall { route: Route::Download, times: usize::MAX })
    });
    assert_missed(&machine, &job, &main);
    let warned = warnings(&main);
    let words = format!("stopped sending for {} s", WAIT.as_secs());
    assert!(warned.len() == 1 && warned[0].contains(&words), "{}", main.log());
    let downloads = site.proxy.routed(Route::Download).len();
    assert_eq!(downloads, 2, "one retry, then nothing more ({downloads} downloads)\n{}", main.log());
    let before = site.proxy.requests().len();
    let post = save_after(&machine, &mut job);
    assert_learned(&site, &post);
    assert_eq!(site.proxy.requests().len(), before, "the post step made requests");
    assert_within("stall", &main, &post, 2 * WAIT + SLACK);
    assert_nothing_saved_half(&site, &machine, &trees, &entries);
}

/// Every request answered `status` in the server's words: retried within one retry budget, a
/// miss, and a save that fails with a warning.
fn server_error_storm(site: Proxied, status: u16) {
    let (machine, trees) = saved(&site, None);
    let entries = site.entries();
    let (mut job, main) = faulty_job(&site, &machine, |proxy| {
        proxy.inject(Fault::Status { route: Route::Any, status, times: usize::MAX })
    });
    assert_missed(&machine, &job, &main);
    assert!(warnings(&main).iter().any(|w| w.contains(&status.to_string())), "{}", main.log());
    // An XML error answer (S3's `SlowDown`) is told by its code and message, not as markup.
    assert!(warnings(&main).iter().all(|w| !w.contains("<Error>") && !w.contains("<?xml")), "{}", main.log());
    if site.is_s3() {
        assert!(warnings(&main).iter().any(|w| w.contains("SlowDown: ")), "{}", main.log());
    }
    let post = save_after(&machine, &mut job);
    assert!(!warnings(&post).is_empty() && !post.stdout.contains(": saved "), "{}", post.log());
    // Every wait between attempts of both steps comes out of the budget of each step.
    assert_within("503 storm", &main, &post, 2 * RETRY_BUDGET + SLACK);
    let requests = site.proxy.requests().len();
    assert!(requests < 40, "the retry budget bounds the attempts ({requests} requests)");
    assert_nothing_saved_half(&site, &machine, &trees, &entries);
}

/// Down for the restore (refused), up for the save: the job keeps its verdict and the post step
/// does not try; the next job uses the service again and hits.
fn flapping(site: Proxied) {
    let (machine, trees) = saved(&site, None);
    let entries = site.entries();
    let (mut job, main) = faulty_job(&site, &machine, |proxy| proxy.set_mode(Mode::Down));
    assert_missed(&machine, &job, &main);
    site.proxy.set_mode(Mode::Forward);
    let post = save_after(&machine, &mut job);
    assert_learned(&site, &post);
    assert!(site.proxy.requests().is_empty(), "the post step tried the service: {:?}", site.proxy.requests());
    assert_within("flapping", &main, &post, 2 * WAIT + SLACK);
    assert_nothing_saved_half(&site, &machine, &trees, &entries);
}

/// A trickle (2 kB/s) on a 600 kB nox entry, which would take five minutes: given up once it
/// costs more than the saving job's work (here the floor of `pace.rs`), a notice and a miss.
fn trickle(site: Proxied) {
    use uv_nox_cache::backend::pace::FLOOR;
    let (machine, _) = saved(&site, Some(600_000));
    let entries = site.entries();
    let (rate, block) = (2000, 8192);
    site.proxy.inject(Fault::Trickle { route: Route::Download, bytes_per_sec: rate, times: usize::MAX });
    let mut job = site.job(&machine, true);
    job.set_env("UV_NOX_CACHE_TEST_TUNING", &format!("{},download_block={block}", timing()))
        .input("timeout", "120");
    let main = job.main();
    assert_survived(&machine, &job, &main);
    let notice = main.stdout.lines().find(|l| l.starts_with("::notice::nox: not restoring"));
    let notice = notice.unwrap_or_else(|| panic!("no notice\n{}", main.log()));
    assert!(notice.contains("kB/s") && notice.contains("more than 2 ×"), "{notice}");
    assert_eq!(main.output("nox-restored"), "false", "{}", main.log());
    assert!(!dirs(&machine).1.exists(), "half-restored\n{}", main.log());
    assert!(main.summary.contains("too slow, given up"), "{}", main.summary);
    let post = save_after(&machine, &mut job);
    // Judged between blocks: the floor, then the block under way, for each target.
    let block_time = Duration::from_secs_f64(block as f64 / rate as f64);
    assert_within("trickle", &main, &post, FLOOR + 2 * block_time + 2 * SLACK);
    site.proxy.clear_faults();
    let kept = site.entries();
    assert!(entries.iter().all(|e| kept.contains(e)), "{entries:?} → {kept:?}");
}

// ---- Per server ---------------------------------------------------------------------------

mod s3 {
    use super::Proxied;
    #[test]
    fn stalls_mid_download() {
        super::stalls_mid_download(Proxied::s3())
    }
    #[test]
    fn server_error_storm() {
        super::server_error_storm(Proxied::s3(), 503)
    }
    #[test]
    fn flapping() {
        super::flapping(Proxied::s3())
    }
    #[test]
    fn trickle() {
        super::trickle(Proxied::s3())
    }
}

macro_rules! runner_server {
    ($runner:ident, $name:literal) => {
        mod $runner {
            use super::Proxied;
            #[test]
            fn refused() {
                super::refused(Proxied::runner($name))
            }
            #[test]
            fn black_holed() {
                super::black_holed(Proxied::runner($name))
            }
            #[test]
            fn stalls_mid_download() {
                super::stalls_mid_download(Proxied::runner($name))
            }
            #[test]
            fn server_error_storm() {
                super::server_error_storm(Proxied::runner($name), 503)
            }
            #[test]
            fn flapping() {
                super::flapping(Proxied::runner($name))
            }
        }
    };
}

runner_server!(act, "act");
runner_server!(gitea_act, "gitea-act");

/// The Forgejo runner's cache: its cache proxy in front of its cache server, as its daemon
/// starts them, the fault proxy in front of both.
mod forgejo {
    use super::Proxied;
    #[test]
    fn refused() {
        super::refused(Proxied::forgejo())
    }
    #[test]
    fn black_holed() {
        super::black_holed(Proxied::forgejo())
    }
    #[test]
    fn stalls_mid_download() {
        super::stalls_mid_download(Proxied::forgejo())
    }
    /// 503 on every request, in the cache server's `{"error": …}` words.
    #[test]
    fn server_error_storm() {
        super::server_error_storm(Proxied::forgejo(), 503)
    }
    /// 502 with no body, as the runner's cache proxy answers when its cache server is gone
    /// (an external `forgejo-runner cache-server` stopped, the runner still up).
    #[test]
    fn bad_gateway_storm() {
        super::server_error_storm(Proxied::forgejo(), 502)
    }
    #[test]
    fn flapping() {
        super::flapping(Proxied::forgejo())
    }
    #[test]
    fn trickle() {
        super::trickle(Proxied::forgejo())
    }
}

// ---- The rows of docs/reliability.md's table behind the proxy -------------------------------

const TRICKLE: &str = "trickle: 100 kB/s, 8 MB nox entry";
const FLAP: &str = "down for the restore, up for the save";
const BAD_GATEWAY: &str = "502 on every request (the cache proxy's own, its server gone)";
const FORGEJO: &str = "v1 (the Forgejo runner's cache proxy and server)";

/// The faults of the table measured behind the proxy, on S3 (versitygw), on act's own cache
/// server and on the Forgejo runner's cache, with the default timing and inputs; the official
/// client beside ours on the runners' servers (it has no S3 backend). Rows in the table's
/// Markdown; `faults::table_of_faults_for_both_tools` prints them with the rest.
pub(crate) fn table_rows(official: &crate::support::official::Official, limit: Duration) -> Vec<String> {
    let mut rows: Vec<(&str, &str)> = vec![
        ("stall mid-download", "s3 (versitygw)"),
        ("503 SlowDown on every request", "s3 (versitygw)"),
        (TRICKLE, "s3 (versitygw)"),
        (FLAP, "s3 (versitygw)"),
        ("refused", "v1 (act's server)"),
        ("black-holed", "v1 (act's server)"),
        ("stall mid-download", "v1 (act's server)"),
        ("503 on every request", "v1 (act's server)"),
        (TRICKLE, "v1 (act's server)"),
        (FLAP, "v1 (act's server)"),
    ];
    rows.extend(forgejo_rows());
    measure_rows(official, limit, &rows)
}

/// The rows of the Forgejo runner's cache.
fn forgejo_rows() -> Vec<(&'static str, &'static str)> {
    ["refused", "black-holed", "stall mid-download", "503 on every request", BAD_GATEWAY, TRICKLE, FLAP]
        .into_iter()
        .map(|fault| (fault, FORGEJO))
        .collect()
}

/// Each `(fault, backend)` measured for both tools, at once (one thread each).
fn measure_rows(
    official: &crate::support::official::Official,
    limit: Duration,
    rows: &[(&str, &str)],
) -> Vec<String> {
    use crate::faults::{describe_ours, describe_theirs};
    use crate::support::action::Protocol;
    use crate::support::official::{Bounded, Endpoint, Site};
    let seconds = |d: Duration| format!("{:.1} s", d.as_secs_f64());
    std::thread::scope(|scope| {
        let handles: Vec<_> = rows
            .iter()
            .map(|&(fault, backend)| {
                scope.spawn(move || {
                    let s3 = backend.starts_with("s3");
                    let site = match backend {
                        _ if s3 => Proxied::s3(),
                        FORGEJO => Proxied::forgejo(),
                        _ => Proxied::runner("act"),
                    };
                    let trickle = fault == TRICKLE;
                    let (machine, _) = saved(&site, trickle.then_some(8_000_000));
                    // The official client's entry, saved while the service is well.
                    let home = machine.root.path().join("official-home");
                    fs::create_dir_all(home.join("dir")).unwrap();
                    let size = if trickle { 8_000_000 } else { 300_000 };
                    fs::write(home.join("dir/data.bin"), crate::support::noise(size, 1)).unwrap();
                    let url =
                        site.job(&machine, true).env.get("ACTIONS_CACHE_URL").cloned().unwrap_or_default();
                    let official_site = Site {
                        endpoint: Endpoint {
                            cache_url: url,
                            results_url: String::new(),
                            token: "job-token".into(),
                        },
                        protocol: Protocol::V1,
                        server_url: "https://forgejo.example.org",
                        workspace: &home,
                        home: &home,
                    };
                    if !s3 {
                        let saved = official.run(&official_site, &["save", "dir", "official-entry"]);
                        assert!(saved.starts_with("RESULT saved"), "{saved}");
                    }
                    let proxy = &site.proxy;
                    let apply = || match fault {
                        "refused" | FLAP => proxy.set_mode(Mode::Down),
                        "black-holed" => proxy.set_mode(Mode::BlackHole),
                        "stall mid-download" => {
                            proxy.inject(Fault::Stall { route: Route::Download, times: usize::MAX })
                        }
                        BAD_GATEWAY => {
                            proxy.inject(Fault::Status { route: Route::Any, status: 502, times: usize::MAX })
                        }
                        TRICKLE => proxy.inject(Fault::Trickle {
                            route: Route::Download,
                            bytes_per_sec: 100_000,
                            times: usize::MAX,
                        }),
                        _ => {
                            proxy.inject(Fault::Status { route: Route::Any, status: 503, times: usize::MAX })
                        }
                    };
                    let heal = || {
                        proxy.clear_faults();
                        proxy.set_mode(Mode::Forward);
                    };
                    // uv-nox-cache: a whole job with the default timing and inputs.
                    apply();
                    let mut job = site.job(&machine, true);
                    job.input("timeout", &crate::support::action::default_inputs()["timeout"]);
                    let main = job.main();
                    if fault == FLAP {
                        heal();
                    }
                    populate(&machine, "unsaved");
                    let post = job.post();
                    let ours = describe_ours(&main, &post);
                    let ours_time = format!("{} + {}", seconds(main.elapsed), seconds(post.elapsed));
                    // @actions/cache: restore, then save, of one directory, on the same fault.
                    let theirs = if s3 {
                        ("no S3 backend".to_string(), "–".to_string())
                    } else {
                        heal();
                        apply();
                        let restore = official.run_bounded(
                            &official_site,
                            &["restore", "dir", "official-entry"],
                            limit,
                        );
                        if fault == FLAP {
                            heal();
                        }
                        fs::write(home.join("dir/new.bin"), b"changed").unwrap();
                        let save =
                            official.run_bounded(&official_site, &["save", "dir", "official-entry-2"], limit);
                        let time = |b: &Bounded| {
                            if b.killed { format!("> {} s", limit.as_secs()) } else { seconds(b.elapsed) }
                        };
                        (
                            format!("{}; {}", describe_theirs(&restore), describe_theirs(&save)),
                            format!("{} + {}", time(&restore), time(&save)),
                        )
                    };
                    heal();
                    format!("| {fault} | {backend} | {ours} | {ours_time} | {} | {} |", theirs.0, theirs.1)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Prints [`table_rows`] alone: the rows behind the proxy, without the rest of the table.
#[test]
#[ignore = "a measurement of several minutes: scripts/bench --faults runs the whole table"]
fn table_rows_behind_the_proxy() {
    let official = crate::support::official::Official::provision();
    for row in table_rows(&official, Duration::from_secs(120)) {
        println!("{row}");
    }
}

/// Prints the rows of the Forgejo runner's cache alone.
#[test]
#[ignore = "a measurement of a few minutes: scripts/bench --faults runs the whole table"]
fn forgejo_table_rows_behind_the_proxy() {
    let official = crate::support::official::Official::provision();
    for row in measure_rows(&official, Duration::from_secs(120), &forgejo_rows()) {
        println!("{row}");
    }
}
