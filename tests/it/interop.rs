//! The action and the official `@actions/cache@6.3.0` share entries both ways, through the
//! action's own steps: given the path string the action uses (`.nox` relative to the
//! workspace, `~/.cache/uv` with HOME set) and the action's own key (`uv-nox-cache key`), an
//! entry saved by one is restored byte for byte by the other, on v1 (as Forgejo serves it) and
//! on v2 (as github.com serves it).

use crate::support::action::{Protocol, snapshot};
use crate::support::official::{Endpoint, Official, Site};
use crate::support::rig::{Rig, Service, assert_clean, fresh_checkout, populate};

/// The targets and the path strings actions/cache would be given for them.
const PATHS: [(&str, &str); 2] = [("uv", "~/.cache/uv"), ("nox", ".nox")];

/// The official client run as a step of a job on the rig's machine; returns its `RESULT …` line.
fn run_official(official: &Official, rig: &Rig, args: &[&str]) -> String {
    let protocol = rig.service.protocol().expect("an HTTP service");
    let server_url =
        if protocol == Protocol::V2 { "https://github.com" } else { "https://forgejo.example.org" };
    let machine = &rig.machine;
    let site = Site {
        endpoint: Endpoint::of(rig.server()),
        protocol,
        server_url,
        workspace: &machine.workspace,
        home: &machine.home,
    };
    official.run(&site, args)
}

/// `@actions/cache` saves both targets under the action's keys; a fresh job's main step
/// restores them as exact hits, byte for byte.
fn official_saves_action_restores(service: Service) {
    let official = Official::provision();
    let rig = Rig::new(service);
    populate(&rig.machine, "official");
    let before = (snapshot(&rig.uv_dir()), snapshot(&rig.nox_dir()));
    let keys = rig.job().keys();
    for (target, path) in PATHS {
        let result = run_official(&official, &rig, &["save", path, &keys[target]]);
        assert!(result.starts_with("RESULT saved "), "{target}: {result}");
    }
    fresh_checkout(&rig.machine);
    let mut job = rig.job();
    let main = job.main();
    assert_clean(&main);
    main.assert_hits("true");
    assert_eq!(main.output("uv-key"), keys["uv"]);
    assert_eq!(main.output("nox-key"), keys["nox"]);
    assert_eq!((snapshot(&rig.uv_dir()), snapshot(&rig.nox_dir())), before);
    let post = job.post();
    assert_clean(&post);
    assert!(post.stdout.contains("not saving"), "{}", post.log());
    rig.check_requests();
}

/// The action's post step saves both targets; `@actions/cache` restores them byte for byte.
fn action_saves_official_restores(service: Service) {
    let official = Official::provision();
    let rig = Rig::new(service);
    let mut job = rig.job();
    assert_clean(&job.main());
    populate(&rig.machine, "action");
    let before = (snapshot(&rig.uv_dir()), snapshot(&rig.nox_dir()));
    let post = job.post();
    assert_clean(&post);
    assert!(post.stdout.contains("uv: saved") && post.stdout.contains("nox: saved"), "{}", post.log());
    fresh_checkout(&rig.machine);
    let keys = rig.job().keys();
    for (target, path) in PATHS {
        let result = run_official(&official, &rig, &["restore", path, &keys[target]]);
        let matched = result.strip_prefix("RESULT restored ").unwrap_or_else(|| panic!("{target}: {result}"));
        assert!(matched.eq_ignore_ascii_case(&keys[target]), "{target}: {result}");
    }
    assert_eq!((snapshot(&rig.uv_dir()), snapshot(&rig.nox_dir())), before);
    rig.check_requests();
}

#[test]
fn v1_official_saves_action_restores() {
    official_saves_action_restores(Service::ForgejoV1);
}

#[test]
fn v2_official_saves_action_restores() {
    official_saves_action_restores(Service::GithubV2);
}

#[test]
fn v1_action_saves_official_restores() {
    action_saves_official_restores(Service::ForgejoV1);
}

#[test]
fn v2_action_saves_official_restores() {
    action_saves_official_restores(Service::GithubV2);
}
