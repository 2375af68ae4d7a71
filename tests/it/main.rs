//! The integration tests: one binary, one module per concern.

mod cancel;
mod cli;
mod contract;
mod dist;
mod docs;
mod editable;
mod end_to_end;
mod envs;
mod faults;
mod hash_files;
mod hostile;
mod housekeeping;
mod inputs;
mod interop;
mod keys;
mod lean_entries;
mod metadata;
mod protocols;
mod provision;
mod proxied_faults;
mod real_tools;
mod release;
mod runners;
mod s3;
mod safety;
mod scoping;
mod secrets;
mod sh_entry;
mod slow_service;
mod summary;
mod support;
mod tokens;
mod uv_cache;
mod uv_python;

mod vcs_project;
