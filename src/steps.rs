//! The two action steps as the runner runs them: read and validate the inputs, plan the
//! targets, run the restore or save story under the `timeout` deadline, then report through
//! outputs, state, the job environment and the job summary.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use crate::config::{self, Config, Target};
use crate::flow::{self, Restored, SaveReport};
use crate::runner::{self, FileCommands, SummaryRow};
use crate::{VERSION, backend, env, inputs, notice, target};

/// Extra time past `timeout` before an unfinished step is abandoned.
const GRACE: Duration = Duration::from_secs(5);

/// Reads and validates the inputs, logging the first line and masking the token.
fn start(step: &str, lookup: &dyn Fn(&str) -> Option<String>, cwd: &Path) -> Result<Config, ExitCode> {
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
    if matches!(cfg.backend, backend::BackendKind::Local { .. }) {
        notice!("cache backend: {} — {}", backend_label(&cfg), cfg.backend_reason);
    } else {
        info!("cache backend: {} — {}", backend_label(&cfg), cfg.backend_reason);
    }
    Ok(cfg)
}

fn backend_label(cfg: &Config) -> String {
    match &cfg.backend {
        backend::BackendKind::Local { root } => format!("local store at {}", root.display()),
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

/// Runs `work` on its own thread and gives up on it after `timeout` plus a grace period: a
/// hung transfer must not hang the job. `Err` says why there is no result: the deadline passed,
/// or the work stopped on a panic (a bug, whose message is already on stderr).
fn with_deadline<T: Send + 'static>(
    timeout: Duration,
    work: impl FnOnce(Instant) -> T + Send + 'static,
) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(work(deadline));
    });
    rx.recv_timeout(timeout + GRACE).map_err(|e| match e {
        mpsc::RecvTimeoutError::Timeout => {
            format!("did not finish within the `timeout` input ({} s)", timeout.as_secs())
        }
        mpsc::RecvTimeoutError::Disconnected => {
            "stopped on an internal error (a bug in uv-nox-cache; its message is on stderr)".to_string()
        }
    })
}

pub fn restore(lookup: &dyn Fn(&str) -> Option<String>, cwd: &Path) -> ExitCode {
    let cfg = match start("restore", lookup, cwd) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    let mut outputs = FileCommands::default();
    let mut state = FileCommands::default();
    let mut job_env = FileCommands::default();
    if cfg.save == config::SavePolicy::Always {
        job_env.set(env::SAVE_ON_FAILURE, "true");
    }
    let plans = match target::plans(&cfg) {
        Ok(plans) => plans,
        Err(e) => {
            warn!("cannot compute the cache keys, continuing without a cache: {e}");
            outputs.set("cache-hit", "false");
            commit(&cfg, &outputs, &state, &job_env);
            return ExitCode::SUCCESS;
        }
    };
    for plan in &plans {
        state.set(&flow::state_key(plan.target), plan.key.primary());
        if plan.target == Target::Uv && cfg.runner.uv_cache_dir_env.is_none() && cfg.uv_cache_dir.is_some() {
            // Later steps' uv must write where the post step will save from.
            job_env.set(env::UV_CACHE_DIR, plan.dir.to_string_lossy());
        }
    }
    flow::restore::hint_reuse(&cfg);
    let outcomes = {
        let (cfg, plans) = (cfg.clone(), plans.clone());
        with_deadline(cfg.timeout, move |deadline| {
            let backend = backend::open(&cfg.backend, cfg.cache_mode, deadline);
            flow::restore::restore(&cfg, &*backend, &plans)
        })
    }
    .unwrap_or_else(|why| {
        warn!("restore {why}; continuing without a cache");
        let result = if why.contains("timeout") { "timed out" } else { "internal error" };
        plans.iter().map(|p| Restored::miss(p.target, &p.key.primary(), result)).collect()
    });
    report_restore(&cfg, &outcomes, &mut outputs, &mut state);
    commit(&cfg, &outputs, &state, &job_env);
    let missed: Vec<&str> =
        outcomes.iter().filter(|o| o.matched_key.is_none()).map(|o| o.target.name()).collect();
    if cfg.fail_on_cache_miss && !missed.is_empty() {
        error!("no cache entry found for {} and `fail-on-cache-miss` is true", missed.join(", "));
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn report_restore(cfg: &Config, outcomes: &[Restored], outputs: &mut FileCommands, state: &mut FileCommands) {
    outputs.set("cache-hit", outcomes.iter().all(Restored::hit).to_string());
    for o in outcomes {
        let t = o.target.name();
        outputs.set(&format!("{t}-cache-hit"), o.hit().to_string());
        outputs.set(&format!("{t}-restored"), o.restored.to_string());
        outputs.set(&format!("{t}-key"), o.key.clone());
        outputs.set(&format!("{t}-matched-key"), o.matched_key.clone().unwrap_or_default());
        state.set(&flow::state_hit(o.target), o.hit().to_string());
        for reason in &o.invalidated {
            warn!("{t}: {reason}");
        }
    }
    let rows: Vec<SummaryRow> = outcomes
        .iter()
        .map(|o| SummaryRow {
            target: o.target.name().into(),
            key: o.matched_key.clone().unwrap_or_else(|| o.key.clone()),
            result: o.result.clone(),
            size: o.size.map(runner::human_size).unwrap_or_default(),
            time: flow::seconds(o.elapsed),
            notes: if o.invalidated.is_empty() {
                String::new()
            } else {
                format!("{} invalidated", o.invalidated.len())
            },
        })
        .collect();
    if let Err(e) = runner::write_summary(cfg.runner.summary_file.as_ref(), "uv-nox-cache: restore", &rows) {
        warn!("could not write the job summary: {e}");
    }
}

pub fn save(lookup: &dyn Fn(&str) -> Option<String>, cwd: &Path) -> ExitCode {
    let cfg = match start("save", lookup, cwd) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    if let Some(reason) = flow::save::skip_reason(&cfg) {
        notice!("not saving: {reason}");
        return ExitCode::SUCCESS;
    }
    let plans = match target::plans(&cfg) {
        Ok(plans) => plans,
        Err(e) => {
            warn!("cannot compute the cache keys; not saving: {e}");
            return ExitCode::SUCCESS;
        }
    };
    let state: HashMap<String, String> = plans
        .iter()
        .flat_map(|p| [flow::state_key(p.target), flow::state_hit(p.target)])
        .filter_map(|name| runner::read_state(lookup, &name).map(|v| (name, v)))
        .collect();
    let reports = {
        let (cfg, plans) = (cfg.clone(), plans.clone());
        with_deadline(cfg.timeout, move |deadline| {
            let backend = backend::open(&cfg.backend, cfg.cache_mode, deadline);
            flow::save::save(&cfg, &*backend, &plans, &|name| state.get(name).cloned())
        })
    }
    .unwrap_or_else(|why| {
        warn!("save {why}; nothing saved");
        Vec::new()
    });
    let rows: Vec<SummaryRow> = reports
        .iter()
        .map(|r: &SaveReport| SummaryRow {
            target: r.target.name().into(),
            key: r.key.clone(),
            result: r.result.clone(),
            size: r.size.map(runner::human_size).unwrap_or_default(),
            time: flow::seconds(r.elapsed),
            notes: r.notes.clone(),
        })
        .collect();
    if let Err(e) = runner::write_summary(cfg.runner.summary_file.as_ref(), "uv-nox-cache: save", &rows) {
        warn!("could not write the job summary: {e}");
    }
    ExitCode::SUCCESS
}

/// Writes outputs, state and job environment; trouble writing them is a warning.
fn commit(cfg: &Config, outputs: &FileCommands, state: &FileCommands, job_env: &FileCommands) {
    let results = [
        outputs.commit(cfg.runner.output_file.as_deref(), true),
        state.commit(cfg.runner.state_file.as_deref(), false),
        job_env.commit(cfg.runner.env_file.as_deref(), false),
    ];
    for e in results.into_iter().filter_map(Result::err) {
        warn!("could not write to the runner's files: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_deadline_tells_a_panic_from_a_timeout() {
        assert_eq!(with_deadline(Duration::from_secs(5), |_| 7), Ok(7));
        let crashed = with_deadline(Duration::from_secs(5), |_| -> u8 { panic!("boom") });
        assert!(crashed.unwrap_err().contains("internal error"));
        let slow = with_deadline(Duration::from_millis(1), |_| std::thread::sleep(GRACE * 2));
        assert!(slow.unwrap_err().contains("did not finish"));
    }
}
