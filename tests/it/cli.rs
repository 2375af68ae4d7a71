//! The command line as a person types it: no silent mistakes. `key` says what `restore` would say
//! about the keys (on stderr, so stdout stays one line per target), a stray argument is refused,
//! and every refused input names what to write instead.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use crate::support::action::binary;

/// `uv-nox-cache <args>` in `dir`, with `inputs` as `INPUT_*` variables and nothing else of this
/// machine's environment but PATH and a HOME of its own.
fn run(dir: &Path, args: &[&str], inputs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(binary());
    cmd.args(args).current_dir(dir).env_clear().env("PATH", std::env::var("PATH").unwrap()).env("HOME", dir);
    for (name, value) in inputs {
        cmd.env(format!("INPUT_{}", name.to_uppercase()), value);
    }
    cmd.output().expect("run uv-nox-cache")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn key_says_when_no_key_file_matched_and_keeps_stdout_to_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["key"], &[("targets", "uv")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).trim().ends_with("-nofiles"), "{}", text(&out.stdout));
    assert_eq!(text(&out.stdout).lines().count(), 1, "stdout holds the key only: {}", text(&out.stdout));
    assert!(text(&out.stderr).contains("notice: uv: no key file matched"), "{}", text(&out.stderr));
}

#[test]
fn key_files_that_match_nothing_are_named_and_those_that_match_are_not() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("uv.lock"), "version = 1\n").unwrap();
    fs::write(dir.path().join("tools.txt"), "ruff\n").unwrap();
    let out =
        run(dir.path(), &["key"], &[("targets", "uv"), ("key-files", "nothing-matches.txt\ntools.txt")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("`nothing-matches.txt` matches no file"), "{stderr}");
    assert!(!stderr.contains("`tools.txt`"), "a matching pattern is not reported: {stderr}");
    assert!(!stderr.contains("no key file matched"), "uv.lock matched: {stderr}");
}

#[test]
fn key_warns_about_a_python_input_that_does_not_run() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("uv.lock"), "version = 1\n").unwrap();
    let out = run(dir.path(), &["key"], &[("targets", "nox"), ("python", "3.12")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("warning: the `python` input `3.12` did not run"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn commands_that_take_no_arguments_refuse_them() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["key", "extra-arg"][..], &["inputs", "--json"], &["restore", "now"]] {
        let out = run(dir.path(), args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(&format!("`{}` takes no arguments, got `{}`", args[0], args[1])),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(text(&out.stdout).is_empty(), "{args:?} printed {}", text(&out.stdout));
    }
    assert!(run(dir.path(), &["inputs"], &[]).status.success());
}

#[test]
fn refused_inputs_say_what_to_write_instead() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (("key-suffix", "py3.12,linux"), "write it without them, e.g. `py3.12-linux`"),
        (("targets", "UV NOX"), "targets are lower case, write `uv`"),
    ];
    for ((input, value), fix) in cases {
        let out = run(dir.path(), &["key"], &[(input, value)]);
        assert_eq!(out.status.code(), Some(1), "{input}={value}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(&format!("invalid input `{input}`")) && stderr.contains(fix), "{stderr}");
    }
}

#[test]
fn a_current_directory_that_was_removed_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("gone");
    fs::create_dir(&gone).unwrap();
    // The child starts in `gone`, which is removed before it runs: `cd` into it from a shell
    // that removes it first, as a person whose temporary directory was cleaned up would.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd '{}' && rmdir '{}' && exec '{}' key",
            gone.display(),
            gone.display(),
            binary().display()
        ))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("the current directory cannot be read") && stderr.contains("cd into your project"),
        "{stderr}"
    );
    assert!(!stderr.contains("permissions"), "{stderr}");
}
