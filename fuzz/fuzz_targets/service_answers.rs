//! The v1 and v2 backends' readers of service answers (lookup JSON, error bodies,
//! `Content-Range`) on arbitrary bytes: they must return, never panic, never echo the token.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = uv_nox_cache::backend::fuzzing::service_answers(data);
});
