//! The integration tests: one binary, one module per concern.

mod protocols;
mod support;
