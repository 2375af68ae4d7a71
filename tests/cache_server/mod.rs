//! A local stand-in for the runners' cache services, std only, so the backends — and the
//! official `@actions/cache` client, which proves the stand-in right — can be tested without
//! the network.
//!
//! It speaks the v1 `_apis/artifactcache` REST API under a base path, the v2 Twirp
//! `CacheService` at the origin, and an Azure-like blob host (Put Blob, Put Block, Put Block
//! List; `GET` honouring `Range`), with the matching rules of docs/protocol.md §6.1. Two personalities:
//! [`Personality::Github`] keeps key case and refuses a second save of a key + version (409 /
//! `already_exists`); [`Personality::Forgejo`] (act / Forgejo) lower-cases keys, allows
//! duplicates (newest wins) and checks the committed size against `cacheSize`;
//! [`Personality::Gitea`] (Gitea's act_runner) does the same at the root path and hands out
//! archive URLs signed with an expiry, fetched without the token.
//!
//! Tests read the [`CacheServer::requests`] log and switch [`Fault`]s on at run time.
//!
//! This file is the server's face (start, stop, the request log, planting entries) and its
//! router; one module per concern does the rest: [`http`] (the wire), [`store`] (entries and
//! matching), [`v1`], [`v2`] and [`blob`] (the three APIs), [`faults`] (misbehaviour on demand).

mod blob;
mod faults;
mod http;
pub mod proxy;
mod store;
mod v1;
mod v2;

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{SystemTime, UNIX_EPOCH};

use faults::Effect;
pub use faults::Fault;
use http::{Delivery, Request, Response};
use store::{Blob, Entry, State, Stored};

/// Which real server the stand-in behaves like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Personality {
    /// github.com (v2) and GHES (v1): keys keep their case, a key + version is written once.
    Github,
    /// act / Forgejo: keys lower-cased, duplicates allowed, newest wins.
    Forgejo,
    /// Gitea's act_runner: as Forgejo, at the root path, the Bearer token required on every
    /// cache call, and `archiveLocation` signed (`exp`, `sig`) and expiring after
    /// [`ServerConfig::url_ttl`].
    Gitea,
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
    /// Uploads (v1 `PATCH`, blob `PUT`) are read at this many bytes per second (a throttled
    /// server); `None` reads them at once.
    pub upload_rate: Option<usize>,
    /// How long a signed v1 archive URL of [`Personality::Gitea`] stays valid (Gitea: 10 min).
    pub url_ttl: std::time::Duration,
}

impl ServerConfig {
    pub fn new(personality: Personality) -> ServerConfig {
        ServerConfig {
            personality,
            port: 0,
            token: "test-runtime-token".into(),
            ignore_range: false,
            upload_rate: None,
            url_ttl: std::time::Duration::from_secs(600),
        }
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
                        let slow_body = |method: &str, path: &str| {
                            let state = state.lock().unwrap_or_else(|e| e.into_inner());
                            let upload = matches!(
                                classify(state.config.personality, method, path),
                                Some((_, Route::Upload))
                            );
                            state.config.upload_rate.filter(|_| upload)
                        };
                        let _ = http::serve(stream, &stop, slow_body, |request| handle(&state, request));
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

    /// Sets how long signed v1 archive URLs stay valid from now on ([`Personality::Gitea`]).
    pub fn set_url_ttl(&self, ttl: std::time::Duration) {
        self.lock().config.url_ttl = ttl;
    }

    /// Reads uploads at `bytes_per_sec` from now on (`None`: at once).
    pub fn set_upload_rate(&self, bytes_per_sec: Option<usize>) {
        self.lock().config.upload_rate = bytes_per_sec;
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
        Personality::Gitea => "/",
    }
}

const TWIRP_PREFIX: &str = "/twirp/github.actions.results.api.v1.CacheService/";
const BLOB_PREFIX: &str = "/blobstore/cache/";

/// What a path is, before any state is touched.
enum Target {
    V1(String),
    Twirp(String),
    Blob(u64),
}

/// The route of a v1 request for `resource`, the path after `_apis/artifactcache/`.
fn v1_route(method: &str, resource: &str) -> Option<Route> {
    Some(match (method, resource) {
        ("GET", "cache") => Route::Lookup,
        ("POST", "caches") => Route::Reserve,
        ("PATCH", r) if r.starts_with("caches/") => Route::Upload,
        ("POST", r) if r.starts_with("caches/") => Route::Commit,
        ("GET", r) if r.starts_with("artifacts/") => Route::Download,
        _ => return None,
    })
}

fn classify(personality: Personality, method: &str, path: &str) -> Option<(Target, Route)> {
    let v1 = format!("{}_apis/artifactcache/", base_path(personality));
    if let Some(resource) = path.strip_prefix(&v1) {
        let route = v1_route(method, resource)?;
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
    match faults::fire(&mut state.faults, route) {
        Some(Effect::Answer(response)) => return response,
        Some(Effect::Deliver(how)) => delivery = how,
        None => {}
    }
    let mut response = match target {
        Target::V1(resource) => state.v1(request, &resource),
        Target::Twirp(rpc) => state.twirp(request, &rpc),
        Target::Blob(id) => state.blob(request, id),
    };
    response.delivery = delivery;
    response
}
