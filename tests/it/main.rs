//! The integration tests: one binary, one module per concern.

mod dist;
mod end_to_end;
mod envs;
mod hash_files;
mod keys;
mod metadata;
mod protocols;
mod real_tools;
mod release;
mod safety;
mod support;
