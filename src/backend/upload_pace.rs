//! A save that would take longer than the job itself is not worth finishing: the next job
//! would wait for a cache that costs more than it saves, and this one pays for it now. Every
//! networked upload sends its bytes through [`transfer::send_range`](super::transfer), which
//! meters them here ([`UploadPace::meter`]); once the upload has run [`FLOOR`] and the bytes
//! left, at the rate so far, would take longer than the job has run (from the start of its
//! restore step, in the step state), the upload is given up ([`TooSlowToSave`]) and the
//! backend cleans up as after any other failed upload: nothing is left committed.
//!
//! The rate is bytes handed to the connection per second of upload time (some part in flight)
//! over the last [`WINDOW`], so packing, which streaming uploads overlap, does not count against
//! the server, and neither do the first megabytes the socket buffers swallow at once (counted
//! since the start, they would make a crawling server look fast for minutes). The bytes left
//! are those packed so far and not yet handed over: while packing runs, a lower bound. The
//! local store copies a file and is not judged.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::runner::human_size;

/// Uploads quicker than this are never given up: on such short times the rate says more about
/// the machine's load and the socket buffers than about the server.
pub const FLOOR: Duration = Duration::from_secs(10);
/// How often, at most, the projection is made (it reads the archive's size).
const EVERY: Duration = Duration::from_millis(500);
/// The stretch of upload time the rate is measured over.
const WINDOW: Duration = Duration::from_secs(5);

/// Why a save was given up: finishing it would take longer than the job has run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the cache server takes {}/s: the {} left of the archive would take about {} more to upload, \
     longer than the {} this job has run so far, so the save costs more than it can spare; given \
     up after {} of uploading, nothing is stored",
    human_size(*rate), human_size(*left), seconds(left_time), seconds(job), seconds(uploading)
)]
pub struct TooSlowToSave {
    /// Bytes per second of upload time so far.
    pub rate: u64,
    /// Bytes packed and not yet sent.
    pub left: u64,
    /// `left` at `rate`.
    pub left_time: Duration,
    /// How long the job has run.
    pub job: Duration,
    /// How long the upload ran.
    pub uploading: Duration,
}

fn seconds(d: &Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// The step's measure of its uploads, shared by every client opened with clones of the tuning.
#[derive(Debug, Clone, Default)]
pub struct UploadPace(Arc<Mutex<State>>);

#[derive(Debug, Default)]
struct State {
    /// When the job started (Unix milliseconds), if known: without it nothing is judged.
    job_started_ms: Option<u64>,
    /// The archive being uploaded; another one starts a new measure.
    archive: Option<PathBuf>,
    sent: u64,
    /// Upload time of parts that ended, and since when some part is in flight.
    busy: Duration,
    in_flight: usize,
    busy_since: Option<Instant>,
    judged: Option<Instant>,
    /// (upload time, bytes sent) at each judgement, over the last [`WINDOW`] and one before.
    samples: VecDeque<(Duration, u64)>,
    gave_up: Option<TooSlowToSave>,
}

impl State {
    fn uploading(&self, now: Instant) -> Duration {
        self.busy + self.busy_since.map_or(Duration::ZERO, |since| now.saturating_duration_since(since))
    }

    /// Records a sample at upload time `at` and gives the rate over the last [`WINDOW`] (bytes
    /// per second), once there is most of a window to measure.
    fn rate(&mut self, at: Duration) -> Option<u64> {
        self.samples.push_back((at, self.sent));
        while self.samples.get(1).is_some_and(|(t, _)| *t + WINDOW <= at) {
            self.samples.pop_front();
        }
        let (t0, sent0) = *self.samples.front()?;
        let span = at.checked_sub(t0).filter(|span| *span >= WINDOW / 2)?;
        Some(((self.sent - sent0) as f64 / span.as_secs_f64()) as u64)
    }
}

impl UploadPace {
    /// When the job started (Unix milliseconds), from the restore step's state.
    pub fn set_job_started(&self, ms: u64) {
        self.lock().job_started_ms = Some(ms);
    }

    /// Why the upload of `archive` was given up, if it was.
    pub fn gave_up(&self, archive: &Path) -> Option<TooSlowToSave> {
        let state = self.lock();
        state.gave_up.clone().filter(|_| state.archive.as_deref() == Some(archive))
    }

    /// Counts a part of `archive` in flight until the guard drops.
    pub(crate) fn in_flight(&self, archive: &Path) -> InFlight {
        let mut state = self.lock();
        if state.archive.as_deref() != Some(archive) {
            let job_started_ms = state.job_started_ms;
            *state = State { job_started_ms, archive: Some(archive.to_path_buf()), ..State::default() };
        }
        state.in_flight += 1;
        state.busy_since.get_or_insert_with(Instant::now);
        InFlight { pace: self.clone() }
    }

    /// `body` (bytes of `archive`) as a request body that counts what it sends and fails once
    /// the save is judged too slow.
    pub(crate) fn meter<R: Read>(&self, archive: &Path, body: R) -> Metered<R> {
        Metered { inner: body, pace: self.clone(), archive: archive.to_path_buf() }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts `n` bytes sent, and says whether the upload must stop.
    fn sent(&self, archive: &Path, n: u64) -> Option<TooSlowToSave> {
        let mut state = self.lock();
        state.sent += n;
        if let Some(slow) = &state.gave_up {
            return Some(slow.clone());
        }
        let now = Instant::now();
        if state.judged.is_some_and(|at| now.saturating_duration_since(at) < EVERY) {
            return None;
        }
        state.judged = Some(now);
        let uploading = state.uploading(now);
        let rate = state.rate(uploading)?;
        let packed = std::fs::metadata(archive).map_or(0, |m| m.len());
        let now_ms = crate::entry_note::now_ms();
        let slow = judge(state.job_started_ms?, now_ms, uploading, rate, packed.saturating_sub(state.sent))?;
        state.gave_up = Some(slow.clone());
        Some(slow)
    }
}

/// The reason to give up an upload that has run `uploading`, sends `rate` bytes per second
/// and has `left` bytes to send, in a job that started at `job_started_ms`, if there is one.
fn judge(
    job_started_ms: u64,
    now_ms: u64,
    uploading: Duration,
    rate: u64,
    left: u64,
) -> Option<TooSlowToSave> {
    if uploading < FLOOR {
        return None;
    }
    let job = Duration::from_millis(now_ms.checked_sub(job_started_ms)?);
    let left_time =
        if rate == 0 { Duration::MAX } else { Duration::from_secs_f64(left as f64 / rate as f64) };
    (left > 0 && left_time > job).then_some(TooSlowToSave { rate, left, left_time, job, uploading })
}

/// A part in flight ([`UploadPace::in_flight`]).
pub(crate) struct InFlight {
    pace: UploadPace,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.pace.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        if state.in_flight == 0
            && let Some(since) = state.busy_since.take()
        {
            state.busy += since.elapsed();
        }
    }
}

/// A request body metered by [`UploadPace`].
pub(crate) struct Metered<R> {
    inner: R,
    pace: UploadPace,
    archive: PathBuf,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(slow) = self.pace.sent(&self.archive, n as u64) {
            return Err(io::Error::other(slow.to_string()));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn a_save_is_given_up_when_what_is_left_takes_longer_than_the_job() {
        // 100 kB/s, 49 MB left: 490 s, the job has run 60 s.
        let slow = judge(0, 60_000, S(10), 100_000, 49_000_000).expect("given up");
        assert_eq!((slow.rate, slow.left, slow.left_time, slow.job), (100_000, 49_000_000, S(490), S(60)));
        let message = slow.to_string();
        assert!(message.contains("100.0 kB/s") && message.contains("490.0 s"), "{message}");
        assert!(
            message.contains("60.0 s this job has run") && message.contains("nothing is stored"),
            "{message}"
        );
        // The same rate with 5 MB left: 40 s, within the job.
        assert_eq!(judge(0, 60_000, S(10), 100_000, 4_000_000), None);
    }

    #[test]
    fn never_within_the_floor_nor_without_a_job_start() {
        assert_eq!(judge(0, 600_000, S(9), 1, 1 << 30), None, "under the floor");
        assert!(judge(0, 600_000, S(10), 1, 1 << 30).is_some());
        assert!(judge(0, 600_000, S(10), 0, 1).is_some(), "nothing moves");
        assert_eq!(judge(700_000, 600_000, S(30), 1, 1 << 30), None, "the clock went backwards");
        assert_eq!(judge(0, 60_000, S(30), 1, 0), None, "everything is sent");
    }

    #[test]
    fn the_rate_is_that_of_the_last_seconds_not_of_the_buffers_filling() {
        // 4 MB swallowed by the socket buffers in the first second, then 50 kB/s.
        let mut state = State { sent: 4_000_000, ..State::default() };
        assert_eq!(state.rate(S(1)), None, "not enough of a window");
        for t in 2..=12 {
            state.sent += 50_000;
            state.rate(S(t));
        }
        state.sent += 50_000;
        assert_eq!(state.rate(S(13)), Some(50_000));
    }

    #[test]
    fn the_body_fails_once_judged_and_only_upload_time_counts() {
        let pace = UploadPace::default();
        pace.set_job_started(crate::entry_note::now_ms());
        let archive = Path::new("/nonexistent/archive");
        {
            let _part = pace.in_flight(archive);
            pace.lock().busy = S(11);
            // Nothing packed (the file cannot be read): nothing left, nothing to judge.
            assert!(pace.meter(archive, &b"abc"[..]).read(&mut [0u8; 8]).is_ok());
        }
        assert!(pace.lock().busy >= S(11) && pace.lock().busy_since.is_none());
        pace.lock().gave_up = Some(judge(0, 60_000, S(10), 1, 1 << 30).unwrap());
        assert!(pace.meter(archive, &b"abc"[..]).read(&mut [0u8; 8]).is_err());
        assert!(pace.gave_up(archive).is_some() && pace.gave_up(Path::new("/other")).is_none());
        // Another archive starts a new measure.
        drop(pace.in_flight(Path::new("/other")));
        assert!(pace.gave_up(Path::new("/other")).is_none() && pace.lock().busy < S(1));
    }
}
