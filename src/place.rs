//! All-or-nothing restores: an archive is extracted into a staging directory beside the target
//! and moved into place only when everything went well, so a failed restore leaves the target
//! exactly as it was.
//!
//! A staging directory is named `.<target>.restoring-<pid>-<random>`, so that one left by a
//! killed run (SIGKILL leaves no chance to clean up) is known by its dead process: the next
//! restore beside the same target removes it ([`remove_stale`]), and the key search never
//! looks inside any staging directory ([`staging_siblings`]).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// A fresh, not yet existing path beside `target` for extracting into.
pub fn staging_dir(target: &Path) -> io::Result<PathBuf> {
    let parent = parent_of(target);
    fs::create_dir_all(&parent)?;
    let prefix = format!("{}{}-", staging_prefix(target), std::process::id());
    let holder = tempfile::Builder::new().prefix(&prefix).tempdir_in(&parent)?;
    // Keep the unique directory name but let the extractor create the directory itself.
    let path = holder.keep();
    fs::remove_dir(&path)?;
    Ok(path)
}

/// Replaces `target` with `staging`. An existing target is moved aside first and deleted only
/// after the new one is in place.
pub fn swap_into_place(staging: &Path, target: &Path) -> io::Result<()> {
    let aside = if fs::symlink_metadata(target).is_ok() {
        let aside = staging.with_extension("previous");
        fs::rename(target, &aside)?;
        Some(aside)
    } else {
        None
    };
    if let Err(e) = fs::rename(staging, target) {
        if let Some(aside) = &aside {
            let _ = fs::rename(aside, target);
        }
        return Err(e);
    }
    if let Some(aside) = aside {
        let _ = fs::remove_dir_all(aside);
    }
    Ok(())
}

/// Removes a staging directory left by a failed restore.
pub fn discard(staging: &Path) {
    let _ = fs::remove_dir_all(staging);
}

/// `.<name>.restoring-`: how every staging directory of `target` starts.
fn staging_prefix(target: &Path) -> String {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    format!(".{name}.restoring-")
}

/// The staging directories beside `target` (and the `.previous` copies a swap sets aside),
/// live or stale.
pub fn staging_siblings(target: &Path) -> Vec<PathBuf> {
    let prefix = staging_prefix(target);
    let Ok(entries) = fs::read_dir(parent_of(target)) else { return Vec::new() };
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// Removes the staging directories beside `target` that a killed run left: those whose
/// process is gone, and those named without a process id (made by older releases). When a
/// run was killed between the two renames of [`swap_into_place`], the target is missing and
/// its old contents sit in a `.previous` directory: that one is moved back instead. Returns
/// what was removed or moved back.
pub fn remove_stale(target: &Path) -> Vec<PathBuf> {
    let prefix = staging_prefix(target);
    let mut handled = Vec::new();
    for path in staging_siblings(target) {
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let owner = name[prefix.len()..].split_once('-').and_then(|(pid, _)| pid.parse::<u32>().ok());
        if owner.is_some_and(process_alive) {
            continue;
        }
        if name.ends_with(".previous") && fs::symlink_metadata(target).is_err() {
            if fs::rename(&path, target).is_ok() {
                handled.push(path);
            }
            continue;
        }
        let removed = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
        if removed.is_ok() {
            handled.push(path);
        }
    }
    handled
}

/// Whether process `pid` runs on this machine (it may belong to another user). A killed
/// process that nobody has reaped yet (a zombie) no longer runs.
fn process_alive(pid: u32) -> bool {
    let Ok(id) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let exists =
        unsafe { libc::kill(id, 0) } == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    // `/proc/<pid>/stat`: `pid (comm) state ...`; the state follows the last `)`.
    let state = fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next()));
    exists && !matches!(state, Some('Z' | 'X'))
}

fn parent_of(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_replaces_an_existing_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("envs");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("old"), "old").unwrap();
        let staging = staging_dir(&target).unwrap();
        assert!(!staging.exists());
        fs::create_dir(&staging).unwrap();
        fs::write(staging.join("new"), "new").unwrap();
        swap_into_place(&staging, &target).unwrap();
        assert!(target.join("new").exists() && !target.join("old").exists());
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "nothing but the target is left beside it");
    }

    /// A pid that no process has: above the kernel's `pid_max` ceiling (2^22).
    const DEAD_PID: u32 = 4_194_305;

    #[test]
    fn stale_staging_dirs_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join(".nox");
        fs::create_dir(&target).unwrap();
        let live = staging_dir(&target).unwrap();
        fs::create_dir(&live).unwrap();
        assert!(live.file_name().unwrap().to_string_lossy().contains(&format!("-{}-", std::process::id())));
        let prefix = staging_prefix(&target);
        let dead = dir.path().join(format!("{prefix}{DEAD_PID}-abc123"));
        let old_style = dir.path().join(format!("{prefix}Xy12Ab"));
        for stale in [&dead, &old_style] {
            fs::create_dir_all(stale.join("envs/lib")).unwrap();
            fs::write(stale.join("envs/lib/pyproject.toml"), "").unwrap();
        }
        let other = dir.path().join(".uv.restoring-1-abc");
        fs::create_dir(&other).unwrap();
        let mut all = vec![old_style.clone(), live.clone(), dead.clone()];
        all.sort();
        assert_eq!(staging_siblings(&target), all);
        let mut removed = remove_stale(&target);
        removed.sort();
        let mut stale = vec![old_style.clone(), dead.clone()];
        stale.sort();
        assert_eq!(removed, stale);
        assert!(live.exists() && other.exists() && target.exists());
        assert!(!dead.exists() && !old_style.exists());
    }

    #[test]
    fn a_target_set_aside_by_a_killed_swap_is_moved_back() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join(".nox");
        let aside = dir.path().join(format!("{}{DEAD_PID}-abc123.previous", staging_prefix(&target)));
        fs::create_dir(&aside).unwrap();
        fs::write(aside.join("old"), "old").unwrap();
        assert_eq!(remove_stale(&target), vec![aside.clone()]);
        assert_eq!(fs::read(target.join("old")).unwrap(), b"old");
        assert!(!aside.exists());
    }
}
