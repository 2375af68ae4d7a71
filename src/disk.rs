//! Room on the file system a restore writes to, checked before anything is downloaded.
//!
//! A restore that fills the runner's disk breaks the job (and everything else on the host);
//! one that is skipped only costs a cold install. So when the service tells the entry's size,
//! the restore compares what the entry will take once extracted — its size times
//! [`EXPANSION`] — with the space left where the target lives, and skips the target with a
//! warning giving both numbers when it would not fit. When the size is unknown (v2 never says
//! it), a full disk mid-extraction is still only a warning: the staging directory is removed.

use std::path::Path;

/// How many times larger than its archive an extracted entry is taken to be. Measured on the
/// benchmark's data sets (docs/performance.md): the demo's 15 MB of uv cache and envs pack to
/// 3.7 MB (4.1×); venv-like trees of source and wheels compress 3–5×. The check errs on the
/// side of restoring: a skipped restore is a cold job, a disk that fills is a warning anyway.
pub const EXPANSION: u64 = 5;

/// Bytes free to an unprivileged writer on the file system holding `path` (or its nearest
/// existing ancestor); `None` where that cannot be told.
pub fn available(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    free_bytes(existing)
}

#[cfg(unix)]
fn free_bytes(path: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(path).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(not(unix))]
fn free_bytes(_path: &Path) -> Option<u64> {
    None
}

/// The size of the file system holding `path` (or its nearest existing ancestor); `None`
/// where that cannot be told.
pub fn total(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    total_bytes(existing)
}

#[cfg(unix)]
fn total_bytes(path: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(path).ok()?;
    Some(stat.f_blocks.saturating_mul(stat.f_frsize))
}

#[cfg(not(unix))]
fn total_bytes(_path: &Path) -> Option<u64> {
    None
}

/// Not enough room for an entry of `size` compressed bytes below `dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoRoom {
    pub need: u64,
    pub free: u64,
}

/// Whether an entry of `size` bytes (when known) fits below `dir` once extracted.
pub fn check_room(dir: &Path, size: Option<u64>) -> Result<(), NoRoom> {
    let (Some(size), Some(free)) = (size, available(dir)) else { return Ok(()) };
    let need = size.saturating_mul(EXPANSION);
    if need > free { Err(NoRoom { need, free }) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_of_a_path_that_does_not_exist_yet_is_its_ancestors() {
        let dir = tempfile::tempdir().unwrap();
        let free = available(&dir.path().join("not/yet/there")).expect("statvfs works here");
        assert!(free > 0);
        assert_eq!(check_room(dir.path(), None), Ok(()));
        assert_eq!(check_room(dir.path(), Some(1)), Ok(()));
        let err = check_room(dir.path(), Some(free)).unwrap_err();
        assert_eq!(err.need, free * EXPANSION);
    }
}
