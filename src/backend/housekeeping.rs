//! What the stores the action owns (`local`, `s3`) offer besides restore and save: listing
//! their entries with when each was saved and last restored, telling which entry a given ref and
//! key set would restore, and deleting an entry. The `entries` and `prune` commands
//! (`src/housekeeping/`) and the local store's size bound are built on this; the runners' cache
//! services have no such trait (their servers evict on their own).

use std::time::{Duration, SystemTime};

use super::scope::Scope;
use super::{BackendError, Hit};

/// One stored entry, as a listing finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// The key, as stored (lower-cased on S3).
    pub key: String,
    /// `owner/name`.
    pub repository: String,
    /// The ref it was saved on (`refs/heads/main`): the jobs that read it are those of `scope.rs`.
    pub git_ref: String,
    /// The cache version (the `path` lines and the compression, `backend::version`).
    pub version: String,
    /// The archive's size in bytes.
    pub size: u64,
    pub saved_at: SystemTime,
    /// The last restore of it, or when it was saved if none was recorded since.
    pub last_used: SystemTime,
    /// Whether a restore would take it: `false` for an S3 entry without its recorded sha256.
    pub restorable: bool,
    /// Where it lives, in the store's own terms: a file path, an object name.
    pub location: String,
}

impl StoredEntry {
    /// The target the key belongs to, from the key's shape (`uv-nox-cache-<schema>-<target>-…`,
    /// `key.rs`), or `?` for a key of another shape.
    pub fn target(&self) -> &'static str {
        let key = self.key.to_ascii_lowercase();
        let Some(rest) = key.strip_prefix("uv-nox-cache-") else { return "?" };
        let rest = rest.split_once('-').map_or("", |(_schema, rest)| rest);
        // `uv-python` before `uv`: the longest name that starts the key.
        ["uv-python", "uv", "nox"]
            .into_iter()
            .find(|name| rest.starts_with(&format!("{name}-")) || rest == *name)
            .unwrap_or("?")
    }
}

/// Listing and deleting the entries of a store the action owns.
pub trait Housekeeping {
    /// Where the store is, for messages (`local (/path)`, `s3://bucket/prefix`).
    fn describe(&self) -> String;
    /// Every entry of the store, of every repository and ref, in no particular order.
    fn list(&self) -> Result<Vec<StoredEntry>, BackendError>;
    /// Removes the entry as listed: `Ok(false)` when it is gone already, or was saved again or
    /// restored since it was listed (then it is kept).
    fn delete(&self, entry: &StoredEntry) -> Result<bool, BackendError>;
    /// Removes what no entry owns any more and nothing is writing, untouched for
    /// [`IN_USE`]: saves abandoned half-way, sidecars and companion objects of removed entries.
    fn sweep(&self, now: SystemTime) -> Result<Swept, BackendError>;
    /// The [`StoredEntry::location`] of what a job of `scope` would restore for `keys` and
    /// `version`: the backend's own lookup, so the answer is the one a restore gets.
    fn would_restore(
        &self,
        scope: &Scope,
        keys: &[String],
        version: &str,
    ) -> Result<Option<String>, BackendError>;
}

/// What a sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub files: usize,
    pub bytes: u64,
}

/// Whether a leftover last written at `modified` is old enough to go at `now`.
pub fn abandoned(modified: SystemTime, now: SystemTime) -> bool {
    now.duration_since(modified).is_ok_and(|idle| idle >= IN_USE)
}

/// The location a lookup's hit carries, for backends whose locator is a `T`.
pub(crate) fn location_of<T: 'static>(hit: &Hit, location: impl Fn(&T) -> String) -> Option<String> {
    hit.locator.get::<T>().map(location)
}

/// How long after its last use (or its save) an entry counts as in use and is never deleted:
/// longer than any restore or save streams (docs/decisions.md).
pub const IN_USE: Duration = Duration::from_secs(60 * 60);

/// What a prune removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Entries not used for longer than this.
    pub max_age: Option<Duration>,
    /// Then, least recently used first, until the entries left take at most this many bytes.
    pub max_size: Option<u64>,
    /// Entries used or saved more recently than this are kept whatever the rest says.
    pub in_use: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy { max_age: None, max_size: None, in_use: IN_USE }
    }
}

/// Why an entry is to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Not used for longer than `max_age`.
    Age,
    /// Among the least recently used beyond `max_size`.
    Size,
}

/// One entry a prune removes, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub entry: StoredEntry,
    pub reason: Reason,
}

/// What a prune does to a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Least recently used first.
    pub delete: Vec<Planned>,
    pub keep: Vec<StoredEntry>,
    /// Bytes of the entries kept.
    pub kept_bytes: u64,
    /// How many of the entries the policy would remove are kept because they are in use.
    pub in_use: usize,
}

/// Applies `policy` at `now`: by age of last use first, then least recently used first for
/// size. Pure, so it is tested with any clock.
pub fn plan(mut entries: Vec<StoredEntry>, policy: &Policy, now: SystemTime) -> Plan {
    entries.sort_by(|a, b| a.last_used.cmp(&b.last_used).then_with(|| a.saved_at.cmp(&b.saved_at)));
    let idle =
        |entry: &StoredEntry| now.duration_since(entry.last_used.max(entry.saved_at)).unwrap_or_default();
    let mut plan = Plan::default();
    let mut total: u64 = entries.iter().map(|e| e.size).sum();
    for entry in entries {
        let reason = if policy.max_age.is_some_and(|max_age| idle(&entry) > max_age) {
            Some(Reason::Age)
        } else if policy.max_size.is_some_and(|max_size| total > max_size) {
            Some(Reason::Size)
        } else {
            None
        };
        match reason {
            Some(_) if idle(&entry) < policy.in_use => {
                plan.in_use += 1;
                plan.kept_bytes += entry.size;
                plan.keep.push(entry);
            }
            Some(reason) => {
                total -= entry.size;
                plan.delete.push(Planned { entry, reason });
            }
            None => {
                plan.kept_bytes += entry.size;
                plan.keep.push(entry);
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 60 * 60);

    fn entry(key: &str, size: u64, saved_days_ago: u64, used_days_ago: u64, now: SystemTime) -> StoredEntry {
        StoredEntry {
            key: key.into(),
            repository: "o/r".into(),
            git_ref: "refs/heads/main".into(),
            version: "v".into(),
            size,
            saved_at: now - DAY * saved_days_ago as u32,
            last_used: now - DAY * used_days_ago as u32,
            restorable: true,
            location: key.into(),
        }
    }

    fn keys(planned: &[Planned]) -> Vec<(&str, Reason)> {
        planned.iter().map(|p| (p.entry.key.as_str(), p.reason)).collect()
    }

    #[test]
    fn age_counts_from_the_last_use_and_size_goes_least_recently_used_first() {
        let now = SystemTime::now();
        let entries = vec![
            entry("old-but-read", 10, 40, 1, now),
            entry("stale", 10, 20, 20, now),
            entry("lru", 10, 5, 5, now),
            entry("recent", 10, 3, 2, now),
            entry("fresh", 10, 0, 0, now),
        ];
        let by_age = plan(entries.clone(), &Policy { max_age: Some(DAY * 7), ..Policy::default() }, now);
        assert_eq!(
            keys(&by_age.delete),
            [("stale", Reason::Age)],
            "saved 40 days ago but read yesterday: kept"
        );

        let both = Policy { max_age: Some(DAY * 7), max_size: Some(25), ..Policy::default() };
        let plan_both = plan(entries.clone(), &both, now);
        assert_eq!(
            keys(&plan_both.delete),
            [("stale", Reason::Age), ("lru", Reason::Size), ("recent", Reason::Size)]
        );
        assert_eq!(plan_both.kept_bytes, 20);

        // Nothing in use goes, even when the size says so.
        let tight = Policy { max_size: Some(0), ..Policy::default() };
        let plan_tight = plan(entries, &tight, now);
        assert_eq!(plan_tight.delete.len(), 4);
        assert_eq!(plan_tight.in_use, 1);
        assert_eq!(plan_tight.keep[0].key, "fresh");
    }

    #[test]
    fn the_target_is_read_from_the_key() {
        let now = SystemTime::now();
        let target = |key: &str| entry(key, 0, 0, 0, now).target();
        assert_eq!(target("uv-nox-cache-1-uv-python-Linux-X64-abc"), "uv-python");
        assert_eq!(target("uv-nox-cache-1-uv-Linux-X64-abc"), "uv");
        assert_eq!(target("uv-nox-cache-1-nox-linux-x64-abc"), "nox");
        assert_eq!(target("my-own-key"), "?");
    }
}
