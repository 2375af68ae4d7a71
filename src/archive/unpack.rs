//! Reading: decompress, parse and check an archive on the calling thread, create its files on a
//! writer thread (small files on a pool of threads, `file_pool.rs`), re-rooted into a new
//! directory.
//!
//! The split follows what makes `zstd -d | tar -x` fast: decompression and file creation overlap.
//! The reader validates names (re-rooting, `..`, absolute names, limits) and sends plain
//! operations with paths relative to `dest`; the writer owns the file system side, including the
//! one check that needs it: no path may pass through a symlink. It keeps the set of directories
//! it made (or verified) as real directories; since directories are never removed, a path whose
//! parent is in that set cannot traverse a symlink, and any other parent is checked component by
//! component with `lstat`, which also catches case-insensitive file systems where `A` and `a`
//! name the same symlink.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, File, FileTimes, OpenOptions, Permissions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tar::EntryType;

use super::file_pool::{self, FilePool, Job};
use super::{ArchiveError, UnpackLimits, UnpackStats};

/// File data travels to the writer in pieces of at most this size.
const CHUNK: u64 = 128 << 10;
/// Operations in flight between reader and writer; with `CHUNK` this bounds the buffers to
/// ~16 MiB. Depth matters more than piece size: on 100 000 small files 16 operations in flight
/// made a restore ~40% slower than 32, 128 of 256 KiB was 5–10% faster than 32 of 1 MiB, and
/// 128 of 128 KiB about as fast with less memory (docs/performance.md).
const CHANNEL_DEPTH: usize = 128;
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Extracts into `dest`, which must not exist yet; see the module documentation for the rules.
pub fn unpack(input: &mut dyn Read, dest: &Path, limits: &UnpackLimits) -> Result<UnpackStats, ArchiveError> {
    unpack_noting(input, dest, limits, &|_| {})
}

/// [`unpack`], telling `on_comment` the root's PAX `comment` as soon as it is read (the first
/// header), while the rest of the archive is still to come.
pub fn unpack_noting(
    input: &mut dyn Read,
    dest: &Path,
    limits: &UnpackLimits,
    on_comment: &dyn Fn(&str),
) -> Result<UnpackStats, ArchiveError> {
    unpack_with(input, dest, limits, on_comment, file_pool::threads())
}

/// [`unpack`] with `threads` threads creating small files (0: the writer thread creates them
/// all itself). For tests and benchmarks, which must reach both ways whatever the machine.
pub fn unpack_with_threads(
    input: &mut dyn Read,
    dest: &Path,
    limits: &UnpackLimits,
    threads: usize,
) -> Result<UnpackStats, ArchiveError> {
    unpack_with(input, dest, limits, &|_| {}, threads)
}

fn unpack_with(
    input: &mut dyn Read,
    dest: &Path,
    limits: &UnpackLimits,
    on_comment: &dyn Fn(&str),
    threads: usize,
) -> Result<UnpackStats, ArchiveError> {
    if fs::symlink_metadata(dest).is_ok() {
        return Err(ArchiveError::DestExists { path: dest.to_path_buf() });
    }
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|source| ArchiveError::Io {
            op: "create the directory",
            path: parent.to_path_buf(),
            source,
        })?;
    }
    fs::create_dir(dest).map_err(|source| match source.kind() {
        io::ErrorKind::AlreadyExists => ArchiveError::DestExists { path: dest.to_path_buf() },
        _ => ArchiveError::Io { op: "create the directory", path: dest.to_path_buf(), source },
    })?;

    let umask = current_umask();
    std::thread::scope(|scope| {
        let (tx, rx) = sync_channel(CHANNEL_DEPTH);
        // Written buffers go back to the reader; at most CHANNEL_DEPTH + 3 ever exist.
        let (spare_tx, spare) = channel();
        let worker = std::thread::Builder::new()
            .name("unpack-writer".into())
            .spawn_scoped(scope, move || {
                std::thread::scope(|files| {
                    let pool = match threads {
                        0 => None,
                        n => Some(FilePool::start(files, n, (dest, umask), &spare_tx)?),
                    };
                    Writer::new(dest, umask, pool).run(rx, spare_tx)
                })
            })
            .map_err(|source| ArchiveError::Io {
                op: "start a writer thread for",
                path: dest.to_path_buf(),
                source,
            })?;
        let read = read_archive(input, limits, tx, &spare, on_comment);
        let written = worker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        match (read, written) {
            (Ok(stats), Ok(())) => Ok(stats),
            (Err(Stop::Failed(e)), _) | (_, Err(e)) => Err(e),
            (Err(Stop::WriterGone), Ok(())) => unreachable!("the writer stops early only on an error"),
        }
    })
}

/// Why the reader stopped early.
enum Stop {
    Failed(ArchiveError),
    /// The writer hung up; its own error says why.
    WriterGone,
}

impl From<ArchiveError> for Stop {
    fn from(e: ArchiveError) -> Self {
        Stop::Failed(e)
    }
}

/// One file system operation; paths are relative to `dest`, `/`-separated, already validated.
enum Op {
    Dir {
        rel: Vec<u8>,
        mode: u32,
        mtime: Option<SystemTime>,
    },
    /// A regular file's first piece of data; `last` when it is also the final one.
    File {
        rel: Vec<u8>,
        mode: u32,
        mtime: Option<SystemTime>,
        data: Piece,
        last: bool,
    },
    /// More data for the file opened by the preceding `File`.
    Chunk {
        data: Piece,
        last: bool,
    },
    Symlink {
        rel: Vec<u8>,
        target: Vec<u8>,
    },
    HardLink {
        rel: Vec<u8>,
        target: Vec<u8>,
    },
    /// The archive ended well: apply directory modes and mtimes.
    Done,
}

/// File data: the first `len` bytes of a buffer of `CHUNK` bytes. The writer hands each buffer
/// back once written, and the reader fills it again: a buffer is allocated (and zeroed) once,
/// not once per file, which on 100 000 small files was a good part of the reader's time.
struct Piece {
    buf: Vec<u8>,
    len: usize,
}

impl Piece {
    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Reads the next `n` (at most `CHUNK`) bytes of an entry into a buffer from `spare`.
fn read_piece(entry: &mut impl Read, n: usize, spare: &Receiver<Vec<u8>>) -> io::Result<Piece> {
    let mut buf = spare.try_recv().unwrap_or_else(|_| vec![0u8; CHUNK as usize]);
    entry.read_exact(&mut buf[..n]).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            io::Error::new(io::ErrorKind::UnexpectedEof, "the file's data ends early")
        } else {
            e
        }
    })?;
    Ok(Piece { buf, len: n })
}

fn send(tx: &SyncSender<Op>, op: Op) -> Result<(), Stop> {
    tx.send(op).map_err(|_| Stop::WriterGone)
}

/// A decompressing reader, and the count of compressed bytes it has read so far (which the
/// size caps follow).
type Decompressor<'a> = (Box<dyn Read + 'a>, Rc<Cell<u64>>);

/// The decompressing reader for `input`, chosen by its first bytes (zstd or gzip).
fn decompressor<'a>(input: &'a mut dyn Read) -> Result<Decompressor<'a>, Stop> {
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < magic.len() {
        match input.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(corrupt(None, e).into()),
        }
    }
    let consumed = Rc::new(Cell::new(got as u64));
    let head =
        io::Cursor::new(magic).take(got as u64).chain(Counted { inner: input, count: consumed.clone() });
    let decoder: Box<dyn Read + '_> = if got == 4 && magic == ZSTD_MAGIC {
        let mut decoder = zstd::stream::read::Decoder::new(head).map_err(|e| corrupt(None, e))?;
        decoder.window_log_max(31).map_err(|e| corrupt(None, e))?;
        Box::new(decoder)
    } else if got >= 2 && magic[..2] == GZIP_MAGIC {
        Box::new(flate2::read::MultiGzDecoder::new(head))
    } else {
        let magic = magic[..got].iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ");
        let magic = if magic.is_empty() { "nothing: it is empty".to_string() } else { magic };
        return Err(ArchiveError::UnknownFormat { magic }.into());
    };
    Ok((decoder, consumed))
}

/// The most file data the archive may hold after `consumed` compressed bytes were read.
fn byte_limit(limits: &UnpackLimits, consumed: u64) -> u64 {
    match limits.max_ratio {
        0 => limits.max_bytes,
        ratio => limits.max_bytes.min(consumed.saturating_mul(ratio).max(limits.ratio_floor)),
    }
}

/// Hands a regular file's `size` bytes to the writer (`tx`, which hands buffers back through
/// `spare`), in pieces of at most `CHUNK`.
fn send_file(
    entry: &mut impl Read,
    rel: Vec<u8>,
    (mode, mtime): (u32, Option<SystemTime>),
    size: u64,
    name: &str,
    (tx, spare): (&SyncSender<Op>, &Receiver<Vec<u8>>),
) -> Result<(), Stop> {
    let mut remaining = size;
    let mut first = Some(rel);
    loop {
        let n = remaining.min(CHUNK);
        let data = read_piece(entry, n as usize, spare).map_err(|e| corrupt(Some(name), e))?;
        remaining -= n;
        let last = remaining == 0;
        let op = match first.take() {
            Some(rel) => Op::File { rel, mode, mtime, data, last },
            None => Op::Chunk { data, last },
        };
        send(tx, op)?;
        if last {
            return Ok(());
        }
    }
}

fn read_archive(
    input: &mut dyn Read,
    limits: &UnpackLimits,
    tx: SyncSender<Op>,
    spare: &Receiver<Vec<u8>>,
    on_comment: &dyn Fn(&str),
) -> Result<UnpackStats, Stop> {
    let (decoder, consumed) = decompressor(input)?;
    // The tar crate reads GNU long names and PAX extensions whole into memory before handing
    // over the entry they describe, so the ratio cap also applies to the decompressed stream.
    let decoder = Expansion { inner: decoder, out: 0, consumed: consumed.clone(), limits };
    let mut archive = tar::Archive::new(BufReader::with_capacity(256 << 10, decoder));
    let mut stats = UnpackStats::default();
    let mut seen_entries = 0u64;
    let mut seen_bytes = 0u64;
    let mut root: Option<Vec<u8>> = None;
    let mut last_name: Option<String> = None;
    for entry in archive.entries().map_err(|e| corrupt(None, e))? {
        let mut entry = entry.map_err(|e| corrupt(last_name.as_deref(), e))?;
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            continue;
        }
        seen_entries += 1;
        if seen_entries > limits.max_entries {
            return Err(ArchiveError::TooManyEntries { limit: limits.max_entries }.into());
        }
        let raw_name = entry.path_bytes().into_owned();
        let name = clip_name(&raw_name);
        let unsafe_entry = |reason: &str| ArchiveError::Unsafe { name: name.clone(), reason: reason.into() };
        let trimmed = trim_slashes(&raw_name);
        let mode = entry.header().mode().map_err(|e| corrupt(Some(&name), e))?;
        if mode & 0o7000 != 0 {
            tracing::debug!("{name}: setuid, setgid and sticky bits dropped");
        }
        let mode = mode & 0o777;
        let mtime = mtime(&mut entry);

        let Some(root) = root.as_deref() else {
            if !kind.is_dir() {
                return Err(ArchiveError::RootNotDirectory { first: name }.into());
            }
            if trimmed.is_empty() || trimmed.starts_with(b"/") {
                return Err(unsafe_entry("absolute names are refused").into());
            }
            root = Some(trimmed.to_vec());
            stats.comment = pax_comment(&mut entry);
            if let Some(comment) = &stats.comment {
                on_comment(comment);
            }
            send(&tx, Op::Dir { rel: Vec::new(), mode, mtime })?;
            stats.entries += 1;
            last_name = Some(name);
            continue;
        };
        let rel = below_root(trimmed, root).map_err(|reason| unsafe_entry(&reason))?;

        match kind {
            EntryType::Directory => send(&tx, Op::Dir { rel, mode, mtime })?,
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let size = match entry.header().as_gnu().filter(|_| kind == EntryType::GNUSparse) {
                    Some(gnu) => gnu.real_size().map_err(|e| corrupt(Some(&name), e))?,
                    None => entry.size(),
                };
                seen_bytes = seen_bytes.saturating_add(size);
                let limit = byte_limit(limits, consumed.get());
                if seen_bytes > limit {
                    return Err(ArchiveError::TooManyBytes { limit, name }.into());
                }
                send_file(&mut entry, rel, (mode, mtime), size, &name, (&tx, spare))?;
                stats.bytes += size;
            }
            EntryType::Symlink => {
                let target =
                    entry.link_name_bytes().ok_or_else(|| unsafe_entry("the symlink has no target"))?;
                send(&tx, Op::Symlink { rel, target: target.into_owned() })?;
            }
            EntryType::Link => {
                let target =
                    entry.link_name_bytes().ok_or_else(|| unsafe_entry("the hard link has no target"))?;
                let target = below_root(trim_slashes(&target), root).map_err(|reason| {
                    unsafe_entry(&format!(
                        "its hard link target {:?} is refused: {reason}",
                        String::from_utf8_lossy(&target)
                    ))
                })?;
                if target.is_empty() {
                    return Err(unsafe_entry("it is a hard link to the root directory").into());
                }
                send(&tx, Op::HardLink { rel, target })?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                tracing::warn!("{name}: device and fifo entries are not restored; skipped");
                last_name = Some(name);
                continue;
            }
            other => {
                tracing::warn!("{name}: unsupported tar entry type {:?}; skipped", other.as_byte() as char);
                last_name = Some(name);
                continue;
            }
        }
        stats.entries += 1;
        last_name = Some(name);
    }
    if root.is_none() {
        return Err(ArchiveError::RootNotDirectory { first: "(none: the archive is empty)".into() }.into());
    }
    // Read to the end of the compressed stream: this verifies its checksum and catches truncation
    // that happens to fall on an entry boundary.
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(|e| corrupt(None, e))?;
    send(&tx, Op::Done)?;
    Ok(stats)
}

/// The decompressed stream, cut off once it expands more than `limits.max_ratio` allows (with
/// `ratio_floor` and 1 MiB of slack for headers): that bounds what the tar crate buffers.
struct Expansion<'a, R> {
    inner: R,
    out: u64,
    consumed: Rc<Cell<u64>>,
    limits: &'a UnpackLimits,
}

impl<R: Read> Read for Expansion<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out += n as u64;
        let ratio = self.limits.max_ratio;
        if ratio > 0 {
            let allowed = self
                .consumed
                .get()
                .saturating_mul(ratio)
                .max(self.limits.ratio_floor)
                .saturating_add(1 << 20);
            if self.out > allowed {
                return Err(io::Error::other(format!(
                    "it expands to more than {allowed} bytes, over {ratio} times its compressed size; \
                     it may be a decompression bomb"
                )));
            }
        }
        Ok(n)
    }
}

/// An entry's name for messages: lossy UTF-8, at most 300 characters.
fn clip_name(raw: &[u8]) -> String {
    let name = String::from_utf8_lossy(&raw[..raw.len().min(1200)]);
    match name.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &name[..i]),
        None if raw.len() > 1200 => format!("{name}…"),
        None => name.into_owned(),
    }
}

/// Counts the compressed bytes read, for the size cap relative to them.
struct Counted<'a> {
    inner: &'a mut dyn Read,
    count: Rc<Cell<u64>>,
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

fn corrupt(at: Option<&str>, e: io::Error) -> ArchiveError {
    ArchiveError::Corrupt { at: at.map(str::to_string), detail: e.to_string() }
}

/// The name without trailing slashes (GNU tar writes directories as `name/`).
fn trim_slashes(name: &[u8]) -> &[u8] {
    let end = name.iter().rposition(|&b| b != b'/').map_or(0, |i| i + 1);
    if end == 0 && !name.is_empty() { &name[..1] } else { &name[..end] }
}

/// `name` re-rooted: the part below `root`, normalised (no empty or `.` components), or why not.
fn below_root(name: &[u8], root: &[u8]) -> Result<Vec<u8>, String> {
    if name.starts_with(b"/") {
        return Err("absolute names are refused".into());
    }
    let rest = if name == root {
        &b""[..]
    } else if name.starts_with(root) && name[root.len()] == b'/' {
        &name[root.len() + 1..]
    } else {
        return Err(format!(
            "it is not below the archive's root directory {:?}",
            String::from_utf8_lossy(root)
        ));
    };
    let mut rel = Vec::with_capacity(rest.len());
    for part in rest.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err("it climbs out with `..`".into()),
            _ => {
                if !rel.is_empty() {
                    rel.push(b'/');
                }
                rel.extend_from_slice(part);
            }
        }
    }
    Ok(rel)
}

/// The entry's mtime, with the PAX sub-second value when present.
fn mtime<R: Read>(entry: &mut tar::Entry<R>) -> Option<SystemTime> {
    let secs = entry.header().mtime().ok();
    if let Ok(Some(extensions)) = entry.pax_extensions() {
        for extension in extensions.flatten() {
            if extension.key_bytes() == b"mtime"
                && let Some(t) = parse_pax_time(extension.value_bytes())
            {
                return Some(t);
            }
        }
    }
    secs.map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

/// The entry's PAX `comment` record, when it has one in UTF-8.
fn pax_comment<R: Read>(entry: &mut tar::Entry<R>) -> Option<String> {
    let extensions = entry.pax_extensions().ok()??;
    extensions
        .flatten()
        .find(|e| e.key_bytes() == b"comment")
        .and_then(|e| String::from_utf8(e.value_bytes().to_vec()).ok())
}

/// A PAX time, `[-]seconds[.fraction]`.
fn parse_pax_time(value: &[u8]) -> Option<SystemTime> {
    let text = std::str::from_utf8(value).ok()?;
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let secs: u64 = secs.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let offset = Duration::new(secs, digits.parse().ok()?);
    if negative { UNIX_EPOCH.checked_sub(offset) } else { UNIX_EPOCH.checked_add(offset) }
}

/// The process umask, when Linux tells it without changing it (`/proc/self/status`).
fn current_umask() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(line.trim(), 8).ok()
}

struct OpenFile {
    file: File,
    path: PathBuf,
    mode: u32,
    mtime: Option<SystemTime>,
}

/// The file system side: applies [`Op`]s below `dest`, handing whole small files to the pool
/// when there is one.
struct Writer<'d, 'p> {
    dest: &'d Path,
    pool: Option<FilePool<'p>>,
    umask: Option<u32>,
    /// Directories (relative to dest) known to be real directories reached through real
    /// directories only; `""` is dest itself.
    real_dirs: HashSet<Vec<u8>>,
    /// Directory modes and mtimes, applied at the end.
    dirs: HashMap<Vec<u8>, (u32, Option<SystemTime>)>,
    open: Option<OpenFile>,
}

impl<'d, 'p> Writer<'d, 'p> {
    fn new(dest: &'d Path, umask: Option<u32>, pool: Option<FilePool<'p>>) -> Self {
        Writer { dest, pool, umask, real_dirs: HashSet::from([Vec::new()]), dirs: HashMap::new(), open: None }
    }

    fn run(mut self, rx: Receiver<Op>, spare: Sender<Vec<u8>>) -> Result<(), ArchiveError> {
        for op in rx {
            match op {
                Op::Dir { rel, mode, mtime } => self.dir(rel, mode, mtime)?,
                Op::File { rel, mode, mtime, data, last: true } if self.pool.is_some() => {
                    self.settle(&rel)?;
                    self.ensure_dir(parent(&rel))?;
                    let job = Job { rel, mode, mtime, buf: data.buf, len: data.len };
                    self.pool.as_ref().expect("checked by the match guard").submit(job)?;
                }
                Op::File { rel, mode, mtime, data, last } => {
                    self.settle(&rel)?;
                    self.file(&rel, mode, mtime, data.bytes(), last)?;
                    let _ = spare.send(data.buf);
                }
                Op::Chunk { data, last } => {
                    self.chunk(data.bytes(), last)?;
                    let _ = spare.send(data.buf);
                }
                Op::Symlink { rel, target } => self.symlink(&rel, &target)?,
                Op::HardLink { rel, target } => self.hard_link(&rel, &target)?,
                Op::Done => {
                    if let Some(pool) = self.pool.take() {
                        pool.finish()?;
                    }
                    return self.finish_dirs();
                }
            }
        }
        // The reader stopped on an error of its own and reports it.
        Ok(())
    }

    fn path(&self, rel: &[u8]) -> PathBuf {
        dest_path(self.dest, rel)
    }

    fn io(&self, op: &'static str, rel: &[u8]) -> impl FnOnce(io::Error) -> ArchiveError {
        io_err(self.dest, op, rel)
    }

    /// Waits until no pool thread is creating `rel`, so that what happens to `rel` next happens
    /// after it, in the archive's order.
    fn settle(&self, rel: &[u8]) -> Result<(), ArchiveError> {
        match &self.pool {
            Some(pool) => pool.settle(rel),
            None => Ok(()),
        }
    }

    fn through_symlink(&self, rel: &[u8]) -> ArchiveError {
        ArchiveError::Unsafe {
            name: self.path(rel).display().to_string(),
            reason: "a later entry would be written through this symlink from the archive, which could \
                     lead outside the destination"
                .into(),
        }
    }

    /// Makes sure `rel` is a real directory reached through real directories, creating it and
    /// its parents when missing.
    fn ensure_dir(&mut self, rel: &[u8]) -> Result<(), ArchiveError> {
        if self.real_dirs.contains(rel) {
            return Ok(());
        }
        self.ensure_dir(parent(rel))?;
        self.settle(rel)?;
        let path = self.path(rel);
        match fs::create_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let meta = fs::symlink_metadata(&path).map_err(self.io("inspect", rel))?;
                if meta.file_type().is_symlink() {
                    return Err(self.through_symlink(rel));
                }
                if !meta.is_dir() {
                    return Err(self.io("create the directory", rel)(io::Error::other(
                        "a file of that name came earlier in the archive",
                    )));
                }
            }
            Err(e) => return Err(self.io("create the directory", rel)(e)),
        }
        self.real_dirs.insert(rel.to_vec());
        Ok(())
    }

    fn clear(&self, rel: &[u8], what: &'static str) -> Result<(), ArchiveError> {
        clear(self.dest, rel, what)
    }

    fn dir(&mut self, rel: Vec<u8>, mode: u32, mtime: Option<SystemTime>) -> Result<(), ArchiveError> {
        if !self.real_dirs.contains(&rel) {
            self.ensure_dir(parent(&rel))?;
            self.settle(&rel)?;
            let path = self.path(&rel);
            match fs::create_dir(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let meta = fs::symlink_metadata(&path).map_err(self.io("inspect", &rel))?;
                    if !meta.is_dir() {
                        // A later directory entry replaces an earlier file or symlink.
                        fs::remove_file(&path).map_err(self.io("replace", &rel))?;
                        fs::create_dir(&path).map_err(self.io("create the directory", &rel))?;
                    }
                }
                Err(e) => return Err(self.io("create the directory", &rel)(e)),
            }
            self.real_dirs.insert(rel.clone());
        }
        self.dirs.insert(rel, (mode, mtime));
        Ok(())
    }

    fn file(
        &mut self,
        rel: &[u8],
        mode: u32,
        mtime: Option<SystemTime>,
        data: &[u8],
        last: bool,
    ) -> Result<(), ArchiveError> {
        self.ensure_dir(parent(rel))?;
        let (file, path) = create_file(self.dest, rel, mode)?;
        self.open = Some(OpenFile { file, path, mode, mtime });
        self.chunk(data, last)
    }

    fn chunk(&mut self, data: &[u8], last: bool) -> Result<(), ArchiveError> {
        let mut open = self.open.take().expect("the reader sends a file's first piece before the others");
        open.file.write_all(data).map_err(|source| ArchiveError::Io {
            op: "write",
            path: open.path.clone(),
            source,
        })?;
        self.keep_or_close(open, last)
    }

    fn keep_or_close(&mut self, open: OpenFile, last: bool) -> Result<(), ArchiveError> {
        if last {
            return self.close(open);
        }
        self.open = Some(open);
        Ok(())
    }

    fn close(&self, open: OpenFile) -> Result<(), ArchiveError> {
        close_file(open, self.umask)
    }

    fn symlink(&mut self, rel: &[u8], target: &[u8]) -> Result<(), ArchiveError> {
        self.ensure_dir(parent(rel))?;
        self.settle(rel)?;
        let path = self.path(rel);
        let target = OsStr::from_bytes(target);
        match std::os::unix::fs::symlink(target, &path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.clear(rel, "create the symlink")?;
                std::os::unix::fs::symlink(target, &path).map_err(self.io("create the symlink", rel))
            }
            Err(e) => Err(self.io("create the symlink", rel)(e)),
        }
    }

    fn hard_link(&mut self, rel: &[u8], target: &[u8]) -> Result<(), ArchiveError> {
        self.ensure_dir(parent(rel))?;
        self.ensure_dir(parent(target))?;
        self.settle(rel)?;
        self.settle(target)?;
        let target_path = self.path(target);
        let meta = fs::symlink_metadata(&target_path).map_err(|e| {
            let detail = if e.kind() == io::ErrorKind::NotFound {
                io::Error::other(format!(
                    "its target {:?} is not among the earlier entries",
                    String::from_utf8_lossy(target)
                ))
            } else {
                e
            };
            self.io("create the hard link", rel)(detail)
        })?;
        if meta.is_dir() {
            return Err(ArchiveError::Unsafe {
                name: String::from_utf8_lossy(rel).into_owned(),
                reason: "it is a hard link to a directory".into(),
            });
        }
        if meta.file_type().is_symlink() {
            // link(2) may follow the symlink on some systems: copy the symlink instead.
            let link = fs::read_link(&target_path).map_err(self.io("read the link", target))?;
            return self.symlink(rel, link.as_os_str().as_bytes());
        }
        let path = self.path(rel);
        match fs::hard_link(&target_path, &path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.clear(rel, "create the hard link")?;
                fs::hard_link(&target_path, &path).map_err(self.io("create the hard link", rel))
            }
            Err(e) => Err(self.io("create the hard link", rel)(e)),
        }
    }

    /// Directory modes and mtimes, deepest first, once nothing more is created inside them.
    fn finish_dirs(&mut self) -> Result<(), ArchiveError> {
        let mut dirs: Vec<_> = self.dirs.drain().collect();
        dirs.sort_unstable_by(|a, b| b.0.cmp(&a.0));
        for (rel, (mode, mtime)) in dirs {
            if let Some(mtime) = mtime {
                let dir = File::open(self.path(&rel)).map_err(self.io("open", &rel))?;
                dir.set_times(FileTimes::new().set_modified(mtime))
                    .map_err(self.io("set the mtime of", &rel))?;
            }
            fs::set_permissions(self.path(&rel), Permissions::from_mode(mode))
                .map_err(self.io("set the mode of", &rel))?;
        }
        Ok(())
    }
}

/// `dest/rel`; `dest` itself for the empty `rel`.
fn dest_path(dest: &Path, rel: &[u8]) -> PathBuf {
    if rel.is_empty() { dest.to_path_buf() } else { dest.join(OsStr::from_bytes(rel)) }
}

fn io_err(dest: &Path, op: &'static str, rel: &[u8]) -> impl FnOnce(io::Error) -> ArchiveError {
    let path = dest_path(dest, rel);
    move |source| ArchiveError::Io { op, path, source }
}

/// Removes what an earlier entry left at `rel` (a file or symlink), so a later entry wins.
fn clear(dest: &Path, rel: &[u8], what: &'static str) -> Result<(), ArchiveError> {
    let path = dest_path(dest, rel);
    let meta = fs::symlink_metadata(&path).map_err(io_err(dest, "inspect", rel))?;
    if meta.is_dir() {
        return Err(io_err(dest, what, rel)(io::Error::other(
            "a directory of that name came earlier in the archive",
        )));
    }
    fs::remove_file(&path).map_err(io_err(dest, "replace", rel))
}

/// Creates the regular file `rel` (its parent is a verified real directory), replacing an
/// earlier file or symlink of that name. `O_EXCL` never follows a symlink.
fn create_file(dest: &Path, rel: &[u8], mode: u32) -> Result<(File, PathBuf), ArchiveError> {
    let path = dest_path(dest, rel);
    let create = || OpenOptions::new().write(true).create_new(true).mode(mode).open(&path);
    let file = match create() {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            clear(dest, rel, "create the file")?;
            create().map_err(io_err(dest, "create the file", rel))?
        }
        Err(e) => return Err(io_err(dest, "create the file", rel)(e)),
    };
    Ok((file, path))
}

/// Gives a written file its mode (the umask may have removed bits at creation) and mtime.
fn close_file(open: OpenFile, umask: Option<u32>) -> Result<(), ArchiveError> {
    let err = |op| {
        let path = open.path.clone();
        move |source| ArchiveError::Io { op, path, source }
    };
    if umask.is_none_or(|umask| open.mode & umask != 0) {
        open.file.set_permissions(Permissions::from_mode(open.mode)).map_err(err("set the mode of"))?;
    }
    if let Some(mtime) = open.mtime {
        open.file.set_times(FileTimes::new().set_modified(mtime)).map_err(err("set the mtime of"))?;
    }
    Ok(())
}

/// A pool thread's work: one whole small file, created, written and closed.
pub(super) fn write_whole_file(dest: &Path, umask: Option<u32>, job: &Job) -> Result<(), ArchiveError> {
    let (mut file, path) = create_file(dest, &job.rel, job.mode)?;
    file.write_all(&job.buf[..job.len]).map_err(|source| ArchiveError::Io {
        op: "write",
        path: path.clone(),
        source,
    })?;
    close_file(OpenFile { file, path, mode: job.mode, mtime: job.mtime }, umask)
}

/// The parent of a `/`-separated relative path; `""` for a top-level name.
fn parent(rel: &[u8]) -> &[u8] {
    rel.iter().rposition(|&b| b == b'/').map_or(&b""[..], |i| &rel[..i])
}
