//! The v1 `_apis/artifactcache` REST protocol (docs/protocol.md §3): GHES, nektos/act, Forgejo and Gitea
//! runners. It exists as its own file because its save path (reserve → chunked `PATCH` →
//! commit) and its error shapes share nothing with the v2 Twirp protocol but the HTTP helpers.
//!
//! Lookup and download: `GET cache?keys=…&version=…` (204 = miss) gives an `archiveLocation`
//! that is fetched with one streaming `GET` and no credentials. Save: `POST caches` with
//! `cacheSize` (409 or any other refusal = someone else holds the key, 400 = too big), equal
//! `PATCH` chunks with `Content-Range: bytes a-b/*` from a few threads, then `POST caches/{id}`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Instant;

use serde_json::{Value, json};
use ureq::SendBody;

use super::http::{Fail, Http, Tuning, encode_component, status_error};
use super::{ArchiveFile, Backend, BackendError, Hit, Location, Saved, Secret};

const ACCEPT: &str = "application/json;api-version=6.0-preview.1";

/// A client of one `ACTIONS_CACHE_URL`.
pub struct ArtifactCacheBackend {
    http: Http,
    /// The base URL, ending in exactly one `/`.
    base: String,
    token: Secret,
}

impl ArtifactCacheBackend {
    /// `url` is `ACTIONS_CACHE_URL` (it may carry a path); requests give up at `deadline`.
    pub fn new(url: &str, token: Secret, deadline: Instant, tuning: Tuning) -> ArtifactCacheBackend {
        let http = Http::new(deadline, tuning, &token);
        ArtifactCacheBackend { http, base: format!("{}/", url.trim_end_matches('/')), token }
    }

    fn api_url(&self, resource: &str) -> String {
        format!("{}_apis/artifactcache/{resource}", self.base)
    }

    /// One API call with the v1 headers, retried per [`Http::retry`]; returns status + body.
    fn call(
        &self,
        op: &'static str,
        method: &str,
        url: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Vec<u8>), BackendError> {
        let auth = format!("Bearer {}", self.token.expose());
        self.http.retry(op, || {
            let result = if method == "GET" {
                self.http.get(url).header("Authorization", &auth).header("Accept", ACCEPT).call()
            } else {
                let request =
                    self.http.request(method, url).header("Authorization", &auth).header("Accept", ACCEPT);
                match body {
                    Some(body) => {
                        request.header("Content-Type", "application/json").send(body.to_string().as_bytes())
                    }
                    None => request.send_empty(),
                }
            };
            let response = self.http.check(op, url, result)?;
            let status = response.status().as_u16();
            let bytes = self.http.body_bytes(op, url, response)?;
            Ok((status, bytes))
        })
    }

    /// The service's own words from an error body: `message` (GitHub), `error` (act), or text.
    pub(crate) fn message(&self, body: &[u8]) -> String {
        if let Ok(value) = serde_json::from_slice::<Value>(body) {
            for field in ["message", "error", "msg"] {
                if let Some(text) = value.get(field).and_then(Value::as_str) {
                    return self.http.clip(text.as_bytes());
                }
            }
        }
        self.http.clip(body)
    }

    fn reserve(&self, key: &str, version: &str, size: u64) -> Result<Result<u64, Saved>, BackendError> {
        let op = "reserve";
        let body = json!({ "key": key, "version": version, "cacheSize": size });
        let (status, bytes) = self.call(op, "POST", &self.api_url("caches"), Some(&body))?;
        let message = self.message(&bytes);
        if message.to_ascii_lowercase().contains("cache write denied:") {
            return Err(BackendError::Denied { op, message });
        }
        match status {
            200..=299 => {
                let id = serde_json::from_slice::<Value>(&bytes)
                    .ok()
                    .and_then(|v| v.get("cacheId").and_then(as_u64));
                Ok(id.ok_or_else(|| {
                    Saved::AlreadyExists(format!("no cache id in the answer to reserving {key}: {message}"))
                }))
            }
            400 => Err(BackendError::TooBig { op, size, message }),
            401 | 429 => Err(status_error(op, status, message)),
            _ => Ok(Err(Saved::AlreadyExists(message))),
        }
    }

    /// Sends the archive in equal chunks (the last may be shorter) from a few threads.
    fn upload(&self, id: u64, archive: &Path, size: u64) -> Result<(), BackendError> {
        let op = "upload";
        let chunk = self.http.tuning.upload_chunk.max(1);
        let url = self.api_url(&format!("caches/{id}"));
        let next = AtomicU64::new(0);
        let failed = AtomicBool::new(false);
        let first_error: Mutex<Option<BackendError>> = Mutex::new(None);
        let workers = self.http.tuning.parallelism.max(1).min(size.div_ceil(chunk) as usize).max(1);
        thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    while !failed.load(Ordering::Relaxed) {
                        let start = next.fetch_add(chunk, Ordering::Relaxed);
                        if start >= size {
                            break;
                        }
                        let end = (start + chunk).min(size) - 1;
                        if let Err(e) = self.upload_chunk(&url, archive, start, end) {
                            failed.store(true, Ordering::Relaxed);
                            first_error.lock().unwrap().get_or_insert(e);
                        }
                    }
                });
            }
        });
        match first_error.into_inner().unwrap() {
            Some(e) => Err(e),
            None if failed.load(Ordering::Relaxed) => Err(BackendError::TimedOut { op }),
            None => Ok(()),
        }
    }

    fn upload_chunk(&self, url: &str, archive: &Path, start: u64, end: u64) -> Result<(), BackendError> {
        let op = "upload";
        let auth = format!("Bearer {}", self.token.expose());
        let len = end - start + 1;
        self.http.retry(op, || {
            let mut file =
                File::open(archive).map_err(|source| Fail::Final(io_error(op, archive, source)))?;
            file.seek(SeekFrom::Start(start)).map_err(|source| Fail::Final(io_error(op, archive, source)))?;
            let result = self
                .http
                .request("PATCH", url)
                .header("Authorization", &auth)
                .header("Accept", ACCEPT)
                .header("Content-Type", "application/octet-stream")
                .header("Content-Range", format!("bytes {start}-{end}/*"))
                .header("Content-Length", len.to_string())
                .send(SendBody::from_owned_reader(file.take(len)));
            let response = self.http.check(op, url, result)?;
            match response.status().as_u16() {
                200..=299 => Ok(()),
                status => Err(Fail::Final(status_error(op, status, self.http.body_text(response)))),
            }
        })
    }
}

impl Backend for ArtifactCacheBackend {
    fn name(&self) -> String {
        "artifactcache (v1)".to_string()
    }

    fn lookup(&self, keys: &[String], version: &str) -> Result<Option<Hit>, BackendError> {
        if keys.is_empty() {
            return Ok(None);
        }
        let op = "lookup";
        let query =
            format!("cache?keys={}&version={}", encode_component(&keys.join(",")), encode_component(version));
        let (status, bytes) = self.call(op, "GET", &self.api_url(&query), None)?;
        match status {
            204 => Ok(None),
            200..=299 => lookup_answer(&self.http, keys, &bytes).map(Some),
            _ => Err(status_error(op, status, self.message(&bytes))),
        }
    }

    fn download(&self, hit: &Hit) -> Result<Box<dyn Read + Send>, BackendError> {
        let Location::Url(url) = &hit.location else {
            unreachable!("artifactcache hits always carry a URL");
        };
        Ok(Box::new(self.http.stream_get("download", url.expose())?))
    }

    fn save(&self, key: &str, version: &str, archive: &ArchiveFile) -> Result<Saved, BackendError> {
        // Reserving takes the size, so the upload starts once the archive is complete.
        let size = archive.wait_until_complete()?;
        let archive = archive.path();
        let id = match self.reserve(key, version, size)? {
            Ok(id) => id,
            Err(saved) => return Ok(saved),
        };
        self.upload(id, archive, size)?;
        let op = "commit";
        let (status, bytes) =
            self.call(op, "POST", &self.api_url(&format!("caches/{id}")), Some(&json!({ "size": size })))?;
        match status {
            200..=299 => Ok(Saved::Stored),
            _ => Err(status_error(op, status, self.message(&bytes))),
        }
    }
}

/// The hit described by a `200` answer to `GET cache` (`keys` is not empty).
pub(crate) fn lookup_answer(http: &Http, keys: &[String], bytes: &[u8]) -> Result<Hit, BackendError> {
    let op = "lookup";
    let value: Value = serde_json::from_slice(bytes).map_err(|e| BackendError::Decode {
        op,
        body: http.clip(bytes),
        message: e.to_string(),
    })?;
    let location = value.get("archiveLocation").and_then(Value::as_str).filter(|s| !s.is_empty());
    let Some(location) = location else {
        return Err(BackendError::Decode {
            op,
            body: http.clip(bytes),
            message: "no archiveLocation in a hit".to_string(),
        });
    };
    let key = value.get("cacheKey").and_then(Value::as_str).unwrap_or(&keys[0]).to_string();
    let size = value.get("cacheSize").and_then(as_u64);
    Ok(Hit { key, size, location: Location::Url(Secret(location.to_string())) })
}

/// An integer that a service may send as a number or a string.
pub(crate) fn as_u64(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

fn io_error(op: &'static str, path: &Path, source: std::io::Error) -> BackendError {
    BackendError::Io { op, path: path.to_path_buf(), source }
}
