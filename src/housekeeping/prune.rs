//! `uv-nox-cache prune`: removes entries not restored for `--max-age` days, then the least
//! recently used until the store takes at most `--max-size`; `--dry-run` only says what would
//! go. An entry restored or saved within the last hour is never removed (it may be streaming
//! to a job right now), nor one a restore marks between the listing and its removal.

use std::time::SystemTime;

use serde_json::json;

use super::args::PruneArgs;
use crate::backend::BackendError;
use crate::backend::housekeeping::{self, Housekeeping, Plan, Policy, Reason, Swept};
use crate::{byte_size, utc};

/// What a prune did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub plan: Plan,
    /// Entries removed (all planned ones on a dry run).
    pub removed: Vec<usize>,
    /// Entries kept because a job used or saved them after the listing.
    pub changed: Vec<usize>,
    /// Entries whose removal failed, with why.
    pub failed: Vec<(usize, BackendError)>,
    /// Leftovers removed: abandoned saves, sidecars and companions of removed entries.
    pub swept: Swept,
}

/// Lists the store, plans at `now` and, unless `dry_run`, removes.
pub fn prune(store: &dyn Housekeeping, args: &PruneArgs, now: SystemTime) -> Result<Outcome, BackendError> {
    let policy = Policy { max_age: args.max_age, max_size: args.max_size, ..Policy::default() };
    let plan = housekeeping::plan(store.list()?, &policy, now);
    let mut outcome = Outcome::default();
    for (i, planned) in plan.delete.iter().enumerate() {
        if args.dry_run {
            outcome.removed.push(i);
            continue;
        }
        match store.delete(&planned.entry) {
            Ok(true) => outcome.removed.push(i),
            Ok(false) => outcome.changed.push(i),
            Err(e) => outcome.failed.push((i, e)),
        }
    }
    outcome.plan = plan;
    if !args.dry_run {
        outcome.swept = store.sweep(now)?;
    }
    Ok(outcome)
}

fn reason(reason: Reason) -> &'static str {
    match reason {
        Reason::Age => "not used for longer than --max-age",
        Reason::Size => "least recently used beyond --max-size",
    }
}

/// The outcome for people.
pub fn to_text(store: &str, outcome: &Outcome, dry_run: bool) -> String {
    let verb = if dry_run { "would remove" } else { "removed" };
    let mut out = String::new();
    let planned = &outcome.plan.delete;
    for &i in &outcome.removed {
        let p = &planned[i];
        out.push_str(&format!(
            "{verb} {} ({}, {} {}, last used {}): {}\n",
            p.entry.key,
            byte_size::format(p.entry.size),
            p.entry.repository,
            p.entry.git_ref,
            utc::format(p.entry.last_used),
            reason(p.reason)
        ));
    }
    for &i in &outcome.changed {
        out.push_str(&format!("kept {}: a job used or saved it meanwhile\n", planned[i].entry.key));
    }
    for (i, e) in &outcome.failed {
        out.push_str(&format!("warning: could not remove {}: {e}\n", planned[*i].entry.key));
    }
    let removed: u64 = outcome.removed.iter().map(|&i| planned[i].entry.size).sum();
    out.push_str(&format!(
        "{store}: {verb} {} ({}); {} kept ({})",
        super::entries_count(outcome.removed.len()),
        byte_size::format(removed),
        outcome.plan.keep.len() + outcome.changed.len() + outcome.failed.len(),
        byte_size::format(outcome.plan.kept_bytes),
    ));
    if outcome.swept.files > 0 {
        out.push_str(&format!(
            "; {} leftovers removed ({}: saves abandoned an hour ago or more, traces of removed entries)",
            outcome.swept.files,
            byte_size::format(outcome.swept.bytes)
        ));
    }
    if outcome.plan.in_use > 0 {
        out.push_str(&format!(
            ", of which {} used or saved within the last hour, so kept although the limits say otherwise",
            outcome.plan.in_use
        ));
    }
    out.push('\n');
    out
}

/// The outcome as JSON.
pub fn to_json(store: &str, outcome: &Outcome, dry_run: bool) -> serde_json::Value {
    let planned = &outcome.plan.delete;
    let item = |i: usize| {
        let p = &planned[i];
        json!({
            "key": p.entry.key,
            "repository": p.entry.repository,
            "ref": p.entry.git_ref,
            "size": p.entry.size,
            "last_used": utc::format(p.entry.last_used),
            "location": p.entry.location,
            "reason": match p.reason { Reason::Age => "max-age", Reason::Size => "max-size" },
        })
    };
    json!({
        "store": store,
        "dry_run": dry_run,
        "removed": outcome.removed.iter().map(|&i| item(i)).collect::<Vec<_>>(),
        "kept_changed": outcome.changed.iter().map(|&i| item(i)).collect::<Vec<_>>(),
        "failed": outcome.failed.iter().map(|(i, e)| json!({"entry": item(*i), "error": e.to_string()})).collect::<Vec<_>>(),
        "kept": outcome.plan.keep.len(),
        "kept_bytes": outcome.plan.kept_bytes,
        "kept_in_use": outcome.plan.in_use,
        "leftovers_removed": outcome.swept.files,
    })
}
