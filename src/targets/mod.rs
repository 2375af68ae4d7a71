//! What can be cached: one module per target, each implementing [`Rules`] — where its directory
//! is, what its key rests on, what its archive leaves out, and what a restore does with the tree
//! it extracted. The restore and save flows (`flow/`) only ever ask a target through [`Rules`],
//! so they read the same for every target.
//!
//! Adding a target (a `tox` envdir, a project's `.venv`): a module implementing [`Rules`], and
//! its line in [`ALL`] (docs/design.md, "Architecture").

mod plan;
mod rules;

pub mod nox;
pub mod uv;
pub mod uv_buckets;
pub mod uv_budget;
pub mod uv_python;
pub mod uv_series;

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

pub use plan::{PlanError, key_file_patterns, key_notices, plans};
pub use rules::{Drift, LeaveOut, Pythons, Rules, TargetPlan, tree_bytes};

/// Every target, in restore (and save) order: uv's Pythons before the nox envs built on them,
/// so their validation finds the interpreters in place; the uv cache before the nox envs, which
/// take the files they share with it from the uv cache restored (or saved) a moment before.
pub const ALL: &[Target] = &[uv_python::TARGET, uv::TARGET, nox::TARGET];

/// One target: a handle on its [`Rules`], compared by name and ordered by its place in [`ALL`].
#[derive(Clone, Copy)]
pub struct Target(&'static dyn Rules);

impl Target {
    /// The target's name, as the `targets` input, the keys, the outputs and the logs spell it.
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// What the flows ask of this target.
    pub fn rules(self) -> &'static dyn Rules {
        self.0
    }

    /// The target called `name`, if there is one.
    pub fn named(name: &str) -> Option<Target> {
        ALL.iter().copied().find(|t| t.name() == name)
    }

    fn position(self) -> usize {
        ALL.iter().position(|t| *t == self).unwrap_or(ALL.len())
    }
}

impl PartialEq for Target {
    fn eq(&self, other: &Target) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Target {}

impl Hash for Target {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl Ord for Target {
    fn cmp(&self, other: &Target) -> Ordering {
        self.position().cmp(&other.position())
    }
}

impl PartialOrd for Target {
    fn partial_cmp(&self, other: &Target) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_named_once_and_ordered_as_listed() {
        let names: Vec<&str> = ALL.iter().map(|t| t.name()).collect();
        assert_eq!(names, ["uv-python", "uv", "nox"]);
        assert_eq!(Target::named("nox"), Some(nox::TARGET));
        assert_eq!(Target::named("tox"), None);
        assert!(uv_python::TARGET < uv::TARGET && uv::TARGET < nox::TARGET);
    }
}
