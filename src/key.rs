//! Cache keys and versions.
//!
//! A key reads `uv-nox-cache-<schema>-<target>-<os>-<arch>-<fingerprint>[-<suffix>]-<hash>`
//! (docs/design.md §4). The restore prefix is the key without its hash. The service-side `version` is
//! (`backend::version`) is computed as `@actions/cache` computes it, from the path string a
//! user would give it.

use sha2::{Digest, Sha256};

use crate::config::Target;

/// Bumped only when the archive layout or the key format changes — never for a release alone,
/// so upgrading the action does not cold-start every cache.
pub const SCHEMA: &str = "1";

/// The hash component when no key file matched.
pub const NO_KEY_FILES: &str = "nofiles";

/// The longest key the cache services accept.
pub const MAX_KEY_LEN: usize = 512;

/// What a `save: always` entry's key adds to the primary key: its outcome is unknown.
pub const UNCONFIRMED: &str = "unconfirmed";

/// The key a `save: always` run stores nox envs under: the primary key, then
/// `-unconfirmed-<run>` (the run id and attempt, or `t<unix seconds>` outside a runner). The
/// services prefix-match the primary key itself, so the next lookup of the primary key finds the
/// newest such entry when no entry has the primary key exactly — always as a fallback.
pub fn unconfirmed_key(primary: &str, run: &str) -> String {
    format!("{primary}-{UNCONFIRMED}-{run}")
}

/// Whether `key` is an [`unconfirmed_key`] of `primary` (compared as the servers compare keys).
pub fn is_unconfirmed_of(primary: &str, key: &str) -> bool {
    server_lowercase(key).starts_with(&server_lowercase(&format!("{primary}-{UNCONFIRMED}-")))
}

/// Whether two keys name the same entry: the runners' cache servers (act, Gitea, Forgejo) store
/// and match keys lower-cased, so a key can come back in another case than it was asked for.
pub fn same_key(a: &str, b: &str) -> bool {
    server_lowercase(a) == server_lowercase(b)
}

/// A key lower-cased as those servers do it: Go's `strings.ToLower`, each character on its own
/// by Unicode's simple mapping. Rust's `to_lowercase` applies the full mapping instead, which
/// differs for `İ` (U+0130: Go gives `i`, Rust `i̇`, two characters) and for a final `Σ` (Go
/// `σ`, Rust `ς`), so an exact entry would be taken for a fallback.
pub fn server_lowercase(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c == '\u{130}' {
                return 'i';
            }
            let mut lower = c.to_lowercase();
            match (lower.next(), lower.next()) {
                (Some(one), None) => one,
                _ => c,
            }
        })
        .collect()
}

/// The components of one target's key, each kept for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyParts {
    pub target: Target,
    /// `RUNNER_OS` plus its release, e.g. `Linux-ubuntu24`.
    pub os: String,
    pub arch: String,
    /// nox: short hash of interpreter realpath + version + envdir; uv: `py3.12`.
    pub fingerprint: String,
    pub suffix: Option<String>,
    /// hashFiles() of the key files, or `nofiles`.
    pub hash: String,
}

impl KeyParts {
    /// The components in key order, with names for the log.
    pub fn components(&self) -> Vec<(&'static str, String)> {
        let mut parts = vec![
            ("prefix", "uv-nox-cache".to_string()),
            ("schema", SCHEMA.to_string()),
            ("target", self.target.name().to_string()),
            ("os", self.os.clone()),
            ("arch", self.arch.clone()),
            ("fingerprint", self.fingerprint.clone()),
        ];
        if let Some(suffix) = &self.suffix {
            parts.push(("key-suffix", suffix.clone()));
        }
        parts.push(("hash", self.hash.clone()));
        parts
    }

    pub fn primary(&self) -> String {
        self.components().into_iter().map(|(_, v)| v).collect::<Vec<_>>().join("-")
    }

    /// The key without its hash, ending in `-`: what a prefix fallback looks for.
    pub fn restore_prefix(&self) -> String {
        let primary = self.primary();
        primary[..primary.len() - self.hash.len()].to_string()
    }

    /// The first component that `other` (a key found by a fallback) does not share with this
    /// key, compared case-insensitively as the services compare keys.
    pub fn first_difference(&self, other: &str) -> Option<&'static str> {
        let other = server_lowercase(other);
        let mut prefix = String::new();
        for (name, value) in self.components() {
            if !prefix.is_empty() {
                prefix.push('-');
            }
            prefix.push_str(&value);
            // `other` may be shorter than this key's prefix (a `nofiles` key): test the prefix
            // before slicing past it.
            let lower = server_lowercase(&prefix);
            if !other.starts_with(&lower) {
                return Some(name);
            }
            if !(other.len() == lower.len() || other[lower.len()..].starts_with('-')) {
                return Some(name);
            }
        }
        None
    }
}

/// Keeps a key component to characters every service stores unchanged.
pub fn sanitize(component: &str) -> String {
    let cleaned: String = component
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+') { c } else { '_' })
        .collect();
    if cleaned.is_empty() { "unknown".to_string() } else { cleaned }
}

/// A short, stable hash of `text` for the fingerprint.
pub fn short_hash(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> KeyParts {
        KeyParts {
            target: Target::Nox,
            os: "Linux-ubuntu24".into(),
            arch: "X64".into(),
            fingerprint: "abc123".into(),
            suffix: Some("tests".into()),
            hash: "f00d".into(),
        }
    }

    #[test]
    fn key_and_prefix() {
        let p = parts();
        assert_eq!(p.primary(), "uv-nox-cache-1-nox-Linux-ubuntu24-X64-abc123-tests-f00d");
        assert_eq!(p.restore_prefix(), "uv-nox-cache-1-nox-Linux-ubuntu24-X64-abc123-tests-");
    }

    #[test]
    fn names_the_component_that_differs() {
        let p = parts();
        assert_eq!(
            p.first_difference("uv-nox-cache-1-nox-linux-ubuntu24-x64-abc123-tests-beef"),
            Some("hash")
        );
        assert_eq!(
            p.first_difference("uv-nox-cache-1-nox-Linux-ubuntu24-X64-999999-tests-f00d"),
            Some("fingerprint")
        );
        assert_eq!(
            p.first_difference("uv-nox-cache-1-nox-Linux-ubuntu24-X64-abc123-testsx-f00d"),
            Some("key-suffix")
        );
        assert_eq!(p.first_difference(&p.primary().to_uppercase()), None);
    }

    #[test]
    fn a_shorter_key_is_a_difference_not_a_panic() {
        let p = parts();
        // A fallback to an entry saved before any key file existed.
        assert_eq!(p.first_difference("uv-nox-cache-1-nox-linux-ubuntu24-x64-nofiles"), Some("fingerprint"));
        assert_eq!(p.first_difference("uv-nox-cache-1-nox-Linux-ubuntu24-X64-abc123"), Some("key-suffix"));
        assert_eq!(p.first_difference("uv"), Some("prefix"));
    }

    #[test]
    fn keys_compare_as_the_go_servers_lower_case_them() {
        // What `strings.ToLower` gives (checked with Go 1.26): one character for one.
        assert_eq!(server_lowercase("İstanbul-ΑΣ-K"), "istanbul-ασ-k");
        assert!(same_key("uv-nox-cache-1-uv-İstanbul", "uv-nox-cache-1-uv-istanbul"));
        assert!(same_key("A-ΟΔΟΣ", "a-οδοσ"));
        assert!(!same_key("uv-a", "uv-b"));
        let mut p = parts();
        p.suffix = Some("İstanbul".into());
        assert_eq!(p.first_difference(&server_lowercase(&p.primary())), None);
        assert_eq!(
            p.first_difference("uv-nox-cache-1-nox-linux-ubuntu24-x64-abc123-istanbul-beef"),
            Some("hash")
        );
    }

    #[test]
    fn sanitize_keeps_keys_clean() {
        assert_eq!(sanitize("ubuntu 24,04"), "ubuntu_24_04");
        assert_eq!(sanitize(""), "unknown");
    }
}
