//! The operator's commands for the stores the action owns: `entries` (what is in the store,
//! and which entry a job would restore) and `prune` (remove entries by last use and size).
//! They read the same inputs and variables as the action (`backend`, `local-dir`, `s3-*`,
//! `UV_NOX_CACHE_S3_*`), so they run on the runner, in a scheduled workflow or on a laptop
//! with the fleet's variables set.

pub mod args;
pub mod entries;
pub mod prune;
pub mod runner_v1;

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use crate::backend::housekeeping::Housekeeping;
use crate::backend::local::LocalBackend;
use crate::backend::s3::S3Backend;
use crate::backend::{BackendError, BackendKind, Tuning};
use crate::config::Config;
use crate::inputs::RawInputs;

/// Why a command cannot look at the store.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    /// The runner's cache service on github.com (v2) lists nothing to a job's token.
    #[error(
        "the configured backend is the runner's cache service (v2, github.com), which lists nothing \
         to a job's token; see the repository's Actions → Caches page or `gh cache list`"
    )]
    NoListing,
}

/// The store the inputs and variables seen through `lookup` configure. No `::add-mask::` line
/// is written: it would print the secret it masks into this command's output (which names no
/// secret; requests' errors are scrubbed).
pub fn open(lookup: &dyn Fn(&str) -> Option<String>, cwd: &Path) -> Result<Store, OpenError> {
    crate::runner::no_masking();
    let cfg = Config::new(&RawInputs::read(lookup), lookup, cwd)?;
    // Listing and pruning a large bucket takes many requests: an hour, or `timeout` if longer
    // (each request still gives up on its own when the store stalls).
    let deadline = Instant::now() + cfg.timeout.max(Duration::from_secs(60 * 60));
    match &cfg.backend {
        BackendKind::Local { root, scope, .. } => {
            Ok(Store::Owned(Box::new(LocalBackend::new(root.clone(), scope.clone()))))
        }
        BackendKind::S3(settings) => {
            Ok(Store::Owned(Box::new(S3Backend::new((**settings).clone(), deadline, Tuning::default()))))
        }
        BackendKind::Github { .. } => Err(OpenError::NoListing),
        BackendKind::ArtifactCache { url, token, .. } => {
            Ok(Store::RunnerV1 { url: url.clone(), token: token.clone(), deadline, cfg: Box::new(cfg) })
        }
    }
}

/// A store to look at.
pub enum Store {
    /// `local` or `s3`: listed, explained and pruned here.
    Owned(Box<dyn Housekeeping>),
    /// The runner's v1 cache service: listed by key prefix where its server can, evicted by it.
    RunnerV1 { url: String, token: crate::backend::Secret, deadline: Instant, cfg: Box<Config> },
}

/// `uv-nox-cache entries [--json] [--for-key KEY]... [--ref REF]... [--repository OWNER/NAME]`.
pub fn entries_command(args: &[String], lookup: &dyn Fn(&str) -> Option<String>, cwd: &Path) -> ExitCode {
    let args = match args::entries(args) {
        Ok(args) => args,
        Err(e) => return usage(&e),
    };
    let store = match open(lookup, cwd) {
        Ok(store) => store,
        Err(e) => return failed(&e),
    };
    let store = match store {
        Store::Owned(store) => store,
        Store::RunnerV1 { url, token, deadline, cfg } => {
            return runner_v1::entries_command(&args, &cfg, &url, &token, deadline);
        }
    };
    let name = store.describe();
    let listed = match entries::listing(&*store) {
        Ok(listed) => listed,
        Err(e) => return failed(&format!("could not list {name}: {e}")),
    };
    let explained = if args.keys.is_empty() {
        None
    } else {
        let scope = match entries::scope_of(&args, &listed, lookup) {
            Ok(scope) => scope,
            Err(e) => return usage(&e),
        };
        match entries::explain(&*store, &listed, &scope, &args.keys) {
            Ok(explained) => Some((scope, explained)),
            Err(e) => return failed(&format!("could not look up the keys in {name}: {e}")),
        }
    };
    let explained = explained.as_ref().map(|(scope, e)| (scope, args.keys.as_slice(), e.as_slice()));
    if args.json {
        println!("{}", entries::to_json(&name, &listed, explained));
    } else {
        print!("{}", entries::to_text(&name, &listed, explained));
    }
    ExitCode::SUCCESS
}

/// `uv-nox-cache prune --max-age DAYS --max-size SIZE [--dry-run] [--json]`.
pub fn prune_command(args: &[String], lookup: &dyn Fn(&str) -> Option<String>, cwd: &Path) -> ExitCode {
    let args = match args::prune(args) {
        Ok(args) => args,
        Err(e) => return usage(&e),
    };
    let store = match open(lookup, cwd) {
        Ok(Store::Owned(store)) => store,
        Ok(Store::RunnerV1 { .. }) => {
            return failed(
                &"the configured backend is the runner's cache service (v1), which evicts entries itself and \
                  offers no removal to a job's token; `prune` works on the `local` and `s3` stores",
            );
        }
        Err(e) => return failed(&e),
    };
    let name = store.describe();
    let outcome = match prune::prune(&*store, &args, SystemTime::now()) {
        Ok(outcome) => outcome,
        Err(e) => return failed(&format!("could not list {name}: {e}")),
    };
    if args.json {
        println!("{}", prune::to_json(&name, &outcome, args.dry_run));
    } else {
        print!("{}", prune::to_text(&name, &outcome, args.dry_run));
    }
    // Refused credentials are no access; any other failed removal is tried again next time.
    let refused = outcome.failed.iter().any(|(_, e)| matches!(e, BackendError::Unauthorized { .. }));
    if refused { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// `1 entry`, `2 entries`.
pub(crate) fn entries_count(n: usize) -> String {
    if n == 1 { "1 entry".into() } else { format!("{n} entries") }
}

fn usage(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}\n\nsee `uv-nox-cache --help`");
    ExitCode::from(2)
}

fn failed(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::FAILURE
}
