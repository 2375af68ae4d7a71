//! `ACTIONS_CACHE_MODE` (Forgejo and GHES runners: `read`, `write-only`, `none`) applied once,
//! around whichever backend runs, so no backend and no path through the flows can read or
//! write past it. The flows still check the mode first to say so early and skip the packing;
//! this wrapper is what makes it hold everywhere (the idea of sccache's `cache/readonly.rs`).

use std::io::Read;

use super::{ArchiveFile, Backend, BackendError, Hit, Saved};

/// What the runner's `ACTIONS_CACHE_MODE` allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheMode {
    pub read: bool,
    pub write: bool,
}

impl CacheMode {
    pub const READ_WRITE: CacheMode = CacheMode { read: true, write: true };
}

/// `backend` as it is, when `mode` allows everything; else wrapped so that lookups find
/// nothing when reading is not allowed and saves are refused when writing is not.
pub fn limit(backend: Box<dyn Backend>, mode: CacheMode) -> Box<dyn Backend> {
    if mode == CacheMode::READ_WRITE { backend } else { Box::new(Limited { inner: backend, mode }) }
}

struct Limited {
    inner: Box<dyn Backend>,
    mode: CacheMode,
}

impl Backend for Limited {
    fn name(&self) -> String {
        let limit = match (self.mode.read, self.mode.write) {
            (true, false) => "read-only",
            (false, true) => "write-only",
            _ => "no access",
        };
        format!("{}, {limit}", self.inner.name())
    }

    fn lookup(&self, keys: &[String], version: &str) -> Result<Option<Hit>, BackendError> {
        if !self.mode.read {
            return Ok(None);
        }
        self.inner.lookup(keys, version)
    }

    fn download(&self, hit: &Hit) -> Result<Box<dyn Read + Send>, BackendError> {
        self.inner.download(hit)
    }

    fn verifies_integrity(&self) -> bool {
        self.inner.verifies_integrity()
    }

    fn save(&self, key: &str, version: &str, archive: &ArchiveFile) -> Result<Saved, BackendError> {
        if !self.mode.write {
            archive.abandon();
            return Err(BackendError::Denied {
                op: "save",
                message: "ACTIONS_CACHE_MODE does not allow writing the cache".into(),
            });
        }
        self.inner.save(key, version, archive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::local::LocalBackend;

    #[test]
    fn the_mode_limits_any_backend() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a");
        std::fs::write(&archive, b"bytes").unwrap();
        let keys = vec!["k".to_string()];
        let scope = crate::backend::scope::Scope::from_env(&|_| None);
        let local =
            || Box::new(LocalBackend::new(dir.path().join("store"), scope.clone())) as Box<dyn Backend>;

        let write_only = limit(local(), CacheMode { read: false, write: true });
        assert_eq!(write_only.save_file("k", "v", &archive).unwrap(), Saved::Stored);
        assert!(write_only.lookup(&keys, "v").unwrap().is_none(), "write-only reads nothing");
        assert!(write_only.name().ends_with("write-only"));

        let read_only = limit(local(), CacheMode { read: true, write: false });
        assert!(read_only.lookup(&keys, "v").unwrap().is_some(), "what was written is there");
        let error = read_only.save_file("k2", "v", &archive).unwrap_err();
        assert!(matches!(error, BackendError::Denied { .. }), "{error:?}");
        assert!(local().lookup(&["k2".to_string()], "v").unwrap().is_none(), "nothing was written");
        assert_eq!(limit(local(), CacheMode::READ_WRITE).name(), local().name());
    }
}
