//! The walking skeleton, end to end on the local store: restore misses, the post step saves,
//! a fresh job on the same machine restores exact hits, and the trees come back identical.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use crate::support::action::{Machine, snapshot};

/// A project with lock files, a uv cache and a `.nox` with executables and symlinks.
fn populate(machine: &Machine) {
    let ws = &machine.workspace;
    fs::write(ws.join("pyproject.toml"), "[project]\nname = \"demo\"\nversion = \"0.1.0\"\n").unwrap();
    fs::write(ws.join("uv.lock"), "version = 1\n").unwrap();
    fs::write(ws.join("noxfile.py"), "import nox\nnox.options.reuse_venv = 'yes'\n").unwrap();
    let uv = machine.home.join(".cache/uv");
    fs::create_dir_all(uv.join("archive-v0/abc/pkg")).unwrap();
    fs::write(uv.join("archive-v0/abc/pkg/__init__.py"), "x = 1\n").unwrap();
    fs::create_dir_all(uv.join("wheels-v6")).unwrap();
    symlink("../archive-v0/abc", uv.join("wheels-v6/pkg")).unwrap();
    fs::write(uv.join("CACHEDIR.TAG"), "Signature: 8a477f597d28d172789f06886806bc55\n").unwrap();
    let env = ws.join(".nox/tests/bin");
    fs::create_dir_all(&env).unwrap();
    fs::write(env.join("pytest"), "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(env.join("pytest"), fs::Permissions::from_mode(0o755)).unwrap();
    symlink("/usr/bin/python3", env.join("python")).unwrap();
    fs::create_dir_all(ws.join(".nox/tests/empty")).unwrap();
}

/// What a fresh job starts from: the checkout, without `.nox` or the uv cache.
fn fresh_checkout(machine: &Machine) {
    fs::remove_dir_all(machine.workspace.join(".nox")).unwrap();
    fs::remove_dir_all(machine.home.join(".cache/uv")).unwrap();
}

/// A machine whose store holds both targets of a first job, back at a fresh checkout.
fn saved_then_fresh() -> Machine {
    let machine = Machine::new();
    populate(&machine);
    let mut job = machine.job();
    job.main();
    job.post();
    fresh_checkout(&machine);
    machine
}

fn assert_no_errors(step: &crate::support::action::Step) {
    assert_eq!(step.code, 0, "{}", step.log());
    assert!(!step.stdout.contains("::error::"), "{}", step.log());
    assert!(!step.stdout.contains("::warning::"), "{}", step.log());
}

#[test]
fn restore_miss_save_then_exact_hit_in_a_fresh_job() {
    let machine = Machine::new();
    populate(&machine);
    let nox_before = snapshot(&machine.workspace.join(".nox"));
    let uv_before = snapshot(&machine.home.join(".cache/uv"));

    let mut job = machine.job();
    let main = job.main();
    assert_no_errors(&main);
    assert_eq!(main.output("cache-hit"), "false");
    assert_eq!(main.output("uv-cache-hit"), "false");
    assert_eq!(main.output("nox-matched-key"), "");
    assert!(main.output("uv-key").starts_with("uv-nox-cache-1-uv-Linux-"), "{}", main.log());
    assert!(main.stdout.contains("::notice::cache backend: local store"), "{}", main.log());
    let post = job.post();
    assert_no_errors(&post);
    assert!(post.stdout.contains("uv: saved"), "{}", post.log());
    assert!(post.stdout.contains("nox: saved"), "{}", post.log());
    assert!(post.summary.contains("| nox |"), "{}", post.summary);
    // The backend notice is given once per job: the post step only logs it.
    assert!(post.stdout.contains("cache backend: local store"), "{}", post.log());
    assert!(!post.stdout.contains("::notice::cache backend"), "{}", post.log());

    fresh_checkout(&machine);
    let mut job = machine.job();
    let main = job.main();
    assert_no_errors(&main);
    main.assert_hits("true");
    assert_eq!(main.output("uv-matched-key"), main.output("uv-key"));
    assert_eq!(main.output("nox-matched-key"), main.output("nox-key"));
    // A save step without a restore step before it (the `save/` action alone) gives the notice.
    let lone = machine.job().post();
    assert!(lone.stdout.contains("::notice::cache backend: local store"), "{}", lone.log());
    assert_eq!(snapshot(&machine.workspace.join(".nox")), nox_before);
    assert_eq!(snapshot(&machine.home.join(".cache/uv")), uv_before);
    assert!(main.summary.contains("exact hit"), "{}", main.summary);
    let post = job.post();
    assert_no_errors(&post);
    assert!(post.stdout.contains("not saving"), "{}", post.log());
}

#[test]
fn a_changed_lock_file_falls_back_for_uv_only() {
    let machine = saved_then_fresh();
    fs::write(machine.workspace.join("uv.lock"), "version = 2\n").unwrap();
    let main = machine.job().main();
    assert_no_errors(&main);
    assert_eq!(main.output("uv-cache-hit"), "false");
    assert_eq!(main.output("uv-restored"), "true", "uv takes the newest entry of its prefix");
    assert_ne!(main.output("uv-matched-key"), main.output("uv-key"));
    assert!(main.stdout.contains("`hash` component differs"), "{}", main.log());
    assert_eq!(main.output("nox-restored"), "false", "nox restores exact keys only");
    assert_eq!(main.output("cache-hit"), "false");
    assert!(!Path::new(&machine.workspace.join(".nox")).exists());
}

#[test]
fn invalid_inputs_fail_the_step_naming_the_input() {
    let machine = Machine::new();
    for (input, value) in
        [("targets", "uv pip"), ("lookup-only", "yes"), ("backend", "s3"), ("key-suffix", &"long".repeat(40))]
    {
        let mut job = machine.job();
        job.input(input, value);
        let step = job.main();
        assert_eq!(step.code, 1, "{input}={value}\n{}", step.log());
        let error = step
            .stdout
            .lines()
            .find(|l| l.starts_with("::error::"))
            .unwrap_or_else(|| panic!("{}", step.log()));
        assert!(error.contains(&format!("`{input}`")), "{error}");
    }
}

#[test]
fn fail_on_cache_miss_fails_only_a_miss() {
    let machine = Machine::new();
    populate(&machine);
    let mut job = machine.job();
    job.input("fail-on-cache-miss", "true");
    let step = job.main();
    assert_eq!(step.code, 1, "{}", step.log());
    assert!(step.stdout.contains("::error::no cache entry found"), "{}", step.log());
    job.post();
    let mut job = machine.job();
    job.input("fail-on-cache-miss", "true");
    assert_eq!(job.main().code, 0);
}

#[test]
fn lookup_only_reports_without_restoring() {
    let machine = saved_then_fresh();
    let mut job = machine.job();
    job.input("lookup-only", "true");
    let main = job.main();
    assert_no_errors(&main);
    assert_eq!(main.output("nox-matched-key"), main.output("nox-key"));
    assert_eq!(main.output("nox-restored"), "false");
    assert!(!machine.workspace.join(".nox").exists());
}

#[test]
fn save_always_exports_the_post_if_variable() {
    let machine = Machine::new();
    let mut job = machine.job();
    job.input("save", "always");
    let main = job.main();
    assert_eq!(
        main.env_file.get("UV_NOX_CACHE_SAVE_ON_FAILURE").map(String::as_str),
        Some("true"),
        "{}",
        main.log()
    );
    let main = machine.job().main();
    assert!(!main.env_file.contains_key("UV_NOX_CACHE_SAVE_ON_FAILURE"));
}

#[test]
fn nothing_on_disk_is_a_notice_at_save() {
    let machine = Machine::new();
    let mut job = machine.job();
    job.main();
    let post = job.post();
    assert_eq!(post.code, 0, "{}", post.log());
    assert!(post.stdout.contains("::notice::nox: nothing to save"), "{}", post.log());
}
