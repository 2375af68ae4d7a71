//! The example project with real uv and nox from PyPI: a cold job saves, a fresh job on the
//! same machine restores, and nox reuses the restored environments offline; the files envs
//! share with the uv cache travel once, in the uv entry.

use std::fs;
use std::os::unix::fs::MetadataExt;
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
    nox_with(machine, args, &[], offline)
}

/// [`nox`] with more environment variables.
pub fn nox_with(machine: &Machine, args: &[&str], env: &[(&str, &str)], offline: bool) -> String {
    let mut cmd = machine.command(&tools::nox(), &tools::python_tools_bin());
    cmd.args(args).envs(env.iter().copied());
    if offline {
        cmd.env("UV_OFFLINE", "1");
    }
    let out = cmd.output().expect("run nox");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "nox {args:?} failed:\n{text}");
    text
}

/// The job's PATH with uv and nox on it.
pub fn tools_path(machine: &Machine) -> String {
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
    // uv linked the envs' files from its cache: the nox entry leaves them to the uv entry.
    assert!(post.stdout.contains("left to the uv cache saved with them"), "{}", post.log());

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
    // They came back as uv makes them: links of the restored uv cache's files.
    let shared = shared_files(&machine.workspace.join(".nox/tests"), &machine.home.join(".cache/uv"));
    assert!(shared > 100, "only {shared} env files are links into the uv cache");
    let log = nox(&machine, &["-r"], true);
    assert!(log.contains("existing virtual environment"), "{log}");
}

/// How many regular files under `env` share their inode with a file under `uv_cache`.
fn shared_files(env: &Path, uv_cache: &Path) -> usize {
    fn inodes(dir: &Path, out: &mut Vec<u64>) {
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            let meta = fs::symlink_metadata(entry.path()).unwrap();
            if meta.is_dir() {
                inodes(&entry.path(), out);
            } else if meta.is_file() {
                out.push(meta.ino());
            }
        }
    }
    let (mut in_env, mut in_cache) = (Vec::new(), Vec::new());
    inodes(env, &mut in_env);
    inodes(uv_cache, &mut in_cache);
    let in_cache: std::collections::HashSet<u64> = in_cache.into_iter().collect();
    in_env.iter().filter(|ino| in_cache.contains(ino)).count()
}

/// A nox entry that left its shared files to the uv entry, restored where the uv cache is not:
/// its envs are removed with the reason (never run half-empty), and nox builds them again.
#[test]
fn envs_whose_files_the_uv_cache_lacks_are_rebuilt_not_run_half_empty() {
    let machine = Machine::new();
    checkout_example(&machine);
    let mut job = machine.job();
    job.set_env("PATH", &tools_path(&machine));
    assert_eq!(job.main().code, 0);
    nox(&machine, &["--reuse-venv=yes"], false);
    let post = job.post();
    assert!(post.stdout.contains("left to the uv cache saved with them"), "{}", post.log());

    fs::remove_dir_all(machine.workspace.join(".nox")).unwrap();
    fs::remove_dir_all(machine.home.join(".cache/uv")).unwrap();
    let mut job = machine.job();
    job.set_env("PATH", &tools_path(&machine)).input("targets", "nox");
    let main = job.main();
    assert_eq!(main.code, 0, "{}", main.log());
    assert_eq!(main.output("nox-cache-hit"), "false", "{}", main.log());
    assert!(
        main.stdout.contains("env `tests` removed after restore")
            && main.stdout.contains("come from the uv cache"),
        "{}",
        main.log()
    );
    assert!(!machine.workspace.join(".nox/tests").exists());
    let log = nox(&machine, &["--reuse-venv=yes"], false);
    assert!(log.contains("passed"), "{log}");
}
