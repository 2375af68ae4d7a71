//! The local store's layout as docs/backends.md states it, written independently of the
//! action's code so that tests can plant, copy and find entries — and so that a change of the
//! layout shows up here.
//!
//! `<store>/v2/<repository>/<ref>/<version>/<sha256 of the lower-cased key>`, the repository
//! and ref each one component with every byte but ASCII letters, digits, `_`, `-` and a
//! non-leading `.` written `%XX`; each file is `uv-nox-cache-entry <sha256 of the archive>
//! <key>\n` followed by the archive.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// One repository or ref as a path component of the store.
pub fn component(text: &str) -> String {
    text.bytes()
        .enumerate()
        .map(|(i, b)| {
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Where the entry `key` of `repository` on `git_ref` lives.
pub fn entry_path(store: &Path, repository: &str, git_ref: &str, version: &str, key: &str) -> PathBuf {
    store
        .join("v2")
        .join(component(repository))
        .join(component(git_ref))
        .join(version)
        .join(hex::encode(Sha256::digest(key.to_lowercase().as_bytes())))
}

/// Writes an entry as a save does: the header with the archive's sha256, then the archive.
pub fn write_entry(path: &Path, key: &str, archive: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut bytes =
        format!("uv-nox-cache-entry {} {key}\n", hex::encode(Sha256::digest(archive))).into_bytes();
    bytes.extend_from_slice(archive);
    fs::write(path, bytes).unwrap();
}

/// Every entry of the store: (path, key, archive).
pub fn entries(store: &Path) -> Vec<(PathBuf, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![store.join("v2")];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if !entry.file_name().to_string_lossy().starts_with('.') {
                let bytes = fs::read(&path).unwrap();
                let newline = bytes.iter().position(|b| *b == b'\n').unwrap();
                let header = String::from_utf8_lossy(&bytes[..newline]).into_owned();
                let key = header.splitn(3, ' ').nth(2).unwrap().to_string();
                out.push((path, key, bytes[newline + 1..].to_vec()));
            }
        }
    }
    out.sort();
    out
}
