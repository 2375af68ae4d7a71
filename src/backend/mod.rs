//! The cache services behind one small trait, so the restore and save flows never see HTTP,
//! protocol versions or directory layouts.
//!
//! Which backend runs is decided once, in `config.rs`, and turned into a `Box<dyn Backend>` by
//! [`open`]. A miss is `Ok(None)` and someone else holding the key is [`Saved::AlreadyExists`]:
//! neither is an error.

pub mod archive_file;
pub mod artifact_cache;
pub mod aws_credentials;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod github;
pub mod health;
pub mod housekeeping;
pub mod http;
pub mod integrity;
pub mod local;
pub mod mode;
pub mod pace;
pub mod s3;
pub mod scope;
pub mod transfer;
pub mod upload_pace;
mod xml;

pub use archive_file::ArchiveFile;
pub use health::Health;
pub use http::Tuning;
pub use mode::{Access, CacheMode};

use std::any::Any;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A value that must never reach a log: the runtime token or a signed URL.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where the bytes of a found entry can be read from, in the terms of the backend that found
/// it (a signed URL, a file, an object key): only that backend reads it, so the flows carry it
/// from `lookup` to `download` without knowing what is inside.
#[derive(Clone)]
pub struct Locator(Arc<dyn Any + Send + Sync>);

impl Locator {
    pub fn new<T: Any + Send + Sync>(value: T) -> Locator {
        Locator(Arc::new(value))
    }

    /// The value, if it is a `T`.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }
}

impl fmt::Debug for Locator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Locator(..)")
    }
}

/// An entry found by [`Backend::lookup`].
#[derive(Debug, Clone)]
pub struct Hit {
    /// The key the entry was stored under (as the service reports it; may be lower-cased).
    pub key: String,
    /// The archive's size in bytes, when the service tells it.
    pub size: Option<u64>,
    pub locator: Locator,
}

impl Hit {
    /// The locator as the backend `backend` made it; a hit of another backend is an error.
    pub(crate) fn locator<T: Any>(&self, backend: &str) -> Result<&T, BackendError> {
        self.locator.get().ok_or_else(|| BackendError::ForeignHit { backend: backend.to_string() })
    }
}

/// The outcome of a save that did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    Stored,
    /// Another job saved this key first (or the service refused a second write); the message
    /// is the service's own words.
    AlreadyExists(String),
}

/// What went wrong talking to a cache service. Every variant becomes a warning and a miss (or
/// a skipped save) in the flows; none fails the job.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{op}: the cache service answered {status}: {body}")]
    Status { op: &'static str, status: u16, body: String },
    #[error("{op}: could not reach {host}: {message}")]
    Transport { op: &'static str, host: String, message: String },
    #[error("{op}: unreadable answer ({message}): {body}")]
    Decode { op: &'static str, body: String, message: String },
    #[error("{op}: rate limited by the cache service{}", retry_after.map(|d| format!(" (retry after {} s)", d.as_secs())).unwrap_or_default())]
    RateLimited { op: &'static str, retry_after: Option<Duration> },
    /// The service refused by policy: `cache read/write denied:` (a read-only token), or
    /// `ACTIONS_CACHE_MODE`. A notice, not trouble.
    #[error("{op}: {message}")]
    Denied { op: &'static str, message: String },
    /// The credentials were refused (a wrong key, an expired session token): trouble.
    #[error("{op}: {message}")]
    Unauthorized { op: &'static str, message: String },
    #[error("{op}: the signed URL was refused (expired?)")]
    Expired { op: &'static str },
    /// The service refuses an archive of this size (v1 reserve answered 400).
    #[error("{op}: the cache service refused an archive of {size} bytes as too big: {message}")]
    TooBig { op: &'static str, size: u64, message: String },
    /// A v1 reserve or commit refused with a status that means neither "taken" (409) nor "too
    /// big" (400): on the runners' own servers, a misconfiguration rather than a race.
    #[error("{op}: the cache service refused the save with {status}: {message}. {cause}")]
    Refused { op: &'static str, status: u16, message: String, cause: &'static str },
    /// The service answered but declined (v2 `ok:false` on finalize, an empty archive).
    #[error("{op}: the cache service declined: {message}")]
    Rejected { op: &'static str, message: String },
    #[error("{op}: gave up after the `timeout` input's deadline")]
    TimedOut { op: &'static str },
    /// The request that made the verdict of `health.rs`: the service is down for this job.
    #[error(
        "{op}: the cache service at {host} {why}; not using it again in this job (lookups are misses, \
         saves are skipped) — {}",
        health::FIX
    )]
    Down { op: &'static str, host: String, why: String },
    /// Not tried: the service was found down earlier in this job (told once, as [`BackendError::Down`]).
    #[error("{op}: not tried, the cache service at {host} is down for this job")]
    SkippedDown { op: &'static str, host: String },
    #[error("{op}: {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    /// No usable S3 credentials or bucket address.
    #[error("s3: {message}")]
    Credentials { message: String },
    /// A hit handed to another backend than the one that found it (a bug in the caller).
    #[error("download: the entry was not found by the {backend} backend")]
    ForeignHit { backend: String },
    /// A stored entry's archive is not the one saved (`integrity.rs`): refused, and removed
    /// from use as `disposal` says. The text must keep [`integrity::REFUSED_MARK`].
    #[error(
        "{entry}: the archive does not match the sha256 recorded when it was saved \
         (recorded {recorded}, read {actual}); it was damaged or altered in the store, so it is refused: {disposal}"
    )]
    Integrity { entry: String, recorded: String, actual: String, disposal: String },
    /// The upload would take longer than the job has run (`upload_pace.rs`): given up.
    #[error("save: {0}")]
    TooSlowToSave(#[from] upload_pace::TooSlowToSave),
    /// The archive being uploaded was never completed (packing failed or was stopped).
    #[error("save: {0}")]
    Unfinished(#[from] archive_file::Unfinished),
}

/// One cache service.
pub trait Backend: Send + Sync {
    /// A short name for logs: `github (v2)`, `artifactcache (v1)`, `local`.
    fn name(&self) -> String;
    /// What this job may do with it ([`mode::access`]): everything, unless [`open`] limited it.
    fn access(&self) -> Access {
        Access::FULL
    }
    /// The first entry matching `keys` in order — exact key, then newest prefix match — and
    /// carrying exactly `version`. Keys compare case-insensitively. `Ok(None)` is a miss.
    fn lookup(&self, keys: &[String], version: &str) -> Result<Option<Hit>, BackendError>;
    /// A stream of the entry's archive bytes. Errors while reading surface as `io::Error`s.
    fn download(&self, hit: &Hit) -> Result<Box<dyn Read + Send>, BackendError>;
    /// Stores the archive under `key` + `version`. The archive may still be growing: a backend
    /// that needs its size waits for it to be complete, one that can take it in pieces starts
    /// while it grows (see `archive_file.rs`).
    fn save(&self, key: &str, version: &str, archive: &ArchiveFile) -> Result<Saved, BackendError>;

    /// Whether [`Backend::download`] checks the entry's recorded sha256 at the end of the
    /// stream (`integrity.rs`), so the restore reads every entry to its end.
    fn verifies_integrity(&self) -> bool {
        false
    }

    /// [`Backend::save`] of an archive file that is already complete.
    fn save_file(&self, key: &str, version: &str, archive: &Path) -> Result<Saved, BackendError> {
        let archive = ArchiveFile::complete(archive).map_err(|source| BackendError::Io {
            op: "save",
            path: archive.into(),
            source,
        })?;
        self.save(key, version, &archive)
    }
}

/// Which service to talk to, as decided by `config.rs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendKind {
    /// `_apis/artifactcache` (GHES, Forgejo, Gitea, act); `url` is `ACTIONS_CACHE_URL`.
    ArtifactCache { url: String, token: Secret, reservation: artifact_cache::Reservation },
    /// Twirp + blob (github.com); `url` is `ACTIONS_RESULTS_URL`.
    Github { url: String, token: Secret },
    /// A directory store, read and written in `scope`, kept within `bound` after each save.
    Local { root: PathBuf, scope: scope::Scope, bound: local::Bound },
    /// An S3-compatible bucket.
    S3(Box<s3::S3Settings>),
}

impl BackendKind {
    /// What the job may do with this service under `mode` (`ACTIONS_CACHE_MODE`): the runner's
    /// own services also take writing away from a read-only runner token.
    pub fn access(&self, mode: CacheMode) -> Access {
        let token = match self {
            BackendKind::ArtifactCache { token, .. } | BackendKind::Github { token, .. } => Some(token),
            BackendKind::Local { .. } | BackendKind::S3(_) => None,
        };
        mode::access(mode, token)
    }
}

/// Opens the backend, limited to what [`BackendKind::access`] allows; every request it makes
/// gives up at `deadline`. `tuning` is `Tuning::default()` except under the integration tests
/// (`test_tuning.rs`), for every backend.
pub fn open(kind: &BackendKind, mode: CacheMode, deadline: Instant, tuning: Tuning) -> Box<dyn Backend> {
    let health = tuning.health.clone();
    let guarded = health::Guarded { inner: open_unlimited(kind, deadline, tuning), health };
    mode::limit(Box::new(guarded), kind.access(mode))
}

fn open_unlimited(kind: &BackendKind, deadline: Instant, tuning: Tuning) -> Box<dyn Backend> {
    match kind {
        BackendKind::Local { root, scope, bound } => {
            Box::new(local::LocalBackend::new(root.clone(), scope.clone()).with_bound(*bound))
        }
        BackendKind::ArtifactCache { url, token, reservation } => Box::new(
            artifact_cache::ArtifactCacheBackend::new(url, token.clone(), *reservation, deadline, tuning),
        ),
        BackendKind::Github { url, token } => {
            Box::new(github::GithubBackend::new(url, token.clone(), deadline, tuning))
        }
        // S3 keeps its parts at least 5 MiB whatever the tuning says.
        BackendKind::S3(settings) => Box::new(s3::S3Backend::new((**settings).clone(), deadline, tuning)),
    }
}
