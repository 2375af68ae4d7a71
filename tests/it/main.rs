//! The integration tests: one binary, one module per concern.

mod cancel;
mod contract;
mod dist;
mod editable;
mod end_to_end;
mod envs;
mod faults;
mod hash_files;
mod hostile;
mod inputs;
mod interop;
mod keys;
mod metadata;
mod protocols;
mod real_tools;
mod release;
mod runners;
mod s3;
mod safety;
mod secrets;
mod sh_entry;
mod summary;
mod support;
mod tokens;
mod uv_cache;
mod uv_python;
