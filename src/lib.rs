//! uv-nox-cache: restores and saves uv caches and nox environments through the CI runner's
//! cache service.
