//! Files a kept editable install imports from the checkout that git does not track.
//!
//! A kept editable install is only a path `.pth`: it imports whatever the checkout holds. Some
//! builds also write modules into the checkout — hatch-vcs and setuptools-scm write a git-ignored
//! `_version.py`, in-place builds leave compiled extensions — and a fresh checkout lacks them
//! until the install step runs again. `nox -R` skips that step on a reused env, so the env's
//! import of that module fails. The save records these files per kept install (in the env's
//! marker); the restore names the ones the new checkout lacks, what `nox -R` will hit and what
//! to run instead. Nothing here writes into the checkout.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::evict::site_packages_dirs;
use super::{Eviction, Kept, ProjectDist};

/// Files that can be imported as modules: Python sources and compiled extensions.
const MODULE_SUFFIXES: &[&str] = &[".py", ".so", ".pyd"];

/// One untracked module file under a directory a kept editable install puts on `sys.path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generated {
    /// Its absolute path when the env was saved (as the marker's env path, the workspace must be
    /// at the same place for the env to be kept at all).
    pub path: String,
    /// The module it is imported as (`vcspkg._version`).
    pub module: String,
}

/// Fills in [`super::Kept::generated`] for every kept install of `eviction`: the module files
/// under the packages its path `.pth` exposes that git does not track (untracked or ignored).
/// Returns, per kept install it could not tell for, why (git missing, not a repository).
pub fn record_generated(eviction: &mut Eviction) -> Vec<String> {
    let mut trouble = Vec::new();
    for kept in &mut eviction.kept {
        kept.generated.clear();
        for dir in &kept.import_dirs {
            match untracked_modules(dir) {
                Ok(found) => kept.generated.extend(found),
                Err(why) => trouble.push(format!(
                    "env `{}`: cannot tell which files under {} that {} imports git does not track, so none are recorded: {why}",
                    kept.env,
                    dir.display(),
                    kept.dist
                )),
            }
        }
    }
    trouble
}

/// The untracked module files inside the regular packages (directories with an `__init__.py`)
/// directly under `dir`, a directory of the checkout on `sys.path`. Bytecode caches, hidden
/// directories and virtual environments are not looked at.
fn untracked_modules(dir: &Path) -> Result<Vec<Generated>, String> {
    let packages: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| e.path().join("__init__.py").is_file() && !e.path().join("pyvenv.cfg").exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| !name.starts_with('.'))
        .collect();
    if packages.is_empty() {
        return Ok(Vec::new());
    }
    let out = Command::new("git")
        .args(["ls-files", "-z", "--others", "--"])
        .args(&packages)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("git cannot be run: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("`git ls-files` failed: {}", err.lines().next().unwrap_or("").trim()));
    }
    let mut found: Vec<Generated> = String::from_utf8_lossy(&out.stdout)
        .split('\0')
        .filter(|rel| !rel.is_empty() && !rel.split('/').any(|part| part == "__pycache__"))
        .filter_map(|rel| {
            let module = module_name(rel)?;
            Some(Generated { path: dir.join(rel).to_string_lossy().into_owned(), module })
        })
        .collect();
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

/// The module a file at `rel` (relative to a `sys.path` directory, `/`-separated) is imported
/// as: `pkg/_version.py` → `pkg._version`, `pkg/__init__.py` → `pkg`,
/// `pkg/_ext.cpython-312-x86_64-linux-gnu.so` → `pkg._ext`. `None` for other files.
fn module_name(rel: &str) -> Option<String> {
    let (dir, file) = rel.rsplit_once('/').unwrap_or(("", rel));
    let suffix = MODULE_SUFFIXES.iter().find(|s| file.ends_with(*s))?;
    let stem = if *suffix == ".py" { file.strip_suffix(suffix)? } else { file.split('.').next()? };
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    if stem != "__init__" {
        parts.push(stem);
    }
    let valid = !parts.is_empty()
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_alphanumeric() || c == '_') && !p.starts_with(char::is_numeric));
    valid.then(|| parts.join("."))
}

/// For the save log: the untracked files a kept install imports, if any.
pub fn untracked_note(kept: &Kept) -> Option<String> {
    if kept.generated.is_empty() {
        return None;
    }
    let files: Vec<&str> = kept.generated.iter().map(|g| g.path.as_str()).collect();
    Some(format!(
        "{} imports {}, which git does not track: a fresh checkout lacks {} until its install step runs",
        kept.dist,
        files.join(", "),
        if files.len() == 1 { "it" } else { "them" }
    ))
}

/// A kept editable install whose recorded untracked modules the checkout now lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingGenerated {
    pub env: String,
    /// `name-version`.
    pub dist: String,
    /// The missing files, as recorded.
    pub files: Vec<Generated>,
}

impl MissingGenerated {
    /// What `nox -R` will hit and what to run instead, naming the files relative to
    /// `workspace`.
    pub fn message(&self, workspace: &Path) -> String {
        let shown: Vec<String> = self
            .files
            .iter()
            .map(|f| {
                let path = Path::new(&f.path);
                let rel = path.strip_prefix(workspace).unwrap_or(path);
                format!("{} (`{}`)", rel.display(), f.module)
            })
            .collect();
        let it = if self.files.len() == 1 { "it" } else { "them" };
        format!(
            "env `{}`: {} imports {} from the checkout, which git does not track and this checkout lacks \
             (the project's build wrote {it} when the env was saved). With installs skipped (`nox -R`, \
             `--no-install`) an import of `{}` fails with ModuleNotFoundError; let the install step run \
             (`nox -r` or `--reuse-venv=yes`): rebuilding the editable install writes {it} again",
            self.env,
            self.dist,
            shown.join(", "),
            self.files[0].module,
        )
    }
}

/// The kept installs of `saved` (per env, from the markers) still present in the envs under
/// `envdir` whose recorded untracked modules no longer exist.
pub fn missing_generated(envdir: &Path, saved: &BTreeMap<String, Vec<ProjectDist>>) -> Vec<MissingGenerated> {
    let mut missing = Vec::new();
    for (env, dists) in saved {
        for d in dists.iter().filter(|d| d.kept && !d.generated.is_empty()) {
            let info = format!("{}.dist-info", d.dist);
            let installed =
                site_packages_dirs(envdir, env).iter().any(|site| envdir.join(site).join(&info).is_dir());
            let files: Vec<Generated> =
                d.generated.iter().filter(|f| !PathBuf::from(&f.path).exists()).cloned().collect();
            if installed && !files.is_empty() {
                missing.push(MissingGenerated { env: env.clone(), dist: d.dist.clone(), files });
            }
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names() {
        assert_eq!(module_name("pkg/_version.py").as_deref(), Some("pkg._version"));
        assert_eq!(module_name("pkg/sub/__init__.py").as_deref(), Some("pkg.sub"));
        assert_eq!(module_name("pkg/_ext.cpython-312-x86_64-linux-gnu.so").as_deref(), Some("pkg._ext"));
        assert_eq!(module_name("pkg/_ext.pyd").as_deref(), Some("pkg._ext"));
        assert_eq!(module_name("pkg/data.json"), None);
        assert_eq!(module_name("pkg/my-script.py"), None, "not importable");
    }

    #[test]
    fn the_message_names_the_file_the_module_and_the_way_out() {
        let m = MissingGenerated {
            env: "check".into(),
            dist: "vcspkg-1.0.1".into(),
            files: vec![Generated {
                path: "/w/src/vcspkg/_version.py".into(),
                module: "vcspkg._version".into(),
            }],
        };
        let text = m.message(Path::new("/w"));
        assert!(
            text.starts_with("env `check`: vcspkg-1.0.1 imports src/vcspkg/_version.py (`vcspkg._version`)"),
            "{text}"
        );
        assert!(text.contains("an import of `vcspkg._version` fails with ModuleNotFoundError"), "{text}");
        assert!(text.contains("`nox -r`"), "{text}");
    }
}
