//! The job summary a person reads: per target the primary key, on a fallback the key restored
//! from and which key component changed, and the size, time and throughput of each transfer;
//! and a restore that cost more than the work of the job that saved it.

use std::fs;

use crate::support::action::{Machine, snapshot};
use crate::support::cache_server::{Fault, Route};
use crate::support::rig::{Rig, Service, assert_clean, checkout, fresh_checkout, populate, save_job};

#[test]
fn a_fallback_row_names_both_keys_the_changed_component_and_the_rate() {
    let machine = Machine::new();
    checkout(&machine);
    let mut job = machine.job();
    assert_clean(&job.main());
    populate(&machine, "summary");
    let post = job.post();
    assert_clean(&post);
    let saved_row =
        post.summary.lines().find(|l| l.starts_with("| uv |")).unwrap_or_else(|| panic!("{}", post.summary));
    assert!(saved_row.contains("| saved |") && saved_row.contains("/s)"), "{saved_row}");
    let old_key = job.keys()["uv"].clone();

    fresh_checkout(&machine);
    fs::write(machine.workspace.join("uv.lock"), "version = 1\n# a new lock\n").unwrap();
    let mut job = machine.job();
    let new_key = job.keys()["uv"].clone();
    let main = job.main();
    assert_clean(&main);
    assert_eq!(main.output("uv-restored"), "true", "{}", main.log());
    let row =
        main.summary.lines().find(|l| l.starts_with("| uv |")).unwrap_or_else(|| panic!("{}", main.summary));
    assert!(row.contains(&format!("`{new_key}`<br>restored from `")), "the primary key comes first: {row}");
    assert!(row.to_lowercase().contains(&old_key.to_lowercase()), "{row}");
    assert!(row.contains("fallback: `hash` changed"), "{row}");
    assert!(row.contains("B/s)"), "{row}");
}

/// An entry a `save: always` job stored under this very key, unconfirmed: the summary says who
/// saved it, not that a key component changed (none did).
#[test]
fn an_unconfirmed_entry_of_the_same_key_is_named_as_such() {
    let machine = Machine::new();
    checkout(&machine);
    let mut job = machine.job();
    job.input("save", "always").set_env("GITHUB_RUN_ID", "3");
    assert_clean(&job.main());
    populate(&machine, "unconfirmed");
    assert_clean(&job.post());

    fresh_checkout(&machine);
    let main = machine.job().main();
    assert_clean(&main);
    for target in ["uv", "nox"] {
        assert_eq!(main.output(&format!("{target}-restored")), "true", "{}", main.log());
        let prefix = format!("| {target} |");
        let row = main
            .summary
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("{}", main.summary));
        assert!(row.contains("-unconfirmed-r3a1`"), "{row}");
        assert!(row.contains("fallback: saved by a job whose outcome was unknown (`save: always`)"), "{row}");
        assert!(!row.contains("changed"), "no component changed: {row}");
    }
}

/// A restore that took longer than the saving job spent on its own work (from the end of its
/// restore step to the start of its save step) is called out, for that target alone; the same
/// restore of an entry whose job worked longer is not.
#[test]
fn a_restore_slower_than_the_saving_jobs_work_is_called_out() {
    let rig = Rig::new(Service::ForgejoV1);
    // The cold job's work between its steps is `populate`: milliseconds.
    let saved = save_job(&rig, "quick");
    fresh_checkout(&rig.machine);
    // The service makes the first lookup (uv's) wait 4 s, so uv's restore outlasts that work
    // (with room for a busy machine to take seconds starting the save step).
    rig.server().inject(Fault::RateLimit { route: Route::Lookup, retry_after_secs: 4, times: 1 });
    let main = rig.job().main();
    assert_eq!((main.code, main.output("cache-hit")), (0, "true"), "{}", main.log());
    let called_out: Vec<&str> =
        main.stdout.lines().filter(|l| l.contains("may cost more than it saves")).collect();
    assert_eq!(called_out.len(), 1, "{}", main.log());
    assert!(
        called_out[0].starts_with("::notice::uv: restoring took")
            && called_out[0].contains("Compare a job without it: set `targets: nox`"),
        "{}",
        called_out[0]
    );
    let row = |target: &str| {
        let prefix = format!("| {target} |");
        main.summary
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("{}", main.summary))
            .to_string()
    };
    assert!(row("uv").contains("slower than the saving job's work"), "{}", row("uv"));
    assert!(!row("nox").contains("slower than"), "{}", row("nox"));
    // The note rides in the archive's headers, not in the trees.
    assert_eq!((snapshot(&rig.uv_dir()), snapshot(&rig.nox_dir())), saved);

    // A job that works longer than the restore takes: new keys, and 12 s between its steps
    // (the sleep is the work being measured, a lower bound, not a wait for an event; the
    // restore below waits 4 s, with room for a busy machine).
    fs::write(rig.machine.workspace.join("uv.lock"), "version = 1\n# another lock\n").unwrap();
    let mut job = rig.job();
    assert_eq!(job.main().code, 0);
    populate(&rig.machine, "slow");
    std::thread::sleep(std::time::Duration::from_secs(12));
    let post = job.post();
    assert!(post.stdout.contains("uv: saved") && post.stdout.contains("nox: saved"), "{}", post.log());
    fresh_checkout(&rig.machine);
    rig.server().inject(Fault::RateLimit { route: Route::Lookup, retry_after_secs: 4, times: 1 });
    let main = rig.job().main();
    assert_eq!((main.code, main.output("cache-hit")), (0, "true"), "{}", main.log());
    assert!(!main.stdout.contains("may cost more than it saves"), "{}", main.log());
}
