//! The restore story, the same for every target: log its key, look it up, download and extract
//! it into a staging directory, let the target check what came back
//! ([`Rules::after_extract`](crate::targets::Rules::after_extract)), move it into place, and
//! say how that ended.

use std::time::Instant;

use tracing::info;

use crate::archive::{self, Compression, UnpackLimits};
use crate::backend::pace::{Pace, Paced};
use crate::backend::{self, Backend, BackendError, Hit};
use crate::config::Config;
use crate::entry_note::EntryNote;
use crate::flow::{RestoreError, RestoreResult, Restored, seconds};
use crate::place;
use crate::progress::Progress;
use crate::runner::{self, human_size};
use crate::targets::TargetPlan;
use crate::{cancel, disk, key};

/// Restores every planned target, in the order of the plans (`targets::ALL`'s); never fails:
/// trouble is a [`RestoreError`] in the outcome, which `report.rs` turns into a warning and a
/// miss.
pub fn restore(cfg: &Config, backend: &dyn Backend, plans: &[TargetPlan]) -> Vec<Restored> {
    plans.iter().map(|plan| restore_target(cfg, backend, plan, plans)).collect()
}

fn restore_target(
    cfg: &Config,
    backend: &dyn Backend,
    plan: &TargetPlan,
    planned: &[TargetPlan],
) -> Restored {
    let name = plan.target.name();
    let _group = runner::group(&format!("{name}: restore from {}", backend.name()));
    let started = Instant::now();
    let primary = plan.key.primary();
    let ended = |result| Restored::ended(plan.target, &primary, result);
    log_key(plan);
    info!("  version          {}", version_parts(cfg, plan));
    if let Err(cancelled) = cancel::check() {
        return ended(RestoreResult::Failed(RestoreError::Cancelled(cancelled)));
    }
    if !backend.access().read {
        return ended(RestoreResult::NotRead);
    }
    let hit = match find(cfg, backend, plan) {
        Ok(Some(hit)) => hit,
        Ok(None) => {
            // The key may be stored under another version (another path or compression):
            // say what this lookup's version is made of, so the moved part shows.
            info!(
                "{name}: miss — nothing stored under {primary} for {}; an entry of this key saved from another path or with other compression is another entry",
                version_parts(cfg, plan)
            );
            return ended(RestoreResult::Miss);
        }
        Err(e) => return ended(RestoreResult::Failed(RestoreError::Lookup(e))),
    };
    let exact = key::same_key(&hit.key, &primary) || key::is_refreshed_of(&primary, &hit.key);
    explain_match(plan, &hit, exact);
    let matched_key = hit.key.clone();
    if cfg.lookup_only {
        info!("{name}: found {} (lookup-only: nothing downloaded)", hit.key);
        return Restored { size: hit.size, ..ended(RestoreResult::Found { matched_key, exact }) };
    }
    if let Err(disk::NoRoom { need, free }) = disk::check_room(&plan.dir, hit.size) {
        let (key, dir, size) = (matched_key, plan.dir.clone(), hit.size.unwrap_or_default());
        return ended(RestoreResult::Failed(RestoreError::NoRoom { key, dir, size, need, free }));
    }
    let pace = Pace::default();
    let extracted = match download_into_place(cfg, backend, plan, &hit, planned, &pace) {
        Ok(extracted) => extracted,
        // Slow but alive: the download cost more than the work it saves (backend/pace.rs).
        Err(_) if let Some(why) = pace.gave_up() => {
            return ended(RestoreResult::Failed(RestoreError::TooSlow { key: matched_key, why }));
        }
        Err(e) => return ended(RestoreResult::Failed(e)),
    };
    let outcome = Restored {
        invalidated: extracted.invalidated,
        // v1 servers rarely say an entry's size: what was downloaded is its size.
        size: hit.size.or(Some(extracted.downloaded)),
        elapsed: started.elapsed(),
        envs_state: Some(extracted.envs_state),
        saved_by: extracted.note,
        restored_bytes: extracted.bytes,
        ..ended(RestoreResult::Restored { matched_key, exact })
    };
    let size = outcome.size.map(human_size).unwrap_or_default();
    info!("{name}: {}, {size} in {}", outcome.summary(), seconds(outcome.elapsed));
    outcome
}

/// Looks the target up under the chosen compression's version, then — for entries that
/// actions/cache wrote without zstd — under the other one, preferring an exact match.
fn find(cfg: &Config, backend: &dyn Backend, plan: &TargetPlan) -> Result<Option<Hit>, BackendError> {
    let primary = plan.key.primary();
    // A target that refreshes on drift: its newest refreshed entry before the frozen exact one.
    let mut keys: Vec<String> =
        plan.rules().drift().map(|_| key::refreshed_prefix(&primary)).into_iter().collect();
    keys.push(primary.clone());
    keys.extend(plan.restore_keys.iter().cloned());
    let other = match cfg.compression {
        Compression::Zstd => Compression::Gzip,
        Compression::Gzip => Compression::Zstd,
    };
    let first = backend.lookup(&keys, &key::version(&plan.version_path, cfg.compression.label()))?;
    if first
        .as_ref()
        .is_some_and(|hit| key::same_key(&hit.key, &primary) || key::is_refreshed_of(&primary, &hit.key))
    {
        return Ok(first);
    }
    let second =
        backend.lookup(std::slice::from_ref(&primary), &key::version(&plan.version_path, other.label()))?;
    Ok(second.or(first))
}

/// What a restore put in place.
struct Extracted {
    /// What the target removed after extraction, with why.
    invalidated: Vec<String>,
    /// The archive's bytes, as downloaded.
    downloaded: u64,
    /// The digest of what the directory holds as restored (`Rules::state`).
    envs_state: String,
    /// The saving job's note, from the archive's comment.
    note: Option<EntryNote>,
    /// Bytes of the directory as restored, for targets that refresh on drift.
    bytes: Option<u64>,
}

/// Downloads and extracts into a staging directory, lets the target check what came back, and
/// moves it into place.
fn download_into_place(
    cfg: &Config,
    backend: &dyn Backend,
    plan: &TargetPlan,
    hit: &Hit,
    planned: &[TargetPlan],
    pace: &Pace,
) -> Result<Extracted, RestoreError> {
    let (name, key, dir) = (plan.target.name(), || hit.key.clone(), || plan.dir.clone());
    for stale in place::remove_stale(&plan.dir) {
        info!("{name}: removed {}, left by a run that was killed", stale.display());
    }
    let staging = place::staging_dir(&plan.dir).map_err(|source| RestoreError::Stage {
        key: key(),
        dir: dir(),
        source,
    })?;
    let _removal = cancel::Removal::register(&staging);
    let result = (|| {
        let asked = Instant::now();
        let reader = backend.download(hit).map_err(|source| RestoreError::Download { key: key(), source })?;
        let reader = Paced::new(cancel::Watched(reader), pace, hit.size, asked);
        let mut reader = Progress::new(reader, format!("{name}: downloaded"), hit.size);
        let learn_work = |comment: &str| {
            if let Some(note) = EntryNote::from_comment(comment) {
                pace.set_work(note.job_work());
            }
        };
        let unpacked = archive::unpack_noting(&mut reader, &staging, &unpack_limits(hit.size), &learn_work);
        if backend.verifies_integrity() {
            verify_to_the_end(&mut reader, unpacked.is_ok(), &hit.key)?;
        }
        let unpacked = unpacked.map_err(|source| RestoreError::Unpack { key: key(), source })?;
        let note = unpacked.comment.as_deref().and_then(EntryNote::from_comment);
        let invalidated = plan.rules().after_extract(cfg, plan, &staging, planned);
        let envs_state = plan.rules().state(cfg, &staging);
        let bytes = plan.rules().drift().map(|_| crate::targets::tree_bytes(&staging));
        cancel::check().map_err(RestoreError::Cancelled)?;
        place::swap_into_place(&staging, &plan.dir).map_err(|source| RestoreError::Place {
            key: key(),
            dir: dir(),
            source,
        })?;
        Ok(Extracted { invalidated, downloaded: reader.done(), envs_state, note, bytes })
    })();
    if result.is_err() {
        place::discard(&staging);
    }
    result
}

/// Reads the download to its end, where the stores the action owns check the entry's recorded
/// sha256 (`backend/integrity.rs`): also after a failed unpack, so that a damaged entry is named
/// as such and taken out of use. Nothing has been moved into place yet.
fn verify_to_the_end(reader: &mut dyn std::io::Read, unpacked: bool, key: &str) -> Result<(), RestoreError> {
    match std::io::copy(reader, &mut std::io::sink()) {
        Ok(_) => Ok(()),
        Err(source) => match backend::integrity::refusal(&source) {
            Some(refusal) => Err(RestoreError::Integrity { key: key.to_string(), refusal }),
            None if unpacked => Err(RestoreError::ReadToEnd { key: key.to_string(), source }),
            None => Ok(()),
        },
    }
}

/// The largest total a restore may write: a multiple of the entry's size (at least 1 GiB), and
/// a hard cap. The services rarely report an entry's size (v2 never, v1 only on some servers),
/// so the multiple also applies to the compressed bytes read so far, which needs no size.
fn unpack_limits(size: Option<u64>) -> UnpackLimits {
    const ABSOLUTE_MAX: u64 = 64 << 30;
    const RATIO: u64 = 200;
    const FLOOR: u64 = 1 << 30;
    let max_bytes =
        size.map(|s| (s.saturating_mul(RATIO)).clamp(FLOOR, ABSOLUTE_MAX)).unwrap_or(ABSOLUTE_MAX);
    UnpackLimits { max_bytes, max_entries: 10_000_000, max_ratio: RATIO, ratio_floor: FLOOR }
}

/// Prints the key component by component.
fn log_key(plan: &TargetPlan) {
    info!("{} directory: {} (from {})", plan.target.name(), plan.dir.display(), plan.dir_source);
    for (name, value) in plan.key.components() {
        info!("  key {name:<12} {value}");
    }
    info!("  key = {}", plan.key.primary());
    for fallback in &plan.restore_keys {
        info!("  fallback prefix {fallback}");
    }
}

/// What the entry version (the second half of what a lookup matches) is made of, as
/// actions/cache makes it: `path `~/.cache/uv`, zstd-without-long (version 0123abcd…)`.
fn version_parts(cfg: &Config, plan: &TargetPlan) -> String {
    let label = cfg.compression.label();
    let version = key::version(&plan.version_path, label);
    format!("path `{}`, {label} (version {}…)", plan.version_path, &version[..12])
}

fn explain_match(plan: &TargetPlan, hit: &Hit, exact: bool) {
    if exact && !key::same_key(&hit.key, &plan.key.primary()) {
        info!(
            "{}: found {}, the exact key saved again by a job that added to it; it counts as the exact key",
            plan.target.name(),
            hit.key
        );
    } else if exact {
        info!("{}: found the exact key", plan.target.name());
    } else if crate::key::is_unconfirmed_of(&plan.key.primary(), &hit.key) {
        info!(
            "{}: found {}, saved by a `save: always` job whose outcome was unknown; it counts as a fallback (installs complete what it lacks)",
            plan.target.name(),
            hit.key
        );
    } else {
        let differs = plan.key.first_difference(&hit.key).unwrap_or("hash");
        info!(
            "{}: fallback to {} — its `{differs}` component differs from this run's",
            plan.target.name(),
            hit.key
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The caps of docs/reliability.md: 200 × the entry's size within [1 GiB, 64 GiB], 64 GiB
    /// when the size is unknown, and the ratio on the compressed bytes read in every case.
    #[test]
    fn unpack_limits_follow_the_entry_size_within_the_caps() {
        let gib = 1u64 << 30;
        assert_eq!(unpack_limits(Some(1000)).max_bytes, gib);
        assert_eq!(unpack_limits(Some(100 << 20)).max_bytes, 20_000 << 20);
        assert_eq!(unpack_limits(Some(1 << 40)).max_bytes, 64 * gib);
        assert_eq!(unpack_limits(Some(u64::MAX)).max_bytes, 64 * gib);
        assert_eq!(unpack_limits(None).max_bytes, 64 * gib);
        let limits = unpack_limits(None);
        assert_eq!((limits.max_ratio, limits.ratio_floor, limits.max_entries), (200, gib, 10_000_000));
    }
}
