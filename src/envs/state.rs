//! A digest of what is installed in the envs (and of what the uv cache holds), so the post step
//! can tell whether the job changed them since the restore.
//!
//! The post step cannot read the job's status, so "the job repaired an incomplete env" and "the
//! job's installs were no-ops" are told apart by what the envs hold: the restore step records
//! this digest, the save step computes it again. The digest covers each env's name and each
//! installed distribution's `.dist-info` name and `RECORD` (which lists every installed file with
//! its hash), leaving out what the save would leave out anyway (evicted project installs, whose
//! reinstall is expected in every job).

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::env_names;
use super::evict::site_packages_dirs;

/// The digest (hex) of the installed distributions of every env under `envdir`, leaving out the
/// `.dist-info` directories in `skip` (relative to `envdir`).
pub fn envs_state(envdir: &Path, skip: &HashSet<PathBuf>) -> String {
    let mut hash = Sha256::new();
    for env in env_names(envdir) {
        hash.update(format!("env {env}\n"));
        let mut dist_infos: Vec<PathBuf> = site_packages_dirs(envdir, &env)
            .into_iter()
            .flat_map(|site| {
                fs::read_dir(envdir.join(&site))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|d| d.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".dist-info"))
                    .map(move |n| site.join(n))
            })
            .collect();
        dist_infos.sort();
        for rel in dist_infos.into_iter().filter(|d| !skip.contains(d)) {
            let record = fs::read(envdir.join(&rel).join("RECORD")).unwrap_or_default();
            hash.update(format!("dist {} {}\n", rel.display(), hex::encode(Sha256::digest(&record))));
        }
    }
    hex::encode(hash.finalize())
}

/// The digest (hex) of what the uv cache (or uv's Python directory) at `dir` holds: the names of
/// its entries three levels deep (`archive-v0/<id>`, `wheels-v5/pypi/<name>`,
/// `cpython-3.12.8-linux-x86_64-gnu/bin/python3.12`, …), which change when uv adds a download, a
/// build or a Python. `sdists-v*` (local builds, left out of every save), `environments-v*` (never saved)
/// and hidden entries (uv's lock file) are not counted.
pub fn cache_state(dir: &Path) -> String {
    let mut names = Vec::new();
    collect_names(dir, Path::new(""), 3, &mut names);
    names.sort();
    let mut hash = Sha256::new();
    for name in names {
        hash.update(name.to_string_lossy().as_bytes());
        hash.update(b"\n");
    }
    hex::encode(hash.finalize())
}

fn collect_names(root: &Path, rel: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(root.join(rel)) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let top = rel.as_os_str().is_empty();
        if name.starts_with('.')
            || (top && (name.starts_with("sdists-v") || super::is_uv_environments_bucket(&name)))
        {
            continue;
        }
        let child = rel.join(&name);
        if depth > 1 && entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_names(root, &child, depth - 1, out);
        }
        out.push(child);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_moves_with_installs_and_not_with_skipped_ones() {
        let dir = tempfile::tempdir().unwrap();
        let envdir = dir.path();
        let site = envdir.join("e/lib/python3.12/site-packages");
        fs::create_dir_all(site.join("a-1.dist-info")).unwrap();
        fs::write(envdir.join("e/pyvenv.cfg"), "home = /usr/bin\n").unwrap();
        fs::write(site.join("a-1.dist-info/RECORD"), "a.py,,\n").unwrap();
        let none = HashSet::new();
        let before = envs_state(envdir, &none);
        assert_eq!(envs_state(envdir, &none), before);
        fs::create_dir_all(site.join("proj-1.dist-info")).unwrap();
        let skip: HashSet<PathBuf> =
            [PathBuf::from("e/lib/python3.12/site-packages/proj-1.dist-info")].into();
        assert_eq!(envs_state(envdir, &skip), before, "a skipped dist-info does not count");
        assert_ne!(envs_state(envdir, &none), before);
        fs::write(site.join("a-1.dist-info/RECORD"), "a.py,,\nb.py,,\n").unwrap();
        assert_ne!(envs_state(envdir, &skip), before, "a changed RECORD counts");
    }

    #[test]
    fn the_cache_digest_moves_with_new_entries_but_not_with_local_builds_or_envs() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("archive-v0/abc")).unwrap();
        let before = cache_state(dir.path());
        fs::create_dir_all(dir.path().join("sdists-v9/path/xyz")).unwrap();
        fs::create_dir_all(dir.path().join("environments-v2/demo-5f1c/lib")).unwrap();
        fs::write(dir.path().join(".lock"), "").unwrap();
        assert_eq!(cache_state(dir.path()), before);
        fs::create_dir_all(dir.path().join("wheels-v5/pypi/idna")).unwrap();
        assert_ne!(cache_state(dir.path()), before);
    }
}
