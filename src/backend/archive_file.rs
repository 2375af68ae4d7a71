//! The archive a save hands to a backend: a file that may still be growing.
//!
//! Why this exists: packing a large tree takes seconds of compression, and so does uploading
//! it. The save flow packs into an [`ArchiveFile`] on one thread while the backend reads the
//! parts already written on others, so that a protocol able to take an archive in pieces of
//! unknown total (v2's Put Block) uploads while the packer compresses. A protocol that needs
//! the size first (v1's reserve, the local store) simply waits for the end.
//!
//! The packer appends through [`ArchiveFile::writer`] and ends with [`finish`] or [`fail`];
//! readers block in [`wait_for`] until the bytes they want are on disk. A backend that no
//! longer needs the archive (another job holds the key, the upload failed) calls [`abandon`],
//! after which the packer's next write fails, so it stops early instead of compressing for
//! nothing. Readers open the file by its path and read what [`wait_for`] reported as written:
//! those bytes are in the file (page cache) before the count is published under the lock.
//!
//! [`finish`]: ArchiveFile::finish
//! [`fail`]: ArchiveFile::fail
//! [`wait_for`]: ArchiveFile::wait_for
//! [`abandon`]: ArchiveFile::abandon

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// An archive file, complete or still being written.
pub struct ArchiveFile {
    path: PathBuf,
    /// Deletes the file when dropped, for archives made by [`ArchiveFile::create_in`].
    _temp: Option<tempfile::TempPath>,
    /// The file as the packer writes it.
    file: Option<File>,
    progress: Mutex<Progress>,
    changed: Condvar,
}

#[derive(Debug)]
struct Progress {
    written: u64,
    end: End,
    /// Time readers of a growing archive spent blocked in `wait_for` (not counting waits for
    /// the whole archive): how far the packer is behind a streaming upload.
    readers_waited: Duration,
}

#[derive(Debug, PartialEq)]
enum End {
    Growing,
    Complete,
    Failed(String),
    Abandoned,
}

/// What [`ArchiveFile::wait_for`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Bytes in the file so far.
    pub bytes: u64,
    /// The archive is complete: `bytes` is its size.
    pub complete: bool,
}

/// Why the archive will never be complete.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Unfinished {
    #[error("packing the archive failed: {0}")]
    Failed(String),
    #[error("the archive was abandoned before it was complete")]
    Abandoned,
}

impl ArchiveFile {
    /// A new, empty archive file in `dir`, deleted when this value is dropped.
    pub fn create_in(dir: &Path) -> io::Result<ArchiveFile> {
        let temp = tempfile::Builder::new().prefix("uv-nox-cache-").suffix(".archive").tempfile_in(dir)?;
        let (file, temp) = temp.into_parts();
        Ok(ArchiveFile {
            path: temp.to_path_buf(),
            _temp: Some(temp),
            file: Some(file),
            progress: Mutex::new(Progress { written: 0, end: End::Growing, readers_waited: Duration::ZERO }),
            changed: Condvar::new(),
        })
    }

    /// An archive that already exists whole at `path` (left in place when dropped).
    pub fn complete(path: &Path) -> io::Result<ArchiveFile> {
        let size = std::fs::metadata(path)?.len();
        Ok(ArchiveFile {
            path: path.to_path_buf(),
            _temp: None,
            file: None,
            progress: Mutex::new(Progress {
                written: size,
                end: End::Complete,
                readers_waited: Duration::ZERO,
            }),
            changed: Condvar::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends to the archive; every write is visible to readers once it returns. Writes fail
    /// once the archive is abandoned. Wrap it in a `BufWriter`: each write takes a lock.
    pub fn writer(&self) -> ArchiveWriter<'_> {
        ArchiveWriter { archive: self }
    }

    /// The packer is done: the archive is complete. Returns its size, or why it will never be
    /// complete (it was abandoned first).
    pub fn finish(&self) -> Result<u64, Unfinished> {
        self.end(End::Complete);
        self.wait_until_complete()
    }

    /// The packer failed: the archive will never be complete.
    pub fn fail(&self, why: impl Into<String>) {
        self.end(End::Failed(why.into()));
    }

    /// The backend no longer needs the archive; the packer's next write fails. No effect on a
    /// complete archive.
    pub fn abandon(&self) {
        self.end(End::Abandoned);
    }

    /// Blocks until at least `bytes` bytes are written or the archive is complete.
    pub fn wait_for(&self, bytes: u64) -> Result<Written, Unfinished> {
        let mut progress = self.lock();
        loop {
            match &progress.end {
                End::Complete => return Ok(Written { bytes: progress.written, complete: true }),
                End::Failed(why) => return Err(Unfinished::Failed(why.clone())),
                End::Abandoned => return Err(Unfinished::Abandoned),
                End::Growing if progress.written >= bytes => {
                    return Ok(Written { bytes: progress.written, complete: false });
                }
                End::Growing => {
                    let started = Instant::now();
                    progress = self.changed.wait(progress).unwrap_or_else(|e| e.into_inner());
                    if bytes != u64::MAX {
                        progress.readers_waited += started.elapsed();
                    }
                }
            }
        }
    }

    /// The total time readers have spent waiting in [`wait_for`](Self::wait_for) for bytes not
    /// yet written (waits for the whole archive not counted): the packer's pace for a streaming
    /// upload.
    pub fn readers_waited(&self) -> Duration {
        self.lock().readers_waited
    }

    /// Blocks until the archive is complete; returns its size.
    pub fn wait_until_complete(&self) -> Result<u64, Unfinished> {
        self.wait_for(u64::MAX).map(|written| written.bytes)
    }

    fn end(&self, end: End) {
        let mut progress = self.lock();
        if progress.end == End::Growing {
            progress.end = end;
            self.changed.notify_all();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The packer's end of an [`ArchiveFile`].
pub struct ArchiveWriter<'a> {
    archive: &'a ArchiveFile,
}

impl Write for ArchiveWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let archive = self.archive;
        if archive.lock().end != End::Growing {
            return Err(io::Error::other("the archive is no longer wanted (the upload has ended)"));
        }
        let Some(mut file) = archive.file.as_ref() else {
            return Err(io::Error::other("the archive is already complete"));
        };
        let n = file.write(buf)?;
        let mut progress = archive.lock();
        progress.written += n as u64;
        archive.changed.notify_all();
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn readers_see_what_was_written_and_wait_for_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let archive = ArchiveFile::create_in(dir.path()).unwrap();
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let first = archive.wait_for(3).unwrap();
                assert!(first.bytes >= 3);
                let mut head = [0u8; 3];
                File::open(archive.path()).unwrap().read_exact(&mut head).unwrap();
                assert_eq!(&head, b"abc");
                archive.wait_until_complete().unwrap()
            });
            archive.writer().write_all(b"abc").unwrap();
            archive.writer().write_all(b"defg").unwrap();
            assert_eq!(archive.finish().unwrap(), 7);
            assert_eq!(reader.join().unwrap(), 7);
        });
        assert_eq!(std::fs::read(archive.path()).unwrap(), b"abcdefg");
        let path = archive.path().to_path_buf();
        drop(archive);
        assert!(!path.exists(), "a temporary archive is deleted with its value");
    }

    #[test]
    fn failing_or_abandoning_ends_the_waits_and_the_writes() {
        let dir = tempfile::tempdir().unwrap();
        let failed = ArchiveFile::create_in(dir.path()).unwrap();
        failed.writer().write_all(b"x").unwrap();
        failed.fail("disk full");
        assert!(matches!(failed.wait_for(2), Err(Unfinished::Failed(why)) if why == "disk full"));
        assert_eq!(failed.wait_for(1).unwrap_err().to_string(), "packing the archive failed: disk full");

        let abandoned = ArchiveFile::create_in(dir.path()).unwrap();
        abandoned.abandon();
        assert!(abandoned.writer().write_all(b"x").is_err(), "the packer stops at its next write");
        assert!(matches!(abandoned.wait_until_complete(), Err(Unfinished::Abandoned)));
        assert!(matches!(abandoned.finish(), Err(Unfinished::Abandoned)), "the first end wins");

        let path = dir.path().join("whole");
        std::fs::write(&path, b"12345").unwrap();
        let whole = ArchiveFile::complete(&path).unwrap();
        assert_eq!(whole.wait_for(1).unwrap(), Written { bytes: 5, complete: true });
        whole.abandon();
        assert_eq!(whole.wait_until_complete().unwrap(), 5, "a complete archive stays complete");
        drop(whole);
        assert!(path.exists(), "an existing archive is left in place");
    }
}
