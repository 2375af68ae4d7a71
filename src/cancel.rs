//! Cancellation. A runner cancels a job with SIGINT, then SIGTERM about 7.5 s later, then
//! SIGKILL. Without this module either signal would end the process where it stands, leaving
//! a half-extracted staging directory beside the target or a temporary archive in
//! `RUNNER_TEMP`. With it, a step that gets SIGINT or SIGTERM stops its work, removes what it
//! had half-made, leaves targets and stores as they were, and dies of the same signal, so the
//! runner sees the status it expects.
//!
//! How: [`watch`] blocks both signals in the main thread before any other thread exists (so
//! every thread inherits the mask) and waits for them on a thread of its own with `sigwait`,
//! which needs no async-signal-safe handler. An arrival is recorded ([`requested`]) and wakes
//! whoever asked to be woken ([`on_signal`]). The work checks [`requested`] between steps and
//! its reads and writes go through [`Watched`], which fails once a signal came. What must not
//! outlive a cancelled step is registered as a [`Removal`]; [`exit`] deletes whatever is still
//! registered, then re-raises the signal.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};

/// The signal that arrived, 0 before one did.
static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// Called once when a signal arrives.
static WAKERS: Mutex<Vec<Box<dyn Fn() + Send>>> = Mutex::new(Vec::new());
/// Paths to delete if the step is cancelled; see [`Removal`].
static REMOVALS: Mutex<Vec<(u64, PathBuf)>> = Mutex::new(Vec::new());
static NEXT_REMOVAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A cancelling signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal(pub(crate) i32);

impl Signal {
    /// The exit status a shell reports for a process killed by this signal.
    pub fn status(self) -> i32 {
        128 + self.0
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            libc::SIGINT => f.write_str("SIGINT"),
            libc::SIGTERM => f.write_str("SIGTERM"),
            n => write!(f, "signal {n}"),
        }
    }
}

/// The work was stopped by a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cancelled by {0}")]
pub struct Cancelled(pub Signal);

impl From<Cancelled> for io::Error {
    fn from(c: Cancelled) -> io::Error {
        // Not `Interrupted`: `read_exact` and friends retry those.
        io::Error::other(c)
    }
}

fn signals() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a set owned by this frame.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

/// Starts watching for SIGINT and SIGTERM. Call it first thing, before any other thread is
/// started: threads started earlier would not inherit the blocked mask and would die of the
/// signal. Returns `false` (and nothing is watched) if the mask cannot be set.
pub fn watch() -> bool {
    let set = signals();
    // SAFETY: the set is initialised; a null old-set pointer is allowed.
    if unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) } != 0 {
        return false;
    }
    std::thread::spawn(move || {
        let mut number = 0;
        // SAFETY: `set` is initialised and `number` outlives the call.
        while unsafe { libc::sigwait(&set, &mut number) } != 0 {}
        SIGNAL.store(number, Ordering::SeqCst);
        for wake in WAKERS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            wake();
        }
    });
    true
}

/// The signal received so far, if any.
pub fn requested() -> Option<Signal> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        n => Some(Signal(n)),
    }
}

/// `Err` once a signal arrived: for the work to call between steps.
pub fn check() -> Result<(), Cancelled> {
    requested().map_or(Ok(()), |s| Err(Cancelled(s)))
}

/// Calls `wake` when a signal arrives (at once, if one already did).
pub fn on_signal(wake: impl Fn() + Send + 'static) {
    let mut wakers = WAKERS.lock().unwrap_or_else(|e| e.into_inner());
    if requested().is_some() {
        wake();
    }
    wakers.push(Box::new(wake));
}

/// A reader or writer that fails with [`Cancelled`] once a signal arrived, so a download, an
/// extraction or a packing stops at its next read or write.
pub struct Watched<T>(pub T);

impl<R: Read> Read for Watched<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        check()?;
        self.0.read(buf)
    }
}

impl<W: Write> Write for Watched<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        check()?;
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// A path (file or directory tree) that [`exit`] deletes if the step is cancelled while this
/// value lives. Dropping it forgets the path, without deleting it: whoever made the path
/// still decides what happens to it when the work ends normally.
#[must_use]
pub struct Removal(u64);

impl Removal {
    pub fn register(path: &Path) -> Removal {
        let id = NEXT_REMOVAL.fetch_add(1, Ordering::SeqCst);
        REMOVALS.lock().unwrap_or_else(|e| e.into_inner()).push((id, path.to_path_buf()));
        Removal(id)
    }
}

impl Drop for Removal {
    fn drop(&mut self) {
        REMOVALS.lock().unwrap_or_else(|e| e.into_inner()).retain(|(id, _)| *id != self.0);
    }
}

/// Deletes every registered path, then ends the process by `signal` as if it had not been
/// caught: the default action is restored and the signal raised again. (If that somehow
/// returns, the exit status is the shell's `128 + n`.)
pub fn exit(signal: Signal) -> ! {
    let paths: Vec<PathBuf> =
        REMOVALS.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(_, p)| p.clone()).collect();
    for path in paths {
        remove(&path);
    }
    let set = signals();
    // SAFETY: plain libc calls on an initialised set and a valid signal number.
    unsafe {
        libc::signal(signal.0, libc::SIG_DFL);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(signal.0);
    }
    std::process::exit(signal.status())
}

/// Removes a file or a directory tree; a tree still being written to may need a second try.
fn remove(path: &Path) {
    for _ in 0..3 {
        let gone = match std::fs::symlink_metadata(path) {
            Err(_) => true,
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path).is_ok(),
            Ok(_) => std::fs::remove_file(path).is_ok(),
        };
        if gone {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removal_is_forgotten_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let registered = |p: &Path| REMOVALS.lock().unwrap().iter().any(|(_, q)| q == p);
        let removal = Removal::register(dir.path());
        assert!(registered(dir.path()));
        drop(removal);
        assert!(!registered(dir.path()));
        assert!(dir.path().exists(), "dropping a removal deletes nothing");
    }

    #[test]
    fn remove_takes_files_and_trees() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("a/b")).unwrap();
        std::fs::write(tree.join("a/b/c"), "c").unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "f").unwrap();
        remove(&tree);
        remove(&file);
        remove(&dir.path().join("missing"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn the_status_is_the_shells() {
        assert_eq!(Signal(libc::SIGTERM).status(), 143);
        assert_eq!(Signal(libc::SIGINT).status(), 130);
        assert_eq!(Signal(libc::SIGTERM).to_string(), "SIGTERM");
        assert_eq!(Cancelled(Signal(libc::SIGINT)).to_string(), "cancelled by SIGINT");
    }
}
