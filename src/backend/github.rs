//! The v2 cache service of github.com (docs/protocol.md §4): Twirp JSON calls for lookup and reservation,
//! and the bytes themselves on Azure-style blob storage behind signed URLs. It is its own file
//! because the blob side (Put Blob / Put Block / Put Block List, ranged parallel downloads)
//! is most of the work and has nothing in common with v1's chunked `PATCH`.
//!
//! The Twirp base is the *origin* of `ACTIONS_RESULTS_URL`: the toolkit builds it with
//! `new URL('/twirp/…', base)`, which discards any path, and this client mirrors the toolkit.
//! Answers are parsed leniently (snake or camel case, int64 as string or number, `{}` is
//! `ok:false`). Signed URLs are credentials: they go to the blob host without an
//! `Authorization` header and never into a message.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Instant;

use serde_json::{Value, json};
use ureq::SendBody;

use super::artifact_cache::as_u64;
use super::http::{
    Fail, Http, SafeReader, Tuning, base64, encode_component, origin, status_error, uuid_v4, with_query,
};
use super::{ArchiveFile, Backend, BackendError, Hit, Location, Saved, Secret};

const SERVICE: &str = "twirp/github.actions.results.api.v1.CacheService";
/// The blob REST version sent with uploads (any version ≥ 2019-12-12 works, docs/protocol.md §4.5).
const BLOB_API_VERSION: &str = "2020-04-08";

/// A client of github.com's cache service.
pub struct GithubBackend {
    http: Http,
    /// `<origin>/twirp/…CacheService/`.
    service: String,
    token: Secret,
}

impl GithubBackend {
    /// `url` is `ACTIONS_RESULTS_URL`; only its origin is used. Requests give up at `deadline`.
    pub fn new(url: &str, token: Secret, deadline: Instant, tuning: Tuning) -> GithubBackend {
        let http = Http::new(deadline, tuning, &token);
        GithubBackend { http, service: format!("{}/{SERVICE}/", origin(url)), token }
    }

    /// One Twirp call: 2xx answers come back parsed (unparsable JSON is retried like a 5xx),
    /// any other status comes back with its body for the caller to judge.
    fn twirp(
        &self,
        op: &'static str,
        method: &str,
        body: &Value,
    ) -> Result<Result<Value, (u16, String)>, BackendError> {
        let url = format!("{}{method}", self.service);
        let auth = format!("Bearer {}", self.token.expose());
        self.http.retry(op, || {
            let result = self
                .http
                .request("POST", &url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(body.to_string().as_bytes());
            let response = self.http.check(op, &url, result)?;
            let status = response.status().as_u16();
            let bytes = self.http.body_bytes(op, &url, response)?;
            if !(200..300).contains(&status) {
                return Ok(Err((status, twirp_message(&self.http, &bytes))));
            }
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(value) if value.is_object() => Ok(Ok(value)),
                Ok(_) => Err(Fail::Retry(BackendError::Decode {
                    op,
                    body: self.http.clip(&bytes),
                    message: "not a JSON object".to_string(),
                })),
                Err(e) => Err(Fail::Retry(BackendError::Decode {
                    op,
                    body: self.http.clip(&bytes),
                    message: e.to_string(),
                })),
            }
        })
    }

    /// Uploads the archive as it grows and returns its size. One that ends up no larger than
    /// `single_put_max` goes in one Put Blob once complete, as the toolkit sends it; a larger
    /// one goes in Put Blocks, each sent as soon as it is written, then a Put Block List.
    fn upload(&self, url: &str, archive: &ArchiveFile) -> Result<u64, BackendError> {
        let tuning = &self.http.tuning;
        let so_far = archive.wait_for(tuning.single_put_max.saturating_add(1))?;
        if so_far.complete && so_far.bytes <= tuning.single_put_max {
            self.put("upload", url, archive.path(), 0, so_far.bytes, true)?;
            return Ok(so_far.bytes);
        }
        let block = tuning.block_size.max(1);
        let prefix = uuid_v4();
        let next = AtomicU64::new(0);
        let failed = AtomicBool::new(false);
        let first_error: Mutex<Option<BackendError>> = Mutex::new(None);
        thread::scope(|scope| {
            for _ in 0..tuning.parallelism.max(1) {
                scope.spawn(|| {
                    while !failed.load(Ordering::Relaxed) {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let start = index * block;
                        let result =
                            archive.wait_for(start + block).map_err(BackendError::from).and_then(|written| {
                                // Past the end of the complete archive, or another block failed
                                // while this one was being written.
                                if start >= written.bytes || failed.load(Ordering::Relaxed) {
                                    return Ok(false);
                                }
                                let len = block.min(written.bytes - start);
                                let id = encode_component(&block_id(&prefix, index));
                                let block_url = with_query(url, &format!("comp=block&blockid={id}"));
                                self.put("upload", &block_url, archive.path(), start, len, false)?;
                                Ok(true)
                            });
                        match result {
                            Ok(true) => {}
                            Ok(false) => break,
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                first_error.lock().unwrap().get_or_insert(e);
                            }
                        }
                    }
                });
            }
        });
        if let Some(e) = first_error.into_inner().unwrap() {
            return Err(e);
        }
        let size = archive.wait_until_complete()?;
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
        for index in 0..size.div_ceil(block) {
            xml.push_str(&format!("<Latest>{}</Latest>", block_id(&prefix, index)));
        }
        xml.push_str("</BlockList>");
        let op = "upload";
        let list_url = with_query(url, "comp=blocklist");
        self.http.retry(op, || {
            let result = self
                .http
                .request("PUT", &list_url)
                .header("x-ms-version", BLOB_API_VERSION)
                .header("Content-Type", "application/xml")
                .send(xml.as_bytes());
            let response = self.http.check(op, &list_url, result)?;
            blob_answer(&self.http, op, response)
        })?;
        Ok(size)
    }

    /// One Put Blob (`whole`) or Put Block of `len` bytes at `start`, with an explicit length.
    fn put(
        &self,
        op: &'static str,
        url: &str,
        archive: &Path,
        start: u64,
        len: u64,
        whole: bool,
    ) -> Result<(), BackendError> {
        self.http.retry(op, || {
            let mut file =
                File::open(archive).map_err(|source| Fail::Final(io_error(op, archive, source)))?;
            file.seek(SeekFrom::Start(start)).map_err(|source| Fail::Final(io_error(op, archive, source)))?;
            let mut request = self
                .http
                .request("PUT", url)
                .header("x-ms-version", BLOB_API_VERSION)
                .header("Content-Type", "application/octet-stream")
                .header("Content-Length", len.to_string());
            if whole {
                request = request.header("x-ms-blob-type", "BlockBlob");
            }
            let result = request.send(SendBody::from_owned_reader(file.take(len)));
            let response = self.http.check(op, url, result)?;
            blob_answer(&self.http, op, response)
        })
    }

    /// Downloads with ranged parallel GETs when the blob host supports them (`206` with a
    /// total in `Content-Range`), else streams the one answer it gave (docs/protocol.md §11).
    fn ranged_download(&self, url: &str) -> Result<Box<dyn Read + Send>, BackendError> {
        let op = "download";
        let http = &self.http;
        let block = http.tuning.download_block.max(1);
        let first = http.retry(op, || {
            let result = http.get(url).header("Range", format!("bytes=0-{}", block - 1)).call();
            let response = http.check(op, url, result)?;
            match response.status().as_u16() {
                206 => {
                    let total = response
                        .headers()
                        .get("content-range")
                        .and_then(|v| v.to_str().ok())
                        .and_then(range_total);
                    match total {
                        Some(total) => {
                            Ok(First::Ranged(read_exact_body(http, url, response, block.min(total))?, total))
                        }
                        // Nothing to plan ranges with: start over with one plain GET.
                        None => Ok(First::Restart),
                    }
                }
                200..=299 => Ok(First::Whole(response)),
                // An empty blob cannot satisfy any range.
                416 => Ok(First::Restart),
                401 | 403 => Err(Fail::Final(BackendError::Expired { op })),
                status => Err(Fail::Final(status_error(op, status, http.body_text(response)))),
            }
        })?;
        match first {
            First::Ranged(bytes, total) => {
                Ok(Box::new(RangedReader::start(http.clone(), Secret(url.to_string()), bytes, total, block)))
            }
            First::Whole(response) => Ok(Box::new(SafeReader::new(response, http, url))),
            First::Restart => Ok(Box::new(http.stream_get(op, url)?)),
        }
    }
}

/// What the first ranged `GET` of a download turned out to be.
enum First {
    /// `206`: the first block and the blob's total size.
    Ranged(Vec<u8>, u64),
    /// `200`: the host ignores `Range`; this is the whole body.
    Whole(ureq::http::Response<ureq::Body>),
    /// No usable total: fetch again without `Range`.
    Restart,
}

/// Reads a ranged answer that must hold exactly `expected` bytes; short or broken answers
/// are retried, unless the deadline has passed.
fn read_exact_body(
    http: &Http,
    url: &str,
    response: ureq::http::Response<ureq::Body>,
    expected: u64,
) -> Result<Vec<u8>, Fail> {
    let op = "download";
    let mut bytes = Vec::with_capacity(expected as usize);
    if let Err(e) = SafeReader::new(response, http, url).read_to_end(&mut bytes) {
        if Instant::now() >= http.deadline() {
            return Err(Fail::Final(BackendError::TimedOut { op }));
        }
        return Err(Fail::Retry(BackendError::Transport {
            op,
            host: super::http::host_of(url).into(),
            message: e.to_string(),
        }));
    }
    if bytes.len() as u64 != expected {
        return Err(Fail::Retry(BackendError::Decode {
            op,
            body: String::new(),
            message: format!("a range came back with {} bytes instead of {expected}", bytes.len()),
        }));
    }
    Ok(bytes)
}

impl Backend for GithubBackend {
    fn name(&self) -> String {
        "github (v2)".to_string()
    }

    fn lookup(&self, keys: &[String], version: &str) -> Result<Option<Hit>, BackendError> {
        if keys.is_empty() {
            return Ok(None);
        }
        let op = "lookup";
        let mut body = json!({ "key": keys[0], "version": version });
        if keys.len() > 1 {
            body["restore_keys"] = json!(keys[1..]);
        }
        let value = match self.twirp(op, "GetCacheEntryDownloadURL", &body)? {
            Ok(value) => value,
            Err((404, _)) => return Ok(None),
            Err((status, message)) => return Err(status_error(op, status, message)),
        };
        lookup_answer(&value, keys)
    }

    fn download(&self, hit: &Hit) -> Result<Box<dyn Read + Send>, BackendError> {
        let Location::Url(url) = &hit.location else {
            unreachable!("github hits always carry a URL");
        };
        self.ranged_download(url.expose())
    }

    /// Reserves once the archive has its first bytes (so an archive that fails at once, or is
    /// empty, reserves nothing), then uploads while it is still being packed.
    fn save(&self, key: &str, version: &str, archive: &ArchiveFile) -> Result<Saved, BackendError> {
        let first = archive.wait_for(1)?;
        if first.complete && first.bytes == 0 {
            // Finalizing an empty upload is answered 500 by some servers (docs/protocol.md §11).
            let message = format!("{} is empty", archive.path().display());
            return Err(BackendError::Rejected { op: "save", message });
        }
        let op = "reserve";
        let value = match self.twirp(op, "CreateCacheEntry", &json!({ "key": key, "version": version }))? {
            Ok(value) => value,
            Err((409, message)) => return Ok(Saved::AlreadyExists(message)),
            Err((status, message)) => return Err(status_error(op, status, message)),
        };
        let message = field(&value, "message").and_then(Value::as_str).unwrap_or_default().to_string();
        if message.to_ascii_lowercase().contains("cache write denied:") {
            return Err(BackendError::Denied { op, message: self.http.clip(message.as_bytes()) });
        }
        let url = field(&value, "signed_upload_url").and_then(Value::as_str).filter(|s| !s.is_empty());
        let (true, Some(url)) = (field(&value, "ok").and_then(Value::as_bool).unwrap_or(false), url) else {
            let message =
                if message.is_empty() { format!("the service did not reserve {key}") } else { message };
            return Ok(Saved::AlreadyExists(self.http.clip(message.as_bytes())));
        };
        let size = self.upload(url, archive)?;
        let op = "finalize";
        let body = json!({ "key": key, "size_bytes": size.to_string(), "version": version });
        let value = match self.twirp(op, "FinalizeCacheEntryUpload", &body)? {
            Ok(value) => value,
            Err((status, message)) => return Err(status_error(op, status, message)),
        };
        if field(&value, "ok").and_then(Value::as_bool).unwrap_or(false) {
            tracing::debug!("finalized entry {:?}", field(&value, "entry_id").and_then(as_u64));
            return Ok(Saved::Stored);
        }
        let message =
            field(&value, "message").and_then(Value::as_str).unwrap_or("ok:false without a message");
        Err(BackendError::Rejected { op, message: self.http.clip(message.as_bytes()) })
    }
}

/// The hit, if any, described by a `GetCacheEntryDownloadURL` answer (`keys` is not empty).
pub(crate) fn lookup_answer(value: &Value, keys: &[String]) -> Result<Option<Hit>, BackendError> {
    if !field(value, "ok").and_then(Value::as_bool).unwrap_or(false) {
        return Ok(None);
    }
    let Some(url) = field(value, "signed_download_url").and_then(Value::as_str).filter(|s| !s.is_empty())
    else {
        return Err(BackendError::Decode {
            op: "lookup",
            body: String::new(),
            message: "ok:true without signed_download_url".into(),
        });
    };
    let key =
        field(value, "matched_key").and_then(Value::as_str).filter(|s| !s.is_empty()).unwrap_or(&keys[0]);
    Ok(Some(Hit { key: key.to_string(), size: None, location: Location::Url(Secret(url.to_string())) }))
}

/// The total size in a `Content-Range: bytes a-b/total` header.
pub(crate) fn range_total(value: &str) -> Option<u64> {
    value.rsplit('/').next().and_then(|v| v.trim().parse::<u64>().ok())
}

/// A field by its proto (snake_case) name or its JSON (lowerCamelCase) name.
fn field<'v>(value: &'v Value, snake: &str) -> Option<&'v Value> {
    value.get(snake).or_else(|| {
        let mut camel = String::new();
        let mut upper = false;
        for c in snake.chars() {
            if c == '_' {
                upper = true;
            } else if upper {
                camel.push(c.to_ascii_uppercase());
                upper = false;
            } else {
                camel.push(c);
            }
        }
        value.get(camel)
    })
}

/// `msg` of a Twirp error, the `message` of other frameworks, or the raw text.
pub(crate) fn twirp_message(http: &Http, body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        let code = value.get("code").and_then(Value::as_str);
        let text = ["msg", "message", "error"].iter().find_map(|f| value.get(*f).and_then(Value::as_str));
        match (code, text) {
            (Some(code), Some(text)) => return http.clip(format!("{code}: {text}").as_bytes()),
            (None, Some(text)) => return http.clip(text.as_bytes()),
            _ => {}
        }
    }
    http.clip(body)
}

/// The answer of a blob PUT: 2xx is done; 401/403 is an expired or refused signed URL.
fn blob_answer(
    http: &Http,
    op: &'static str,
    response: ureq::http::Response<ureq::Body>,
) -> Result<(), Fail> {
    match response.status().as_u16() {
        200..=299 => Ok(()),
        401 | 403 => Err(Fail::Final(BackendError::Expired { op })),
        status => Err(Fail::Final(status_error(op, status, http.body_text(response)))),
    }
}

/// The block id of docs/protocol.md §11: base64 of a 36-character UUID and the 12-digit block index.
pub(crate) fn block_id(uuid: &str, index: u64) -> String {
    let raw = format!("{uuid}{index:012}");
    debug_assert_eq!(raw.len(), 48);
    base64(raw.as_bytes())
}

fn io_error(op: &'static str, path: &Path, source: io::Error) -> BackendError {
    BackendError::Io { op, path: path.to_path_buf(), source }
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
    http.retry(op, || {
        let result = http.get(url).header("Range", format!("bytes={start}-{end}")).call();
        let response = http.check(op, url, result)?;
        match response.status().as_u16() {
            206 => read_exact_body(http, url, response, end - start + 1),
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
    fn block_ids_have_the_spec_layout() {
        let uuid = "0f8fad5b-d9cb-469f-a165-70867728950e";
        let id = block_id(uuid, 7);
        assert_eq!(id.len(), 64);
        assert_eq!(id, base64(b"0f8fad5b-d9cb-469f-a165-70867728950e000000000007"));
        assert_eq!(encode_component("a+b/c="), "a%2Bb%2Fc%3D");
    }

    #[test]
    fn lenient_fields() {
        let v = json!({"signedDownloadUrl": "u", "ok": true});
        assert_eq!(field(&v, "signed_download_url"), Some(&json!("u")));
        assert_eq!(field(&v, "ok"), Some(&json!(true)));
        assert_eq!(as_u64(&json!("12")), Some(12));
    }
}
