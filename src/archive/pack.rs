//! Writing: walk one directory into a POSIX (PAX) tar stream and compress it on the fly.
//!
//! The tar headers are written here rather than with `tar::Builder`, which emits GNU long-name
//! entries instead of PAX, cannot place sub-second mtimes, and would read each directory's
//! metadata twice. One thread walks the tree (in archive order) and writes the stream; a few
//! threads read the small files among the next entries ahead of it (`read_pool.rs`). Memory
//! stays bounded: one directory listing per level of depth, the entries walked ahead and the
//! files read ahead (at most 1024 entries and 4 MiB), a 1 MiB write buffer, and the
//! compressor's own buffers.

use std::cell::Cell;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::read_pool::{self, ReadAhead, ReadPool, Ticket};
use super::{
    ADAPT_WINDOW, ArchiveError, Compression, CompressionLevel, MAX_ZSTD_WORKERS, PackSpec, PackStats,
};

const BLOCK: usize = 512;
/// GNU tar pads the archive to a whole record of 20 blocks; so do we.
const RECORD: u64 = 20 * BLOCK as u64;
/// The largest size the 11 octal digits of a ustar header hold.
const USTAR_MAX_SIZE: u64 = 0o77777777777;
/// Input bytes per zstd worker job.
const ZSTD_JOB_SIZE: u32 = 2 << 20;

/// Writes `spec.root` as a tar archive named `spec.name`, compressed, to `out`, at the default
/// level (with no reader of `out` to watch, [`CompressionLevel::Auto`] stays at level 3).
pub fn pack(
    spec: &PackSpec,
    compression: Compression,
    out: &mut dyn Write,
) -> Result<PackStats, ArchiveError> {
    pack_at(spec, compression, CompressionLevel::Auto, out, &|| Duration::ZERO)
}

/// [`pack`] at the given level. `reader_waited` tells the total time so far that whoever
/// consumes `out` concurrently (an upload streaming the archive as it grows) spent waiting for
/// the packer; [`CompressionLevel::Auto`] follows it.
pub fn pack_at(
    spec: &PackSpec,
    compression: Compression,
    level: CompressionLevel,
    out: &mut dyn Write,
    reader_waited: &dyn Fn() -> Duration,
) -> Result<PackStats, ArchiveError> {
    pack_with_threads(spec, compression, level, out, reader_waited, read_pool::threads())
}

/// [`pack_at`] with `read_threads` threads reading small files ahead (0: the pack's thread reads
/// every file itself). For tests and benchmarks, which must reach both ways whatever the
/// machine; the archive is the same either way.
pub fn pack_with_threads(
    spec: &PackSpec,
    compression: Compression,
    level: CompressionLevel,
    out: &mut dyn Write,
    reader_waited: &dyn Fn() -> Duration,
    read_threads: usize,
) -> Result<PackStats, ArchiveError> {
    let plan = Plan::new(spec)?;
    let label = compression.label();
    let write_err = |source| ArchiveError::Write { compression: label, source };
    match compression {
        Compression::Zstd => {
            let waited = Rc::new(Cell::new(Duration::ZERO));
            let timed = Timed { inner: out, waited: waited.clone() };
            let first = match level {
                CompressionLevel::Auto => AUTO_RATIO_LEVEL,
                CompressionLevel::Fixed(n) => n,
            };
            let mut encoder = zstd::stream::write::Encoder::new(timed, first).map_err(write_err)?;
            let workers = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
            encoder.multithread(workers.min(MAX_ZSTD_WORKERS)).map_err(write_err)?;
            // Jobs of 2 MiB (one window) instead of the default 8 MiB: ~4 MiB of memory per
            // worker instead of ~11, the same speed, and a ratio as good (measured on a uv cache).
            encoder
                .set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB_SIZE))
                .map_err(write_err)?;
            encoder.include_checksum(true).map_err(write_err)?;
            encoder.long_distance_matching(false).map_err(write_err)?;
            let auto = level == CompressionLevel::Auto;
            let adaptive =
                Adaptive::new(encoder, first, auto, Waits { on_out: waited, reader: reader_waited });
            let (stats, adaptive) = plan.write(adaptive, label, read_threads)?;
            let summary = adaptive.summary();
            adaptive.encoder.finish().map_err(write_err)?;
            tracing::debug!("zstd levels used (level: input MiB): {summary}");
            Ok(stats)
        }
        Compression::Gzip => {
            let level = match level {
                CompressionLevel::Auto => 6,
                CompressionLevel::Fixed(n) => n.clamp(0, 9) as u32,
            };
            let encoder = flate2::write::GzEncoder::new(out, flate2::Compression::new(level));
            let (stats, encoder) = plan.write(encoder, label, read_threads)?;
            encoder.finish().map_err(write_err)?;
            Ok(stats)
        }
    }
}

/// The level [`CompressionLevel::Auto`] uses while the destination is the limit.
const AUTO_RATIO_LEVEL: i32 = 3;
/// The level [`CompressionLevel::Auto`] uses while the packer is the limit: the fastest level
/// whose archives stay within 15 % of level 3's on real caches (docs/performance.md).
const AUTO_SPEED_LEVEL: i32 = 1;
/// Above this share of a window's time blocked writing to the destination, or below this share
/// of it with the reader waiting for the packer, the destination is the limit: level 3.
const LINK_BOUND: f64 = 0.30;
/// Above this share of a window's time with the reader waiting for the packer, the packer is the
/// limit: level 1.
const PACKER_BOUND: f64 = 0.50;

/// The destination, timed: how long writes to it blocked (the upload was behind).
struct Timed<'a> {
    inner: &'a mut dyn Write,
    waited: Rc<Cell<Duration>>,
}

impl Write for Timed<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let started = Instant::now();
        let n = self.inner.write(buf);
        self.waited.set(self.waited.get() + started.elapsed());
        n
    }

    fn flush(&mut self) -> io::Result<()> {
        let started = Instant::now();
        let done = self.inner.flush();
        self.waited.set(self.waited.get() + started.elapsed());
        done
    }
}

/// Where the time of the packer's destination goes.
struct Waits<'a> {
    /// Time the packer spent blocked writing to the destination.
    on_out: Rc<Cell<Duration>>,
    /// Time the destination's reader spent waiting for the packer.
    reader: &'a dyn Fn() -> Duration,
}

impl Waits<'_> {
    fn now(&self) -> (Instant, Duration, Duration) {
        (Instant::now(), self.on_out.get(), (self.reader)())
    }
}

/// The zstd encoder, with its level re-decided every [`ADAPT_WINDOW`] bytes of input when the
/// level is automatic: the shares of that window's time the packer spent blocked on the
/// destination and the destination's reader spent waiting for the packer tell which side is
/// the limit. A multi-threaded zstd applies a new level from its next job on, in the same
/// frame, so the archive stays one ordinary frame any `zstd -d` reads.
struct Adaptive<'a> {
    encoder: zstd::stream::write::Encoder<'static, Timed<'a>>,
    level: i32,
    auto: bool,
    waits: Waits<'a>,
    window_start: (Instant, Duration, Duration),
    window_bytes: u64,
    /// Input bytes per level used, for the debug log.
    used: Vec<(i32, u64)>,
}

impl<'a> Adaptive<'a> {
    fn new(
        encoder: zstd::stream::write::Encoder<'static, Timed<'a>>,
        level: i32,
        auto: bool,
        waits: Waits<'a>,
    ) -> Self {
        let window_start = waits.now();
        Adaptive { encoder, level, auto, waits, window_start, window_bytes: 0, used: vec![(level, 0)] }
    }

    /// Ends a window: picks the level for the next one.
    fn decide(&mut self) -> io::Result<()> {
        let (started, on_out_before, reader_before) = self.window_start;
        let elapsed = started.elapsed().as_secs_f64().max(1e-9);
        let on_out = (self.waits.on_out.get().saturating_sub(on_out_before)).as_secs_f64() / elapsed;
        let reader = ((self.waits.reader)().saturating_sub(reader_before)).as_secs_f64() / elapsed;
        let next = if on_out > LINK_BOUND || reader < LINK_BOUND {
            AUTO_RATIO_LEVEL
        } else if reader > PACKER_BOUND {
            AUTO_SPEED_LEVEL
        } else {
            self.level
        };
        if next != self.level {
            self.encoder.set_parameter(zstd::stream::raw::CParameter::CompressionLevel(next))?;
            self.level = next;
            self.used.push((next, 0));
        }
        self.window_start = self.waits.now();
        self.window_bytes = 0;
        Ok(())
    }

    fn summary(&self) -> String {
        let parts: Vec<String> =
            self.used.iter().map(|(level, bytes)| format!("{level}: {}", bytes >> 20)).collect();
        parts.join(", ")
    }
}

impl Write for Adaptive<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.encoder.write(buf)?;
        if let Some(last) = self.used.last_mut() {
            last.1 += n as u64;
        }
        self.window_bytes += n as u64;
        if self.auto && self.window_bytes >= ADAPT_WINDOW {
            self.decide()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.encoder.flush()
    }
}

/// The validated request: the archive name as bytes and the extras grouped by directory.
struct Plan<'a> {
    root: &'a Path,
    name: Vec<u8>,
    skip: &'a HashSet<PathBuf>,
    /// Extra files by parent directory (relative to root), then by file name.
    extra: HashMap<PathBuf, HashMap<OsString, &'a [u8]>>,
    comment: Option<&'a str>,
    now: SystemTime,
}

impl<'a> Plan<'a> {
    fn new(spec: &'a PackSpec) -> Result<Self, ArchiveError> {
        let bad = |reason: String| ArchiveError::BadSpec { root: spec.root.to_path_buf(), reason };
        let meta = fs::metadata(spec.root).map_err(|source| ArchiveError::Io {
            op: "read",
            path: spec.root.to_path_buf(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(bad("it is not a directory".into()));
        }
        let name = spec.name.trim_end_matches('/');
        if name.is_empty() || name.starts_with('/') {
            return Err(bad(format!(
                "the archive name {:?} must be relative to the workspace (see name_relative_to)",
                spec.name
            )));
        }
        let mut extra: HashMap<PathBuf, HashMap<OsString, &[u8]>> = HashMap::new();
        for (path, contents) in spec.extra {
            let normal = path.components().all(|c| matches!(c, Component::Normal(_)));
            let (Some(parent), Some(file)) = (path.parent(), path.file_name()) else {
                return Err(bad(format!("the extra file {} has no file name", path.display())));
            };
            if !normal {
                return Err(bad(format!(
                    "the extra file {} must be a plain relative path below the root",
                    path.display()
                )));
            }
            extra.entry(parent.to_path_buf()).or_default().insert(file.to_os_string(), contents);
        }
        Ok(Plan {
            root: spec.root,
            name: name.as_bytes().to_vec(),
            skip: spec.skip,
            extra,
            comment: spec.comment,
            now: SystemTime::now(),
        })
    }

    fn write<W: Write>(
        mut self,
        out: W,
        label: &'static str,
        read_threads: usize,
    ) -> Result<(PackStats, W), ArchiveError> {
        let mut tar = TarWriter {
            out: BufWriter::with_capacity(1 << 20, out),
            written: 0,
            label,
            stats: PackStats::default(),
            links: HashMap::new(),
        };
        let root_meta = fs::metadata(self.root).map_err(|source| ArchiveError::Io {
            op: "read",
            path: self.root.to_path_buf(),
            source,
        })?;
        tar.directory(&self.name, &root_meta, self.comment.map_or(&b""[..], str::as_bytes))?;
        std::thread::scope(|scope| {
            let pool = ReadPool::start(scope, read_threads, self.root)?;
            let mut walk = Walk { skip: self.skip, extra: &mut self.extra, stack: Vec::new(), now: self.now };
            walk.enter(self.root.to_path_buf(), PathBuf::new(), self.name.clone())?;
            write_ahead(walk, pool, &mut tar)
        })?;
        self.remaining_extras(&mut tar)?;
        tar.finish()
    }

    /// Extras whose directory was not met in the walk (missing on disk, or skipped): written
    /// after the walk, with their missing parent directories.
    fn remaining_extras<W: Write>(&mut self, tar: &mut TarWriter<W>) -> Result<(), ArchiveError> {
        let mut files: Vec<(PathBuf, &[u8])> = Vec::new();
        for (dir, group) in self.extra.drain() {
            files.extend(group.into_iter().map(|(file, contents)| (dir.join(file), contents)));
        }
        files.sort_unstable_by(|a, b| a.0.as_os_str().as_bytes().cmp(b.0.as_os_str().as_bytes()));
        let mut made = BTreeSet::new();
        for (rel, contents) in files {
            let mut dir = PathBuf::new();
            for part in rel.parent().into_iter().flat_map(Path::components) {
                dir.push(part);
                if made.insert(dir.clone()) {
                    tar.synthetic_directory(&self.archive_name(&dir), self.now)?;
                }
            }
            tar.extra(&self.archive_name(&rel), contents, self.now)?;
        }
        Ok(())
    }

    fn archive_name(&self, rel: &Path) -> Vec<u8> {
        let mut name = self.name.clone();
        name.push(b'/');
        name.extend_from_slice(rel.as_os_str().as_bytes());
        name
    }
}

/// Writes the walk's entries in order while the pool reads the small files among the next ones.
/// The walk runs ahead of the writing only as far as the pool has room; an error of the walk
/// is queued as the entry it stopped at, so errors come out in archive order.
fn write_ahead<W: Write>(
    mut walk: Walk<'_, '_>,
    mut pool: ReadPool<'_>,
    tar: &mut TarWriter<W>,
) -> Result<(), ArchiveError> {
    let mut queue: VecDeque<Result<(Item<'_>, Option<Ticket>), ArchiveError>> = VecDeque::new();
    // Files with several links already submitted: a later name of one is a hard link entry.
    let mut linked: HashSet<(u64, u64)> = HashSet::new();
    let mut walked = false;
    loop {
        while !walked && pool.has_room(queue.len()) {
            match walk.next() {
                None => walked = true,
                Some(Err(e)) => {
                    queue.push_back(Err(e));
                    walked = true;
                }
                Some(Ok(item)) => {
                    let ticket = match &item {
                        Item::File { path, meta, .. }
                            if pool.wants(meta.len())
                                && (meta.nlink() == 1 || linked.insert((meta.dev(), meta.ino()))) =>
                        {
                            Some(pool.submit(path.clone(), meta.len()))
                        }
                        _ => None,
                    };
                    queue.push_back(Ok((item, ticket)));
                }
            }
        }
        let Some(next) = queue.pop_front() else { return Ok(()) };
        let (item, ticket) = next?;
        let ahead = ticket.map(|ticket| pool.take(ticket));
        match item {
            Item::Directory { name, meta } => tar.directory(&name, &meta, b"")?,
            Item::File { name, path, meta } => tar.file(&name, &path, &meta, ahead)?,
            Item::Symlink { name, target, meta } => {
                tar.symlink(&name, target.as_os_str().as_bytes(), &meta)?
            }
            Item::Extra { name, contents } => tar.extra(&name, contents, walk.now)?,
        }
    }
}

/// One entry of the archive, as the walk met it.
enum Item<'a> {
    Directory { name: Vec<u8>, meta: Metadata },
    File { name: Vec<u8>, path: PathBuf, meta: Metadata },
    Symlink { name: Vec<u8>, target: PathBuf, meta: Metadata },
    Extra { name: Vec<u8>, contents: &'a [u8] },
}

/// The tree in archive order, one entry at a time: depth first, each directory's entries sorted
/// bytewise, the extras in place of (or beside) what is on disk, the skipped paths left out.
struct Walk<'p, 'a> {
    skip: &'a HashSet<PathBuf>,
    /// The extras not yet placed, by parent directory (see [`Plan`]).
    extra: &'p mut HashMap<PathBuf, HashMap<OsString, &'a [u8]>>,
    /// The directories being listed, innermost last: one listing per level of depth.
    stack: Vec<Listing<'a>>,
    /// The mtime of the extras.
    now: SystemTime,
}

/// One directory's entries still to come.
struct Listing<'a> {
    /// Its path below root, and its name in the archive.
    rel: PathBuf,
    name: Vec<u8>,
    children: std::vec::IntoIter<(OsString, Option<fs::DirEntry>)>,
    extras: HashMap<OsString, &'a [u8]>,
}

impl<'a> Walk<'_, 'a> {
    /// Lists directory `dir` (`rel` below root, archived as `name`): its entries come next.
    fn enter(&mut self, dir: PathBuf, rel: PathBuf, name: Vec<u8>) -> Result<(), ArchiveError> {
        let read_err = |source| ArchiveError::Io { op: "list", path: dir.clone(), source };
        let mut children: Vec<(OsString, Option<fs::DirEntry>)> = Vec::new();
        for entry in fs::read_dir(&dir).map_err(read_err)? {
            let entry = entry.map_err(read_err)?;
            children.push((entry.file_name(), Some(entry)));
        }
        let extras = self.extra.remove(&rel).unwrap_or_default();
        for file in extras.keys() {
            if !children.iter().any(|(n, _)| n == file) {
                children.push((file.clone(), None));
            }
        }
        children.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        self.stack.push(Listing { rel, name, children: children.into_iter(), extras });
        Ok(())
    }

    /// The next entry; `None` at the end, and after an error.
    fn next(&mut self) -> Option<Result<Item<'a>, ArchiveError>> {
        loop {
            let level = self.stack.last_mut()?;
            let Some((file, entry)) = level.children.next() else {
                self.stack.pop();
                continue;
            };
            let mut name = level.name.clone();
            name.push(b'/');
            name.extend_from_slice(file.as_bytes());
            if let Some(&contents) = level.extras.get(&file) {
                return Some(Ok(Item::Extra { name, contents }));
            }
            let rel = level.rel.join(&file);
            let Some(entry) = entry.filter(|_| !self.skip.contains(&rel)) else { continue };
            match self.child(entry, rel, name) {
                Ok(Some(item)) => return Some(Ok(item)),
                Ok(None) => {}
                Err(e) => {
                    self.stack.clear();
                    return Some(Err(e));
                }
            }
        }
    }

    /// The entry for one child on disk; `None` for what is left out (vanished, special files).
    fn child(
        &mut self,
        entry: fs::DirEntry,
        rel: PathBuf,
        name: Vec<u8>,
    ) -> Result<Option<Item<'a>>, ArchiveError> {
        let path = entry.path();
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::debug!("{} vanished while archiving; left out", path.display());
                return Ok(None);
            }
            Err(source) => return Err(ArchiveError::Io { op: "read", path, source }),
        };
        let kind = meta.file_type();
        if kind.is_dir() {
            self.enter(path, rel, name.clone())?;
            Ok(Some(Item::Directory { name, meta }))
        } else if kind.is_file() {
            Ok(Some(Item::File { name, path, meta }))
        } else if kind.is_symlink() {
            match fs::read_link(&path) {
                Ok(target) => Ok(Some(Item::Symlink { name, target, meta })),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(ArchiveError::Io { op: "read the link", path, source }),
            }
        } else {
            let what = if kind.is_fifo() {
                "fifo"
            } else if kind.is_socket() {
                "socket"
            } else {
                "device"
            };
            tracing::debug!("{} is a {what}; left out of the archive", path.display());
            Ok(None)
        }
    }
}

/// Where a regular file's data comes from.
enum Body {
    /// The open file, streamed.
    Disk(File),
    /// Its contents read ahead by the pool, or the error that stopped the read.
    Read(io::Result<Vec<u8>>),
}

/// One entry's header fields.
struct Entry<'n> {
    name: &'n [u8],
    kind: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: (i64, u32),
    link: &'n [u8],
    /// A PAX `comment` record's value; empty for none.
    comment: &'n [u8],
}

struct TarWriter<W: Write> {
    out: BufWriter<W>,
    written: u64,
    label: &'static str,
    stats: PackStats,
    /// (device, inode) of files with several links, and the name they were archived under.
    links: HashMap<(u64, u64), Vec<u8>>,
}

impl<W: Write> TarWriter<W> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), ArchiveError> {
        self.written += bytes.len() as u64;
        self.out.write_all(bytes).map_err(|source| ArchiveError::Write { compression: self.label, source })
    }

    fn pad(&mut self) -> Result<(), ArchiveError> {
        let partial = (self.written % BLOCK as u64) as usize;
        if partial != 0 {
            self.put(&[0u8; BLOCK][..BLOCK - partial])?;
        }
        Ok(())
    }

    /// A directory entry; `comment` is a PAX `comment` record's value (empty for none: only the
    /// root has one).
    fn directory(&mut self, name: &[u8], meta: &Metadata, comment: &[u8]) -> Result<(), ArchiveError> {
        let mut dir_name = name.to_vec();
        dir_name.push(b'/');
        let entry =
            Entry { name: &dir_name, kind: b'5', size: 0, link: b"", comment, ..from_meta(name, meta) };
        self.header(&entry)
    }

    fn synthetic_directory(&mut self, name: &[u8], now: SystemTime) -> Result<(), ArchiveError> {
        let mut dir_name = name.to_vec();
        dir_name.push(b'/');
        let entry = Entry {
            name: &dir_name,
            kind: b'5',
            mode: 0o755,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: unix_time(now),
            link: b"",
            comment: b"",
        };
        self.header(&entry)
    }

    fn symlink(&mut self, name: &[u8], target: &[u8], meta: &Metadata) -> Result<(), ArchiveError> {
        let entry = Entry { kind: b'2', mode: 0o777, size: 0, link: target, ..from_meta(name, meta) };
        self.header(&entry)
    }

    fn extra(&mut self, name: &[u8], contents: &[u8], now: SystemTime) -> Result<(), ArchiveError> {
        let entry = Entry {
            name,
            kind: b'0',
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: contents.len() as u64,
            mtime: unix_time(now),
            link: b"",
            comment: b"",
        };
        self.header(&entry)?;
        self.put(contents)?;
        self.stats.bytes += contents.len() as u64;
        self.pad()
    }

    /// A regular file, from its contents read ahead when there are some, else from disk.
    fn file(
        &mut self,
        name: &[u8],
        path: &Path,
        meta: &Metadata,
        ahead: Option<ReadAhead>,
    ) -> Result<(), ArchiveError> {
        if meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key) {
                let first = first.clone();
                let entry = Entry { kind: b'1', size: 0, link: &first, ..from_meta(name, meta) };
                return self.header(&entry);
            }
        }
        let opened = match ahead {
            None => File::open(path).map(Body::Disk),
            Some(ReadAhead::Unopened(e)) => Err(e),
            Some(ReadAhead::Read(contents)) => Ok(Body::Read(contents)),
        };
        let body = match opened {
            Ok(body) => body,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::debug!("{} vanished while archiving; left out", path.display());
                return Ok(());
            }
            Err(source) => return Err(ArchiveError::Io { op: "open", path: path.to_path_buf(), source }),
        };
        if meta.nlink() > 1 {
            self.links.insert((meta.dev(), meta.ino()), name.to_vec());
        }
        let size = meta.len();
        self.header(&Entry { kind: b'0', size, link: b"", ..from_meta(name, meta) })?;
        let copied = match body {
            Body::Disk(mut file) => io::copy(&mut (&mut file).take(size), &mut self.out),
            Body::Read(contents) => {
                contents.and_then(|data| self.out.write_all(&data).map(|()| data.len() as u64))
            }
        }
        .map_err(|source| ArchiveError::Io { op: "read", path: path.to_path_buf(), source })?;
        self.written += copied;
        if copied < size {
            // As GNU tar does: the header already promised `size` bytes.
            tracing::warn!("{} shrank while archiving; padded with zeros", path.display());
            let mut missing = size - copied;
            while missing > 0 {
                let n = missing.min(BLOCK as u64) as usize;
                self.put(&[0u8; BLOCK][..n])?;
                missing -= n as u64;
            }
        }
        self.stats.bytes += size;
        self.pad()
    }

    /// Writes the PAX header when needed, then the ustar header.
    fn header(&mut self, entry: &Entry) -> Result<(), ArchiveError> {
        self.stats.entries += 1;
        let mut block = [0u8; BLOCK];
        let mut pax: Vec<u8> = Vec::new();

        match split_name(entry.name) {
            Some((prefix, name)) => {
                block[345..345 + prefix.len()].copy_from_slice(prefix);
                block[..name.len()].copy_from_slice(name);
            }
            None => {
                pax_record(&mut pax, "path", entry.name);
                let cut = entry.name.len().min(100);
                block[..cut].copy_from_slice(&entry.name[..cut]);
            }
        }
        if entry.link.len() > 100 {
            pax_record(&mut pax, "linkpath", entry.link);
            block[157..257].copy_from_slice(&entry.link[..100]);
        } else {
            block[157..157 + entry.link.len()].copy_from_slice(entry.link);
        }
        // Times before 1970 are stored as 1970 (ustar fields are unsigned).
        let (secs, nanos) = if entry.mtime.0 < 0 { (0, 0) } else { entry.mtime };
        if nanos != 0 {
            let frac = format!("{nanos:09}");
            let value = format!("{secs}.{}", frac.trim_end_matches('0'));
            pax_record(&mut pax, "mtime", value.as_bytes());
        }
        if entry.size > USTAR_MAX_SIZE {
            pax_record(&mut pax, "size", entry.size.to_string().as_bytes());
        }
        if !entry.comment.is_empty() {
            pax_record(&mut pax, "comment", entry.comment);
        }

        octal(&mut block[100..108], u64::from(entry.mode & 0o7777));
        numeric(&mut block[108..116], entry.uid);
        numeric(&mut block[116..124], entry.gid);
        numeric(&mut block[124..136], entry.size);
        octal(&mut block[136..148], secs as u64);
        block[156] = entry.kind;
        block[257..265].copy_from_slice(b"ustar\x0000");
        octal(&mut block[329..337], 0);
        octal(&mut block[337..345], 0);

        if !pax.is_empty() {
            let mut pax_block = [0u8; BLOCK];
            let base = entry.name.trim_ascii_end().strip_suffix(b"/").unwrap_or(entry.name);
            let base = base.rsplit(|&b| b == b'/').next().unwrap_or(base);
            let mut pax_name = b"PaxHeaders/".to_vec();
            pax_name.extend_from_slice(base);
            pax_name.truncate(100);
            pax_block[..pax_name.len()].copy_from_slice(&pax_name);
            octal(&mut pax_block[100..108], 0o644);
            octal(&mut pax_block[108..116], 0);
            octal(&mut pax_block[116..124], 0);
            octal(&mut pax_block[124..136], pax.len() as u64);
            octal(&mut pax_block[136..148], secs as u64);
            pax_block[156] = b'x';
            pax_block[257..265].copy_from_slice(b"ustar\x0000");
            checksum(&mut pax_block);
            self.put(&pax_block)?;
            self.put(&pax)?;
            self.pad()?;
        }
        checksum(&mut block);
        self.put(&block)
    }

    /// The end-of-archive marker (two zero blocks), padded to a whole record.
    fn finish(mut self) -> Result<(PackStats, W), ArchiveError> {
        self.put(&[0u8; 2 * BLOCK])?;
        let partial = self.written % RECORD;
        if partial != 0 {
            self.put(&vec![0u8; (RECORD - partial) as usize])?;
        }
        let label = self.label;
        let out = self
            .out
            .into_inner()
            .map_err(|e| ArchiveError::Write { compression: label, source: e.into_error() })?;
        Ok((self.stats, out))
    }
}

fn from_meta<'n>(name: &'n [u8], meta: &Metadata) -> Entry<'n> {
    Entry {
        name,
        kind: b'0',
        mode: meta.mode(),
        uid: u64::from(meta.uid()),
        gid: u64::from(meta.gid()),
        size: 0,
        mtime: (meta.mtime(), meta.mtime_nsec().clamp(0, 999_999_999) as u32),
        link: b"",
        comment: b"",
    }
}

fn unix_time(t: SystemTime) -> (i64, u32) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(_) => (0, 0),
    }
}

/// Splits a name into the ustar `prefix` (≤ 155 bytes) and `name` (≤ 100 bytes) fields, or
/// `None` when it needs a PAX `path` record.
fn split_name(name: &[u8]) -> Option<(&[u8], &[u8])> {
    if name.len() <= 100 {
        return Some((b"", name));
    }
    if name.len() > 256 {
        return None;
    }
    // The prefix ends at a '/' that leaves a non-empty name of at most 100 bytes.
    (name.len() - 101..=155.min(name.len() - 2))
        .find(|&i| name[i] == b'/')
        .map(|i| (&name[..i], &name[i + 1..]))
}

/// Appends one PAX record, `"<len> <key>=<value>\n"`, where `<len>` counts the whole record.
fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let body = key.len() + value.len() + 3;
    let mut len = body + 1;
    while body + len.to_string().len() != len {
        len = body + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// A zero-padded octal number followed by NUL, filling `field`.
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&text.as_bytes()[text.len() - digits..]);
    field[digits] = 0;
}

/// Octal when it fits, else GNU base-256 (read by GNU tar and the tar crate).
fn numeric(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    if value < 1u64 << (3 * digits) {
        octal(field, value);
    } else {
        field.fill(0);
        let n = field.len();
        field[n - 8..].copy_from_slice(&value.to_be_bytes());
        field[0] |= 0x80;
    }
}

fn checksum(block: &mut [u8; BLOCK]) {
    block[148..156].fill(b' ');
    let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
    let text = format!("{sum:06o}\0 ");
    block[148..156].copy_from_slice(text.as_bytes());
}
