//! Slow but alive is not dead: a download that keeps moving bytes never trips the idle timeout,
//! yet a cache server throttled to a trickle can make a restore cost more than the install it
//! spares. Every entry this tool saves records the saving job's work (`entry_note.rs`); the
//! restore learns it from the archive's first header, and [`Paced`] gives the download up once
//! it clearly costs more than that work: when the time it has taken, or — the entry's size being
//! known — the time it will take at its rate so far, passes [`FACTOR`] times the work (and
//! [`FLOOR`]). The target is then a miss with a notice giving both numbers ([`TooSlow`]).
//! Entries of other tools carry no note, and are bounded by `timeout` alone.
//! The save's counterpart, an upload that would take longer than the job, is `upload_pace.rs`.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::runner::human_size;

/// How many times the saving job's work a restore may cost before it is given up: "clearly"
/// more, not a coin flip on a busy runner.
pub const FACTOR: u32 = 2;
/// Downloads quicker than this are never given up: on such short times the comparison says
/// more about the machine's load than about the server.
pub const FLOOR: Duration = Duration::from_secs(10);
/// How long a download runs before its rate is trusted for a projection.
const SAMPLE: Duration = Duration::from_secs(3);

/// Why a download was given up: it costs more than the work the entry saves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the cache server sends {}/s: {} {} downloading, more than {FACTOR} × the {} the job that saved \
     it spent on its work (installs and tests), so the cache costs more than it saves; given up \
     after {}, the job goes on without it",
    human_size(*rate), if *projected { "it would take about" } else { "it has taken" }, seconds(cost),
    seconds(work), seconds(elapsed)
)]
pub struct TooSlow {
    /// Bytes per second so far.
    pub rate: u64,
    /// The download's cost: projected from the rate (`projected`) or already spent.
    pub cost: Duration,
    pub projected: bool,
    /// The saving job's work.
    pub work: Duration,
    /// When it was given up.
    pub elapsed: Duration,
}

fn seconds(d: &Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// What a restore learns while its download runs, shared between the reader and the code that
/// reads the archive's note.
#[derive(Debug, Clone, Default)]
pub struct Pace(Arc<Mutex<PaceState>>);

#[derive(Debug, Default)]
struct PaceState {
    work: Option<Duration>,
    gave_up: Option<TooSlow>,
}

impl Pace {
    /// The saving job's work, from the entry's note.
    pub fn set_work(&self, work: Duration) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).work = Some(work);
    }

    /// Why the download was given up, if it was.
    pub fn gave_up(&self) -> Option<TooSlow> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).gave_up.clone()
    }

    /// The reason to give up a download of `total` bytes (when known) that moved `done` in
    /// `elapsed`, if there is one.
    fn judge(&self, done: u64, total: Option<u64>, elapsed: Duration) -> Option<TooSlow> {
        let work = self.0.lock().unwrap_or_else(|e| e.into_inner()).work?;
        let limit = (work * FACTOR).max(FLOOR);
        let rate = (done as f64 / elapsed.as_secs_f64().max(0.001)) as u64;
        let slow = |cost, projected| Some(TooSlow { rate, cost, projected, work, elapsed });
        if elapsed > limit {
            return slow(elapsed, false);
        }
        let total = total.filter(|_| elapsed >= SAMPLE && done > 0)?;
        let projected = Duration::from_secs_f64(total as f64 / (done as f64 / elapsed.as_secs_f64()));
        if projected > limit { slow(projected, true) } else { None }
    }
}

/// A download stream that gives up when [`Pace`] says it costs more than it saves.
pub struct Paced<R> {
    inner: R,
    pace: Pace,
    total: Option<u64>,
    done: u64,
    started: Instant,
}

impl<R: Read> Paced<R> {
    /// `total` is the entry's size, when the service tells it; `started` is when the download
    /// was asked for (a backend may fetch its first block before handing the stream over).
    pub fn new(inner: R, pace: &Pace, total: Option<u64>, started: Instant) -> Self {
        Paced { inner, pace: pace.clone(), total, done: 0, started }
    }
}

impl<R: Read> Read for Paced<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(slow) = self.pace.judge(self.done, self.total, self.started.elapsed()) {
            let message = slow.to_string();
            self.pace.0.lock().unwrap_or_else(|e| e.into_inner()).gave_up.get_or_insert(slow);
            return Err(io::Error::other(message));
        }
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn no_note_no_judgement() {
        assert_eq!(Pace::default().judge(1, Some(1 << 30), S(3600)), None);
    }

    #[test]
    fn a_trickle_is_given_up_on_its_projection_when_the_size_is_known() {
        let pace = Pace::default();
        pace.set_work(S(60));
        // 50 MB at 200 kB/s: 250 s, more than 2 × 60 s.
        let slow = pace.judge(1_000_000, Some(50_000_000), S(5)).expect("given up");
        assert!(slow.projected && slow.cost == S(250) && slow.rate == 200_000, "{slow:?}");
        let message = slow.to_string();
        assert!(message.contains("200.0 kB/s") && message.contains("250.0 s") && message.contains("60.0 s"));
        // The same rate on 10 MB: 50 s, within 2 × 60 s.
        assert_eq!(pace.judge(1_000_000, Some(10_000_000), S(5)), None);
        // Too early to trust the rate.
        assert_eq!(pace.judge(100_000, Some(50_000_000), S(1)), None);
    }

    #[test]
    fn without_a_size_the_time_spent_decides() {
        let pace = Pace::default();
        pace.set_work(S(1));
        assert_eq!(pace.judge(1000, None, S(9)), None, "under the floor");
        let slow = pace.judge(1000, None, S(11)).expect("past the floor and 2 × the work");
        assert!(!slow.projected && slow.cost == S(11), "{slow:?}");
    }

    #[test]
    fn the_reader_fails_and_remembers_why() {
        let pace = Pace::default();
        pace.set_work(Duration::ZERO);
        let mut reader = Paced::new(&b"abc"[..], &pace, None, Instant::now() - S(11));
        assert!(reader.read(&mut [0u8; 8]).is_err());
        assert!(pace.gave_up().is_some());
    }
}
