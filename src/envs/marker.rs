//! Env markers and validation after restore.
//!
//! A venv is not relocatable: `bin/python` links to an absolute base interpreter, `pyvenv.cfg`
//! names its directory, and console-script shebangs embed the env's own absolute path
//! (docs/domain.md §2, §3). nox checks none of that beyond a dangling `bin/python`, and cannot
//! tell whether the interpreter behind a still-valid link is the one the env was built with. So
//! each saved env carries a marker of what it was built against, and after restore every env is
//! checked against this machine; one that does not fit is deleted (nox recreates it) rather than
//! left to fail oddly or, worse, run on a different Python than requested.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::generated::Generated;
use super::{
    Eviction, Invalid, cfg_python_version, cfg_value, env_names, normalize_lexically, parse_pyvenv_cfg,
};
use super::{normalize_version, resolve_lenient};
use crate::python::Interpreter;

/// One env file that is also in the uv cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The file, relative to the env.
    pub path: String,
    /// The same file, relative to the uv cache.
    pub uv: String,
    pub size: u64,
}

/// The marker's file name inside each env directory.
pub const MARKER_FILE: &str = ".uv-nox-cache-env.json";

/// Bumped when [`Marker`] changes meaning; an env with another schema is rebuilt.
pub const MARKER_SCHEMA: u32 = 1;
/// The schema of a marker that lists files the env shares with the uv cache (left out of its
/// archive): a version that cannot put them back rejects the env instead of running it
/// without them.
pub const MARKER_SCHEMA_WITH_LINKS: u32 = 2;

/// How long asking an interpreter for its version may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// What one env was built against, written as JSON into `<env>/.uv-nox-cache-env.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// [`MARKER_SCHEMA`] of the writer.
    pub schema: u32,
    /// The OS label the caller passed when saving (for example `Linux`).
    pub os: String,
    /// The architecture label the caller passed when saving (for example `X64`).
    pub arch: String,
    /// The env's absolute path (symlinks resolved) when it was saved.
    pub env: String,
    /// The real path of the base interpreter `bin/python` resolved to.
    pub interpreter: String,
    /// Its version as `pyvenv.cfg` records it, in `platform.python_version()` form.
    pub python_version: String,
    /// What the save did with each of the workspace's own distributions in the env, so the
    /// restore log can say it (absent in markers of older versions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub project: Vec<ProjectDist>,
    /// The env's files left out of its archive because the uv cache saved beside it holds them
    /// (`links.rs`); only with [`MARKER_SCHEMA_WITH_LINKS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uv_cache_files: Vec<Link>,
}

/// One workspace distribution as the save found it in an env.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectDist {
    /// `name-version`.
    pub dist: String,
    /// Kept in the archive (an editable install that follows the checkout) or left out.
    pub kept: bool,
    /// Why.
    pub reason: String,
    /// For a kept one: the digest of the `pyproject.toml` its metadata was generated from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pyproject_sha256: Option<String>,
    /// For a kept one: the module files it imports from the checkout that git did not track
    /// (`generated.rs`), which a fresh checkout lacks until the install step runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub generated: Vec<Generated>,
}

impl Marker {
    /// The marker of the env `name` under `envdir`; `None` when its `bin/python` does not
    /// resolve or `pyvenv.cfg` records no version (such an env fails validation anyway).
    pub fn of_env(envdir: &Path, name: &str, os: &str, arch: &str) -> Option<Marker> {
        let env = envdir.join(name);
        let cfg = parse_pyvenv_cfg(&fs::read_to_string(env.join("pyvenv.cfg")).ok()?);
        let interpreter = fs::canonicalize(env.join(PYTHON)).ok()?;
        Some(Marker {
            schema: MARKER_SCHEMA,
            os: os.to_string(),
            arch: arch.to_string(),
            env: resolve_lenient(&env).to_string_lossy().into_owned(),
            interpreter: interpreter.to_string_lossy().into_owned(),
            python_version: cfg_python_version(&cfg)?,
            project: Vec::new(),
            uv_cache_files: Vec::new(),
        })
    }
}

/// The env's interpreter link, relative to the env.
#[cfg(not(windows))]
const PYTHON: &str = "bin/python";
#[cfg(windows)]
const PYTHON: &str = "Scripts/python.exe";

/// One marker file per env under `envdir`, as `(<env>/.uv-nox-cache-env.json, JSON bytes)` with
/// paths relative to `envdir`, for the archive packer to add; each records what `eviction` did
/// with the workspace's own distributions in that env, and which of its files the archive
/// leaves to the uv cache (`shared`). Writes nothing to disk.
pub fn markers(
    envdir: &Path,
    os: &str,
    arch: &str,
    eviction: &Eviction,
    shared: &BTreeMap<String, Vec<Link>>,
) -> Vec<(PathBuf, Vec<u8>)> {
    env_names(envdir)
        .into_iter()
        .filter_map(|name| {
            let mut marker = Marker::of_env(envdir, &name, os, arch)?;
            marker.project = project_dists(eviction, &name);
            if let Some(links) = shared.get(&name) {
                marker.schema = MARKER_SCHEMA_WITH_LINKS;
                marker.uv_cache_files = links.clone();
            }
            let mut json = serde_json::to_vec_pretty(&marker).expect("a marker serialises");
            json.push(b'\n');
            Some((PathBuf::from(name).join(MARKER_FILE), json))
        })
        .collect()
}

fn project_dists(eviction: &Eviction, env: &str) -> Vec<ProjectDist> {
    let kept = eviction.kept.iter().filter(|k| k.env == env).map(|k| ProjectDist {
        dist: k.dist.clone(),
        kept: true,
        reason: k.reason.clone(),
        pyproject_sha256: k.pyproject_sha256.clone(),
        generated: k.generated.clone(),
    });
    let evicted = eviction.evicted.iter().filter(|e| e.env == env).map(|e| ProjectDist {
        dist: e.dist.clone(),
        kept: false,
        reason: e.reason.clone(),
        pyproject_sha256: None,
        generated: Vec::new(),
    });
    kept.chain(evicted).collect()
}

/// What the saves recorded per env under `envdir` about the workspace's own distributions
/// (from the markers, which [`validate_and_prune`] deletes: read this first). Envs without a
/// readable marker are left out.
pub fn saved_project_dists(envdir: &Path) -> BTreeMap<String, Vec<ProjectDist>> {
    env_names(envdir)
        .into_iter()
        .filter_map(|name| {
            let marker = read_marker(&envdir.join(&name)).ok().flatten()?;
            Some((name, marker.project))
        })
        .collect()
}

/// Checks every env restored into `envdir` (a staging directory, or the final one) as if it were
/// already at `final_envdir`: the marker matches this machine (OS, arch, env path, the
/// interpreter still at its recorded real path with the same version), `bin/python` resolves
/// from the final location, and `pyvenv.cfg`'s `home` exists and its interpreter has the
/// recorded version. An env without a marker (saved by another tool) gets the structural checks
/// only. Each failing env is deleted from `envdir` and returned with the reason; each passing
/// env's marker is deleted, since it describes the saved archive, not the live env.
///
/// Each distinct interpreter is run once (`-I -c`, with a timeout) to learn its version.
///
/// `known` is an interpreter already asked in this step (the one the keys were computed with):
/// an env whose interpreter is that one is not asked again.
pub fn validate_and_prune(
    envdir: &Path,
    final_envdir: &Path,
    os: &str,
    arch: &str,
    known: Option<&Interpreter>,
) -> Vec<Invalid> {
    let final_envdir = resolve_lenient(final_envdir);
    let mut versions = VersionProbe::knowing(known);
    let mut invalid = Vec::new();
    for name in env_names(envdir) {
        let stage_env = envdir.join(&name);
        let marker_path = stage_env.join(MARKER_FILE);
        match check_env(&stage_env, &final_envdir.join(&name), os, arch, &mut versions) {
            Ok(()) => {
                let _ = fs::remove_file(&marker_path);
            }
            Err(reason) => {
                let reason = match fs::remove_dir_all(&stage_env) {
                    Ok(()) => reason,
                    Err(e) => format!("{reason} (and deleting {} failed: {e})", stage_env.display()),
                };
                invalid.push(Invalid { env: name, reason });
            }
        }
    }
    invalid
}

/// The first reason `stage_env` (to live at `final_env`) is unusable, naming both sides. The
/// marker is checked first, so the reason names what changed rather than its symptom.
fn check_env(
    stage_env: &Path,
    final_env: &Path,
    os: &str,
    arch: &str,
    versions: &mut VersionProbe,
) -> Result<(), String> {
    let marker = read_marker(stage_env)?;
    if let Some(marker) = &marker {
        check_marker(marker, stage_env, final_env, os, arch)?;
    }
    let (python, runnable) = resolve_python(stage_env, final_env)?;
    let cfg_text = fs::read_to_string(stage_env.join("pyvenv.cfg"))
        .map_err(|e| format!("pyvenv.cfg cannot be read: {e}"))?;
    let cfg = parse_pyvenv_cfg(&cfg_text);
    let home = cfg_value(&cfg, "home").ok_or("pyvenv.cfg has no `home`")?;
    if !Path::new(home).is_dir() {
        return Err(format!("pyvenv.cfg home {home} does not exist on this runner"));
    }
    let recorded_version = match marker {
        Some(marker) if Path::new(&marker.interpreter) != python => {
            return Err(format!(
                "{PYTHON} now resolves to {}, the env was built with {}",
                python.display(),
                marker.interpreter
            ));
        }
        Some(marker) => marker.python_version,
        None => cfg_python_version(&cfg).ok_or("pyvenv.cfg records no `version_info` or `version`")?,
    };
    let actual = versions.version(&runnable)?;
    if !same_python(&recorded_version, &normalize_version(&actual)) {
        return Err(format!(
            "interpreter {} is Python {actual}, the env was built with Python {recorded_version}",
            python.display()
        ));
    }
    Ok(())
}

/// Whether an interpreter of version `actual` is the one an env recorded as `recorded`. uv
/// builds envs on its minor-version links (`cpython-3.12-linux-x86_64-gnu`, so that a patch
/// upgrade reaches them) and records only `3.12` then: any `3.12.x` is that interpreter.
fn same_python(recorded: &str, actual: &str) -> bool {
    let minor_only =
        recorded.split('.').count() == 2 && recorded.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    recorded == actual
        || (minor_only && actual.strip_prefix(recorded).is_some_and(|rest| rest.starts_with('.')))
}

pub(super) fn read_marker(stage_env: &Path) -> Result<Option<Marker>, String> {
    let path = stage_env.join(MARKER_FILE);
    let Ok(text) = fs::read_to_string(&path) else { return Ok(None) };
    serde_json::from_str(&text).map(Some).map_err(|e| format!("marker {MARKER_FILE} is unreadable: {e}"))
}

fn check_marker(
    marker: &Marker,
    stage_env: &Path,
    final_env: &Path,
    os: &str,
    arch: &str,
) -> Result<(), String> {
    if ![MARKER_SCHEMA, MARKER_SCHEMA_WITH_LINKS].contains(&marker.schema) {
        return Err(format!(
            "marker schema is {}, this version reads {MARKER_SCHEMA} and {MARKER_SCHEMA_WITH_LINKS}",
            marker.schema
        ));
    }
    if marker.os != os {
        return Err(format!("env was built on OS {}, this runner is {os}", marker.os));
    }
    if marker.arch != arch {
        return Err(format!("env was built on arch {}, this runner is {arch}", marker.arch));
    }
    if Path::new(&marker.env) != final_env {
        return Err(format!(
            "env was built at {}, it is restored to {} (scripts and links embed the old path)",
            marker.env,
            final_env.display()
        ));
    }
    // An interpreter copied into the env (`venv --copies`, Windows) is still in the staging dir.
    let interpreter = Path::new(&marker.interpreter);
    let now_at = interpreter.strip_prefix(final_env).map_or(interpreter.to_path_buf(), |p| stage_env.join(p));
    if !now_at.exists() {
        return Err(format!("interpreter {} the env was built with no longer exists", marker.interpreter));
    }
    Ok(())
}

/// Follows `bin/python` of the env as it will be at `final_env` (relative links are resolved
/// from there; links inside the env are read from `stage_env`). Returns the resolved path as it
/// will be named, and a path that can be run now (the same, or its staging copy when the
/// interpreter is a real file inside the env).
fn resolve_python(stage_env: &Path, final_env: &Path) -> Result<(PathBuf, PathBuf), String> {
    let start = final_env.join(PYTHON);
    let mut path = start.clone();
    for _ in 0..40 {
        match path.strip_prefix(final_env) {
            Ok(inside) => {
                let staged = stage_env.join(inside);
                let meta = fs::symlink_metadata(&staged)
                    .map_err(|_| format!("{} does not exist", display_chain(&start, &path)))?;
                if !meta.file_type().is_symlink() {
                    return Ok((path, staged));
                }
                let target = fs::read_link(&staged).map_err(|e| format!("{}: {e}", staged.display()))?;
                let joined = path.parent().unwrap_or(final_env).join(target);
                path = normalize_lexically(&joined).unwrap_or(joined);
            }
            Err(_) => {
                let real = fs::canonicalize(&path)
                    .map_err(|_| format!("{} does not exist", display_chain(&start, &path)))?;
                return Ok((real.clone(), real));
            }
        }
    }
    Err(format!("{} is a symlink loop", start.display()))
}

fn display_chain(start: &Path, end: &Path) -> String {
    if start == end {
        format!("{PYTHON} ({})", start.display())
    } else {
        format!("{PYTHON} points to {}, which", end.display())
    }
}

/// Interpreter versions, asked once per interpreter.
#[derive(Default)]
struct VersionProbe {
    seen: HashMap<PathBuf, Result<String, String>>,
}

impl VersionProbe {
    fn knowing(known: Option<&Interpreter>) -> Self {
        let seen = known.map(|i| (PathBuf::from(&i.realpath), Ok(i.version.clone()))).into_iter().collect();
        VersionProbe { seen }
    }

    fn version(&mut self, python: &Path) -> Result<String, String> {
        self.seen.entry(python.to_path_buf()).or_insert_with(|| probe_version(python)).clone()
    }
}

/// `platform.python_version()` of `python`, killed after [`PROBE_TIMEOUT`].
fn probe_version(python: &Path) -> Result<String, String> {
    let mut child = Command::new(python)
        .args(["-I", "-c", "import platform; print(platform.python_version())"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("interpreter {} cannot be run: {e}", python.display()))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < PROBE_TIMEOUT => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "interpreter {} did not report its version within {}s",
                    python.display(),
                    PROBE_TIMEOUT.as_secs()
                ));
            }
            Err(e) => return Err(format!("waiting for interpreter {}: {e}", python.display())),
        }
    };
    let mut out = String::new();
    child.stdout.take().map(|mut s| s.read_to_string(&mut out));
    let version = out.trim();
    if !status.success() || version.is_empty() {
        return Err(format!("interpreter {} failed to report its version ({status})", python.display()));
    }
    Ok(version.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minor_version_record_matches_its_patch_releases_only() {
        assert!(same_python("3.12.4", "3.12.4"));
        assert!(same_python("3.12", "3.12.8"));
        assert!(same_python("3.14", "3.14.0rc1"));
        assert!(!same_python("3.12", "3.13.1"));
        assert!(!same_python("3.1", "3.12.1"));
        assert!(!same_python("3.12.4", "3.12.5"));
        assert!(!same_python("3.12.4", "3.12"));
    }

    #[test]
    fn marker_json_round_trip() {
        let m = Marker {
            schema: MARKER_SCHEMA,
            os: "Linux".into(),
            arch: "X64".into(),
            env: "/w/.nox/tests".into(),
            interpreter: "/usr/bin/python3.12".into(),
            python_version: "3.12.4".into(),
            project: Vec::new(),
            uv_cache_files: Vec::new(),
        };
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains(r#""interpreter":"/usr/bin/python3.12""#), "{json}");
        assert!(!json.contains("uv_cache_files"), "a marker without links reads as before: {json}");
        assert_eq!(serde_json::from_str::<Marker>(&json).unwrap(), m);
    }

    #[cfg(unix)]
    #[test]
    fn python_link_resolves_from_the_final_location() {
        let dir = tempfile::tempdir().unwrap();
        let stage = dir.path().join("stage/e");
        let fin = dir.path().join("final/e");
        fs::create_dir_all(stage.join("bin")).unwrap();
        fs::create_dir_all(fin.join("bin")).unwrap();
        // A relative link inside the env, then a link out of it relative to the final location.
        std::os::unix::fs::symlink("python3", stage.join("bin/python")).unwrap();
        std::os::unix::fs::symlink("../../base", stage.join("bin/python3")).unwrap();
        assert!(resolve_python(&stage, &fin).unwrap_err().contains("does not exist"));
        fs::write(dir.path().join("final/base"), "").unwrap();
        let (named, _) = resolve_python(&stage, &fin).unwrap();
        assert_eq!(named, fs::canonicalize(dir.path().join("final/base")).unwrap());
    }
}
