//! All-or-nothing restores: an archive is extracted into a staging directory beside the target
//! and moved into place only when everything went well, so a failed restore leaves the target
//! exactly as it was.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// A fresh, not yet existing path beside `target` for extracting into.
pub fn staging_dir(target: &Path) -> io::Result<PathBuf> {
    let parent = parent_of(target);
    fs::create_dir_all(&parent)?;
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let holder = tempfile::Builder::new().prefix(&format!(".{name}.restoring-")).tempdir_in(&parent)?;
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
}
