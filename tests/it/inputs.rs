//! Mistakes a new user makes in the inputs, and the command line's help: each mistake fails the
//! step with one `::error::` that names the input, the value and the fix (an interpreter that
//! does not run is a `::warning::` naming it), and `--help` documents every command.

use std::fs;
use std::process::Command;

use crate::support::action::{Job, Machine, Step, binary};

fn errors(step: &Step) -> Vec<&str> {
    step.stdout.lines().filter(|l| l.starts_with("::error::")).collect()
}

/// Runs the main and the post step of `job`; both must fail with one error saying all of `says`.
fn assert_both_steps_fail_saying(job: &mut Job, says: &[&str]) {
    for (name, step) in [("main", job.main()), ("post", job.post())] {
        let context = format!("{name} step\n{}", step.log());
        assert_eq!(step.code, 1, "{context}");
        let errors = errors(&step);
        assert_eq!(errors.len(), 1, "{context}");
        for part in says {
            assert!(errors[0].contains(part), "the error does not say {part:?}\n{context}");
        }
    }
}

/// A small project at the workspace root, so keys hash real files.
fn project(machine: &Machine) {
    fs::write(machine.workspace.join("uv.lock"), "version = 1\n").unwrap();
    fs::write(machine.workspace.join("noxfile.py"), "import nox\n").unwrap();
}

#[test]
fn a_working_directory_that_does_not_exist_fails_the_step() {
    let machine = Machine::new();
    project(&machine);
    let mut job = machine.job();
    job.input("working-directory", "does-not-exist");
    assert_both_steps_fail_saying(
        &mut job,
        &["`working-directory`", "`does-not-exist` does not exist", "actions/checkout"],
    );
    // A file is no project directory either.
    let mut job = machine.job();
    job.input("working-directory", "uv.lock");
    assert_both_steps_fail_saying(&mut job, &["`working-directory`", "`uv.lock` is not a directory"]);
}

#[test]
fn comma_separated_targets_are_told_to_use_spaces() {
    let machine = Machine::new();
    let mut job = machine.job();
    job.input("targets", "uv,nox");
    assert_both_steps_fail_saying(
        &mut job,
        &["`targets`", "`uv,nox`", "separate them with spaces", "`targets: uv nox`"],
    );
    let mut job = machine.job();
    job.input("targets", "uv pip");
    assert_both_steps_fail_saying(&mut job, &["`targets`", "`pip` is not a target", "separated by spaces"]);
}

/// An interpreter that does not run is a warning that names it, not a notice telling the user
/// to set the input they set; and it moves the nox key only (the uv key follows `python3`).
#[test]
fn a_python_that_does_not_run_is_a_warning_naming_it_and_leaves_the_uv_key_alone() {
    let machine = Machine::new();
    project(&machine);
    let plain = machine.job().keys();
    let mut job = machine.job();
    job.input("python", "/nonexistent/python");
    let keys = job.keys();
    assert_eq!(keys["uv"], plain["uv"], "the `python` input moved the uv key");
    assert_ne!(keys["nox"], plain["nox"], "the nox key must not pass for the real interpreter's");
    for (name, step) in [("main", job.main()), ("post", job.post())] {
        let context = format!("{name} step\n{}", step.log());
        assert_eq!(step.code, 0, "{context}");
        assert!(errors(&step).is_empty(), "{context}");
        let warnings: Vec<&str> = step.stdout.lines().filter(|l| l.starts_with("::warning::")).collect();
        assert!(
            warnings.iter().any(|w| w.contains("`python`") && w.contains("/nonexistent/python")),
            "no warning names the interpreter\n{context}"
        );
        assert!(!step.stdout.contains("set the `python` input"), "{context}");
    }
}

/// uv follows `UV_CACHE_DIR`; an input naming another directory would cache one uv never
/// writes, so the two disagreeing is an error naming both.
#[test]
fn uv_cache_dir_input_and_uv_cache_dir_variable_must_agree() {
    let machine = Machine::new();
    let elsewhere = machine.root.path().join("uv-elsewhere");
    let mut job = machine.job();
    job.input("targets", "uv").input("uv-cache-dir", "~/.cache/uv");
    job.set_env("UV_CACHE_DIR", elsewhere.to_str().unwrap());
    let home_cache = machine.home.join(".cache/uv");
    assert_both_steps_fail_saying(
        &mut job,
        &[
            "`uv-cache-dir`",
            "`~/.cache/uv`",
            "UV_CACHE_DIR",
            elsewhere.to_str().unwrap(),
            home_cache.to_str().unwrap(),
        ],
    );

    // The same directory both ways is fine, and is what the post step sees after the main
    // step exported the input as UV_CACHE_DIR.
    let mut job = machine.job();
    job.input("targets", "uv").input("uv-cache-dir", "~/.cache/uv");
    let main = job.main();
    assert_eq!(main.code, 0, "{}", main.log());
    assert_eq!(main.env_file.get("UV_CACHE_DIR").map(String::as_str), home_cache.to_str(), "{}", main.log());
    job.set_env("UV_CACHE_DIR", home_cache.to_str().unwrap());
    let post = job.post();
    assert_eq!(post.code, 0, "{}", post.log());
    assert!(errors(&post).is_empty(), "{}", post.log());
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(binary()).args(args).env_clear().output().expect("run uv-nox-cache")
}

#[test]
fn help_exits_0_and_documents_every_command() {
    for flag in ["--help", "-h", "help"] {
        let out = run(&[flag]);
        assert_eq!(out.status.code(), Some(0), "{flag}");
        let text = String::from_utf8_lossy(&out.stdout);
        for command in [
            "restore",
            "save",
            "key",
            "hash-files [--follow-symbolic-links] PATTERN",
            "inputs",
            "entries",
            "prune",
            "--version",
        ] {
            assert!(
                text.contains(&format!("\n  {command}")),
                "{flag} does not document `{command}`:\n{text}"
            );
        }
        assert!(text.contains("'INPUT_WORKING-DIRECTORY=sub'"), "{flag} shows no hyphenated input:\n{text}");
    }
    // A mistake is still a usage error, on stderr.
    for args in [&["restroe"][..], &[]] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage: uv-nox-cache <command>"), "{args:?}");
    }
}

/// The README's command-line example: hyphenated names passed with `env`, which a shell's
/// `NAME=value` prefix cannot spell.
#[test]
fn hyphenated_inputs_set_with_env_reach_the_key_command() {
    let machine = Machine::new();
    project(&machine);
    fs::create_dir_all(machine.workspace.join("sub")).unwrap();
    fs::write(machine.workspace.join("sub/uv.lock"), "version = 1\n# sub\n").unwrap();
    let key = |extra: &[&str]| {
        let out = Command::new("env")
            .args(extra)
            .arg(binary())
            .arg("key")
            .env_clear()
            .env("HOME", &machine.home)
            .env("PATH", &machine.path)
            .env("GITHUB_WORKSPACE", &machine.workspace)
            .env("INPUT_TARGETS", "uv")
            .output()
            .expect("run env uv-nox-cache key");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let root = key(&[]);
    let sub = key(&["INPUT_WORKING-DIRECTORY=sub"]);
    assert!(root.starts_with("uv uv-nox-cache-") && sub.starts_with("uv uv-nox-cache-"), "{root}{sub}");
    assert_ne!(root, sub, "INPUT_WORKING-DIRECTORY=sub did not reach the action");
}
