//! One plan per target: where its directory is, what it is called inside the archive, the path
//! string its service-side version is computed from, and its keys.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::archive;
use crate::config::{Config, RestoreKeys, Target};
use crate::hash_files;
use crate::key::{self, KeyParts};
use crate::python::{self, Interpreter};
use crate::uv_python;

/// The lock and manifest files every key hashes (setup-uv's defaults).
pub const UV_KEY_FILES: &[&str] = &[
    "**/uv.lock",
    "**/pyproject.toml",
    "**/*requirements*.txt",
    "**/*requirements*.in",
    "**/*constraints*.txt",
    "**/*constraints*.in",
    "**/*.py.lock",
];

/// What the nox key hashes on top of uv's files.
pub const NOX_KEY_FILES: &[&str] = &["**/noxfile.py"];

/// Everything the flows need to know about one target.
#[derive(Debug, Clone)]
pub struct TargetPlan {
    pub target: Target,
    /// The directory restored into and saved from.
    pub dir: PathBuf,
    /// Where `dir`'s value came from, for the log.
    pub dir_source: &'static str,
    /// `dir` relative to the workspace as actions/cache names it inside archives.
    pub archive_name: String,
    /// The path string actions/cache would be given for `dir`; the version derives from it.
    pub version_path: String,
    pub key: KeyParts,
    /// Fallback keys, in order.
    pub restore_keys: Vec<String>,
    /// The interpreter the key was computed with, as it answered (`None` when it did not run).
    pub interpreter: Option<Interpreter>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("hashing the key files of `{target}`: {source}")]
    HashFiles { target: &'static str, source: hash_files::HashFilesError },
    #[error(
        "the `{target}` key is {len} characters long; cache services accept at most {max} — shorten `key-suffix`"
    )]
    KeyTooLong { target: &'static str, len: usize, max: usize },
}

/// Builds the plans for every configured target, asking each interpreter once.
pub fn plans(cfg: &Config) -> Result<Vec<TargetPlan>, PlanError> {
    let (uv_interpreter, nox_interpreter) = interpreters(cfg);
    let dirs: Vec<(Target, PathBuf, &'static str)> = cfg
        .targets
        .iter()
        .map(|&target| match target {
            Target::Uv => {
                let (dir, source) = uv_cache_dir(cfg);
                (target, dir, source)
            }
            Target::UvPython => {
                let (dir, source) = uv_python::install_dir(cfg);
                (target, dir, source)
            }
            Target::Nox => (target, cfg.nox_envdir.clone(), "nox-envdir"),
        })
        .collect();
    let cached: Vec<&Path> = dirs.iter().map(|(_, dir, _)| dir.as_path()).collect();
    // Restores' staging directories (a live one, or one left by a killed run) hold copies of
    // cached trees, key files and all: the key search never looks inside them.
    let staging: Vec<PathBuf> = cached.iter().flat_map(|dir| crate::place::staging_siblings(dir)).collect();
    let unsearched: Vec<&Path> = cached.iter().copied().chain(staging.iter().map(PathBuf::as_path)).collect();
    dirs.iter()
        .map(|(target, dir, source)| {
            let interpreter = match target {
                Target::Uv => uv_interpreter.as_ref(),
                Target::Nox => nox_interpreter.as_ref(),
                Target::UvPython => None,
            };
            plan(cfg, *target, interpreter, dir, source, &cached, &unsearched)
        })
        .collect()
}

/// The interpreters the keys are computed with: `python3` on PATH for uv (its key carries the
/// Python minor version and does not follow the `python` input), the `python` input (else
/// `python3`) for nox. One that does not run is keyed as `unknown` and reported: a warning naming
/// the path when the `python` input names it, a notice when `python3` is simply not on PATH.
fn interpreters(cfg: &Config) -> (Option<Interpreter>, Option<Interpreter>) {
    let wants = |t: Target| cfg.targets.contains(&t);
    let given = cfg.python.as_deref().filter(|p| *p != python::DEFAULT);
    let default = (wants(Target::Uv) || (wants(Target::Nox) && given.is_none()))
        .then(|| python::probe(python::DEFAULT, &cfg.working_directory))
        .flatten();
    let nox = match given {
        Some(path) if wants(Target::Nox) => {
            let found = python::probe(path, &cfg.working_directory);
            if found.is_none() {
                tracing::warn!(
                    "the `python` input `{path}` did not run (from {}); the nox key carries `unknown` \
                     for the interpreter. Point `python` at an interpreter that exists (e.g. the \
                     `python-path` output of actions/setup-python), or leave it unset for `python3` on PATH",
                    cfg.working_directory.display()
                );
            }
            found
        }
        Some(_) => None,
        None => default.clone(),
    };
    if default.is_none() && (wants(Target::Uv) || given.is_none()) {
        crate::notice!(
            "`python3` is not on PATH, so the keys computed with it carry `unknown` for the \
             interpreter; set up Python before this step (actions/setup-python)"
        );
    }
    (default, nox)
}

fn plan(
    cfg: &Config,
    target: Target,
    interpreter: Option<&Interpreter>,
    dir: &Path,
    dir_source: &'static str,
    cached: &[&Path],
    unsearched: &[&Path],
) -> Result<TargetPlan, PlanError> {
    let fingerprint = match (target, interpreter) {
        (Target::Uv, Some(i)) => format!("py{}", i.minor_version()),
        (Target::Uv, None) => "pyunknown".to_string(),
        (Target::Nox, i) => {
            let (realpath, version) =
                i.map(|i| (i.realpath.as_str(), i.version.as_str())).unwrap_or(("unknown", ""));
            key::short_hash(&format!("{realpath}\n{version}\n{}", cfg.nox_envdir.display()))
        }
        (Target::UvPython, _) => uv_python::fingerprint(&cfg.working_directory),
    };
    let hash = hash_files::hash_files_outside(
        &cfg.runner.workspace,
        cfg.runner.home.as_deref(),
        &key_file_patterns(cfg, target, cached),
        false,
        unsearched,
    )
    .map_err(|source| PlanError::HashFiles { target: target.name(), source })?;
    let key = KeyParts {
        target,
        os: format!("{}-{}", key::sanitize(&cfg.runner.os), key::sanitize(&cfg.runner.os_release)),
        arch: key::sanitize(&cfg.runner.arch),
        fingerprint,
        suffix: cfg.key_suffix.clone(),
        hash: if hash.is_empty() { key::NO_KEY_FILES.to_string() } else { hash },
    };
    let primary = key.primary();
    if primary.len() > key::MAX_KEY_LEN {
        return Err(PlanError::KeyTooLong {
            target: target.name(),
            len: primary.len(),
            max: key::MAX_KEY_LEN,
        });
    }
    let restore_keys = match (cfg.restore_keys, target) {
        (RestoreKeys::All, _) | (RestoreKeys::Auto, Target::Uv | Target::UvPython) => {
            vec![key.restore_prefix()]
        }
        _ => Vec::new(),
    };
    Ok(TargetPlan {
        target,
        archive_name: archive::name_relative_to(&cfg.runner.workspace, dir),
        version_path: version_path(cfg, target, dir),
        dir: dir.to_path_buf(),
        dir_source,
        key,
        restore_keys,
        interpreter: interpreter.cloned(),
    })
}

/// The patterns hashed into `target`'s key, rooted at the working directory. The cached
/// directories themselves are excluded: envs and caches inside the workspace hold files such as
/// `pyproject.toml` and `requirements.txt` of their own, and must not move the key they are
/// stored under.
pub fn key_file_patterns(cfg: &Config, target: Target, cached: &[&Path]) -> Vec<String> {
    let defaults: Vec<&str> = match target {
        Target::Uv => UV_KEY_FILES.to_vec(),
        Target::Nox => [UV_KEY_FILES, NOX_KEY_FILES].concat(),
        Target::UvPython => uv_python::KEY_FILES.to_vec(),
    };
    let mut patterns: Vec<String> = defaults.into_iter().map(str::to_string).collect();
    patterns.extend(cfg.key_files.iter().cloned());
    let workspace = &cfg.runner.workspace;
    let rel = |dir: &Path| {
        dir.strip_prefix(workspace).ok().map(|r| escape_glob(&r.to_string_lossy().replace('\\', "/")))
    };
    if let Some(wd) = rel(&cfg.working_directory).filter(|wd| !wd.is_empty()) {
        patterns = patterns
            .into_iter()
            .map(|p| match p.strip_prefix('!') {
                Some(rest) => format!("!{wd}/{}", rest.trim_start()),
                None => format!("{wd}/{p}"),
            })
            .collect();
    }
    patterns.extend(
        cached.iter().filter_map(|dir| rel(dir)).filter(|r| !r.is_empty()).map(|r| format!("!{r}/**")),
    );
    patterns
}

/// Escapes glob characters so a directory name is matched literally.
fn escape_glob(text: &str) -> String {
    text.chars().fold(String::new(), |mut s, c| {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            s.push('\\');
        }
        s.push(c);
        s
    })
}

/// uv's cache directory, resolved in uv's order: `UV_CACHE_DIR`, the `uv-cache-dir` input,
/// `uv cache dir`, `$XDG_CACHE_HOME/uv`, `~/.cache/uv`.
pub fn uv_cache_dir(cfg: &Config) -> (PathBuf, &'static str) {
    if let Some(dir) = &cfg.runner.uv_cache_dir_env {
        return (absolute(&cfg.working_directory, dir), "UV_CACHE_DIR");
    }
    if let Some(dir) = &cfg.uv_cache_dir {
        return (dir.clone(), "uv-cache-dir input");
    }
    if let Some(dir) = uv_reported_dir(&cfg.working_directory, "cache") {
        return (dir, "`uv cache dir`");
    }
    if let Some(xdg) = &cfg.runner.xdg_cache_home {
        return (xdg.join("uv"), "$XDG_CACHE_HOME/uv");
    }
    let home = cfg.runner.home.clone().unwrap_or_else(|| cfg.runner.temp.clone());
    (home.join(".cache").join("uv"), "~/.cache/uv")
}

/// What `uv <what> dir` prints (`uv cache dir`, `uv python dir`), when uv is on PATH.
pub fn uv_reported_dir(cwd: &Path, what: &str) -> Option<PathBuf> {
    let out = Command::new("uv").args([what, "dir"]).current_dir(cwd).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let dir = text.trim();
    (out.status.success() && !dir.is_empty()).then(|| PathBuf::from(dir))
}

/// `path`, relative paths taken from `base`.
pub fn absolute(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() { path.to_path_buf() } else { base.join(path) }
}

/// The path string actions/cache would be given: nox's envdir relative to the workspace, uv's
/// cache and Python directory with the home directory written `~`.
fn version_path(cfg: &Config, target: Target, dir: &Path) -> String {
    let slash = |p: &Path| p.to_string_lossy().replace('\\', "/");
    match target {
        Target::Nox => match dir.strip_prefix(&cfg.runner.workspace) {
            Ok(rel) if !rel.as_os_str().is_empty() => slash(rel),
            _ => slash(dir),
        },
        Target::Uv | Target::UvPython => {
            match cfg.runner.home.as_ref().and_then(|h| dir.strip_prefix(h).ok()) {
                Some(rel) if !rel.as_os_str().is_empty() => format!("~/{}", slash(rel)),
                _ => slash(dir),
            }
        }
    }
}
