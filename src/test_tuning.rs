//! `UV_NOX_CACHE_TEST_TUNING`: the one way the integration tests change the binary's timing.
//! The real values (docs/reliability.md, "Bounded waits") — a 2 s first retry delay, a 20 s
//! answer timeout, a 30 s idle timeout, an 8 s stall timeout for downloads, five seconds of
//! grace past the `timeout` input — make a suite of fault tests wait for minutes doing nothing;
//! the tests set this variable to small values instead, and nothing else reads it. Workflows never set it, and the action's behaviour does not depend on it otherwise.
//!
//! The value is a comma-separated list of `name=value`: durations as `250ms` or `2s`, counts
//! and sizes as plain numbers, for example
//! `retry_delay=50ms,idle_timeout=2s,connect_timeout=2s,grace=1s`. See [`NAMES`].

use std::fmt;
use std::time::Duration;

use crate::backend::Tuning;

/// The names the variable may set.
pub const NAMES: &[&str] = &[
    "upload_chunk",
    "block_size",
    "single_put_max",
    "download_block",
    "parallelism",
    "attempts",
    "retry_delay",
    "retry_budget",
    "idle_timeout",
    "stall_timeout",
    "connect_timeout",
    "answer_timeout",
    "grace",
    "drift_min_bytes",
];

/// The timing of one step.
#[derive(Debug, Clone)]
pub struct StepTuning {
    /// The protocol clients' sizes, retries and timeouts.
    pub backend: Tuning,
    /// How long past the `timeout` input an unfinished step waits for its work to stop.
    pub grace: Duration,
    /// The least a job must add to an exact hit for it to be saved again, instead of the
    /// target's own (`Rules::drift`).
    pub drift_min_bytes: Option<u64>,
}

impl Default for StepTuning {
    fn default() -> Self {
        StepTuning { backend: Tuning::default(), grace: Duration::from_secs(5), drift_min_bytes: None }
    }
}

/// A `UV_NOX_CACHE_TEST_TUNING` item that is not understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TuningError {
    pub item: String,
    pub why: &'static str,
}

impl fmt::Display for TuningError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: `{}` {}; use `name=value` items separated by commas, with names from: {}",
            crate::env::TEST_TUNING,
            self.item,
            self.why,
            NAMES.join(", ")
        )
    }
}

impl std::error::Error for TuningError {}

/// The tuning `value` asks for, starting from the defaults; `None` (or empty) is the defaults.
pub fn parse(value: Option<&str>) -> Result<StepTuning, TuningError> {
    let mut out = StepTuning::default();
    for item in value.unwrap_or("").split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let error = |why| TuningError { item: item.to_string(), why };
        let (name, value) = item.split_once('=').ok_or_else(|| error("has no `=`"))?;
        let (name, value) = (name.trim(), value.trim());
        let t = &mut out.backend;
        match name {
            "upload_chunk" => t.upload_chunk = size(value).ok_or_else(|| error("is not a size"))?,
            "block_size" => t.block_size = size(value).ok_or_else(|| error("is not a size"))?,
            "single_put_max" => t.single_put_max = size(value).ok_or_else(|| error("is not a size"))?,
            "download_block" => t.download_block = size(value).ok_or_else(|| error("is not a size"))?,
            "parallelism" => t.parallelism = count(value).ok_or_else(|| error("is not a count"))?,
            "attempts" => t.attempts = count(value).ok_or_else(|| error("is not a count"))?,
            "retry_delay" => t.retry_delay = duration(value).ok_or_else(|| error("is not a duration"))?,
            "retry_budget" => t.retry_budget = duration(value).ok_or_else(|| error("is not a duration"))?,
            "idle_timeout" => t.idle_timeout = duration(value).ok_or_else(|| error("is not a duration"))?,
            "stall_timeout" => t.stall_timeout = duration(value).ok_or_else(|| error("is not a duration"))?,
            "answer_timeout" => {
                t.answer_timeout = duration(value).ok_or_else(|| error("is not a duration"))?
            }
            "connect_timeout" => {
                t.connect_timeout = duration(value).ok_or_else(|| error("is not a duration"))?
            }
            "grace" => out.grace = duration(value).ok_or_else(|| error("is not a duration"))?,
            "drift_min_bytes" => {
                out.drift_min_bytes = Some(size(value).ok_or_else(|| error("is not a size"))?)
            }
            _ => return Err(error("names nothing that can be tuned")),
        }
    }
    Ok(out)
}

/// A positive number of bytes.
fn size(value: &str) -> Option<u64> {
    value.parse().ok().filter(|n| *n > 0)
}

/// A positive count.
fn count<T: std::str::FromStr + PartialOrd + Default>(value: &str) -> Option<T> {
    value.parse().ok().filter(|n| *n > T::default())
}

/// `250ms` or `2s`.
fn duration(value: &str) -> Option<Duration> {
    if let Some(ms) = value.strip_suffix("ms") {
        return ms.parse().ok().map(Duration::from_millis);
    }
    value.strip_suffix('s')?.parse().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_or_empty_is_the_defaults() {
        for value in [None, Some(""), Some(" , ")] {
            let tuning = parse(value).unwrap();
            assert_eq!(tuning.grace, Duration::from_secs(5));
            assert_eq!(tuning.backend.retry_delay, Tuning::default().retry_delay);
        }
    }

    #[test]
    fn every_name_is_understood() {
        let tuning = parse(Some(
            "upload_chunk=1000, block_size=2000,single_put_max=3000,download_block=4000,parallelism=2,\
             attempts=3,retry_delay=50ms,retry_budget=4s,idle_timeout=2s,stall_timeout=1s,\
             connect_timeout=1500ms,answer_timeout=3s,grace=0ms,drift_min_bytes=5000",
        ))
        .unwrap();
        let t = &tuning.backend;
        assert_eq!(
            (t.upload_chunk, t.block_size, t.single_put_max, t.download_block),
            (1000, 2000, 3000, 4000)
        );
        assert_eq!((t.parallelism, t.attempts), (2, 3));
        assert_eq!(t.retry_delay, Duration::from_millis(50));
        assert_eq!((t.idle_timeout, t.stall_timeout), (Duration::from_secs(2), Duration::from_secs(1)));
        assert_eq!(t.connect_timeout, Duration::from_millis(1500));
        assert_eq!((t.retry_budget, t.answer_timeout), (Duration::from_secs(4), Duration::from_secs(3)));
        assert_eq!(tuning.grace, Duration::ZERO);
        assert_eq!(tuning.drift_min_bytes, Some(5000));
        assert_eq!(NAMES.len(), 14, "NAMES lists every arm of `parse`");
    }

    #[test]
    fn a_bad_item_names_itself_and_the_fix() {
        for (value, why) in [
            ("retry_delay", "has no `=`"),
            ("retry_delay=3", "is not a duration"),
            ("attempts=0", "is not a count"),
            ("upload_chunk=-1", "is not a size"),
            ("speed=11", "names nothing that can be tuned"),
        ] {
            let e = parse(Some(value)).unwrap_err();
            assert_eq!(e.why, why, "{value}");
            let message = e.to_string();
            assert!(message.contains("UV_NOX_CACHE_TEST_TUNING") && message.contains(value), "{message}");
            assert!(message.contains("retry_delay, retry_budget, idle_timeout"), "{message}");
        }
    }
}
