//! What of the uv cache is saved: everything but uv's environments bucket, where uv keeps the
//! envs of `uv run --with` and uvx and — with its centralized project environments — whole
//! project `.venv`s with a copy of the project in them.

use std::fs;

use crate::support::action::{Machine, snapshot};
use crate::support::rig::{assert_clean, checkout, fresh_checkout};

#[test]
fn a_project_env_inside_the_uv_cache_never_rides_along() {
    let machine = Machine::new();
    checkout(&machine);
    let uv = machine.home.join(".cache/uv");
    // A wheel uv keeps, and a project env of the kind uv's centralized project envs make.
    fs::create_dir_all(uv.join("archive-v0/abc/attrs")).unwrap();
    fs::write(uv.join("archive-v0/abc/attrs/__init__.py"), "kept = True\n").unwrap();
    fs::write(uv.join("CACHEDIR.TAG"), "Signature: 8a477f597d28d172789f06886806bc55\n").unwrap();
    let env = uv.join("environments-v2/demo-app-5f1c2e/lib/python3.11/site-packages/demo_app");
    fs::create_dir_all(&env).unwrap();
    fs::write(env.join("__init__.py"), "def newest():\n    return 'old code'\n").unwrap();
    let kept = snapshot(&uv.join("archive-v0"));

    let mut job = machine.job();
    job.input("targets", "uv");
    assert_clean(&job.main());
    let post = job.post();
    assert_clean(&post);
    assert!(post.stdout.contains("uv: saved"), "{}", post.log());

    fresh_checkout(&machine);
    let mut job = machine.job();
    job.input("targets", "uv");
    let main = job.main();
    assert_clean(&main);
    assert_eq!(main.output("uv-cache-hit"), "true", "{}", main.log());
    assert_eq!(snapshot(&uv.join("archive-v0")), kept, "the rest of the cache comes back");
    assert!(uv.join("CACHEDIR.TAG").exists());
    assert!(!uv.join("environments-v2").exists(), "a project env came back from the cache");
}
