//! The integration tests: one binary, one module per concern.

mod support;
mod end_to_end;
mod dist;
mod real_tools;
