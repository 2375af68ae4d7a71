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
use crate::flow::{self, RestoreResult, Restored, SaveError, SaveReport, SaveResult};
use crate::runner::{self, FileCommands, SummaryRow};
use crate::target::{PlanError, TargetPlan};

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
                let result = || RestoreResult::Failed(flow::RestoreError::Unfinished(unfinished_label(&why)));
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

fn unfinished_label(why: &Unfinished) -> &'static str {
    match why {
        Unfinished::TimedOut { .. } => "timed out",
        Unfinished::Crashed | Unfinished::Cancelled(_) => "internal error",
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
        if let RestoreResult::Failed(e) = &o.result
            && !matches!(e, flow::RestoreError::Unfinished(_))
        {
            // A service found down was warned about once, by the target that found it.
            if matches!(e, flow::RestoreError::Lookup(BackendError::SkippedDown { .. })) {
                info!("{t}: {e}");
            } else if matches!(e, flow::RestoreError::TooSlow { .. }) {
                crate::notice!("{t}: {e}");
            } else {
                warn!("{t}: {e}");
            }
        }
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
        let t = r.target.name();
        match &r.result {
            SaveResult::AlreadySaved(message) => {
                crate::notice!("{t}: another job saved {} first ({message})", r.key)
            }
            SaveResult::Denied(why) => {
                crate::notice!("{t}: not saved, the cache service refused the write: {why}")
            }
            SaveResult::Failed(e @ SaveError::Store { source: BackendError::SkippedDown { .. }, .. }) => {
                info!("{t}: {e}")
            }
            SaveResult::Failed(e) => warn!("{t}: {e}"),
            SaveResult::Saved | SaveResult::ExactHit | SaveResult::NothingToSave | SaveResult::Skipped(_) => {
            }
        }
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
