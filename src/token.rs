//! What the runner's cache token allows, read from its claims before any work is done.
//!
//! GitHub's `ACTIONS_RUNTIME_TOKEN` is a JWT whose `ac` claim lists the cache scopes the job may
//! use, as a JSON string: `[{"Scope":"refs/heads/main","Permission":3}]`, where bit 1 is read
//! and bit 2 is write. Since mid-2026 untrusted triggers (`pull_request_target`,
//! `issue_comment`, fork `workflow_run`, …) get tokens whose scopes are all read-only; a save
//! with such a token is refused with `cache write denied:` — after the archive was packed. The
//! save step reads the claim first and skips packing instead.
//!
//! The token is not verified (the service does that); it is only read. A token that is not a
//! JWT, or has no `ac` claim (Forgejo, Gitea, act), tells nothing, and the save goes ahead.

use base64::Engine;
use serde::Deserialize;

/// What the token says about writing to the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheAccess {
    /// At least one scope may be written.
    Write,
    /// Scopes are listed and none may be written.
    ReadOnly,
    /// The token does not say (not a JWT, no `ac` claim, unreadable claim).
    Unknown,
}

const PERMISSION_WRITE: u64 = 2;

#[derive(Deserialize)]
struct Claims {
    ac: Option<String>,
}

#[derive(Deserialize)]
struct Scope {
    #[serde(rename = "Permission")]
    permission: u64,
}

/// What `token` allows for the cache.
pub fn cache_access(token: &str) -> CacheAccess {
    let Some(payload) = token.split('.').nth(1) else { return CacheAccess::Unknown };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('='))
    else {
        return CacheAccess::Unknown;
    };
    let Ok(Claims { ac: Some(ac) }) = serde_json::from_slice::<Claims>(&bytes) else {
        return CacheAccess::Unknown;
    };
    match serde_json::from_str::<Vec<Scope>>(&ac) {
        Ok(scopes) if scopes.iter().any(|s| s.permission & PERMISSION_WRITE != 0) => CacheAccess::Write,
        Ok(scopes) if !scopes.is_empty() => CacheAccess::ReadOnly,
        _ => CacheAccess::Unknown,
    }
}

/// A JWT with the given `ac` claim (unsigned), as the tests' runner hands out.
#[cfg(test)]
pub(crate) fn jwt_with_scopes(scopes: &[(&str, u64)]) -> String {
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let ac: Vec<serde_json::Value> =
        scopes.iter().map(|(scope, p)| serde_json::json!({"Scope": scope, "Permission": p})).collect();
    let claims = serde_json::json!({"ac": serde_json::to_string(&ac).unwrap(), "exp": 4102444800u64});
    format!(
        "{}.{}.c2ln",
        engine.encode(br#"{"typ":"JWT","alg":"RS256"}"#),
        engine.encode(claims.to_string().as_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_scopes_read_only_scopes_and_tokens_that_say_nothing() {
        assert_eq!(cache_access(&jwt_with_scopes(&[("refs/heads/main", 3)])), CacheAccess::Write);
        assert_eq!(
            cache_access(&jwt_with_scopes(&[("refs/pull/1/merge", 1), ("refs/heads/main", 1)])),
            CacheAccess::ReadOnly
        );
        assert_eq!(cache_access(&jwt_with_scopes(&[("a", 1), ("b", 2)])), CacheAccess::Write);
        assert_eq!(cache_access(&jwt_with_scopes(&[])), CacheAccess::Unknown);
        assert_eq!(cache_access("test-runtime-token"), CacheAccess::Unknown);
        assert_eq!(cache_access("a.!!!.c"), CacheAccess::Unknown);
        let no_ac =
            format!("x.{}.y", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b"{\"sub\":\"x\"}"));
        assert_eq!(cache_access(&no_ac), CacheAccess::Unknown);
    }
}
