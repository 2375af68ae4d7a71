//! Cache keys and versions.
//!
//! A key reads `uv-nox-cache-<schema>-<target>-<os>-<arch>-<fingerprint>[-<suffix>]-<hash>`
//! (docs/design.md §4). The restore prefix is the key without its hash. The service-side
//! [`version`] is computed as `@actions/cache` computes it, from the path string a user would
//! give it.

use sha2::{Digest, Sha256};

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

/// What a refreshed entry's key adds to the primary key: the job that found the primary key
/// exactly added enough to its directory to save it again.
pub const REFRESHED: &str = "refreshed";

/// The prefix of the keys of `primary`'s refreshed entries; the restore looks it up first, so
/// the newest refreshed entry wins over the frozen exact one.
pub fn refreshed_prefix(primary: &str) -> String {
    format!("{primary}-{REFRESHED}-")
}

/// The key a refresh of `primary` is saved under: `-refreshed-<run>` after it.
pub fn refreshed_key(primary: &str, run: &str) -> String {
    format!("{}{run}", refreshed_prefix(primary))
}

/// Whether `key` is a [`refreshed_key`] of `primary` (compared as the servers compare keys).
pub fn is_refreshed_of(primary: &str, key: &str) -> bool {
    server_lowercase(key).starts_with(&server_lowercase(&refreshed_prefix(primary)))
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
    /// The target's name.
    pub target: &'static str,
    /// `RUNNER_OS` plus its release, e.g. `Linux-ubuntu24`.
    pub os: String,
    pub arch: String,
    /// nox: short hash of interpreter realpath + version + envdir; uv: `py3.12-uv0.13`.
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
            ("target", self.target.to_string()),
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
    /// key, compared case-insensitively as the services compare keys. An unconfirmed key's tail
    /// (`-unconfirmed-<run>`) is not a component: an unconfirmed entry of this very key differs
    /// in none. Components are matched from the front, each as a whole value; after the
    /// fingerprint, what remains is the suffix (when either key has one: a hash never holds a
    /// `-`) and then the hash.
    pub fn first_difference(&self, other: &str) -> Option<&'static str> {
        let other = server_lowercase(other);
        let mut rest = strip_unconfirmed(&other);
        let components = self.components();
        let fixed = components.iter().take_while(|(name, _)| !matches!(*name, "key-suffix" | "hash"));
        for (i, (name, value)) in fixed.enumerate() {
            let Some(after) = rest.strip_prefix(server_lowercase(value).as_str()) else { return Some(name) };
            if after.is_empty() {
                // `other` ends here: the next component is the one it lacks.
                return components.get(i + 1).map(|(next, _)| *next);
            }
            let Some(after) = after.strip_prefix('-') else { return Some(name) };
            rest = after;
        }
        match &self.suffix {
            Some(suffix) => {
                match rest.strip_prefix(server_lowercase(suffix).as_str()).and_then(|r| r.strip_prefix('-')) {
                    Some(hash) => rest = hash,
                    None => return Some("key-suffix"),
                }
            }
            None if rest.contains('-') => return Some("key-suffix"),
            None => {}
        }
        (rest != server_lowercase(&self.hash)).then_some("hash")
    }

    /// What a fallback to `matched` restored, for the log and the summary: the component that
    /// changed, and whether a `save: always` job whose outcome was unknown saved it.
    pub fn fallback_note(&self, matched: &str) -> String {
        let lower = server_lowercase(matched);
        let unconfirmed = strip_unconfirmed(&lower).len() != lower.len();
        match (self.first_difference(matched), unconfirmed) {
            (None, true) => "saved by a job whose outcome was unknown (`save: always`)".to_string(),
            (Some(changed), true) => {
                format!("`{changed}` changed; saved by a job whose outcome was unknown (`save: always`)")
            }
            (Some(changed), false) => format!("`{changed}` changed"),
            (None, false) => "the same key".to_string(),
        }
    }
}

/// `key` without an [`unconfirmed_key`]'s tail `-unconfirmed-<run>` (`<run>` holds no `-`).
fn strip_unconfirmed(key: &str) -> &str {
    let marker = format!("-{UNCONFIRMED}-");
    match key.rfind(&marker) {
        Some(at) if !key[at + marker.len()..].contains('-') && at + marker.len() < key.len() => &key[..at],
        _ => key,
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

/// The cache "version" of the toolkit's `getCacheVersion` (docs/protocol.md §2.2): SHA-256 hex of the
/// `path` input lines exactly as typed, the compression label (`zstd-without-long`, `gzip`,
/// legacy `zstd`), `windows-only` when computed on Windows, and the salt `1.0`, joined by `|`.
///
/// `path` is the input already split into lines by the caller (trimmed, blanks dropped) and
/// joined with `\n`; each line is one component, in order.
pub fn version(path: &str, compression_label: &str) -> String {
    let mut parts: Vec<&str> = path.split('\n').collect();
    if !compression_label.is_empty() {
        parts.push(compression_label);
    }
    if cfg!(windows) {
        parts.push("windows-only");
    }
    parts.push("1.0");
    hex::encode(Sha256::digest(parts.join("|").as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> KeyParts {
        KeyParts {
            target: "nox",
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
    fn an_unconfirmed_entry_of_the_same_key_differs_in_nothing() {
        let p = parts();
        let same = unconfirmed_key(&p.primary(), "r7a1");
        assert_eq!(p.first_difference(&same), None);
        assert_eq!(p.fallback_note(&same), "saved by a job whose outcome was unknown (`save: always`)");
        let older = unconfirmed_key("uv-nox-cache-1-nox-Linux-ubuntu24-X64-abc123-tests-beef", "r6a1");
        assert_eq!(p.first_difference(&older), Some("hash"));
        assert_eq!(
            p.fallback_note(&older),
            "`hash` changed; saved by a job whose outcome was unknown (`save: always`)"
        );
        assert_eq!(
            p.fallback_note("uv-nox-cache-1-nox-Linux-ubuntu24-X64-abc123-tests-beef"),
            "`hash` changed"
        );
    }

    #[test]
    fn the_suffix_is_told_from_the_hash() {
        let mut p = parts();
        p.suffix = None;
        // An entry saved with a suffix, found by this key without one.
        assert_eq!(
            p.first_difference("uv-nox-cache-1-nox-Linux-ubuntu24-X64-abc123-tests-f00d"),
            Some("key-suffix")
        );
        assert_eq!(p.first_difference("uv-nox-cache-1-nox-Linux-ubuntu24-X64-abc123-f00d"), None);
        // A suffix holding `-`.
        p.suffix = Some("py-3.12".into());
        assert_eq!(
            p.first_difference("uv-nox-cache-1-nox-Linux-ubuntu24-X64-abc123-py-3.12-beef"),
            Some("hash")
        );
        assert_eq!(
            p.first_difference("uv-nox-cache-1-nox-Linux-ubuntu24-X64-abc123-py-3.13-f00d"),
            Some("key-suffix")
        );
    }

    #[test]
    fn sanitize_keeps_keys_clean() {
        assert_eq!(sanitize("ubuntu 24,04"), "ubuntu_24_04");
        assert_eq!(sanitize(""), "unknown");
    }

    /// The worked examples of docs/protocol.md §2.2, computed by the 6.3.0 toolkit.
    #[test]
    #[cfg(not(windows))]
    fn version_matches_the_toolkit() {
        assert_eq!(
            version("~/.cache/uv", "zstd-without-long"),
            "5ba428ba583e06456281373eb4d3b9dcfffa872e0ab7793092420651d9c0bf1c"
        );
        assert_eq!(
            version("~/.cache/uv", "gzip"),
            "5f6af6f65db26419d2aba9c43e2a283e0477e96793460dcb7f003598df130e92"
        );
        assert_eq!(
            version("~/.cache/uv", "zstd"),
            "30eee7ead18a1ebc01c7de50bfa0c80c9ac266dcd2136fd3043b53387db83374"
        );
        assert_eq!(
            version("~/.cache/uv\n.nox", "zstd-without-long"),
            "9fd195a383830496e90581c4fcd14ee855e9195cac09fe931fe7f22ced69f489"
        );
    }

    #[test]
    #[cfg(windows)]
    fn version_matches_the_toolkit_on_windows() {
        assert_eq!(
            version("~/.cache/uv", "zstd-without-long"),
            "7db68449f14e2f0d8aa9b0f0efb35fedd86c605f98e40645b5ccbfb64a722b4f"
        );
    }
}
