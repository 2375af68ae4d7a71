//! The job summary a person reads: per target the primary key, on a fallback the key restored
//! from and which key component changed, and the size, time and throughput of each transfer.

use std::fs;

use crate::support::action::Machine;
use crate::support::rig::{assert_clean, checkout, fresh_checkout, populate};

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
