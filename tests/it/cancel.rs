//! Cancellation, as a runner does it: SIGINT (then SIGTERM) to the step's entry process, the
//! Node launcher. For each step and each signal, the step is caught in the middle of its work —
//! a restore with half an archive extracted into its staging directory, a save with its archive
//! packed in `RUNNER_TEMP` and its upload hanging — and must then stop promptly, remove its
//! staging directory and temporary archive, leave the target and the store as they were, and
//! die of the same signal. A run killed outright (SIGKILL) leaves its staging directory: the
//! key search ignores it and the next restore removes it.
//!
//! The moment to signal is found by watching for the half-made state itself (the staging
//! directory, the archive, the request the server is holding), never by sleeping.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::action::{Job, Step, snapshot};
use crate::support::cache_server::{Fault, Route};
use crate::support::rig::{FAST_TIMING, Rig, Service, Snapshot, assert_clean, fresh_checkout, populate};

/// How long a signalled step may take to end: the action gives stuck work 2 s to stop, and a
/// busy machine needs time to start and end processes.
const PROMPTLY: Duration = Duration::from_secs(15);
/// How long to wait for the step to reach the state it is to be caught in.
const REACH: Duration = Duration::from_secs(120);

/// A project whose `.nox` is big (16 MiB in 16 files) and holds a key file of its own
/// (`pyproject.toml`, archived before the big files), as an env with the project's sources
/// does.
fn populate_big(rig: &Rig, tag: &str) {
    populate(&rig.machine, tag);
    let lib = rig.nox_dir().join("tests/lib");
    fs::create_dir_all(lib.join("zz-big")).unwrap();
    fs::write(lib.join("pyproject.toml"), format!("[project]\nname = \"{tag}\"\n")).unwrap();
    for i in 0..16 {
        fs::write(lib.join(format!("zz-big/part{i:02}.bin")), crate::support::noise(1 << 20, i + 1)).unwrap();
    }
}

/// A job with the shrunk timing, caching `.nox` only.
fn fast_job(rig: &Rig) -> Job {
    let mut job = rig.job();
    job.set_env("UV_NOX_CACHE_TEST_TUNING", FAST_TIMING);
    job.input("targets", "nox");
    job
}

/// The staging directories (`.<target>.restoring-…`) beside either target.
fn staging_dirs(rig: &Rig) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for parent in [rig.machine.workspace.clone(), rig.machine.home.join(".cache")] {
        let Ok(entries) = fs::read_dir(&parent) else { continue };
        found.extend(
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().contains(".restoring-"))
                .map(|e| e.path()),
        );
    }
    found
}

/// Files in `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.path().is_dir() {
                stack.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    out
}

/// Waits until `reached` gives something, for up to [`REACH`].
fn wait_for<T>(what: &str, reached: impl Fn() -> Option<T>) -> T {
    let until = Instant::now() + REACH;
    loop {
        if let Some(found) = reached() {
            return found;
        }
        assert!(Instant::now() < until, "waited {REACH:?} for {what}, in vain");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Killed by `signal`, in time, with a warning that says so.
fn assert_cancelled(step: &Step, signal: i32, signalled: Instant) {
    let took = signalled.elapsed();
    assert_eq!(step.signal, Some(signal), "the step dies of the signal it got\n{}", step.log());
    assert!(
        took < PROMPTLY,
        "the step took {took:?} to end after the signal, past {PROMPTLY:?}\n{}",
        step.log()
    );
    assert!(
        step.stdout.lines().any(|l| l.starts_with("::warning::") && l.contains("cancelled by SIG")),
        "{}",
        step.log()
    );
}

/// A rig holding both targets, a checkout whose `.nox` and uv cache are `already here`, and
/// the server set to stall the download half-way.
fn rig_with_a_stalling_download(service: Service) -> (Rig, (Snapshot, Snapshot)) {
    let rig = Rig::new(service);
    let mut first = fast_job(&rig);
    assert_clean(&first.main());
    populate_big(&rig, "cached");
    assert_clean(&first.post());
    populate(&rig.machine, "already here");
    let before = (snapshot(&rig.uv_dir()), snapshot(&rig.nox_dir()));
    rig.server().clear_requests();
    // Downloads go in ranges (both protocols, the server serving `Range`), and a range is
    // handed on only once it is whole: the first one is served, the later ones stall.
    let stall = Fault::Stall { route: Route::Download, times: usize::MAX };
    rig.server().inject(Fault::Later { skip: 1, fault: Box::new(stall) });
    (rig, before)
}

/// Half of `.nox`'s archive extracted into its staging directory: some big part is there.
fn half_extracted(rig: &Rig) -> Option<PathBuf> {
    staging_dirs(rig).into_iter().find(|dir| {
        files_under(dir).iter().any(|f| f.file_name().unwrap().to_string_lossy().starts_with("part"))
    })
}

fn restore_is_cancelled_by(signal: i32, service: Service) {
    let (rig, before) = rig_with_a_stalling_download(service);
    let job = fast_job(&rig);
    let running = job.start_main();
    let staging = wait_for("the restore to extract half of .nox", || half_extracted(&rig));
    let signalled = Instant::now();
    running.signal(signal);
    let step = running.finish();
    assert_cancelled(&step, signal, signalled);
    assert!(!staging.exists(), "the staging directory is removed: {}\n{}", staging.display(), step.log());
    assert!(staging_dirs(&rig).is_empty(), "{:?}", staging_dirs(&rig));
    assert_eq!((snapshot(&rig.uv_dir()), snapshot(&rig.nox_dir())), before, "the targets are as they were");
    assert!(files_under(&job.dir.join("temp")).is_empty(), "{:?}", files_under(&job.dir.join("temp")));
}

#[test]
fn restore_stops_on_sigint() {
    restore_is_cancelled_by(libc::SIGINT, Service::GithubV2);
}

#[test]
fn restore_stops_on_sigterm() {
    restore_is_cancelled_by(libc::SIGTERM, Service::ForgejoV1);
}

/// The save's archive in `RUNNER_TEMP` (`uv-nox-cache-….archive`), if there is one.
fn temp_archives(job: &Job) -> Vec<PathBuf> {
    files_under(&job.dir.join("temp"))
        .into_iter()
        .filter(|f| f.file_name().unwrap().to_string_lossy().ends_with(".archive"))
        .collect()
}

fn save_is_cancelled_by(signal: i32, service: Service) {
    let rig = Rig::new(service);
    let mut job = fast_job(&rig);
    assert_clean(&job.main());
    populate_big(&rig, "unsaved");
    let before = snapshot(&rig.nox_dir());
    // The reservation's answer stops half-way, so the upload hangs while the archive exists.
    rig.server().inject(Fault::Stall { route: Route::Reserve, times: usize::MAX });
    let running = job.start_post();
    let archive = wait_for("the save to pack its archive while the upload hangs", || {
        let reserving = !rig.routed(Route::Reserve).is_empty();
        temp_archives(&job).into_iter().next().filter(|_| reserving)
    });
    let signalled = Instant::now();
    running.signal(signal);
    let step = running.finish();
    assert_cancelled(&step, signal, signalled);
    assert!(!archive.exists(), "the temporary archive is removed: {}\n{}", archive.display(), step.log());
    assert!(temp_archives(&job).is_empty());
    assert!(rig.server().entries().is_empty(), "nothing was stored: {:?}", rig.server().entries());
    assert_eq!(snapshot(&rig.nox_dir()), before, "the target is untouched");
}

#[test]
fn save_stops_on_sigint() {
    save_is_cancelled_by(libc::SIGINT, Service::ForgejoV1);
}

#[test]
fn save_stops_on_sigterm() {
    save_is_cancelled_by(libc::SIGTERM, Service::GithubV2);
}

/// SIGKILL leaves the staging directory (with a `pyproject.toml` inside): the keys do not
/// change because of it, and the next restore removes it and restores cleanly.
#[test]
fn a_killed_restore_leaves_nothing_the_next_run_trips_on() {
    let (rig, _) = rig_with_a_stalling_download(Service::GithubV2);
    fresh_checkout(&rig.machine);
    let job = fast_job(&rig);
    let keys = job.keys();
    let running = job.start_main();
    // Small files are written by a pool of threads (archive/file_pool.rs), so the key file that
    // comes before the big parts in the archive may land a moment after them.
    let staging = wait_for("the restore to extract half of .nox, key file included", || {
        half_extracted(&rig).filter(|dir| files_under(dir).iter().any(|f| f.ends_with("pyproject.toml")))
    });
    // As the runner's last resort does: the launcher and the binary, the whole process tree.
    running.kill_tree();
    let step = running.finish();
    assert_eq!(step.signal, Some(libc::SIGKILL), "{}", step.log());
    assert!(staging.exists(), "SIGKILL leaves the staging directory");
    assert!(
        files_under(&staging).iter().any(|f| f.ends_with("pyproject.toml")),
        "the staging directory holds a key file: {:?}",
        files_under(&staging)
    );
    assert_eq!(job.keys(), keys, "the key search ignores the staging directory");

    rig.server().clear_faults();
    let main = fast_job(&rig).main();
    assert_clean(&main);
    assert_eq!(main.output("cache-hit"), "true", "{}", main.log());
    assert!(!staging.exists(), "the next restore removed {}\n{}", staging.display(), main.log());
    assert!(staging_dirs(&rig).is_empty(), "{:?}", staging_dirs(&rig));
    assert!(main.stdout.contains("left by a run that was killed"), "{}", main.log());
}
