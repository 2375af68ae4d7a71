//! Read-only cache tokens (GitHub, since 2026-06 for untrusted triggers): the save step reads
//! the token's scopes and skips before packing anything, with one notice; a service's own
//! `cache write denied:` answer is a notice too, never a failure. On v2 and v1.

use base64::Engine;

use crate::support::action::{Machine, Protocol};
use crate::support::cache_server::{CacheServer, Fault, Personality, Route, ServerConfig};
use crate::support::rig::{checkout, populate};

/// A JWT with the given `ac` claim (unsigned), as the runner hands out.
fn jwt_with_scopes(scopes: &[(&str, u64)]) -> String {
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

fn server_with_token(token: &str) -> CacheServer {
    let mut config = ServerConfig::new(Personality::Github);
    config.token = token.to_string();
    CacheServer::start_with(config)
}

#[test]
fn a_read_only_token_skips_the_save_before_packing() {
    for protocol in [Protocol::V2, Protocol::V1] {
        let token = jwt_with_scopes(&[("refs/pull/7/merge", 1), ("refs/heads/main", 1)]);
        let server = server_with_token(&token);
        let machine = Machine::new();
        checkout(&machine);
        let mut job = machine.job();
        job.use_service(&server, protocol);
        let main = job.main();
        assert_eq!(main.code, 0, "{}", main.log());
        assert_eq!(main.output("cache-hit"), "false");
        populate(&machine, "read-only");
        let post = job.post();
        assert_eq!(post.code, 0, "{protocol:?}: {}", post.log());
        let notices: Vec<&str> = post.stdout.lines().filter(|l| l.contains("read-only")).collect();
        assert_eq!(notices.len(), 1, "{protocol:?}: one notice\n{}", post.log());
        assert!(notices[0].starts_with("::notice::"), "{protocol:?}: {}", notices[0]);
        assert!(!post.stdout.contains("::warning::"), "{protocol:?}: {}", post.log());
        assert!(!post.stdout.contains("packed") && !post.stdout.contains(": saved"), "{}", post.log());
        let reserves = server.requests().into_iter().filter(|r| r.route == Some(Route::Reserve)).count();
        assert_eq!(reserves, 0, "{protocol:?}: nothing may be reserved");
        let temp = &job.env["RUNNER_TEMP"];
        let leftovers = std::fs::read_dir(temp).map(|d| d.count()).unwrap_or(0);
        assert_eq!(leftovers, 0, "{protocol:?}: an archive was written to {temp}");
    }
}

#[test]
fn a_token_that_may_write_saves() {
    let token = jwt_with_scopes(&[("refs/heads/main", 3)]);
    let server = server_with_token(&token);
    let machine = Machine::new();
    checkout(&machine);
    let mut job = machine.job();
    job.use_service(&server, Protocol::V2);
    assert_eq!(job.main().code, 0);
    populate(&machine, "writable");
    let post = job.post();
    assert!(post.stdout.contains("uv: saved") && post.stdout.contains("nox: saved"), "{}", post.log());
}

#[test]
fn a_service_that_denies_the_write_is_a_notice() {
    for protocol in [Protocol::V2, Protocol::V1] {
        let server = CacheServer::start(Personality::Github);
        let denied = match protocol {
            Protocol::V2 => {
                r#"{"code":"permission_denied","msg":"cache write denied: token has no writable scopes"}"#
            }
            Protocol::V1 => r#"{"message":"cache write denied: token has no writable scopes"}"#,
        };
        server.inject(Fault::Answer {
            route: Route::Reserve,
            status: 403,
            body: denied.into(),
            times: usize::MAX,
        });
        let machine = Machine::new();
        checkout(&machine);
        let mut job = machine.job();
        job.use_service(&server, protocol);
        assert_eq!(job.main().code, 0);
        populate(&machine, "denied");
        let post = job.post();
        assert_eq!(post.code, 0, "{}", post.log());
        assert!(!post.stdout.contains("::warning::"), "{protocol:?}: {}", post.log());
        let denials =
            post.stdout.lines().filter(|l| l.starts_with("::notice::") && l.contains("write denied")).count();
        assert!(denials >= 1, "{protocol:?}: {}", post.log());
    }
}
