//! The integration tests: one binary, one module per concern.

mod contract;
mod dist;
mod end_to_end;
mod envs;
mod faults;
mod hash_files;
mod hostile;
mod interop;
mod keys;
mod metadata;
mod protocols;
mod real_tools;
mod release;
mod s3;
mod safety;
mod secrets;
mod support;
