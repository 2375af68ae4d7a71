//! The shipped binary in `dist/` is the one the sources describe, and runs on old glibc; and
//! `scripts/verify-dist`, which CI runs to rebuild it and compare the bytes, fails on a binary the
//! sources do not produce.

use std::path::Path;
use std::process::Command;

use crate::support::action::repo_root;

mod source {
    include!("../../build/source_hash.rs");

    pub fn hash(root: &std::path::Path) -> String {
        source_hash(root)
    }
}

fn shipped() -> std::path::PathBuf {
    repo_root().join("dist/x86_64-unknown-linux-gnu/uv-nox-cache")
}

#[test]
fn the_shipped_binary_matches_the_sources() {
    let expected = source::hash(&repo_root());
    let out = Command::new(shipped())
        .arg("--version")
        .output()
        .expect("run dist/x86_64-unknown-linux-gnu/uv-nox-cache");
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(
        version.contains(&format!("(source {expected})")),
        "dist/ is stale: it says `{}` but the sources hash to {expected}; run scripts/build-dist",
        version.trim()
    );
    let built = Command::new(crate::support::action::binary()).arg("--version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&built.stdout), version, "the test build and dist/ disagree");
}

#[test]
fn the_shipped_binary_needs_no_glibc_newer_than_2_17() {
    let out =
        Command::new("objdump").arg("-T").arg(shipped()).output().expect("objdump (binutils) is installed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut newest = (2, 0);
    for version in text.split("GLIBC_").skip(1) {
        let digits: String = version.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
        let mut parts = digits.split('.').filter_map(|p| p.parse::<u32>().ok());
        let v = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        newest = newest.max(v);
    }
    assert!(text.contains("GLIBC_"), "the binary is dynamically linked against glibc");
    assert!(newest <= (2, 17), "needs GLIBC_{}.{}", newest.0, newest.1);
}

const SHIPPED: &str = "dist/x86_64-unknown-linux-gnu/uv-nox-cache";

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git").args(args).current_dir(dir).output().expect("git is installed");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

/// A clone of HEAD in which `plant` rewrote the committed Linux binary, committed. (It may leave
/// the binary as it is: on a branch whose dist/ is stale, HEAD's own binary is of other sources.)
fn clone_with_planted_binary(plant: impl FnOnce(&Path, &mut Vec<u8>)) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let clone = tmp.path().join("repo");
    git(&repo_root(), &["clone", "--quiet", ".", clone.to_str().unwrap()]);
    git(&clone, &["checkout", "--quiet", "--detach", &git(&repo_root(), &["rev-parse", "HEAD"])]);
    let mut bytes = std::fs::read(clone.join(SHIPPED)).expect("HEAD has a Linux x86_64 binary in dist/");
    plant(&clone, &mut bytes);
    std::fs::write(clone.join(SHIPPED), &bytes).unwrap();
    git(
        &clone,
        &[
            "-c",
            "user.name=test",
            "-c",
            "user.email=test@invalid",
            "commit",
            "--quiet",
            "--allow-empty",
            "-am",
            "plant",
        ],
    );
    tmp
}

/// Replaces every occurrence of `from` in `bytes` by `to` (same length); there must be one.
fn replace(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let mut found = false;
    let mut at = 0;
    while let Some(i) = bytes[at..].windows(from.len()).position(|w| w == from) {
        bytes[at + i..at + i + to.len()].copy_from_slice(to);
        at += i + to.len();
        found = true;
    }
    assert!(found, "{:?} is not in the binary", String::from_utf8_lossy(from));
}

/// `scripts/verify-dist` in `clone`, sharing this checkout's cache: the cargo target directory
/// and the rebuild an earlier run (`.ci/run`'s) made of the same sources.
fn verify_dist(clone: &Path) -> (Option<i32>, String) {
    let out = Command::new(clone.join("scripts/verify-dist"))
        .arg("--cache")
        .arg(repo_root().join("target/verify-dist"))
        .current_dir(clone)
        .output()
        .expect("run scripts/verify-dist");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A binary that is not of HEAD's sources (a stale dist/, or one built from other sources) is told
/// apart from the hash it embeds, before any rebuild.
#[test]
fn verify_dist_rejects_a_binary_of_other_sources_without_rebuilding() {
    let mut planted_sum = String::new();
    let tmp = clone_with_planted_binary(|clone, bytes| {
        let sources = source::hash(clone);
        if bytes.windows(sources.len()).any(|w| w == sources.as_bytes()) {
            replace(bytes, sources.as_bytes(), "0".repeat(sources.len()).as_bytes());
        }
        planted_sum = sha256_hex(bytes);
    });
    let (code, text) = verify_dist(&tmp.path().join("repo"));
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains(&format!("committed  {planted_sum}")), "{text}");
    assert!(text.contains("was not built from HEAD's sources") && text.contains("stale dist/"), "{text}");
    assert!(
        !text.contains("rebuilding"),
        "a binary of other sources needs no rebuild to be told apart: {text}"
    );
}

/// The case only a rebuild catches: a binary that embeds HEAD's source hash, as a genuine one does,
/// but whose bytes are not what those sources build (here, one changed message). In CI the rebuild
/// is the one `.ci/run`'s `scripts/verify-dist` just made; without it, this test rebuilds (minutes).
#[test]
fn verify_dist_rejects_a_binary_that_claims_the_sources_but_is_not_what_they_build() {
    let mut planted_sum = String::new();
    let tmp = clone_with_planted_binary(|clone, bytes| {
        let planted = clone.join("planted");
        std::fs::write(&planted, &*bytes).unwrap();
        let version = Command::new("sh")
            .arg("-c")
            .arg("chmod +x \"$1\" && \"$1\" --version")
            .arg("sh")
            .arg(&planted)
            .output()
            .expect("run the committed binary");
        std::fs::remove_file(&planted).unwrap();
        let version = String::from_utf8_lossy(&version.stdout).to_string();
        let claimed = version.split("(source ").nth(1).and_then(|s| s.split(')').next());
        let claimed = claimed.unwrap_or_else(|| panic!("no source hash in `{version}`"));
        replace(bytes, claimed.as_bytes(), source::hash(clone).as_bytes());
        replace(
            bytes,
            b"failed to set up alternative stack guard page",
            b"failed to set up alternative stack guard PAGE",
        );
        planted_sum = sha256_hex(bytes);
    });
    let (code, text) = verify_dist(&tmp.path().join("repo"));
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains(&format!("committed  {planted_sum}")), "{text}");
    assert!(text.contains("rebuilt    "), "{text}");
    assert!(text.contains("DIFFERENT: the committed binary claims HEAD's sources"), "{text}");
}
