//! The search of `@actions/glob` 0.4.0 (`getSearchPaths` and `globGenerator`) as hashFiles runs
//! it: the roots in pattern order, then a depth-first walk with each directory's entries in
//! bytewise order (libuv sorts `readdir` on Unix).
//!
//! It is a separate file because the order of the walk is part of the hash, and because what
//! gets a `stat` and when decides which broken trees fail the run: an item that neither matches
//! nor could lead to a match is dropped without any system call, exactly as the runner does.

use std::cell::Cell;
use std::ffi::OsString;
use std::fs::{self, FileType};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::HashFilesError;
use super::pattern::{MATCH_DIRECTORY, MATCH_FILE, Pattern, split_slashes};

/// One path waiting on the stack.
struct Item {
    path: String,
    /// Depth below its search root, the root being 1 (for symlink cycle detection).
    level: usize,
    /// The name was not valid UTF-8: the runner only knows its lossy decoding, a path that does
    /// not exist.
    lossy: bool,
    /// The type `readdir` reported, if any.
    dtype: Option<FileType>,
    /// Set once a real `stat` of one entry of the same directory succeeded.
    siblings_ok: Rc<Cell<bool>>,
}

/// Paths at least this long get a real `stat`, which fails like the runner's near `PATH_MAX`.
const LONG_PATH: usize = 4000;

/// Calls `found` with each path the runner's globber yields for `patterns` (the expanded list,
/// implicit twins included), in the runner's order. Paths in `unsearched` are passed over with
/// everything below them, without a system call.
pub(crate) fn walk(
    patterns: &[Pattern],
    follow_symbolic_links: bool,
    unsearched: &[String],
    found: &mut dyn FnMut(&str) -> Result<(), HashFilesError>,
) -> Result<(), HashFilesError> {
    let mut stack = Vec::new();
    for root in search_paths(patterns) {
        match fs::symlink_metadata(&root) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error("inspect search root", &root, e)),
        }
        stack.insert(
            0,
            Item { path: root, level: 1, lossy: false, dtype: None, siblings_ok: Rc::new(Cell::new(false)) },
        );
    }

    let mut chain: Vec<PathBuf> = Vec::new();
    while let Some(item) = stack.pop() {
        if unsearched.iter().any(|dir| item.path.trim_end_matches('/') == dir) {
            continue;
        }
        let file = split_slashes(&item.path);
        let mut file_slash = file.clone();
        if !item.path.ends_with('/') {
            file_slash.push("");
        }
        let matched = match_all(patterns, &file, &file_slash);
        let partial =
            matched != 0 || patterns.iter().any(|p| !p.negate && p.partial_match(&item.path, &file));
        if !partial {
            continue;
        }

        if item.lossy {
            if follow_symbolic_links {
                continue; // `stat` gives ENOENT, which counts as a broken link
            }
            return Err(HashFilesError::InvalidName { path: item.path });
        }
        let path = Path::new(&item.path);
        // The runner stats every item that gets this far. For an entry that is not a symbolic
        // link, the type `readdir` gave is what that stat would say (with or without following
        // links); once a stat in the same directory succeeded, the only ways the others could
        // fail are races or a path too long, so the stat is skipped: it is most of the time.
        let known =
            item.dtype.filter(|t| !t.is_symlink() && item.siblings_ok.get() && item.path.len() < LONG_PATH);
        let is_dir = match known {
            Some(t) => t.is_dir(),
            None => {
                let meta = if follow_symbolic_links {
                    match fs::metadata(path) {
                        Ok(meta) => meta,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // broken link
                        Err(e) => return Err(io_error("stat", &item.path, e)),
                    }
                } else {
                    fs::symlink_metadata(path).map_err(|e| io_error("lstat", &item.path, e))?
                };
                item.siblings_ok.set(true);
                meta.is_dir()
            }
        };

        if is_dir {
            if follow_symbolic_links {
                let real = fs::canonicalize(path).map_err(|e| io_error("resolve", &item.path, e))?;
                chain.truncate(item.level - 1);
                if chain.contains(&real) {
                    continue; // symlink cycle
                }
                chain.push(real);
            }
            if matched & MATCH_DIRECTORY != 0 {
                found(&item.path)?;
            }
            let mut entries = fs::read_dir(path)
                .and_then(|entries| {
                    entries
                        .map(|e| e.map(|e| (e.file_name(), e.file_type().ok())))
                        .collect::<io::Result<Vec<(OsString, Option<FileType>)>>>()
                })
                .map_err(|e| io_error("list", &item.path, e))?;
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            let siblings_ok = Rc::new(Cell::new(false));
            let sep = if item.path.ends_with('/') { "" } else { "/" };
            for (name, dtype) in entries.into_iter().rev() {
                stack.push(Item {
                    path: format!("{}{sep}{}", item.path, name.to_string_lossy()),
                    level: item.level + 1,
                    lossy: name.to_str().is_none(),
                    dtype,
                    siblings_ok: Rc::clone(&siblings_ok),
                });
            }
        } else if matched & MATCH_FILE != 0 {
            found(&item.path)?;
        }
    }
    Ok(())
}

/// `patternHelper.match`: includes OR in, excludes AND out, in order.
fn match_all(patterns: &[Pattern], file: &[&str], file_slash: &[&str]) -> u8 {
    let mut result = 0;
    for p in patterns {
        if p.negate {
            if result != 0 {
                result &= !p.match_kind(file, file_slash);
            }
        } else {
            result |= p.match_kind(file, file_slash);
        }
    }
    result
}

/// `patternHelper.getSearchPaths`: the include patterns' search paths in order, without
/// duplicates and without paths below another include's search path.
pub(crate) fn search_paths(patterns: &[Pattern]) -> Vec<String> {
    let candidates: Vec<&str> =
        patterns.iter().filter(|p| !p.negate).map(|p| p.search_path.as_str()).collect();
    let mut result: Vec<String> = Vec::new();
    for &key in &candidates {
        if result.iter().any(|r| r == key) {
            continue;
        }
        let mut current = key;
        let mut has_ancestor = false;
        loop {
            let parent = dirname(current);
            if parent == current {
                break;
            }
            if candidates.contains(&parent) {
                has_ancestor = true;
                break;
            }
            current = parent;
        }
        if !has_ancestor {
            result.push(key.to_string());
        }
    }
    result
}

/// Node's `path.dirname` for the normalised absolute paths used here.
fn dirname(p: &str) -> &str {
    match p.rfind('/') {
        Some(0) => "/",
        Some(i) => &p[..i],
        None => p,
    }
}

fn io_error(action: &'static str, path: &str, source: io::Error) -> HashFilesError {
    HashFilesError::Walk { action, path: path.to_string(), source }
}
