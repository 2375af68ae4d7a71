//! The `timeout` input and cancellation, around a step's work: the work runs on its own thread,
//! and the step gives up on it when the deadline passes, a signal arrives, or it crashes — a hung
//! transfer must never hang the job. [`Unfinished`] says which, for the report.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::cancel;

/// Why a step's work gave no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unfinished {
    #[error("did not finish within the `timeout` input ({} s)", timeout.as_secs())]
    TimedOut { timeout: Duration },
    #[error("stopped on an internal error (a bug in uv-nox-cache; its message is on stderr)")]
    Crashed,
    #[error("was {0}")]
    Cancelled(cancel::Cancelled),
}

/// How long cancelled work gets to stop on its own (at its next read or write) and remove
/// what it had half-made, before the step removes the rest itself and exits.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// What the work's thread tells the step.
enum Message<T> {
    Done(T),
    Crashed,
    Signal,
}

/// Runs `work` on its own thread and gives up on it after `timeout` plus `grace` (a hung
/// transfer must not hang the job), or when SIGINT or SIGTERM arrives (see `cancel.rs`). The
/// work is handed its deadline, `timeout` from now.
pub fn with_deadline<T: Send + 'static>(
    timeout: Duration,
    grace: Duration,
    work: impl FnOnce(Instant) -> T + Send + 'static,
) -> Result<T, Unfinished> {
    let deadline = Instant::now() + timeout;
    let (tx, rx) = mpsc::channel();
    let waker = tx.clone();
    cancel::on_signal(move || {
        let _ = waker.send(Message::Signal);
    });
    std::thread::spawn(move || {
        let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(deadline)));
        let _ = tx.send(done.map_or(Message::Crashed, Message::Done));
    });
    match rx.recv_timeout(timeout + grace) {
        Ok(Message::Done(done)) => Ok(done),
        Ok(Message::Crashed) => Err(Unfinished::Crashed),
        Ok(Message::Signal) => {
            let _ = rx.recv_timeout(STOP_WAIT);
            Err(Unfinished::Cancelled(cancel::check().expect_err("a signal arrived")))
        }
        Err(_) => Err(Unfinished::TimedOut { timeout }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_deadline_tells_a_panic_from_a_timeout() {
        assert_eq!(with_deadline(Duration::from_secs(5), Duration::ZERO, |_| 7), Ok(7));
        let crashed = with_deadline(Duration::from_secs(5), Duration::ZERO, |_| -> u8 { panic!("boom") });
        assert_eq!(crashed, Err(Unfinished::Crashed));
        // Work that only ends when the test says so: blocked on a channel nobody sends on
        // until the deadline has been reported.
        let (release, blocked) = mpsc::channel::<()>();
        let slow = with_deadline(Duration::from_millis(1), Duration::ZERO, move |_| {
            let _ = blocked.recv();
        });
        assert_eq!(slow, Err(Unfinished::TimedOut { timeout: Duration::from_millis(1) }));
        assert!(slow.unwrap_err().to_string().contains("did not finish within the `timeout` input"));
        drop(release);
    }
}
