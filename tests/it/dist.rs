//! The shipped binary in `dist/` is the one the sources describe, and runs on old glibc.

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
