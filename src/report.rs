//! The failure policy, in one place: what a workflow sees of a step's outcome. [`finish`]
//! turns the typed outcomes of the flows into warnings, outputs and state, the job summary,
//! and the exit code. The rule (docs/design.md §3): cache service, network, archive or disk
//! trouble is a `::warning::` and a miss (or a skipped save), exit 0; `fail-on-cache-miss`
//! makes a total miss exit 1. Invalid input never gets this far: `steps.rs` stops on it with
//! an `::error::`.

use std::process::ExitCode;

use tracing::{error, info, warn};

use crate::backend::BackendError;
use crate::config::Config;
use crate::deadline::Unfinished;
use crate::flow::{self, RestoreError, RestoreResult, Restored, SaveError, SaveReport, SaveResult};
use crate::runner::{self, FileCommands, SummaryRow};
use crate::targets::{PlanError, TargetPlan};

/// How a step ended, as `finish` reports it.
pub enum Outcome<'a> {
    /// The restore step could not compute the keys: nothing was looked up.
    RestoreWithoutKeys(PlanError),
    /// The save step could not compute the keys: nothing was saved.
    SaveWithoutKeys(PlanError),
    /// The save step skipped everything, for this reason (a policy, not trouble).
    NotSaving(String),
    /// The restore step's outcome per target, or why its work did not finish.
    Restore(&'a [TargetPlan], Result<Vec<Restored>, Unfinished>),
    /// The save step's outcome per target, or why its work did not finish.
    Save(Result<Vec<SaveReport>, Unfinished>),
}

/// The runner files a step writes: outputs, state for the post step, the job environment.
#[derive(Default)]
pub struct RunnerFiles {
    pub outputs: FileCommands,
    pub state: FileCommands,
    pub job_env: FileCommands,
}

/// Reports `outcome` and gives the step's exit code.
pub fn finish(cfg: &Config, outcome: Outcome, mut files: RunnerFiles) -> ExitCode {
    let mut code = ExitCode::SUCCESS;
    match outcome {
        Outcome::RestoreWithoutKeys(e) => {
            warn!("cannot compute the cache keys, continuing without a cache: {e}");
            files.outputs.set("cache-hit", "false");
        }
        Outcome::SaveWithoutKeys(e) => warn!("cannot compute the cache keys; not saving: {e}"),
        Outcome::NotSaving(reason) => crate::notice!("not saving: {reason}"),
        Outcome::Restore(plans, done) => {
            let outcomes = done.unwrap_or_else(|why| {
                warn!("restore {why}; continuing without a cache");
                let result = || RestoreResult::Failed(RestoreError::Unfinished(why.clone()));
                plans.iter().map(|p| Restored::ended(p.target, &p.key.primary(), result())).collect()
            });
            code = report_restore(cfg, plans, &outcomes, &mut files);
        }
        Outcome::Save(done) => {
            let reports = done.unwrap_or_else(|why| {
                warn!("save {why}; nothing saved");
                Vec::new()
            });
            report_save(cfg, &reports);
        }
    }
    commit(cfg, &files);
    code
}

/// How a workflow sees one target's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// In the log only: the flow said what happened, or the message (if any) is a plain log
    /// line.
    Log,
    /// A `::notice::`: a policy or another job's doing, not trouble.
    Notice,
    /// A `::warning::`: trouble; the target counts as a miss, or its save is skipped. Never a
    /// failed step: only invalid input and `fail-on-cache-miss` fail one.
    Warning,
}

/// The failure policy of a restore, by the type of its outcome alone, and what the workflow is
/// told. A step that did not finish says so once for every target (`finish`).
pub fn restore_policy(result: &RestoreResult) -> (Seen, String) {
    match result {
        RestoreResult::Restored { .. } | RestoreResult::Found { .. } | RestoreResult::Miss => {
            (Seen::Log, String::new())
        }
        RestoreResult::NotRead => {
            (Seen::Notice, "ACTIONS_CACHE_MODE does not allow reading the cache; not restoring".into())
        }
        RestoreResult::Failed(RestoreError::Unfinished(_)) => (Seen::Log, String::new()),
        // A service found down was warned about once, by the target that found it.
        RestoreResult::Failed(e @ RestoreError::Lookup(BackendError::SkippedDown { .. })) => {
            (Seen::Log, e.to_string())
        }
        // Slow but alive: giving up a costly restore is a choice, not trouble.
        RestoreResult::Failed(e @ RestoreError::TooSlow { .. }) => (Seen::Notice, e.to_string()),
        RestoreResult::Failed(
            e @ (RestoreError::Lookup(_)
            | RestoreError::Download { .. }
            | RestoreError::Unpack { .. }
            | RestoreError::Integrity { .. }
            | RestoreError::ReadToEnd { .. }
            | RestoreError::Stage { .. }
            | RestoreError::Place { .. }
            | RestoreError::NoRoom { .. }
            | RestoreError::Cancelled(_)),
        ) => (Seen::Warning, e.to_string()),
    }
}

/// The failure policy of a save, by the type of its outcome alone, and what the workflow is
/// told: a service that refuses the write by policy (a read-only token, a budget) and another
/// job that saved first are notices; any other trouble is a warning.
pub fn save_policy(key: &str, result: &SaveResult) -> (Seen, String) {
    match result {
        SaveResult::Saved | SaveResult::ExactHit | SaveResult::Skipped(_) => (Seen::Log, String::new()),
        SaveResult::NothingToSave(dir) => {
            (Seen::Notice, format!("nothing to save, {} does not exist", dir.display()))
        }
        SaveResult::AlreadySaved(message) => {
            (Seen::Notice, format!("another job saved {key} first ({message})"))
        }
        SaveResult::Failed(SaveError::Store { source: denied @ BackendError::Denied { .. }, .. }) => {
            (Seen::Notice, format!("not saved, the cache service refused the write: {denied}"))
        }
        // Not trouble: the service is alive, only slower than the save is worth.
        SaveResult::Failed(SaveError::Store { source: BackendError::TooSlowToSave(slow), .. }) => {
            (Seen::Notice, format!("not saving {key}: {slow}"))
        }
        // A service found down was warned about once, by the step that found it.
        SaveResult::Failed(e @ SaveError::Store { source: BackendError::SkippedDown { .. }, .. }) => {
            (Seen::Log, e.to_string())
        }
        SaveResult::Failed(
            e @ (SaveError::CreateArchive { .. }
            | SaveError::Pack { .. }
            | SaveError::Abandoned { .. }
            | SaveError::Store { .. }
            | SaveError::Cancelled(_)),
        ) => (Seen::Warning, e.to_string()),
    }
}

/// Says `message` about target `t` as `seen` says.
fn tell(t: &str, seen: Seen, message: &str) {
    match seen {
        Seen::Log if message.is_empty() => {}
        Seen::Log => info!("{t}: {message}"),
        Seen::Notice => crate::notice!("{t}: {message}"),
        Seen::Warning => warn!("{t}: {message}"),
    }
}

fn report_restore(
    cfg: &Config,
    plans: &[TargetPlan],
    outcomes: &[Restored],
    files: &mut RunnerFiles,
) -> ExitCode {
    let outputs = &mut files.outputs;
    outputs.set("cache-hit", outcomes.iter().all(Restored::hit).to_string());
    for o in outcomes {
        let t = o.target.name();
        let (seen, message) = restore_policy(&o.result);
        tell(t, seen, &message);
        for reason in &o.invalidated {
            warn!("{t}: {reason}");
        }
        if let Some(job_work) = o.costlier_than_the_saving_job() {
            note_a_costly_restore(cfg, o, job_work);
        }
        outputs.set(&format!("{t}-cache-hit"), o.hit().to_string());
        outputs.set(&format!("{t}-restored"), o.restored().to_string());
        outputs.set(&format!("{t}-key"), o.key.clone());
        outputs.set(&format!("{t}-matched-key"), o.matched_key().unwrap_or_default());
        files.state.set(&flow::state_hit(o.target), o.hit().to_string());
        files.state.set(&flow::state_matched(o.target), o.matched_key().unwrap_or_default());
        if let Some(bytes) = o.restored_bytes {
            files.state.set(&flow::state_bytes(o.target), bytes.to_string());
        }
        if let Some(digest) = &o.envs_state {
            files.state.set(&flow::state_envs(o.target), digest.clone());
        }
    }
    let rows: Vec<SummaryRow> = outcomes
        .iter()
        .map(|o| {
            let plan = plans.iter().find(|p| p.target == o.target);
            let fallback = o.matched_key().filter(|m| !crate::key::same_key(m, &o.key));
            let mut notes = Vec::new();
            if let (Some(matched), Some(plan)) = (fallback, plan) {
                notes.push(format!("fallback: {}", plan.key.fallback_note(matched)));
            }
            if !o.invalidated.is_empty() {
                notes.push(format!("{} invalidated", o.invalidated.len()));
            }
            if let Some(job_work) = o.costlier_than_the_saving_job() {
                notes.push(format!("slower than the saving job's work ({})", flow::seconds(job_work)));
            }
            SummaryRow {
                target: o.target.name().into(),
                key: o.key.clone(),
                restored_from: fallback.map(str::to_string),
                result: o.summary(),
                size: o.size.map(runner::human_size).unwrap_or_default(),
                time: time_and_rate(o.size.filter(|_| o.restored()), o.elapsed),
                notes: notes.join("; "),
            }
        })
        .collect();
    summary(cfg, "uv-nox-cache: restore", &rows);
    let missed: Vec<&str> =
        outcomes.iter().filter(|o| o.matched_key().is_none()).map(|o| o.target.name()).collect();
    if cfg.fail_on_cache_miss && !missed.is_empty() {
        error!("no cache entry found for {} and `fail-on-cache-miss` is true", missed.join(", "));
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// A restore that took longer than the whole stretch of work of the job that saved the entry
/// (`entry_note.rs`): the cache may not pay for this target on this runner.
fn note_a_costly_restore(cfg: &Config, o: &Restored, job_work: std::time::Duration) {
    let t = o.target.name();
    let others: Vec<&str> = cfg.targets.iter().filter(|&&x| x != o.target).map(|x| x.name()).collect();
    let without = if others.is_empty() {
        "remove this step".to_string()
    } else {
        format!("set `targets: {}`", others.join(" "))
    };
    crate::notice!(
        "{t}: restoring took {}, longer than the {} the job that saved {} spent between its restore and \
         save steps (its installs and tests); on this runner the {t} cache may cost more than it saves. \
         Compare a job without it: {without}",
        flow::seconds(o.elapsed),
        flow::seconds(job_work),
        o.matched_key().unwrap_or(&o.key)
    );
}

fn report_save(cfg: &Config, reports: &[SaveReport]) {
    for r in reports {
        let (seen, message) = save_policy(&r.key, &r.result);
        tell(r.target.name(), seen, &message);
    }
    let rows: Vec<SummaryRow> = reports
        .iter()
        .map(|r| SummaryRow {
            target: r.target.name().into(),
            key: r.key.clone(),
            restored_from: None,
            result: r.summary(),
            size: r.size.map(runner::human_size).unwrap_or_default(),
            time: time_and_rate(r.size.filter(|_| matches!(r.result, SaveResult::Saved)), r.elapsed),
            notes: r.notes.clone(),
        })
        .collect();
    summary(cfg, "uv-nox-cache: save", &rows);
}

/// `3.1 s`, and `3.1 s (12.4 MB/s)` when `bytes` moved in that time.
fn time_and_rate(bytes: Option<u64>, elapsed: std::time::Duration) -> String {
    let time = flow::seconds(elapsed);
    match bytes {
        Some(bytes) if elapsed.as_secs_f64() > 0.0 => {
            let rate = (bytes as f64 / elapsed.as_secs_f64()) as u64;
            format!("{time} ({}/s)", runner::human_size(rate))
        }
        _ => time,
    }
}

fn summary(cfg: &Config, title: &str, rows: &[SummaryRow]) {
    if let Err(e) = runner::write_summary(cfg.runner.summary_file.as_ref(), title, rows) {
        warn!("could not write the job summary: {e}");
    }
}

/// Writes outputs, state and job environment (those that have anything to write); trouble
/// writing them is a warning.
fn commit(cfg: &Config, files: &RunnerFiles) {
    let results = [
        (&files.outputs, cfg.runner.output_file.as_deref(), true),
        (&files.state, cfg.runner.state_file.as_deref(), false),
        (&files.job_env, cfg.runner.env_file.as_deref(), false),
    ]
    .map(
        |(commands, file, print)| {
            if commands.pairs().is_empty() { Ok(()) } else { commands.commit(file, print) }
        },
    );
    for e in results.into_iter().filter_map(Result::err) {
        warn!("could not write to the runner's files: {e}");
    }
}

#[cfg(test)]
mod tests {
    //! One test per row of the failure policy.

    use std::io;
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::archive::ArchiveError;
    use crate::backend::archive_file;
    use crate::cancel::{Cancelled, Signal};

    fn restore_seen(result: RestoreResult) -> Seen {
        restore_policy(&result).0
    }

    fn failed(e: RestoreError) -> Seen {
        restore_seen(RestoreResult::Failed(e))
    }

    fn save_seen(result: SaveResult) -> Seen {
        save_policy("k", &result).0
    }

    fn key() -> String {
        "k".into()
    }

    fn service_trouble() -> BackendError {
        BackendError::Status { op: "lookup", status: 503, body: "busy".into() }
    }

    fn cancelled() -> Cancelled {
        Cancelled(Signal(libc::SIGTERM))
    }

    #[test]
    fn hits_misses_and_lookups_only_are_logged() {
        let (matched_key, exact) = (key(), true);
        assert_eq!(restore_seen(RestoreResult::Restored { matched_key: key(), exact }), Seen::Log);
        assert_eq!(restore_seen(RestoreResult::Found { matched_key, exact }), Seen::Log);
        assert_eq!(restore_seen(RestoreResult::Miss), Seen::Log);
    }

    #[test]
    fn a_cache_mode_that_forbids_reading_is_a_notice() {
        let (seen, message) = restore_policy(&RestoreResult::NotRead);
        assert_eq!(seen, Seen::Notice);
        assert!(message.contains("ACTIONS_CACHE_MODE does not allow reading"), "{message}");
    }

    #[test]
    fn a_restore_step_that_did_not_finish_is_told_once_not_per_target() {
        let timeout = Duration::from_secs(1);
        for why in [Unfinished::TimedOut { timeout }, Unfinished::Crashed, Unfinished::Cancelled(cancelled())]
        {
            assert_eq!(failed(RestoreError::Unfinished(why)), Seen::Log);
        }
    }

    #[test]
    fn a_failed_lookup_is_a_warning() {
        assert_eq!(failed(RestoreError::Lookup(service_trouble())), Seen::Warning);
    }

    #[test]
    fn a_service_found_down_by_this_lookup_is_a_warning_naming_the_fix() {
        let (op, host, why) = ("lookup", "cache.example".into(), "refused the connection".into());
        let down = RestoreResult::Failed(RestoreError::Lookup(BackendError::Down { op, host, why }));
        let (seen, message) = restore_policy(&down);
        assert_eq!(seen, Seen::Warning);
        assert!(message.contains("not using it again in this job"), "{message}");
    }

    #[test]
    fn a_lookup_not_tried_because_the_service_is_down_is_logged() {
        let source = BackendError::SkippedDown { op: "lookup", host: "cache.example".into() };
        let (seen, message) = restore_policy(&RestoreResult::Failed(RestoreError::Lookup(source)));
        assert_eq!(seen, Seen::Log);
        assert!(message.contains("not tried, the cache service at cache.example is down"), "{message}");
    }

    #[test]
    fn a_restore_given_up_as_too_slow_is_a_notice_and_says_so_in_the_summary() {
        let (secs, projected) = (Duration::from_secs, true);
        let why = crate::backend::pace::TooSlow {
            rate: 1000,
            cost: secs(90),
            projected,
            work: secs(30),
            elapsed: secs(9),
        };
        let result = RestoreResult::Failed(RestoreError::TooSlow { key: key(), why });
        let (seen, message) = restore_policy(&result);
        assert_eq!(seen, Seen::Notice);
        assert!(message.starts_with("not restoring k: "), "{message}");
        let outcome = Restored::ended(crate::targets::uv::TARGET, "k", result);
        assert_eq!(outcome.summary(), "too slow, given up");
    }

    #[test]
    fn a_failed_download_is_a_warning() {
        assert_eq!(failed(RestoreError::Download { key: key(), source: service_trouble() }), Seen::Warning);
    }

    #[test]
    fn a_corrupt_archive_is_a_warning_naming_it() {
        let source = ArchiveError::Corrupt { at: None, detail: "bad block".into() };
        let (seen, message) =
            restore_policy(&RestoreResult::Failed(RestoreError::Unpack { key: key(), source }));
        assert_eq!(seen, Seen::Warning);
        assert!(message.contains("corrupt") && message.contains("restoring k failed"), "{message}");
    }

    #[test]
    fn an_entry_refused_by_its_recorded_sha256_is_a_warning_naming_the_refusal() {
        let refusal =
            "local entry k: the archive does not match the sha256 recorded when it was saved".to_string();
        let (seen, message) =
            restore_policy(&RestoreResult::Failed(RestoreError::Integrity { key: key(), refusal }));
        assert_eq!(seen, Seen::Warning);
        assert!(message.contains("does not match the sha256 recorded"), "{message}");
    }

    #[test]
    fn trouble_reading_an_entry_to_its_end_is_a_warning() {
        let source = io::Error::other("connection reset");
        assert_eq!(failed(RestoreError::ReadToEnd { key: key(), source }), Seen::Warning);
    }

    #[test]
    fn trouble_with_the_staging_directory_is_a_warning() {
        let dir = PathBuf::from("/x");
        let source = io::Error::other("read-only file system");
        assert_eq!(failed(RestoreError::Stage { key: key(), dir, source }), Seen::Warning);
    }

    #[test]
    fn trouble_moving_into_place_is_a_warning() {
        let dir = PathBuf::from("/x");
        let source = io::Error::other("busy");
        assert_eq!(failed(RestoreError::Place { key: key(), dir, source }), Seen::Warning);
    }

    #[test]
    fn no_room_on_disk_is_a_warning() {
        let (dir, size, need, free) = (PathBuf::from("/x"), 1, 2, 0);
        assert_eq!(failed(RestoreError::NoRoom { key: key(), dir, size, need, free }), Seen::Warning);
    }

    #[test]
    fn a_cancelled_restore_is_a_warning_that_says_cancelled() {
        let (seen, message) = restore_policy(&RestoreResult::Failed(RestoreError::Cancelled(cancelled())));
        assert_eq!(seen, Seen::Warning);
        assert_eq!(message, "cancelled by SIGTERM");
        let unfinished = RestoreResult::Failed(RestoreError::Unfinished(Unfinished::Cancelled(cancelled())));
        let outcome = Restored::ended(crate::targets::uv::TARGET, "k", unfinished);
        assert_eq!(outcome.summary(), "cancelled by SIGTERM", "not an internal error");
    }

    #[test]
    fn saved_exact_hits_and_skips_are_logged() {
        assert_eq!(save_seen(SaveResult::Saved), Seen::Log);
        assert_eq!(save_seen(SaveResult::ExactHit), Seen::Log);
        assert_eq!(save_seen(SaveResult::Skipped("unchanged since the restore, not saved")), Seen::Log);
    }

    #[test]
    fn nothing_to_save_is_a_notice() {
        let (seen, message) = save_policy("k", &SaveResult::NothingToSave(PathBuf::from("/x/.nox")));
        assert_eq!(seen, Seen::Notice);
        assert_eq!(message, "nothing to save, /x/.nox does not exist");
    }

    #[test]
    fn another_job_saving_first_is_a_notice() {
        let (seen, message) = save_policy("k", &SaveResult::AlreadySaved("exists".into()));
        assert_eq!(seen, Seen::Notice);
        assert_eq!(message, "another job saved k first (exists)");
    }

    #[test]
    fn a_service_that_refuses_the_write_is_a_notice() {
        let source = BackendError::Denied { op: "reserve", message: "cache write denied: read-only".into() };
        let (seen, message) = save_policy("k", &SaveResult::Failed(SaveError::Store { key: key(), source }));
        assert_eq!(seen, Seen::Notice);
        assert!(message.contains("refused the write: reserve: cache write denied"), "{message}");
    }

    #[test]
    fn a_save_not_tried_because_the_service_is_down_is_logged() {
        let source = BackendError::SkippedDown { op: "reserve", host: "cache.example".into() };
        let (seen, message) = save_policy("k", &SaveResult::Failed(SaveError::Store { key: key(), source }));
        assert_eq!(seen, Seen::Log);
        assert!(message.contains("not tried, the cache service at cache.example is down"), "{message}");
    }

    #[test]
    fn any_other_store_trouble_is_a_warning() {
        let source = service_trouble();
        assert_eq!(save_seen(SaveResult::Failed(SaveError::Store { key: key(), source })), Seen::Warning);
        // A v1 server's 403 that is not a `cache write denied:` answer: a misconfiguration.
        let source = BackendError::Refused { op: "reserve", status: 403, message: "no".into(), cause: "" };
        assert_eq!(save_seen(SaveResult::Failed(SaveError::Store { key: key(), source })), Seen::Warning);
    }

    #[test]
    fn trouble_creating_the_archive_is_a_warning() {
        let (dir, source) = (PathBuf::from("/tmp"), io::Error::other("full"));
        assert_eq!(save_seen(SaveResult::Failed(SaveError::CreateArchive { dir, source })), Seen::Warning);
    }

    #[test]
    fn trouble_packing_is_a_warning() {
        let dir = PathBuf::from("/x");
        let source = ArchiveError::Io { op: "read", path: dir.clone(), source: io::Error::other("gone") };
        assert_eq!(save_seen(SaveResult::Failed(SaveError::Pack { dir, source })), Seen::Warning);
    }

    #[test]
    fn an_archive_abandoned_before_it_was_complete_is_a_warning() {
        let (dir, source) = (PathBuf::from("/x"), archive_file::Unfinished::Abandoned);
        assert_eq!(save_seen(SaveResult::Failed(SaveError::Abandoned { dir, source })), Seen::Warning);
    }

    #[test]
    fn a_cancelled_save_is_a_warning_that_says_cancelled() {
        let (seen, message) = save_policy("k", &SaveResult::Failed(SaveError::Cancelled(cancelled())));
        assert_eq!(seen, Seen::Warning);
        assert_eq!(message, "cancelled by SIGTERM");
    }
}
