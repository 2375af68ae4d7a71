//! The example project with real uv and nox from PyPI: a cold job saves, a fresh job on the
//! same machine restores, and nox reuses the restored environments offline.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::support::action::{Machine, repo_root};
use crate::support::tools;

/// Copies `examples/demo` into the workspace, as a checkout would.
pub fn checkout_example(machine: &Machine) {
    let src = repo_root().join("examples/demo");
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", src.display()))
        .arg(&machine.workspace)
        .status()
        .unwrap();
    assert!(status.success());
    let _ = fs::remove_dir_all(machine.workspace.join(".nox"));
}

/// Runs nox in the workspace with the job's PATH and HOME; returns its combined output.
fn nox(machine: &Machine, args: &[&str], offline: bool) -> String {
    let mut cmd = machine.command(&tools::nox(), &tools::python_tools_bin());
    cmd.args(args);
    if offline {
        cmd.env("UV_OFFLINE", "1");
    }
    let out = cmd.output().expect("run nox");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "nox {args:?} failed:\n{text}");
    text
}

fn tools_path(machine: &Machine) -> String {
    format!("{}:{}", tools::python_tools_bin().display(), machine.path)
}

#[test]
fn nox_reuses_restored_environments_offline() {
    let machine = Machine::new();
    checkout_example(&machine);

    let mut job = machine.job();
    job.set_env("PATH", &tools_path(&machine));
    let main = job.main();
    assert_eq!(main.code, 0, "{}", main.log());
    assert_eq!(main.output("cache-hit"), "false");
    nox(&machine, &["--reuse-venv=yes"], false);
    let post = job.post();
    assert!(post.stdout.contains("nox: saved") && post.stdout.contains("uv: saved"), "{}", post.log());

    // A fresh job: a new checkout, no envs, an empty uv cache.
    fs::remove_dir_all(machine.workspace.join(".nox")).unwrap();
    fs::remove_dir_all(machine.home.join(".cache/uv")).unwrap();
    let mut job = machine.job();
    job.set_env("PATH", &tools_path(&machine));
    let main = job.main();
    assert_eq!(main.code, 0, "{}", main.log());
    assert_eq!(main.output("nox-cache-hit"), "true", "{}", main.log());
    assert_eq!(main.output("uv-cache-hit"), "true", "{}", main.log());
    assert!(Path::new(&machine.workspace.join(".nox")).is_dir());
    let log = nox(&machine, &["-r"], true);
    assert!(log.contains("existing virtual environment"), "{log}");
}
