//! A fault proxy: the same [`Fault`]s the test server injects into its own answers, put in
//! front of a real server that cannot be told to misbehave — versitygw (S3), a runner's own
//! cache server (act, Gitea's act) or the Forgejo runner's cache proxy and cache server. Each
//! request is read whole from the client, classified into a [`Route`], logged, and then either
//! answered by the fault that fires for it (worded as the real server words its errors,
//! [`Dialect`]) or sent on to the real server, whose answer comes back whole, stalled, cut
//! short or trickled as the fault says.
//!
//! Faults fire on events — the request of a route, the half of a body — never on a clock, so a
//! test means the same thing on a loaded machine. Besides the per-request faults the whole
//! proxy can be [`Mode::Down`] (its port closed: connections are refused, as for a stopped
//! server; it comes back on the same port) or a [`Mode::BlackHole`] (accepts, never answers).
//!
//! One request per connection: the proxy asks the real server to close after its answer and
//! says `Connection: close` to the client, as the test server does. The real server's own
//! address in an answer (the `archiveLocation` of act's and Forgejo's lookups) becomes the
//! proxy's, so downloads go through it too.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::faults::{self, Fault};
use super::http::{self, Body, Delivery, Request, Response};
use super::{LoggedRequest, Route};

/// Whose words an injected error answer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// An S3 store (versitygw v1.8.0): `application/xml` `<Error>` bodies with `Code`,
    /// `Message`, `RequestId` and `HostId`, the same two ids in `X-Amz-Request-Id` and
    /// `X-Amz-Id-2`, `Server: VERSITYGW`. A 503 is `SlowDown`, "Please reduce your request
    /// rate." (versitygw's own, from its request limiter; AWS words it the same).
    S3,
    /// The v1 cache server of act and Gitea's act (`pkg/artifactcache`): errors as
    /// `{"error": "…"}` in `application/json; charset=utf-8`.
    ActV1,
    /// The Forgejo runner's cache proxy (`act/cacheproxy`, a Go `httputil.ReverseProxy`) in
    /// front of its cache server (`act/artifactcache`). A 502 is the proxy's own answer when
    /// it cannot reach the cache server: no body (`Content-Length: 0`). Any other status is the
    /// cache server's, relayed by the proxy: `{"error": "…"}` in
    /// `application/json; charset=utf-8`, as act words it.
    ForgejoV1,
}

/// What the proxy does with connections as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Requests reach the real server, faults permitting.
    Forward,
    /// Connections are accepted and held, and nothing is ever answered.
    BlackHole,
    /// The port is closed: connections are refused.
    Down,
}

struct State {
    mode: Mode,
    faults: Vec<Fault>,
    log: Vec<LoggedRequest>,
    /// Connections held open by [`Mode::BlackHole`].
    held: Vec<TcpStream>,
    /// Bytes per second at which request bodies (uploads) are taken, if throttled.
    upload_rate: Option<usize>,
}

/// A running proxy on 127.0.0.1; it stops when dropped.
pub struct FaultProxy {
    port: u16,
    upstream: u16,
    dialect: Dialect,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl FaultProxy {
    /// A proxy to the server at `127.0.0.1:upstream`, forwarding everything.
    pub fn start(upstream: u16, dialect: Dialect) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy");
        let port = listener.local_addr().unwrap().port();
        let state = State {
            mode: Mode::Forward,
            faults: Vec::new(),
            log: Vec::new(),
            held: Vec::new(),
            upload_rate: None,
        };
        let proxy = FaultProxy {
            port,
            upstream,
            dialect,
            state: Arc::new(Mutex::new(state)),
            stop: Arc::new(AtomicBool::new(false)),
            accept: Mutex::new(None),
        };
        proxy.listen(listener);
        proxy
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request that reached the proxy in [`Mode::Forward`], oldest first.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().log.clone()
    }

    /// The requests of `route` so far.
    pub fn routed(&self, route: Route) -> Vec<LoggedRequest> {
        self.requests().into_iter().filter(|r| r.route == Some(route)).collect()
    }

    pub fn clear_requests(&self) {
        self.lock().log.clear();
    }

    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Takes request bodies (uploads) at `bytes_per_sec` from now on: a crawling link to the
    /// server, in the direction the client sends; `None` takes them at once again.
    pub fn set_upload_rate(&self, bytes_per_sec: Option<usize>) {
        self.lock().upload_rate = bytes_per_sec;
    }

    /// Switches the whole proxy to `mode`; leaving [`Mode::Down`] listens on the same port again.
    pub fn set_mode(&self, mode: Mode) {
        let before = std::mem::replace(&mut self.lock().mode, mode);
        match (before, mode) {
            (Mode::Down, Mode::Down) => {}
            (Mode::Down, _) => {
                let listener = TcpListener::bind(("127.0.0.1", self.port))
                    .unwrap_or_else(|e| panic!("listen on port {} again: {e}", self.port));
                self.listen(listener);
            }
            (_, Mode::Down) => self.close_listener(),
            _ => {}
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn listen(&self, listener: TcpListener) {
        let (state, stop) = (self.state.clone(), self.stop.clone());
        let (upstream, dialect) = (self.upstream, self.dialect);
        let accept = thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let mut locked = state.lock().unwrap_or_else(|e| e.into_inner());
                match locked.mode {
                    Mode::Down => break,
                    Mode::BlackHole => locked.held.push(stream),
                    Mode::Forward => {
                        drop(locked);
                        let (state, stop) = (state.clone(), stop.clone());
                        thread::spawn(move || {
                            let _ = relay(stream, upstream, dialect, &state, &stop);
                        });
                    }
                }
            }
        });
        *self.accept.lock().unwrap() = Some(accept);
    }

    /// Wakes the accept loop (which then sees [`Mode::Down`] or the stop) and waits for it to
    /// drop the listener.
    fn close_listener(&self) {
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(accept) = self.accept.lock().unwrap().take() {
            let _ = accept.join();
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if self.lock().mode != Mode::Down {
            self.close_listener();
        }
        for held in self.lock().held.drain(..) {
            let _ = held.shutdown(Shutdown::Both);
        }
    }
}

/// One request of `client`: answered by a fault, or sent on to the real server.
fn relay(
    client: TcpStream,
    upstream: u16,
    dialect: Dialect,
    state: &Mutex<State>,
    stop: &AtomicBool,
) -> io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut writer = client;
    let upload_rate = |_: &str, _: &str| state.lock().unwrap_or_else(|e| e.into_inner()).upload_rate;
    let Some(request) = http::read_request(&mut reader, &mut writer, stop, upload_rate)? else {
        return Ok(());
    };
    let route = match dialect {
        Dialect::S3 => s3_route(&request),
        Dialect::ActV1 | Dialect::ForgejoV1 => request
            .path
            .split_once("/_apis/artifactcache/")
            .and_then(|(_, resource)| super::v1_route(&request.method, resource)),
    };
    let fault = {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        state.log.push(LoggedRequest {
            method: request.method.clone(),
            path: request.path.clone(),
            query: request.query.clone(),
            headers: request.headers.clone(),
            body_len: request.body.len(),
            json: serde_json::from_slice(&request.body).ok(),
            route,
        });
        faults::take(&mut state.faults, route.unwrap_or(Route::Any))
    };
    let delivery = match fault {
        None => Delivery::Normal,
        Some(Fault::Status { status, .. }) => {
            return http::write_response(&mut writer, error_answer(dialect, &request, status, None), stop);
        }
        Some(Fault::Unavailable { retry_after_secs, .. }) => {
            let answer = error_answer(dialect, &request, 503, Some(retry_after_secs));
            return http::write_response(&mut writer, answer, stop);
        }
        Some(fault) => match fault.effect() {
            faults::Effect::Answer(answer) => return http::write_response(&mut writer, answer, stop),
            faults::Effect::Deliver(how) => how,
        },
    };
    let own = writer.local_addr()?.port();
    let mut answer = forward(&request, upstream, own)?;
    answer.delivery = delivery;
    http::write_response(&mut writer, answer, stop)
}

/// The route of an S3 request, as the s3 backend uses each call (`src/backend/s3.rs`): a
/// listing, a one-byte probe or a digest read is a lookup, any other read a download.
fn s3_route(request: &Request) -> Option<Route> {
    let query = |name: &str| request.query.split('&').any(|p| p.split('=').next() == Some(name));
    Some(match request.method.as_str() {
        "GET" if query("list-type") || request.path.contains(".sha256/") => Route::Lookup,
        "GET" if request.header("range") == Some("bytes=0-0") => Route::Lookup,
        "GET" => Route::Download,
        "POST" if query("uploads") => Route::Reserve,
        "POST" if query("uploadId") => Route::Commit,
        "PUT" if request.path.contains(".sha256/") => Route::Commit,
        "PUT" => Route::Upload,
        _ => return None,
    })
}

/// An error answer worded as the real server of `dialect` words it.
fn error_answer(dialect: Dialect, request: &Request, status: u16, retry_after: Option<u64>) -> Response {
    let mut answer = match dialect {
        Dialect::S3 => {
            let (code, message) = match status {
                503 => ("SlowDown", "Please reduce your request rate."),
                500 => ("InternalError", "We encountered an internal error. Please try again."),
                _ => ("ServiceUnavailable", "Service is unable to handle request."),
            };
            let (request_id, host_id) = s3_ids();
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}\
                 </Message><RequestId>{request_id}</RequestId><HostId>{host_id}</HostId></Error>"
            );
            Response::new(status, "application/xml", xml)
                .with_header("Server", "VERSITYGW")
                .with_header("X-Amz-Request-Id", request_id)
                .with_header("X-Amz-Id-2", host_id)
        }
        Dialect::ForgejoV1 if status == 502 => Response::empty(502),
        Dialect::ActV1 | Dialect::ForgejoV1 => {
            let body = serde_json::json!({
                "error": format!("{} {}: service unavailable", request.method, request.path),
            });
            Response::new(status, "application/json; charset=utf-8", body.to_string())
        }
    };
    if let Some(secs) = retry_after {
        answer = answer.with_header("Retry-After", secs.to_string());
    }
    answer
}

/// A request id (16 upper-case letters and digits) and a host id, as versitygw makes them.
fn s3_ids() -> (String, String) {
    static NEXT: AtomicU64 = AtomicU64::new(0x5eed_1234_abcd);
    let mut state = NEXT.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    let mut draw = |alphabet: &[u8], n: usize| -> String {
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                alphabet[(state % alphabet.len() as u64) as usize] as char
            })
            .collect()
    };
    let request_id = draw(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 16);
    let host_id = draw(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", 76) + "=";
    (request_id, host_id)
}

/// Sends `request` to the real server and reads its whole answer, with the server's own origin
/// in it (the `archiveLocation` of act's and Forgejo's lookups) made the proxy's, as a server
/// configured with the proxy as its external URL would answer, so the download goes through the
/// proxy too.
fn forward(request: &Request, upstream: u16, own: u16) -> io::Result<Response> {
    let server = TcpStream::connect(("127.0.0.1", upstream))?;
    server.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut head = format!("{} {}", request.method, request.path);
    if !request.query.is_empty() {
        head.push('?');
        head.push_str(&request.query);
    }
    head.push_str(" HTTP/1.1\r\n");
    const HOP: [&str; 5] = ["connection", "keep-alive", "expect", "transfer-encoding", "content-length"];
    for (name, value) in request.headers.iter().filter(|(n, _)| !HOP.contains(&n.as_str())) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !request.body.is_empty() || matches!(request.method.as_str(), "POST" | "PUT" | "PATCH") {
        head.push_str(&format!("content-length: {}\r\n", request.body.len()));
    }
    head.push_str("connection: close\r\n\r\n");
    let mut writer = server.try_clone()?;
    writer.write_all(head.as_bytes())?;
    writer.write_all(&request.body)?;
    writer.flush()?;

    let mut reader = BufReader::new(server);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("bad status line {line:?}")))?;
    let mut headers = http::read_headers(&mut reader)?;
    let header = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v);
    let mut body = Vec::new();
    if request.method == "HEAD" || matches!(status, 204 | 304) {
        // No body.
    } else if header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if size == 0 {
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            reader.read_exact(&mut [0u8; 2])?;
        }
    } else if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(len, 0);
        reader.read_exact(&mut body)?;
    } else {
        reader.read_to_end(&mut body)?;
    }
    let (theirs, ours) = (format!("127.0.0.1:{upstream}"), format!("127.0.0.1:{own}"));
    if let Ok(text) = std::str::from_utf8(&body)
        && text.contains(&theirs)
    {
        body = text.replace(&theirs, &ours).into_bytes();
    }
    const DROPPED: [&str; 3] = ["connection", "transfer-encoding", "content-length"];
    headers.retain(|(n, _)| !DROPPED.contains(&n.to_ascii_lowercase().as_str()));
    Ok(Response { status, headers, body: Body::owned(body), chunked: false, delivery: Delivery::Normal })
}
