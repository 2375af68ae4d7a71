//! The job's verdict on the cache service, so a dead or hung service costs seconds instead of
//! every request's retries and timeouts, for every target, in the restore and again in the save.
//!
//! A *silence* is a request that got nothing back from a host: the connection was refused, the
//! name did not resolve, TLS failed or the connect timed out; the host accepted the connection
//! but did not answer within the answer timeout; or a transfer moved no byte for the idle
//! timeout. The first silence of a host is retried once (it may be a restart or a blip); the
//! second, from any request of the step, makes the verdict: the service is *down* for the rest of
//! the step, and every later request of every target fails at once without touching the network.
//! The restore step hands the verdict to the post step through the step state ([`STATE`]), so
//! the save does not try either. 5xx answers and resets are not silences: they are retried, but
//! the whole step spends at most the retry budget waiting between attempts ([`Health::may_wait`]).
//!
//! One warning tells the verdict: the first caller to meet it gets [`BackendError::Down`] (the
//! host, what happened and the fix), every later one [`BackendError::SkippedDown`], which the
//! report shows as a plain line. Only the host (and port) of a URL is ever named: never its path,
//! query or a token.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::{Backend, BackendError, Hit, Saved};

/// The step state that carries the verdict from the restore step to the post step: the host
/// and what happened, separated by a tab.
pub const STATE: &str = "CACHE_DOWN";

/// What one host's silence was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Silence {
    /// Refused, unresolvable, failed TLS or did not accept within the connect timeout.
    Unreachable,
    /// Accepted the connection, then sent no answer within the answer timeout.
    NoAnswer,
    /// Stopped sending (or taking) bytes mid-transfer for the idle timeout.
    Stalled,
}

/// The verdict, once made: the host that went silent and what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Down {
    pub host: String,
    pub why: String,
}

impl fmt::Display for Down {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.host, self.why)
    }
}

/// The verdict of one step, shared by every client opened with the same [`super::Tuning`].
/// A fresh one (`Default`) knows of no trouble.
#[derive(Debug, Clone, Default)]
pub struct Health(Arc<Mutex<State>>);

#[derive(Debug, Default)]
struct State {
    silences: BTreeMap<String, u32>,
    down: Option<Down>,
    /// Whether a caller was already handed the verdict's [`BackendError::Down`].
    told: bool,
    /// Time spent (or about to be spent) waiting between attempts in this step.
    waited: Duration,
}

/// How many silences of one host make the verdict: the first is retried once.
const SILENCES_TO_DOWN: u32 = 2;

impl Health {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The verdict, if the service is down.
    pub fn down(&self) -> Option<Down> {
        self.lock().down.clone()
    }

    /// `Err` when the service is down: [`BackendError::Down`] to the first caller that meets the
    /// verdict, [`BackendError::SkippedDown`] to every later one.
    pub(crate) fn check(&self, op: &'static str) -> Result<(), BackendError> {
        let mut state = self.lock();
        let Some(down) = state.down.clone() else { return Ok(()) };
        if std::mem::replace(&mut state.told, true) {
            return Err(BackendError::SkippedDown { op, host: down.host });
        }
        Err(BackendError::Down { op, host: down.host, why: down.why })
    }

    /// Records a silence of `host` (`why` says what it did, in words that follow the host);
    /// makes the verdict at the host's second one. Returns whether the service is down now.
    pub(crate) fn silence(&self, host: &str, kind: Silence, why: &str) -> bool {
        let mut state = self.lock();
        if state.down.is_some() {
            return true;
        }
        let count = state.silences.entry(host.to_string()).or_default();
        *count += 1;
        tracing::debug!("{host}: silence {count} of {SILENCES_TO_DOWN} ({kind:?}): {why}");
        if *count >= SILENCES_TO_DOWN {
            state.down = Some(Down { host: host.to_string(), why: why.to_string() });
        }
        state.down.is_some()
    }

    /// Whether the step may wait `wait` more before retrying, within `budget` for the whole
    /// step; a wait that is allowed is counted.
    pub(crate) fn may_wait(&self, wait: Duration, budget: Duration) -> bool {
        let mut state = self.lock();
        if state.waited + wait > budget {
            return false;
        }
        state.waited += wait;
        true
    }

    /// The verdict as the step state [`STATE`] carries it; `None` while the service is up.
    pub fn state_value(&self) -> Option<String> {
        self.down().map(|d| format!("{}\t{}", d.host, d.why))
    }

    /// Takes over the verdict an earlier step of the job left in [`STATE`] (`None` or empty:
    /// none), telling it once with a notice.
    pub fn learn(&self, value: Option<&str>) {
        let Some((host, why)) = value.and_then(|v| v.split_once('\t')) else { return };
        crate::notice!(
            "not using the cache service at {host} in this step: in the restore step it {why} \
             (see that step's warning)"
        );
        let mut state = self.lock();
        state.down = Some(Down { host: host.to_string(), why: why.to_string() });
        state.told = true;
    }
}

/// A backend that asks the verdict before every call, so a target after the verdict (or a post
/// step that learned it) does nothing, not even packing an archive that could not be sent.
pub(crate) struct Guarded {
    pub(crate) inner: Box<dyn Backend>,
    pub(crate) health: Health,
}

impl Backend for Guarded {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn lookup(&self, keys: &[String], version: &str) -> Result<Option<Hit>, BackendError> {
        self.health.check("lookup")?;
        self.inner.lookup(keys, version)
    }

    fn download(&self, hit: &Hit) -> Result<Box<dyn std::io::Read + Send>, BackendError> {
        self.health.check("download")?;
        self.inner.download(hit)
    }

    fn save(&self, key: &str, version: &str, archive: &super::ArchiveFile) -> Result<Saved, BackendError> {
        self.health.check("save")?;
        self.inner.save(key, version, archive)
    }

    // A guard changes when requests are made, not what the store guarantees.
    fn verifies_integrity(&self) -> bool {
        self.inner.verifies_integrity()
    }
}

/// What a user can do about a service that is down: the words of [`BackendError::Down`].
pub const FIX: &str = "check that the cache server is running and reachable from the job (a runner's \
    cache server, the `s3-endpoint`); until it is back the job runs without a cache";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_second_silence_of_a_host_is_the_verdict_told_once() {
        let health = Health::default();
        assert!(health.check("lookup").is_ok());
        assert!(!health.silence("cache:8080", Silence::Unreachable, "refused the connection"));
        assert!(!health.silence("blob:443", Silence::Stalled, "stopped sending"));
        assert!(health.check("lookup").is_ok(), "one silence per host is forgiven");
        assert!(health.silence("cache:8080", Silence::NoAnswer, "did not answer"));
        let first = health.check("lookup").unwrap_err();
        assert!(matches!(&first, BackendError::Down { host, .. } if host == "cache:8080"), "{first:?}");
        let message = first.to_string();
        assert!(message.contains("cache:8080 did not answer") && message.contains(FIX), "{message}");
        assert!(matches!(health.check("save"), Err(BackendError::SkippedDown { .. })));
        assert_eq!(health.state_value().as_deref(), Some("cache:8080\tdid not answer"));
    }

    #[test]
    fn a_later_step_learns_the_verdict_without_telling_it_again() {
        let health = Health::default();
        health.learn(None);
        health.learn(Some(""));
        assert!(health.down().is_none());
        health.learn(Some("cache:8080\trefused the connection"));
        let down = health.down().unwrap();
        assert_eq!((down.host.as_str(), down.why.as_str()), ("cache:8080", "refused the connection"));
        assert!(matches!(health.check("save"), Err(BackendError::SkippedDown { .. })));
    }

    #[test]
    fn retries_wait_within_one_budget_for_the_step() {
        let health = Health::default();
        let budget = Duration::from_secs(10);
        assert!(health.may_wait(Duration::from_secs(4), budget));
        assert!(health.may_wait(Duration::from_secs(4), budget));
        assert!(!health.may_wait(Duration::from_secs(4), budget), "12 s is past the 10 s budget");
        assert!(health.may_wait(Duration::from_secs(2), budget));
        let shared = health.clone();
        assert!(!shared.may_wait(Duration::from_millis(1), budget), "clones share the budget");
    }
}
