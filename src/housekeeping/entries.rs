//! `uv-nox-cache entries`: what a store holds, newest first — key, target, size, when saved,
//! when last restored, the repository and ref it is scoped to — and, with `--for-key`, which
//! entry a job of a given ref would restore, asked of the backend's own lookup so the answer
//! is the one a restore gets ("why did my job miss?").

use std::collections::BTreeSet;

use serde_json::json;

use super::args::EntriesArgs;
use crate::backend::BackendError;
use crate::backend::housekeeping::{Housekeeping, StoredEntry};
use crate::backend::scope::Scope;
use crate::{byte_size, utc};

/// What a job of `scope` would restore for the keys, for one cache version found in the store.
#[derive(Debug)]
pub struct Explained {
    pub version: String,
    /// The entry's location, `None` for a miss.
    pub restores: Option<String>,
}

/// The store's entries, newest first.
pub fn listing(store: &dyn Housekeeping) -> Result<Vec<StoredEntry>, BackendError> {
    let mut entries = store.list()?;
    entries.sort_by(|a, b| b.saved_at.cmp(&a.saved_at).then_with(|| a.key.cmp(&b.key)));
    Ok(entries)
}

/// The scope `--repository` and `--ref` describe, the runner's variables filling what they leave
/// out; `None` when no repository can be told.
pub fn scope_of(
    args: &EntriesArgs,
    entries: &[StoredEntry],
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<Scope, String> {
    let from_env = Scope::from_env(get);
    let repositories: BTreeSet<&str> = entries.iter().map(|e| e.repository.as_str()).collect();
    let repository = match (&args.repository, get(crate::env::GITHUB_REPOSITORY)) {
        (Some(repository), _) => repository.clone(),
        (None, Some(repository)) if !repository.is_empty() => repository,
        _ if repositories.len() == 1 => repositories.first().expect("one").to_string(),
        _ => {
            return Err(format!(
                "the store holds entries of {} repositories: name one with `--repository OWNER/NAME`",
                repositories.len()
            ));
        }
    };
    let (own_ref, fallback_refs) = match args.refs.split_first() {
        Some((own, fallbacks)) => (own.clone(), fallbacks.to_vec()),
        None => (from_env.own_ref, from_env.fallback_refs),
    };
    Ok(Scope { repository, own_ref, fallback_refs, read_only_event: None })
}

/// For each cache version the repository has entries of, what `scope` would restore.
pub fn explain(
    store: &dyn Housekeeping,
    entries: &[StoredEntry],
    scope: &Scope,
    keys: &[String],
) -> Result<Vec<Explained>, BackendError> {
    let versions: BTreeSet<&str> =
        entries.iter().filter(|e| e.repository == scope.repository).map(|e| e.version.as_str()).collect();
    versions
        .into_iter()
        .map(|version| {
            let restores = store.would_restore(scope, keys, version)?;
            Ok(Explained { version: version.to_string(), restores })
        })
        .collect()
}

fn entry_json(entry: &StoredEntry) -> serde_json::Value {
    json!({
        "key": entry.key,
        "target": entry.target(),
        "size": entry.size,
        "saved_at": utc::format(entry.saved_at),
        "last_used": utc::format(entry.last_used),
        "repository": entry.repository,
        "ref": entry.git_ref,
        "version": entry.version,
        "restorable": entry.restorable,
        "location": entry.location,
    })
}

/// The listing (and the explanation) as JSON.
pub fn to_json(
    store: &str,
    entries: &[StoredEntry],
    explained: Option<(&Scope, &[String], &[Explained])>,
) -> serde_json::Value {
    let mut out = json!({
        "store": store,
        "entries": entries.iter().map(entry_json).collect::<Vec<_>>(),
    });
    if let Some((scope, keys, explained)) = explained {
        out["would_restore"] = json!({
            "repository": scope.repository,
            "refs": scope.reads().collect::<Vec<_>>(),
            "keys": keys,
            "by_version": explained.iter().map(|e| {
                let entry = e.restores.as_ref().and_then(|location| entries.iter().find(|x| &x.location == location));
                json!({ "version": e.version, "entry": entry.map(entry_json) })
            }).collect::<Vec<_>>(),
        });
    }
    out
}

/// The listing (and the explanation) for people.
pub fn to_text(
    store: &str,
    entries: &[StoredEntry],
    explained: Option<(&Scope, &[String], &[Explained])>,
) -> String {
    let total: u64 = entries.iter().map(|e| e.size).sum();
    let mut out = format!("{store}: {}, {}\n", super::entries_count(entries.len()), byte_size::format(total));
    if !entries.is_empty() {
        let rows: Vec<[String; 7]> = entries
            .iter()
            .map(|e| {
                let key = if e.restorable {
                    e.key.clone()
                } else {
                    format!("{} (never restored: no recorded sha256)", e.key)
                };
                [
                    utc::format(e.saved_at),
                    utc::format(e.last_used),
                    byte_size::format(e.size),
                    e.target().to_string(),
                    e.repository.clone(),
                    e.git_ref.clone(),
                    key,
                ]
            })
            .collect();
        let header = ["SAVED", "LAST USED", "SIZE", "TARGET", "REPOSITORY", "REF", "KEY"].map(String::from);
        let widths: Vec<usize> = (0..7)
            .map(|i| rows.iter().chain([&header]).map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        for row in std::iter::once(&header).chain(&rows) {
            let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
    }
    if let Some((scope, keys, explained)) = explained {
        let refs: Vec<&str> = scope.reads().collect();
        out.push_str(&format!(
            "\nA job of {} on {} looking up {} reads {}:\n",
            scope.repository,
            scope.own_ref,
            keys.join(", "),
            refs.join(", then ")
        ));
        if explained.is_empty() {
            out.push_str("  the store holds no entry of this repository: every lookup misses\n");
        }
        for e in explained {
            let targets: BTreeSet<&str> =
                entries.iter().filter(|x| x.version == e.version).map(StoredEntry::target).collect();
            let targets = targets.into_iter().collect::<Vec<_>>().join(", ");
            let version = format!("{}… ({targets})", &e.version[..e.version.len().min(12)]);
            let found =
                e.restores.as_ref().and_then(|location| entries.iter().find(|x| &x.location == location));
            match found {
                Some(entry) => out.push_str(&format!(
                    "  version {version}: restores {} (saved on {} at {}){}\n",
                    entry.key,
                    entry.git_ref,
                    utc::format(entry.saved_at),
                    if entry.restorable {
                        ""
                    } else {
                        ", but it has no recorded sha256, so the restore refuses it: a miss"
                    }
                )),
                None => out.push_str(&format!("  version {version}: a miss\n")),
            }
        }
    }
    out
}
