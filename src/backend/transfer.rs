//! The moving of bytes that every networked backend does the same way, once its protocol has
//! said where they go: a pool of workers taking numbered parts, the upload of one byte range of
//! the archive (the file opened and sought anew on every attempt, so a retry resends exactly
//! that range), ranged parallel downloads in a bounded window, and the "cache read/write
//! denied" rule. The protocol files (`artifact_cache.rs`, `github.rs`, `s3.rs`) keep only what
//! their service asks for: URLs, headers and how to read an answer.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Instant;

use ureq::http::Response;
use ureq::typestate::WithBody;
use ureq::{Body, RequestBuilder, SendBody};

use super::http::{Fail, Http, SafeReader, host_of, status_error};
use super::{ArchiveFile, Backend, BackendError, Hit, Secret};

/// Where the entry found by a runner cache service (v1 or v2) is downloaded from: a URL that
/// may carry a signature, and the version it was looked up under (to look it up again when
/// the signature has expired).
#[derive(Debug, Clone)]
pub struct SignedUrl {
    pub url: Secret,
    pub version: String,
}

pub(crate) fn io_error(op: &'static str, path: &Path, source: io::Error) -> BackendError {
    BackendError::Io { op, path: path.to_path_buf(), source }
}

/// Runs `task(0)`, `task(1)`, … on up to `workers` threads until a task answers `Ok(false)`
/// (no part with that number) or fails. After a failure no new part is started, and `stopped`,
/// which every task is handed, is set so that a task waiting for its data can give up too; the
/// first failure is returned.
pub(crate) fn in_parallel(
    workers: usize,
    task: impl Fn(u64, &AtomicBool) -> Result<bool, BackendError> + Sync,
) -> Result<(), BackendError> {
    let next = AtomicU64::new(0);
    let stopped = AtomicBool::new(false);
    let first_error: Mutex<Option<BackendError>> = Mutex::new(None);
    thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            scope.spawn(|| {
                while !stopped.load(Ordering::Relaxed) {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    match task(index, &stopped) {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(e) => {
                            stopped.store(true, Ordering::Relaxed);
                            first_error.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    match first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Sends a growing archive in parts of `part` bytes (the last may be shorter), each as soon
/// as it is written, from up to `workers` threads: `send(index, start, len)` sends one. A part
/// waiting for its bytes gives up when another part has failed.
pub(crate) fn upload_while_packing(
    archive: &ArchiveFile,
    part: u64,
    workers: usize,
    send: impl Fn(u64, u64, u64) -> Result<(), BackendError> + Sync,
) -> Result<(), BackendError> {
    in_parallel(workers, |index, stopped| {
        let start = index * part;
        let written = archive.wait_for(start + part)?;
        // Past the end of the complete archive, or another part failed while this one was
        // being written.
        if start >= written.bytes || stopped.load(Ordering::Relaxed) {
            return Ok(false);
        }
        send(index, start, part.min(written.bytes - start))?;
        Ok(true)
    })
}

/// Sends bytes `start..start + len` of `archive` as the body of the request `build` makes
/// (with an explicit `Content-Length`), retried per [`Http::retry`]; `answer` reads a response
/// that was neither a 429 nor a retryable 5xx. The bytes are metered by the step's
/// [`UploadPace`](super::upload_pace::UploadPace): an upload that would take longer than the
/// job has run ends in [`BackendError::TooSlowToSave`], not retried.
pub(crate) fn send_range<T>(
    http: &Http,
    op: &'static str,
    url: &str,
    archive: &Path,
    (start, len): (u64, u64),
    build: impl Fn() -> RequestBuilder<WithBody>,
    answer: impl Fn(Response<Body>) -> Result<T, Fail>,
) -> Result<T, BackendError> {
    let pace = &http.tuning.upload_pace;
    let _in_flight = pace.in_flight(archive);
    http.retry(op, || {
        let mut file = File::open(archive).map_err(|source| Fail::Final(io_error(op, archive, source)))?;
        file.seek(SeekFrom::Start(start)).map_err(|source| Fail::Final(io_error(op, archive, source)))?;
        let body = pace.meter(archive, file.take(len));
        let result =
            build().header("Content-Length", len.to_string()).send(SendBody::from_owned_reader(body));
        if let Some(slow) = pace.gave_up(archive) {
            return Err(Fail::Final(slow.into()));
        }
        answer(http.check(op, url, result)?)
    })
}

/// A download whose first attempt may find the signed URL expired: the entry is looked up
/// again (under the key that was found, and the same version) and fetched from the new URL.
pub(crate) fn download_again_if_expired(
    backend: &dyn Backend,
    hit: &Hit,
    version: &str,
    first: Result<Box<dyn Read + Send>, BackendError>,
    fetch: impl FnOnce(&Hit) -> Result<Box<dyn Read + Send>, BackendError>,
) -> Result<Box<dyn Read + Send>, BackendError> {
    match first {
        Err(BackendError::Expired { .. }) => {
            tracing::info!("the download URL expired; looking the entry up again");
            let again = backend.lookup(std::slice::from_ref(&hit.key), version)?;
            let again = again.ok_or(BackendError::Rejected {
                op: "download",
                message: format!("{} disappeared between lookup and download", hit.key),
            })?;
            fetch(&again)
        }
        other => other,
    }
}

/// Downloads `url` with ranged parallel GETs when the host supports them (`206` with a total
/// in `Content-Range`), else streams the one answer it gave (docs/protocol.md §11). A refused URL
/// (401/403) is [`BackendError::Expired`]. Every read waits at most the stall timeout
/// ([`Http::downloading`]), and a range that stalls is asked again from its last byte.
pub(crate) fn ranged_download(http: &Http, url: &Secret) -> Result<Box<dyn Read + Send>, BackendError> {
    let op = "download";
    let http = &http.downloading();
    let block = http.tuning.download_block.max(1);
    let mut got = Vec::new();
    let first = http.retry(op, || {
        let from = got.len() as u64;
        let result = http.get(url.expose()).header("Range", format!("bytes={from}-{}", block - 1)).call();
        let response = http.check(op, url.expose(), result)?;
        match response.status().as_u16() {
            206 => {
                let total = response
                    .headers()
                    .get("content-range")
                    .and_then(|v| v.to_str().ok())
                    .and_then(range_total);
                match total {
                    Some(total) => {
                        read_exact_body(http, url.expose(), response, &mut got, block.min(total))?;
                        Ok(First::Ranged(std::mem::take(&mut got), total))
                    }
                    // Nothing to plan ranges with: start over with one plain GET.
                    None => Ok(First::Restart),
                }
            }
            // The host ignores `Range` (or an empty object cannot satisfy one).
            200..=299 if from == 0 => Ok(First::Whole(response)),
            416 if from == 0 => Ok(First::Restart),
            401 | 403 => Err(Fail::Final(BackendError::Expired { op })),
            status => Err(Fail::Final(status_error(op, status, http.body_text(response)))),
        }
    })?;
    match first {
        First::Ranged(bytes, total) => {
            Ok(Box::new(RangedReader::start(http.clone(), url.clone(), bytes, total, block)))
        }
        First::Whole(response) => Ok(Box::new(SafeReader::new(response, http, url.expose()))),
        First::Restart => Ok(Box::new(http.stream_get(op, url.expose())?)),
    }
}

/// What the first ranged `GET` of a download turned out to be.
enum First {
    /// `206`: the first block and the object's total size.
    Ranged(Vec<u8>, u64),
    /// `200`: the host ignores `Range`; this is the whole body.
    Whole(Response<Body>),
    /// No usable total: fetch again without `Range`.
    Restart,
}

/// The total size in a `Content-Range: bytes a-b/total` header.
pub(crate) fn range_total(value: &str) -> Option<u64> {
    value.rsplit('/').next().and_then(|v| v.trim().parse::<u64>().ok())
}

/// Reads a ranged answer onto `got` until it holds `expected` bytes. A body that breaks off is
/// retried from the last byte received: at once when bytes came in this attempt (the server was
/// sending; the silence that ended it was the wait), after the backoff otherwise; never past
/// the deadline. An answer with more bytes than asked is refused.
fn read_exact_body(
    http: &Http,
    url: &str,
    response: Response<Body>,
    got: &mut Vec<u8>,
    expected: u64,
) -> Result<(), Fail> {
    let op = "download";
    let before = got.len();
    let left = expected.saturating_sub(before as u64);
    // The whole range at once: grown by doubling on a fetching thread, the buffer would leave
    // its smaller steps behind in that thread's allocator arena (tens of MiB of resident memory
    // over a download of hundreds of ranges).
    got.reserve_exact(left as usize);
    // One byte more than asked, to tell an overlong answer from an exact one.
    let read = SafeReader::new(response, http, url).take(left + 1).read_to_end(got);
    if let Err(e) = read {
        if Instant::now() >= http.deadline() {
            return Err(Fail::Final(BackendError::TimedOut { op }));
        }
        let error = BackendError::Transport { op, host: host_of(url).into(), message: e.to_string() };
        return Err(if got.len() > before { Fail::RetryNow(error) } else { Fail::Retry(error) });
    }
    if got.len() as u64 != expected {
        let came = got.len() - before;
        got.truncate(before);
        return Err(Fail::Retry(BackendError::Decode {
            op,
            body: String::new(),
            message: format!("a range came back with {came} bytes instead of {left}"),
        }));
    }
    Ok(())
}

/// Shared state of a ranged download: blocks fetched ahead, in a bounded window.
struct Window {
    /// Index of the next block a worker should fetch.
    next: u64,
    /// Index of the block the reader waits for.
    wanted: u64,
    done: BTreeMap<u64, Result<Vec<u8>, String>>,
    cancelled: bool,
}

/// Yields the first block, then the remaining ranges in order while a few threads fetch
/// ahead; at most `parallelism + 1` blocks are held in memory (the one being read and the
/// ones being fetched or waiting), so the workers never get more than `parallelism` blocks
/// ahead of the reader.
struct RangedReader {
    state: Arc<(Mutex<Window>, Condvar)>,
    current: io::Cursor<Vec<u8>>,
    count: u64,
    deadline: Instant,
}

impl RangedReader {
    fn start(http: Http, url: Secret, first: Vec<u8>, total: u64, block: u64) -> RangedReader {
        let count = total.div_ceil(block);
        let state = Arc::new((
            Mutex::new(Window { next: 1, wanted: 1, done: BTreeMap::new(), cancelled: false }),
            Condvar::new(),
        ));
        let window = http.tuning.parallelism.max(1) as u64;
        for _ in 0..http.tuning.parallelism.max(1).min(count.saturating_sub(1) as usize) {
            let (state, http, url) = (state.clone(), http.clone(), url.clone());
            thread::spawn(move || {
                loop {
                    let index = {
                        let (lock, cvar) = &*state;
                        let mut w = lock.lock().unwrap();
                        while !w.cancelled && w.next < count && w.next >= w.wanted + window {
                            w = cvar.wait(w).unwrap();
                        }
                        if w.cancelled || w.next >= count {
                            return;
                        }
                        w.next += 1;
                        w.next - 1
                    };
                    let start = index * block;
                    let end = (start + block).min(total) - 1;
                    let result = fetch_range(&http, url.expose(), start, end);
                    let (lock, cvar) = &*state;
                    let mut w = lock.lock().unwrap();
                    let failed = result.is_err();
                    w.done.insert(index, result);
                    if failed {
                        w.cancelled = true;
                    }
                    cvar.notify_all();
                }
            });
        }
        RangedReader { state, current: io::Cursor::new(first), count, deadline: http.deadline() }
    }
}

fn fetch_range(http: &Http, url: &str, start: u64, end: u64) -> Result<Vec<u8>, String> {
    let op = "download";
    let mut got = Vec::new();
    http.retry(op, || {
        let from = start + got.len() as u64;
        let result = http.get(url).header("Range", format!("bytes={from}-{end}")).call();
        let response = http.check(op, url, result)?;
        match response.status().as_u16() {
            206 => {
                read_exact_body(http, url, response, &mut got, end - start + 1)?;
                Ok(std::mem::take(&mut got))
            }
            401 | 403 => Err(Fail::Final(BackendError::Expired { op })),
            status => Err(Fail::Final(status_error(op, status, http.body_text(response)))),
        }
    })
    .map_err(|e| format!("bytes {start}-{end}: {e}"))
}

impl Read for RangedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.current.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            let (lock, cvar) = &*self.state;
            let mut w = lock.lock().unwrap();
            if w.wanted >= self.count {
                return Ok(0);
            }
            loop {
                let wanted = w.wanted;
                if let Some(result) = w.done.remove(&wanted) {
                    w.wanted += 1;
                    cvar.notify_all();
                    match result {
                        Ok(bytes) => {
                            self.current = io::Cursor::new(bytes);
                            break;
                        }
                        Err(message) => return Err(io::Error::other(message)),
                    }
                }
                // A failed block stops the workers; report it rather than wait forever.
                if let Some(Err(message)) = w.done.values().find(|r| r.is_err()) {
                    return Err(io::Error::other(message.clone()));
                }
                let left = self.deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "download stopped at the deadline"));
                }
                w = cvar.wait_timeout(w, left).unwrap().0;
            }
        }
    }
}

impl Drop for RangedReader {
    fn drop(&mut self) {
        let (lock, cvar) = &*self.state;
        lock.lock().unwrap().cancelled = true;
        cvar.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_run_until_the_last_or_the_first_failure() {
        let seen = Mutex::new(Vec::new());
        in_parallel(3, |i, _| {
            if i >= 7 {
                return Ok(false);
            }
            seen.lock().unwrap().push(i);
            Ok(true)
        })
        .unwrap();
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        assert_eq!(seen, (0..7).collect::<Vec<_>>());

        let error = in_parallel(2, |i, _| {
            if i == 2 {
                Err(BackendError::Rejected { op: "t", message: "part 2".into() })
            } else {
                Ok(i < 100)
            }
        })
        .unwrap_err();
        assert!(error.to_string().contains("part 2"), "{error}");
    }

    #[test]
    fn content_range_totals_are_read() {
        assert_eq!(range_total("bytes 0-9/120"), Some(120));
        assert_eq!(range_total("bytes 0-9/*"), None);
    }
}
