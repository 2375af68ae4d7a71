//! The two stories the action tells: `restore` (the main step) and `save` (the post step).
//! Each reads top-down; the work they delegate lives in the other modules.

pub mod restore;
pub mod save;

use std::time::Duration;

use crate::config::Target;

/// What happened to one target in the restore step.
#[derive(Debug, Clone)]
pub struct Restored {
    pub target: Target,
    pub key: String,
    /// The key of the entry found; `None` on a miss.
    pub matched_key: Option<String>,
    /// Found under the exact primary key.
    pub exact: bool,
    /// Something was extracted into place.
    pub restored: bool,
    /// Environments deleted after restore, with why.
    pub invalidated: Vec<String>,
    pub size: Option<u64>,
    pub elapsed: Duration,
    pub result: String,
    /// The digest of what was restored: the envs ([`crate::envs::envs_state`]) or the uv cache
    /// ([`crate::envs::cache_state`]).
    pub envs_state: Option<String>,
}

impl Restored {
    /// A target for which nothing was found (or looking failed).
    pub fn miss(target: Target, key: &str, result: impl Into<String>) -> Self {
        Restored {
            target,
            key: key.to_string(),
            matched_key: None,
            exact: false,
            restored: false,
            invalidated: Vec::new(),
            size: None,
            elapsed: Duration::ZERO,
            result: result.into(),
            envs_state: None,
        }
    }

    /// The target's `*-cache-hit`: its exact key, and every env passed validation.
    pub fn hit(&self) -> bool {
        self.exact && self.invalidated.is_empty() && (self.restored || self.matched_key.is_some())
    }
}

/// What happened to one target in the save step.
#[derive(Debug, Clone)]
pub struct SaveReport {
    pub target: Target,
    pub key: String,
    pub result: String,
    pub size: Option<u64>,
    pub elapsed: Duration,
    pub notes: String,
}

/// The state names the restore step leaves for the post step, per target.
pub fn state_key(target: Target) -> String {
    format!("{}_KEY", target.name().to_uppercase())
}

pub fn state_hit(target: Target) -> String {
    format!("{}_HIT", target.name().to_uppercase())
}

/// The key restored from (empty on a miss).
pub fn state_matched(target: Target) -> String {
    format!("{}_MATCHED", target.name().to_uppercase())
}

/// The digest of what the restored envs (or uv cache) held, for the post step to compare with.
pub fn state_envs(target: Target) -> String {
    format!("{}_ENVS", target.name().to_uppercase())
}

/// `3.1 s`.
pub fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}
