//! The integration tests: one binary, one module per concern.

mod envs;
mod support;
