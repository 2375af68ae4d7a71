//! uv-nox-cache: restores and saves uv caches and nox environments through the CI runner's
//! cache service.

pub mod archive;
pub mod backend;
pub mod envs;
pub mod hash_files;
