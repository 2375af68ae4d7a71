//! The two action steps as the runner runs them: read and validate the inputs, plan the
//! targets, run the restore or save story under the `timeout` deadline, then report through
//! outputs, state, the job environment and the job summary.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;

use tracing::{error, info, warn};

use crate::config::{self, Config};
use crate::deadline::with_deadline;
use crate::flow;
use crate::report::{self, Outcome, RunnerFiles};
use crate::runner;
use crate::test_tuning::{self, StepTuning};
use crate::{VERSION, backend, cancel, env, inputs, notice, targets};

/// Reads and validates the inputs, logging the first line and masking the token; also reads
/// the test-only timing (`test_tuning.rs`), whose trouble is a warning and the defaults.
fn start(
    step: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    cwd: &Path,
) -> Result<(Config, StepTuning), ExitCode> {
    // First, before any thread starts: they inherit the blocked signals.
    cancel::watch();
    runner::init_logging(lookup(env::RUNNER_DEBUG).as_deref() == Some("1"));
    info!("uv-nox-cache {VERSION}: {step}");
    if let Some(token) = lookup(env::ACTIONS_RUNTIME_TOKEN) {
        runner::add_mask(&token);
    }
    for secret in ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] {
        if let Some(value) = lookup(secret) {
            runner::add_mask(&value);
        }
    }
    let cfg = Config::new(&inputs::RawInputs::read(lookup), lookup, cwd).map_err(|e| {
        error!("{e}");
        ExitCode::FAILURE
    })?;
    // Said once per job: the save step of a job whose restore step ran (and said it) logs it.
    let said = step == "save" && runner::read_state(lookup, flow::STATE_RESTORE_ENDED).is_some();
    if matches!(cfg.backend, backend::BackendKind::Local { .. }) && !said {
        notice!("cache backend: {} — {}", backend_label(&cfg), cfg.backend_reason);
    } else {
        info!("cache backend: {} — {}", backend_label(&cfg), cfg.backend_reason);
    }
    let tuning = test_tuning::parse(lookup(env::TEST_TUNING).as_deref()).unwrap_or_else(|e| {
        warn!("{e}; using the default timing");
        StepTuning::default()
    });
    Ok((cfg, tuning))
}

fn backend_label(cfg: &Config) -> String {
    match &cfg.backend {
        backend::BackendKind::Local { root, scope, .. } => {
            format!("local store at {} ({}, {})", root.display(), scope.repository, scope.own_ref)
        }
        backend::BackendKind::ArtifactCache { .. } => "runner cache service v1 (artifactcache)".into(),
        backend::BackendKind::Github { .. } => "runner cache service v2 (github)".into(),
        backend::BackendKind::S3(s3) => format!(
            "s3 bucket {} at {} ({}; credentials: {})",
            s3.bucket,
            s3.endpoint,
            s3.scope.own_ref,
            s3.credentials.describe()
        ),
    }
}

/// Ends the step by the signal that cancelled it, if one did: what the work left half-made
/// is removed, and the process dies of that signal (`cancel::exit`).
fn exit_if_cancelled(step: &str) {
    if let Some(signal) = cancel::requested() {
        warn!("{step} cancelled by {signal}; its staging directories and temporary archives are removed");
        cancel::exit(signal);
    }
}

pub fn restore(lookup: &dyn Fn(&str) -> Option<String>, cwd: &Path) -> ExitCode {
    let started_ms = crate::entry_note::now_ms();
    let (cfg, tuning) = match start("restore", lookup, cwd) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let mut files = RunnerFiles::default();
    files.state.set(flow::STATE_RESTORE_STARTED, started_ms.to_string());
    // The `sh` entry's post step gets only the inputs written in `with:` (src/sh_entry.rs).
    for (name, value) in crate::sh_entry::inputs_to_record(lookup) {
        files.state.set(&name, value);
    }
    if cfg.save == config::SavePolicy::Always {
        files.job_env.set(env::SAVE_ON_FAILURE, "true");
    }
    let plans = match targets::plans(&cfg) {
        Ok(plans) => plans,
        Err(e) => return report::finish(&cfg, Outcome::RestoreWithoutKeys(e), files),
    };
    for notice in targets::key_notices(&cfg, &plans) {
        crate::notice!("{notice}");
    }
    for plan in &plans {
        files.state.set(&flow::state_key(plan.target), plan.key.primary());
        for (name, value) in plan.rules().job_env(&cfg, &plan.dir) {
            files.job_env.set(name, value);
        }
    }
    let health = tuning.backend.health.clone();
    let outcomes = {
        let (cfg, plans) = (cfg.clone(), plans.clone());
        with_deadline(cfg.timeout, tuning.grace, move |deadline| {
            let backend = backend::open(&cfg.backend, cfg.cache_mode, deadline, tuning.backend);
            flow::restore::restore(&cfg, &*backend, &plans)
        })
    };
    exit_if_cancelled("restore");
    files.state.set(flow::STATE_RESTORE_ENDED, crate::entry_note::now_ms().to_string());
    // A service found down is not tried again by the post step (backend/health.rs).
    if let Some(down) = health.state_value() {
        files.state.set(backend::health::STATE, down);
    }
    for outcome in outcomes.iter().flatten() {
        outcome.target.rules().after_restore(&cfg, outcome.restored());
    }
    report::finish(&cfg, Outcome::Restore(&plans, outcomes), files)
}

pub fn save(lookup: &dyn Fn(&str) -> Option<String>, cwd: &Path) -> ExitCode {
    let (cfg, tuning) = match start("save", lookup, cwd) {
        Ok(started) => started,
        Err(code) => return code,
    };
    if let Some(reason) = flow::save::skip_reason(&cfg) {
        return report::finish(&cfg, Outcome::NotSaving(reason), RunnerFiles::default());
    }
    let plans = match targets::plans(&cfg) {
        Ok(plans) => plans,
        Err(e) => return report::finish(&cfg, Outcome::SaveWithoutKeys(e), RunnerFiles::default()),
    };
    let state: HashMap<String, String> = plans
        .iter()
        .flat_map(|p| {
            [
                flow::state_key(p.target),
                flow::state_hit(p.target),
                flow::state_matched(p.target),
                flow::state_envs(p.target),
                flow::state_bytes(p.target),
            ]
        })
        .chain([flow::STATE_RESTORE_ENDED.to_string()])
        .filter_map(|name| runner::read_state(lookup, &name).map(|v| (name, v)))
        .collect();
    tuning.backend.health.learn(runner::read_state(lookup, backend::health::STATE).as_deref());
    let job_started = runner::read_state(lookup, flow::STATE_RESTORE_STARTED).and_then(|ms| ms.parse().ok());
    if let Some(ms) = job_started {
        tuning.backend.upload_pace.set_job_started(ms);
    }
    let reports = {
        let (cfg, plans) = (cfg.clone(), plans.clone());
        with_deadline(cfg.timeout, tuning.grace, move |deadline| {
            let backend = backend::open(&cfg.backend, cfg.cache_mode, deadline, tuning.backend);
            flow::save::save(
                &cfg,
                &*backend,
                &plans,
                &|name| state.get(name).cloned(),
                tuning.drift_min_bytes,
            )
        })
    };
    exit_if_cancelled("save");
    report::finish(&cfg, Outcome::Save(reports), RunnerFiles::default())
}
