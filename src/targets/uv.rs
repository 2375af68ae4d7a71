//! The `uv` target: uv's cache directory. Content-addressed, so any older entry is a head start
//! (prefix fallback); its key follows the project's lock and manifest files, the Python minor
//! version and uv's release series (an older uv's entry is a head start, a newer uv's never).
//! Its archive leaves out uv's environments buckets, the buckets the job's uv does not use, and
//! with `evict-project` uv's builds of the workspace's own packages; `uv-prune: ci` prunes it
//! first.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use tracing::{info, warn};

use super::Target;
use super::rules::{Drift, LeaveOut, Pythons, Rules, TargetPlan};
use super::{uv_buckets, uv_budget, uv_series};
use crate::config::{Config, RestoreKeys, UvPrune};
use crate::env;
use crate::envs::{self, Eviction};
use crate::key::KeyParts;
use crate::python::Interpreter;
use crate::runner::human_size;

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

    /// The Python minor version, and the release series of the uv on PATH (`py3.12-uv0.13`):
    /// uv changes its cache format only in minor releases ([`uv_series`]).
    fn fingerprint(&self, cfg: &Config, interpreter: Option<&Interpreter>) -> String {
        let python = match interpreter {
            Some(i) => format!("py{}", i.minor_version()),
            None => "pyunknown".to_string(),
        };
        let uv = match uv_series::on_path(&cfg.working_directory) {
            Some(series) => series.component(),
            None => {
                crate::notice!(
                    "uv: `uv` is not on PATH, so the uv key cannot say which uv's cache it holds and a \
                     restore takes the newest entry of any uv; install uv before this step"
                );
                uv_series::UNKNOWN.to_string()
            }
        };
        format!("{python}-{uv}")
    }

    /// The key's own series, then older ones: never an entry a newer uv wrote.
    fn restore_keys(&self, cfg: &Config, key: &KeyParts) -> Vec<String> {
        match cfg.restore_keys {
            RestoreKeys::Auto | RestoreKeys::All => uv_series::restore_keys(key),
            RestoreKeys::None => Vec::new(),
        }
    }

    /// 20 % and 50 MB (docs/decisions.md, "Refresh on drift").
    fn drift(&self) -> Option<Drift> {
        Some(Drift { percent: 20, min_bytes: 50_000_000 })
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
        let left = left_out(cfg, &plan.dir);
        let out = LeaveOut { skip: left.skip, ..LeaveOut::default() };
        let mut out = match left.builds {
            Some(builds) => out.with_eviction(self.name(), builds),
            None => out,
        };
        let mut notes: Vec<String> = Some(out.notes.clone()).filter(|n| !n.is_empty()).into_iter().collect();
        if !left.dead.is_empty() {
            let named: Vec<String> =
                left.dead.iter().map(|b| format!("{} ({})", b.name, human_size(b.bytes))).collect();
            info!("uv: left out of the archive, buckets this job's uv does not use: {}", named.join(", "));
            notes.push(format!("left out buckets of another uv: {}", named.join(", ")));
        }
        if let Some(budget) = &left.budget {
            notes.push(budget_note(budget));
        }
        out.notes = notes.join("; ");
        out
    }
}

/// What the archive of the uv cache leaves out.
pub struct UvLeftOut {
    /// Paths relative to the cache directory: uv's environments buckets, the dead buckets, what
    /// the budget left out (not the builds).
    pub skip: HashSet<PathBuf>,
    /// With `evict-project`, uv's builds of local paths.
    pub builds: Option<Eviction>,
    /// Buckets the job's uv does not use.
    pub dead: Vec<uv_buckets::DeadBucket>,
    /// What `uv-max-size` left out, when the cache is over it.
    pub budget: Option<uv_budget::Budget>,
}

/// What the archive of the uv cache at `dir` leaves out: uv's environments buckets, with
/// `evict-project` its builds of local paths, the buckets the job's uv does not use, then what
/// `uv-max-size` asks. The uv target's save and the nox save that leaves shared files to it
/// both ask here, so they agree (a wheel the budget leaves out stays in the nox envs' entry).
pub fn left_out(cfg: &Config, dir: &Path) -> UvLeftOut {
    let mut skip = envs::uv_environment_buckets(dir);
    let builds = cfg.evict_project.then(|| envs::uv_local_builds(dir));
    let dead = uv_buckets::dead_buckets(Path::new("uv"), dir, &cfg.runner.temp);
    skip.extend(dead.iter().map(|b| PathBuf::from(&b.name)));
    let budget = cfg.uv_max_size.and_then(|limit| {
        let mut counted = skip.clone();
        counted.extend(builds.iter().flat_map(|b| b.skip.iter().cloned()));
        uv_budget::fit(dir, &counted, limit)
    });
    if let Some(budget) = &budget {
        skip.extend(budget.skip.iter().cloned());
    }
    UvLeftOut { skip, builds, dead, budget }
}

/// The log lines and the summary's note of what `uv-max-size` left out.
fn budget_note(budget: &uv_budget::Budget) -> String {
    let (unused, used): (Vec<_>, Vec<_>) = budget.dropped.iter().partition(|d| !d.used);
    let bytes = |d: &[&uv_budget::Dropped]| human_size(d.iter().map(|d| d.bytes).sum());
    let names = |d: &[&uv_budget::Dropped]| d.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ");
    info!(
        "uv: the cache holds {}, over `uv-max-size` {}: left out {} wheels no env of this job uses ({}){}; the entry holds {}",
        human_size(budget.before),
        human_size(budget.limit),
        unused.len(),
        bytes(&unused),
        if used.is_empty() {
            String::new()
        } else {
            format!(" and {} more, oldest first ({})", used.len(), bytes(&used))
        },
        human_size(budget.after)
    );
    if !unused.is_empty() {
        info!("uv: wheels left out, unused: {}", names(&unused));
    }
    if !used.is_empty() {
        info!("uv: wheels left out, oldest first: {}", names(&used));
    }
    if budget.after > budget.limit {
        warn!(
            "uv: the entry still holds {}, over `uv-max-size` {}: what is left is not wheels (indexes, \
             git checkouts, interpreters); raise the limit",
            human_size(budget.after),
            human_size(budget.limit)
        );
    }
    format!(
        "uv-max-size {}: {} → {}, left out {} wheels",
        human_size(budget.limit),
        human_size(budget.before),
        human_size(budget.after),
        budget.dropped.len()
    )
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
    match envs::uv_prune_ci(Path::new("uv"), &plan.dir, cfg.runner.uv_link_mode.as_deref(), envs::UV_TIMEOUT)
    {
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
