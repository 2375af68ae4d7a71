//! The `uv-python` target: uv's directory of managed Python installations.
//!
//! Teams install Python with `uv python install` (or let uv fetch one on demand), and the nox
//! envs they build point into this directory. Restoring `.nox` without it leaves envs whose
//! interpreter is gone, which validation then removes; restoring it first keeps them. This file
//! knows where uv keeps its Pythons, what the key of that directory rests on (the Python
//! versions the project asks for), and what in it is uv's scratch space, never saved.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use super::rules::{LeaveOut, Rules, TargetPlan};
use super::{Target, uv};
use crate::config::Config;
use crate::key;
use crate::python::Interpreter;

pub const TARGET: Target = Target(&UvPython);

pub struct UvPython;

impl Rules for UvPython {
    fn name(&self) -> &'static str {
        "uv-python"
    }

    fn dir(&self, cfg: &Config) -> (PathBuf, &'static str) {
        install_dir(cfg)
    }

    fn key_files(&self) -> Vec<&'static str> {
        KEY_FILES.to_vec()
    }

    fn fingerprint(&self, cfg: &Config, _interpreter: Option<&Interpreter>) -> String {
        fingerprint(&cfg.working_directory)
    }

    fn contents(&self) -> &'static str {
        "the Pythons are"
    }

    fn leave_out(&self, _cfg: &Config, plan: &TargetPlan, _stored: &[&TargetPlan]) -> LeaveOut {
        LeaveOut { skip: scratch_entries(&plan.dir), ..LeaveOut::default() }
    }
}

/// The files that say which Pythons a job installs, hashed into the key: uv's version pins and
/// the noxfile's `python=` lists. `requires-python` is read out of `pyproject.toml` into the
/// fingerprint instead, so a dependency change does not move this key.
pub const KEY_FILES: &[&str] = &["**/.python-version", "**/.python-versions", "**/noxfile.py"];

/// The fingerprint when the project's `pyproject.toml` states no `requires-python`.
pub const ANY_PYTHON: &str = "anypython";

/// uv's Python directory, resolved in uv's order: `UV_PYTHON_INSTALL_DIR`, `uv python dir`,
/// `$XDG_DATA_HOME/uv/python`, `~/.local/share/uv/python`; with where the answer came from.
pub fn install_dir(cfg: &Config) -> (PathBuf, &'static str) {
    if let Some(dir) = &cfg.runner.uv_python_install_dir_env {
        return (uv::absolute(&cfg.working_directory, dir), "UV_PYTHON_INSTALL_DIR");
    }
    if let Some(dir) = uv::reported_dir(&cfg.working_directory, "python") {
        return (dir, "`uv python dir`");
    }
    if let Some(xdg) = &cfg.runner.xdg_data_home {
        return (xdg.join("uv/python"), "$XDG_DATA_HOME/uv/python");
    }
    let home = cfg.runner.home.clone().unwrap_or_else(|| cfg.runner.temp.clone());
    (home.join(".local/share/uv/python"), "~/.local/share/uv/python")
}

/// The key's fingerprint: a short hash of the project's `requires-python`, or [`ANY_PYTHON`].
pub fn fingerprint(project: &Path) -> String {
    match requires_python(project) {
        Some(spec) => format!("rp{}", key::short_hash(&spec)),
        None => ANY_PYTHON.to_string(),
    }
}

/// The `requires-python` of `project/pyproject.toml`'s `[project]` table, whitespace removed.
pub fn requires_python(project: &Path) -> Option<String> {
    let text = fs::read_to_string(project.join("pyproject.toml")).ok()?;
    requires_python_in(&text)
}

/// Reads `requires-python = "…"` from the `[project]` table of a `pyproject.toml`: one line, a
/// basic or literal string, as every build backend and uv write it.
fn requires_python_in(text: &str) -> Option<String> {
    let mut in_project = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_project = line.trim_end_matches(|c: char| c != ']') == "[project]";
            continue;
        }
        let Some(rest) = line.strip_prefix("requires-python").filter(|_| in_project) else { continue };
        let value = rest.trim_start().strip_prefix('=')?.trim();
        let quote = value.chars().next().filter(|c| matches!(c, '"' | '\''))?;
        let inner = &value[1..];
        let spec = &inner[..inner.find(quote)?];
        return Some(spec.chars().filter(|c| !c.is_whitespace()).collect());
    }
    None
}

/// What a save leaves out of the directory: uv's hidden entries at its top (`.lock`, and the
/// `.temp` and `.cache` scratch directories of downloads in progress), relative to `dir`.
pub fn scratch_entries(dir: &Path) -> HashSet<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else { return HashSet::new() };
    entries
        .flatten()
        .map(|e| PathBuf::from(e.file_name()))
        .filter(|name| name.to_string_lossy().starts_with('.'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requires_python_comes_from_the_project_table_only() {
        let text = "[build-system]\nrequires-python = \">=2\"\n\n[project]\nname = \"demo\"\n\
                    requires-python = \">= 3.9, <4\"  # comment\n\n[tool.uv]\nrequires-python = \"x\"\n";
        assert_eq!(requires_python_in(text).as_deref(), Some(">=3.9,<4"));
        assert_eq!(requires_python_in("[project]\nrequires-python='>=3.12'\n").as_deref(), Some(">=3.12"));
        assert_eq!(
            requires_python_in("[project] # the project\nrequires-python = \"~=3.11\"\n").as_deref(),
            Some("~=3.11")
        );
        assert_eq!(requires_python_in("[project]\nname = \"demo\"\n"), None);
        assert_eq!(requires_python_in("[tool.x]\nrequires-python = \">=3.9\"\n"), None);
    }

    #[test]
    fn the_fingerprint_follows_requires_python() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(fingerprint(dir.path()), ANY_PYTHON);
        fs::write(dir.path().join("pyproject.toml"), "[project]\nrequires-python = \">=3.9\"\n").unwrap();
        let first = fingerprint(dir.path());
        assert!(first.starts_with("rp") && first.len() == 14, "{first}");
        fs::write(
            dir.path().join("pyproject.toml"),
            "[project]\nrequires-python = \">= 3.9\"\ndependencies = [\"a\"]\n",
        )
        .unwrap();
        assert_eq!(fingerprint(dir.path()), first, "spacing and dependencies do not move it");
        fs::write(dir.path().join("pyproject.toml"), "[project]\nrequires-python = \">=3.10\"\n").unwrap();
        assert_ne!(fingerprint(dir.path()), first);
    }

    #[test]
    fn scratch_entries_are_the_hidden_ones_at_the_top() {
        let dir = tempfile::tempdir().unwrap();
        for d in [".temp", ".cache", "cpython-3.12.8-linux-x86_64-gnu/.hidden"] {
            fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        fs::write(dir.path().join(".lock"), "").unwrap();
        let mut found: Vec<PathBuf> = scratch_entries(dir.path()).into_iter().collect();
        found.sort();
        assert_eq!(found, [PathBuf::from(".cache"), PathBuf::from(".lock"), PathBuf::from(".temp")]);
    }
}
