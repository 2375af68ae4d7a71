//! Keys move exactly when what they stand for moves, and `hash-files` answers like the runner.

use std::collections::BTreeMap;
use std::fs;
use std::process::Command;

use crate::support::action::{Machine, binary};

fn project(machine: &Machine) {
    let ws = &machine.workspace;
    fs::write(ws.join("pyproject.toml"), "[project]\nname = \"p\"\nversion = \"1\"\n").unwrap();
    fs::write(ws.join("uv.lock"), "version = 1\n").unwrap();
    fs::write(ws.join("noxfile.py"), "import nox\n").unwrap();
    fs::write(ws.join("README.md"), "hello\n").unwrap();
}

fn keys(machine: &Machine, inputs: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut job = machine.job();
    for (name, value) in inputs {
        job.input(name, value);
    }
    job.keys()
}

/// Which targets' keys differ between `a` and `b`.
fn moved(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    a.keys().filter(|t| a[*t] != b[*t]).cloned().collect()
}

#[test]
fn keys_move_exactly_when_what_they_stand_for_moves() {
    let machine = Machine::new();
    project(&machine);
    let base = keys(&machine, &[]);
    assert_eq!(base, keys(&machine, &[]), "keys are deterministic");
    for key in base.values() {
        assert!(key.len() <= 512 && !key.contains(','), "{key}");
    }

    fs::write(machine.workspace.join("README.md"), "changed\n").unwrap();
    assert_eq!(moved(&base, &keys(&machine, &[])), Vec::<String>::new(), "an unrelated file moves no key");

    // What the cached directories hold never moves their keys: envs carry packages' own
    // pyproject.toml and requirements files.
    let site = machine.workspace.join(".nox/tests/lib/python3.12/site-packages/pkg");
    fs::create_dir_all(&site).unwrap();
    fs::write(site.join("pyproject.toml"), "[project]\nname = \"pkg\"\n").unwrap();
    fs::write(site.join("requirements.txt"), "idna\n").unwrap();
    assert_eq!(moved(&base, &keys(&machine, &[])), Vec::<String>::new(), "the envs inside .nox move no key");
    let in_ws_cache = [("uv-cache-dir", ".uv-cache")];
    let with_cache = keys(&machine, &in_ws_cache);
    fs::create_dir_all(machine.workspace.join(".uv-cache/sdists-v9/x")).unwrap();
    fs::write(machine.workspace.join(".uv-cache/sdists-v9/x/pyproject.toml"), "x\n").unwrap();
    let after = keys(&machine, &in_ws_cache);
    assert_eq!(moved(&with_cache, &after), Vec::<String>::new(), "nor a uv cache in the workspace");
    fs::remove_dir_all(machine.workspace.join(".uv-cache")).unwrap();

    fs::write(machine.workspace.join("noxfile.py"), "import nox\n# edited\n").unwrap();
    let after_noxfile = keys(&machine, &[]);
    assert_eq!(moved(&base, &after_noxfile), ["nox"], "noxfile.py moves only nox's key");

    fs::write(machine.workspace.join("uv.lock"), "version = 2\n").unwrap();
    assert_eq!(moved(&after_noxfile, &keys(&machine, &[])), ["nox", "uv"], "uv.lock moves both keys");

    // Another interpreter: the same Python at another real path.
    let other = machine.root.path().join("other-python");
    fs::copy(fs::canonicalize("/usr/bin/python3").unwrap(), &other).unwrap();
    let now = keys(&machine, &[]);
    let with_other = keys(&machine, &[("python", other.to_str().unwrap())]);
    assert_eq!(moved(&now, &with_other), ["nox"], "another interpreter moves only nox's key");

    let suffixed = keys(&machine, &[("key-suffix", "py312-linux")]);
    assert!(suffixed.values().all(|k| k.contains("-py312-linux-")), "{suffixed:?}");
}

#[test]
fn hash_files_command_prints_the_runners_value() {
    let machine = Machine::new();
    project(&machine);
    let run = |args: &[&str]| {
        Command::new(binary())
            .arg("hash-files")
            .args(args)
            .current_dir(&machine.workspace)
            .env_clear()
            .env("HOME", &machine.home)
            .output()
            .unwrap()
    };
    let out = run(&["**/uv.lock", "pyproject.toml"]);
    assert!(out.status.success());
    let expected = uv_nox_cache::hash_files::hash_files(
        &machine.workspace,
        Some(&machine.home),
        &["**/uv.lock".into(), "pyproject.toml".into()],
        false,
    )
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), expected);
    assert_eq!(expected.len(), 64);
    let none = run(&["**/nothing-like-this"]);
    assert!(none.status.success());
    assert_eq!(String::from_utf8_lossy(&none.stdout), "\n", "no match prints an empty line");
    let bad = run(&["../outside"]);
    assert!(!bad.status.success(), "a pattern hashFiles rejects fails the command");
    let bad_option = run(&["--nope", "x"]);
    assert!(!bad_option.status.success());
}

/// The same key saved from another uv cache path is another entry (its version differs): the
/// miss says what this lookup's version is made of, so the part that moved shows.
#[test]
fn a_miss_on_version_only_names_the_path_and_compression() {
    let machine = Machine::new();
    project(&machine);
    let first = machine.home.join(".cache/uv-first");
    fs::create_dir_all(first.join("wheels-v5")).unwrap();
    fs::write(first.join("wheels-v5/w.txt"), "cached\n").unwrap();
    let mut job = machine.job();
    job.input("targets", "uv").input("uv-cache-dir", &first.display().to_string());
    let main = job.main();
    assert!(main.log().contains("for path `~/.cache/uv-first`, zstd-without-long"), "{}", main.log());
    let post = job.post();
    assert!(post.stdout.contains("uv: saved"), "{}", post.log());

    let mut job = machine.job();
    job.input("targets", "uv")
        .input("uv-cache-dir", &machine.home.join(".cache/uv-second").display().to_string());
    let main = job.main();
    assert_eq!(main.output("uv-key"), post_key(&post.stdout), "the key itself did not move");
    let miss =
        main.stdout.lines().find(|l| l.contains("uv: miss")).unwrap_or_else(|| panic!("{}", main.log()));
    assert!(miss.contains("path `~/.cache/uv-second`, zstd-without-long (version "), "{miss}");
    assert!(miss.contains("another path"), "{miss}");
}

/// The key a post step's `uv: saved <key>, …` line names.
fn post_key(stdout: &str) -> String {
    let line = stdout.lines().find_map(|l| l.split("uv: saved ").nth(1)).expect("a saved line");
    line.split(',').next().unwrap().trim().to_string()
}
