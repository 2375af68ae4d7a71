//! The archive reader on arbitrary input, with small limits: it must return (Ok or Err), never
//! panic, hang or write outside `dest`.
//!
//! The first byte picks the framing: odd → the rest is the compressed stream as stored; even →
//! the rest is a tar stream, zstd-compressed here, so the fuzzer works on tar headers rather
//! than on getting past the zstd checksum.

#![no_main]

use std::fs;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use uv_nox_cache::archive::{UnpackLimits, unpack};

const LIMITS: UnpackLimits =
    UnpackLimits { max_bytes: 1 << 20, max_entries: 2_000, max_ratio: 200, ratio_floor: 64 << 10 };

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let input = if mode & 1 == 1 { rest.to_vec() } else { zstd::encode_all(rest, 1).unwrap() };
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir(tmp.path().join("sentinel")).unwrap();
    fs::write(tmp.path().join("sentinel/secret"), b"secret").unwrap();
    let dest = tmp.path().join("stage/dest");
    let _ = unpack(&mut &input[..], &dest, &LIMITS);
    assert_eq!(names(tmp.path()), ["sentinel", "stage"], "something was written beside dest");
    assert_eq!(names(&tmp.path().join("sentinel")), ["secret"]);
    assert_eq!(names(&tmp.path().join("stage")), ["dest"]);
    assert_eq!(fs::read(tmp.path().join("sentinel/secret")).unwrap(), b"secret");
});

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}
