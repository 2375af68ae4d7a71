//! The save story: unless the restore found the exact key (or the policy says not to), pack
//! each target — leaving out what must never be cached — and hand the archive to the service,
//! under the primary key, or with `save: always` under an unconfirmed one ([`save_key`]).

use std::collections::HashSet;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Instant;

use tracing::{info, warn};

use crate::archive::{self, PackSpec};
use crate::backend::{ArchiveFile, Backend, BackendError, BackendKind, Saved};
use crate::config::{Config, SavePolicy, Target, UvPrune};
use crate::entry_note::{self, EntryNote};
use crate::flow::{
    STATE_RESTORE_ENDED, SaveError, SaveReport, SaveResult, seconds, state_envs, state_hit, state_key,
    state_matched,
};
use crate::key;
use crate::runner::{self, human_size};
use crate::target::{self, TargetPlan};
use crate::token::{self, CacheAccess};
use crate::{cancel, envs, uv_python};

/// Why the whole save is skipped, if it is.
pub fn skip_reason(cfg: &Config) -> Option<String> {
    if cfg.save == SavePolicy::Never {
        return Some("`save: never`".into());
    }
    if !cfg.cache_mode.write {
        return Some("ACTIONS_CACHE_MODE does not allow writing the cache".into());
    }
    let runner_service =
        matches!(cfg.backend, BackendKind::Github { .. } | BackendKind::ArtifactCache { .. });
    if runner_service
        && cfg.runner.token.as_ref().is_some_and(|t| token::cache_access(t.expose()) == CacheAccess::ReadOnly)
    {
        return Some(
            "the runner's cache token is read-only (GitHub gives such tokens to untrusted triggers like \
             `pull_request_target`); entries restore, but cannot be written"
                .into(),
        );
    }
    if cfg.save == SavePolicy::Auto {
        let event = cfg.runner.event_name.as_str();
        if matches!(event, "release" | "pull_request_target" | "workflow_run") {
            return Some(format!("`save: auto` does not save on `{event}` events (cache poisoning)"));
        }
        if cfg.runner.git_ref.starts_with("refs/tags/") {
            return Some("`save: auto` does not save on tag pushes".into());
        }
    }
    None
}

/// Saves every planned target; never fails: trouble is a [`SaveError`] in the report, which
/// `report.rs` turns into a warning and a skipped save.
pub fn save(
    cfg: &Config,
    backend: &dyn Backend,
    plans: &[TargetPlan],
    state: &dyn Fn(&str) -> Option<String>,
) -> Vec<SaveReport> {
    if cfg.targets.contains(&Target::Nox) {
        uv_python::hint_missing_target(cfg, &cfg.nox_envdir);
    }
    let mut reports: Vec<SaveReport> = Vec::new();
    for plan in plans {
        // The uv cache stored a moment ago holds the files uv linked into the envs, so the nox
        // archive leaves them to it (envs/links.rs). uv is saved before nox (`Target`'s order).
        let uv_stored =
            reports.iter().any(|r| r.target == Target::Uv && matches!(r.result, SaveResult::Saved));
        let uv_cache = plans.iter().find(|p| p.target == Target::Uv).filter(|_| uv_stored);
        reports.push(save_target(cfg, backend, plan, state, uv_cache.map(|p| p.dir.as_path())));
    }
    reports
}

fn save_target(
    cfg: &Config,
    backend: &dyn Backend,
    plan: &TargetPlan,
    state: &dyn Fn(&str) -> Option<String>,
    stored_uv_cache: Option<&Path>,
) -> SaveReport {
    let name = plan.target.name();
    let _group = runner::group(&format!("{name}: save to {}", backend.name()));
    let started = Instant::now();
    let primary = state(&state_key(plan.target)).unwrap_or_else(|| plan.key.primary());
    let ended = |key: &str, result| SaveReport {
        target: plan.target,
        key: key.to_string(),
        result,
        size: None,
        elapsed: started.elapsed(),
        notes: String::new(),
    };
    if let Err(cancelled) = cancel::check() {
        return ended(&primary, SaveResult::Failed(SaveError::Cancelled(cancelled)));
    }
    if state(&state_hit(plan.target)).as_deref() == Some("true") {
        note_a_changed_hit(cfg, plan, &primary, state);
        info!("{name}: the restore found {primary} exactly; not saving");
        return ended(&primary, SaveResult::ExactHit);
    }
    if !plan.dir.is_dir() {
        crate::notice!("{name}: nothing to save, {} does not exist", plan.dir.display());
        return ended(&primary, SaveResult::NothingToSave);
    }
    let leave_out = leave_out(cfg, plan, stored_uv_cache);
    let note = entry_note::of_job(state(STATE_RESTORE_ENDED).as_deref(), entry_note::now_ms());
    let key = match save_key(cfg, plan, &primary, state) {
        Ok(key) => key,
        Err(why) => return ended(&primary, SaveResult::Skipped(why)),
    };
    let (size, result) = pack_and_store(cfg, backend, plan, &key, &leave_out, note);
    if matches!(result, SaveResult::Saved) {
        let size = size.map(human_size).unwrap_or_default();
        info!("{name}: saved {key}, {size} in {}", seconds(started.elapsed()));
    }
    SaveReport { size, notes: leave_out.notes, ..ended(&key, result) }
}

/// Packs the target into a temporary archive while the backend stores it, and says how that
/// ended, with the archive's size when packing completed. The backend starts while the archive
/// is packed (archive_file.rs); when it stops early (another job has the key, the upload
/// failed) it abandons the archive and packing stops.
fn pack_and_store(
    cfg: &Config,
    backend: &dyn Backend,
    plan: &TargetPlan,
    key: &str,
    leave_out: &LeaveOut,
    note: Option<EntryNote>,
) -> (Option<u64>, SaveResult) {
    let archive = match create_archive_file(cfg) {
        Ok(archive) => archive,
        Err(source) => {
            let dir = cfg.runner.temp.clone();
            return (None, SaveResult::Failed(SaveError::CreateArchive { dir, source }));
        }
    };
    let _removal = cancel::Removal::register(archive.path());
    let version = key::version(&plan.version_path, cfg.compression.label());
    let (packed, saved) = std::thread::scope(|scope| {
        let upload = scope.spawn(|| {
            let saved = backend.save(key, &version, &archive);
            archive.abandon();
            saved
        });
        let packed = pack(cfg, plan, leave_out, note, &archive);
        (packed, upload.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    });
    let size = packed.as_ref().ok().copied();
    let result = match (saved, packed) {
        (Ok(Saved::Stored), Ok(_)) => SaveResult::Saved,
        (Ok(Saved::AlreadyExists(message)), _) => SaveResult::AlreadySaved(message),
        // The backend gave up because packing failed: the packer's error says why.
        (Err(BackendError::Unfinished(_)), Err(why)) | (Ok(Saved::Stored), Err(why)) => {
            SaveResult::Failed(SaveError::Pack { dir: plan.dir.clone(), why })
        }
        // A read-only token or a cache policy: the service's decision, not trouble.
        (Err(denied @ BackendError::Denied { .. }), _) => SaveResult::Denied(denied.to_string()),
        (Err(source), _) => SaveResult::Failed(SaveError::Store { key: key.to_string(), source }),
    };
    (size, result)
}

/// The key this save goes under, or why it is skipped (logged here). The primary key, unless
/// `save: always`: the post step cannot read the job's status, and what a job that failed
/// mid-install leaves is incomplete (envs missing packages, a uv cache missing downloads), so it
/// goes under an unconfirmed key, which the next job finds only as a fallback; and a job that
/// changed nothing since restoring such an entry does not store it again. `save: auto` runs
/// only when the job succeeded (`post-if`), so it always uses the primary key.
fn save_key(
    cfg: &Config,
    plan: &TargetPlan,
    primary: &str,
    state: &dyn Fn(&str) -> Option<String>,
) -> Result<String, &'static str> {
    let name = plan.target.name();
    if cfg.save != SavePolicy::Always {
        return Ok(primary.to_string());
    }
    let restored = state(&state_envs(plan.target));
    if changed_since_restore(cfg, plan, restored.as_deref()) == Some(false) {
        let from = state(&state_matched(plan.target)).unwrap_or_default();
        let what = match plan.target {
            Target::Nox => "the envs are",
            Target::Uv => "the cache is",
            Target::UvPython => "the Pythons are",
        };
        info!("{name}: {what} as restored from {from}; not saving again");
        return Err("unchanged since the restore, not saved");
    }
    let run = match (&cfg.runner.run_id, &cfg.runner.run_attempt) {
        (Some(id), attempt) => format!("r{id}a{}", attempt.as_deref().unwrap_or("1")),
        (None, _) => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            format!("t{}", now.as_secs())
        }
    };
    let key = key::unconfirmed_key(primary, &key::sanitize(&run));
    if key.len() > key::MAX_KEY_LEN {
        warn!(
            "{name}: the `save: always` key would be {} characters, more than the services accept ({}); not saving — shorten `key-suffix`",
            key.len(),
            key::MAX_KEY_LEN
        );
        return Err("not saved (key too long)");
    }
    info!(
        "{name}: `save: always` cannot tell whether this job succeeded: saving under {key}, which the next job takes only as a fallback ({name}-cache-hit stays false); a job with `save: auto` saves under {primary}"
    );
    Ok(key)
}

/// After an exact nox hit: a notice when the job changed the restored envs, which are not saved
/// again.
fn note_a_changed_hit(
    cfg: &Config,
    plan: &TargetPlan,
    primary: &str,
    state: &dyn Fn(&str) -> Option<String>,
) {
    let restored = state(&state_envs(plan.target));
    if plan.target == Target::Nox && changed_since_restore(cfg, plan, restored.as_deref()) == Some(true) {
        crate::notice!(
            "nox: the job changed the envs restored from {primary}; entries cannot be replaced, so the next job restores them as they were and its installs change them again"
        );
    }
}

/// After a restore: whether the envs (or the uv cache) now differ from what was restored
/// (`restored`, the digest the restore step left) in what the next job would feel
/// (`envs/state.rs`). `None` when nothing was restored.
fn changed_since_restore(cfg: &Config, plan: &TargetPlan, restored: Option<&str>) -> Option<bool> {
    let restored = restored?;
    let now = match plan.target {
        Target::Nox => envs::envs_state(&plan.dir, &cfg.runner.workspace),
        Target::Uv | Target::UvPython => envs::cache_state(&plan.dir),
    };
    Some(now != restored)
}

/// What is left out of (or added to) one archive.
#[derive(Debug, Default)]
struct LeaveOut {
    skip: HashSet<PathBuf>,
    extra: Vec<(PathBuf, Vec<u8>)>,
    notes: String,
}

/// Decides what this target's archive leaves out and adds: the workspace's own packages in
/// nox envs and uv's builds of local paths (`evict-project`), a marker per env, and the env
/// files the uv cache stored in this step holds (`stored_uv_cache`); for uv, the optional
/// `uv cache prune --ci` happens first.
fn leave_out(cfg: &Config, plan: &TargetPlan, stored_uv_cache: Option<&Path>) -> LeaveOut {
    let mut out = LeaveOut::default();
    let eviction = match plan.target {
        Target::Nox => {
            let mut eviction =
                cfg.evict_project.then(|| envs::nox_project_eviction(&plan.dir, &cfg.runner.workspace));
            // Untracked files the kept editable installs import, for the restore to check.
            for why in eviction.as_mut().map(envs::record_generated).unwrap_or_default() {
                info!("nox: {why}");
            }
            let recorded = eviction.clone().unwrap_or_default();
            let shared = stored_uv_cache
                .map(|uv| {
                    let (mut uv_skip, builds) = uv_left_out(cfg, uv);
                    uv_skip.extend(builds.map(|b| b.skip).unwrap_or_default());
                    envs::shared_with_uv_cache(&plan.dir, uv, &uv_skip, &recorded.skip)
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
            eviction
        }
        Target::Uv => {
            prepare_uv_cache(cfg, plan);
            let (buckets, builds) = uv_left_out(cfg, &plan.dir);
            out.skip.extend(buckets);
            builds
        }
        Target::UvPython => {
            out.skip.extend(uv_python::scratch_entries(&plan.dir));
            None
        }
    };
    let Some(eviction) = eviction else { return out };
    let evicted: Vec<String> =
        eviction.evicted.iter().map(|e| format!("{} from {}", e.dist, e.env)).collect();
    let kept: Vec<String> = eviction.kept.iter().map(|k| format!("{} in {}", k.dist, k.env)).collect();
    let mut notes = Vec::new();
    if !evicted.is_empty() {
        info!("{}: left out of the archive (evict-project): {}", plan.target.name(), evicted.join(", "));
        notes.push(format!("evicted {}", evicted.join(", ")));
    }
    if !kept.is_empty() {
        notes.push(format!("kept editable {}", kept.join(", ")));
    }
    out.notes = notes.join("; ");
    out.skip.extend(eviction.skip);
    out
}

/// What the archive of the uv cache at `dir` leaves out: uv's environments buckets, and with
/// `evict-project` its builds of local paths (an eviction, for the log). The uv target's save
/// and the nox save that leaves shared files to it both ask here, so they agree.
fn uv_left_out(cfg: &Config, dir: &Path) -> (HashSet<PathBuf>, Option<envs::Eviction>) {
    (envs::uv_environment_buckets(dir), cfg.evict_project.then(|| envs::uv_local_builds(dir)))
}

/// Prunes the uv cache when asked, and warns when uv writes somewhere else than what is saved.
fn prepare_uv_cache(cfg: &Config, plan: &TargetPlan) {
    let uv_dir = target::uv_reported_dir(&cfg.working_directory, "cache");
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
    match envs::uv_prune_ci(std::path::Path::new("uv"), &plan.dir, cfg.runner.uv_link_mode.as_deref()) {
        Ok(()) => info!("uv: ran `uv cache prune --ci`"),
        Err(e) => warn!("uv: not pruned: {e}"),
    }
}

/// A new archive file in `RUNNER_TEMP`, deleted when dropped.
fn create_archive_file(cfg: &Config) -> std::io::Result<ArchiveFile> {
    std::fs::create_dir_all(&cfg.runner.temp)?;
    ArchiveFile::create_in(&cfg.runner.temp)
}

/// Packs the target into `archive` and marks it complete (or failed); returns its size.
fn pack(
    cfg: &Config,
    plan: &TargetPlan,
    leave_out: &LeaveOut,
    note: Option<EntryNote>,
    archive: &ArchiveFile,
) -> Result<u64, String> {
    let comment = note.map(|note| note.to_comment());
    let spec = PackSpec {
        root: &plan.dir,
        name: &plan.archive_name,
        skip: &leave_out.skip,
        extra: &leave_out.extra,
        comment: comment.as_deref(),
    };
    let started = Instant::now();
    let mut out = BufWriter::with_capacity(1 << 20, cancel::Watched(archive.writer()));
    // No fsync: the file is read back at once (from the page cache) and deleted after the
    // upload; a crash loses the save either way. Syncing cost more than the packing on a
    // 700 MB archive (docs/performance.md).
    let waited = || archive.readers_waited();
    let packed = archive::pack_at(&spec, cfg.compression, cfg.compression_level, &mut out, &waited)
        .map_err(|e| e.to_string())
        .and_then(|_| out.into_inner().map(|_| ()).map_err(|e| e.error().to_string()));
    match packed {
        Ok(()) => {
            let size = archive.finish().map_err(|e| e.to_string())?;
            tracing::debug!("packed {} in {}", human_size(size), seconds(started.elapsed()));
            Ok(size)
        }
        Err(e) => {
            archive.fail(e.clone());
            Err(e)
        }
    }
}
