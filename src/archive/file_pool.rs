//! Parallel creation of small files during an unpack.
//!
//! Why this exists: a restore of a venv is mostly small files, and each costs a handful of
//! system calls (create, write, set the mtime, close) that wait on the kernel rather than on the
//! CPU of the thread that decompresses. One writer thread doing them one after another was the
//! restore's limit on large trees; several do them at once.
//!
//! The unpack's writer thread stays the only one that changes the *namespace* in a way that
//! matters for safety: it creates directories, symlinks and hard links and checks that no path
//! passes through a symlink. It hands the pool only whole small files whose parent directory it
//! has just verified as a real directory; since directories are never removed during an unpack
//! and files are opened with `O_CREAT | O_EXCL` (which does not follow a symlink in the last
//! component), a pool thread cannot write outside the destination. Order is kept where it
//! matters: before the writer touches a path (a later entry of the same name, a hard link to it,
//! a directory of that name), it waits until the pool has finished that path ([`FilePool::settle`]).
//! Memory stays bounded: the queue holds at most [`QUEUE_DEPTH`] files of at most one piece each.

use std::collections::HashSet;
use std::path::Path;
use std::sync::mpsc::{Receiver, Sender, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::SystemTime;

use super::ArchiveError;
use super::unpack::write_whole_file;

/// Files waiting for a pool thread.
const QUEUE_DEPTH: usize = 64;
/// Most pool threads, whatever the number of CPUs: beyond this the directory locks of the file
/// system, not the threads, are the limit.
const MAX_THREADS: usize = 8;

/// A whole small file for a pool thread: its path relative to the destination, its mode and
/// mtime, and its data (the first `len` bytes of `buf`, which goes back to the reader after).
pub(super) struct Job {
    pub rel: Vec<u8>,
    pub mode: u32,
    pub mtime: Option<SystemTime>,
    pub buf: Vec<u8>,
    pub len: usize,
}

/// How many pool threads an unpack uses: two per CPU this process may run on (so `taskset`
/// and container CPU limits count), at most [`MAX_THREADS`]. A thread creating files spends
/// much of its time blocked in the file system, so two per CPU keep the CPUs busy; on two CPUs
/// four threads took the least CPU time for a 100k-file restore (docs/performance.md). 0 (on
/// one CPU) means no pool: the writer thread creates every file itself, as the measurements on
/// one CPU showed no gain to pay for the switches.
pub(super) fn threads() -> usize {
    match std::thread::available_parallelism().map_or(1, |n| n.get()) {
        1 => 0,
        n => (2 * n).min(MAX_THREADS),
    }
}

#[derive(Default)]
struct State {
    /// Paths handed to the pool and not yet finished.
    in_flight: HashSet<Vec<u8>>,
    /// The first error of a pool thread.
    failed: Option<ArchiveError>,
    /// The unpack stopped: the threads only drain the queue.
    aborted: bool,
    /// The writer waits in `settle` for a path to finish.
    waiting: bool,
}

struct Shared {
    state: Mutex<State>,
    finished: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The pool: a bounded queue of [`Job`]s and the threads that take them.
pub(super) struct FilePool<'scope> {
    jobs: Option<SyncSender<Job>>,
    shared: Arc<Shared>,
    threads: Vec<ScopedJoinHandle<'scope, ()>>,
}

impl<'scope> FilePool<'scope> {
    /// Starts `count` threads that create files below `dest`, handing each job's buffer back
    /// through `spare`.
    pub fn start<'env>(
        scope: &'scope Scope<'scope, 'env>,
        count: usize,
        (dest, umask): (&'env Path, Option<u32>),
        spare: &Sender<Vec<u8>>,
    ) -> Result<Self, ArchiveError> {
        let (tx, rx) = sync_channel::<Job>(QUEUE_DEPTH);
        let rx = Arc::new(Mutex::new(rx));
        let shared = Arc::new(Shared { state: Mutex::new(State::default()), finished: Condvar::new() });
        let mut pool = FilePool { jobs: Some(tx), shared, threads: Vec::with_capacity(count) };
        for i in 0..count {
            let (rx, shared, spare) = (rx.clone(), pool.shared.clone(), spare.clone());
            let thread = std::thread::Builder::new()
                .name(format!("unpack-files-{i}"))
                .spawn_scoped(scope, move || work(&rx, &shared, &spare, (dest, umask)))
                .map_err(|source| ArchiveError::Io {
                    op: "start a file creation thread for",
                    path: dest.to_path_buf(),
                    source,
                })?;
            pool.threads.push(thread);
        }
        Ok(pool)
    }

    /// Queues a file; fails with a pool thread's error if one failed already.
    pub fn submit(&self, job: Job) -> Result<(), ArchiveError> {
        {
            let mut state = self.shared.lock();
            if let Some(e) = state.failed.take() {
                return Err(e);
            }
            state.in_flight.insert(job.rel.clone());
        }
        let jobs = self.jobs.as_ref().expect("the queue is open until finish");
        // The threads only stop when the queue closes, so the send cannot fail.
        jobs.send(job).expect("the file creation threads outlive the queue");
        Ok(())
    }

    /// Waits until the pool has finished `rel` (when it has it at all); fails with a pool
    /// thread's error if one failed.
    pub fn settle(&self, rel: &[u8]) -> Result<(), ArchiveError> {
        let mut state = self.shared.lock();
        while state.failed.is_none() && state.in_flight.contains(rel) {
            state.waiting = true;
            state = self.shared.finished.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        state.waiting = false;
        match state.failed.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Waits for every queued file; fails with the first error of a pool thread.
    pub fn finish(mut self) -> Result<(), ArchiveError> {
        drop(self.jobs.take());
        for thread in self.threads.drain(..) {
            thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        }
        match self.shared.lock().failed.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for FilePool<'_> {
    /// On an early stop the queued files are not written: the caller discards the tree.
    fn drop(&mut self) {
        self.shared.lock().aborted = true;
    }
}

/// One pool thread: takes jobs until the queue closes.
fn work(
    jobs: &Mutex<Receiver<Job>>,
    shared: &Shared,
    spare: &Sender<Vec<u8>>,
    (dest, umask): (&Path, Option<u32>),
) {
    loop {
        let job = {
            let jobs = jobs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            match jobs.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        let skip = {
            let state = shared.lock();
            state.failed.is_some() || state.aborted
        };
        // The file is closed before its path counts as finished.
        let result = if skip { Ok(()) } else { write_whole_file(dest, umask, &job) };
        let Job { rel, buf, .. } = job;
        let _ = spare.send(buf);
        let mut state = shared.lock();
        state.in_flight.remove(&rel);
        if let Err(e) = result
            && state.failed.is_none()
        {
            state.failed = Some(e);
        }
        let wake = state.waiting;
        drop(state);
        if wake {
            shared.finished.notify_all();
        }
    }
}
