//! `uv cache prune --ci` before saving: keeps the wheels uv built from source (expensive) and
//! drops what can be downloaded again (docs/domain.md §2).
//!
//! Never with `UV_LINK_MODE=symlink`: envs then link straight into the cache, and pruning it
//! breaks them (uv#12003, uv#13270). Never with `--force`, which ignores another uv holding the
//! cache; instead uv waits for that lock at most [`UV_TIMEOUT`] and the cache is saved unpruned.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a uv run on the cache before saving may take (waiting for another uv's lock
/// included) before it is stopped.
pub const UV_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error(
        "not pruning the uv cache: UV_LINK_MODE=symlink makes environments link into it, and pruning \
         would break them (uv#12003); set uv-prune to none or use another link mode"
    )]
    SymlinkLinkMode,
    #[error("cannot run {uv} to prune the uv cache: {source}")]
    Spawn { uv: PathBuf, source: std::io::Error },
    #[error(
        "`{uv} cache prune --ci` on {cache_dir} did not finish within {}s (another uv holding the \
         cache?); saving it unpruned",
        timeout.as_secs()
    )]
    TimedOut { uv: PathBuf, cache_dir: PathBuf, timeout: Duration },
    #[error("`{uv} cache prune --ci` on {cache_dir} failed ({status}): {stderr}")]
    Failed { uv: PathBuf, cache_dir: PathBuf, status: std::process::ExitStatus, stderr: String },
}

/// Runs `<uv> cache prune --ci` with `UV_CACHE_DIR=<cache_dir>`, stopped after `timeout`.
/// `link_mode` is the `UV_LINK_MODE` in effect for the job; `symlink` refuses with
/// [`PruneError::SymlinkLinkMode`].
pub fn uv_prune_ci(
    uv: &Path,
    cache_dir: &Path,
    link_mode: Option<&str>,
    timeout: Duration,
) -> Result<(), PruneError> {
    if link_mode.is_some_and(|m| m.trim().eq_ignore_ascii_case("symlink")) {
        return Err(PruneError::SymlinkLinkMode);
    }
    let mut cmd = Command::new(uv);
    cmd.args(["cache", "prune", "--ci"]).env("UV_CACHE_DIR", cache_dir).env_remove("UV_NO_CACHE");
    let out = match output_within(&mut cmd, timeout) {
        Ok(Some(out)) => out,
        Ok(None) => {
            return Err(PruneError::TimedOut {
                uv: uv.to_path_buf(),
                cache_dir: cache_dir.to_path_buf(),
                timeout,
            });
        }
        Err(source) => return Err(PruneError::Spawn { uv: uv.to_path_buf(), source }),
    };
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

/// `cmd`'s output, or `None` when it did not finish within `timeout` (it is then killed).
/// Its output goes to temporary files, so a chatty child never blocks on a full pipe.
pub fn output_within(cmd: &mut Command, timeout: Duration) -> std::io::Result<Option<Output>> {
    let mut stdout = tempfile::tempfile()?;
    let mut stderr = tempfile::tempfile()?;
    let mut child =
        cmd.stdin(Stdio::null()).stdout(stdout.try_clone()?).stderr(stderr.try_clone()?).spawn()?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() >= timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |file: &mut std::fs::File| -> std::io::Result<Vec<u8>> {
        use std::io::Seek;
        file.rewind()?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(bytes)
    };
    Ok(Some(Output { status, stdout: read(&mut stdout)?, stderr: read(&mut stderr)? }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_symlink_mode_without_running_uv() {
        let t = UV_TIMEOUT;
        let err =
            uv_prune_ci(Path::new("/no/such/uv"), Path::new("/tmp/c"), Some(" Symlink "), t).unwrap_err();
        assert!(matches!(err, PruneError::SymlinkLinkMode), "{err}");
        assert!(err.to_string().contains("UV_LINK_MODE=symlink"));
        let err = uv_prune_ci(Path::new("/no/such/uv"), Path::new("/tmp/c"), Some("copy"), t).unwrap_err();
        assert!(matches!(err, PruneError::Spawn { .. }), "{err}");
    }

    #[test]
    fn a_child_past_its_timeout_is_stopped() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        assert!(output_within(&mut cmd, Duration::from_millis(200)).unwrap().is_none());
        let mut cmd = Command::new("echo");
        cmd.arg("hi");
        let out = output_within(&mut cmd, Duration::from_secs(60)).unwrap().unwrap();
        assert_eq!(out.stdout, b"hi\n");
    }
}
