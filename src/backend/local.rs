//! The local backend: a directory of archives, for laptops and self-hosted runners with a
//! persistent disk (or NFS) and no runner cache service.
//!
//! Layout: `<root>/v2/<repository>/<ref>/<version>/<sha256 of the lower-cased key>`, the
//! repository and ref each one escaped path component (`scope.rs` decides which refs a job
//! reads and writes). Each file starts with one header line,
//! `uv-nox-cache-entry <sha256 of the archive> <key>\n`, followed by the archive bytes, so a
//! prefix lookup reads only headers, and a download checks the archive against the recorded
//! sha256 (`integrity.rs`); an entry that fails is moved to `<root>/v2/quarantine/`. Writes go
//! to a temporary file in the same directory and are renamed into place, so a concurrent reader
//! sees the old entry or the new one, never a partial one; a second save of a key replaces the
//! first (newest wins, as on self-hosted runners). Entries of the unscoped `v1` layout are never
//! read.
//!
//! A restore records its use by setting the modification time of a sidecar,
//! `.<entry file name>.used`, as it opens the entry (one local system call, before the bytes
//! stream): the entry's own time stays its save time, which the prefix lookup orders by, and
//! an access time is left alone because every header read of a lookup would bump it. After each
//! save the store is kept within its [`Bound`] (`local-max-size`), least recently used first
//! (`housekeeping.rs`).

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::housekeeping::{self, Housekeeping, Policy, StoredEntry, Swept};
use super::integrity::{self, Verifying};
use super::scope::Scope;
use super::transfer::io_error;
use super::{ArchiveFile, Backend, BackendError, Hit, Locator, Saved};

const HEADER_PREFIX: &str = "uv-nox-cache-entry ";
const LAYOUT: &str = "v2";
const QUARANTINE: &str = "quarantine";
const USED_SUFFIX: &str = ".used";
/// The layout of earlier releases, `<root>/v1/<version>/<sha256 of the key>`: never read any more,
/// but listed and pruned, so that its bytes count against the bound and go in time.
const UNSCOPED_LAYOUT: &str = "v1";
/// What the repository of an entry of the unscoped layout is shown as.
pub const UNSCOPED: &str = "(unscoped: an earlier release's layout, never restored)";
/// The default bound: 10 GB, or a tenth of the file system, whichever is smaller
/// (docs/decisions.md).
const DEFAULT_MAX_SIZE: u64 = 10_000_000_000;
const DEFAULT_DISK_SHARE: u64 = 10;

/// How large the store may grow before a save removes the least recently used entries
/// (`local-max-size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Bound {
    /// 10 GB or a tenth of the file system holding the store, whichever is smaller.
    #[default]
    Default,
    Bytes(u64),
    /// `local-max-size: none`: never removed automatically.
    None,
}

impl Bound {
    /// The bound in bytes for a store at `root`, `None` when there is none.
    pub fn bytes(self, root: &Path) -> Option<u64> {
        match self {
            Bound::Bytes(bytes) => Some(bytes),
            Bound::None => None,
            Bound::Default => Some(
                crate::disk::total(root)
                    .map_or(DEFAULT_MAX_SIZE, |total| (total / DEFAULT_DISK_SHARE).min(DEFAULT_MAX_SIZE)),
            ),
        }
    }
}

/// A found entry's file, and the ref it was saved on.
#[derive(Debug, Clone)]
struct Entry {
    path: PathBuf,
    git_ref: String,
}

/// What an entry's header line says.
struct Header {
    key: String,
    sha256: String,
    len: u64,
}

pub struct LocalBackend {
    root: PathBuf,
    scope: Scope,
    bound: Bound,
}

impl LocalBackend {
    pub fn new(root: PathBuf, scope: Scope) -> Self {
        LocalBackend { root, scope, bound: Bound::default() }
    }

    /// The same store, kept within `bound` after each save.
    pub fn with_bound(self, bound: Bound) -> Self {
        LocalBackend { bound, ..self }
    }

    fn version_dir(&self, git_ref: &str, version: &str) -> PathBuf {
        self.root
            .join(LAYOUT)
            .join(path_component(&self.scope.repository))
            .join(path_component(git_ref))
            .join(version)
    }

    fn entry_path(&self, git_ref: &str, key: &str, version: &str) -> PathBuf {
        let digest = Sha256::digest(key.to_lowercase().as_bytes());
        self.version_dir(git_ref, version).join(hex::encode(digest))
    }

    /// The header of the entry `file` holds (read from its start).
    fn read_header(file: &mut File) -> io::Result<Header> {
        let mut line = String::new();
        BufReader::new(file.take(4096)).read_line(&mut line)?;
        let not_an_entry = || io::Error::new(io::ErrorKind::InvalidData, "not a cache entry");
        let rest = line.strip_prefix(HEADER_PREFIX).and_then(|rest| rest.strip_suffix('\n'));
        let (sha256, key) = rest.and_then(|rest| rest.split_once(' ')).ok_or_else(not_an_entry)?;
        if !integrity::is_sha256(sha256) {
            return Err(not_an_entry());
        }
        Ok(Header { key: key.to_string(), sha256: sha256.to_string(), len: line.len() as u64 })
    }

    /// The header and the creation time of one stored entry.
    fn read_entry(path: &Path) -> io::Result<(Header, SystemTime)> {
        let mut file = File::open(path)?;
        let modified = file.metadata()?.modified()?;
        Ok((Self::read_header(&mut file)?, modified))
    }

    /// Removes the least recently used entries, of any repository, until the store is within its
    /// bound; entries in use are kept (`housekeeping.rs`). Best effort: a save never fails for it.
    fn keep_within_bound(&self) {
        let Some(max_size) = self.bound.bytes(&self.root) else { return };
        let _ = self.sweep(SystemTime::now());
        let Ok(entries) = self.list() else { return };
        let policy = Policy { max_age: None, max_size: Some(max_size), ..Policy::default() };
        let (mut removed, mut bytes) = (0, 0);
        for planned in housekeeping::plan(entries, &policy, SystemTime::now()).delete {
            if self.delete(&planned.entry).unwrap_or(false) {
                removed += 1;
                bytes += planned.entry.size;
            }
        }
        if removed > 0 {
            tracing::info!(
                "the local store was over its bound of {} (`local-max-size`): removed the {removed} least \
                 recently used entries ({})",
                crate::byte_size::format(max_size),
                crate::byte_size::format(bytes)
            );
        }
    }

    fn hit(path: PathBuf, git_ref: &str, header: Header) -> Result<Hit, BackendError> {
        let len = fs::metadata(&path).map_err(|source| io_error("lookup", &path, source))?.len();
        let size = Some(len.saturating_sub(header.len));
        let git_ref = git_ref.to_string();
        Ok(Hit { key: header.key, size, locator: Locator::new(Entry { path, git_ref }) })
    }

    /// The newest entry in `dir` whose key starts with `prefix` (case-insensitively).
    fn newest_with_prefix(dir: &Path, git_ref: &str, prefix: &str) -> Result<Option<Hit>, BackendError> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(io_error("lookup", dir, source)),
        };
        let prefix = prefix.to_lowercase();
        let mut best: Option<(SystemTime, PathBuf, Header)> = None;
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue; // a save in progress
            }
            let Ok((header, created)) = Self::read_entry(&path) else { continue };
            if header.key.to_lowercase().starts_with(&prefix) && best.as_ref().is_none_or(|b| created > b.0) {
                best = Some((created, path, header));
            }
        }
        best.map(|(_, path, header)| Self::hit(path, git_ref, header)).transpose()
    }

    /// The entries of the unscoped layout below `dir` (header `uv-nox-cache-entry <key>`).
    fn list_unscoped(dir: &Path) -> Vec<StoredEntry> {
        let mut out = Vec::new();
        for (version, version_dir) in subdirectories(dir) {
            for file in fs::read_dir(&version_dir).into_iter().flatten().flatten() {
                let Ok(mut opened) = File::open(file.path()) else { continue };
                let mut line = String::new();
                let _ = BufReader::new((&mut opened).take(4096)).read_line(&mut line);
                let (Some(key), Ok(metadata)) = (line.strip_prefix(HEADER_PREFIX), opened.metadata()) else {
                    continue;
                };
                let saved_at = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                out.push(StoredEntry {
                    key: key.trim_end().to_string(),
                    repository: UNSCOPED.to_string(),
                    git_ref: String::new(),
                    version: version.clone(),
                    size: metadata.len().saturating_sub(line.len() as u64),
                    saved_at,
                    last_used: saved_at,
                    restorable: false,
                    location: file.path().display().to_string(),
                });
            }
        }
        out
    }

    /// Moves a refused entry out of every scope, into `<root>/v2/quarantine/`, unless a save
    /// replaced it meanwhile (`identity` is the device and inode that was read); says where.
    fn quarantine(root: &Path, path: &Path, identity: (u64, u64)) -> String {
        let still_there = fs::metadata(path).is_ok_and(|m| (m.dev(), m.ino()) == identity);
        if !still_there {
            return "a newer save has replaced it since".into();
        }
        let dir = root.join(LAYOUT).join(QUARANTINE);
        let stamp = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_millis();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let dest = dir.join(format!("{name}-{stamp}"));
        match fs::create_dir_all(&dir).and_then(|()| fs::rename(path, &dest)) {
            Ok(()) => format!("moved to {} (look at it, then delete it)", dest.display()),
            Err(e) => match fs::remove_file(path) {
                Ok(()) => format!("deleted (it could not be moved to {}: {e})", dir.display()),
                Err(e) => format!("it could not be removed ({e}) and is refused again on every restore"),
            },
        }
    }
}

/// The sidecar whose modification time is the last restore of the entry at `path`.
fn used_marker(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}{USED_SUFFIX}"))
}

/// Records a restore of the entry at `path` now; best effort.
fn touch_used(path: &Path) {
    let marker = used_marker(path);
    if let Ok(file) = File::options().create(true).truncate(false).write(true).open(&marker) {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// The path component `text` was written as, decoded (`path_component` backwards).
fn from_path_component(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3).and_then(|hex| u8::from_str_radix(hex, 16).ok()))
            .flatten();
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The subdirectories of `dir` with their names, none when it cannot be read.
fn subdirectories(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect()
}

/// `text` as one path component: bytes other than ASCII letters, digits, `.`, `_` and `-`
/// (and a leading `.`) written `%XX`, so `refs/heads/main` is `refs%2Fheads%2Fmain` and no
/// repository or ref can name a parent, a hidden file or another scope's directory.
fn path_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, b) in text.bytes().enumerate() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Copies into a file while hashing what was copied.
struct Hashing<'a> {
    file: &'a mut File,
    hasher: Sha256,
}

impl Write for Hashing<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Backend for LocalBackend {
    fn name(&self) -> String {
        format!("local ({})", self.root.display())
    }

    fn lookup(&self, keys: &[String], version: &str) -> Result<Option<Hit>, BackendError> {
        for git_ref in self.scope.reads() {
            for (i, key) in keys.iter().enumerate() {
                if i == 0 {
                    let path = self.entry_path(git_ref, key, version);
                    if let Ok((header, _)) = Self::read_entry(&path) {
                        return Self::hit(path, git_ref, header).map(Some);
                    }
                }
                if let Some(hit) =
                    Self::newest_with_prefix(&self.version_dir(git_ref, version), git_ref, key)?
                {
                    return Ok(Some(hit));
                }
            }
        }
        Ok(None)
    }

    fn download(&self, hit: &Hit) -> Result<Box<dyn Read + Send>, BackendError> {
        let Entry { path, git_ref } = hit.locator::<Entry>(&self.name())?;
        let failed = |source| io_error("download", path, source);
        let mut file = File::open(path).map_err(failed)?;
        let metadata = file.metadata().map_err(failed)?;
        // Open, the bytes stay readable even if a prune removes the entry now.
        touch_used(path);
        // The header again, from the file being read: a save may have replaced the entry
        // since the lookup.
        let header = Self::read_header(&mut file).map_err(failed)?;
        file.seek(SeekFrom::Start(header.len)).map_err(failed)?;
        let (root, quarantined) = (self.root.clone(), path.clone());
        let identity = (metadata.dev(), metadata.ino());
        let entry =
            format!("the entry {} of {} {git_ref} ({})", header.key, self.scope.repository, path.display());
        Ok(Box::new(Verifying::new(
            file,
            header.sha256,
            entry,
            Box::new(move || Self::quarantine(&root, &quarantined, identity)),
        )))
    }

    fn verifies_integrity(&self) -> bool {
        true
    }

    fn save(&self, key: &str, version: &str, archive: &ArchiveFile) -> Result<Saved, BackendError> {
        let git_ref = match self.scope.save_ref() {
            Ok(git_ref) => git_ref,
            Err(refused) => {
                archive.abandon();
                return Err(refused);
            }
        };
        archive.wait_until_complete()?;
        let archive = archive.path();
        let dir = self.version_dir(git_ref, version);
        fs::create_dir_all(&dir).map_err(|source| io_error("save", &dir, source))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".saving-")
            .tempfile_in(&dir)
            .map_err(|source| io_error("save", &dir, source))?;
        let mut source = File::open(archive).map_err(|source| io_error("save", archive, source))?;
        // The header names the digest before the bytes it is computed from: written as zeros,
        // then filled in.
        let mut write = |file: &mut File| -> io::Result<()> {
            file.write_all(format!("{HEADER_PREFIX}{} {key}\n", "0".repeat(64)).as_bytes())?;
            let mut hashing = Hashing { file, hasher: Sha256::new() };
            io::copy(&mut source, &mut hashing)?;
            let digest = hex::encode(hashing.hasher.finalize());
            file.seek(SeekFrom::Start(HEADER_PREFIX.len() as u64))?;
            file.write_all(digest.as_bytes())?;
            file.sync_all()
        };
        write(tmp.as_file_mut()).map_err(|source| io_error("save", tmp.path(), source))?;
        let dest = self.entry_path(git_ref, key, version);
        tmp.persist(&dest).map_err(|e| io_error("save", &dest, e.error))?;
        self.keep_within_bound();
        Ok(Saved::Stored)
    }
}

impl Housekeeping for LocalBackend {
    fn describe(&self) -> String {
        format!("the local store at {}", self.root.display())
    }

    /// Walks `<root>/v2/<repository>/<ref>/<version>/`, reading each entry's header; saves in
    /// progress (`.saving-*`), sidecars and the quarantine are not entries.
    fn list(&self) -> Result<Vec<StoredEntry>, BackendError> {
        let layout = self.root.join(LAYOUT);
        let mut out = Self::list_unscoped(&self.root.join(UNSCOPED_LAYOUT));
        match fs::metadata(&layout) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(source) => return Err(io_error("list", &layout, source)),
        }
        // A store that cannot be read is no access, not an empty store.
        fs::read_dir(&layout).map_err(|source| io_error("list", &layout, source))?;
        for (repository, repository_dir) in subdirectories(&layout) {
            if repository == QUARANTINE {
                continue;
            }
            for (git_ref, ref_dir) in subdirectories(&repository_dir) {
                for (version, version_dir) in subdirectories(&ref_dir) {
                    let Ok(files) = fs::read_dir(&version_dir) else { continue };
                    for file in files.flatten() {
                        if file.file_name().to_string_lossy().starts_with('.') {
                            continue;
                        }
                        let path = file.path();
                        let Ok((header, saved_at)) = Self::read_entry(&path) else { continue };
                        let Ok(metadata) = fs::metadata(&path) else { continue };
                        let used = fs::metadata(used_marker(&path)).and_then(|m| m.modified()).ok();
                        out.push(StoredEntry {
                            key: header.key,
                            repository: from_path_component(&repository),
                            git_ref: from_path_component(&git_ref),
                            version: version.clone(),
                            size: metadata.len().saturating_sub(header.len),
                            saved_at,
                            last_used: used.map_or(saved_at, |used| used.max(saved_at)),
                            restorable: true,
                            location: path.display().to_string(),
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    /// Unless the entry was saved again or restored since it was listed.
    fn delete(&self, entry: &StoredEntry) -> Result<bool, BackendError> {
        let path = Path::new(&entry.location);
        let failed = |source| io_error("delete", path, source);
        let saved_at = match fs::metadata(path).and_then(|m| m.modified()) {
            Ok(saved_at) => saved_at,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(source) => return Err(failed(source)),
        };
        let used = fs::metadata(used_marker(path)).and_then(|m| m.modified()).ok();
        if saved_at != entry.saved_at || used.is_some_and(|used| used > entry.last_used) {
            return Ok(false);
        }
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(source) => return Err(failed(source)),
        }
        let _ = fs::remove_file(used_marker(path));
        Ok(true)
    }

    /// `.saving-*` files no save has written to for an hour, and sidecars without an entry.
    fn sweep(&self, now: SystemTime) -> Result<Swept, BackendError> {
        let mut swept = Swept::default();
        let layout = self.root.join(LAYOUT);
        for (repository, repository_dir) in subdirectories(&layout) {
            if repository == QUARANTINE {
                continue;
            }
            for (_, ref_dir) in subdirectories(&repository_dir) {
                for (_, version_dir) in subdirectories(&ref_dir) {
                    let Ok(files) = fs::read_dir(&version_dir) else { continue };
                    for file in files.flatten() {
                        let name = file.file_name().to_string_lossy().into_owned();
                        let Ok(metadata) = file.metadata() else { continue };
                        let modified = metadata.modified().unwrap_or(now);
                        let leftover = if name.starts_with(".saving-") {
                            housekeeping::abandoned(modified, now)
                        } else if let Some(entry) =
                            name.strip_prefix('.').and_then(|n| n.strip_suffix(USED_SUFFIX))
                        {
                            !version_dir.join(entry).exists()
                        } else {
                            false
                        };
                        if leftover && fs::remove_file(file.path()).is_ok() {
                            swept.files += 1;
                            swept.bytes += metadata.len();
                        }
                    }
                }
            }
        }
        Ok(swept)
    }

    fn would_restore(
        &self,
        scope: &Scope,
        keys: &[String],
        version: &str,
    ) -> Result<Option<String>, BackendError> {
        let store = LocalBackend::new(self.root.clone(), scope.clone());
        let hit = store.lookup(keys, version)?;
        Ok(hit.and_then(|hit| housekeeping::location_of(&hit, |e: &Entry| e.path.display().to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(repository: &str, own_ref: &str, fallback_refs: &[&str]) -> Scope {
        Scope {
            repository: repository.into(),
            own_ref: own_ref.into(),
            fallback_refs: fallback_refs.iter().map(|r| r.to_string()).collect(),
            read_only_event: None,
        }
    }

    #[test]
    fn path_components_cannot_leave_their_directory() {
        assert_eq!(path_component("refs/heads/main"), "refs%2Fheads%2Fmain");
        assert_eq!(path_component("o/r.io"), "o%2Fr.io");
        assert_eq!(path_component(".."), "%2E.");
        assert_eq!(path_component(".hidden"), "%2Ehidden");
    }

    #[test]
    fn entries_are_read_in_their_scope_only_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a");
        fs::write(&archive, b"archive bytes").unwrap();
        let root = dir.path().join("store");
        let keys = vec!["k".to_string()];
        let store = |scope| LocalBackend::new(root.clone(), scope);

        let pr = store(scope("o/r", "refs/pull/7/merge", &["refs/heads/main"]));
        assert_eq!(pr.save_file("k", "v", &archive).unwrap(), Saved::Stored);
        let main = store(scope("o/r", "refs/heads/main", &[]));
        assert!(
            main.lookup(&keys, "v").unwrap().is_none(),
            "the base branch never reads a pull request's entry"
        );
        let sibling = store(scope("o/r", "refs/pull/8/merge", &["refs/heads/main"]));
        assert!(sibling.lookup(&keys, "v").unwrap().is_none(), "nor does a sibling pull request");
        let other = store(scope("o/other", "refs/pull/7/merge", &["refs/heads/main"]));
        assert!(other.lookup(&keys, "v").unwrap().is_none(), "nor another repository");

        assert_eq!(main.save_file("k", "v", &archive).unwrap(), Saved::Stored);
        assert!(sibling.lookup(&keys, "v").unwrap().is_some(), "a pull request reads its base branch");
        let hit = pr.lookup(&keys, "v").unwrap().unwrap();
        let mut bytes = Vec::new();
        pr.download(&hit).unwrap().read_to_end(&mut bytes).unwrap();
        assert_eq!(bytes, b"archive bytes");

        // A byte flipped at rest: refused, and quarantined so the next lookup misses.
        let Entry { path, .. } = hit.locator::<Entry>(&pr.name()).unwrap().clone();
        let mut stored = fs::read(&path).unwrap();
        *stored.last_mut().unwrap() ^= 1;
        fs::write(&path, stored).unwrap();
        let error = pr.download(&hit).unwrap().read_to_end(&mut Vec::new()).unwrap_err();
        let refused = integrity::refusal(&error).expect("an integrity refusal");
        assert!(
            refused.contains("entry k of o/r refs/pull/7/merge") && refused.contains("quarantine"),
            "{refused}"
        );
        assert!(!path.exists());
        let after = pr.lookup(&keys, "v").unwrap().unwrap();
        assert_ne!(
            after.locator::<Entry>(&pr.name()).unwrap().path,
            path,
            "main's entry, not the refused one"
        );
    }
}
