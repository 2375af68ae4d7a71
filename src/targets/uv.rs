//! The `uv` target: uv's cache directory. Content-addressed, so any older entry is a head start
//! (prefix fallback); its key follows the project's lock and manifest files and the Python minor
//! version. Its archive leaves out uv's environments buckets and, with `evict-project`, uv's
//! builds of the workspace's own packages; `uv-prune: ci` prunes it first.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use tracing::{info, warn};

use super::Target;
use super::rules::{LeaveOut, Pythons, Rules, TargetPlan};
use crate::config::{Config, UvPrune};
use crate::env;
use crate::envs::{self, Eviction};
use crate::python::Interpreter;

pub const TARGET: Target = Target(&Uv);

/// The lock and manifest files every key hashes (setup-uv's defaults).
pub const KEY_FILES: &[&str] = &[
    "**/uv.lock",
    "**/pyproject.toml",
    "**/*requirements*.txt",
    "**/*requirements*.in",
    "**/*constraints*.txt",
    "**/*constraints*.in",
    "**/*.py.lock",
];

pub struct Uv;

impl Rules for Uv {
    fn name(&self) -> &'static str {
        "uv"
    }

    fn dir(&self, cfg: &Config) -> (PathBuf, &'static str) {
        cache_dir(cfg)
    }

    fn key_files(&self) -> Vec<&'static str> {
        KEY_FILES.to_vec()
    }

    /// `python3` on PATH: the key carries its minor version and does not follow the `python`
    /// input.
    fn interpreter(&self, _cfg: &Config, pythons: &Pythons) -> Option<Interpreter> {
        pythons.default()
    }

    fn fingerprint(&self, _cfg: &Config, interpreter: Option<&Interpreter>) -> String {
        match interpreter {
            Some(i) => format!("py{}", i.minor_version()),
            None => "pyunknown".to_string(),
        }
    }

    /// Later steps' uv must write where the post step will save from.
    fn job_env(&self, cfg: &Config, dir: &Path) -> Vec<(&'static str, String)> {
        if cfg.runner.uv_cache_dir_env.is_none() && cfg.uv_cache_dir.is_some() {
            vec![(env::UV_CACHE_DIR, dir.to_string_lossy().into_owned())]
        } else {
            Vec::new()
        }
    }

    fn leave_out(&self, cfg: &Config, plan: &TargetPlan, _stored: &[&TargetPlan]) -> LeaveOut {
        prepare(cfg, plan);
        let (buckets, builds) = left_out(cfg, &plan.dir);
        let out = LeaveOut { skip: buckets, ..LeaveOut::default() };
        match builds {
            Some(builds) => out.with_eviction(self.name(), builds),
            None => out,
        }
    }
}

/// What the archive of the uv cache at `dir` leaves out: uv's environments buckets, and with
/// `evict-project` its builds of local paths (an eviction, for the log). The uv target's save
/// and the nox save that leaves shared files to it both ask here, so they agree.
pub fn left_out(cfg: &Config, dir: &Path) -> (HashSet<PathBuf>, Option<Eviction>) {
    (envs::uv_environment_buckets(dir), cfg.evict_project.then(|| envs::uv_local_builds(dir)))
}

/// Prunes the uv cache when asked, and warns when uv writes somewhere else than what is saved.
fn prepare(cfg: &Config, plan: &TargetPlan) {
    let uv_dir = reported_dir(&cfg.working_directory, "cache");
    if let Some(uv_dir) = &uv_dir
        && uv_dir != &plan.dir
    {
        warn!(
            "uv writes its cache to {} but the action saves {}; set UV_CACHE_DIR (or the `uv-cache-dir` input) so they agree",
            uv_dir.display(),
            plan.dir.display()
        );
    }
    if cfg.uv_prune != UvPrune::Ci {
        return;
    }
    if uv_dir.is_none() {
        crate::notice!("uv: `uv-prune: ci` needs uv on PATH; saving the cache unpruned");
        return;
    }
    match envs::uv_prune_ci(Path::new("uv"), &plan.dir, cfg.runner.uv_link_mode.as_deref()) {
        Ok(()) => info!("uv: ran `uv cache prune --ci`"),
        Err(e) => warn!("uv: not pruned: {e}"),
    }
}

/// uv's cache directory, resolved in uv's order: `UV_CACHE_DIR`, the `uv-cache-dir` input,
/// `uv cache dir`, `$XDG_CACHE_HOME/uv`, `~/.cache/uv`.
pub fn cache_dir(cfg: &Config) -> (PathBuf, &'static str) {
    if let Some(dir) = &cfg.runner.uv_cache_dir_env {
        return (absolute(&cfg.working_directory, dir), "UV_CACHE_DIR");
    }
    if let Some(dir) = &cfg.uv_cache_dir {
        return (dir.clone(), "uv-cache-dir input");
    }
    if let Some(dir) = reported_dir(&cfg.working_directory, "cache") {
        return (dir, "`uv cache dir`");
    }
    if let Some(xdg) = &cfg.runner.xdg_cache_home {
        return (xdg.join("uv"), "$XDG_CACHE_HOME/uv");
    }
    let home = cfg.runner.home.clone().unwrap_or_else(|| cfg.runner.temp.clone());
    (home.join(".cache").join("uv"), "~/.cache/uv")
}

/// What `uv <what> dir` prints (`uv cache dir`, `uv python dir`), when uv is on PATH.
pub fn reported_dir(cwd: &Path, what: &str) -> Option<PathBuf> {
    let out = Command::new("uv").args([what, "dir"]).current_dir(cwd).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let dir = text.trim();
    (out.status.success() && !dir.is_empty()).then(|| PathBuf::from(dir))
}

/// `path`, relative paths taken from `base`.
pub fn absolute(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() { path.to_path_buf() } else { base.join(path) }
}
