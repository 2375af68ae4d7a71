//! A local stand-in for the runners' cache services, std only, so the backends — and the
//! official `@actions/cache` client, which proves the stand-in right — can be tested without
//! the network.
//!
//! It speaks the v1 `_apis/artifactcache` REST API under a base path, the v2 Twirp
//! `CacheService` at the origin, and an Azure-like blob host (Put Blob, Put Block, Put Block
//! List; `GET` honouring `Range`), with the matching rules of docs/protocol.md §6.1. Two personalities:
//! [`Personality::Github`] keeps key case and refuses a second save of a key + version (409 /
//! `already_exists`); [`Personality::Forgejo`] (act / Forgejo / Gitea) lower-cases keys,
//! allows duplicates (newest wins) and checks the committed size against `cacheSize`.
//!
//! Tests read the [`CacheServer::requests`] log and switch [`Fault`]s on at run time. The HTTP
//! side is a small HTTP/1.1 reader (request line, headers, Content-Length or chunked bodies);
//! every response closes its connection.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Which real server the stand-in behaves like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Personality {
    /// github.com (v2) and GHES (v1): keys keep their case, a key + version is written once.
    Github,
    /// act / Forgejo / Gitea: keys lower-cased, duplicates allowed, newest wins.
    Forgejo,
}

/// What kind of request a fault applies to (v1 and v2 alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// v1 `GET cache`, v2 `GetCacheEntryDownloadURL`.
    Lookup,
    /// v1 `POST caches`, v2 `CreateCacheEntry`.
    Reserve,
    /// v1 `PATCH caches/{id}`, blob `PUT`s.
    Upload,
    /// v1 `POST caches/{id}`, v2 `FinalizeCacheEntryUpload`.
    Commit,
    /// v1 `GET artifacts/{id}`, blob `GET`.
    Download,
    /// Every request.
    Any,
}

/// A misbehaviour switched on by a test; each fires `times` times, then is used up.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with `status` (and a short body) instead of handling the request.
    Status { route: Route, status: u16, times: usize },
    /// Answer `429` with `Retry-After: <secs>`.
    RateLimit { route: Route, retry_after_secs: u64, times: usize },
    /// Handle the request, send the headers and half the body, then go silent.
    Stall { route: Route, times: usize },
    /// Handle the request, send the headers and half the body, then close the connection.
    Truncate { route: Route, times: usize },
    /// Answer `200` with a body that is not JSON.
    GarbageJson { route: Route, times: usize },
    /// Answer with this status and this (JSON) body: denials, `ok:false`, camelCase fields,
    /// BOM-prefixed errors…
    Answer { route: Route, status: u16, body: String, times: usize },
    /// Let `skip` requests of the inner fault's route pass, then apply it (a download that
    /// breaks after its first range, say).
    Later { skip: usize, fault: Box<Fault> },
}

impl Fault {
    /// `n` answers of `503`, then normal service.
    pub fn server_errors(route: Route, n: usize) -> Fault {
        Fault::Status { route, status: 503, times: n }
    }
    /// `500` forever.
    pub fn persistent_server_error(route: Route) -> Fault {
        Fault::Status { route, status: 500, times: usize::MAX }
    }
    /// A forced conflict on the next reservation.
    pub fn conflict() -> Fault {
        Fault::Status { route: Route::Reserve, status: 409, times: 1 }
    }
    /// The next download is refused as an expired signed URL (`403` once).
    pub fn expired_url() -> Fault {
        Fault::Status { route: Route::Download, status: 403, times: 1 }
    }

    fn route(&self) -> Route {
        match self {
            Fault::Status { route, .. }
            | Fault::RateLimit { route, .. }
            | Fault::Stall { route, .. }
            | Fault::Truncate { route, .. }
            | Fault::GarbageJson { route, .. }
            | Fault::Answer { route, .. } => *route,
            Fault::Later { fault, .. } => fault.route(),
        }
    }

    fn left(&self) -> usize {
        let mut copy = self.clone();
        *copy.times()
    }

    fn times(&mut self) -> &mut usize {
        match self {
            Fault::Status { times, .. }
            | Fault::RateLimit { times, .. }
            | Fault::Stall { times, .. }
            | Fault::Truncate { times, .. }
            | Fault::GarbageJson { times, .. }
            | Fault::Answer { times, .. } => times,
            Fault::Later { fault, .. } => fault.times(),
        }
    }
}

/// How the server starts.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub personality: Personality,
    /// `0` picks a free port.
    pub port: u16,
    /// The expected `ACTIONS_RUNTIME_TOKEN`.
    pub token: String,
    /// The blob host ignores `Range` and answers `200` chunked with no `Content-Length`.
    pub ignore_range: bool,
}

impl ServerConfig {
    pub fn new(personality: Personality) -> ServerConfig {
        ServerConfig { personality, port: 0, token: "test-runtime-token".into(), ignore_range: false }
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct LoggedRequest {
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    pub query: String,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body_len: usize,
    /// The body, when it was sent as JSON and parses.
    pub json: Option<serde_json::Value>,
    /// The route it was classified as (`None` for unknown paths).
    pub route: Option<Route>,
}

impl LoggedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
}

/// A running server; it stops when dropped.
pub struct CacheServer {
    addr: SocketAddr,
    config: ServerConfig,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl CacheServer {
    pub fn start(personality: Personality) -> CacheServer {
        CacheServer::start_with(ServerConfig::new(personality))
    }

    pub fn start_with(config: ServerConfig) -> CacheServer {
        let listener = TcpListener::bind(("127.0.0.1", config.port)).expect("bind the cache server");
        let addr = listener.local_addr().expect("local address");
        let state = Arc::new(Mutex::new(State {
            config: config.clone(),
            origin: format!("http://{addr}"),
            signature: format!("sig{:x}", SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()),
            entries: Vec::new(),
            blobs: HashMap::new(),
            next_id: 1,
            clock: 0,
            faults: Vec::new(),
            log: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let (state, stop) = (state.clone(), stop.clone());
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (state, stop) = (state.clone(), stop.clone());
                    thread::spawn(move || {
                        let _ = serve(stream, &state, &stop);
                    });
                }
            })
        };
        CacheServer { addr, config, state, stop, accept: Some(accept) }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn token(&self) -> &str {
        &self.config.token
    }

    /// `ACTIONS_CACHE_URL`: the v1 base, with a path and a trailing slash.
    pub fn base_url_v1(&self) -> String {
        format!("http://{}{}", self.addr, base_path(self.config.personality))
    }

    /// `ACTIONS_RESULTS_URL`: carries a path that clients must discard (as the toolkit does).
    pub fn results_url(&self) -> String {
        format!("http://{}/results-receiver/", self.addr)
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().log.clone()
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

    /// Switches the blob host between honouring `Range` and ignoring it (chunked `200`).
    pub fn set_ignore_range(&self, ignore: bool) {
        self.lock().config.ignore_range = ignore;
    }

    /// Complete entries as (stored key, version, size), oldest first.
    pub fn entries(&self) -> Vec<(String, String, usize)> {
        let state = self.lock();
        let mut done: Vec<&Entry> = state.entries.iter().filter(|e| e.data.is_some()).collect();
        done.sort_by_key(|e| e.created);
        done.iter().map(|e| (e.key.clone(), e.version.clone(), e.data.as_ref().unwrap().len)).collect()
    }

    /// Stores `bytes` as a complete entry under `key` + `version` (newest of its key), as if a
    /// client had saved it: served by v1 `artifacts/{id}` and by the v2 blob host alike. For
    /// tests that need an entry no honest client would write (hostile archives).
    pub fn plant(&self, key: &str, version: &str, bytes: Vec<u8>) {
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        let created = state.tick();
        let key = state.norm(key);
        let bytes = Stored::whole(bytes);
        state.blobs.insert(id, Blob { blocks: HashMap::new(), data: Some(bytes.clone()) });
        state.entries.push(Entry {
            id,
            key,
            version: version.to_string(),
            reserved_size: None,
            chunks: BTreeMap::new(),
            data: Some(bytes),
            created,
        });
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Blocks until the process is killed (for the standalone example).
    pub fn wait(mut self) {
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

impl Drop for CacheServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn base_path(personality: Personality) -> &'static str {
    match personality {
        Personality::Github => "/_services/artifactcache/0aefa3e1/",
        Personality::Forgejo => "/7f3e2a91/",
    }
}

const TWIRP_PREFIX: &str = "/twirp/github.actions.results.api.v1.CacheService/";
const BLOB_PREFIX: &str = "/blobstore/cache/";

struct Entry {
    id: u64,
    key: String,
    version: String,
    /// v1 `cacheSize` (`None` when absent or ≤ 0).
    reserved_size: Option<u64>,
    chunks: BTreeMap<u64, Vec<u8>>,
    /// Set at commit / finalize.
    data: Option<Arc<Stored>>,
    created: u64,
}

#[derive(Default)]
struct Blob {
    blocks: HashMap<String, Arc<Vec<u8>>>,
    data: Option<Arc<Stored>>,
}

/// An entry's bytes, kept as the pieces they were uploaded in: joining the chunks or blocks of
/// a 700 MB entry at commit would copy it whole, on the saving client's clock.
#[derive(Default)]
struct Stored {
    pieces: Vec<Arc<Vec<u8>>>,
    len: usize,
}

impl Stored {
    fn new(pieces: Vec<Arc<Vec<u8>>>) -> Stored {
        let len = pieces.iter().map(|p| p.len()).sum();
        Stored { pieces, len }
    }

    /// Bytes that arrived in one piece.
    fn whole(bytes: Vec<u8>) -> Arc<Stored> {
        Arc::new(Stored::new(vec![Arc::new(bytes)]))
    }

    /// The slices that make up `range`, in order.
    fn slices(&self, range: std::ops::Range<usize>) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut offset = 0;
        for piece in &self.pieces {
            let (start, end) = (offset, offset + piece.len());
            offset = end;
            if end <= range.start || start >= range.end {
                continue;
            }
            out.push(&piece[range.start.max(start) - start..range.end.min(end) - start]);
        }
        out
    }
}

struct State {
    config: ServerConfig,
    origin: String,
    signature: String,
    entries: Vec<Entry>,
    blobs: HashMap<u64, Blob>,
    next_id: u64,
    clock: u64,
    faults: Vec<Fault>,
    log: Vec<LoggedRequest>,
}

struct Request {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn param(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then(|| percent_decode(v))
        })
    }
}

enum Delivery {
    Normal,
    Stall,
    Truncate,
}

/// A response body: a range of bytes shared with the store, so that serving a large entry
/// copies nothing and its first bytes leave at once, as from a real blob store.
#[derive(Default)]
struct Body {
    bytes: Arc<Stored>,
    range: std::ops::Range<usize>,
}

impl Body {
    fn owned(bytes: Vec<u8>) -> Body {
        let range = 0..bytes.len();
        Body { bytes: Stored::whole(bytes), range }
    }

    fn shared(bytes: &Arc<Stored>, range: std::ops::Range<usize>) -> Body {
        Body { bytes: Arc::clone(bytes), range }
    }

    fn len(&self) -> usize {
        self.range.len()
    }

    /// The slices of the first `len` bytes.
    fn slices(&self, len: usize) -> Vec<&[u8]> {
        self.bytes.slices(self.range.start..self.range.start + len.min(self.len()))
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Body,
    /// Send with `Transfer-Encoding: chunked` and no `Content-Length`.
    chunked: bool,
    delivery: Delivery,
}

impl Response {
    fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: Body::owned(body.into()),
            chunked: false,
            delivery: Delivery::Normal,
        }
    }
    fn json(status: u16, value: serde_json::Value) -> Response {
        Response::new(status, "application/json", value.to_string())
    }
    fn text(status: u16, text: &str) -> Response {
        Response::new(status, "text/plain", text)
    }
    fn empty(status: u16) -> Response {
        Response {
            status,
            headers: vec![],
            body: Body::default(),
            chunked: false,
            delivery: Delivery::Normal,
        }
    }
    fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>, stop: &AtomicBool) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let Some(mut request) = read_request(&mut reader, &mut writer)? else { return Ok(()) };
    let response = handle(state, &mut request);
    write_response(&mut writer, response, stop)
}

fn read_request(reader: &mut impl BufRead, writer: &mut impl Write) -> io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "bad request line"));
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    if header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line)?;
            let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if size == 0 {
                // Trailers, then the final empty line.
                loop {
                    let mut trailer = String::new();
                    if reader.read_line(&mut trailer)? == 0 || trailer.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf)?;
        }
    } else if let Some(len) = header("content-length") {
        let len: usize = len.parse().map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad length"))?;
        body.resize(len, 0);
        reader.read_exact(&mut body)?;
    }
    Ok(Some(Request {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        headers,
        body,
    }))
}

fn write_response(writer: &mut TcpStream, response: Response, stop: &AtomicBool) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", response.status, reason(response.status));
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if response.chunked {
        head.push_str("Transfer-Encoding: chunked\r\n");
    } else if response.status != 204 {
        head.push_str(&format!("Content-Length: {}\r\n", response.body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    writer.write_all(head.as_bytes())?;
    let cut = match response.delivery {
        Delivery::Normal => response.body.len(),
        Delivery::Stall | Delivery::Truncate => response.body.len() / 2,
    };
    for slice in response.body.slices(cut) {
        if response.chunked {
            for piece in slice.chunks(64 * 1024) {
                writer.write_all(format!("{:x}\r\n", piece.len()).as_bytes())?;
                writer.write_all(piece)?;
                writer.write_all(b"\r\n")?;
            }
        } else {
            writer.write_all(slice)?;
        }
    }
    match response.delivery {
        Delivery::Normal => {
            if response.chunked {
                writer.write_all(b"0\r\n\r\n")?;
            }
        }
        Delivery::Stall => {
            writer.flush()?;
            let until = Instant::now() + Duration::from_secs(120);
            while !stop.load(Ordering::SeqCst) && Instant::now() < until {
                thread::sleep(Duration::from_millis(50));
            }
        }
        Delivery::Truncate => {}
    }
    writer.flush()?;
    let _ = writer.shutdown(std::net::Shutdown::Both);
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        411 => "Length Required",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// What a path is, before any state is touched.
enum Target {
    V1(String),
    Twirp(String),
    Blob(u64),
}

fn classify(personality: Personality, method: &str, path: &str) -> Option<(Target, Route)> {
    let v1 = format!("{}_apis/artifactcache/", base_path(personality));
    if let Some(resource) = path.strip_prefix(&v1) {
        let route = match (method, resource) {
            ("GET", "cache") => Route::Lookup,
            ("POST", "caches") => Route::Reserve,
            ("PATCH", r) if r.starts_with("caches/") => Route::Upload,
            ("POST", r) if r.starts_with("caches/") => Route::Commit,
            ("GET", r) if r.starts_with("artifacts/") => Route::Download,
            _ => return None,
        };
        return Some((Target::V1(resource.to_string()), route));
    }
    if let Some(rpc) = path.strip_prefix(TWIRP_PREFIX) {
        let route = match rpc {
            "GetCacheEntryDownloadURL" => Route::Lookup,
            "CreateCacheEntry" => Route::Reserve,
            "FinalizeCacheEntryUpload" => Route::Commit,
            _ => return None,
        };
        return (method == "POST").then(|| (Target::Twirp(rpc.to_string()), route));
    }
    if let Some(id) = path.strip_prefix(BLOB_PREFIX) {
        let id = id.parse().ok()?;
        let route = match method {
            "PUT" => Route::Upload,
            "GET" => Route::Download,
            _ => return None,
        };
        return Some((Target::Blob(id), route));
    }
    None
}

fn handle(state: &Mutex<State>, request: &mut Request) -> Response {
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    let classified = classify(state.config.personality, &request.method, &request.path);
    state.log.push(LoggedRequest {
        method: request.method.clone(),
        path: request.path.clone(),
        query: request.query.clone(),
        headers: request.headers.clone(),
        body_len: request.body.len(),
        json: request
            .header("content-type")
            .filter(|c| c.starts_with("application/json"))
            .and_then(|_| serde_json::from_slice(&request.body).ok()),
        route: classified.as_ref().map(|(_, r)| *r),
    });
    let Some((target, route)) = classified else {
        return Response::text(404, &format!("no route for {} {}", request.method, request.path));
    };
    // Faults first: the first live one for this route fires.
    let mut delivery = Delivery::Normal;
    let mut fired = None;
    for fault in state.faults.iter_mut() {
        if !(fault.route() == route || fault.route() == Route::Any) || fault.left() == 0 {
            continue;
        }
        if let Fault::Later { skip, .. } = fault
            && *skip > 0
        {
            *skip -= 1;
            continue;
        }
        *fault.times() -= 1;
        let mut fault = fault.clone();
        while let Fault::Later { fault: inner, .. } = fault {
            fault = *inner;
        }
        fired = Some(fault);
        break;
    }
    if let Some(fault) = fired {
        match fault {
            Fault::Status { status, .. } => {
                return Response::json(
                    status,
                    serde_json::json!({"code": "injected", "msg": format!("injected {status}")}),
                );
            }
            Fault::RateLimit { retry_after_secs, .. } => {
                return Response::json(
                    429,
                    serde_json::json!({"code": "resource_exhausted", "msg": "rate limited"}),
                )
                .with_header("Retry-After", retry_after_secs.to_string());
            }
            Fault::GarbageJson { .. } => return Response::new(200, "application/json", "{\"ok\":tru<html>"),
            Fault::Answer { status, body, .. } => return Response::new(status, "application/json", body),
            Fault::Stall { .. } => delivery = Delivery::Stall,
            Fault::Truncate { .. } => delivery = Delivery::Truncate,
            Fault::Later { .. } => unreachable!("unwrapped above"),
        }
    }
    let mut response = match target {
        Target::V1(resource) => state.v1(request, &resource),
        Target::Twirp(rpc) => state.twirp(request, &rpc),
        Target::Blob(id) => state.blob(request, id),
    };
    response.delivery = delivery;
    response
}

impl State {
    fn github(&self) -> bool {
        self.config.personality == Personality::Github
    }

    /// The key as this personality stores and compares it.
    fn norm(&self, key: &str) -> String {
        if self.github() { key.to_string() } else { key.to_lowercase() }
    }

    fn authorized(&self, request: &Request) -> bool {
        request.header("authorization") == Some(&format!("Bearer {}", self.config.token))
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// docs/protocol.md §6.1: per key in order, the newest exact match, else the newest prefix match;
    /// only complete entries with the identical version.
    fn find(&self, keys: &[String], version: &str) -> Option<&Entry> {
        let complete = || self.entries.iter().filter(|e| e.data.is_some() && e.version == version);
        for (i, key) in keys.iter().enumerate() {
            let key = self.norm(key);
            // GitHub prefix-matches restore keys directly; act/Forgejo try exact first for all.
            if (i == 0 || !self.github())
                && let Some(e) = complete().filter(|e| e.key == key).max_by_key(|e| e.created)
            {
                return Some(e);
            }
            if let Some(e) = complete().filter(|e| e.key.starts_with(&key)).max_by_key(|e| e.created) {
                return Some(e);
            }
        }
        None
    }

    fn reserve(&mut self, key: &str, version: &str, reserved_size: Option<u64>) -> Result<u64, String> {
        let key = self.norm(key);
        if self.github() && self.entries.iter().any(|e| e.key == key && e.version == version) {
            return Err(key);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.entries.push(Entry {
            id,
            key,
            version: version.to_string(),
            reserved_size,
            chunks: BTreeMap::new(),
            data: None,
            created: 0,
        });
        Ok(id)
    }

    fn v1(&mut self, request: &mut Request, resource: &str) -> Response {
        if let Some(id) = resource.strip_prefix("artifacts/") {
            let id: Option<u64> = id.parse().ok();
            let data =
                id.and_then(|id| self.entries.iter().find(|e| e.id == id)).and_then(|e| e.data.clone());
            return match data {
                Some(data) => self.serve_bytes(request, &data),
                None => Response::json(404, serde_json::json!({"error": "cache not found"})),
            };
        }
        if !self.authorized(request) {
            return Response::json(401, serde_json::json!({"message": "missing or wrong bearer token"}));
        }
        if self.github() && !request.header("accept").is_some_and(|a| a.contains("api-version=6.0-preview.1"))
        {
            return Response::json(400, serde_json::json!({"message": "missing api-version in Accept"}));
        }
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
        match (request.method.as_str(), resource) {
            ("GET", "cache") => {
                let keys: Vec<String> =
                    request.param("keys").unwrap_or_default().split(',').map(str::to_string).collect();
                let version = request.param("version").unwrap_or_default();
                let Some(entry) = self.find(&keys, &version) else { return Response::empty(204) };
                let location = format!(
                    "{}{}_apis/artifactcache/artifacts/{}",
                    self.origin,
                    base_path(self.config.personality),
                    entry.id
                );
                let answer = if self.github() {
                    serde_json::json!({
                        "cacheKey": entry.key, "scope": "refs/heads/main", "cacheVersion": entry.version,
                        "creationTime": "2026-01-01T00:00:00Z", "archiveLocation": location,
                    })
                } else {
                    serde_json::json!({"result": "hit", "archiveLocation": location, "cacheKey": entry.key})
                };
                Response::json(200, answer)
            }
            ("POST", "caches") => {
                let (Some(key), Some(version)) = (body["key"].as_str(), body["version"].as_str()) else {
                    return Response::json(
                        400,
                        serde_json::json!({"message": "key and version are required"}),
                    );
                };
                let size = body["cacheSize"].as_i64().filter(|s| *s > 0).map(|s| s as u64);
                match self.reserve(key, version, size) {
                    Ok(id) => Response::json(200, serde_json::json!({ "cacheId": id })),
                    Err(key) => Response::json(
                        409,
                        serde_json::json!({
                            "$id": "1",
                            "message": format!("Cache already exists. Scope: refs/heads/main, Key: {key}, Version: {version}"),
                            "typeName": "Microsoft.Azure.DevOps.PipelineCache.WebApi.ArtifactCacheItemAlreadyExistsException",
                            "typeKey": "ArtifactCacheItemAlreadyExistsException", "errorCode": 0, "eventId": 3000,
                        }),
                    ),
                }
            }
            (method, r) if r.starts_with("caches/") => {
                let Some(id) = r["caches/".len()..].parse::<u64>().ok() else {
                    return Response::json(400, serde_json::json!({"error": "bad id"}));
                };
                let github = self.github();
                let clock = self.clock + 1;
                let Some(entry) = self.entries.iter_mut().find(|e| e.id == id && e.data.is_none()) else {
                    return Response::json(
                        404,
                        serde_json::json!({"error": format!("cache {id}: not found")}),
                    );
                };
                if method == "PATCH" {
                    let range = request.header("content-range").and_then(parse_content_range);
                    let Some((start, end)) = range else {
                        return Response::json(400, serde_json::json!({"error": "bad Content-Range"}));
                    };
                    if end + 1 - start != request.body.len() as u64 {
                        return Response::json(
                            400,
                            serde_json::json!({"error": "Content-Range does not match the body"}),
                        );
                    }
                    entry.chunks.insert(start, std::mem::take(&mut request.body));
                    return Response::empty(204);
                }
                let mut len = 0u64;
                for (start, chunk) in &entry.chunks {
                    if *start != len {
                        return Response::json(
                            500,
                            serde_json::json!({"error": "broken file: chunks overlap or leave gaps"}),
                        );
                    }
                    len += chunk.len() as u64;
                }
                if github && body["size"].as_u64() != Some(len) {
                    return Response::json(
                        400,
                        serde_json::json!({"message": "size does not match the upload"}),
                    );
                }
                if !github && entry.reserved_size.is_some_and(|s| s != len) {
                    return Response::json(
                        500,
                        serde_json::json!({"error": "broken file: size differs from cacheSize"}),
                    );
                }
                let chunks = std::mem::take(&mut entry.chunks);
                entry.data = Some(Arc::new(Stored::new(chunks.into_values().map(Arc::new).collect())));
                entry.created = clock;
                self.clock = clock;
                Response::empty(204)
            }
            _ => Response::json(404, serde_json::json!({"error": "no such resource"})),
        }
    }

    fn twirp(&mut self, request: &Request, rpc: &str) -> Response {
        if !self.authorized(request) {
            return Response::json(401, serde_json::json!({"code": "unauthenticated", "msg": "bad token"}));
        }
        if !request.header("content-type").is_some_and(|c| c.starts_with("application/json")) {
            return Response::json(415, serde_json::json!({"code": "malformed", "msg": "json only"}));
        }
        let Ok(body) = serde_json::from_slice::<serde_json::Value>(&request.body) else {
            return Response::json(400, serde_json::json!({"code": "malformed", "msg": "bad json"}));
        };
        let field = |snake: &str, camel: &str| body.get(snake).or_else(|| body.get(camel)).cloned();
        let key = field("key", "key").and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        let version =
            field("version", "version").and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        match rpc {
            "GetCacheEntryDownloadURL" => {
                let mut keys = vec![key];
                if let Some(restore) =
                    field("restore_keys", "restoreKeys").and_then(|v| v.as_array().cloned())
                {
                    keys.extend(restore.iter().filter_map(|k| k.as_str().map(str::to_string)));
                }
                match self.find(&keys, &version) {
                    Some(entry) => {
                        let url = self.blob_url(entry.id);
                        Response::json(
                            200,
                            serde_json::json!({"ok": true, "signed_download_url": url, "matched_key": entry.key}),
                        )
                    }
                    None if self.github() => Response::json(
                        200,
                        serde_json::json!({"ok": false, "signed_download_url": "", "matched_key": ""}),
                    ),
                    None => Response::json(200, serde_json::json!({})),
                }
            }
            "CreateCacheEntry" => match self.reserve(&key, &version, None) {
                Ok(id) => {
                    self.blobs.insert(id, Blob::default());
                    Response::json(
                        200,
                        serde_json::json!({"ok": true, "signed_upload_url": self.blob_url(id)}),
                    )
                }
                Err(_) => Response::json(
                    409,
                    serde_json::json!({"code": "already_exists", "msg": "cache entry with the same key, version, and scope already exists"}),
                ),
            },
            "FinalizeCacheEntryUpload" => {
                let size = field("size_bytes", "sizeBytes")
                    .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
                    .unwrap_or(0);
                if size == 0 {
                    return Response::json(
                        500,
                        serde_json::json!({"code": "internal", "msg": "empty upload"}),
                    );
                }
                let key = self.norm(&key);
                let clock = self.tick();
                let Some(entry) = self
                    .entries
                    .iter_mut()
                    .rev()
                    .find(|e| e.key == key && e.version == version && e.data.is_none())
                else {
                    return Response::json(
                        200,
                        serde_json::json!({"ok": false, "message": "no pending entry"}),
                    );
                };
                let data = self.blobs.get(&entry.id).and_then(|b| b.data.clone());
                match data {
                    Some(data) if data.len as u64 == size => {
                        entry.data = Some(data);
                        entry.created = clock;
                        Response::json(200, serde_json::json!({"ok": true, "entry_id": entry.id.to_string()}))
                    }
                    Some(data) => Response::json(
                        200,
                        serde_json::json!({"ok": false, "message": format!("size {size} differs from the {} uploaded bytes", data.len)}),
                    ),
                    None => Response::json(
                        200,
                        serde_json::json!({"ok": false, "message": "nothing was uploaded"}),
                    ),
                }
            }
            _ => Response::json(404, serde_json::json!({"code": "bad_route", "msg": "no such method"})),
        }
    }

    fn blob_url(&self, id: u64) -> String {
        format!(
            "{}{BLOB_PREFIX}{id}?sv=2020-04-08&se=2099-01-01T00%3A00%3A00Z&sp=rcw&sig={}",
            self.origin, self.signature
        )
    }

    fn blob(&mut self, request: &mut Request, id: u64) -> Response {
        if request.param("sig").as_deref() != Some(self.signature.as_str()) {
            return blob_error(403, "AuthenticationFailed");
        }
        if request.header("authorization").is_some() {
            // Azure refuses a SAS request that also carries credentials.
            return blob_error(400, "InvalidAuthenticationInfo");
        }
        if request.method == "GET" {
            let data = self.blobs.get(&id).and_then(|b| b.data.clone());
            return match data {
                Some(data) => self.serve_bytes(request, &data),
                None => blob_error(404, "BlobNotFound"),
            };
        }
        let Some(blob) = self.blobs.get_mut(&id) else { return blob_error(404, "ContainerNotFound") };
        if request.header("x-ms-version").is_none() {
            return blob_error(400, "MissingRequiredHeader");
        }
        match request.param("comp").as_deref() {
            None => {
                if request.header("x-ms-blob-type") != Some("BlockBlob") {
                    return blob_error(400, "InvalidBlobType");
                }
                if request.header("content-length").is_none() {
                    return blob_error(411, "MissingContentLengthHeader");
                }
                blob.data = Some(Stored::whole(std::mem::take(&mut request.body)));
            }
            Some("block") => {
                let id = request.param("blockid").unwrap_or_default();
                if !valid_block_id(&id) {
                    return blob_error(400, "InvalidQueryParameterValue");
                }
                if blob.blocks.keys().next().is_some_and(|other| other.len() != id.len()) {
                    return blob_error(400, "InvalidBlobOrBlock");
                }
                if request.header("content-length").is_none() {
                    return blob_error(411, "MissingContentLengthHeader");
                }
                blob.blocks.insert(id, Arc::new(std::mem::take(&mut request.body)));
            }
            Some("blocklist") => {
                let xml = String::from_utf8_lossy(&request.body);
                let mut pieces = Vec::new();
                for id in xml_block_ids(&xml) {
                    match blob.blocks.get(&id) {
                        Some(bytes) => pieces.push(Arc::clone(bytes)),
                        None => return blob_error(400, "InvalidBlockList"),
                    }
                }
                blob.data = Some(Arc::new(Stored::new(pieces)));
                blob.blocks.clear();
            }
            Some(_) => return blob_error(400, "InvalidQueryParameterValue"),
        }
        Response::empty(201).with_header("x-ms-request-id", format!("req-{}", self.tick()))
    }

    /// An archive or blob body, honouring `Range` unless the blob host is set to ignore it.
    /// Nothing is copied: the body shares the stored bytes (copying a 700 MB entry under the
    /// state lock before sending its first byte would be the server's delay, not the client's).
    fn serve_bytes(&self, request: &Request, data: &Arc<Stored>) -> Response {
        let shared = |status, range| {
            let mut response = Response::new(status, "application/octet-stream", Vec::new());
            response.body = Body::shared(data, range);
            response
        };
        if self.config.ignore_range {
            let mut response = shared(200, 0..data.len);
            response.headers.clear();
            response.chunked = true;
            return response;
        }
        let total = data.len as u64;
        let Some((start, end)) = request.header("range").and_then(parse_range) else {
            return shared(200, 0..data.len);
        };
        if start >= total {
            return Response::empty(416).with_header("Content-Range", format!("bytes */{total}"));
        }
        let end = end.unwrap_or(total - 1).min(total - 1);
        shared(206, start as usize..end as usize + 1)
            .with_header("Content-Range", format!("bytes {start}-{end}/{total}"))
    }
}

fn blob_error(status: u16, code: &str) -> Response {
    Response::new(
        status,
        "application/xml",
        format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{code}</Message></Error>"),
    )
    .with_header("x-ms-error-code", code)
}

/// `bytes a-b/*` (or `/total`).
fn parse_content_range(value: &str) -> Option<(u64, u64)> {
    let range = value.strip_prefix("bytes ")?.split('/').next()?;
    let (a, b) = range.split_once('-')?;
    let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a <= b).then_some((a, b))
}

/// `bytes=a-b` or `bytes=a-`.
fn parse_range(value: &str) -> Option<(u64, Option<u64>)> {
    let (a, b) = value.strip_prefix("bytes=")?.split_once('-')?;
    let a = a.trim().parse().ok()?;
    let b = if b.trim().is_empty() { None } else { Some(b.trim().parse().ok()?) };
    Some((a, b))
}

/// docs/protocol.md §11: base64 of exactly 48 bytes — a 36-character UUID and a 12-digit index.
fn valid_block_id(id: &str) -> bool {
    let Some(raw) = base64_decode(id) else { return false };
    if raw.len() != 48 {
        return false;
    }
    let (uuid, index) = raw.split_at(36);
    let dashes = [8, 13, 18, 23];
    let uuid_ok = uuid
        .iter()
        .enumerate()
        .all(|(i, c)| if dashes.contains(&i) { *c == b'-' } else { c.is_ascii_hexdigit() });
    uuid_ok && index.iter().all(u8::is_ascii_digit)
}

fn xml_block_ids(xml: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut rest = xml;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find('>') else { break };
        let tag = &rest[..close];
        rest = &rest[close + 1..];
        if matches!(tag, "Latest" | "Committed" | "Uncommitted")
            && let Some(end) = rest.find('<')
        {
            ids.push(rest[..end].trim().to_string());
        }
    }
    ids
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c)? << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    Some(out)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(&text[i + 1..i + 3], 16) {
                    Ok(b) => out.push(b),
                    Err(_) => out.extend_from_slice(&bytes[i..i + 3]),
                }
                i += 3;
                continue;
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
