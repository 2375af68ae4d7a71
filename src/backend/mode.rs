//! What this job may do with the cache ([`Access`]), decided once from `ACTIONS_CACHE_MODE`
//! (Forgejo and GHES runners: `read`, `write-only`, `none`) and the runner's token (GitHub hands
//! read-only ones to untrusted triggers), and applied around whichever backend runs, so no
//! backend and no path through the flows can read or write past it. The flows ask
//! [`Backend::access`] (or [`super::BackendKind::access`], before a backend is open) to say so
//! early and skip the packing; this wrapper is what makes it hold everywhere (the idea of
//! sccache's `cache/readonly.rs`).

use std::io::Read;

use super::{ArchiveFile, Backend, BackendError, Hit, Saved, Secret};
use crate::token::{self, CacheAccess};

/// What the runner's `ACTIONS_CACHE_MODE` allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheMode {
    pub read: bool,
    pub write: bool,
}

impl CacheMode {
    pub const READ_WRITE: CacheMode = CacheMode { read: true, write: true };
}

/// What the flows may do with the cache in this job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub read: bool,
    /// Why writing is not allowed; `None` when it is.
    pub no_write: Option<&'static str>,
}

impl Access {
    pub const FULL: Access = Access { read: true, no_write: None };
}

/// Why a save is refused under `ACTIONS_CACHE_MODE`.
pub const MODE_FORBIDS_WRITING: &str = "ACTIONS_CACHE_MODE does not allow writing the cache";

/// Why a save is skipped with a read-only runner token.
pub const READ_ONLY_TOKEN: &str = "the runner's cache token is read-only (GitHub gives such tokens to untrusted \
     triggers like `pull_request_target`); entries restore, but cannot be written";

/// What `mode` allows, and a runner `token` (of the runner's own cache service) that lists
/// only read scopes takes writing away.
pub fn access(mode: CacheMode, token: Option<&Secret>) -> Access {
    let read_only_token = token.is_some_and(|t| token::cache_access(t.expose()) == CacheAccess::ReadOnly);
    let no_write = if !mode.write {
        Some(MODE_FORBIDS_WRITING)
    } else if read_only_token {
        Some(READ_ONLY_TOKEN)
    } else {
        None
    };
    Access { read: mode.read, no_write }
}

/// `backend` as it is, when `access` allows everything; else wrapped so that lookups find
/// nothing when reading is not allowed and saves are refused when writing is not.
pub fn limit(backend: Box<dyn Backend>, access: Access) -> Box<dyn Backend> {
    if access == Access::FULL { backend } else { Box::new(Limited { inner: backend, access }) }
}

struct Limited {
    inner: Box<dyn Backend>,
    access: Access,
}

impl Backend for Limited {
    fn name(&self) -> String {
        let limit = match (self.access.read, self.access.no_write.is_none()) {
            (true, false) => "read-only",
            (false, true) => "write-only",
            _ => "no access",
        };
        format!("{}, {limit}", self.inner.name())
    }

    fn access(&self) -> Access {
        self.access.clone()
    }

    fn lookup(&self, keys: &[String], version: &str) -> Result<Option<Hit>, BackendError> {
        if !self.access.read {
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
        if let Some(why) = self.access.no_write {
            archive.abandon();
            return Err(BackendError::Denied { op: "save", message: why.into() });
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

        let mode = |read, write| access(CacheMode { read, write }, None);
        let write_only = limit(local(), mode(false, true));
        assert_eq!(write_only.save_file("k", "v", &archive).unwrap(), Saved::Stored);
        assert!(write_only.lookup(&keys, "v").unwrap().is_none(), "write-only reads nothing");
        assert!(write_only.name().ends_with("write-only"));

        let read_only = limit(local(), mode(true, false));
        assert!(read_only.lookup(&keys, "v").unwrap().is_some(), "what was written is there");
        let error = read_only.save_file("k2", "v", &archive).unwrap_err();
        assert!(matches!(error, BackendError::Denied { .. }), "{error:?}");
        assert!(local().lookup(&["k2".to_string()], "v").unwrap().is_none(), "nothing was written");
        assert_eq!(limit(local(), mode(true, true)).name(), local().name());
        assert_eq!(limit(local(), mode(true, true)).access(), Access::FULL);
    }

    #[test]
    fn a_read_only_runner_token_takes_writing_away() {
        let read_only = Secret(token::jwt_with_scopes(&[("refs/heads/main", 1)]));
        let writable = Secret(token::jwt_with_scopes(&[("refs/heads/main", 3)]));
        let full = CacheMode::READ_WRITE;
        assert_eq!(access(full, Some(&read_only)), Access { read: true, no_write: Some(READ_ONLY_TOKEN) });
        assert_eq!(access(full, Some(&writable)), Access::FULL);
        assert_eq!(access(full, None), Access::FULL, "no runner token: an s3 or local store");
        let read = CacheMode { read: true, write: false };
        assert_eq!(
            access(read, Some(&read_only)).no_write,
            Some(MODE_FORBIDS_WRITING),
            "the mode says so first"
        );
    }
}
