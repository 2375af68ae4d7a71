//! The two stories the action tells: `restore` (the main step) and `save` (the post step).
//! Each reads top-down; the work they delegate lives in the other modules. What each target's
//! story ended in is a typed outcome ([`Restored`], [`SaveReport`]); what a workflow then sees
//! of it — warnings, outputs, the job summary, the exit code — is decided in `report.rs` alone.

pub mod restore;
pub mod save;

use std::time::Duration;

use std::path::PathBuf;

use crate::archive::ArchiveError;
use crate::backend::{BackendError, archive_file};
use crate::cancel::Cancelled;
use crate::deadline::Unfinished;
use crate::entry_note::EntryNote;
use crate::runner::human_size;
use crate::targets::Target;

/// What happened to one target in the restore step.
#[derive(Debug)]
pub struct Restored {
    pub target: Target,
    pub key: String,
    pub result: RestoreResult,
    /// Environments deleted after restore, with why.
    pub invalidated: Vec<String>,
    pub size: Option<u64>,
    pub elapsed: Duration,
    /// The digest of what was restored: the envs ([`crate::envs::envs_state`]) or the uv cache
    /// ([`crate::envs::cache_state`]).
    pub envs_state: Option<String>,
    /// What the restored entry says about the job that saved it.
    pub saved_by: Option<EntryNote>,
    /// Bytes of the directory as restored, for targets that refresh on drift.
    pub restored_bytes: Option<u64>,
}

/// How one target's restore ended.
#[derive(Debug)]
pub enum RestoreResult {
    /// Found under `matched_key` and moved into place.
    Restored { matched_key: String, exact: bool },
    /// Found under `matched_key`; `lookup-only`, so nothing was downloaded.
    Found { matched_key: String, exact: bool },
    /// Nothing is stored under the key or its fallbacks.
    Miss,
    /// `ACTIONS_CACHE_MODE` does not allow reading.
    NotRead,
    /// Trouble: a warning, and the target counts as a miss.
    Failed(RestoreError),
}

/// Why a target was not restored, with the error that says so as its source. `report.rs`
/// decides from the variant (and its source) how a workflow sees it.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("cache lookup failed, continuing without a cache: {0}")]
    Lookup(#[source] BackendError),
    #[error("restoring {key} failed, continuing without a cache: {source}")]
    Download { key: String, source: BackendError },
    #[error("restoring {key} failed, continuing without a cache: {source}")]
    Unpack { key: String, source: ArchiveError },
    /// The store's check of the entry's recorded sha256 refused it (`backend/integrity.rs`); the
    /// refusal may reach the restore only as text, through the archive reader.
    #[error("restoring {key} failed, continuing without a cache: {refusal}")]
    Integrity { key: String, refusal: String },
    /// Reading an unpacked entry to its end, where its sha256 is checked, failed.
    #[error("restoring {key} failed, continuing without a cache: reading the entry to its end: {source}")]
    ReadToEnd { key: String, source: std::io::Error },
    #[error("restoring {key} failed, continuing without a cache: preparing {}: {source}", dir.display())]
    Stage { key: String, dir: PathBuf, source: std::io::Error },
    #[error("restoring {key} failed, continuing without a cache: moving into {}: {source}", dir.display())]
    Place { key: String, dir: PathBuf, source: std::io::Error },
    /// The entry would not fit once extracted (`disk.rs`).
    #[error(
        "not restoring {key}: extracted it takes about {} ({} compressed), and the file system of {} has {} free; \
         free some space first, or restore fewer targets",
        human_size(*need), human_size(*size), dir.display(), human_size(*free)
    )]
    NoRoom { key: String, dir: PathBuf, size: u64, need: u64, free: u64 },
    /// Slow but alive: the download would cost more than the work the entry saves. A notice.
    #[error("not restoring {key}: {why}")]
    TooSlow { key: String, why: crate::backend::pace::TooSlow },
    /// The step's deadline passed, its work crashed, or a signal stopped it, before this
    /// target was done.
    #[error("restore {0}")]
    Unfinished(#[source] Unfinished),
    #[error("{0}")]
    Cancelled(#[source] Cancelled),
}

impl Restored {
    /// A target that ended with `result` before anything was found or restored.
    pub fn ended(target: Target, key: &str, result: RestoreResult) -> Self {
        Restored {
            target,
            key: key.to_string(),
            result,
            invalidated: Vec::new(),
            size: None,
            elapsed: Duration::ZERO,
            envs_state: None,
            saved_by: None,
            restored_bytes: None,
        }
    }

    /// The key of the entry found; `None` on a miss.
    pub fn matched_key(&self) -> Option<&str> {
        match &self.result {
            RestoreResult::Restored { matched_key, .. } | RestoreResult::Found { matched_key, .. } => {
                Some(matched_key)
            }
            _ => None,
        }
    }

    /// The saving job's work, when this restore took longer than it (`entry_note.rs`).
    pub fn costlier_than_the_saving_job(&self) -> Option<Duration> {
        let note = self.saved_by?;
        crate::entry_note::outweighs(self.elapsed, note).then(|| note.job_work())
    }

    /// Something was extracted into place.
    pub fn restored(&self) -> bool {
        matches!(self.result, RestoreResult::Restored { .. })
    }

    /// The target's `*-cache-hit`: its exact key, and every env passed validation.
    pub fn hit(&self) -> bool {
        let exact = matches!(
            self.result,
            RestoreResult::Restored { exact: true, .. } | RestoreResult::Found { exact: true, .. }
        );
        exact && self.invalidated.is_empty()
    }

    /// The summary's result column.
    pub fn summary(&self) -> String {
        let kind = |exact: bool| if exact { "exact" } else { "fallback" };
        match &self.result {
            RestoreResult::Restored { exact, .. } => format!("{} hit", kind(*exact)),
            RestoreResult::Found { exact, .. } => format!("found ({}), lookup only", kind(*exact)),
            RestoreResult::Miss => "miss".into(),
            RestoreResult::NotRead => "not read (cache mode)".into(),
            RestoreResult::Failed(RestoreError::Lookup(_)) => "lookup failed".into(),
            RestoreResult::Failed(
                RestoreError::Download { .. }
                | RestoreError::Unpack { .. }
                | RestoreError::Integrity { .. }
                | RestoreError::ReadToEnd { .. }
                | RestoreError::Stage { .. }
                | RestoreError::Place { .. },
            ) => "restore failed".into(),
            RestoreResult::Failed(RestoreError::NoRoom { .. }) => "no room on disk".into(),
            RestoreResult::Failed(RestoreError::TooSlow { .. }) => "too slow, given up".into(),
            RestoreResult::Failed(RestoreError::Unfinished(Unfinished::TimedOut { .. })) => {
                "timed out".into()
            }
            RestoreResult::Failed(RestoreError::Unfinished(Unfinished::Crashed)) => "internal error".into(),
            RestoreResult::Failed(
                RestoreError::Unfinished(Unfinished::Cancelled(c)) | RestoreError::Cancelled(c),
            ) => c.to_string(),
        }
    }
}

/// What happened to one target in the save step.
#[derive(Debug)]
pub struct SaveReport {
    pub target: Target,
    pub key: String,
    pub result: SaveResult,
    pub size: Option<u64>,
    pub elapsed: Duration,
    pub notes: String,
}

/// How one target's save ended.
#[derive(Debug)]
pub enum SaveResult {
    /// Stored under the key.
    Saved,
    /// Another job stored the key first (the service's message).
    AlreadySaved(String),
    /// Not saved, for the reason given (`save: always` found nothing changed, say).
    Skipped(&'static str),
    /// The restore found the exact key: nothing new to store.
    ExactHit,
    /// The target's directory does not exist.
    NothingToSave(PathBuf),
    /// Trouble: a warning, and nothing is stored.
    Failed(SaveError),
}

/// Why a target was not saved, with the error that says so as its source. `report.rs` decides
/// from the variant (and its source) how a workflow sees it: a service that refuses the write
/// by policy ([`BackendError::Denied`]) is a notice, the rest are warnings.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("cannot create the archive in {}; not saving: {source}", dir.display())]
    CreateArchive { dir: PathBuf, source: std::io::Error },
    #[error("packing {} failed; not saving: {source}", dir.display())]
    Pack { dir: PathBuf, source: ArchiveError },
    /// The archive was given up before packing completed (the backend stopped first).
    #[error("packing {} failed; not saving: {source}", dir.display())]
    Abandoned { dir: PathBuf, source: archive_file::Unfinished },
    #[error("saving {key} failed: {source}")]
    Store { key: String, source: BackendError },
    #[error("{0}")]
    Cancelled(#[source] Cancelled),
}

impl SaveReport {
    /// The summary's result column.
    pub fn summary(&self) -> String {
        match &self.result {
            SaveResult::Saved => "saved".into(),
            SaveResult::AlreadySaved(_) => "already saved by another job".into(),
            SaveResult::Skipped(why) => (*why).into(),
            SaveResult::ExactHit => "exact hit, not saved".into(),
            SaveResult::NothingToSave(_) => "nothing to save".into(),
            SaveResult::Failed(
                SaveError::CreateArchive { .. } | SaveError::Pack { .. } | SaveError::Abandoned { .. },
            ) => "pack failed".into(),
            SaveResult::Failed(SaveError::Store { source: BackendError::Denied { .. }, .. }) => {
                "write denied".into()
            }
            SaveResult::Failed(SaveError::Store { source: BackendError::TooSlowToSave(_), .. }) => {
                "too slow, given up".into()
            }
            SaveResult::Failed(SaveError::Store { .. }) => "save failed".into(),
            SaveResult::Failed(SaveError::Cancelled(c)) => c.to_string(),
        }
    }
}

/// When the restore step started (Unix milliseconds): the job's start, as far as the action
/// knows it; the post step gives up an upload that would take longer than the job has run
/// (`backend/upload_pace.rs`).
pub const STATE_RESTORE_STARTED: &str = "RESTORE_STARTED";

/// When the restore step ended (Unix milliseconds): the post step measures the job's own work
/// from it (`entry_note.rs`).
pub const STATE_RESTORE_ENDED: &str = "RESTORE_ENDED";

/// The state names the restore step leaves for the post step, per target: `UV_KEY`,
/// `UV_PYTHON_KEY`, … (no hyphen, so every shell can read `STATE_*` back).
fn state_name(target: Target, what: &str) -> String {
    format!("{}_{what}", target.name().to_uppercase().replace('-', "_"))
}

pub fn state_key(target: Target) -> String {
    state_name(target, "KEY")
}

pub fn state_hit(target: Target) -> String {
    state_name(target, "HIT")
}

/// The key restored from (empty on a miss).
pub fn state_matched(target: Target) -> String {
    state_name(target, "MATCHED")
}

/// The digest of what the restored envs (or uv cache) held, for the post step to compare with.
pub fn state_envs(target: Target) -> String {
    state_name(target, "ENVS")
}

/// The bytes the restored directory held, for the post step to measure drift against.
pub fn state_bytes(target: Target) -> String {
    state_name(target, "BYTES")
}

/// `3.1 s`.
pub fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}
