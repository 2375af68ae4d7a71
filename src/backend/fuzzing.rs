//! Entry points for the fuzz targets in `fuzz/` (not an API): everything the backends read
//! from a cache service's answers, fed with arbitrary bytes. Each must return, never panic.

use std::time::{Duration, Instant};

use super::artifact_cache::{self, ArtifactCacheBackend};
use super::github;
use super::http::{Http, Tuning};
use super::transfer;
use super::{Hit, Secret};

const TOKEN: &str = "fuzz-token-0123456789";

/// Parses `body` as every JSON answer the v1 and v2 backends read, and `body` as text where a
/// header is read; returns the hits found, so the optimiser keeps the work.
pub fn service_answers(body: &[u8]) -> Vec<Hit> {
    let token = Secret(TOKEN.to_string());
    let http = Http::new(Instant::now() + Duration::from_secs(60), Tuning::default(), &token);
    let keys = vec!["uv-nox-cache-1-nox-Linux-X64-key".to_string(), "uv-nox-cache-1-nox-".to_string()];
    let mut hits = Vec::new();
    if let Ok(hit) = artifact_cache::lookup_answer(&http, &keys, "version", body) {
        hits.push(hit);
    }
    if let Ok(answer) = github::decode_answer(body)
        && let Ok(Some(hit)) = github::lookup_answer(answer, &keys, "version")
    {
        hits.push(hit);
    }
    let twirp = github::twirp_message(&http, body);
    assert!(!twirp.contains(TOKEN), "the token leaked into a message");
    let v1 = ArtifactCacheBackend::new(
        "http://127.0.0.1:9/",
        token,
        artifact_cache::Reservation::SizeFirst,
        Instant::now(),
        Tuning::default(),
    );
    let message = v1.message(body);
    assert!(!message.contains(TOKEN), "the token leaked into a message");
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = transfer::range_total(text);
    }
    hits
}
