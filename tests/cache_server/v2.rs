//! The v2 Twirp `CacheService` (github.com), JSON only: `GetCacheEntryDownloadURL`,
//! `CreateCacheEntry` and `FinalizeCacheEntryUpload`, handing out signed URLs on the blob host.

use super::http::{Request, Response};
use super::store::{Blob, State};

impl State {
    pub(super) fn twirp(&mut self, request: &Request, rpc: &str) -> Response {
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
}
