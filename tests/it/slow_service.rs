//! A cache service that stalls or crawls costs a job seconds (docs/reliability.md, "A dead, hung
//! or slow service"): a download that stalls part-way is given up after two stall timeouts of
//! 8 s (the second ask resuming from the last byte received), and a save that would take longer
//! than the job itself is given up with a notice, nothing committed. Real sockets throughout:
//! the test cache server stalls a download or reads an upload at a trickle, and a proxy in
//! front of the real S3 store (versitygw) carries uploads at a trickle.

use std::fs;
use std::time::Duration;

use crate::support::cache_server::proxy::{Dialect, FaultProxy};
use crate::support::cache_server::{Fault, Route};
use crate::support::rig::{Rig, Service, fresh_checkout, populate, save_job};

/// No staging directory is left beside either target, and no archive in `RUNNER_TEMP`.
fn assert_no_leftovers(rig: &Rig, job_dir: &std::path::Path) {
    crate::faults::assert_no_leftovers(rig);
    let temp: Vec<_> = fs::read_dir(job_dir.join("temp")).unwrap().flatten().map(|e| e.path()).collect();
    assert!(temp.is_empty(), "left in RUNNER_TEMP: {temp:?}");
}

/// A server that stops sending in the middle of every download, with the default timing: the
/// first stall is asked again at once from its last byte, the second is the verdict; the
/// restore step costs two stall timeouts (8 s), not two idle timeouts (30 s) and a retry delay.
fn stall_with_the_default_timing(service: Service) {
    let rig = Rig::new(service);
    save_job(&rig, "cached");
    fresh_checkout(&rig.machine);
    rig.server().clear_requests();
    rig.server().inject(Fault::Stall { route: Route::Download, times: usize::MAX });
    let mut job = rig.job();
    let main = job.main();
    assert_eq!(main.code, 0, "{}", main.log());
    assert!(!main.stdout.contains("::error::"), "{}", main.log());
    let warnings: Vec<&str> = main.stdout.lines().filter(|l| l.starts_with("::warning::")).collect();
    assert_eq!(warnings.len(), 1, "one warning for the whole step\n{}", main.log());
    assert!(warnings[0].contains("stopped sending for 8 s"), "{}", main.log());
    main.assert_hits("false");
    assert!(!rig.uv_dir().exists() && !rig.nox_dir().exists(), "half-restored\n{}", main.log());
    // The second ask resumed where the first stalled.
    let downloads = rig.routed(Route::Download);
    assert_eq!(downloads.len(), 2, "one resumed ask, then nothing more: {downloads:?}");
    let range = |i: usize| {
        let header = downloads[i].headers.iter().find(|(n, _)| n == "range").map(|(_, v)| v.clone());
        header.unwrap_or_else(|| panic!("no Range on download {i}: {downloads:?}"))
    };
    assert!(range(0).starts_with("bytes=0-"), "{}", range(0));
    assert!(!range(1).starts_with("bytes=0-"), "the second ask starts over: {}", range(1));
    populate(&rig.machine, "unsaved");
    let before = rig.server().entries();
    let post = job.post();
    assert_eq!(post.code, 0, "{}", post.log());
    assert_eq!(rig.server().entries(), before, "the post step saved to a service found down");
    assert_no_leftovers(&rig, &job.dir);
    let total = main.elapsed + post.elapsed;
    eprintln!(
        "TIMING stall {service:?} (default timing): {:.1} s + {:.1} s",
        main.elapsed.as_secs_f64(),
        post.elapsed.as_secs_f64()
    );
    // Two stall timeouts of 8 s; 40 s leaves room for a busy machine, and fails the 65 s the
    // idle timeout cost before.
    assert!(main.elapsed >= Duration::from_secs(16), "the service had its second chance: {:?}", main.elapsed);
    assert!(total < Duration::from_secs(40), "{:?} + {:?}\n{}", main.elapsed, post.elapsed, main.log());
    rig.server().clear_faults();
}

#[test]
fn stall_with_the_default_timing_v1() {
    stall_with_the_default_timing(Service::ForgejoV1)
}

/// A server that takes uploads at 50 kB/s: the 30 MB nox archive would take ten minutes, far
/// longer than the job, so its upload is given up after the 10 s floor with a notice giving
/// both numbers; nothing of it is committed, the step exits 0, nothing is left behind.
fn trickled_save_is_given_up(service: Service) {
    let rig = Rig::new(service);
    let mut job = rig.job();
    job.input("timeout", "300");
    crate::support::rig::assert_clean(&job.main());
    populate(&rig.machine, "large");
    fs::write(rig.nox_dir().join("tests/large.bin"), crate::support::noise(30_000_000, 1)).unwrap();
    rig.server().set_upload_rate(Some(50_000));
    let post = job.post();
    rig.server().set_upload_rate(None);
    assert_eq!(post.code, 0, "{}", post.log());
    assert!(!post.stdout.contains("::error::"), "{}", post.log());
    let notice = post.stdout.lines().find(|l| l.starts_with("::notice::nox: not saving"));
    let notice = notice.unwrap_or_else(|| panic!("no notice\n{}", post.log()));
    assert!(notice.contains("kB/s") && notice.contains("this job has run so far"), "{notice}");
    assert!(notice.contains("nothing is stored"), "{notice}");
    assert!(post.summary.contains("too slow, given up"), "{}", post.summary);
    let nox_entries: Vec<_> = rig
        .server()
        .entries()
        .into_iter()
        .filter(|(key, _, _)| key.starts_with("uv-nox-cache-1-nox-"))
        .collect();
    assert!(nox_entries.is_empty(), "committed: {nox_entries:?}\n{}", post.log());
    assert_no_leftovers(&rig, &job.dir);
    eprintln!("TIMING trickled save {service:?}: {:.1} s: {notice}", post.elapsed.as_secs_f64());
    // Given up after 10 s of uploading; at 50 kB/s the whole archive takes 600 s; the
    // socket buffers swallow the first megabytes and the connection takes more only every
    // ~25 s at this rate, so the judgement comes after 10-30 s.
    assert!(post.elapsed < Duration::from_secs(90), "{:?}\n{}", post.elapsed, post.log());
}

mod trickled_save {
    #[test]
    fn v1() {
        super::trickled_save_is_given_up(super::Service::ForgejoV1)
    }
    #[test]
    fn v2() {
        super::trickled_save_is_given_up(super::Service::GithubV2)
    }
}

/// The same on S3 (versitygw), through a link that carries uploads at 50 kB/s: the save is
/// given up, and the bucket holds no entry.
#[test]
fn trickled_save_is_given_up_s3() {
    let store = crate::s3::ObjectStore::start();
    let machine = crate::support::action::Machine::new();
    let mut job = machine.job();
    job.input("targets", "uv").input("uv-cache-dir", "~/.cache/uv").input("timeout", "300");
    store.configure(&mut job);
    crate::support::rig::assert_clean(&job.main());
    let uv = machine.home.join(".cache/uv");
    fs::create_dir_all(uv.join("wheels")).unwrap();
    fs::write(uv.join("wheels/large.bin"), crate::support::noise(30_000_000, 1)).unwrap();
    let proxy = FaultProxy::start(store.port(), Dialect::S3);
    proxy.set_upload_rate(Some(50_000));
    job.set_env("UV_NOX_CACHE_S3_ENDPOINT", &proxy.origin());
    let post = job.post();
    assert_eq!(post.code, 0, "{}", post.log());
    assert!(!post.stdout.contains("::error::"), "{}", post.log());
    let notice = post.stdout.lines().find(|l| l.starts_with("::notice::uv: not saving"));
    let notice = notice.unwrap_or_else(|| panic!("no notice\n{}", post.log()));
    assert!(notice.contains("this job has run so far") && notice.contains("nothing is stored"), "{notice}");
    assert!(store.entries().is_empty(), "stored: {:?}\n{}", store.entries(), post.log());
    let temp: Vec<_> = fs::read_dir(job.dir.join("temp")).unwrap().flatten().map(|e| e.path()).collect();
    assert!(temp.is_empty(), "left in RUNNER_TEMP: {temp:?}");
    eprintln!("TIMING trickled save S3: {:.1} s: {notice}", post.elapsed.as_secs_f64());
    assert!(post.elapsed < Duration::from_secs(90), "{:?}\n{}", post.elapsed, post.log());
}
