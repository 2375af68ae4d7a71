//! The save story, the same for every target: unless the restore found the exact key (or the
//! policy says not to), ask the target what its archive leaves out
//! ([`Rules::leave_out`](crate::targets::Rules::leave_out)), pack it, and hand the archive to
//! the service, under the primary key, or with `save: always` under an unconfirmed one
//! ([`save_key`]).

use std::io::BufWriter;
use std::time::Instant;

use tracing::{info, warn};

use crate::archive::{self, ArchiveError, PackSpec};
use crate::backend::{ArchiveFile, Backend, BackendError, Saved};
use crate::cancel;
use crate::config::{Config, SavePolicy};
use crate::entry_note::{self, EntryNote};
use crate::flow::{
    STATE_RESTORE_ENDED, SaveError, SaveReport, SaveResult, seconds, state_bytes, state_envs, state_hit,
    state_key, state_matched,
};
use crate::key;
use crate::runner::{self, human_size};
use crate::targets::{LeaveOut, TargetPlan};

/// Why the whole save is skipped, if it is: the policy, or what the backend may not do
/// ([`crate::backend::Access`]).
pub fn skip_reason(cfg: &Config) -> Option<String> {
    if cfg.save == SavePolicy::Never {
        return Some("`save: never`".into());
    }
    if let Some(why) = cfg.backend.access(cfg.cache_mode).no_write {
        return Some(why.into());
    }
    if cfg.save == SavePolicy::Auto {
        let event = cfg.runner.event_name.as_str();
        if matches!(event, "release" | "pull_request_target" | "workflow_run" | "issue_comment") {
            return Some(format!("`save: auto` does not save on `{event}` events (cache poisoning)"));
        }
        if event == "merge_group" {
            return Some(
                "`save: auto` does not save on `merge_group` events (a merge queue's temporary branch: \
                 no other branch can read its entries)"
                    .into(),
            );
        }
        if cfg.runner.git_ref.starts_with("refs/tags/") {
            return Some("`save: auto` does not save on tag pushes".into());
        }
    }
    None
}

/// Saves every planned target, in the order of the plans (`targets::ALL`'s); never fails:
/// trouble is a [`SaveError`] in the report, which `report.rs` turns into a warning and a
/// skipped save.
pub fn save(
    cfg: &Config,
    backend: &dyn Backend,
    plans: &[TargetPlan],
    state: &dyn Fn(&str) -> Option<String>,
    drift_min_bytes: Option<u64>,
) -> Vec<SaveReport> {
    for plan in plans {
        plan.rules().before_save(cfg);
    }
    let mut reports: Vec<SaveReport> = Vec::new();
    for plan in plans {
        // What was stored a moment ago may hold part of this target: the uv cache holds the
        // files uv linked into the nox envs, which the nox archive then leaves to it.
        let stored: Vec<&TargetPlan> = plans
            .iter()
            .zip(&reports)
            .filter(|(_, r)| matches!(r.result, SaveResult::Saved))
            .map(|(p, _)| p)
            .collect();
        reports.push(save_target(cfg, backend, plan, state, &stored, drift_min_bytes));
    }
    reports
}

fn save_target(
    cfg: &Config,
    backend: &dyn Backend,
    plan: &TargetPlan,
    state: &dyn Fn(&str) -> Option<String>,
    stored: &[&TargetPlan],
    drift_min_bytes: Option<u64>,
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
    let mut refresh = None;
    if state(&state_hit(plan.target)).as_deref() == Some("true") {
        refresh = drifted(plan, state, drift_min_bytes).map(|why| {
            info!("{name}: {why}; saving it again, under a key the next restore prefers");
            key::refreshed_key(&primary, &key::sanitize(&run_tag(cfg)))
        });
        if refresh.is_none() {
            plan.rules().after_exact_hit(cfg, plan, &primary, state(&state_envs(plan.target)).as_deref());
            info!("{name}: the restore found {primary} exactly; not saving");
            return ended(&primary, SaveResult::ExactHit);
        }
    }
    if !plan.dir.is_dir() {
        return ended(&primary, SaveResult::NothingToSave(plan.dir.clone()));
    }
    let leave_out = plan.rules().leave_out(cfg, plan, stored);
    let note = entry_note::of_job(state(STATE_RESTORE_ENDED).as_deref(), entry_note::now_ms());
    let key = match refresh {
        Some(key) => key,
        None => match save_key(cfg, plan, &primary, state) {
            Ok(key) => key,
            Err(why) => return ended(&primary, SaveResult::Skipped(why)),
        },
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
        (Err(BackendError::Unfinished(_)), Err(e)) | (Ok(Saved::Stored), Err(e)) => SaveResult::Failed(e),
        (Err(source), _) => SaveResult::Failed(SaveError::Store { key: key.to_string(), source }),
    };
    (size, result)
}

/// This run, in a key: the run id and attempt, or `t<unix seconds>` outside a runner.
fn run_tag(cfg: &Config) -> String {
    match (&cfg.runner.run_id, &cfg.runner.run_attempt) {
        (Some(id), attempt) => format!("r{id}a{}", attempt.as_deref().unwrap_or("1")),
        (None, _) => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            format!("t{}", now.as_secs())
        }
    }
}

/// Why an exact hit of a target that refreshes on drift ([`crate::targets::Rules::drift`]) is
/// saved again: the job added more than the threshold to what was restored. `None` to leave it.
fn drifted(
    plan: &TargetPlan,
    state: &dyn Fn(&str) -> Option<String>,
    min_bytes: Option<u64>,
) -> Option<String> {
    let mut drift = plan.rules().drift()?;
    if let Some(min_bytes) = min_bytes {
        drift.min_bytes = min_bytes;
    }
    let restored: u64 = state(&state_bytes(plan.target))?.parse().ok()?;
    let now = crate::targets::tree_bytes(&plan.dir);
    drift.exceeded(restored, now).then(|| {
        format!(
            "the job added {} to the {} restored exactly (more than {} % and {})",
            human_size(now - restored),
            human_size(restored),
            drift.percent,
            human_size(drift.min_bytes)
        )
    })
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
    if restored.is_some_and(|restored| plan.rules().state(cfg, &plan.dir) == restored) {
        let from = state(&state_matched(plan.target)).unwrap_or_default();
        info!("{name}: {} as restored from {from}; not saving again", plan.rules().contents());
        return Err("unchanged since the restore, not saved");
    }
    let key = key::unconfirmed_key(primary, &key::sanitize(&run_tag(cfg)));
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
) -> Result<u64, SaveError> {
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
    let compression = cfg.compression.label();
    let waited = || archive.readers_waited();
    let packed =
        archive::pack_at(&spec, cfg.compression, cfg.compression_level, &mut out, &waited).and_then(|_| {
            out.into_inner()
                .map(|_| ())
                .map_err(|e| ArchiveError::Write { compression, source: e.into_error() })
        });
    let dir = plan.dir.clone();
    match packed {
        Ok(()) => {
            let size = archive.finish().map_err(|source| SaveError::Abandoned { dir, source })?;
            tracing::debug!("packed {} in {}", human_size(size), seconds(started.elapsed()));
            Ok(size)
        }
        Err(source) => {
            archive.fail(source.to_string());
            Err(SaveError::Pack { dir, source })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;
    use crate::inputs::RawInputs;

    fn config(event: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let map: HashMap<String, String> = [
            ("GITHUB_EVENT_NAME", event),
            ("GITHUB_REF", "refs/heads/main"),
            ("INPUT_BACKEND", "local"),
            ("INPUT_LOCAL-DIR", dir.path().to_str().unwrap()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let lookup = |name: &str| map.get(name).cloned();
        Config::new(&RawInputs::read(&lookup), &lookup, Path::new("/ws")).unwrap()
    }

    /// `save: auto` saves on pushes and pull requests, not on untrusted or one-off triggers,
    /// nor in merge queues.
    #[test]
    fn save_auto_skips_untrusted_one_off_and_merge_queue_events() {
        for event in ["push", "pull_request", "schedule", "workflow_dispatch"] {
            assert_eq!(skip_reason(&config(event)), None, "{event}");
        }
        for event in ["release", "pull_request_target", "workflow_run", "issue_comment", "merge_group"] {
            let why = skip_reason(&config(event)).unwrap_or_else(|| panic!("{event} saved"));
            assert!(why.contains(event), "{event}: {why}");
        }
    }
}
