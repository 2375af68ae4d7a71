//! Reading small files ahead on a few threads during a pack.
//!
//! Why this exists: a venv is mostly small files, and saving one was bound as much by the one
//! thread opening and reading them, one after another, as by compression (a profile of a
//! 100k-file save had 56 % of its samples in the kernel, reading files; docs/performance.md).
//! Each small file costs a path lookup, an open, a read and a close that wait on the kernel,
//! not on the thread that builds the tar stream; a few threads do them at once.
//!
//! The pack's own thread stays the only one that walks the tree, reads metadata and writes the
//! archive, so its order and content do not change: it hands the pool the path and size of each
//! small regular file it will write soon ([`ReadPool::submit`]) and later takes that file's
//! contents back, in archive order ([`ReadPool::take`]), exactly as it would have read them
//! itself (at most the size its metadata gave; an error to open or read comes back to be
//! reported at the file's turn). Memory stays bounded: only files of at most [`AHEAD_FILE_MAX`]
//! bytes are read ahead, and the pack submits no more while [`AHEAD_BYTES`] are held
//! ([`ReadPool::has_room`]); larger files are streamed by the pack's thread as before.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::{Scope, ScopedJoinHandle};

use super::ArchiveError;

/// Files up to this size are read ahead whole; larger ones are streamed by the pack's thread.
pub(super) const AHEAD_FILE_MAX: u64 = 256 << 10;
/// Bytes of files read ahead and not yet taken back, at most (plus one file).
pub(super) const AHEAD_BYTES: u64 = 4 << 20;
/// Entries the walk may run ahead of the writing, at most (bounds the queued names and
/// metadata when the files are tiny).
pub(super) const AHEAD_ENTRIES: usize = 1024;
/// Files handed to a thread at once: a wake-up per batch rather than per file (2.6 times fewer
/// context switches packing a 100k-file tree in the page cache).
const BATCH: usize = 16;
/// Most pool threads, whatever the number of CPUs.
const MAX_THREADS: usize = 4;

/// How many threads a pack reads files ahead with: two per CPU this process may run on (so
/// `taskset` and container CPU limits count), at most [`MAX_THREADS`]; a thread reading a small
/// file spends most of its time in the kernel or waiting on the disk. 0 (on one CPU) means no
/// pool: the pack's thread reads every file itself, as before; on one CPU the pool's own CPU
/// cost made the save of a tree in the page cache slower (docs/performance.md).
pub(super) fn threads() -> usize {
    match std::thread::available_parallelism().map_or(1, |n| n.get()) {
        1 => 0,
        n => (2 * n).min(MAX_THREADS),
    }
}

/// A file's contents as a pool thread read them.
pub(super) enum ReadAhead {
    /// It could not be opened (`NotFound`: it vanished since its metadata was read).
    Unopened(io::Error),
    /// Its first bytes, up to the size it was submitted with (fewer if it shrank), or the
    /// error that stopped the read.
    Read(io::Result<Vec<u8>>),
}

/// A submitted file: what [`ReadPool::take`] needs to find its contents.
pub(super) struct Ticket {
    id: u64,
    size: u64,
}

struct Job {
    id: u64,
    path: PathBuf,
    size: u64,
    /// Room for the contents, allocated by the pack's thread, which also frees it: the threads'
    /// own allocator arenas would keep the freed buffers as resident memory.
    buf: Vec<u8>,
}

/// The pool: an unbounded queue of files to read (bounded by the caller's budget) and the
/// threads that read them.
pub(super) struct ReadPool<'scope> {
    jobs: Option<Sender<Vec<Job>>>,
    /// Submitted files not yet handed to the threads.
    batch: Vec<Job>,
    done: Receiver<(u64, ReadAhead)>,
    /// Contents that came back before the pack asked for them.
    arrived: HashMap<u64, ReadAhead>,
    next_id: u64,
    /// Bytes submitted and not yet taken back.
    held: u64,
    threads: Vec<ScopedJoinHandle<'scope, ()>>,
}

impl<'scope> ReadPool<'scope> {
    /// Starts `count` threads (0: a pool that takes nothing, [`ReadPool::wants`] is always
    /// false). `root` only names the tree in an error to start a thread.
    pub fn start(scope: &'scope Scope<'scope, '_>, count: usize, root: &Path) -> Result<Self, ArchiveError> {
        let (jobs, queue) = channel::<Vec<Job>>();
        let (results, done) = channel();
        let queue = Arc::new(Mutex::new(queue));
        let mut pool = ReadPool {
            jobs: Some(jobs),
            batch: Vec::new(),
            done,
            arrived: HashMap::new(),
            next_id: 0,
            held: 0,
            threads: Vec::new(),
        };
        for i in 0..count {
            let (queue, results) = (queue.clone(), results.clone());
            let thread = std::thread::Builder::new()
                .name(format!("pack-read-{i}"))
                .spawn_scoped(scope, move || work(&queue, &results))
                .map_err(|source| ArchiveError::Io {
                    op: "start a file reading thread for",
                    path: root.to_path_buf(),
                    source,
                })?;
            pool.threads.push(thread);
        }
        Ok(pool)
    }

    /// Whether the walk may run further ahead of the writing: with no threads, one entry at a
    /// time (the writing reads each file itself).
    pub fn has_room(&self, queued_entries: usize) -> bool {
        if self.threads.is_empty() {
            queued_entries == 0
        } else {
            queued_entries < AHEAD_ENTRIES && self.held < AHEAD_BYTES
        }
    }

    /// Whether a regular file of `size` bytes is read ahead.
    pub fn wants(&self, size: u64) -> bool {
        !self.threads.is_empty() && size <= AHEAD_FILE_MAX
    }

    /// Queues the file at `path`, whose metadata said `size` bytes.
    pub fn submit(&mut self, path: PathBuf, size: u64) -> Ticket {
        let id = self.next_id;
        self.next_id += 1;
        self.held += size;
        let buf = Vec::with_capacity(size as usize);
        self.batch.push(Job { id, path, size, buf });
        if self.batch.len() == BATCH {
            self.hand_over();
        }
        Ticket { id, size }
    }

    /// Hands the files submitted since the last time to the threads.
    fn hand_over(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        let jobs = self.jobs.as_ref().expect("the queue is open while the pool lives");
        // The threads only stop when the queue closes, so the send cannot fail.
        jobs.send(batch).expect("the file reading threads outlive the queue");
    }

    /// The contents of a submitted file, waiting for them if they are still being read.
    pub fn take(&mut self, ticket: Ticket) -> ReadAhead {
        self.held -= ticket.size;
        if self.batch.first().is_some_and(|first| first.id <= ticket.id) {
            self.hand_over();
        }
        if let Some(contents) = self.arrived.remove(&ticket.id) {
            return contents;
        }
        loop {
            let (id, contents) = self.done.recv().expect("the file reading threads outlive the pool");
            if id == ticket.id {
                return contents;
            }
            self.arrived.insert(id, contents);
        }
    }
}

impl Drop for ReadPool<'_> {
    /// Closes the queue so the threads end once it is empty; the scope joins them.
    fn drop(&mut self) {
        drop(self.jobs.take());
    }
}

/// One pool thread: reads files until the queue closes (results nobody takes any more, after an
/// error of the pack, are dropped).
fn work(queue: &Mutex<Receiver<Vec<Job>>>, results: &Sender<(u64, ReadAhead)>) {
    loop {
        let batch = {
            let queue = queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            match queue.recv() {
                Ok(batch) => batch,
                Err(_) => return,
            }
        };
        for job in batch {
            let contents = match File::open(&job.path) {
                Err(e) => ReadAhead::Unopened(e),
                Ok(file) => {
                    let mut data = job.buf;
                    ReadAhead::Read(file.take(job.size).read_to_end(&mut data).map(|_| data))
                }
            };
            let _ = results.send((job.id, contents));
        }
    }
}
