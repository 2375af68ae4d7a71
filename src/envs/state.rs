//! A digest of what is installed in the envs (and of what the uv cache holds), so the post step
//! can tell whether the job changed them since the restore.
//!
//! The post step cannot read the job's status, so "the job repaired an incomplete env" and "the
//! job's installs were no-ops" are told apart by what the envs hold: the restore step records
//! this digest, the save step computes it again.
//!
//! A change counts only when the next job would feel it: what it would otherwise install or
//! download again. The digest covers each env's name and each installed distribution's
//! `.dist-info` name and `RECORD` (which lists every installed file with its hash), except the
//! workspace's own distributions: every job that runs installs rebuilds those (uv and pip
//! reinstall a local path whose files changed, and a fresh checkout changes them all), so their
//! new version, `RECORD`, bytecode and uv's `uv_cache.json` timestamps say nothing about the
//! dependencies. For the uv cache it covers the entry names, except the builds of local paths
//! the save leaves out (a new `archive-v0/<id>` for every rebuild of the project).

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::evict::{project_dist_infos, site_packages_dirs, uv_local_builds};
use super::{env_names, resolve_lenient};

/// The digest (hex) of the installed distributions of every env under `envdir`, leaving out the
/// workspace's own (those installed from a path inside `workspace`).
pub fn envs_state(envdir: &Path, workspace: &Path) -> String {
    let workspace = resolve_lenient(workspace);
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
        let own: HashSet<PathBuf> = site_packages_dirs(envdir, &env)
            .into_iter()
            .flat_map(|site| {
                project_dist_infos(&envdir.join(&site), &workspace)
                    .into_iter()
                    .map(move |(n, ..)| site.join(n))
            })
            .collect();
        for rel in dist_infos.into_iter().filter(|d| !own.contains(d)) {
            let record = fs::read(envdir.join(&rel).join("RECORD")).unwrap_or_default();
            hash.update(format!("dist {} {}\n", rel.display(), hex::encode(Sha256::digest(&record))));
        }
    }
    hex::encode(hash.finalize())
}

/// The digest (hex) of what the uv cache (or uv's Python directory) at `dir` holds: the names of
/// its entries three levels deep (`archive-v0/<id>`, `wheels-v5/pypi/<name>`,
/// `cpython-3.12.8-linux-x86_64-gnu/bin/python3.12`, …), which change when uv adds a download, a
/// build or a Python. `sdists-v*` (builds of source distributions, whose wheels land in
/// `archive-v*`), `environments-v*` (never saved), the builds of local paths and the unpacked
/// wheels they link to (rebuilt by every job that installs the project) and hidden entries (uv's
/// lock file) are not counted.
pub fn cache_state(dir: &Path) -> String {
    let local_builds = uv_local_builds(dir).skip;
    let mut names = Vec::new();
    collect_names(dir, Path::new(""), 3, &local_builds, &mut names);
    names.sort();
    let mut hash = Sha256::new();
    for name in names {
        hash.update(name.to_string_lossy().as_bytes());
        hash.update(b"\n");
    }
    hex::encode(hash.finalize())
}

fn collect_names(root: &Path, rel: &Path, depth: usize, skip: &HashSet<PathBuf>, out: &mut Vec<PathBuf>) {
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
        if skip.contains(&child) {
            continue;
        }
        if depth > 1 && entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_names(root, &child, depth - 1, skip, out);
        }
        out.push(child);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_moves_with_installs_but_not_with_the_workspaces_own() {
        let dir = tempfile::tempdir().unwrap();
        let envdir = dir.path().join("envs");
        let workspace = dir.path().join("ws");
        fs::create_dir_all(&workspace).unwrap();
        let site = envdir.join("e/lib/python3.12/site-packages");
        fs::create_dir_all(site.join("a-1.dist-info")).unwrap();
        fs::write(envdir.join("e/pyvenv.cfg"), "home = /usr/bin\n").unwrap();
        fs::write(site.join("a-1.dist-info/RECORD"), "a.py,,\n").unwrap();
        let before = envs_state(&envdir, &workspace);
        assert_eq!(envs_state(&envdir, &workspace), before);
        // The project, reinstalled under a new version with new bookkeeping: not a change.
        let own = |version: &str, record: &str| {
            let info = site.join(format!("proj-{version}.dist-info"));
            fs::create_dir_all(&info).unwrap();
            let url = format!("file://{}", workspace.display());
            fs::write(
                info.join("direct_url.json"),
                format!(r#"{{"url":"{url}","dir_info":{{"editable":true}}}}"#),
            )
            .unwrap();
            fs::write(info.join("RECORD"), record).unwrap();
            info
        };
        let first = own("1.0.1.dev1", "uv_cache.json,sha256=one,1\n");
        assert_eq!(envs_state(&envdir, &workspace), before, "the workspace's own install does not count");
        fs::remove_dir_all(first).unwrap();
        own("1.0.1.dev2", "uv_cache.json,sha256=two,1\n");
        assert_eq!(envs_state(&envdir, &workspace), before, "nor does its rebuild");
        // A dependency the next job would otherwise install does.
        fs::create_dir_all(site.join("b-2.dist-info")).unwrap();
        assert_ne!(envs_state(&envdir, &workspace), before, "a new install counts");
        fs::remove_dir_all(site.join("b-2.dist-info")).unwrap();
        fs::write(site.join("a-1.dist-info/RECORD"), "a.py,,\nb.py,,\n").unwrap();
        assert_ne!(envs_state(&envdir, &workspace), before, "a changed RECORD counts");
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
        // A rebuild of a local project: its build and the unpacked wheel it links to.
        let rev = dir.path().join("sdists-v11/editable/fecd017e/qujSHoau");
        fs::create_dir_all(&rev).unwrap();
        fs::create_dir_all(dir.path().join("archive-v0/NEWBUILD")).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("../../../../archive-v0/NEWBUILD", rev.join("proj-1.0.1-py3-none-any"))
            .unwrap();
        #[cfg(unix)]
        assert_eq!(cache_state(dir.path()), before, "a rebuild of the project does not count");
        fs::create_dir_all(dir.path().join("wheels-v5/pypi/idna")).unwrap();
        assert_ne!(cache_state(dir.path()), before);
    }
}
