//! Which uv wrote a uv cache: the uv key carries the release series (`uv0.13` for uv 0.13.9) of
//! the `uv` on PATH, so an upgrade starts a new entry and a downgrade never restores what a newer
//! uv wrote. uv changes its cache format only in minor releases — sometimes by renaming its
//! buckets (0.13.0: `wheels-v6` → `wheels-v8`, …), sometimes without (0.12.0) — so the series is
//! what moves with the format (docs/decisions.md, "uv's version in the uv key").

use std::fmt;
use std::path::Path;
use std::process::Command;

use crate::key::KeyParts;

/// How many older series a restore falls back to, newest first, after its own.
pub const OLDER_SERIES: u64 = 2;

/// A uv release series: major and minor version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Series {
    pub major: u64,
    pub minor: u64,
}

impl fmt::Display for Series {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl Series {
    /// The series of `uv --version`'s answer (`uv 0.13.9 (x86_64-unknown-linux-gnu)`).
    pub fn parse(version_line: &str) -> Option<Series> {
        let version = version_line.trim().strip_prefix("uv ")?.split_whitespace().next()?;
        let mut numbers = version.split('.').map(|n| n.parse::<u64>().ok());
        Some(Series { major: numbers.next()??, minor: numbers.next()?? })
    }

    /// The key's fingerprint component for this series: `uv0.13`.
    pub fn component(self) -> String {
        format!("uv{self}")
    }

    /// The series read back from a key's fingerprint (`py3.12-uv0.13`).
    pub fn of_fingerprint(fingerprint: &str) -> Option<Series> {
        Series::parse(&format!("uv {}", fingerprint.rsplit_once("-uv")?.1))
    }

    /// The older series of the same major version a restore may fall back to, newest first: a
    /// newer uv reads an older uv's buckets, or ignores them (they are left out of its save).
    pub fn older(self) -> Vec<Series> {
        (self.minor.saturating_sub(OLDER_SERIES)..self.minor)
            .rev()
            .map(|minor| Series { major: self.major, minor })
            .collect()
    }
}

/// The series of the `uv` on PATH, asked from `cwd`; `None` when uv does not run.
pub fn on_path(cwd: &Path) -> Option<Series> {
    let out = Command::new("uv").arg("--version").current_dir(cwd).output().ok()?;
    out.status.success().then(|| Series::parse(&String::from_utf8_lossy(&out.stdout))).flatten()
}

/// The fingerprint component when uv is not on PATH.
pub const UNKNOWN: &str = "uvunknown";

/// The uv target's fallback keys: its own series, then the older ones, never a newer one. Keyed
/// without a known uv, the newest entry of any uv (the uv installed after this step is most
/// likely the newest).
pub fn restore_keys(key: &KeyParts) -> Vec<String> {
    let own = key.restore_prefix();
    match Series::of_fingerprint(&key.fingerprint) {
        Some(series) => std::iter::once(own)
            .chain(series.older().into_iter().map(|older| {
                let mut parts = key.clone();
                parts.fingerprint = with_series(&key.fingerprint, older);
                parts.restore_prefix()
            }))
            .collect(),
        None => {
            let mut parts = key.clone();
            parts.fingerprint = key.fingerprint.trim_end_matches(UNKNOWN).to_string() + "uv";
            // `…-py3.12-uv`: the prefix of every series' key (`…-py3.12-uv0.13-…`).
            let any = parts.restore_prefix();
            vec![own, any.trim_end_matches('-').to_string()]
        }
    }
}

/// `fingerprint` with its series replaced by `series`.
fn with_series(fingerprint: &str, series: Series) -> String {
    match fingerprint.rsplit_once("-uv") {
        Some((before, _)) => format!("{before}-{}", series.component()),
        None => fingerprint.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(fingerprint: &str) -> KeyParts {
        KeyParts {
            target: "uv",
            os: "Linux-ubuntu24".into(),
            arch: "X64".into(),
            fingerprint: fingerprint.into(),
            suffix: None,
            hash: "abc".into(),
        }
    }

    #[test]
    fn the_series_is_read_from_uv_version() {
        assert_eq!(
            Series::parse("uv 0.13.9 (x86_64-unknown-linux-gnu)\n"),
            Some(Series { major: 0, minor: 13 })
        );
        assert_eq!(Series::parse("uv 1.0.0"), Some(Series { major: 1, minor: 0 }));
        assert_eq!(Series::parse("uv-build 0.13.9"), None);
        assert_eq!(Series::parse(""), None);
        assert_eq!(Series::of_fingerprint("py3.12-uv0.12"), Some(Series { major: 0, minor: 12 }));
        assert_eq!(Series::of_fingerprint("py3.12-uvunknown"), None);
    }

    /// An upgrade falls back to the older series' entries; a downgrade never reaches a newer one.
    #[test]
    fn fallbacks_reach_older_series_only() {
        let base = "uv-nox-cache-1-uv-Linux-ubuntu24-X64-py3.12";
        assert_eq!(
            restore_keys(&key("py3.12-uv0.13")),
            [format!("{base}-uv0.13-"), format!("{base}-uv0.12-"), format!("{base}-uv0.11-")]
        );
        assert_eq!(restore_keys(&key("py3.12-uv1.0")), [format!("{base}-uv1.0-")]);
        for fallback in restore_keys(&key("py3.12-uv0.12")) {
            assert!(!format!("{base}-uv0.13-abc").starts_with(&fallback), "{fallback}");
        }
        assert_eq!(
            restore_keys(&key("py3.12-uvunknown")),
            [format!("{base}-uvunknown-"), format!("{base}-uv")]
        );
    }
}
