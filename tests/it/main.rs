//! The integration tests: one binary, one module per concern.

mod hash_files;
mod support;
