//! An S3-compatible bucket as the cache (AWS S3, MinIO, Ceph RGW, Garage, SeaweedFS, R2,
//! versitygw), for runner fleets whose hosts or pods share no runner cache service.
//!
//! Layout: `<prefix><repository>/<ref>/<version>/<key>`, the key lower-cased (the runner cache
//! services compare keys case-insensitively; S3 does not). A restore reads the run's own ref,
//! then the pull request's base branch, then the default branch; a save writes its own ref only,
//! so a pull request can never plant an entry that the default branch restores (the scoping of
//! GitHub's cache, `scope.rs`). Each entry's archive sha256 is a small companion object,
//! `<prefix><repository>/<ref>/<version>.sha256/<key>/<ETag of the entry>`, written once the
//! upload is done (an upload that starts while the archive is still being packed cannot carry
//! it as metadata; naming the entry's ETag keeps two jobs saving one key at once from recording
//! each other's digest). A download is checked against it (`integrity.rs`); an entry without
//! one is passed over by lookups and replaced by the next save of its key, and one whose bytes
//! do not match it is deleted. Within one ref, the exact key is one ranged `GET` and each
//! restore key one `ListObjectsV2` by prefix, the newest object winning. An entry, once there,
//! is kept: a second save of its key is [`Saved::AlreadyExists`]. Expiry is the bucket's
//! lifecycle rule.
//!
//! A restore records its use as an empty object, `<…>/<version>.used/<key>`, sent on a thread
//! of its own as the download starts, so no restore waits for it; its time is the entry's last
//! use for `prune` (`housekeeping.rs`). Listing, explaining and pruning need only
//! `ListObjectsV2`, `GetObject` and `DeleteObject` under the prefix.
//!
//! Every request is a URL presigned by `rusty-s3` (sans-IO SigV4) and sent with the shared
//! `ureq` agent, so signing never needs the bytes and the transfer code is the one of the other
//! backends: multipart upload while the archive is packed, ranged parallel downloads. Presigned
//! URLs carry the signature and any session token in their query, which no message includes.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime};

use rusty_s3::actions::{ListObjectsV2, ListObjectsV2Response, S3Action};
use rusty_s3::{Bucket, Credentials, UrlStyle};

use super::aws_credentials::{CredentialSource, Keys};
use super::housekeeping::{self, Housekeeping, StoredEntry, Swept};
use super::http::{Fail, Http, Tuning, status_error};
use super::integrity::{self, Verifying};
pub use super::scope::Scope;
use super::transfer;
use super::xml::{error_message, xml_field};
use super::{ArchiveFile, Backend, BackendError, Hit, Locator, Saved, Secret};

/// The longest a presigned URL may live (SigV4's limit).
const MAX_PRESIGN: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// Listing pages read per restore key before giving up on finding the newest.
const MAX_LIST_PAGES: usize = 20;
/// Listing pages read by `entries` and `prune` (a thousand objects each).
const MAX_HOUSEKEEPING_PAGES: usize = 10_000;
/// How long the end of a download waits for its use marker to be stored.
const MARKER_WAIT: Duration = Duration::from_secs(2);

/// Everything the S3 backend needs, validated by `config.rs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    pub bucket: String,
    /// Prepended to every object name as it is (`uv-nox-cache/` by default).
    pub prefix: String,
    /// `https://s3.<region>.amazonaws.com` unless the fleet names its own store.
    pub endpoint: String,
    pub region: String,
    /// `https://host/bucket/…` rather than `https://bucket.host/…`.
    pub path_style: bool,
    pub credentials: CredentialSource,
    pub scope: Scope,
}

/// Where a found entry lives: its object name, and that of its recorded sha256.
#[derive(Debug, Clone)]
struct Object {
    name: String,
    /// The object holding its recorded sha256.
    digest: String,
    /// The sha256 recorded in `digest`.
    recorded: String,
}

/// A client of one bucket.
pub struct S3Backend {
    http: Http,
    settings: S3Settings,
    bucket: Result<Bucket, String>,
    /// Resolved on first use (web identity makes a request).
    keys: Mutex<Option<Credentials>>,
}

impl S3Backend {
    pub fn new(settings: S3Settings, deadline: Instant, tuning: Tuning) -> S3Backend {
        let secrets: Vec<&Secret> = match &settings.credentials {
            CredentialSource::Keys { secret, session_token, .. } => {
                std::iter::once(secret).chain(session_token.as_ref()).collect()
            }
            _ => Vec::new(),
        };
        let http = Http::scrubbing(deadline, tuning, &secrets);
        let style = if settings.path_style { UrlStyle::Path } else { UrlStyle::VirtualHost };
        let bucket = settings
            .endpoint
            .parse()
            .map_err(|e| format!("{e}"))
            .and_then(|url| {
                Bucket::new(url, style, settings.bucket.clone(), settings.region.clone())
                    .map_err(|e| format!("{e:?}"))
            })
            .map_err(|e| {
                format!(
                    "the endpoint {} and bucket {} make no bucket URL: {e}",
                    settings.endpoint, settings.bucket
                )
            });
        S3Backend { http, settings, bucket, keys: Mutex::new(None) }
    }

    fn bucket(&self) -> Result<&Bucket, BackendError> {
        self.bucket.as_ref().map_err(|message| BackendError::Credentials { message: message.clone() })
    }

    fn credentials(&self) -> Result<Credentials, BackendError> {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(credentials) = &*keys {
            return Ok(credentials.clone());
        }
        let Keys { access_key, secret, session_token } = self.settings.credentials.resolve(&self.http)?;
        let credentials = match session_token {
            Some(token) => Credentials::new_with_token(access_key, secret.0, token.0),
            None => Credentials::new(access_key, secret.0),
        };
        *keys = Some(credentials.clone());
        Ok(credentials)
    }

    /// How long a URL signed now must stay valid: until the deadline (and a little after).
    fn validity(&self) -> Duration {
        let left = self.http.deadline().saturating_duration_since(Instant::now());
        (left + Duration::from_secs(60)).min(MAX_PRESIGN)
    }

    /// `<prefix><repository>/<ref>/<version>/`.
    fn directory(&self, git_ref: &str, version: &str) -> String {
        let scope = &self.settings.scope;
        format!("{}{}/{git_ref}/{version}/", self.settings.prefix, scope.repository)
    }

    /// The size of the object `name`, or `None` when there is none: one `GET` of its first
    /// byte, so a missing bucket is told apart from a missing object by the error body.
    fn size_of(
        &self,
        credentials: &Credentials,
        name: &str,
    ) -> Result<Option<(u64, Option<String>)>, BackendError> {
        let op = "lookup";
        let url = self.bucket()?.get_object(Some(credentials), name).sign(self.validity());
        let (status, size, etag, body) = self.http.retry(op, || {
            let response = self.http.check(
                op,
                url.as_str(),
                self.http.get(url.as_str()).header("Range", "bytes=0-0").call(),
            )?;
            let status = response.status().as_u16();
            let header = |name| response.headers().get(name).and_then(|v| v.to_str().ok()).map(String::from);
            // A store that ignores `Range` answers 200 with the whole object: its length says
            // the size, and the body is not read.
            let size = match status {
                206 => header("content-range").as_deref().and_then(transfer::range_total),
                200 => header("content-length").and_then(|v| v.parse().ok()),
                _ => None,
            };
            let etag = header("etag");
            let body =
                if status == 200 { Vec::new() } else { self.http.body_bytes(op, url.as_str(), response)? };
            Ok::<_, Fail>((status, size, etag, body))
        })?;
        match status {
            200 | 206 => Ok(Some((size.unwrap_or(1), etag))),
            // An empty object: never an archive.
            416 => Ok(None),
            404 if xml_field(&String::from_utf8_lossy(&body), "Code").as_deref() != Some("NoSuchBucket") => {
                Ok(None)
            }
            _ => Err(self.error(op, status, &body)),
        }
    }

    /// The newest object whose name starts with `prefix`, with its size and ETag.
    fn newest(
        &self,
        credentials: &Credentials,
        prefix: &str,
    ) -> Result<Option<(String, u64, Option<String>)>, BackendError> {
        let mut best: Option<(String, String, u64, Option<String>)> = None;
        let mut token: Option<String> = None;
        for _ in 0..MAX_LIST_PAGES {
            let page = self.list_page("lookup", credentials, prefix, token.take())?;
            for object in page.contents {
                let modified = object.last_modified.unwrap_or_default();
                let size = object.size.unwrap_or(0);
                if size > 0 && best.as_ref().is_none_or(|(_, newest, _, _)| modified > *newest) {
                    best = Some((object.key, modified, size, object.etag));
                }
            }
            token = page.next_continuation_token;
            if token.is_none() {
                break;
            }
        }
        Ok(best.map(|(name, _, size, etag)| (name, size, etag)))
    }

    /// The entry `name` as a hit, or `None` when it has no recorded sha256: an entry saved by
    /// 0.1.0, one being saved this moment, or an object put there past the action. Such an
    /// entry is ignored by restores and replaced by the next save of its key.
    fn hit(
        &self,
        credentials: &Credentials,
        directory: &str,
        (name, size, etag): (String, u64, Option<String>),
    ) -> Result<Option<Hit>, BackendError> {
        let key = name.strip_prefix(directory).unwrap_or(&name).to_string();
        let Some(digest) = etag.map(|etag| digest_name(directory, &key, &etag)) else {
            tracing::info!("ignoring s3://{}/{name}: the store names no ETag for it", self.settings.bucket);
            return Ok(None);
        };
        match self.recorded_digest(credentials, &digest)?.filter(|r| integrity::is_sha256(r)) {
            Some(recorded) => {
                let object = Object { name, digest, recorded };
                Ok(Some(Hit { key, size: Some(size), locator: Locator::new(object) }))
            }
            None => {
                tracing::info!(
                    "ignoring s3://{}/{name}: it has no recorded sha256 (saved by 0.1.0, or being saved now)",
                    self.settings.bucket
                );
                Ok(None)
            }
        }
    }

    /// The sha256 recorded for an entry, or `None` when there is none.
    fn recorded_digest(
        &self,
        credentials: &Credentials,
        digest: &str,
    ) -> Result<Option<String>, BackendError> {
        let op = "lookup";
        let url = self.bucket()?.get_object(Some(credentials), digest).sign(self.validity());
        let (status, body) = self.http.retry(op, || {
            let response = self.http.check(op, url.as_str(), self.http.get(url.as_str()).call())?;
            let status = response.status().as_u16();
            Ok::<_, Fail>((status, self.http.body_bytes(op, url.as_str(), response)?))
        })?;
        match status {
            200 => Ok(Some(String::from_utf8_lossy(&body).trim().to_string())),
            404 => Ok(None),
            _ => Err(self.error(op, status, &body)),
        }
    }

    /// Records the archive's `sha256` as the object `digest`, once the entry is stored.
    fn put_digest(&self, credentials: &Credentials, digest: &str, sha256: &str) -> Result<(), BackendError> {
        let op = "upload";
        let url = self.bucket()?.put_object(Some(credentials), digest).sign(self.validity());
        self.http.retry(op, || {
            let result = self
                .http
                .request("PUT", url.as_str())
                .header("Content-Type", "text/plain")
                .send(sha256.as_bytes());
            let response = self.http.check(op, url.as_str(), result)?;
            self.part_answer(op, response).map(|_| ())
        })
    }

    /// An S3 error answer as a [`BackendError`]: its `Code` and `Message`.
    fn error(&self, op: &'static str, status: u16, body: &[u8]) -> BackendError {
        let message = self.http.clip(error_message(&String::from_utf8_lossy(body)).as_bytes());
        match status {
            401 | 403 => BackendError::Unauthorized {
                op,
                message: format!("the bucket refused the credentials ({status}): {message}"),
            },
            400 if message.contains("ExpiredToken") || message.contains("InvalidToken") => {
                BackendError::Unauthorized {
                    op,
                    message: format!("the session token was refused: {message}"),
                }
            }
            _ => status_error(op, status, message),
        }
    }

    /// One `PUT` of the whole archive.
    fn put_whole(
        &self,
        credentials: &Credentials,
        name: &str,
        archive: &ArchiveFile,
        size: u64,
    ) -> Result<String, BackendError> {
        let op = "upload";
        let url = self.bucket()?.put_object(Some(credentials), name).sign(self.validity());
        let request =
            || self.http.request("PUT", url.as_str()).header("Content-Type", "application/octet-stream");
        transfer::send_range(&self.http, op, url.as_str(), archive.path(), (0, size), request, |response| {
            self.part_answer(op, response)
        })
    }

    /// A `2xx` answer's `ETag`, or the error the answer says.
    fn part_answer(
        &self,
        op: &'static str,
        response: ureq::http::Response<ureq::Body>,
    ) -> Result<String, Fail> {
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            let etag =
                response.headers().get("etag").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            return Ok(etag);
        }
        let mut body = Vec::new();
        let _ = response.into_body().into_reader().take(64 * 1024).read_to_end(&mut body);
        Err(Fail::Final(self.error(op, status, &body)))
    }

    /// A multipart upload whose parts are sent as soon as they are packed.
    /// Returns the stored object's ETag.
    fn put_parts(
        &self,
        credentials: &Credentials,
        name: &str,
        archive: &ArchiveFile,
    ) -> Result<String, BackendError> {
        let bucket = self.bucket()?;
        let part = self.http.tuning.upload_chunk.max(5 << 20);
        let op = "reserve";
        let url = bucket.create_multipart_upload(Some(credentials), name).sign(self.validity());
        let body = self.http.retry(op, || {
            let response =
                self.http.check(op, url.as_str(), self.http.request("POST", url.as_str()).send_empty())?;
            let status = response.status().as_u16();
            let body = self.http.body_bytes(op, url.as_str(), response)?;
            if (200..300).contains(&status) {
                Ok(body)
            } else {
                Err(Fail::Final(self.error(op, status, &body)))
            }
        })?;
        let text = String::from_utf8_lossy(&body);
        let Some(upload_id) = xml_field(&text, "UploadId") else {
            return Err(BackendError::Decode {
                op,
                body: self.http.clip(&body),
                message: "no UploadId".into(),
            });
        };
        let etags: Mutex<BTreeMap<u64, String>> = Mutex::new(BTreeMap::new());
        let uploaded = transfer::upload_while_packing(
            archive,
            part,
            self.http.tuning.parallelism,
            |index, start, len| {
                let number = u16::try_from(index + 1).ok().filter(|n| *n <= 10_000).ok_or_else(|| {
                    BackendError::TooBig {
                        op: "upload",
                        size: start + len,
                        message: "S3 takes at most 10 000 parts".into(),
                    }
                })?;
                let url =
                    bucket.upload_part(Some(credentials), name, number, &upload_id).sign(self.validity());
                let request = || self.http.request("PUT", url.as_str());
                let etag = transfer::send_range(
                    &self.http,
                    "upload",
                    url.as_str(),
                    archive.path(),
                    (start, len),
                    request,
                    |r| self.part_answer("upload", r),
                )?;
                etags.lock().unwrap_or_else(|e| e.into_inner()).insert(index, etag);
                Ok(())
            },
        );
        let completed = uploaded.and_then(|()| {
            let etags: Vec<String> =
                etags.into_inner().unwrap_or_else(|e| e.into_inner()).into_values().collect();
            self.complete(credentials, name, &upload_id, &etags)
        });
        if completed.is_err() {
            // Best effort: parts left behind are also removed by the lifecycle rule of
            // docs/backends.md (AbortIncompleteMultipartUpload).
            let url =
                bucket.abort_multipart_upload(Some(credentials), name, &upload_id).sign(self.validity());
            let _ = self.http.delete(url.as_str()).call();
        }
        completed
    }

    fn complete(
        &self,
        credentials: &Credentials,
        name: &str,
        upload_id: &str,
        etags: &[String],
    ) -> Result<String, BackendError> {
        let op = "finalize";
        let etags = etags.iter().map(String::as_str);
        let action = self.bucket()?.complete_multipart_upload(Some(credentials), name, upload_id, etags);
        let url = action.sign(self.validity());
        let xml = action.body();
        self.http.retry(op, || {
            let result = self
                .http
                .request("POST", url.as_str())
                .header("Content-Type", "application/xml")
                .send(xml.as_bytes());
            let response = self.http.check(op, url.as_str(), result)?;
            let status = response.status().as_u16();
            let body = self.http.body_bytes(op, url.as_str(), response)?;
            // S3 may answer 200 and report the failure in the body.
            let text = String::from_utf8_lossy(&body);
            if (200..300).contains(&status) && !text.contains("<Error>") {
                return Ok(xml_field(&text, "ETag").unwrap_or_default());
            }
            let status = if status < 300 { 500 } else { status };
            let error = self.error(op, status, &body);
            if status == 500 { Err(Fail::Retry(error)) } else { Err(Fail::Final(error)) }
        })
    }
}

impl Backend for S3Backend {
    fn name(&self) -> String {
        format!("s3 ({})", self.settings.bucket)
    }

    fn lookup(&self, keys: &[String], version: &str) -> Result<Option<Hit>, BackendError> {
        if keys.is_empty() {
            return Ok(None);
        }
        let credentials = self.credentials()?;
        for git_ref in self.settings.scope.reads() {
            let directory = self.directory(git_ref, version);
            for (i, key) in keys.iter().enumerate() {
                let name = format!("{directory}{}", key.to_lowercase());
                let exact = match i {
                    0 => self.size_of(&credentials, &name)?.map(|(size, etag)| (name.clone(), size, etag)),
                    _ => None,
                };
                if let Some(found) = exact
                    && let Some(hit) = self.hit(&credentials, &directory, found)?
                {
                    return Ok(Some(hit));
                }
                if let Some(found) = self.newest(&credentials, &name)?
                    && let Some(hit) = self.hit(&credentials, &directory, found)?
                {
                    return Ok(Some(hit));
                }
            }
        }
        Ok(None)
    }

    fn download(&self, hit: &Hit) -> Result<Box<dyn Read + Send>, BackendError> {
        let Object { name, digest, recorded } = hit.locator::<Object>(&self.name())?;
        let credentials = self.credentials()?;
        let bucket = self.bucket()?;
        let url = bucket.get_object(Some(&credentials), name).sign(self.validity());
        let reader = transfer::ranged_download(&self.http, &Secret(url.to_string()))?;
        // Taken out of use on a mismatch: both objects deleted, as far as the credentials allow.
        let deletes: Vec<Secret> = [name, digest]
            .iter()
            .map(|object| {
                Secret(bucket.delete_object(Some(&credentials), object).sign(self.validity()).to_string())
            })
            .collect();
        let http = self.http.clone();
        let dispose = Box::new(move || {
            let refused: Vec<String> = deletes
                .iter()
                .filter_map(|url| match http.delete(url.expose()).call() {
                    Ok(response) if response.status().is_success() => None,
                    Ok(response) => Some(format!("answered {}", response.status().as_u16())),
                    // Not the error's text: it may carry the signed URL.
                    Err(_) => Some("the bucket could not be reached".to_string()),
                })
                .collect();
            match refused.first() {
                None => "deleted from the bucket".to_string(),
                Some(why) => format!("it could not be deleted ({why}) and is refused again on every restore"),
            }
        });
        let entry = format!("s3://{}/{name}", self.settings.bucket);
        let marker = self.mark_used(&credentials, name);
        Ok(Box::new(MarkedUse {
            inner: Verifying::new(reader, recorded.clone(), entry, dispose),
            marker: Some(marker),
        }))
    }

    fn verifies_integrity(&self) -> bool {
        true
    }

    /// Checks that the key is free once the archive has its first bytes, then sends it in one
    /// `PUT` when it ends up no larger than one part, else in parts while it is packed.
    fn save(&self, key: &str, version: &str, archive: &ArchiveFile) -> Result<Saved, BackendError> {
        let first = archive.wait_for(1)?;
        if first.complete && first.bytes == 0 {
            let message = format!("{} is empty", archive.path().display());
            return Err(BackendError::Rejected { op: "save", message });
        }
        let credentials = self.credentials()?;
        let git_ref = match self.settings.scope.save_ref() {
            Ok(git_ref) => git_ref,
            Err(refused) => {
                archive.abandon();
                return Err(refused);
            }
        };
        let directory = self.directory(git_ref, version);
        let name = format!("{directory}{}", key.to_lowercase());
        // A stored entry is kept; one without a recorded sha256 (0.1.0's) is replaced.
        if let Some(found) = self.size_of(&credentials, &name)?.map(|(size, etag)| (name.clone(), size, etag))
            && self.hit(&credentials, &directory, found)?.is_some()
        {
            return Ok(Saved::AlreadyExists(format!("s3://{}/{name} exists", self.settings.bucket)));
        }
        let part = self.http.tuning.upload_chunk.max(5 << 20);
        let so_far = archive.wait_for(part.saturating_add(1))?;
        // The digest is computed alongside the upload, as the archive grows.
        let (uploaded, sha256) = std::thread::scope(|s| {
            let hashing = s.spawn(|| integrity::sha256_of_archive(archive));
            let uploaded = if so_far.complete && so_far.bytes <= part {
                self.put_whole(&credentials, &name, archive, so_far.bytes)
            } else {
                self.put_parts(&credentials, &name, archive)
            };
            if uploaded.is_err() {
                archive.abandon(); // the hashing need not wait for the packer
            }
            (uploaded, hashing.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
        });
        let (etag, sha256) = (uploaded?, sha256?);
        if etag.trim_matches('"').is_empty() {
            let message = format!("s3://{}/{name}: the store named no ETag for it", self.settings.bucket);
            return Err(BackendError::Rejected { op: "save", message });
        }
        // Until this is written, a restore finds the entry without a digest: a miss.
        self.put_digest(&credentials, &digest_name(&directory, &key.to_lowercase(), &etag), &sha256)?;
        Ok(Saved::Stored)
    }
}

/// A download that, once dropped, waits a moment for its use marker (never failing for it).
struct MarkedUse<R> {
    inner: R,
    marker: Option<mpsc::Receiver<()>>,
}

impl<R: Read> Read for MarkedUse<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

impl<R> Drop for MarkedUse<R> {
    fn drop(&mut self) {
        if let Some(marker) = self.marker.take() {
            let _ = marker.recv_timeout(MARKER_WAIT);
        }
    }
}

/// The parts of an object name below the prefix: `<owner>/<name>/<ref>/<version>[.kind]/<rest>`.
#[derive(Debug, PartialEq, Eq)]
struct ObjectName<'a> {
    repository: String,
    git_ref: String,
    version: &'a str,
    /// `""` for an entry, `sha256` or `used` for its companions.
    kind: &'a str,
    rest: String,
}

impl<'a> ObjectName<'a> {
    /// `None` for an object the action did not write.
    fn parse(name: &'a str) -> Option<ObjectName<'a>> {
        let parts: Vec<&str> = name.split('/').collect();
        let at = (3..parts.len().saturating_sub(1)).find(|&i| {
            let (version, _) = parts[i].split_once('.').unwrap_or((parts[i], ""));
            integrity::is_sha256(version)
        })?;
        let (version, kind) = parts[at].split_once('.').unwrap_or((parts[at], ""));
        if !["", "sha256", "used"].contains(&kind) {
            return None;
        }
        Some(ObjectName {
            repository: parts[..2].join("/"),
            git_ref: parts[2..at].join("/"),
            version,
            kind,
            rest: parts[at + 1..].join("/"),
        })
    }
}

/// One object of a listing: name, time, size, ETag.
struct Listed {
    name: String,
    modified: Option<SystemTime>,
    size: u64,
    etag: String,
}

impl S3Backend {
    /// One `ListObjectsV2` page of the objects whose names start with `prefix`, from `token` on.
    fn list_page(
        &self,
        op: &'static str,
        credentials: &Credentials,
        prefix: &str,
        token: Option<String>,
    ) -> Result<ListObjectsV2Response, BackendError> {
        let mut list: ListObjectsV2 = self.bucket()?.list_objects_v2(Some(credentials));
        list.with_prefix(prefix);
        if let Some(token) = token {
            list.with_continuation_token(token);
        }
        let url = list.sign(self.validity());
        let (status, body) = self.http.retry(op, || {
            let response = self.http.check(op, url.as_str(), self.http.get(url.as_str()).call())?;
            let status = response.status().as_u16();
            Ok::<_, Fail>((status, self.http.body_bytes(op, url.as_str(), response)?))
        })?;
        if status != 200 {
            return Err(self.error(op, status, &body));
        }
        ListObjectsV2::parse_response(&String::from_utf8_lossy(&body)).map_err(|e| BackendError::Decode {
            op,
            body: self.http.clip(&body),
            message: format!("not a ListObjectsV2 answer: {e}"),
        })
    }

    /// Every object whose name starts with `prefix`.
    fn list_all(&self, op: &'static str, prefix: &str) -> Result<Vec<Listed>, BackendError> {
        let credentials = self.credentials()?;
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_HOUSEKEEPING_PAGES {
            let page = self.list_page(op, &credentials, prefix, token.take())?;
            out.extend(page.contents.into_iter().map(|object| Listed {
                modified: object.last_modified.as_deref().and_then(crate::utc::parse),
                size: object.size.unwrap_or(0),
                etag: object.etag.unwrap_or_default().trim_matches('"').to_string(),
                name: object.key,
            }));
            token = page.next_continuation_token;
            if token.is_none() {
                break;
            }
        }
        Ok(out)
    }

    /// Deletes one object; one already gone is fine.
    fn delete_object(&self, name: &str) -> Result<(), BackendError> {
        let op = "delete";
        let credentials = self.credentials()?;
        let url = self.bucket()?.delete_object(Some(&credentials), name).sign(self.validity());
        let (status, body) = self.http.retry(op, || {
            let response = self.http.check(op, url.as_str(), self.http.delete(url.as_str()).call())?;
            let status = response.status().as_u16();
            Ok::<_, Fail>((status, self.http.body_bytes(op, url.as_str(), response)?))
        })?;
        match status {
            200..=299 | 404 => Ok(()),
            _ => Err(self.error(op, status, &body)),
        }
    }

    /// Stores the use marker of the entry `name` on a thread of its own; the receiver hears
    /// when it is done (or given up).
    fn mark_used(&self, credentials: &Credentials, name: &str) -> mpsc::Receiver<()> {
        let (done, finished) = mpsc::channel();
        let marker = used_name(name);
        let Ok(bucket) = self.bucket() else { return finished };
        let url = bucket.put_object(Some(credentials), &marker).sign(self.validity());
        let http = self.http.clone();
        std::thread::spawn(move || {
            let _ = http.request("PUT", url.as_str()).header("Content-Type", "text/plain").send(&b""[..]);
            let _ = done.send(());
        });
        finished
    }
}

impl Housekeeping for S3Backend {
    fn describe(&self) -> String {
        format!("s3://{}/{}", self.settings.bucket, self.settings.prefix)
    }

    /// One listing of the prefix: entries, their recorded digests and their use markers.
    fn list(&self) -> Result<Vec<StoredEntry>, BackendError> {
        let prefix = &self.settings.prefix;
        let objects = self.list_all("list", prefix)?;
        let mut digests: HashMap<String, ()> = HashMap::new();
        let mut used: HashMap<String, SystemTime> = HashMap::new();
        for object in &objects {
            let Some(parsed) = object.name.strip_prefix(prefix.as_str()).and_then(ObjectName::parse) else {
                continue;
            };
            match parsed.kind {
                "sha256" => {
                    digests.insert(object.name.clone(), ());
                }
                "used" => {
                    if let Some(modified) = object.modified {
                        used.insert(object.name.clone(), modified);
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        for object in objects {
            let Some(parsed) = object.name.strip_prefix(prefix.as_str()).and_then(ObjectName::parse) else {
                continue;
            };
            if !parsed.kind.is_empty() || object.size == 0 {
                continue;
            }
            let directory = object.name[..object.name.len() - parsed.rest.len()].to_string();
            let saved_at = object.modified.unwrap_or(SystemTime::UNIX_EPOCH);
            let last_used = used.get(&used_name(&object.name)).map_or(saved_at, |u| (*u).max(saved_at));
            out.push(StoredEntry {
                restorable: digests.contains_key(&digest_name(&directory, &parsed.rest, &object.etag)),
                key: parsed.rest,
                repository: parsed.repository,
                git_ref: parsed.git_ref,
                version: parsed.version.to_string(),
                size: object.size,
                saved_at,
                last_used,
                location: object.name,
            });
        }
        Ok(out)
    }

    /// The entry, then its recorded digests and its use marker; kept when a restore marked it
    /// since the listing.
    fn delete(&self, entry: &StoredEntry) -> Result<bool, BackendError> {
        let name = &entry.location;
        let marker = used_name(name);
        let used_since = self
            .list_all("delete", &marker)?
            .iter()
            .any(|m| m.name == marker && m.modified.is_some_and(|t| t > entry.last_used));
        if used_since {
            return Ok(false);
        }
        self.delete_object(name)?;
        let key = name.rsplit_once('/').map_or(name.as_str(), |(_, key)| key);
        let digests = format!("{}.sha256/{key}/", name[..name.len() - key.len()].trim_end_matches('/'));
        for digest in self.list_all("delete", &digests)? {
            self.delete_object(&digest.name)?;
        }
        self.delete_object(&marker)?;
        Ok(true)
    }

    /// Recorded digests and use markers whose entry is gone, untouched for an hour (a digest
    /// is written after its entry, a marker only for an entry that was there).
    fn sweep(&self, now: SystemTime) -> Result<Swept, BackendError> {
        let prefix = &self.settings.prefix;
        let objects = self.list_all("list", prefix)?;
        fn parsed<'a>(o: &'a Listed, prefix: &str) -> Option<ObjectName<'a>> {
            o.name.strip_prefix(prefix).and_then(ObjectName::parse)
        }
        let entries: std::collections::HashSet<&str> = objects
            .iter()
            .filter(|o| parsed(o, prefix).is_some_and(|p| p.kind.is_empty()))
            .map(|o| o.name.as_str())
            .collect();
        let mut swept = Swept::default();
        for object in &objects {
            let Some(name) = parsed(object, prefix) else { continue };
            let key = match name.kind {
                "used" => name.rest.clone(),
                "sha256" => name.rest.rsplit_once('/').map_or(String::new(), |(key, _etag)| key.to_string()),
                _ => continue,
            };
            let companion = format!(".{}/{}", name.kind, name.rest);
            let directory = object.name.strip_suffix(&companion).unwrap_or_default();
            let entry = format!("{directory}/{key}");
            let old = object.modified.is_some_and(|modified| housekeeping::abandoned(modified, now));
            if old && !entries.contains(entry.as_str()) {
                self.delete_object(&object.name)?;
                swept.files += 1;
                swept.bytes += object.size;
            }
        }
        Ok(swept)
    }

    fn would_restore(
        &self,
        scope: &Scope,
        keys: &[String],
        version: &str,
    ) -> Result<Option<String>, BackendError> {
        let settings = S3Settings { scope: scope.clone(), ..self.settings.clone() };
        let store = S3Backend::new(settings, self.http.deadline(), self.http.tuning.clone());
        let hit = store.lookup(keys, version)?;
        Ok(hit.and_then(|hit| housekeeping::location_of(&hit, |o: &Object| o.name.clone())))
    }
}

/// Where the use marker of the entry `<directory><key>` is: `<…>/<version>.used/<key>`.
fn used_name(entry: &str) -> String {
    let (directory, key) = entry.rsplit_once('/').unwrap_or(("", entry));
    format!("{directory}.used/{key}")
}

/// Where the sha256 of the entry `<directory><key>` with the ETag `etag` is recorded:
/// `<…>/<version>.sha256/<key>/<etag>`, outside the entry's directory so that listing entries
/// never lists digests.
fn digest_name(directory: &str, key: &str, etag: &str) -> String {
    format!("{}.sha256/{key}/{}", directory.trim_end_matches('/'), etag.trim_matches('"'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_read_back() {
        let version = "a".repeat(64);
        let entry = format!("o/r/refs/heads/feature/x/{version}/uv-nox-cache-1-uv-linux");
        let parsed = ObjectName::parse(&entry).unwrap();
        assert_eq!(
            (parsed.repository.as_str(), parsed.git_ref.as_str(), parsed.kind, parsed.rest.as_str()),
            ("o/r", "refs/heads/feature/x", "", "uv-nox-cache-1-uv-linux")
        );
        let digest = format!("o/r/refs/heads/main/{version}.sha256/k/etag");
        assert_eq!(ObjectName::parse(&digest).unwrap().kind, "sha256");
        assert_eq!(
            used_name(&format!("p/o/r/refs/heads/main/{version}/k")),
            format!("p/o/r/refs/heads/main/{version}.used/k")
        );
        assert_eq!(ObjectName::parse("o/r/notes.txt"), None);
    }
}
