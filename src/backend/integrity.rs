//! Integrity at rest for the stores the action owns (`local`, `s3`): each entry records its
//! archive's sha256 when it is saved, and a restore checks it while the bytes stream in, so a
//! damaged or altered entry is refused before anything of it is moved into place.
//!
//! [`Verifying`] hashes what passes through it and, at the end of the stream, compares; on a
//! mismatch it runs the store's disposal (quarantine, delete) once and fails every later read
//! with [`BackendError::Integrity`], which the restore flow turns into a warning and a miss.

use std::fs::File;
use std::io::{self, Read};

use sha2::{Digest, Sha256};

use super::{ArchiveFile, BackendError};

/// The sha256 of an archive, lower-case hex, read while the packer still writes it, so that a
/// save that uploads while packing has the digest as soon as the last byte is written.
pub fn sha256_of_archive(archive: &ArchiveFile) -> Result<String, BackendError> {
    const STEP: u64 = 4 << 20;
    let failed = |source| BackendError::Io { op: "save", path: archive.path().to_path_buf(), source };
    let mut file = File::open(archive.path()).map_err(failed)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut hashed = 0u64;
    loop {
        let written = archive.wait_for(hashed.saturating_add(STEP))?;
        while hashed < written.bytes {
            let n = buf.len().min(usize::try_from(written.bytes - hashed).unwrap_or(usize::MAX));
            file.read_exact(&mut buf[..n]).map_err(failed)?;
            hasher.update(&buf[..n]);
            hashed += n as u64;
        }
        if written.complete {
            return Ok(hex::encode(hasher.finalize()));
        }
    }
}

/// Whether `text` is a sha256 as recorded: 64 lower-case hex digits.
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// What the store did with a refused entry, said in the warning.
pub type Disposal = Box<dyn FnOnce() -> String + Send>;

/// A download checked against the sha256 recorded for `entry`.
pub struct Verifying<R> {
    inner: R,
    hasher: Sha256,
    recorded: String,
    entry: String,
    dispose: Option<Disposal>,
    /// Set once the stream ended: `Some` with the refusal, `None` while reading.
    verdict: Option<Result<(), String>>,
}

impl<R: Read> Verifying<R> {
    /// `entry` names the entry for the warning; `dispose` removes it from use on a mismatch.
    pub fn new(inner: R, recorded: String, entry: String, dispose: Disposal) -> Self {
        Verifying { inner, hasher: Sha256::new(), recorded, entry, dispose: Some(dispose), verdict: None }
    }

    fn refusal(&self, actual: &str, disposal: &str) -> BackendError {
        BackendError::Integrity {
            entry: self.entry.clone(),
            recorded: self.recorded.clone(),
            actual: actual.to_string(),
            disposal: disposal.to_string(),
        }
    }
}

impl<R: Read> Read for Verifying<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.verdict {
            Some(Ok(())) => return Ok(0),
            Some(Err(message)) => return Err(io::Error::new(io::ErrorKind::InvalidData, message.clone())),
            None => {}
        }
        let n = self.inner.read(buf)?;
        if n > 0 || buf.is_empty() {
            self.hasher.update(&buf[..n]);
            return Ok(n);
        }
        let actual = hex::encode(std::mem::take(&mut self.hasher).finalize());
        if actual == self.recorded {
            self.verdict = Some(Ok(()));
            return Ok(0);
        }
        let disposal = self.dispose.take().map(|dispose| dispose()).unwrap_or_default();
        let refused = self.refusal(&actual, &disposal);
        self.verdict = Some(Err(refused.to_string()));
        Err(io::Error::new(io::ErrorKind::InvalidData, refused))
    }
}

/// The integrity refusal carried by `error`, if it is one (as the first or a later read
/// returned it, possibly wrapped by the archive reader).
pub fn refusal(error: &io::Error) -> Option<String> {
    let inner = error.get_ref()?;
    match inner.downcast_ref::<BackendError>() {
        Some(refused @ BackendError::Integrity { .. }) => Some(refused.to_string()),
        _ => inner.to_string().contains(REFUSED_MARK).then(|| inner.to_string()),
    }
}

/// A phrase every integrity refusal carries, so a refusal is known also from its text.
pub const REFUSED_MARK: &str = "does not match the sha256 recorded when it was saved";

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn read_all(reader: &mut impl Read) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        reader.read_to_end(&mut out).map(|_| out)
    }

    #[test]
    fn an_archive_is_hashed_while_it_grows() {
        let dir = tempfile::tempdir().unwrap();
        let archive = ArchiveFile::create_in(dir.path()).unwrap();
        let bytes: Vec<u8> = (0..(9u32 << 20)).map(|i| (i % 251) as u8).collect();
        let digest = std::thread::scope(|s| {
            let hashing = s.spawn(|| sha256_of_archive(&archive));
            let mut writer = archive.writer();
            for piece in bytes.chunks(1 << 20) {
                io::Write::write_all(&mut writer, piece).unwrap();
            }
            archive.finish().unwrap();
            hashing.join().unwrap().unwrap()
        });
        assert_eq!(digest, hex::encode(Sha256::digest(&bytes)));
    }

    #[test]
    fn the_recorded_digest_passes_and_any_other_is_refused_once_disposed() {
        let bytes = b"an archive".to_vec();
        let recorded = hex::encode(Sha256::digest(&bytes));
        assert!(is_sha256(&recorded));
        let mut good = Verifying::new(&bytes[..], recorded.clone(), "k".into(), Box::new(String::new));
        assert_eq!(read_all(&mut good).unwrap(), bytes);

        let disposed = Arc::new(AtomicUsize::new(0));
        let counter = disposed.clone();
        let dispose: Disposal = Box::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            "moved aside".into()
        });
        let tampered = b"an archivE".to_vec();
        let mut bad = Verifying::new(&tampered[..], recorded, "uv-Linux-abc".into(), dispose);
        let error = read_all(&mut bad).unwrap_err();
        let message = refusal(&error).expect("an integrity refusal");
        assert!(message.contains("uv-Linux-abc") && message.contains("moved aside"), "{message}");
        let again = read_all(&mut bad).unwrap_err();
        assert!(refusal(&again).is_some(), "every later read is refused too");
        assert_eq!(disposed.load(Ordering::SeqCst), 1, "disposed of once");
    }
}
