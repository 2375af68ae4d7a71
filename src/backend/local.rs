//! The local backend: a directory of archives, for laptops and self-hosted runners with a
//! persistent disk (or NFS) and no runner cache service.
//!
//! Layout: `<root>/v1/<version>/<sha256 of the lower-cased key>`. Each file starts with one
//! header line, `uv-nox-cache-entry <key>\n`, followed by the archive bytes, so a prefix lookup
//! reads only headers. Writes go to a temporary file in the same directory and are renamed into
//! place, so a concurrent reader sees the old entry or the new one, never a partial one; a
//! second save of a key replaces the first (newest wins, as on self-hosted runners).

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::transfer::io_error;
use super::{ArchiveFile, Backend, BackendError, Hit, Locator, Saved};

const HEADER_PREFIX: &str = "uv-nox-cache-entry ";
const LAYOUT: &str = "v1";

/// A found entry: its file and where the archive starts in it.
#[derive(Debug, Clone)]
struct Entry {
    path: PathBuf,
    header_len: u64,
}

pub struct LocalBackend {
    root: PathBuf,
}

impl LocalBackend {
    pub fn new(root: PathBuf) -> Self {
        LocalBackend { root }
    }

    fn version_dir(&self, version: &str) -> PathBuf {
        self.root.join(LAYOUT).join(version)
    }

    fn entry_path(&self, key: &str, version: &str) -> PathBuf {
        let digest = Sha256::digest(key.to_lowercase().as_bytes());
        self.version_dir(version).join(hex::encode(digest))
    }

    /// The key, the header length and the creation time of one stored entry.
    fn read_entry(path: &Path) -> io::Result<(String, u64, SystemTime)> {
        let file = File::open(path)?;
        let modified = file.metadata()?.modified()?;
        let mut line = String::new();
        BufReader::new(file.take(4096)).read_line(&mut line)?;
        let key = line
            .strip_prefix(HEADER_PREFIX)
            .and_then(|rest| rest.strip_suffix('\n'))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not a cache entry"))?;
        Ok((key.to_string(), line.len() as u64, modified))
    }

    fn hit(path: PathBuf, key: String, header_len: u64) -> Result<Hit, BackendError> {
        let len = fs::metadata(&path).map_err(|source| io_error("lookup", &path, source))?.len();
        let size = Some(len.saturating_sub(header_len));
        Ok(Hit { key, size, locator: Locator::new(Entry { path, header_len }) })
    }

    /// The newest entry whose key starts with `prefix` (case-insensitively).
    fn newest_with_prefix(&self, prefix: &str, version: &str) -> Result<Option<Hit>, BackendError> {
        let dir = self.version_dir(version);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(io_error("lookup", &dir, source)),
        };
        let prefix = prefix.to_lowercase();
        let mut best: Option<(SystemTime, PathBuf, String, u64)> = None;
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue; // a save in progress
            }
            let Ok((key, header_len, created)) = Self::read_entry(&path) else { continue };
            if key.to_lowercase().starts_with(&prefix) && best.as_ref().is_none_or(|b| created > b.0) {
                best = Some((created, path, key, header_len));
            }
        }
        best.map(|(_, path, key, header_len)| Self::hit(path, key, header_len)).transpose()
    }
}

impl Backend for LocalBackend {
    fn name(&self) -> String {
        format!("local ({})", self.root.display())
    }

    fn lookup(&self, keys: &[String], version: &str) -> Result<Option<Hit>, BackendError> {
        for (i, key) in keys.iter().enumerate() {
            if i == 0 {
                let path = self.entry_path(key, version);
                if let Ok((stored, header_len, _)) = Self::read_entry(&path) {
                    return Self::hit(path, stored, header_len).map(Some);
                }
            }
            if let Some(hit) = self.newest_with_prefix(key, version)? {
                return Ok(Some(hit));
            }
        }
        Ok(None)
    }

    fn download(&self, hit: &Hit) -> Result<Box<dyn Read + Send>, BackendError> {
        let Entry { path, header_len } = hit.locator::<Entry>(&self.name())?;
        let mut file = File::open(path).map_err(|source| io_error("download", path, source))?;
        file.seek(SeekFrom::Start(*header_len)).map_err(|source| io_error("download", path, source))?;
        Ok(Box::new(file))
    }

    fn save(&self, key: &str, version: &str, archive: &ArchiveFile) -> Result<Saved, BackendError> {
        archive.wait_until_complete()?;
        let archive = archive.path();
        let dir = self.version_dir(version);
        fs::create_dir_all(&dir).map_err(|source| io_error("save", &dir, source))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".saving-")
            .tempfile_in(&dir)
            .map_err(|source| io_error("save", &dir, source))?;
        let mut source = File::open(archive).map_err(|source| io_error("save", archive, source))?;
        let mut write = |tmp: &mut tempfile::NamedTempFile| -> io::Result<()> {
            tmp.write_all(format!("{HEADER_PREFIX}{key}\n").as_bytes())?;
            io::copy(&mut source, tmp)?;
            tmp.as_file().sync_all()
        };
        write(&mut tmp).map_err(|source| io_error("save", tmp.path(), source))?;
        let dest = self.entry_path(key, version);
        tmp.persist(&dest).map_err(|e| io_error("save", &dest, e.error))?;
        Ok(Saved::Stored)
    }
}
