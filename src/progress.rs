//! Progress lines on long transfers, every few seconds, so a slow restore never looks hung.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use crate::runner::human_size;

/// How often a progress line is printed.
const EVERY: Duration = Duration::from_secs(5);

/// A reader that logs how much has passed through it.
pub struct Progress<R> {
    inner: R,
    label: String,
    total: Option<u64>,
    done: u64,
    started: Instant,
    last: Instant,
}

impl<R: Read> Progress<R> {
    pub fn new(inner: R, label: impl Into<String>, total: Option<u64>) -> Self {
        let now = Instant::now();
        Progress { inner, label: label.into(), total, done: 0, started: now, last: now }
    }

    /// The bytes read so far.
    pub fn done(&self) -> u64 {
        self.done
    }
}

impl<R: Read> Read for Progress<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if self.last.elapsed() >= EVERY {
            self.last = Instant::now();
            let rate = self.done as f64 / self.started.elapsed().as_secs_f64().max(0.001);
            let of = self.total.map(|t| format!(" of {}", human_size(t))).unwrap_or_default();
            tracing::info!("{}: {}{of} ({}/s)", self.label, human_size(self.done), human_size(rate as u64));
        }
        Ok(n)
    }
}
