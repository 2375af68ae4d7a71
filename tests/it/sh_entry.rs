//! The Forgejo `sh` entry (`forgejo/action.yml`), started the way the Forgejo runner starts an
//! `sh` action: `sh -c "<runs.main>"`, every input in the environment as `INPUT_<NAME>` with
//! hyphens kept and defaults filled in. Under dash and busybox sh — the `/bin/sh` of Debian,
//! Ubuntu, `python:*-slim` and Alpine images — such names never reach a child process; the
//! entry must still deliver every input, or refuse to run.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::action::{Machine, binary, parse_file_commands, repo_root};

/// `runs.<field>` of forgejo/action.yml.
fn runs(field: &str) -> String {
    let text = fs::read_to_string(repo_root().join("forgejo/action.yml")).unwrap();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    doc["runs"][field]
        .as_str()
        .unwrap_or_else(|| panic!("forgejo/action.yml has no runs.{field}"))
        .to_string()
}

/// The shells that drop hyphenated names, as argv prefixes. Both must be installed (scripts/test
/// installs them): a missing shell fails the test.
fn shells() -> Vec<Vec<String>> {
    let dash = Path::new("/usr/bin/dash");
    assert!(dash.exists(), "dash is not installed (apt-get install dash)");
    let busybox = Path::new("/usr/bin/busybox");
    assert!(busybox.exists(), "busybox is not installed (apt-get install busybox)");
    vec![vec![dash.display().to_string()], vec![busybox.display().to_string(), "sh".into()]]
}

/// Every input of forgejo/action.yml with its default, as the runner's `populateEnvsFromInput`
/// fills them in, then `with` on top.
fn inputs(with: &[(&str, &str)]) -> BTreeMap<String, String> {
    let text = fs::read_to_string(repo_root().join("forgejo/action.yml")).unwrap();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let mut out = BTreeMap::new();
    for (name, spec) in doc["inputs"].as_mapping().unwrap() {
        let default = spec["default"].as_str().map(str::to_string).unwrap_or_default();
        out.insert(format!("INPUT_{}", name.as_str().unwrap().to_uppercase()), default);
    }
    for (name, value) in with {
        out.insert(format!("INPUT_{}", name.to_uppercase()), value.to_string());
    }
    out
}

/// Runs `script` as `<shell> -c script` with the step's environment; returns the output and
/// what the step wrote to `GITHUB_OUTPUT`.
fn run_step(
    shell: &[String],
    script: &str,
    machine: &Machine,
    inputs: &BTreeMap<String, String>,
) -> (Output, BTreeMap<String, String>) {
    let job = machine.job();
    let output_file = job.dir.join("output");
    fs::write(&output_file, "").unwrap();
    let mut cmd = Command::new(&shell[0]);
    cmd.args(&shell[1..]).arg("-c").arg(script).env_clear().current_dir(&machine.workspace);
    cmd.envs(&job.env).envs(inputs);
    let action_path: PathBuf = repo_root().join("forgejo");
    cmd.env("GITHUB_ACTION_PATH", &action_path)
        .env("UV_NOX_CACHE_BINARY", binary())
        .env("GITHUB_OUTPUT", &output_file)
        .env("GITHUB_STATE", job.dir.join("state"))
        .env("GITHUB_ENV", job.dir.join("env"));
    let out = cmd.output().expect("start the shell");
    let outputs = parse_file_commands(&fs::read_to_string(&output_file).unwrap_or_default());
    (out, outputs)
}

fn log(out: &Output) -> String {
    format!(
        "{}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A project in `sub/` of the workspace, so `working-directory` changes what is hashed.
fn project_in_sub(machine: &Machine) {
    let sub = machine.workspace.join("sub");
    fs::create_dir_all(&sub).unwrap();
    fs::write(sub.join("pyproject.toml"), "[project]\nname = \"p\"\nversion = \"1\"\n").unwrap();
    fs::write(sub.join("uv.lock"), "version = 1\n").unwrap();
}

#[test]
fn every_hyphenated_input_reaches_the_binary_under_dash_and_busybox() {
    for shell in shells() {
        let machine = Machine::new();
        project_in_sub(&machine);
        let given = inputs(&[
            ("targets", "uv"),
            ("working-directory", "sub"),
            ("key-suffix", "through-sh"),
            ("backend", "local"),
            ("local-dir", &machine.store.display().to_string()),
        ]);
        let (out, outputs) = run_step(&shell, &runs("main"), &machine, &given);
        assert!(out.status.success(), "{shell:?}: {}", log(&out));
        let key =
            outputs.get("uv-key").unwrap_or_else(|| panic!("{shell:?}: no uv-key output: {}", log(&out)));
        assert!(key.contains("-through-sh-"), "{shell:?}: key-suffix was lost: {key}\n{}", log(&out));
        assert!(!key.ends_with("-nofiles"), "{shell:?}: working-directory was lost: {key}\n{}", log(&out));
        // The same key as the binary computes with the inputs given directly.
        let direct = Command::new(binary())
            .arg("key")
            .env_clear()
            .current_dir(&machine.workspace)
            .envs(machine.job().env)
            .envs(&given)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&direct.stdout).trim(), format!("uv {key}"), "{shell:?}");
    }
}

#[test]
fn a_shell_that_lost_them_makes_the_step_fail_with_the_fix() {
    for shell in shells() {
        let machine = Machine::new();
        project_in_sub(&machine);
        let given = inputs(&[("targets", "uv"), ("working-directory", "sub"), ("backend", "local")]);
        // `exec` replaces the runner's shell, so nothing holds the dropped names any more.
        let script = runs("main").replace(" || exit $?", "");
        let script = format!("exec {script}");
        let (out, _) = run_step(&shell, &script, &machine, &given);
        assert_eq!(out.status.code(), Some(1), "{shell:?}: {}", log(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("::error::") && stdout.contains("did not reach the action"),
            "{shell:?}: {stdout}"
        );
        assert!(stdout.contains("Fix:"), "{stdout}");
    }
}
