//! How a workspace distribution is installed in an env, and whether that install can go stale.
//!
//! Evicting every install of the project (the first design) also removed editable installs,
//! which never hold the project's code: a path `.pth` puts the live checkout on `sys.path`, so
//! after the next checkout the env already imports the new code, and `nox -R` tests it. Evicting
//! them turned that green `nox -R` into `ModuleNotFoundError`. Other installs do hold something
//! from the moment they were made: a non-editable copy, a finder with a fixed module map, compiled
//! extensions, metadata generated from files the key does not hash. This module tells them apart,
//! so that only those are evicted, each with a reason the log can print.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{normalize_lexically, resolve_lenient};

/// What to do with one workspace distribution found in an env.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It follows the checkout; the reason says how. `pyproject_sha256` is the digest of the
    /// project's `pyproject.toml`, from which its metadata was generated; `import_dirs` are the
    /// checkout's directories its path `.pth` puts on `sys.path` (resolved).
    Keep { reason: String, pyproject_sha256: Option<String>, import_dirs: Vec<PathBuf> },
    /// It would run or report something old after a source change; the reason says what.
    Evict { reason: String },
}

impl Verdict {
    fn evict(reason: impl Into<String>) -> Verdict {
        Verdict::Evict { reason: reason.into() }
    }
}

/// Files a compiled extension module can have.
const EXTENSION_SUFFIXES: &[&str] = &[".so", ".pyd", ".dylib"];

/// How many entries of the checkout are looked at for in-place builds before giving up.
const SCAN_LIMIT: usize = 50_000;

/// Judges the distribution whose `.dist-info` is `dist_info` (absolute) in the site-packages
/// directory `site` (absolute) of the env at `env` (absolute), installed from `project`, a
/// directory inside `workspace` (both resolved). `editable` is `dir_info.editable` of its
/// `direct_url.json`; `record` is its `RECORD`'s path column.
///
/// Kept only when every file the install put outside its `.dist-info` is a path `.pth` into the
/// workspace or a console script of its entry points, the checkout holds no compiled extension
/// under those paths, and its metadata is static in `pyproject.toml` (which the key hashes).
pub fn judge(
    env: &Path,
    site: &Path,
    dist_info: &Path,
    project: &Path,
    workspace: &Path,
    editable: bool,
    record: &[String],
) -> Verdict {
    if !editable {
        return Verdict::evict(
            "a non-editable copy of the project: it would run old code after a source change",
        );
    }
    let scripts = entry_point_scripts(dist_info);
    let mut pth_dirs = Vec::new();
    for entry in record {
        let Some(path) = normalize_lexically(&site.join(entry.replace('\\', "/"))) else { continue };
        if path.starts_with(dist_info) {
            continue;
        }
        let shown = path.strip_prefix(env).unwrap_or(&path).display().to_string();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.ends_with(".pth") {
            match pth_paths(&path, site) {
                Ok(dirs) => pth_dirs.extend(dirs),
                Err(line) => {
                    return Verdict::evict(format!(
                        "an import-hook finder ({shown} runs `{line}`): its module map is fixed at install time, so modules added since are missing"
                    ));
                }
            }
        } else if EXTENSION_SUFFIXES.iter().any(|s| name.ends_with(s)) {
            return Verdict::evict(format!("compiled extension {shown} is a build of the old sources"));
        } else if !is_script(&path, env, &scripts) {
            return Verdict::evict(format!("installs a copy of {shown}, which does not follow the checkout"));
        }
    }
    if pth_dirs.is_empty() {
        return Verdict::evict("editable, but through no path .pth: nothing shows it follows the checkout");
    }
    for dir in &pth_dirs {
        if !dir.starts_with(workspace) {
            return Verdict::evict(format!("its .pth points outside the workspace, to {}", dir.display()));
        }
        if !dir.is_dir() {
            return Verdict::evict(format!("its .pth points to {}, which does not exist", dir.display()));
        }
        match find_extension(dir) {
            Scan::Clean => {}
            Scan::Found(file) => {
                let shown = file.strip_prefix(workspace).unwrap_or(&file).display().to_string();
                return Verdict::evict(format!(
                    "compiled extensions built in place in the checkout ({shown}): they stay old until the install step rebuilds them"
                ));
            }
            Scan::TooBig => {
                return Verdict::evict(format!(
                    "{} holds more than {SCAN_LIMIT} entries; in-place compiled extensions could not be ruled out",
                    dir.display()
                ));
            }
        }
    }
    let pyproject = project.join("pyproject.toml");
    let Ok(text) = fs::read_to_string(&pyproject) else {
        return Verdict::evict(
            "the project has no pyproject.toml: its metadata (entry points, dependencies) comes from files the key does not hash",
        );
    };
    if let Err(why) = static_metadata(&text) {
        return Verdict::evict(why);
    }
    let shown: Vec<String> = pth_dirs
        .iter()
        .map(|d| match d.strip_prefix(workspace) {
            Ok(rel) if rel.as_os_str().is_empty() => "the checkout's root directory".to_string(),
            Ok(rel) => format!("{} of the checkout", rel.display()),
            Err(_) => d.display().to_string(),
        })
        .collect();
    Verdict::Keep {
        reason: format!(
            "editable: a path .pth puts {} on sys.path, so it imports the current code",
            shown.join(", ")
        ),
        pyproject_sha256: Some(sha256_hex(text.as_bytes())),
        import_dirs: pth_dirs,
    }
}

/// The digest of a project's `pyproject.toml` as [`Verdict::Keep`] records it; `None` when it
/// cannot be read.
pub fn pyproject_digest(project: &Path) -> Option<String> {
    fs::read(project.join("pyproject.toml")).ok().map(|b| sha256_hex(&b))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The directories a `.pth` file adds to `sys.path` (relative lines are relative to `site`), or
/// the first `import` line, which makes it an import hook rather than a path.
fn pth_paths(pth: &Path, site: &Path) -> Result<Vec<PathBuf>, String> {
    let text = fs::read_to_string(pth).unwrap_or_default();
    let mut dirs = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        if line.starts_with("import ") || line.starts_with("import\t") {
            return Err(line.chars().take(80).collect());
        }
        dirs.push(resolve_lenient(&site.join(line)));
    }
    Ok(dirs)
}

/// The console and GUI script names of a distribution's `entry_points.txt`.
fn entry_point_scripts(dist_info: &Path) -> Vec<String> {
    let text = fs::read_to_string(dist_info.join("entry_points.txt")).unwrap_or_default();
    let mut section = String::new();
    let mut names = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_string();
        } else if matches!(section.as_str(), "console_scripts" | "gui_scripts")
            && let Some((name, _)) = line.split_once('=')
        {
            names.push(name.trim().to_string());
        }
    }
    names
}

/// Whether `path` is the env's wrapper for one of `scripts` (`bin/<name>`, or on Windows
/// `Scripts/<name>.exe` and its `-script.py`).
fn is_script(path: &Path, env: &Path, scripts: &[String]) -> bool {
    let Ok(rel) = path.strip_prefix(env) else { return false };
    let mut parts = rel.components();
    let (Some(dir), Some(file), None) = (parts.next(), parts.next(), parts.next()) else { return false };
    let dir = dir.as_os_str().to_string_lossy();
    if dir != "bin" && dir != "Scripts" {
        return false;
    }
    let file = file.as_os_str().to_string_lossy();
    let stem = file.strip_suffix(".exe").or_else(|| file.strip_suffix("-script.py")).unwrap_or(&file);
    scripts.iter().any(|s| s == stem)
}

enum Scan {
    Clean,
    Found(PathBuf),
    TooBig,
}

/// Looks under `dir` (a directory of the checkout on `sys.path`) for a compiled extension,
/// leaving out hidden directories, `__pycache__`, `node_modules` and virtual environments.
fn find_extension(dir: &Path) -> Scan {
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = 0usize;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            seen += 1;
            if seen > SCAN_LIMIT {
                return Scan::TooBig;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                let path = entry.path();
                let skip = name.starts_with('.')
                    || name == "__pycache__"
                    || name == "node_modules"
                    || path.join("pyvenv.cfg").exists();
                if !skip {
                    stack.push(path);
                }
            } else if EXTENSION_SUFFIXES.iter().any(|s| name.ends_with(s)) {
                return Scan::Found(entry.path());
            }
        }
    }
    Scan::Clean
}

/// `Ok` when `pyproject.toml` declares the project's metadata statically: a `[project]` table
/// whose `dynamic` lists at most `version` (or a `[tool.poetry]` table, whose metadata lives in
/// the same file). Otherwise the reason. A line scan, not a TOML parser: it only has to find one
/// table and one key.
fn static_metadata(pyproject: &str) -> Result<(), String> {
    let mut table = String::new();
    let mut has_project = false;
    let mut has_poetry = false;
    let mut dynamic: Option<String> = None;
    let mut lines = pyproject.lines();
    while let Some(line) = lines.next() {
        let line = line.trim();
        if line.starts_with('[') && !line.starts_with("[[") {
            table = line.trim_matches(|c| c == '[' || c == ']').trim().to_string();
            has_project |= table == "project";
            has_poetry |= table == "tool.poetry";
            continue;
        }
        if table != "project" {
            continue;
        }
        let Some(rest) = line.strip_prefix("dynamic") else { continue };
        let Some(value) = rest.trim_start().strip_prefix('=') else { continue };
        let mut value = value.to_string();
        while !value.contains(']') {
            let Some(next) = lines.next() else { break };
            value.push_str(next);
        }
        dynamic = Some(value);
    }
    if !has_project {
        return if has_poetry {
            Ok(())
        } else {
            Err("pyproject.toml has no [project] table: the metadata (entry points, dependencies) comes from files the key does not hash".into())
        };
    }
    let fields: Vec<String> = dynamic
        .map(|v| {
            let v = v.split('#').next().unwrap_or("").to_string();
            v.split(['"', '\''])
                .skip(1)
                .step_by(2)
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let generated: Vec<&String> = fields.iter().filter(|f| f.as_str() != "version").collect();
    if generated.is_empty() {
        return Ok(());
    }
    let list: Vec<&str> = generated.iter().map(|s| s.as_str()).collect();
    Err(format!(
        "pyproject.toml marks {} as dynamic: generated from files the key does not hash, so the env's copy can be old",
        list.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_and_dynamic_metadata() {
        assert!(static_metadata("[project]\nname = \"a\"\nversion = \"1\"\n").is_ok());
        assert!(static_metadata("[project]\nname = \"a\"\ndynamic = [\"version\"]\n").is_ok());
        assert!(static_metadata("[tool.poetry]\nname = \"a\"\n").is_ok());
        let err =
            static_metadata("[project]\nname = \"a\"\ndynamic = [\n  \"version\",\n  'dependencies',\n]\n")
                .unwrap_err();
        assert!(err.contains("dependencies") && !err.contains("version"), "{err}");
        assert!(static_metadata("[build-system]\nrequires = []\n").unwrap_err().contains("no [project]"));
        // `dynamic` of another table does not count.
        assert!(static_metadata("[project]\nname = \"a\"\n[tool.x]\ndynamic = [\"scripts\"]\n").is_ok());
    }

    #[test]
    fn entry_point_script_names() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("entry_points.txt"),
            "[console_scripts]\ndemo-cli = demo:main\n\n[demo.plugins]\nx = demo:x\n[gui_scripts]\ndemo-gui=demo:gui\n",
        )
        .unwrap();
        assert_eq!(entry_point_scripts(dir.path()), ["demo-cli", "demo-gui"]);
        let env = Path::new("/e");
        let scripts = ["demo-cli".to_string()];
        assert!(is_script(Path::new("/e/bin/demo-cli"), env, &scripts));
        assert!(is_script(Path::new("/e/Scripts/demo-cli.exe"), env, &scripts));
        assert!(!is_script(Path::new("/e/bin/other"), env, &scripts));
        assert!(!is_script(Path::new("/e/lib/demo-cli"), env, &scripts));
    }

    #[test]
    fn pth_lines() {
        let dir = tempfile::tempdir().unwrap();
        let site = fs::canonicalize(dir.path()).unwrap();
        fs::write(site.join("a.pth"), "# comment\n/w/src\n\nrel\n").unwrap();
        assert_eq!(
            pth_paths(&site.join("a.pth"), &site).unwrap(),
            [PathBuf::from("/w/src"), site.join("rel")]
        );
        fs::write(site.join("b.pth"), "import _x; _x.install()\n").unwrap();
        assert_eq!(pth_paths(&site.join("b.pth"), &site).unwrap_err(), "import _x; _x.install()");
    }
}
