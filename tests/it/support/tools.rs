//! Real tools for the tests, provisioned on first use into `target/test-tools/`: uv and nox from
//! PyPI, npm packages (the official `@actions/cache`, `@actions/glob`) from npm.
//!
//! A tool that cannot be had makes the test panic with the reason: a missing tool never lets a
//! test pass silently. Provisioning is guarded by a lock file so parallel tests install once.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Versions the tests pin, so runs are repeatable.
pub const UV_VERSION: &str = "0.13.9";
/// An older uv of the series before, with other cache buckets (`wheels-v6`, `simple-v25`, …),
/// for upgrades and downgrades.
pub const UV_OLDER_VERSION: &str = "0.12.24";
pub const NOX_VERSION: &str = "2026.10.20";
/// The official cache client the interop tests and benchmarks run (`npm_project("actions-cache", …)`).
pub const ACTIONS_CACHE_PACKAGES: &[&str] = &["@actions/cache@6.3.0"];
/// The runner's own glob library, for comparing `hashFiles()` (`npm_project("glob", …)`).
pub const ACTIONS_GLOB_PACKAGES: &[&str] = &["@actions/glob@0.4.0", "minimatch@3.1.2"];

/// `target/test-tools`, next to the test binary's own target directory.
pub fn tools_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("test-tools");
    fs::create_dir_all(&dir).expect("create target/test-tools");
    dir
}

/// Runs `f` while holding an exclusive lock on `target/test-tools/<name>.lock`.
// `File::lock` is newer than the declared MSRV; tests run on the current toolchain only.
fn locked<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let lock = File::create(tools_dir().join(format!("{name}.lock"))).expect("create lock file");
    lock.lock().expect("lock test-tools");
    let out = f();
    lock.unlock().ok();
    out
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A virtualenv in `target/test-tools/python` holding uv and nox; returns its `bin` directory.
pub fn python_tools_bin() -> PathBuf {
    pip_venv("python", &[&format!("uv=={UV_VERSION}"), &format!("nox=={NOX_VERSION}")])
}

/// The `uv` executable.
pub fn uv() -> PathBuf {
    python_tools_bin().join("uv")
}

/// A virtualenv in `target/test-tools/uv-<UV_OLDER_VERSION>` holding only that uv; returns its
/// `bin` directory.
pub fn older_uv_bin() -> PathBuf {
    pip_venv(&format!("uv-{UV_OLDER_VERSION}"), &[&format!("uv=={UV_OLDER_VERSION}")])
}

/// A virtualenv in `target/test-tools/<name>` with `requirements` installed from PyPI, made
/// once per set of requirements; returns its `bin` directory.
fn pip_venv(name: &str, requirements: &[&str]) -> PathBuf {
    locked(name, || {
        let venv = tools_dir().join(name);
        let bin = venv.join("bin");
        let stamp = venv.join(format!("installed-{}", requirements.join("-").replace("==", "")));
        if !stamp.exists() {
            let _ = fs::remove_dir_all(&venv);
            run(Command::new("python3").args(["-m", "venv"]).arg(&venv), "python3 -m venv");
            run(
                Command::new(bin.join("pip"))
                    .args(["install", "--quiet", "--disable-pip-version-check"])
                    .args(requirements),
                &format!("pip install {}", requirements.join(" ")),
            );
            File::create(&stamp).expect("write stamp");
        }
        bin
    })
}

/// The `nox` executable.
pub fn nox() -> PathBuf {
    python_tools_bin().join("nox")
}

/// `node_modules` of an npm project in `target/test-tools/npm-<name>` with `packages` installed
/// (for example `["@actions/cache@6.3.0"]`). Returns the project directory.
pub fn npm_project(name: &str, packages: &[&str]) -> PathBuf {
    locked(&format!("npm-{name}"), || {
        let dir = tools_dir().join(format!("npm-{name}"));
        let stamp = dir.join(format!("installed-{}", packages.join("+").replace(['/', '@'], "_")));
        if !stamp.exists() {
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("create npm project dir");
            fs::write(dir.join("package.json"), "{\"private\":true}\n").expect("write package.json");
            run(
                Command::new("npm")
                    .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
                    .args(packages)
                    .current_dir(&dir),
                "npm install",
            );
            File::create(&stamp).expect("write stamp");
        }
        dir
    })
}
