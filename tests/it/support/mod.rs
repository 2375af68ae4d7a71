//! Shared test support: running the action's steps on a runner machine ([`action`]), the rig
//! of machine plus cache service the step-level suites share ([`rig`]), the test cache server
//! ([`cache_server`]), the official client ([`official`]), real tools ([`tools`]) and the local store's layout
//! ([`local_store`]).

pub mod action;
pub mod local_store;
pub mod official;
pub mod rig;
pub mod tools;

#[path = "../../cache_server/mod.rs"]
pub mod cache_server;

/// `len` incompressible bytes (xorshift from `seed`): archives that stay as large as their
/// files, for slow downloads and half-written trees.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}
