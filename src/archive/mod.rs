//! Archives in actions/cache's format: PAX tar, zstd or gzip, names relative to the workspace.
//!
//! Why this exists: an entry saved by `actions/cache` must restore here and one saved here must
//! restore with `actions/cache` (docs/protocol.md §5), yet the `tar` crate's own extraction is unfit for it
//! (`unpack_in` silently drops every `..` entry, hard links resolve against the process cwd) and
//! a cache archive is untrusted input. So this module writes the tar stream itself and computes
//! every destination itself.
//!
//! **Writing** ([`pack`], in `pack.rs`) produces what `tar --posix -c -P -C <workspace> <name>`
//! produces for one directory: the directory itself first (as `name/`), then its contents depth
//! first, each directory's entries sorted bytewise so equal trees give equal archives. Names keep
//! their `../` prefixes. Ustar `prefix`/`name` fields hold names up to 255 bytes; longer names and
//! link names, sub-second mtimes and sizes of 8 GiB or more go into a PAX `x` header before the
//! entry. Regular files, directories, symlinks (target verbatim) and hard links (type `1`, for a
//! file with several links met twice in this archive) are stored with their modes and mtimes;
//! sockets, fifos and devices are left out with a debug line. atime/ctime are not stored, so the
//! archive does not change when only the tree was read. A root given as a symlink to a directory
//! is followed. zstd runs in process with up to [`MAX_ZSTD_WORKERS`] worker threads and 2 MiB
//! jobs (bounding memory to ~45 MiB on wide machines), content checksum, no long mode: one frame
//! that `unzstd` reads without `--long`. Its level is [`CompressionLevel`]: pinned, or by
//! default level 3, and level 1 while an upload streaming the archive waits for the packer,
//! switched between zstd jobs inside the one frame. gzip uses flate2 at level 6, as `gzip`
//! does, unless pinned. Small files (up to 256 KiB) are read ahead by a few threads (two per CPU,
//! at most four, none on one CPU; in `read_pool.rs`) while the calling thread walks and writes
//! in order, so the archive is the same whatever the number of threads.
//!
//! **Reading** ([`unpack`], in `unpack.rs`) detects zstd or gzip by magic bytes (the zstd window
//! limit is 2^31 so legacy `--long=30` entries still read; that can cost up to 1 GiB of memory
//! for such archives only). The first entry must be a directory; its name P is the archived root
//! and every later entry must be P or lie below `P/`. Entries are **re-rooted**: `P/rest` is
//! written to `dest/rest`, whatever P was (`../../.cache/uv`, `.nox`, `./x`), so a workspace at a
//! different depth still restores into the right place. `dest` must not exist; it is created,
//! and on error it may hold a partial tree which the caller discards. Refused with an error:
//! absolute names, names outside P, `..` after P, hard links whose target is outside P, and any
//! entry whose path below `dest` passes through a symlink (or a hard link to one) made by the
//! archive. Symlinks themselves are kept verbatim, even to absolute or outside targets (a venv's
//! `bin/python -> /usr/bin/python3.12`); a hard link to a symlink becomes a copy of that
//! symlink. **Fifos and device entries are skipped with a warning** rather than refused: pack
//! never writes them, and one stray fifo in someone's cache should not cost the whole restore.
//! setuid, setgid and sticky bits are stripped; other mode bits are restored exactly (umask not
//! applied), mtimes too (directories' after their contents, symlinks' not at all); ownership is
//! never restored. A later entry for the same path replaces the earlier file or symlink, as GNU
//! tar does. [`UnpackLimits`] stop decompression bombs: the sum of regular file sizes and the
//! number of entries are checked from the headers, before the data is read; the sum is checked
//! against an absolute cap and against a multiple of the compressed bytes read so far. After the tar end
//! marker the rest of the compressed stream is read, so its checksum and truncation are checked.
//!
//! Speed: the calling thread decompresses and parses; a writer thread applies the entries,
//! fed through a bounded channel (128 operations, file data in pieces of at most 128 KiB, in
//! buffers the writer hands back to be filled again). It creates directories, links and large
//! files itself and hands whole small files to a pool of threads (two per CPU, in `file_pool.rs`)
//! that create them in parallel, in an order that keeps the archive's meaning. Memory stays
//! under ~30 MiB whatever the archive size, plus the zstd window.
//!
//! Unix only (modes, symlinks, hard links and raw byte names use `std::os::unix`).

mod file_pool;
mod pack;
mod read_pool;
mod unpack;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::io;
use std::path::{Component, Path, PathBuf};

pub use pack::{pack, pack_at, pack_with_threads};
pub use unpack::{unpack, unpack_noting, unpack_with_threads};

/// Upper bound on zstd compression worker threads, so that memory stays bounded on machines
/// with many cores: with 2 MiB jobs zstd needs about 10 MiB plus 4 MiB per worker.
pub const MAX_ZSTD_WORKERS: u32 = 8;

/// How an archive is compressed. The label is what actions/cache mixes into the entry's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Zstd,
    Gzip,
}

impl Compression {
    /// The compression method string of `@actions/cache` (docs/protocol.md §2.2).
    pub fn label(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd-without-long",
            Compression::Gzip => "gzip",
        }
    }
}

/// How hard the compressor works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompressionLevel {
    /// zstd: level 1 while the reader of the archive (an upload streaming it as it grows) waits
    /// for the packer most of the time (loopback, a fast network), else level 3 (a slow link, or
    /// an upload that starts once the archive is complete); re-decided every [`ADAPT_WINDOW`]
    /// bytes of input. gzip: level 6, as `gzip` does.
    #[default]
    Auto,
    /// This level throughout: zstd -7 to 19 (negative: zstd's `--fast` levels), gzip 1 to 9.
    Fixed(i32),
}

/// zstd levels a [`CompressionLevel::Fixed`] may name.
pub const ZSTD_LEVELS: std::ops::RangeInclusive<i32> = -7..=19;
/// gzip levels a [`CompressionLevel::Fixed`] may name.
pub const GZIP_LEVELS: std::ops::RangeInclusive<i32> = 1..=9;
/// Input bytes between two decisions of [`CompressionLevel::Auto`].
pub const ADAPT_WINDOW: u64 = 16 << 20;

/// What to put in one archive.
pub struct PackSpec<'a> {
    /// The directory to archive; it must exist.
    pub root: &'a Path,
    /// Its name inside the archive, relative to the workspace with `/` separators, for example
    /// `../../../.cache/uv` or `.nox` (see [`name_relative_to`]).
    pub name: &'a str,
    /// Paths relative to `root` left out of the archive (a directory leaves its whole subtree).
    pub skip: &'a HashSet<PathBuf>,
    /// Extra regular files, relative to `root`, added to the archive with these contents (mode
    /// 0644, mtime now). One that also exists on disk replaces it; missing parent directories
    /// are added as directories (mode 0755).
    pub extra: &'a [(PathBuf, Vec<u8>)],
    /// Text for this tool in a PAX `comment` record of the root directory's header: tar, the
    /// toolkit and every PAX reader ignore it, so the extracted tree stays exactly `root`.
    pub comment: Option<&'a str>,
}

/// What [`pack`] wrote.
#[derive(Debug, Default, Clone)]
pub struct PackStats {
    /// Tar entries (PAX extension headers not counted).
    pub entries: u64,
    /// Bytes of regular file content (uncompressed).
    pub bytes: u64,
}

/// Limits that stop a hostile or broken archive.
#[derive(Debug, Clone)]
pub struct UnpackLimits {
    /// Most bytes of regular file content, in total.
    pub max_bytes: u64,
    /// Most entries (directories, files and links).
    pub max_entries: u64,
    /// When not 0: the file bytes may also not exceed this many times the compressed bytes read
    /// so far (or [`ratio_floor`](Self::ratio_floor), whichever is more). This caps an entry
    /// relative to its real size even when the cache service does not report that size.
    pub max_ratio: u64,
    /// The file bytes always allowed by `max_ratio`, however small the archive.
    pub ratio_floor: u64,
}

/// What [`unpack`] wrote.
#[derive(Debug, Default, Clone)]
pub struct UnpackStats {
    /// Entries extracted (skipped fifos and devices not counted).
    pub entries: u64,
    /// Bytes of regular file content written.
    pub bytes: u64,
    /// The PAX `comment` of the root directory's header (see [`PackSpec::comment`]).
    pub comment: Option<String>,
}

/// Everything that can go wrong packing or unpacking. Messages name the object and, where there
/// is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A file system operation on a named path failed.
    #[error("could not {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Writing the compressed stream to its destination failed.
    #[error("could not write the archive ({compression}): {source}")]
    Write {
        compression: &'static str,
        #[source]
        source: io::Error,
    },
    /// The pack request itself is wrong (a caller bug, not a file system problem).
    #[error("cannot archive {}: {reason}", root.display())]
    BadSpec { root: PathBuf, reason: String },
    /// `unpack` extracts into a new directory only.
    #[error(
        "cannot unpack into {}: it already exists; unpack into a new directory and move it into place",
        path.display()
    )]
    DestExists { path: PathBuf },
    /// The input starts with neither the zstd nor the gzip magic bytes.
    #[error(
        "the archive is neither zstd nor gzip (it starts with {magic}); the cache entry is not one \
         written by actions/cache or uv-nox-cache, or its download was damaged"
    )]
    UnknownFormat { magic: String },
    /// Decompression or tar parsing failed: corrupt or truncated data.
    #[error(
        "the archive is corrupt or truncated{}: {detail}; delete the cache entry if this repeats",
        at.as_deref().map(|n| format!(" at {n}")).unwrap_or_default()
    )]
    Corrupt { at: Option<String>, detail: String },
    /// The archive has no entry, or its first entry is not a directory.
    #[error(
        "the archive's first entry {first:?} is not a directory; archives of one directory start with \
         that directory (this entry was not written by actions/cache for a directory path)"
    )]
    RootNotDirectory { first: String },
    /// An entry would write outside `dest` or through a link: the archive is refused.
    #[error("refusing the archive entry {name:?}: {reason}")]
    Unsafe { name: String, reason: String },
    /// The archive holds more file bytes than allowed.
    #[error(
        "the archive holds more than {limit} bytes of files (at {name:?}); it may be a decompression \
         bomb, or the limit is too low for this cache"
    )]
    TooManyBytes { limit: u64, name: String },
    /// The archive holds more entries than allowed.
    #[error(
        "the archive holds more than {limit} entries; it may be a decompression bomb, or the limit is \
         too low for this cache"
    )]
    TooManyEntries { limit: u64 },
}

/// The archive name actions/cache would use for `dir`: relative to `workspace`, with `../` where
/// needed, `/` separators; "." for the workspace itself.
///
/// Both paths are made absolute against the current directory and normalised lexically (as
/// Node's `path.relative` does); symlinks are not resolved.
pub fn name_relative_to(workspace: &Path, dir: &Path) -> String {
    let ws = lexical_absolute(workspace);
    let dir = lexical_absolute(dir);
    let common = ws.iter().zip(dir.iter()).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = Vec::new();
    parts.extend(std::iter::repeat_n("..".to_string(), ws.len() - common));
    parts.extend(dir[common..].iter().cloned());
    if parts.is_empty() { ".".to_string() } else { parts.join("/") }
}

/// `path` made absolute (against the current directory) and normalised without touching the
/// file system, as a list of normal components.
fn lexical_absolute(path: &Path) -> Vec<String> {
    let joined;
    let path = if path.is_absolute() {
        path
    } else {
        joined = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")).join(path);
        &joined
    };
    let mut parts: Vec<String> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop();
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    parts
}
