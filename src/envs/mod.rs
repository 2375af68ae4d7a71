//! What makes a cached environment safe (docs/design.md §5): leaving the workspace's own code out of saved
//! envs and out of the uv cache, a marker per env, and validation after restore.
//!
//! A restored env must never run a stale copy of the project (docs/domain.md §4). So before
//! saving, the workspace's own distributions that would go stale are left out of every env
//! ([`nox_project_eviction`]; editable installs that follow the checkout stay)
//! and uv's builds of local paths are left out of the uv cache ([`uv_local_builds`]); each env
//! gets a marker recording what it was built against ([`markers`]); after restore each env is
//! checked against this machine and deleted when it does not fit ([`validate_and_prune`]).
//!
//! Save-side code never touches the env on disk: it only computes paths for the archive packer
//! to leave out and extra files for it to add, so a failed save cannot damage a live env.

mod conda;
mod evict;
mod generated;
mod links;
mod marker;
mod noxfile;
mod prune;
mod reuse;
mod state;
mod style;

use std::collections::HashSet;
use std::fs;
use std::path::{Component, Path, PathBuf};

pub use conda::{conda_envs, remove_conda_envs};
pub use evict::{
    changed_since_saved, is_uv_environments_bucket, nox_project_eviction, remove_evicted,
    uv_environment_buckets, uv_local_builds,
};
pub use generated::{Generated, MissingGenerated, missing_generated, record_generated, untracked_note};
pub use links::{restore_shared, shared_paths, shared_with_uv_cache};
pub use marker::{
    Link, MARKER_FILE, MARKER_SCHEMA, MARKER_SCHEMA_WITH_LINKS, Marker, ProjectDist, markers,
    saved_project_dists, validate_and_prune,
};
pub use noxfile::{read_workflow, workflow_path, workflow_skips_installs};
pub use prune::{PruneError, UV_TIMEOUT, output_within, uv_prune_ci};
pub use reuse::reuse_advice;
pub use state::{cache_state, envs_state};

/// One distribution (or one uv build) left out of an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evicted {
    /// The env's directory name under the envdir (for the uv cache: the bucket, such as
    /// `sdists-v11/path`).
    pub env: String,
    /// `name-version`, as in the `.dist-info` directory name (or the built wheel's name).
    pub dist: String,
    /// How many paths of it are in [`Eviction::skip`].
    pub paths: usize,
    /// Why it would be stale.
    pub reason: String,
}

/// A workspace distribution kept in an env, because it follows the checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub env: String,
    /// `name-version`.
    pub dist: String,
    /// How it follows the checkout.
    pub reason: String,
    /// The digest of the project's `pyproject.toml` its metadata was generated from.
    pub pyproject_sha256: Option<String>,
    /// The checkout's directories its path `.pth` puts on `sys.path` (absolute, resolved).
    pub import_dirs: Vec<PathBuf>,
    /// The module files under those directories git does not track ([`record_generated`]; empty
    /// until it runs).
    pub generated: Vec<Generated>,
}

/// What the archive packer leaves out.
#[derive(Debug, Clone, Default)]
pub struct Eviction {
    /// Paths relative to the archived directory; a directory leaves out its whole subtree.
    pub skip: HashSet<PathBuf>,
    /// What was left out, for the log.
    pub evicted: Vec<Evicted>,
    /// Workspace distributions left in, for the log and the markers.
    pub kept: Vec<Kept>,
}

/// An env that failed validation after restore and was deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The env's directory name under the envdir.
    pub env: String,
    /// What did not match, naming both sides.
    pub reason: String,
}

/// The envs under `envdir` (directory names), sorted.
pub fn env_list(envdir: &Path) -> Vec<String> {
    env_names(envdir)
}

/// Each env under `envdir` with the `home` its `pyvenv.cfg` names: the directory of the base
/// interpreter it was built on.
pub fn env_homes(envdir: &Path) -> Vec<(String, PathBuf)> {
    env_names(envdir)
        .into_iter()
        .filter_map(|env| {
            let text = fs::read_to_string(envdir.join(&env).join("pyvenv.cfg")).ok()?;
            let home = cfg_value(&parse_pyvenv_cfg(&text), "home")?.to_string();
            Some((env, PathBuf::from(home)))
        })
        .collect()
}

/// The envs under `envdir`: its subdirectories holding a `pyvenv.cfg`, sorted by name.
fn env_names(envdir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(envdir) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| e.path().join("pyvenv.cfg").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// The `key = value` pairs of a `pyvenv.cfg`, keys lower-cased.
fn parse_pyvenv_cfg(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

fn cfg_value<'a>(cfg: &'a [(String, String)], key: &str) -> Option<&'a str> {
    cfg.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The interpreter version a `pyvenv.cfg` records: `version_info` (uv, virtualenv) or `version`
/// (venv), in the form `platform.python_version()` prints (`3.12.4`, `3.14.0rc1`).
fn cfg_python_version(cfg: &[(String, String)]) -> Option<String> {
    cfg_value(cfg, "version_info").or_else(|| cfg_value(cfg, "version")).map(normalize_version)
}

/// virtualenv writes `sys.version_info` in full (`3.11.7.final.0`); turn it into `3.11.7`, and
/// pre-releases (`3.14.0.candidate.1`) into `3.14.0rc1`.
fn normalize_version(v: &str) -> String {
    let parts: Vec<&str> = v.split('.').collect();
    if parts.len() == 5 {
        let base = parts[..3].join(".");
        let tag = match parts[3] {
            "final" => return base,
            "alpha" => "a",
            "beta" => "b",
            "candidate" => "rc",
            other => other,
        };
        return format!("{base}{tag}{}", parts[4]);
    }
    v.to_string()
}

/// `path` with `.` and `..` removed without touching the disk; `None` when `..` climbs above the
/// start of a relative path.
fn normalize_lexically(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            other => out.push(other),
        }
    }
    Some(out)
}

/// `path` made absolute with symlinks resolved as far as the path exists (the rest appended
/// lexically), so a path can be compared with one that exists only elsewhere.
fn resolve_lenient(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let abs = normalize_lexically(&abs).unwrap_or(abs);
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = fs::canonicalize(existing) {
            return rest.iter().rev().fold(real, |p: PathBuf, c| p.join(c));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return abs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyvenv_cfg_versions() {
        let uv = parse_pyvenv_cfg(
            "home = /usr/bin\nimplementation = CPython\nuv = 0.13.9\nversion_info = 3.11.7\n",
        );
        assert_eq!(cfg_value(&uv, "home"), Some("/usr/bin"));
        assert_eq!(cfg_python_version(&uv).as_deref(), Some("3.11.7"));
        let venv =
            parse_pyvenv_cfg("home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.12.4\n");
        assert_eq!(cfg_python_version(&venv).as_deref(), Some("3.12.4"));
        let virtualenv =
            parse_pyvenv_cfg("home = /x\nVersion_Info = 3.14.0.candidate.1\nvirtualenv = 20.1\n");
        assert_eq!(cfg_python_version(&virtualenv).as_deref(), Some("3.14.0rc1"));
        assert_eq!(normalize_version("3.11.7.final.0"), "3.11.7");
        assert_eq!(cfg_python_version(&parse_pyvenv_cfg("home = /x\n")), None);
    }

    #[test]
    fn lexical_normalization() {
        assert_eq!(
            normalize_lexically(Path::new("e/lib/site-packages/../../../bin/x")),
            Some(PathBuf::from("bin/x"))
        );
        assert_eq!(normalize_lexically(Path::new("a/../../b")), None);
        assert_eq!(normalize_lexically(Path::new("/a/./b/../c")), Some(PathBuf::from("/a/c")));
    }

    #[test]
    fn lenient_resolution_keeps_missing_tail() {
        let dir = tempfile::tempdir().unwrap();
        let real = fs::canonicalize(dir.path()).unwrap();
        assert_eq!(resolve_lenient(&dir.path().join("no/such/../thing")), real.join("no/thing"));
    }
}
