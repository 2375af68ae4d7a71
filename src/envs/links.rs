//! Files a nox env shares with the uv cache, so an archive does not carry them twice.
//!
//! uv installs a package by hard-linking the files it unpacked into its cache
//! (`archive-v0/<id>/…`) into the env, so with both targets cached the same bytes went into two
//! entries and were written out twice on every restore (a real stack: 338 MB of 721 MB). When
//! the uv cache has just been saved in the same step, the nox archive leaves out every env file
//! that is a hard link of a file in it, and the env's marker lists them ([`Link`]). A restore
//! puts them back from the uv cache restored before it — as hard links, as uv made them, or as
//! copies across file systems. An env whose files the uv cache does not have is deleted, like
//! any env that does not fit this runner, and nox builds it again.
//!
//! What the marker lists comes from an archive, so it is checked like an archive entry: plain
//! relative paths only, nothing followed through a symlink on either side, and a link is only
//! made to a regular file of the recorded size.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use super::Invalid;
use super::env_names;
use super::marker::{Link, read_marker};

/// The files of each env under `envdir` that are hard links of files in the uv cache at
/// `uv_dir` — of the part of it that was archived, so outside `uv_skip` (relative to `uv_dir`)
/// — leaving out env paths under `env_skip` (relative to `envdir`: what the nox archive leaves
/// out anyway, such as the evicted project). Envs sharing nothing are absent.
pub fn shared_with_uv_cache(
    envdir: &Path,
    uv_dir: &Path,
    uv_skip: &HashSet<PathBuf>,
    env_skip: &HashSet<PathBuf>,
) -> BTreeMap<String, Vec<Link>> {
    let mut in_cache = HashMap::new();
    walk_files(uv_dir, Path::new(""), &mut |rel, meta| {
        if meta.nlink() > 1 && !under(rel, uv_skip) {
            in_cache.entry((meta.dev(), meta.ino())).or_insert_with(|| rel.to_path_buf());
        }
    });
    let mut shared = BTreeMap::new();
    if in_cache.is_empty() {
        return shared;
    }
    for env in env_names(envdir) {
        let mut links = Vec::new();
        walk_files(&envdir.join(&env), Path::new(""), &mut |rel, meta| {
            let Some(uv) = (meta.nlink() > 1).then(|| in_cache.get(&(meta.dev(), meta.ino()))).flatten()
            else {
                return;
            };
            if !under(&Path::new(&env).join(rel), env_skip) {
                links.push(Link { path: slashed(rel), uv: slashed(uv), size: meta.len() });
            }
        });
        if !links.is_empty() {
            links.sort_by(|a, b| a.path.cmp(&b.path));
            shared.insert(env, links);
        }
    }
    shared
}

/// The env paths (relative to `envdir`) the archive leaves out for `shared`.
pub fn shared_paths(shared: &BTreeMap<String, Vec<Link>>) -> HashSet<PathBuf> {
    shared.iter().flat_map(|(env, links)| links.iter().map(move |l| Path::new(env).join(&l.path))).collect()
}

/// Puts back, in every env restored under `envdir`, the files its marker says it shares with
/// the uv cache at `uv_dir`. An env that cannot get them all is deleted and returned with why.
pub fn restore_shared(envdir: &Path, uv_dir: &Path) -> Vec<Invalid> {
    let mut invalid = Vec::new();
    for env in env_names(envdir) {
        let root = envdir.join(&env);
        let Ok(Some(marker)) = read_marker(&root) else { continue };
        if marker.uv_cache_files.is_empty() {
            continue;
        }
        if let Err(reason) = put_back(&root, uv_dir, &marker.uv_cache_files) {
            let reason = match fs::remove_dir_all(&root) {
                Ok(()) => reason,
                Err(e) => format!("{reason} (and deleting {} failed: {e})", root.display()),
            };
            invalid.push(Invalid { env, reason });
        }
    }
    invalid
}

fn put_back(env: &Path, uv_dir: &Path, links: &[Link]) -> Result<(), String> {
    let mut cache_dirs = RealDirs::under(uv_dir);
    let missing: Vec<&Link> = links.iter().filter(|l| !is_cached(&mut cache_dirs, l)).collect();
    if let Some(first) = missing.first() {
        return Err(format!(
            "{} of its files come from the uv cache, which {} does not hold (such as {}): restore the uv target \
             with the nox target",
            missing.len(),
            uv_dir.display(),
            first.uv
        ));
    }
    let mut env_dirs = RealDirs::under(env);
    for link in links {
        let target =
            plain_path(&link.path).ok_or_else(|| format!("its marker names the file {:?}", link.path))?;
        let parent = target.parent().unwrap_or(Path::new(""));
        if !env_dirs.contain(parent) {
            return Err(format!("{} is not a directory of the env", parent.display()));
        }
        let (from, to) = (uv_dir.join(&link.uv), env.join(&target));
        if fs::symlink_metadata(&to).is_ok() {
            return Err(format!(
                "{} is in its archive although its marker says the uv cache has it",
                link.path
            ));
        }
        if fs::hard_link(&from, &to).is_err() {
            copy_new(&from, &to).map_err(|e| format!("copying {} from the uv cache: {e}", link.uv))?;
        }
    }
    Ok(())
}

/// Copies `from` to a new file `to` (another file system, where no hard link can be made). The
/// copy never opens an existing path, so it cannot write through a link planted there.
fn copy_new(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut source = fs::File::open(from)?;
    let mut target = fs::OpenOptions::new().write(true).create_new(true).open(to)?;
    std::io::copy(&mut source, &mut target)?;
    target.set_permissions(source.metadata()?.permissions())
}

/// Whether the uv cache holds `link`'s file: a regular file of its size, reached without
/// passing through a symlink.
fn is_cached(cache_dirs: &mut RealDirs, link: &Link) -> bool {
    let Some(rel) = plain_path(&link.uv) else { return false };
    let parent = rel.parent().unwrap_or(Path::new(""));
    cache_dirs.contain(parent)
        && fs::symlink_metadata(cache_dirs.root.join(&rel)).is_ok_and(|m| m.is_file() && m.len() == link.size)
}

/// `text` as a relative path of plain names only (no `..`, no root, not empty).
fn plain_path(text: &str) -> Option<PathBuf> {
    let path = PathBuf::from(text);
    let plain = path.components().all(|c| matches!(c, Component::Normal(_)));
    (plain && path.components().next().is_some()).then_some(path)
}

/// The directories below `root` found to be real directories all the way down (no component a
/// symlink), remembered: an env's thousands of files share a few hundred directories.
struct RealDirs {
    root: PathBuf,
    known: HashSet<PathBuf>,
}

impl RealDirs {
    fn under(root: &Path) -> RealDirs {
        RealDirs { root: root.to_path_buf(), known: HashSet::new() }
    }

    /// Whether every component of `rel` (relative to the root) is a directory, none a symlink.
    fn contain(&mut self, rel: &Path) -> bool {
        if rel.as_os_str().is_empty() || self.known.contains(rel) {
            return true;
        }
        let parent = rel.parent().unwrap_or(Path::new(""));
        let real =
            self.contain(parent) && fs::symlink_metadata(self.root.join(rel)).is_ok_and(|m| m.is_dir());
        if real {
            self.known.insert(rel.to_path_buf());
        }
        real
    }
}

/// Calls `found` for every regular file below `root/rel`, never following symlinks.
fn walk_files(root: &Path, rel: &Path, found: &mut dyn FnMut(&Path, &fs::Metadata)) {
    let Ok(entries) = fs::read_dir(root.join(rel)) else { return };
    for entry in entries.flatten() {
        let child = rel.join(entry.file_name());
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            walk_files(root, &child, found);
        } else if meta.is_file() {
            found(&child, &meta);
        }
    }
}

/// Whether `path` or one of its ancestors is in `set`.
fn under(path: &Path, set: &HashSet<PathBuf>) -> bool {
    !set.is_empty() && path.ancestors().any(|a| set.contains(a))
}

fn slashed(path: &Path) -> String {
    path.to_string_lossy().replace('\\', "/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envs::{MARKER_FILE, Marker};

    /// A uv cache and an env whose `lib/pkg/mod.py` is a hard link of the cache's copy.
    fn layout(dir: &Path) -> (PathBuf, PathBuf) {
        let (uv, envdir) = (dir.join("uv"), dir.join("nox"));
        fs::create_dir_all(uv.join("archive-v0/abc/pkg")).unwrap();
        fs::write(uv.join("archive-v0/abc/pkg/mod.py"), "x = 1\n").unwrap();
        fs::create_dir_all(envdir.join("e/lib/pkg")).unwrap();
        fs::write(envdir.join("e/pyvenv.cfg"), "home = /usr/bin\n").unwrap();
        fs::hard_link(uv.join("archive-v0/abc/pkg/mod.py"), envdir.join("e/lib/pkg/mod.py")).unwrap();
        fs::write(envdir.join("e/lib/own.py"), "own\n").unwrap();
        (uv, envdir)
    }

    fn write_marker(env: &Path, links: Vec<Link>) {
        let marker = Marker {
            schema: crate::envs::MARKER_SCHEMA_WITH_LINKS,
            os: "Linux".into(),
            arch: "X64".into(),
            env: env.display().to_string(),
            interpreter: "/usr/bin/python3".into(),
            python_version: "3.11.7".into(),
            project: Vec::new(),
            uv_cache_files: links,
        };
        fs::write(env.join(MARKER_FILE), serde_json::to_vec(&marker).unwrap()).unwrap();
    }

    #[test]
    fn shared_files_are_found_and_skipped_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let (uv, envdir) = layout(dir.path());
        let none = HashSet::new();
        let shared = shared_with_uv_cache(&envdir, &uv, &none, &none);
        let link = Link { path: "lib/pkg/mod.py".into(), uv: "archive-v0/abc/pkg/mod.py".into(), size: 6 };
        assert_eq!(shared, BTreeMap::from([("e".to_string(), vec![link])]));
        assert_eq!(shared_paths(&shared), HashSet::from([PathBuf::from("e/lib/pkg/mod.py")]));
        // Not in the uv archive, or left out of the nox one: not shared.
        let uv_skip = HashSet::from([PathBuf::from("archive-v0/abc")]);
        assert!(shared_with_uv_cache(&envdir, &uv, &uv_skip, &none).is_empty());
        let env_skip = HashSet::from([PathBuf::from("e/lib/pkg")]);
        assert!(shared_with_uv_cache(&envdir, &uv, &none, &env_skip).is_empty());
    }

    #[test]
    fn shared_files_come_back_as_links_or_the_env_goes() {
        let dir = tempfile::tempdir().unwrap();
        let (uv, envdir) = layout(dir.path());
        let none = HashSet::new();
        let links = shared_with_uv_cache(&envdir, &uv, &none, &none).remove("e").unwrap();
        fs::remove_file(envdir.join("e/lib/pkg/mod.py")).unwrap();
        write_marker(&envdir.join("e"), links.clone());
        assert!(restore_shared(&envdir, &uv).is_empty());
        let (restored, cached) = (envdir.join("e/lib/pkg/mod.py"), uv.join("archive-v0/abc/pkg/mod.py"));
        assert_eq!(fs::metadata(&restored).unwrap().ino(), fs::metadata(&cached).unwrap().ino());

        // A uv cache without the file: the env is deleted, saying why.
        fs::remove_file(&restored).unwrap();
        fs::remove_file(&cached).unwrap();
        let invalid = restore_shared(&envdir, &uv);
        assert_eq!(invalid.len(), 1);
        assert!(invalid[0].reason.contains("archive-v0/abc/pkg/mod.py"), "{}", invalid[0].reason);
        assert!(!envdir.join("e").exists());
    }

    #[test]
    fn the_copy_across_file_systems_makes_a_new_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("from"), dir.path().join("to"));
        fs::write(&from, "data").unwrap();
        copy_new(&from, &to).unwrap();
        assert_eq!(fs::read_to_string(&to).unwrap(), "data");
        let (outside, planted) = (dir.path().join("outside"), dir.path().join("planted"));
        std::os::unix::fs::symlink(&outside, &planted).unwrap();
        assert!(copy_new(&from, &planted).is_err());
        assert!(!outside.exists(), "the copy went through a planted link");
    }

    #[test]
    fn a_hostile_marker_links_nothing_outside() {
        for (path, from) in [
            ("../../outside/planted", "archive-v0/abc/pkg/mod.py"),
            ("escape/planted", "archive-v0/abc/pkg/mod.py"),
            ("/tmp/planted", "archive-v0/abc/pkg/mod.py"),
            ("lib/leak", "away/secret"),
            ("lib/leak", "../outside/secret"),
            ("lib/planted-link", "archive-v0/abc/pkg/mod.py"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let (uv, envdir) = layout(dir.path());
            let outside = dir.path().join("outside");
            fs::create_dir_all(&outside).unwrap();
            fs::write(outside.join("secret"), "s3cret").unwrap();
            std::os::unix::fs::symlink(&outside, envdir.join("e/escape")).unwrap();
            std::os::unix::fs::symlink(&outside, uv.join("away")).unwrap();
            std::os::unix::fs::symlink(outside.join("planted"), envdir.join("e/lib/planted-link")).unwrap();
            // The size is right, so only the path checks stand in the way.
            write_marker(&envdir.join("e"), vec![Link { path: path.into(), uv: from.into(), size: 6 }]);
            assert_eq!(restore_shared(&envdir, &uv).len(), 1, "{path} from {from}");
            assert_eq!(fs::read_dir(&outside).unwrap().count(), 1, "{path} from {from} wrote outside");
            assert!(!envdir.join("e").exists(), "{path} from {from}");
        }
    }
}
