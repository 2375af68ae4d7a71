//! Asks an interpreter who it is: its real path and full version, which cached venvs embed and
//! so the keys must carry.

use std::path::Path;
use std::process::Command;

/// What a Python interpreter says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreter {
    /// `os.path.realpath(sys.executable)`.
    pub realpath: String,
    /// `platform.python_version()`, e.g. `3.12.4`.
    pub version: String,
}

impl Interpreter {
    /// `3.12` from `3.12.4`.
    pub fn minor_version(&self) -> String {
        self.version.split('.').take(2).collect::<Vec<_>>().join(".")
    }
}

/// The interpreter asked when the `python` input is not given, and always for the uv key.
pub const DEFAULT: &str = "python3";

const PROBE: &str =
    "import os, platform, sys; print(os.path.realpath(sys.executable)); print(platform.python_version())";

/// Runs `python` (a command on PATH or a path) from `cwd`; `None` when it cannot run.
pub fn probe(python: &str, cwd: &Path) -> Option<Interpreter> {
    let out = Command::new(python).args(["-c", PROBE]).current_dir(cwd).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let mut lines = text.lines();
    let realpath = lines.next()?.trim().to_string();
    let version = lines.next()?.trim().to_string();
    (!realpath.is_empty() && !version.is_empty()).then_some(Interpreter { realpath, version })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_the_machines_python3() {
        let found = probe("python3", Path::new(".")).expect("python3 runs on the test machine");
        assert!(Path::new(&found.realpath).is_absolute(), "{found:?}");
        assert!(found.version.starts_with("3."), "{found:?}");
        assert_eq!(found.minor_version().matches('.').count(), 1);
    }

    #[test]
    fn a_missing_interpreter_is_none() {
        assert_eq!(probe("no-such-python-here", Path::new(".")), None);
    }
}
