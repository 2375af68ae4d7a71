//! Archives in actions/cache's format: PAX tar, zstd or gzip, names relative to the workspace.
//!
//! Interface only; the implementation arrives in its own commit.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// How an archive is compressed. The label is what actions/cache mixes into the entry's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Zstd,
    Gzip,
}

impl Compression {
    /// The compression method string of `@actions/cache` (spec §2.2).
    pub fn label(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd-without-long",
            Compression::Gzip => "gzip",
        }
    }
}

/// What to put in one archive.
pub struct PackSpec<'a> {
    /// The directory to archive; it must exist.
    pub root: &'a Path,
    /// Its name inside the archive, relative to the workspace with `/` separators, for example
    /// `../../../.cache/uv` or `.nox`.
    pub name: &'a str,
    /// Paths relative to `root` left out of the archive (a directory leaves its whole subtree).
    pub skip: &'a HashSet<PathBuf>,
    /// Extra regular files, relative to `root`, added to the archive with these contents.
    pub extra: &'a [(PathBuf, Vec<u8>)],
}

#[derive(Debug, Default, Clone)]
pub struct PackStats {
    pub entries: u64,
    pub bytes: u64,
}

/// Limits that stop a hostile or broken archive.
#[derive(Debug, Clone)]
pub struct UnpackLimits {
    pub max_bytes: u64,
    pub max_entries: u64,
}

#[derive(Debug, Default, Clone)]
pub struct UnpackStats {
    pub entries: u64,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{0}")]
    Todo(String),
}

pub fn pack(
    spec: &PackSpec,
    compression: Compression,
    out: &mut dyn Write,
) -> Result<PackStats, ArchiveError> {
    let _ = (spec, compression, out);
    Err(ArchiveError::Todo("pack".into()))
}

/// Extracts into `dest`, which must not exist yet.
pub fn unpack(input: &mut dyn Read, dest: &Path, limits: &UnpackLimits) -> Result<UnpackStats, ArchiveError> {
    let _ = (input, dest, limits);
    Err(ArchiveError::Todo("unpack".into()))
}

/// The name actions/cache gives `dir` inside archives: relative to `workspace`, `../` where
/// needed, `/` separators, `.` for the workspace itself.
pub fn name_relative_to(workspace: &Path, dir: &Path) -> String {
    let _ = (workspace, dir);
    todo!("arrives with the archive implementation")
}
