//! The v1 `_apis/artifactcache` REST protocol (docs/protocol.md §3): GHES, nektos/act, Forgejo and Gitea
//! runners. It exists as its own file because its save path (reserve → chunked `PATCH` →
//! commit) and its error shapes share nothing with the v2 Twirp protocol but the HTTP helpers.
//!
//! Lookup and download: `GET cache?keys=…&version=…` (204 = miss) gives an `archiveLocation`
//! that is fetched without credentials, in parallel ranges where the host serves them. Save: `POST caches` with
//! `cacheSize` (409 = someone else holds the key, 400 = too big, any other refusal a warning
//! naming the status and its likely cause), equal `PATCH` chunks with `Content-Range: bytes
//! a-b/*` from a few threads, then `POST caches/{id}`.
//! The runners' own servers (act, Forgejo, Gitea) also take a reservation without `cacheSize`
//! and then skip their size check, which lets the chunks go out while the archive is still
//! being packed ([`Reservation::WhilePacking`]).

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use serde::Deserialize;
use serde_json::json;

use super::http::{Fail, Http, Int, Tuning, check_denied, encode_component, lenient, status_error};
use super::transfer::{self, SignedUrl};
use super::{ArchiveFile, Backend, BackendError, Hit, Locator, Saved, Secret};

const ACCEPT: &str = "application/json;api-version=6.0-preview.1";

/// How a save reserves its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// With the archive's size, so once it is packed: what the toolkit does, and what a server
    /// that checks sizes (GHES) needs.
    SizeFirst,
    /// Without a size, as soon as the first bytes are packed, sending each chunk as soon as it
    /// is written: the runners' own servers (act, Forgejo, Gitea) skip their size check then.
    WhilePacking,
}

/// A client of one `ACTIONS_CACHE_URL`.
pub struct ArtifactCacheBackend {
    http: Http,
    /// The base URL, ending in exactly one `/`.
    base: String,
    token: Secret,
    reservation: Reservation,
}

impl ArtifactCacheBackend {
    /// `url` is `ACTIONS_CACHE_URL` (it may carry a path); requests give up at `deadline`.
    pub fn new(
        url: &str,
        token: Secret,
        reservation: Reservation,
        deadline: Instant,
        tuning: Tuning,
    ) -> ArtifactCacheBackend {
        let http = Http::new(deadline, tuning, &token);
        ArtifactCacheBackend { http, base: format!("{}/", url.trim_end_matches('/')), token, reservation }
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
        body: Option<&serde_json::Value>,
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
        let answer = serde_json::from_slice::<ErrorAnswer>(body).ok();
        match answer.and_then(|a| a.message.or(a.error).or(a.msg)) {
            Some(text) => self.http.clip(text.as_bytes()),
            None => self.http.clip(body),
        }
    }

    /// `POST caches`, with the archive's size when it is known.
    fn reserve(
        &self,
        key: &str,
        version: &str,
        size: Option<u64>,
    ) -> Result<Result<u64, Saved>, BackendError> {
        let op = "reserve";
        let body = match size {
            Some(size) => json!({ "key": key, "version": version, "cacheSize": size }),
            None => json!({ "key": key, "version": version }),
        };
        let (status, bytes) = self.call(op, "POST", &self.api_url("caches"), Some(&body))?;
        let message = self.message(&bytes);
        check_denied(op, &message)?;
        match status {
            200..=299 => {
                let id = serde_json::from_slice::<ReserveAnswer>(&bytes).ok().and_then(|a| a.cache_id);
                Ok(id.map(|id| id.0).ok_or_else(|| {
                    Saved::AlreadyExists(format!("no cache id in the answer to reserving {key}: {message}"))
                }))
            }
            400 => Err(BackendError::TooBig { op, size: size.unwrap_or_default(), message }),
            409 => Ok(Err(Saved::AlreadyExists(message))),
            _ => Err(refusal(op, status, message)),
        }
    }

    /// Sends the complete archive in equal chunks (the last may be shorter) from a few threads.
    fn upload(&self, id: u64, archive: &Path, size: u64) -> Result<(), BackendError> {
        let chunk = self.http.tuning.upload_chunk.max(1);
        let workers = self.http.tuning.parallelism.min(size.div_ceil(chunk) as usize);
        transfer::in_parallel(workers, |index, _| {
            let start = index * chunk;
            if start >= size {
                return Ok(false);
            }
            self.send_chunk(id, archive, start, chunk.min(size - start))?;
            Ok(true)
        })
    }

    /// Sends the archive in equal chunks as it grows; returns its size once complete.
    fn upload_while_packing(&self, id: u64, archive: &ArchiveFile) -> Result<u64, BackendError> {
        let chunk = self.http.tuning.upload_chunk.max(1);
        transfer::upload_while_packing(archive, chunk, self.http.tuning.parallelism, |_, start, len| {
            self.send_chunk(id, archive.path(), start, len)
        })?;
        Ok(archive.wait_until_complete()?)
    }

    /// One `PATCH caches/{id}` of bytes `start..start + len`.
    fn send_chunk(&self, id: u64, archive: &Path, start: u64, len: u64) -> Result<(), BackendError> {
        let op = "upload";
        let url = self.api_url(&format!("caches/{id}"));
        let auth = format!("Bearer {}", self.token.expose());
        let end = start + len - 1;
        let request = || {
            self.http
                .request("PATCH", &url)
                .header("Authorization", &auth)
                .header("Accept", ACCEPT)
                .header("Content-Type", "application/octet-stream")
                .header("Content-Range", format!("bytes {start}-{end}/*"))
        };
        transfer::send_range(&self.http, op, &url, archive, (start, len), request, |response| match response
            .status()
            .as_u16()
        {
            200..=299 => Ok(()),
            status => Err(Fail::Final(status_error(op, status, self.http.body_text(response)))),
        })
    }

    /// The entry's `archiveLocation`, without credentials: parallel ranges where the host
    /// serves `Range` (act's, Forgejo's and Gitea's servers do, as do GHES's blob stores), one
    /// streaming `GET` where it does not.
    fn fetch(&self, hit: &Hit) -> Result<Box<dyn Read + Send>, BackendError> {
        let location = hit.locator::<SignedUrl>(&self.name())?;
        transfer::ranged_download(&self.http, &location.url)
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
            200..=299 => lookup_answer(&self.http, keys, version, &bytes).map(Some),
            _ => Err(status_error(op, status, self.message(&bytes))),
        }
    }

    /// A `GET` of the `archiveLocation`; when its signature has expired (GHES hands out
    /// storage URLs signed for a limited time), the entry is looked up again first.
    fn download(&self, hit: &Hit) -> Result<Box<dyn Read + Send>, BackendError> {
        let version = &hit.locator::<SignedUrl>(&self.name())?.version;
        transfer::download_again_if_expired(self, hit, version, self.fetch(hit), |again| self.fetch(again))
    }

    fn save(&self, key: &str, version: &str, archive: &ArchiveFile) -> Result<Saved, BackendError> {
        let (id, size) = match self.reservation {
            Reservation::SizeFirst => {
                let size = archive.wait_until_complete()?;
                let id = match self.reserve(key, version, Some(size))? {
                    Ok(id) => id,
                    Err(saved) => return Ok(saved),
                };
                self.upload(id, archive.path(), size)?;
                (id, size)
            }
            Reservation::WhilePacking => {
                // An archive that fails at once reserves nothing.
                archive.wait_for(1)?;
                let id = match self.reserve(key, version, None)? {
                    Ok(id) => id,
                    Err(saved) => return Ok(saved),
                };
                (id, self.upload_while_packing(id, archive)?)
            }
        };
        let op = "commit";
        let (status, bytes) =
            self.call(op, "POST", &self.api_url(&format!("caches/{id}")), Some(&json!({ "size": size })))?;
        match status {
            200..=299 => Ok(Saved::Stored),
            _ => Err(refusal(op, status, self.message(&bytes))),
        }
    }
}

/// A reserve or commit answered with an error status other than 400 and 409. The runners' own
/// servers never refuse a key that is taken (they store the newest), so a 403 there means the
/// request did not pass the runner's checks: say which, never "another job saved first".
fn refusal(op: &'static str, status: u16, message: String) -> BackendError {
    match status {
        401 | 429 | 500..=599 => status_error(op, status, message),
        403 => {
            if let Err(denied) = check_denied(op, &message) {
                return denied;
            }
            let cause = "Likely cause: the runner's cache proxy and its cache server do not share the \
                         cache secret (Forgejo: the same `cache.secret` on every runner and on the \
                         `cache.external_server`), or the run's write-isolation key (a pull request) \
                         does not cover this entry. Nothing was saved";
            BackendError::Refused { op, status, message, cause }
        }
        _ => BackendError::Refused {
            op,
            status,
            message,
            cause: "Likely cause: a cache server or proxy that does not speak this protocol as the \
                    runners do. Nothing was saved",
        },
    }
}

/// A `200` answer to `GET cache`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LookupAnswer {
    #[serde(default, deserialize_with = "lenient")]
    cache_key: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    cache_size: Option<Int>,
    #[serde(default, deserialize_with = "lenient")]
    archive_location: Option<String>,
}

/// A `2xx` answer to `POST caches`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReserveAnswer {
    #[serde(default, deserialize_with = "lenient")]
    cache_id: Option<Int>,
}

/// An error body: GitHub says `message`, act `error`, some proxies `msg`.
#[derive(Deserialize)]
struct ErrorAnswer {
    #[serde(default, deserialize_with = "lenient")]
    message: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    error: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    msg: Option<String>,
}

/// The hit described by a `200` answer to `GET cache` (`keys` is not empty).
pub(crate) fn lookup_answer(
    http: &Http,
    keys: &[String],
    version: &str,
    bytes: &[u8],
) -> Result<Hit, BackendError> {
    let op = "lookup";
    let decode = |message: String| BackendError::Decode { op, body: http.clip(bytes), message };
    let answer: LookupAnswer = serde_json::from_slice(bytes).map_err(|e| decode(e.to_string()))?;
    let Some(location) = answer.archive_location.filter(|s| !s.is_empty()) else {
        return Err(decode("no archiveLocation in a hit".to_string()));
    };
    Ok(Hit {
        key: answer.cache_key.unwrap_or_else(|| keys[0].clone()),
        size: answer.cache_size.map(|size| size.0),
        locator: Locator::new(SignedUrl { url: Secret(location), version: version.to_string() }),
    })
}
