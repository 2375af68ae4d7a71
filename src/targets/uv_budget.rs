//! The `uv-max-size` budget: what the saved uv entry leaves out so it holds at most that many
//! bytes. The cache on disk is not touched; only the archive leaves things out.
//!
//! The unit dropped is one unpacked wheel of `archive-v0/<id>` together with every entry that
//! points at it (the `wheels-v*` / `sdists-v*` link, `.http`, `.msgpack`, `.lock` files sharing
//! its name), so uv never finds a pointer to a wheel that is not there: it downloads (or builds)
//! that wheel again. First what no env of this job uses (no file of the wheel has a second hard
//! link, into a restored or built env), oldest first; then the rest, oldest first, until the
//! entry fits. Buckets of other uv versions and the project's own builds (`evict-project`) are
//! left out before the budget is counted ([`super::uv_buckets`], `envs::uv_local_builds`).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// uv's bucket of unpacked wheels, which every other bucket points into.
const ARCHIVE: &str = "archive-v0";

/// Pointer files larger than this are not read for archive ids (uv's are a few hundred bytes).
const POINTER_MAX: u64 = 1 << 20;

/// One wheel left out to fit the budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// What it is, for the log: the wheel's `.dist-info` name, else its archive id.
    pub name: String,
    pub bytes: u64,
    /// Whether an env of this job links to its files.
    pub used: bool,
}

/// What fitting the uv entry into its budget left out.
#[derive(Debug, Default, Clone)]
pub struct Budget {
    pub limit: u64,
    /// Bytes the entry would have held without the budget.
    pub before: u64,
    /// Bytes it holds now.
    pub after: u64,
    pub dropped: Vec<Dropped>,
    /// Paths relative to the cache directory to leave out.
    pub skip: HashSet<PathBuf>,
}

/// One unpacked wheel and what points at it.
struct Wheel {
    id: String,
    name: String,
    bytes: u64,
    used: bool,
    modified: SystemTime,
    pointers: Vec<(PathBuf, u64)>,
}

/// What the entry of `dir` (leaving out `skip`) must leave out to hold at most `limit` bytes;
/// `None` when it already does.
pub fn fit(dir: &Path, skip: &HashSet<PathBuf>, limit: u64) -> Option<Budget> {
    let mut files: Vec<(PathBuf, fs::Metadata)> = Vec::new();
    walk(dir, Path::new(""), skip, &mut files);
    let mut seen = HashSet::new();
    let size = |files: &[(PathBuf, fs::Metadata)], seen: &mut HashSet<(u64, u64)>| -> u64 {
        files
            .iter()
            .filter(|(_, m)| m.is_file() && seen.insert((m.dev(), m.ino())))
            .map(|(_, m)| m.len())
            .sum()
    };
    let before = size(&files, &mut seen);
    if before <= limit {
        return None;
    }
    let mut wheels = wheels(dir, &files);
    let mut budget = Budget { limit, before, after: before, ..Budget::default() };
    // Unused before used, then oldest first.
    wheels.sort_by_key(|w| (w.used, w.modified));
    for wheel in wheels {
        if budget.after <= limit {
            break;
        }
        let freed = wheel.bytes + wheel.pointers.iter().map(|(_, n)| n).sum::<u64>();
        budget.after = budget.after.saturating_sub(freed);
        budget.skip.insert(Path::new(ARCHIVE).join(&wheel.id));
        budget.skip.extend(wheel.pointers.into_iter().map(|(p, _)| p));
        budget.dropped.push(Dropped { name: wheel.name, bytes: wheel.bytes, used: wheel.used });
    }
    Some(budget)
}

/// Every file and symlink under `dir/rel` not under a `skip` path, relative to `dir`.
fn walk(dir: &Path, rel: &Path, skip: &HashSet<PathBuf>, out: &mut Vec<(PathBuf, fs::Metadata)>) {
    let Ok(entries) = fs::read_dir(dir.join(rel)) else { return };
    for entry in entries.flatten() {
        let path = rel.join(entry.file_name());
        if skip.contains(&path) {
            continue;
        }
        let Ok(meta) = entry.path().symlink_metadata() else { continue };
        if meta.is_dir() {
            walk(dir, &path, skip, out);
        } else {
            out.push((path, meta));
        }
    }
}

/// The unpacked wheels of `archive-v0`, each with the entries that point at it.
fn wheels(dir: &Path, files: &[(PathBuf, fs::Metadata)]) -> Vec<Wheel> {
    let mut by_id: HashMap<String, Wheel> = HashMap::new();
    for (path, meta) in files {
        let mut parts = path.components();
        if parts.next().map(|c| c.as_os_str()) != Some(ARCHIVE.as_ref()) {
            continue;
        }
        let Some(id) = parts.next().and_then(|c| c.as_os_str().to_str()) else { continue };
        let wheel = by_id.entry(id.to_string()).or_insert_with(|| Wheel {
            id: id.to_string(),
            name: id.to_string(),
            bytes: 0,
            used: false,
            modified: fs::metadata(dir.join(ARCHIVE).join(id))
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH),
            pointers: Vec::new(),
        });
        if let Some(dist_info) =
            parts.next().and_then(|c| c.as_os_str().to_str()).filter(|c| c.ends_with(".dist-info"))
        {
            wheel.name = dist_info.trim_end_matches(".dist-info").to_string();
        }
        if meta.is_file() {
            wheel.bytes += meta.len();
            wheel.used |= meta.nlink() > 1;
        }
    }
    for (path, meta) in files {
        if path.starts_with(ARCHIVE) {
            continue;
        }
        for id in pointed_at(dir, path, meta, &by_id) {
            if let Some(wheel) = by_id.get_mut(&id) {
                wheel.pointers.extend(siblings(files, path));
            }
        }
    }
    by_id.into_values().collect()
}

/// The archive ids `path` points at: a symlink's target, or the ids written in a pointer file.
fn pointed_at(dir: &Path, path: &Path, meta: &fs::Metadata, ids: &HashMap<String, Wheel>) -> Vec<String> {
    if meta.file_type().is_symlink() {
        return fs::read_link(dir.join(path))
            .ok()
            .and_then(|t| t.file_name().and_then(|n| n.to_str()).map(str::to_string))
            .filter(|n| ids.contains_key(n))
            .into_iter()
            .collect();
    }
    if !meta.is_file() || meta.len() > POINTER_MAX {
        return Vec::new();
    }
    let Ok(bytes) = fs::read(dir.join(path)) else { return Vec::new() };
    bytes
        .split(|b| !(b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_'))
        .filter_map(|token| std::str::from_utf8(token).ok())
        .filter(|token| ids.contains_key(*token))
        .map(str::to_string)
        .collect()
}

/// `path` and the files beside it sharing its name up to the first `.` after its version
/// (`1.16.0-py2.py3-none-any`, `….http`, `….msgpack`, `….lock`), with their sizes.
fn siblings(files: &[(PathBuf, fs::Metadata)], path: &Path) -> Vec<(PathBuf, u64)> {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return Vec::new() };
    let stem =
        [".http", ".msgpack", ".lock", ".rev"].iter().find_map(|ext| name.strip_suffix(ext)).unwrap_or(name);
    let parent = path.parent().unwrap_or(Path::new(""));
    files
        .iter()
        .filter(|(p, _)| p.parent().unwrap_or(Path::new("")) == parent)
        .filter(|(p, _)| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n == stem || n.strip_prefix(stem).is_some_and(|rest| rest.starts_with('.')))
        })
        .map(|(p, m)| (p.clone(), if m.is_file() { m.len() } else { 0 }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wheel(dir: &Path, id: &str, dist: &str, bytes: usize) {
        let root = dir.join(ARCHIVE).join(id);
        fs::create_dir_all(root.join(format!("{dist}.dist-info"))).unwrap();
        fs::write(root.join(format!("{dist}.dist-info/METADATA")), "Name: x\n").unwrap();
        fs::write(root.join("mod.py"), vec![b'x'; bytes]).unwrap();
        let pkg = dir.join("wheels-v8/pypi").join(dist);
        fs::create_dir_all(&pkg).unwrap();
        std::os::unix::fs::symlink(format!("../../../{ARCHIVE}/{id}"), pkg.join("1.0-py3-none-any")).unwrap();
        fs::write(pkg.join("1.0-py3-none-any.http"), format!("\x00\x10{id}\x00")).unwrap();
        fs::write(pkg.join("1.0-py3-none-any.lock"), "").unwrap();
    }

    /// An unused wheel goes before a used one, each with everything that points at it.
    #[test]
    fn unused_wheels_go_first_with_their_pointers() {
        let dir = tempfile::tempdir().unwrap();
        wheel(dir.path(), "AAAAusedAAAAAAAA", "used", 4000);
        wheel(dir.path(), "BBBBfreeBBBBBBBB", "free", 4000);
        let env = dir.path().join("env.py");
        fs::hard_link(dir.path().join(ARCHIVE).join("AAAAusedAAAAAAAA/mod.py"), &env).unwrap();
        let mut skip = HashSet::new();
        skip.insert(PathBuf::from("env.py"));
        assert!(fit(dir.path(), &skip, 1 << 30).is_none(), "under the budget, nothing is left out");
        let budget = fit(dir.path(), &skip, 5000).unwrap();
        assert_eq!(budget.dropped.len(), 1, "{:?}", budget.dropped);
        assert_eq!((budget.dropped[0].name.as_str(), budget.dropped[0].used), ("free", false));
        assert!(budget.after <= 5000 && budget.before > 8000, "{budget:?}");
        for p in [
            "archive-v0/BBBBfreeBBBBBBBB",
            "wheels-v8/pypi/free/1.0-py3-none-any",
            "wheels-v8/pypi/free/1.0-py3-none-any.http",
            "wheels-v8/pypi/free/1.0-py3-none-any.lock",
        ] {
            assert!(budget.skip.contains(Path::new(p)), "{p} kept: {:?}", budget.skip);
        }
        assert!(!budget.skip.iter().any(|p| p.to_string_lossy().contains("used")), "{:?}", budget.skip);
        let budget = fit(dir.path(), &skip, 100).unwrap();
        assert_eq!(budget.dropped.len(), 2, "then the used ones: {:?}", budget.dropped);
    }
}
