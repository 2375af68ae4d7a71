//! `entries` against the runner's v1 cache service (`_apis/artifactcache`): read-only, and only
//! as far as the protocol goes. The toolkit's `GET caches?key=<prefix>` listing is asked for;
//! the servers of act, the Gitea runner and the Forgejo runner do not route it (they answer
//! 405), so there the command says so plainly. `--for-key` is answered with the service's
//! own lookup (`GET cache?keys=…&version=…`) for the versions of this project's targets, as
//! the action computes them: the service scopes by the token's ref, so `--ref` does not apply.

use std::process::ExitCode;
use std::time::Instant;

use serde_json::json;

use super::args::EntriesArgs;
use crate::backend::artifact_cache::{ArtifactCacheBackend, Reservation};
use crate::backend::http::{Fail, Http, encode_component};
use crate::backend::{Backend, BackendError, Secret, Tuning};
use crate::config::Config;
use crate::targets;

const ACCEPT: &str = "application/json;api-version=6.0-preview.1";

/// What a listing answer holds (GHES's `ArtifactCacheList`).
#[derive(Debug, serde::Deserialize)]
struct CacheList {
    #[serde(rename = "artifactCaches", default)]
    caches: Vec<ListedCache>,
}

#[derive(Debug, serde::Deserialize, serde::Serialize)]
struct ListedCache {
    #[serde(rename = "cacheKey")]
    key: Option<String>,
    #[serde(rename = "cacheVersion")]
    version: Option<String>,
    #[serde(rename = "creationTime")]
    created: Option<String>,
}

/// The listing, or the status the service refused it with.
fn list(url: &str, token: &Secret, deadline: Instant) -> Result<Result<Vec<ListedCache>, u16>, BackendError> {
    let http = Http::new(deadline, Tuning::default(), token);
    let op = "list";
    let url =
        format!("{}/_apis/artifactcache/caches?key={}", url.trim_end_matches('/'), encode_component(""));
    let auth = format!("Bearer {}", token.expose());
    let (status, body) = http.retry(op, || {
        let response = http.check(
            op,
            &url,
            http.get(&url).header("Authorization", &auth).header("Accept", ACCEPT).call(),
        )?;
        let status = response.status().as_u16();
        Ok::<_, Fail>((status, http.body_bytes(op, &url, response)?))
    })?;
    if status != 200 {
        return Ok(Err(status));
    }
    let list: CacheList = serde_json::from_slice(&body).map_err(|e| BackendError::Decode {
        op,
        body: http.clip(&body),
        message: format!("not a cache listing: {e}"),
    })?;
    Ok(Ok(list.caches))
}

/// `entries` for a runner's v1 service.
pub fn entries_command(
    args: &EntriesArgs,
    cfg: &Config,
    url: &str,
    token: &Secret,
    deadline: Instant,
) -> ExitCode {
    // The host only: the path of act's and Forgejo's URLs is a per-run secret.
    let host = url.split("://").nth(1).unwrap_or(url).split('/').next().unwrap_or_default();
    let store = format!("the runner's cache service (v1) at {host}");
    let listed = match list(url, token, deadline) {
        Ok(listed) => listed,
        Err(e) => {
            eprintln!("error: could not reach {store}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let explained = if args.keys.is_empty() { Vec::new() } else { explain(args, cfg, url, token, deadline) };
    if args.json {
        let (entries, listing) = match &listed {
            Ok(entries) => (json!(entries), json!(null)),
            Err(status) => (json!(null), json!(format!("not offered (answered {status})"))),
        };
        let explained: Vec<_> = explained
            .iter()
            .map(|(target, version, found)| json!({"target": target, "version": version, "key": found}))
            .collect();
        let mut out = json!({"store": store, "entries": entries, "would_restore": {"keys": args.keys, "by_version": explained}});
        if !listing.is_null() {
            out["listing"] = listing;
        }
        println!("{out}");
        return ExitCode::SUCCESS;
    }
    match &listed {
        Ok(entries) => {
            println!("{store}: {}", super::entries_count(entries.len()));
            for entry in entries {
                let field = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
                println!("{}  {}  {}", field(&entry.created), field(&entry.version), field(&entry.key));
            }
        }
        Err(status) => println!(
            "{store} cannot list its entries (it answered {status} to `GET caches?key=`): the servers of act, \
             the Gitea runner and the Forgejo runner offer no listing, and GitHub's v2 service none to a job's \
             token. Look at the server's own store, or use `--for-key` to ask which entry a key would restore."
        ),
    }
    if !args.keys.is_empty() {
        if !args.refs.is_empty() {
            println!(
                "(`--ref` does not apply: the service scopes lookups by the ref of the token it is given)"
            );
        }
        println!("\nLooking up {}:", args.keys.join(", "));
        for (target, version, found) in &explained {
            let version = &version[..version.len().min(12)];
            match found {
                Ok(Some(key)) => println!("  {target} (version {version}…): restores {key}"),
                Ok(None) => println!("  {target} (version {version}…): a miss"),
                Err(e) => println!("  {target} (version {version}…): the lookup failed: {e}"),
            }
        }
    }
    ExitCode::SUCCESS
}

type Found = Result<Option<String>, String>;

/// The service's own lookup of the keys, for the version of each of this project's targets.
fn explain(
    args: &EntriesArgs,
    cfg: &Config,
    url: &str,
    token: &Secret,
    deadline: Instant,
) -> Vec<(String, String, Found)> {
    let plans = match targets::plans(cfg) {
        Ok(plans) => plans,
        Err(e) => return vec![("?".into(), String::new(), Err(e.to_string()))],
    };
    let service =
        ArtifactCacheBackend::new(url, token.clone(), Reservation::SizeFirst, deadline, Tuning::default());
    plans
        .iter()
        .map(|plan| {
            let version = crate::key::version(&plan.version_path, cfg.compression.label());
            let found =
                service.lookup(&args.keys, &version).map(|hit| hit.map(|h| h.key)).map_err(|e| e.to_string());
            (plan.target.name().to_string(), version, found)
        })
        .collect()
}
