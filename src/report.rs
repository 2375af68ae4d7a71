//! The failure policy, in one place: what a workflow sees of a step's outcome. [`finish`]
//! turns the typed outcomes of the flows into warnings, outputs and state, the job summary,
//! and the exit code. The rule: cache service, network, archive or disk
//! trouble is a `::warning::` and a miss (or a skipped save), exit 0; `fail-on-cache-miss`
//! makes a total miss exit 1. Invalid input never gets this far: `steps.rs` stops on it with
//! an `::error::`.

use std::process::ExitCode;

use tracing::{error, warn};

use crate::config::Config;
use crate::flow::{self, RestoreResult, Restored, SaveReport, SaveResult};
use crate::runner::{self, FileCommands, SummaryRow};
use crate::steps::Unfinished;
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
            code = report_restore(cfg, &outcomes, &mut files);
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

fn report_restore(cfg: &Config, outcomes: &[Restored], files: &mut RunnerFiles) -> ExitCode {
    let outputs = &mut files.outputs;
    outputs.set("cache-hit", outcomes.iter().all(Restored::hit).to_string());
    for o in outcomes {
        let t = o.target.name();
        if let RestoreResult::Failed(e) = &o.result
            && !matches!(e, flow::RestoreError::Unfinished(_))
        {
            warn!("{t}: {e}");
        }
        for reason in &o.invalidated {
            warn!("{t}: {reason}");
        }
        outputs.set(&format!("{t}-cache-hit"), o.hit().to_string());
        outputs.set(&format!("{t}-restored"), o.restored().to_string());
        outputs.set(&format!("{t}-key"), o.key.clone());
        outputs.set(&format!("{t}-matched-key"), o.matched_key().unwrap_or_default());
        files.state.set(&flow::state_hit(o.target), o.hit().to_string());
    }
    let rows: Vec<SummaryRow> = outcomes
        .iter()
        .map(|o| SummaryRow {
            target: o.target.name().into(),
            key: o.matched_key().unwrap_or(&o.key).to_string(),
            result: o.summary(),
            size: o.size.map(runner::human_size).unwrap_or_default(),
            time: flow::seconds(o.elapsed),
            notes: if o.invalidated.is_empty() {
                String::new()
            } else {
                format!("{} invalidated", o.invalidated.len())
            },
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

fn report_save(cfg: &Config, reports: &[SaveReport]) {
    for r in reports {
        let t = r.target.name();
        match &r.result {
            SaveResult::AlreadySaved(message) => {
                crate::notice!("{t}: another job saved {} first ({message})", r.key)
            }
            SaveResult::Failed(e) => warn!("{t}: {e}"),
            SaveResult::Saved | SaveResult::ExactHit | SaveResult::NothingToSave => {}
        }
    }
    let rows: Vec<SummaryRow> = reports
        .iter()
        .map(|r| SummaryRow {
            target: r.target.name().into(),
            key: r.key.clone(),
            result: r.summary(),
            size: r.size.map(runner::human_size).unwrap_or_default(),
            time: flow::seconds(r.elapsed),
            notes: r.notes.clone(),
        })
        .collect();
    summary(cfg, "uv-nox-cache: save", &rows);
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
