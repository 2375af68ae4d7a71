//! A small note every saved entry carries about the job that saved it, so a later restore can
//! tell whether the cache pays for itself.
//!
//! A restore is only worth it when it costs less than the work it saves. The saving job knows
//! how long its own work took — from the end of its restore step to the start of its save step,
//! which on a cold job is the installs the cache is meant to spare (plus the tests) — and writes
//! that into the archive as a PAX `comment` record on the root directory's header. The restore
//! reads it back, and when restoring took longer than that whole stretch of the saving job, the
//! report says the target may not be worth caching on this runner. Entries saved by other tools
//! have no note, and then nothing is said.
//!
//! A `comment` is the one PAX record every reader is told to ignore: GNU tar (which
//! `actions/cache` runs), libarchive and Python's tarfile extract such an entry exactly as they
//! would without it, so the entries stay interchangeable and the trees stay as they were saved.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a comment of this tool starts with.
const PREFIX: &str = "uv-nox-cache-entry ";

/// Restores quicker than this never draw the "may not be worth it" notice: on such short
/// times the comparison says more about the machine's load than about the cache.
pub const NOTICE_FLOOR: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryNote {
    /// Milliseconds from the end of the saving job's restore step to the start of its save step.
    pub job_work_ms: u64,
}

impl EntryNote {
    pub fn job_work(&self) -> Duration {
        Duration::from_millis(self.job_work_ms)
    }

    /// The note as the text of the archive's comment.
    pub fn to_comment(&self) -> String {
        format!("{PREFIX}{}", serde_json::to_string(self).unwrap_or_default())
    }

    /// The note in an archive's comment; `None` for a comment of another tool, or one this
    /// version cannot read (no reason to doubt the rest of the entry).
    pub fn from_comment(comment: &str) -> Option<EntryNote> {
        serde_json::from_str(comment.strip_prefix(PREFIX)?).ok()
    }
}

/// The note the saving job's work makes, given when its restore step ended (Unix
/// milliseconds, from the step state) and now; `None` when the restore step left no time or
/// the clock went backwards.
pub fn of_job(restore_ended_ms: Option<&str>, now_ms: u64) -> Option<EntryNote> {
    let ended: u64 = restore_ended_ms?.parse().ok()?;
    now_ms.checked_sub(ended).map(|job_work_ms| EntryNote { job_work_ms })
}

/// Whether a restore that took `restore` outweighs the work of the job that saved the entry.
pub fn outweighs(restore: Duration, note: EntryNote) -> bool {
    restore >= NOTICE_FLOOR && restore > note.job_work()
}

/// The current time in Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_note_round_trips_through_the_comment() {
        let note = of_job(Some("1000"), 4500).unwrap();
        assert_eq!(note.job_work(), Duration::from_millis(3500));
        assert_eq!(note.to_comment(), "uv-nox-cache-entry {\"job_work_ms\":3500}");
        assert_eq!(EntryNote::from_comment(&note.to_comment()), Some(note));
        assert_eq!(EntryNote::from_comment("made by another tool"), None);
        assert_eq!(EntryNote::from_comment("uv-nox-cache-entry {\"job_work\":1}"), None);
    }

    #[test]
    fn no_time_or_a_clock_going_backwards_gives_no_note() {
        assert_eq!(of_job(None, 10), None);
        assert_eq!(of_job(Some("x"), 10), None);
        assert_eq!(of_job(Some("20"), 10), None);
    }

    #[test]
    fn only_a_restore_longer_than_the_work_and_the_floor_outweighs_it() {
        let note = EntryNote { job_work_ms: 3000 };
        assert!(outweighs(Duration::from_secs(4), note));
        assert!(!outweighs(Duration::from_secs(2), note));
        let quick = EntryNote { job_work_ms: 100 };
        assert!(!outweighs(Duration::from_millis(900), quick), "under the floor");
        assert!(outweighs(Duration::from_millis(1100), quick));
    }
}
