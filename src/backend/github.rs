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

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use base64::Engine;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::http::{
    Fail, Http, Int, Tuning, check_denied, encode_component, lenient, origin, status_error, uuid_v4,
    with_query,
};
use super::transfer::{self, SignedUrl};
use super::{ArchiveFile, Backend, BackendError, Hit, Locator, Saved, Secret};

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

    /// One Twirp call: 2xx answers come back decoded (an unreadable one is retried like a
    /// 5xx), any other status comes back with its message for the caller to judge.
    fn twirp<T: DeserializeOwned>(
        &self,
        op: &'static str,
        method: &str,
        body: &Value,
    ) -> Result<Result<T, (u16, String)>, BackendError> {
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
            decode_answer(&bytes).map(Ok).map_err(|message| {
                Fail::Retry(BackendError::Decode { op, body: self.http.clip(&bytes), message })
            })
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
        transfer::upload_while_packing(archive, block, tuning.parallelism, |index, start, len| {
            let id = encode_component(&block_id(&prefix, index));
            let block_url = with_query(url, &format!("comp=block&blockid={id}"));
            self.put("upload", &block_url, archive.path(), start, len, false)
        })?;
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
        let request = || {
            let request = self
                .http
                .request("PUT", url)
                .header("x-ms-version", BLOB_API_VERSION)
                .header("Content-Type", "application/octet-stream");
            if whole { request.header("x-ms-blob-type", "BlockBlob") } else { request }
        };
        transfer::send_range(&self.http, op, url, archive, (start, len), request, |response| {
            blob_answer(&self.http, op, response)
        })
    }

    /// Ranged parallel GETs of the entry's signed URL.
    fn fetch(&self, hit: &Hit) -> Result<Box<dyn Read + Send>, BackendError> {
        transfer::ranged_download(&self.http, &hit.locator::<SignedUrl>(&self.name())?.url)
    }
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
        let answer = match self.twirp(op, "GetCacheEntryDownloadURL", &body)? {
            Ok(answer) => answer,
            Err((404, _)) => return Ok(None),
            Err((status, message)) => return Err(status_error(op, status, message)),
        };
        lookup_answer(answer, keys, version)
    }

    /// Ranged GETs of the signed URL; when the signature has expired (the URLs are signed for
    /// a limited time, docs/protocol.md §4.4), the entry is looked up again first.
    fn download(&self, hit: &Hit) -> Result<Box<dyn Read + Send>, BackendError> {
        let version = &hit.locator::<SignedUrl>(&self.name())?.version;
        transfer::download_again_if_expired(self, hit, version, self.fetch(hit), |again| self.fetch(again))
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
        let body = json!({ "key": key, "version": version });
        let created: CreateAnswer = match self.twirp(op, "CreateCacheEntry", &body)? {
            Ok(answer) => answer,
            Err((409, message)) => return Ok(Saved::AlreadyExists(message)),
            Err((status, message)) => return Err(status_error(op, status, message)),
        };
        let message = self.http.clip(created.message.unwrap_or_default().as_bytes());
        check_denied(op, &message)?;
        let url = created.signed_upload_url.filter(|url| !url.is_empty());
        let (Some(true), Some(url)) = (created.ok, url) else {
            let message =
                if message.is_empty() { format!("the service did not reserve {key}") } else { message };
            return Ok(Saved::AlreadyExists(message));
        };
        let size = self.upload(&url, archive)?;
        let op = "finalize";
        let body = json!({ "key": key, "size_bytes": size.to_string(), "version": version });
        let finalized: FinalizeAnswer = match self.twirp(op, "FinalizeCacheEntryUpload", &body)? {
            Ok(answer) => answer,
            Err((status, message)) => return Err(status_error(op, status, message)),
        };
        if finalized.ok == Some(true) {
            tracing::debug!("finalized entry {:?}", finalized.entry_id.map(|id| id.0));
            return Ok(Saved::Stored);
        }
        let message = finalized.message.unwrap_or_else(|| "ok:false without a message".into());
        Err(BackendError::Rejected { op, message: self.http.clip(message.as_bytes()) })
    }
}

// The answers, as Twirp's JSON mapping sends them: proto (snake_case) names or JSON
// (lowerCamelCase) names, int64 as a string or a number, and `{}` for an all-default message
// (so a missing `ok` is `false`). A field of an unexpected type reads as absent.

/// `GetCacheEntryDownloadURLResponse`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct LookupAnswer {
    #[serde(default, deserialize_with = "lenient")]
    ok: Option<bool>,
    #[serde(default, alias = "signedDownloadUrl", deserialize_with = "lenient")]
    signed_download_url: Option<String>,
    #[serde(default, alias = "matchedKey", deserialize_with = "lenient")]
    matched_key: Option<String>,
}

/// `CreateCacheEntryResponse`.
#[derive(Debug, Deserialize)]
struct CreateAnswer {
    #[serde(default, deserialize_with = "lenient")]
    ok: Option<bool>,
    #[serde(default, alias = "signedUploadUrl", deserialize_with = "lenient")]
    signed_upload_url: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    message: Option<String>,
}

/// `FinalizeCacheEntryUploadResponse`.
#[derive(Debug, Deserialize)]
struct FinalizeAnswer {
    #[serde(default, deserialize_with = "lenient")]
    ok: Option<bool>,
    #[serde(default, alias = "entryId", deserialize_with = "lenient")]
    entry_id: Option<Int>,
    #[serde(default, deserialize_with = "lenient")]
    message: Option<String>,
}

/// A Twirp error body: `code` and `msg`; other frameworks say `message` or `error`.
#[derive(Debug, Deserialize)]
struct ErrorAnswer {
    #[serde(default, deserialize_with = "lenient")]
    code: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    msg: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    message: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    error: Option<String>,
}

/// A 2xx answer's body decoded; it must be a JSON object.
pub(crate) fn decode_answer<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(value) if value.is_object() => serde_json::from_value(value).map_err(|e| e.to_string()),
        Ok(_) => Err("not a JSON object".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// The hit, if any, described by a `GetCacheEntryDownloadURL` answer (`keys` is not empty).
pub(crate) fn lookup_answer(
    answer: LookupAnswer,
    keys: &[String],
    version: &str,
) -> Result<Option<Hit>, BackendError> {
    if answer.ok != Some(true) {
        return Ok(None);
    }
    let Some(url) = answer.signed_download_url.filter(|s| !s.is_empty()) else {
        return Err(BackendError::Decode {
            op: "lookup",
            body: String::new(),
            message: "ok:true without signed_download_url".into(),
        });
    };
    let key = answer.matched_key.filter(|s| !s.is_empty()).unwrap_or_else(|| keys[0].clone());
    let locator = Locator::new(SignedUrl { url: Secret(url), version: version.to_string() });
    Ok(Some(Hit { key, size: None, locator }))
}

/// `msg` of a Twirp error, the `message` of other frameworks, or the raw text.
pub(crate) fn twirp_message(http: &Http, body: &[u8]) -> String {
    if let Ok(answer) = serde_json::from_slice::<ErrorAnswer>(body) {
        let text = answer.msg.or(answer.message).or(answer.error);
        match (answer.code, text) {
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
    base64::engine::general_purpose::STANDARD.encode(raw.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_ids_have_the_spec_layout() {
        let uuid = "0f8fad5b-d9cb-469f-a165-70867728950e";
        let id = block_id(uuid, 7);
        assert_eq!(id.len(), 64);
        assert_eq!(id, "MGY4ZmFkNWItZDljYi00NjlmLWExNjUtNzA4Njc3Mjg5NTBlMDAwMDAwMDAwMDA3");
        assert_eq!(encode_component("a+b/c="), "a%2Bb%2Fc%3D");
    }

    #[test]
    fn lenient_answers() {
        let camel: LookupAnswer =
            decode_answer(br#"{"signedDownloadUrl": "u", "ok": true, "matchedKey": 5}"#).unwrap();
        assert_eq!((camel.ok, camel.signed_download_url.as_deref()), (Some(true), Some("u")));
        assert_eq!(camel.matched_key, None, "a field of the wrong type reads as absent");
        let empty: FinalizeAnswer = decode_answer(b"{}").unwrap();
        assert_eq!(empty.ok, None);
        let numbered: FinalizeAnswer = decode_answer(br#"{"ok":true,"entry_id":"12"}"#).unwrap();
        assert_eq!(numbered.entry_id, Some(Int(12)));
        assert!(decode_answer::<FinalizeAnswer>(b"[true]").is_err());
    }
}
