//! `uv cache prune --ci` before saving: keeps the wheels uv built from source (expensive) and
//! drops what can be downloaded again (docs/domain.md §2).
//!
//! Never with `UV_LINK_MODE=symlink`: envs then link straight into the cache, and pruning it
//! breaks them (uv#12003, uv#13270).

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error(
        "not pruning the uv cache: UV_LINK_MODE=symlink makes environments link into it, and pruning \
         would break them (uv#12003); set uv-prune to none or use another link mode"
    )]
    SymlinkLinkMode,
    #[error("cannot run {uv} to prune the uv cache: {source}")]
    Spawn { uv: PathBuf, source: std::io::Error },
    #[error("`{uv} cache prune --ci --force` on {cache_dir} failed ({status}): {stderr}")]
    Failed { uv: PathBuf, cache_dir: PathBuf, status: std::process::ExitStatus, stderr: String },
}

/// Runs `<uv> cache prune --ci --force` with `UV_CACHE_DIR=<cache_dir>`. `link_mode` is the
/// `UV_LINK_MODE` in effect for the job; `symlink` refuses with [`PruneError::SymlinkLinkMode`].
pub fn uv_prune_ci(uv: &Path, cache_dir: &Path, link_mode: Option<&str>) -> Result<(), PruneError> {
    if link_mode.is_some_and(|m| m.trim().eq_ignore_ascii_case("symlink")) {
        return Err(PruneError::SymlinkLinkMode);
    }
    let out = Command::new(uv)
        .args(["cache", "prune", "--ci", "--force"])
        .env("UV_CACHE_DIR", cache_dir)
        .env_remove("UV_NO_CACHE")
        .output()
        .map_err(|source| PruneError::Spawn { uv: uv.to_path_buf(), source })?;
    if !out.status.success() {
        return Err(PruneError::Failed {
            uv: uv.to_path_buf(),
            cache_dir: cache_dir.to_path_buf(),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_symlink_mode_without_running_uv() {
        let err = uv_prune_ci(Path::new("/no/such/uv"), Path::new("/tmp/c"), Some(" Symlink ")).unwrap_err();
        assert!(matches!(err, PruneError::SymlinkLinkMode), "{err}");
        assert!(err.to_string().contains("UV_LINK_MODE=symlink"));
        let err = uv_prune_ci(Path::new("/no/such/uv"), Path::new("/tmp/c"), Some("copy")).unwrap_err();
        assert!(matches!(err, PruneError::Spawn { .. }), "{err}");
    }
}
