//! The HTTP plumbing both runner cache protocols share, so the protocol files read as
//! "send this, expect that" and every request gets the same timeouts, retries and redaction.
//!
//! - One `ureq` agent with `http_status_as_error(false)`: statuses are mapped here, in
//!   [`status_error`], and error bodies are kept (BOM stripped, truncated) because they are the
//!   best diagnostics the services give.
//! - Every request has bounded waits (docs/reliability.md, "Bounded waits"): a connect
//!   timeout, an answer timeout for the response headers, and an idle timeout for any silent
//!   read or write of a body (a download's reads: the shorter stall timeout); the overall deadline given to `backend::open` caps them all, and a
//!   request cut short by that deadline is [`BackendError::TimedOut`].
//! - [`Http::retry`] retries 5xx and resets with the toolkit's backoff shape (d × 1.5ⁿ,
//!   docs/protocol.md §4.1) and honours `429 Retry-After`, within one retry budget for the whole
//!   step and never past the deadline. A request that met silence (refused, no answer, stalled)
//!   is reported to the step's [`Health`], which retries it once and then declares the service
//!   down for the rest of the job (`health.rs`).
//! - Nothing that leaves this module names a token or a signed URL's query string: URLs are
//!   logged as host + path ([`redact`]) and captured bodies are scrubbed ([`Http::scrub`]).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde::Deserialize;
use ureq::http::Response;
use ureq::{Agent, Body, RequestBuilder};

use super::health::Silence;
use super::upload_pace::UploadPace;
use super::xml;
use super::{BackendError, Health, Secret};

/// How much of an error body is kept for messages.
const BODY_LIMIT: usize = 512;
/// How much of an error body is read at all.
const BODY_READ_LIMIT: u64 = 64 * 1024;

/// Sizes, parallelism and timing of the protocol clients. The defaults follow the toolkit;
/// tests shrink them to keep multi-chunk uploads and retries fast.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// v1 `PATCH` chunk size (toolkit: 32 MiB).
    pub upload_chunk: u64,
    /// v2 Put Block size (toolkit: 64 MiB).
    pub block_size: u64,
    /// v2: archives up to this size go in one Put Blob (toolkit: 128 MiB).
    pub single_put_max: u64,
    /// v2: size of each ranged GET of a download.
    pub download_block: u64,
    /// Concurrent uploads or ranged downloads.
    pub parallelism: usize,
    /// Attempts per request (5xx, network errors, 429).
    pub attempts: u32,
    /// The first retry delay; later ones grow by 1.5× with jitter.
    pub retry_delay: Duration,
    /// The longest the whole step waits between attempts, all requests together.
    pub retry_budget: Duration,
    /// Longest silence tolerated while reading or writing one request's body.
    pub idle_timeout: Duration,
    /// Longest silence tolerated from a download once it was asked for: a server that has sent
    /// part of an entry and goes quiet is stalled, not slow (no more than `idle_timeout`).
    pub stall_timeout: Duration,
    /// Longest wait for a connection (DNS, TCP and TLS).
    pub connect_timeout: Duration,
    /// Longest wait for the answer's headers once the request is sent.
    pub answer_timeout: Duration,
    /// The step's verdict on the service (`health.rs`), shared by every client opened with
    /// clones of this tuning.
    pub health: Health,
    /// The step's measure of its uploads (`upload_pace.rs`), shared the same way.
    pub upload_pace: UploadPace,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            upload_chunk: 32 << 20,
            block_size: 64 << 20,
            single_put_max: 128 << 20,
            // As the toolkit's concurrent downloader; with `parallelism` blocks ahead this
            // bounds a download's buffers to ~20 MiB.
            download_block: 4 << 20,
            parallelism: 4,
            // The numbers and why: docs/reliability.md, "Bounded waits".
            attempts: 3,
            retry_delay: Duration::from_secs(2),
            retry_budget: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(8),
            connect_timeout: Duration::from_secs(5),
            answer_timeout: Duration::from_secs(20),
            health: Health::default(),
            upload_pace: UploadPace::default(),
        }
    }
}

/// Why one attempt failed, and whether another one may help.
pub(crate) enum Fail {
    /// Give up with this error.
    Final(BackendError),
    /// Try again after the usual backoff.
    Retry(BackendError),
    /// Try again at once: a download that stalled after bytes came has spent its wait already.
    RetryNow(BackendError),
    /// Try again after the server's `Retry-After` (or the backoff when it gave none).
    RetryAfter(BackendError, Option<Duration>),
}

/// The shared agent plus the deadline and the values to scrub from messages.
#[derive(Clone)]
pub(crate) struct Http {
    agent: Agent,
    deadline: Instant,
    pub(crate) tuning: Tuning,
    /// Strings that must never appear in an error (the runtime token).
    secrets: Vec<String>,
}

impl Http {
    pub(crate) fn new(deadline: Instant, tuning: Tuning, token: &Secret) -> Http {
        Http::scrubbing(deadline, tuning, &[token])
    }

    /// An agent whose messages never carry any of `secrets` (a token, an S3 secret key).
    pub(crate) fn scrubbing(deadline: Instant, tuning: Tuning, secrets: &[&Secret]) -> Http {
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .user_agent(concat!("uv-nox-cache/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let secrets = secrets.iter().map(|s| s.expose().to_string()).filter(|s| !s.is_empty()).collect();
        Http { agent, deadline, tuning, secrets }
    }

    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// This client for downloads: a silence of `stall_timeout` (shorter than the idle timeout)
    /// ends a read. A server that has already answered the lookup and sends an entry has no
    /// reason to pause mid-body; ureq's per-read limit also bounds the wait for the download's
    /// headers, which blob stores and cache servers send at once.
    pub(crate) fn downloading(&self) -> Http {
        let mut http = self.clone();
        http.tuning.idle_timeout = self.tuning.idle_timeout.min(self.tuning.stall_timeout);
        http
    }

    fn remaining(&self) -> Option<Duration> {
        self.deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())
    }

    /// A request with the per-request timeouts applied: the whole exchange (body included)
    /// ends at the deadline, and any single silent read or write ends after `idle_timeout`.
    pub(crate) fn request(&self, method: &str, url: &str) -> RequestBuilder<ureq::typestate::WithBody> {
        let remaining = self.remaining().unwrap_or(Duration::from_millis(1));
        let builder = match method {
            "POST" => self.agent.post(url),
            "PUT" => self.agent.put(url),
            "PATCH" => self.agent.patch(url),
            other => unreachable!("no body-carrying method {other}"),
        };
        builder
            .config()
            .timeout_global(Some(remaining))
            .timeout_connect(Some(self.tuning.connect_timeout))
            .timeout_recv_response(Some(self.tuning.answer_timeout))
            .timeout_per_read(Some(self.tuning.idle_timeout))
            .timeout_per_write(Some(self.tuning.idle_timeout))
            .build()
    }

    /// A `GET` with the same timeouts as [`Http::request`].
    pub(crate) fn get(&self, url: &str) -> RequestBuilder<ureq::typestate::WithoutBody> {
        self.without_body(self.agent.get(url))
    }

    /// A `DELETE` with the same timeouts as [`Http::get`].
    pub(crate) fn delete(&self, url: &str) -> RequestBuilder<ureq::typestate::WithoutBody> {
        self.without_body(self.agent.delete(url))
    }

    fn without_body(
        &self,
        builder: RequestBuilder<ureq::typestate::WithoutBody>,
    ) -> RequestBuilder<ureq::typestate::WithoutBody> {
        let remaining = self.remaining().unwrap_or(Duration::from_millis(1));
        builder
            .config()
            .timeout_global(Some(remaining))
            .timeout_connect(Some(self.tuning.connect_timeout))
            .timeout_recv_response(Some(self.tuning.answer_timeout))
            .timeout_per_read(Some(self.tuning.idle_timeout))
            .build()
    }

    /// Runs `attempt` until it succeeds, fails for good, runs out of attempts, or the next
    /// try would start after the deadline.
    pub(crate) fn retry<T>(
        &self,
        op: &'static str,
        mut attempt: impl FnMut() -> Result<T, Fail>,
    ) -> Result<T, BackendError> {
        let attempts = self.tuning.attempts.max(1);
        for n in 0..attempts {
            self.tuning.health.check(op)?;
            if self.remaining().is_none() {
                return Err(BackendError::TimedOut { op });
            }
            let (error, wait) = match attempt() {
                Ok(value) => return Ok(value),
                Err(Fail::Final(e)) => return Err(e),
                Err(Fail::Retry(e)) => (e, self.backoff(n)),
                Err(Fail::RetryNow(e)) => (e, Duration::ZERO),
                Err(Fail::RetryAfter(e, after)) => (e, after.unwrap_or_else(|| self.backoff(n))),
            };
            // Silence that made the verdict: this caller tells it.
            if let Err(down) = self.tuning.health.check(op) {
                tracing::debug!("{op}: {error}");
                return Err(down);
            }
            if n + 1 == attempts {
                return Err(error);
            }
            if Instant::now() + wait >= self.deadline {
                tracing::debug!("{op}: not retrying, the deadline comes first: {error}");
                return Err(error);
            }
            if !self.tuning.health.may_wait(wait, self.tuning.retry_budget) {
                tracing::debug!("{op}: not retrying, the step's retry budget is spent: {error}");
                return Err(error);
            }
            tracing::debug!("{op}: retrying in {} ms: {error}", wait.as_millis());
            thread::sleep(wait);
        }
        unreachable!("the loop returns on its last attempt")
    }

    /// Delay before retry `n + 1`: `d`, then random in `[d·1.5ⁿ, d·1.5ⁿ⁺¹)` (toolkit).
    fn backoff(&self, n: u32) -> Duration {
        let base = self.tuning.retry_delay.as_secs_f64();
        if n == 0 {
            return self.tuning.retry_delay;
        }
        let low = base * 1.5f64.powi(n as i32);
        let high = low * 1.5;
        let unit = (random_u64() % 1_000_000) as f64 / 1_000_000.0;
        Duration::from_secs_f64(low + (high - low) * unit)
    }

    /// Classifies the result of one exchange: 429 and retryable 5xx become [`Fail`]s, every
    /// other response goes back to the caller, which knows what its statuses mean.
    pub(crate) fn check(
        &self,
        op: &'static str,
        url: &str,
        result: Result<Response<Body>, ureq::Error>,
    ) -> Result<Response<Body>, Fail> {
        let response = match result {
            Ok(response) => response,
            Err(error) => return Err(self.transport_fail(op, url, error)),
        };
        let status = response.status().as_u16();
        tracing::debug!("{op}: {} -> {status}", redact(url));
        if status == 429 {
            let after = retry_after(&response);
            return Err(Fail::RetryAfter(BackendError::RateLimited { op, retry_after: after }, after));
        }
        if matches!(status, 500 | 502 | 503 | 504) {
            // A 503 that says when to come back is waited out like a 429.
            let after = if status == 503 { retry_after(&response) } else { None };
            let body = self.body_text(response);
            let error = BackendError::Status { op, status, body };
            return Err(match after {
                Some(after) => Fail::RetryAfter(error, Some(after)),
                None => Fail::Retry(error),
            });
        }
        Ok(response)
    }

    /// A network-level failure: retryable, except when the deadline ran out. Silence (no
    /// connection, no answer, a stalled body) is told to the step's [`Health`], which makes the
    /// verdict at a host's second.
    pub(crate) fn transport_fail(&self, op: &'static str, url: &str, error: ureq::Error) -> Fail {
        if self.remaining().is_none() {
            return Fail::Final(BackendError::TimedOut { op });
        }
        if let Some((kind, why)) = self.silence_of(&error) {
            self.tuning.health.silence(host_of(url), kind, &why);
        }
        Fail::Retry(self.transport_error(op, url, error))
    }

    /// Whether `error` is silence, and what the host did, in words that follow its name.
    fn silence_of(&self, error: &ureq::Error) -> Option<(Silence, String)> {
        use std::io::ErrorKind;
        use ureq::Timeout;
        let secs = |d: Duration| format!("{} s", d.as_secs_f64());
        let unreachable = |why: String| Some((Silence::Unreachable, why));
        match error {
            ureq::Error::Timeout(Timeout::Connect | Timeout::Resolve) => unreachable(format!(
                "did not accept a connection within {}",
                secs(self.tuning.connect_timeout)
            )),
            ureq::Error::Timeout(Timeout::RecvResponse | Timeout::SendRequest) => Some((
                Silence::NoAnswer,
                format!(
                    "accepted the connection but did not answer within {}",
                    secs(self.tuning.answer_timeout)
                ),
            )),
            ureq::Error::Timeout(
                Timeout::PerRead | Timeout::PerWrite | Timeout::RecvBody | Timeout::SendBody,
            ) => Some((Silence::Stalled, self.stalled())),
            ureq::Error::HostNotFound => unreachable("could not be resolved (no such host)".into()),
            ureq::Error::ConnectionFailed => unreachable("could not be connected to".into()),
            ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::TlsRequired => {
                unreachable(format!("failed the TLS handshake ({})", self.scrub(&error.to_string())))
            }
            ureq::Error::ConnectProxyFailed(_) => {
                unreachable(format!("could not be reached through the proxy ({error})"))
            }
            ureq::Error::Io(e) => match e.kind() {
                ErrorKind::ConnectionRefused => unreachable("refused the connection".into()),
                ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable | ErrorKind::AddrNotAvailable => {
                    unreachable(format!("is unreachable ({e})"))
                }
                ErrorKind::TimedOut | ErrorKind::WouldBlock => Some((Silence::Stalled, self.stalled())),
                _ => None,
            },
            _ => None,
        }
    }

    fn stalled(&self) -> String {
        format!(
            "stopped sending for {} s in the middle of a transfer",
            self.tuning.idle_timeout.as_secs_f64()
        )
    }

    /// Tells the step's [`Health`] about a body read that failed in silence (a stall): ureq
    /// hands its own timeouts over as `io::Error`s wrapping a [`ureq::Error`].
    fn read_silence(&self, url: &str, error: &std::io::Error) {
        let silence = match error.get_ref().and_then(|e| e.downcast_ref::<ureq::Error>()) {
            Some(inner) => self.silence_of(inner),
            None => matches!(error.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock)
                .then(|| (Silence::Stalled, self.stalled())),
        };
        if let Some((kind, why)) = silence
            && self.remaining().is_some()
        {
            self.tuning.health.silence(host_of(url), kind, &why);
        }
    }

    pub(crate) fn transport_error(&self, op: &'static str, url: &str, error: ureq::Error) -> BackendError {
        let message = match &error {
            ureq::Error::Timeout(kind) => format!("timed out ({kind:?})"),
            ureq::Error::HostNotFound => "host not found".to_string(),
            ureq::Error::ConnectionFailed => "connection failed".to_string(),
            ureq::Error::Io(e) => e.to_string(),
            other => other.to_string(),
        };
        BackendError::Transport { op, host: host_of(url).to_string(), message: self.scrub(&message) }
    }

    /// The (truncated, BOM-stripped, scrubbed) text of a response body. An XML `<Error>`
    /// document (S3 stores, Azure blobs) is told as its `Code: Message`, not as markup.
    pub(crate) fn body_text(&self, response: Response<Body>) -> String {
        let mut bytes = Vec::new();
        let _ = response.into_body().into_reader().take(BODY_READ_LIMIT).read_to_end(&mut bytes);
        let text = String::from_utf8_lossy(&bytes);
        if text.contains("<Error>") {
            return self.clip(xml::error_message(&text).as_bytes());
        }
        self.clip(&bytes)
    }

    /// Reads a JSON-ish body fully (bounded), for API answers.
    pub(crate) fn body_bytes(
        &self,
        op: &'static str,
        url: &str,
        response: Response<Body>,
    ) -> Result<Vec<u8>, Fail> {
        let mut bytes = Vec::new();
        match response.into_body().into_reader().take(16 << 20).read_to_end(&mut bytes) {
            Ok(_) => Ok(strip_bom(&bytes).to_vec()),
            Err(e) => {
                if self.remaining().is_none() {
                    return Err(Fail::Final(BackendError::TimedOut { op }));
                }
                self.read_silence(url, &e);
                Err(Fail::Retry(BackendError::Transport {
                    op,
                    host: host_of(url).to_string(),
                    message: self.scrub(&format!("reading the answer: {e}")),
                }))
            }
        }
    }

    /// Bytes as a short, safe message fragment.
    /// Secrets are removed before cutting, so a token straddling the cut never leaks a part.
    pub(crate) fn clip(&self, bytes: &[u8]) -> String {
        let text = self.scrub(String::from_utf8_lossy(strip_bom(bytes)).trim());
        let mut clipped: String = text.chars().take(BODY_LIMIT).collect();
        if clipped.len() < text.len() {
            clipped.push('…');
        }
        clipped
    }

    /// Removes the token and every URL query string from `text`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut out = scrub_queries(text);
        for secret in &self.secrets {
            out = out.replace(secret.as_str(), "***");
        }
        out
    }
}

/// A streaming download body whose read errors name the host and how far it got, and carry
/// no URL query or token.
pub(crate) struct SafeReader {
    inner: ureq::BodyReader<'static>,
    http: Http,
    url: String,
    host: String,
    read: u64,
}

impl SafeReader {
    pub(crate) fn new(response: Response<Body>, http: &Http, url: &str) -> SafeReader {
        SafeReader {
            inner: response.into_body().into_reader(),
            http: http.clone(),
            url: redact(url),
            host: host_of(url).to_string(),
            read: 0,
        }
    }
}

impl Read for SafeReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.read += n as u64;
                Ok(n)
            }
            Err(e) => {
                self.http.read_silence(&self.url, &e);
                let what =
                    if self.http.remaining().is_none() { "stopped at the deadline" } else { "broke off" };
                let message =
                    format!("the download from {} {what} after {} bytes: {e}", self.host, self.read);
                Err(std::io::Error::new(e.kind(), self.http.scrub(&message)))
            }
        }
    }
}

impl Http {
    /// One streaming `GET` of a download URL, without credentials, under the stall timeout
    /// ([`Http::downloading`]); a stream that stalls part-way is not asked again. A refused URL (401/403) is
    /// [`BackendError::Expired`], so the flow can look the entry up again.
    pub(crate) fn stream_get(&self, op: &'static str, url: &str) -> Result<SafeReader, BackendError> {
        let http = self.downloading();
        let response = http.retry(op, || http.check(op, url, http.get(url).call()))?;
        match response.status().as_u16() {
            200..=299 => Ok(SafeReader::new(response, &http, url)),
            401 | 403 => Err(BackendError::Expired { op }),
            status => Err(status_error(op, status, http.body_text(response))),
        }
    }
}

/// GitHub's services refuse a read or write of another scope (a fork's, a protected branch's)
/// with a message starting `Cache read denied:` / `Cache write denied:`, sometimes inside a 2xx
/// answer; such a message is a [`BackendError::Denied`], whatever the status.
pub(crate) fn check_denied(op: &'static str, message: &str) -> Result<(), BackendError> {
    let lower = message.to_ascii_lowercase();
    if lower.contains("cache read denied:") || lower.contains("cache write denied:") {
        return Err(BackendError::Denied { op, message: message.to_string() });
    }
    Ok(())
}

/// The status → error table for answers the protocol code did not expect.
pub(crate) fn status_error(op: &'static str, status: u16, body: String) -> BackendError {
    if let Err(denied) = check_denied(op, &body) {
        return denied;
    }
    match status {
        429 => BackendError::RateLimited { op, retry_after: None },
        _ => BackendError::Status { op, status, body },
    }
}

/// How long the server asks to wait: `Retry-After` in seconds (HTTP dates are not worth
/// parsing here), else the rate-limit reset time (`x-ratelimit-reset`, Unix seconds).
fn retry_after(response: &Response<Body>) -> Option<Duration> {
    let header = |name: &str| response.headers().get(name)?.to_str().ok()?.trim().parse::<u64>().ok();
    if let Some(secs) = header("retry-after") {
        return Some(Duration::from_secs(secs));
    }
    let reset = header("x-ratelimit-reset")?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(reset.saturating_sub(now)))
}

pub(crate) fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

/// `scheme://host[:port]` of a URL.
pub(crate) fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find(['/', '?', '#']) {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

/// The host (and port) of a URL, for messages.
pub(crate) fn host_of(url: &str) -> &str {
    let origin = origin(url);
    origin.find("://").map_or(origin, |i| &origin[i + 3..])
}

/// A URL fit for a log line: scheme, host and path, never the query string.
pub fn redact(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or_default().to_string()
}

/// Cuts the query string off every URL inside `text`.
fn scrub_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        out.push_str(&rest[..i + 3]);
        rest = &rest[i + 3..];
        let end = rest
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>'))
            .unwrap_or(rest.len());
        let url = &rest[..end];
        match url.find('?') {
            Some(q) => {
                out.push_str(&url[..q]);
                out.push_str("?***");
            }
            None => out.push_str(url),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    scrub_signatures(&out)
}

/// Masks the value of every SAS signature parameter (`sig=…`) left in `text`: servers echo
/// signed queries in error bodies without the URL's scheme, where [`scrub_queries`] cannot
/// see them.
fn scrub_signatures(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.to_ascii_lowercase().find("sig=") {
        let at_boundary =
            rest[..i].chars().next_back().is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_');
        out.push_str(&rest[..i + 4]);
        rest = &rest[i + 4..];
        if at_boundary {
            let end = rest
                .find(|c: char| c.is_whitespace() || matches!(c, '&' | '"' | '\'' | '<' | '>' | ','))
                .unwrap_or(rest.len());
            if end > 0 {
                out.push_str("***");
            }
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

/// Appends query parameters to a URL that may already have some.
pub(crate) fn with_query(url: &str, params: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{params}")
}

/// `encodeURIComponent`.
pub(crate) fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A random number from std's hasher seeds: good enough for jitter and block-id UUIDs.
pub(crate) fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

/// A random version-4 UUID in its 36-character text form.
pub(crate) fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&random_u64().to_le_bytes());
    b[8..].copy_from_slice(&random_u64().to_le_bytes());
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// An integer that a service may send as a number or as a string (JSON's int64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Int(pub u64);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Int, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Number(u64),
            Text(String),
        }
        match Either::deserialize(deserializer)? {
            Either::Number(n) => Ok(Int(n)),
            Either::Text(text) => text.trim().parse().map(Int).map_err(serde::de::Error::custom),
        }
    }
}

/// For `#[serde(default, deserialize_with = "lenient")]`: a field of an unexpected type reads
/// as absent, the way the toolkit's JavaScript ignores it, instead of failing the whole answer.
pub(crate) fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_drops_queries() {
        assert_eq!(
            redact("https://a.blob.core.windows.net/c/b?sig=abc&se=1"),
            "https://a.blob.core.windows.net/c/b"
        );
        assert_eq!(
            scrub_queries("failed: https://h/x?sig=s1 and \"http://h2/y?a=b\" ok"),
            "failed: https://h/x?*** and \"http://h2/y?***\" ok"
        );
        assert_eq!(
            scrub_queries(r#"{"message":"bad upload at /c/b?sv=1&sig=s1%2B&se=2"} Sig=s2, design=x"#),
            r#"{"message":"bad upload at /c/b?sv=1&sig=***&se=2"} Sig=***, design=x"#
        );
        assert_eq!(origin("https://results.example/some/path/"), "https://results.example");
        assert_eq!(origin("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(host_of("http://127.0.0.1:8080/x?y"), "127.0.0.1:8080");
    }

    #[test]
    fn encodings() {
        assert_eq!(encode_component("a,b c/+="), "a%2Cb%20c%2F%2B%3D");
        let id = uuid_v4();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
    }

    #[test]
    fn bom_and_truncation() {
        let http = Http::new(Instant::now(), Tuning::default(), &Secret("tok3n".into()));
        assert_eq!(http.clip(b"\xEF\xBB\xBF{\"message\":\"tok3n bad\"}"), "{\"message\":\"*** bad\"}");
        assert!(http.clip(&[b'x'; 2000]).ends_with('…'));
        // A token straddling the cut leaves no part of itself behind.
        let mut body = vec![b'x'; BODY_LIMIT - 2];
        body.extend_from_slice(b"tok3n and more");
        let clipped = http.clip(&body);
        assert!(!clipped.contains("to") && clipped.ends_with("**…"), "{clipped}");
    }

    #[test]
    fn denials_are_found_in_any_message() {
        assert!(matches!(
            check_denied("reserve", "Cache write denied: fork"),
            Err(BackendError::Denied { .. })
        ));
        assert!(check_denied("reserve", "fine").is_ok());
    }
}
