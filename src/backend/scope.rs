//! Which entries a job may read and where it may write, for the stores the action owns (`local`
//! and `s3`): the rule of GitHub's cache service, so that a pull request can never plant an
//! entry that its base branch, a sibling pull request or another repository restores.
//!
//! A job reads its own ref, then a pull request's base branch, then the repository's default
//! branch; it writes its own ref only. Events that run on the base branch with content a pull
//! request may control (`pull_request_target`, `workflow_run`, `issue_comment`) read as their
//! ref does but write nowhere: their own ref *is* the base branch (docs/security.md).

use super::BackendError;
use crate::env;

/// Events whose ref is the base branch while what they build may come from a pull request.
pub const UNTRUSTED_ON_BASE: [&str; 3] = ["pull_request_target", "workflow_run", "issue_comment"];

/// Which refs a job reads and which one it writes, named as `GITHUB_REF` names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// `owner/name`.
    pub repository: String,
    /// The run's own ref: the only one saved to, the first one read.
    pub own_ref: String,
    /// Read after the own ref, in order: a pull request's base branch, the default branch.
    pub fallback_refs: Vec<String>,
    /// The event, when it may not save (one of [`UNTRUSTED_ON_BASE`]).
    pub read_only_event: Option<String>,
}

impl Scope {
    /// The scope of the run described by the runner's variables (`GITHUB_REPOSITORY`,
    /// `GITHUB_REF`, `GITHUB_BASE_REF`, `GITHUB_EVENT_NAME`, and the event payload's
    /// `repository.default_branch`), each ref named once.
    pub fn from_env(get: &dyn Fn(&str) -> Option<String>) -> Scope {
        let own_ref = get(env::GITHUB_REF).unwrap_or_else(|| "refs/heads/unknown".into());
        let default_branch = get(env::GITHUB_EVENT_PATH)
            .and_then(|path| std::fs::read(path).ok())
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .and_then(|event| event["repository"]["default_branch"].as_str().map(String::from));
        let mut fallback_refs: Vec<String> = Vec::new();
        for branch in [get(env::GITHUB_BASE_REF), default_branch].into_iter().flatten() {
            let git_ref = format!("refs/heads/{branch}");
            if git_ref != own_ref && !fallback_refs.contains(&git_ref) {
                fallback_refs.push(git_ref);
            }
        }
        let event = get(env::GITHUB_EVENT_NAME).unwrap_or_default();
        Scope {
            repository: get(env::GITHUB_REPOSITORY).unwrap_or_else(|| "unknown-repository".into()),
            own_ref,
            fallback_refs,
            read_only_event: UNTRUSTED_ON_BASE.contains(&event.as_str()).then_some(event),
        }
    }

    /// The refs read, in order.
    pub fn reads(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.own_ref.as_str()).chain(self.fallback_refs.iter().map(String::as_str))
    }

    /// The ref a save writes, or why this run saves nothing (a notice, not trouble).
    pub fn save_ref(&self) -> Result<&str, BackendError> {
        match &self.read_only_event {
            None => Ok(&self.own_ref),
            Some(event) => Err(BackendError::Denied {
                op: "save",
                message: format!(
                    "a `{event}` run is not saved: it runs on {} with content a pull request may control, \
                     and every job of that branch would restore what it saved (docs/security.md); \
                     it still restores",
                    self.own_ref
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn scope(vars: &[(&str, &str)]) -> Scope {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Scope::from_env(&|name| map.get(name).cloned())
    }

    #[test]
    fn a_pull_request_reads_its_own_ref_then_its_base_then_the_default_branch() {
        let dir = tempfile::tempdir().unwrap();
        let event = dir.path().join("event.json");
        std::fs::write(&event, r#"{"repository":{"default_branch":"main"}}"#).unwrap();
        let event = event.display().to_string();
        let pr = scope(&[
            ("GITHUB_REPOSITORY", "o/r"),
            ("GITHUB_REF", "refs/pull/7/merge"),
            ("GITHUB_BASE_REF", "release"),
            ("GITHUB_EVENT_NAME", "pull_request"),
            ("GITHUB_EVENT_PATH", &event),
        ]);
        assert_eq!(
            pr.reads().collect::<Vec<_>>(),
            ["refs/pull/7/merge", "refs/heads/release", "refs/heads/main"]
        );
        assert_eq!(pr.save_ref().unwrap(), "refs/pull/7/merge");

        let push = scope(&[("GITHUB_REF", "refs/heads/main"), ("GITHUB_EVENT_PATH", &event)]);
        assert_eq!(push.reads().collect::<Vec<_>>(), ["refs/heads/main"], "never a pull request's ref");
    }

    #[test]
    fn runs_on_the_base_branch_for_a_pull_request_save_nothing() {
        for event in UNTRUSTED_ON_BASE {
            let run = scope(&[("GITHUB_REF", "refs/heads/main"), ("GITHUB_EVENT_NAME", event)]);
            let refused = run.save_ref().unwrap_err();
            assert!(matches!(refused, BackendError::Denied { .. }), "{refused}");
            assert!(refused.to_string().contains(event), "{refused}");
            assert_eq!(run.reads().collect::<Vec<_>>(), ["refs/heads/main"]);
        }
        let push = scope(&[("GITHUB_REF", "refs/heads/main"), ("GITHUB_EVENT_NAME", "push")]);
        assert_eq!(push.save_ref().unwrap(), "refs/heads/main");
    }
}
