//! The buckets of a uv cache that the job's uv does not use: older versions of a bucket family
//! (`wheels-v6` next to uv 0.13's `wheels-v8`), left behind by an older uv whose entry this one
//! was restored from. They are left out of the saved uv entry.
//!
//! uv itself decides which they are: `uv cache prune` removes the top-level directories it does
//! not know as "dangling cache bucket"s. It runs on a scratch directory holding only empty
//! directories named as the cache's, so it reads the names and touches nothing of the cache.
//! Only versioned names (`<family>-v<N>`) are taken: anything else is not uv's to judge.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::tree_bytes;
use crate::envs;

/// One bucket the job's uv does not use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadBucket {
    /// The directory name, such as `wheels-v6`.
    pub name: String,
    /// Bytes of its files.
    pub bytes: u64,
}

/// What `uv cache prune -v` says it removes from a cache holding `dir`'s top-level directories,
/// asked of `uv` in a scratch directory under `scratch_parent`. Empty when uv cannot be asked:
/// what uv reads is never guessed.
pub fn dead_buckets(uv: &Path, dir: &Path, scratch_parent: &Path) -> Vec<DeadBucket> {
    let versioned: Vec<String> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|name| is_versioned(name))
            .collect(),
        Err(_) => return Vec::new(),
    };
    if versioned.is_empty() {
        return Vec::new();
    }
    let Ok(scratch) = tempfile::Builder::new().prefix("uv-buckets-").tempdir_in(scratch_parent) else {
        return Vec::new();
    };
    for name in &versioned {
        if fs::create_dir(scratch.path().join(name)).is_err() {
            return Vec::new();
        }
    }
    let mut cmd = Command::new(uv);
    cmd.args(["cache", "prune", "--verbose", "--no-progress"])
        .env("UV_CACHE_DIR", scratch.path())
        .env_remove("UV_NO_CACHE")
        .env("NO_COLOR", "1");
    let Ok(Some(out)) = envs::output_within(&mut cmd, envs::UV_TIMEOUT) else {
        return Vec::new();
    };
    if !out.status.success() {
        return Vec::new();
    }
    let mut dead: Vec<DeadBucket> = reported(&String::from_utf8_lossy(&out.stderr), scratch.path())
        .into_iter()
        .filter(|name| versioned.contains(name))
        .map(|name| DeadBucket { bytes: tree_bytes(&dir.join(&name)), name })
        .collect();
    dead.sort_by(|a, b| a.name.cmp(&b.name));
    dead
}

/// The bucket names in uv's `Removing dangling cache bucket: <scratch>/<name>` lines.
fn reported(log: &str, scratch: &Path) -> Vec<String> {
    log.lines()
        .filter_map(|line| line.split_once("Removing dangling cache bucket: ").map(|(_, path)| path.trim()))
        .filter_map(|path| {
            let path = PathBuf::from(path);
            (path.parent() == Some(scratch)).then(|| path.file_name()?.to_str().map(str::to_string)).flatten()
        })
        .collect()
}

/// `wheels-v6`, `simple-v28`: a family name, `-v`, a number.
fn is_versioned(name: &str) -> bool {
    name.rsplit_once("-v").is_some_and(|(family, version)| {
        !family.is_empty() && !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_versioned_buckets_named_by_uv_count() {
        assert!(is_versioned("wheels-v6") && is_versioned("interpreter-v4"));
        assert!(!is_versioned("CACHEDIR.TAG") && !is_versioned("foo") && !is_versioned("-v1"));
        assert!(!is_versioned("wheels-vx"));
        let log = "DEBUG uv 0.13.9\nDEBUG Removing dangling cache bucket: /s/wheels-v6\n\
                   DEBUG Removing dangling cache bucket: /elsewhere/simple-v25\n";
        assert_eq!(reported(log, Path::new("/s")), ["wheels-v6"]);
    }
}
