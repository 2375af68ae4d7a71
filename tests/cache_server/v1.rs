//! The v1 `_apis/artifactcache` REST API (GHES, Forgejo, Gitea, act) under the personality's
//! base path: `GET cache`, `POST caches` (reserve), `PATCH caches/{id}` with `Content-Range`,
//! `POST caches/{id}` (commit), and `GET artifacts/{id}` for the archive itself.

use std::sync::Arc;

use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::http::{Request, Response, parse_content_range};
use super::store::{State, Stored};
use super::{Personality, base_path};

impl State {
    pub(super) fn v1(&mut self, request: &mut Request, resource: &str) -> Response {
        if let Some(id) = resource.strip_prefix("artifacts/") {
            let id: Option<u64> = id.parse().ok();
            if self.config.personality == Personality::Gitea && !id.is_some_and(|id| self.signed(request, id))
            {
                return Response::json(
                    401,
                    serde_json::json!({"error": "the signature is invalid or expired"}),
                );
            }
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
                let mut location = format!(
                    "{}{}_apis/artifactcache/artifacts/{}",
                    self.origin,
                    base_path(self.config.personality),
                    entry.id
                );
                if self.config.personality == Personality::Gitea {
                    location += &self.signature_query(entry.id);
                }
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
}

impl State {
    /// `?exp=<unix seconds>&sig=<hex>` for entry `id`, valid for the configured TTL.
    fn signature_query(&self, id: u64) -> String {
        let exp = now() + self.config.url_ttl.as_secs();
        format!("?exp={exp}&sig={}", self.sign(id, exp))
    }

    /// The request carries an unexpired signature for entry `id`.
    fn signed(&self, request: &Request, id: u64) -> bool {
        let exp = request.param("exp").and_then(|e| e.parse::<u64>().ok());
        let sig = request.param("sig");
        matches!((exp, sig), (Some(exp), Some(sig)) if exp > now() && sig == self.sign(id, exp))
    }

    fn sign(&self, id: u64, exp: u64) -> String {
        hex::encode(Sha256::digest(format!("{}|{id}|{exp}", self.signature)))
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
