//! The `nox` target: nox's envdir. A venv is not relocatable, so its key rests on the
//! interpreter (its real path and version) and the envdir, and only an exact key restores
//! unless `restore-keys: all`. Its archive leaves out the workspace's own packages
//! (`evict-project`) and the files the uv cache saved with it holds, and carries a marker per
//! env; after extraction those files are put back, every env is checked against this machine,
//! and what is stale is removed (docs/design.md §5).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use super::rules::{LeaveOut, Pythons, Rules, TargetPlan, slashed};
use super::{Target, uv, uv_python};
use crate::config::{Config, RestoreKeys};
use crate::envs;
use crate::key::{self, KeyParts};
use crate::python::Interpreter;
use crate::runner::human_size;

pub const TARGET: Target = Target(&Nox);

/// What the nox key hashes on top of uv's files.
pub const KEY_FILES: &[&str] = &["**/noxfile.py"];

pub struct Nox;

impl Rules for Nox {
    fn name(&self) -> &'static str {
        "nox"
    }

    fn dir(&self, cfg: &Config) -> (PathBuf, &'static str) {
        (cfg.nox_envdir.clone(), "nox-envdir")
    }

    fn key_files(&self) -> Vec<&'static str> {
        [uv::KEY_FILES, KEY_FILES].concat()
    }

    /// The `python` input (else `python3` on PATH): what nox builds the envs with.
    fn interpreter(&self, _cfg: &Config, pythons: &Pythons) -> Option<Interpreter> {
        pythons.chosen()
    }

    fn fingerprint(&self, cfg: &Config, interpreter: Option<&Interpreter>) -> String {
        let (realpath, version) =
            interpreter.map(|i| (i.realpath.as_str(), i.version.as_str())).unwrap_or(("unknown", ""));
        key::short_hash(&format!("{realpath}\n{version}\n{}", cfg.nox_envdir.display()))
    }

    /// The envdir relative to the workspace.
    fn version_path(&self, cfg: &Config, dir: &Path) -> String {
        match dir.strip_prefix(&cfg.runner.workspace) {
            Ok(rel) if !rel.as_os_str().is_empty() => slashed(rel),
            _ => slashed(dir),
        }
    }

    /// Exact key only, unless `restore-keys: all`: a partial env is only safe after an exact sync.
    fn restore_keys(&self, cfg: &Config, key: &KeyParts) -> Vec<String> {
        match cfg.restore_keys {
            RestoreKeys::All => vec![key.restore_prefix()],
            RestoreKeys::Auto | RestoreKeys::None => Vec::new(),
        }
    }

    /// Completes the envs with the files they share with the uv cache (restored just before,
    /// or uv's own when `uv` is not a target), checks them, and removes stale project installs.
    fn after_extract(
        &self,
        cfg: &Config,
        plan: &TargetPlan,
        staging: &Path,
        planned: &[TargetPlan],
    ) -> Vec<String> {
        let saved = envs::saved_project_dists(staging);
        let uv_cache = match planned.iter().find(|p| p.target == uv::TARGET) {
            Some(uv) => uv.dir.clone(),
            None => uv::cache_dir(cfg).0,
        };
        let conda: Vec<String> = envs::remove_conda_envs(staging)
            .into_iter()
            .map(|env| {
                format!(
                    "conda env `{env}` removed after restore: conda envs are not checked, nox recreates it"
                )
            })
            .collect();
        let mut invalid = envs::restore_shared(staging, &uv_cache);
        let (os, arch) = (&plan.key.os, &plan.key.arch);
        invalid.extend(envs::validate_and_prune(staging, &plan.dir, os, arch, plan.interpreter.as_ref()));
        review_project(cfg, staging, &saved);
        conda
            .into_iter()
            .chain(
                invalid.into_iter().map(|invalid| {
                    format!("env `{}` removed after restore: {}", invalid.env, invalid.reason)
                }),
            )
            .collect()
    }

    fn state(&self, cfg: &Config, dir: &Path) -> String {
        envs::envs_state(dir, &cfg.runner.workspace)
    }

    fn after_restore(&self, cfg: &Config, restored: bool) {
        hint_reuse(cfg, restored);
    }

    fn contents(&self) -> &'static str {
        "the envs are"
    }

    fn before_save(&self, cfg: &Config) {
        hint_missing_uv_python(cfg, &cfg.nox_envdir);
    }

    /// A notice when the job changed the restored envs, which are not saved again.
    fn after_exact_hit(&self, cfg: &Config, plan: &TargetPlan, primary: &str, restored: Option<&str>) {
        let Some(restored) = restored else { return };
        if self.state(cfg, &plan.dir) != restored {
            crate::notice!(
                "nox: the job changed the envs restored from {primary}; entries cannot be replaced, so the next job restores them as they were and its installs change them again"
            );
        }
    }

    /// The workspace's own packages (`evict-project`), a marker per env, and the env files the
    /// uv cache saved in this step holds (`stored`).
    fn leave_out(&self, cfg: &Config, plan: &TargetPlan, stored: &[&TargetPlan]) -> LeaveOut {
        let mut out = LeaveOut::default();
        let conda = envs::conda_envs(&plan.dir);
        if !conda.is_empty() {
            crate::notice!(
                "nox: left out of the archive, conda envs (conda, mamba, micromamba or rattler backend): {}; \
                 their interpreter and prefix cannot be checked after a restore, so nox recreates them",
                conda.join(", ")
            );
            out.skip.extend(conda.iter().map(PathBuf::from));
        }
        let mut eviction =
            cfg.evict_project.then(|| envs::nox_project_eviction(&plan.dir, &cfg.runner.workspace));
        // Untracked files the kept editable installs import, for the restore to check.
        for why in eviction.as_mut().map(envs::record_generated).unwrap_or_default() {
            info!("nox: {why}");
        }
        let recorded = eviction.clone().unwrap_or_default();
        let shared = stored
            .iter()
            .find(|p| p.target == uv::TARGET)
            .map(|uv| {
                let left = uv::left_out(cfg, &uv.dir);
                let mut uv_skip = left.skip;
                uv_skip.extend(left.builds.map(|b| b.skip).unwrap_or_default());
                envs::shared_with_uv_cache(&plan.dir, &uv.dir, &uv_skip, &recorded.skip)
            })
            .unwrap_or_default();
        out.extra = envs::markers(&plan.dir, &plan.key.os, &plan.key.arch, &recorded, &shared);
        if !shared.is_empty() {
            let (files, bytes) = shared.values().flatten().fold((0, 0), |(n, b), l| (n + 1, b + l.size));
            info!("nox: {files} env files ({}) left to the uv cache saved with them", human_size(bytes));
            out.skip.extend(envs::shared_paths(&shared));
        }
        for k in &recorded.kept {
            info!("nox: env `{}`: kept {} — {}", k.env, k.dist, k.reason);
            if let Some(note) = envs::untracked_note(k) {
                info!("nox: env `{}`: {note}", k.env);
            }
        }
        for e in &recorded.evicted {
            info!("nox: env `{}`: left out {} — {}", e.env, e.dist, e.reason);
        }
        match eviction {
            Some(eviction) => out.with_eviction(self.name(), eviction),
            None => out,
        }
    }
}

/// Says per env what the save did with the workspace's own distributions (`saved`, from the
/// markers), and removes what would now be stale: with `evict-project`, project installs that
/// envs saved by another tool still hold, and kept editable installs that no longer fit the
/// checkout or whose `pyproject.toml` changed since; and names the untracked files kept ones
/// import that this checkout lacks.
fn review_project(cfg: &Config, staging: &Path, saved: &BTreeMap<String, Vec<envs::ProjectDist>>) {
    for (env, dists) in saved {
        for d in dists {
            if d.kept {
                info!("nox: env `{env}`: kept {} — {}", d.dist, d.reason);
            } else {
                info!(
                    "nox: env `{env}`: {} was evicted when saved — {}; the install step puts the current code in",
                    d.dist, d.reason
                );
            }
        }
    }
    if cfg.evict_project {
        let workspace = &cfg.runner.workspace;
        let recorded: Vec<(String, String)> = saved
            .values()
            .flatten()
            .filter_map(|d| Some((d.dist.clone(), d.pyproject_sha256.clone()?)))
            .collect();
        for stale in [
            envs::changed_since_saved(staging, workspace, &recorded),
            envs::nox_project_eviction(staging, workspace),
        ] {
            for e in &stale.evicted {
                info!("nox: env `{}`: removed {} after restore — {}", e.env, e.dist, e.reason);
            }
            for failed in envs::remove_evicted(staging, &stale) {
                warn!("nox: could not remove {failed}");
            }
        }
    }
    // Untracked files kept editable installs import that this checkout lacks (envs/generated.rs):
    // a notice unless the workflow's nox commands are known to run their installs.
    let workflow = envs::read_workflow(&cfg.runner.workspace, cfg.runner.workflow_ref.as_deref());
    let installs_run = workflow.is_some_and(|(_, text)| envs::workflow_skips_installs(&text) == Some(false));
    for missing in envs::missing_generated(staging, saved) {
        let message = missing.message(&cfg.runner.workspace);
        if installs_run { info!("nox: {message}") } else { crate::notice!("nox: {message}") }
    }
}

/// A cached `.nox` only helps when nox reuses envs: a notice naming the restored envs nox will
/// delete and recreate, per session, from the noxfile and the workflow's `nox` commands
/// (envs/reuse.rs).
fn hint_reuse(cfg: &Config, restored: bool) {
    let Ok(source) = fs::read_to_string(cfg.working_directory.join("noxfile.py")) else { return };
    let workflow = envs::read_workflow(&cfg.runner.workspace, cfg.runner.workflow_ref.as_deref());
    let envs = if restored { envs::env_list(&cfg.nox_envdir) } else { Vec::new() };
    let workflow = workflow.as_ref().map(|(path, text)| (path.as_str(), text.as_str()));
    if let Some(advice) = envs::reuse_advice(&source, workflow, &envs) {
        crate::notice!("nox: {advice}");
    }
}

/// The nox envs under `envdir` built on one of uv's Pythons (their `home` is inside uv's Python
/// directory), when `uv-python` is not a target: restored without it, such envs lose their
/// interpreter and are rebuilt, so the notice says to add the target.
fn hint_missing_uv_python(cfg: &Config, envdir: &Path) {
    if cfg.targets.contains(&uv_python::TARGET) {
        return;
    }
    let (python_dir, _) = uv_python::install_dir(cfg);
    let python_dir = fs::canonicalize(&python_dir).unwrap_or(python_dir);
    let on_uv_pythons: Vec<String> = envs::env_homes(envdir)
        .into_iter()
        .filter(|(_, home)| fs::canonicalize(home).unwrap_or_else(|_| home.clone()).starts_with(&python_dir))
        .map(|(env, _)| env)
        .collect();
    if !on_uv_pythons.is_empty() {
        crate::notice!(
            "nox: the envs {} are built on Pythons uv installed in {}, which is not cached: a job that restores \
             them without those Pythons rebuilds them. Add `uv-python` to `targets` (`targets: uv uv-python nox`)",
            on_uv_pythons.join(", "),
            python_dir.display()
        );
    }
}
