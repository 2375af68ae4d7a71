//! hashFiles(): the runner's algorithm, byte for byte, so that our cache keys equal the keys a
//! workflow computes with `hashFiles(...)` (docs/design.md §2 and §4).
//!
//! The runner hands the patterns to a bundled node script built on `@actions/glob` 0.4.0 and
//! minimatch 3.1.2; this module reproduces that script on Unix. `pattern` builds and matches one
//! pattern, `walk` finds the files in the runner's order, and this file hashes them:
//! `sha256(sha256(file1) || sha256(file2) || ...)` in hex, or "" when no file matched.
//! The full algorithm, with its quirks, is in `docs/hashfiles.md`.

mod pattern;
mod walk;

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use pattern::{Pattern, js_trim};

/// Why hashFiles failed. Each case is one where the runner's hashFiles fails the step too.
#[derive(Debug, thiserror::Error)]
pub enum HashFilesError {
    #[error("hashFiles needs at least one argument")]
    NoArguments,
    #[error("hashFiles takes at most 255 arguments, got {count}: merge patterns into fewer arguments")]
    TooManyArguments { count: usize },
    #[error(
        "invalid hashFiles option '{option}': the only option is '--follow-symbolic-links', \
         and only as the first argument"
    )]
    InvalidOption { option: String },
    #[error("invalid hashFiles pattern '{pattern}': {reason}")]
    InvalidPattern { pattern: String, reason: String },
    #[error("cannot use the workspace '{}' as the hashFiles root: {source}", path.display())]
    Workspace { path: PathBuf, source: io::Error },
    #[error("'{}' is not valid UTF-8, which hashFiles cannot use: rename the directory", path.display())]
    NotUtf8 { path: PathBuf },
    #[error(
        "'{path}' has a name that is not valid UTF-8 and the patterns reach it; the runner cannot \
         open it and fails: rename it, or narrow the patterns so they do not reach it"
    )]
    InvalidName { path: String },
    #[error(
        "'{path}' matched the hashFiles patterns but is a dangling symbolic link (the runner \
         fails on it too): remove the link or exclude it with a '!' pattern"
    )]
    DanglingLink { path: String },
    #[error(
        "'{path}' matched the hashFiles patterns but is a FIFO: reading it would block (the \
         runner times out after 120 s and fails); exclude it with a '!' pattern"
    )]
    Fifo { path: String },
    #[error(
        "cannot {action} '{path}' while searching for hashFiles: {source} (the runner fails here \
         too): fix the permissions, or narrow the include patterns so the search does not reach \
         it (a '!' pattern does not stop the search)"
    )]
    Walk { action: &'static str, path: String, source: io::Error },
    #[error(
        "cannot {action} '{path}' for hashFiles: {source} (the runner fails here too): fix the \
         permissions or exclude the file with a '!' pattern"
    )]
    Io { action: &'static str, path: String, source: io::Error },
}

/// Checks one pattern line as the runner's hashFiles parses it; `Err` says why it would refuse
/// it (a lone `!`, a `.` or `..` segment, `~` without a home).
pub fn check_pattern(line: &str, home: Option<&Path>) -> Result<(), String> {
    let home = home.map(|h| h.to_string_lossy().into_owned());
    Pattern::new(line, "/", home.as_deref()).map(|_| ()).map_err(|e| e.to_string())
}

/// Mirrors the runner's argument handling: only the first argument may be an option,
/// `--follow-symbolic-links` (case-insensitive); any other leading `--x` is an error.
/// Returns the option and the patterns.
pub fn parse_args(args: &[String]) -> Result<(bool, Vec<String>), HashFilesError> {
    if args.is_empty() {
        return Err(HashFilesError::NoArguments);
    }
    if args.len() > 255 {
        return Err(HashFilesError::TooManyArguments { count: args.len() });
    }
    let first = &args[0];
    if first.starts_with("--") {
        if first.eq_ignore_ascii_case("--follow-symbolic-links") {
            return Ok((true, args[1..].to_vec()));
        }
        return Err(HashFilesError::InvalidOption { option: first.clone() });
    }
    Ok((false, args.to_vec()))
}

/// What the runner's `hashFiles(patterns...)` gives for `workspace`: 64 lowercase hex digits,
/// or an empty string when no file matched. `home` is what `~` expands to (the runner uses
/// `$HOME`); with `None`, a `~` pattern is an error. `follow_symbolic_links` is the
/// `--follow-symbolic-links` option (see [`parse_args`]).
///
/// Not reproduced: the runner's 120 s time limit (a slow run that the runner would fail
/// succeeds here), and Windows (`\` separators, case-insensitive matching, unsorted `readdir`).
pub fn hash_files(
    workspace: &Path,
    home: Option<&Path>,
    patterns: &[String],
    follow_symbolic_links: bool,
) -> Result<String, HashFilesError> {
    hash_files_outside(workspace, home, patterns, follow_symbolic_links, &[])
}

/// [`hash_files`] with the directories `unsearched` (absolute, or relative to `workspace`) left
/// out of the search altogether, as if they did not exist. The keys use it for the cached
/// directories, which their patterns exclude anyway: a `!` pattern alone does not stop the
/// runner's search, and walking a `.nox` of 100 000 files only to exclude each of them cost
/// seconds per step.
pub fn hash_files_outside(
    workspace: &Path,
    home: Option<&Path>,
    patterns: &[String],
    follow_symbolic_links: bool,
    unsearched: &[&Path],
) -> Result<String, HashFilesError> {
    // The runner's root is the process cwd, which is always a physical path.
    let root = fs::canonicalize(workspace)
        .map_err(|source| HashFilesError::Workspace { path: workspace.to_path_buf(), source })?;
    let root = utf8(&root)?;
    let home = home.map(utf8).transpose()?;

    let patterns = expand(&parse_patterns(patterns, root, home)?, root)?;
    // Spelled as the walk spells its paths: the physical root, then the names below it.
    let unsearched: Vec<String> = unsearched
        .iter()
        .filter_map(|dir| if dir.is_absolute() { dir.strip_prefix(workspace).ok() } else { Some(*dir) })
        .filter(|rel| !rel.as_os_str().is_empty())
        .map(|rel| format!("{root}/{}", rel.to_string_lossy().trim_end_matches('/')))
        .collect();

    let prefix = format!("{root}/");
    let mut outer = Sha256::new();
    let mut hashed_any = false;
    let mut buf = vec![0u8; 256 * 1024];
    walk::walk(&patterns, follow_symbolic_links, &unsearched, &mut |path| {
        if !path.starts_with(&prefix) {
            return Ok(()); // not under the workspace
        }
        let meta = fs::metadata(path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                HashFilesError::DanglingLink { path: path.into() }
            } else {
                io_error("stat", path, e)
            }
        })?;
        if meta.is_dir() {
            return Ok(());
        }
        if meta.file_type().is_fifo() {
            return Err(HashFilesError::Fifo { path: path.into() });
        }
        outer.update(hash_file(path, &mut buf)?);
        hashed_any = true;
        Ok(())
    })?;
    Ok(if hashed_any { hex::encode(outer.finalize()) } else { String::new() })
}

/// The pattern lines as `DefaultGlobber.create` reads them: joined with "\n", split again,
/// trimmed, without empty lines and `#` comments.
fn parse_patterns(args: &[String], root: &str, home: Option<&str>) -> Result<Vec<Pattern>, HashFilesError> {
    let text = args.join("\n");
    let mut patterns = Vec::new();
    for line in text.split('\n').map(js_trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if Pattern::has_divergent_brackets(line) {
            tracing::warn!(
                "hashFiles pattern '{line}' uses a POSIX class or an empty bracket such as '[!]'; \
                 it is matched like the runners do today (minimatch 3), which may change when \
                 runners update their bundled glob library"
            );
        }
        let pattern = Pattern::new(line, root, home).map_err(|e| invalid(line, e))?;
        patterns.push(pattern);
    }
    Ok(patterns)
}

/// Adds the implicit `P/**` twin after every pattern that does not end in `**` or that ended
/// with `/`, so that a matched directory brings its whole subtree.
fn expand(patterns: &[Pattern], root: &str) -> Result<Vec<Pattern>, HashFilesError> {
    let mut expanded = Vec::with_capacity(patterns.len() * 2);
    for p in patterns {
        expanded.push(p.clone());
        if p.trailing_separator || p.segments.last().is_none_or(|s| s.as_str() != "**") {
            let twin = p.twin(root).map_err(|e| invalid(&p.line, e))?;
            expanded.push(twin);
        }
    }
    Ok(expanded)
}

fn hash_file(path: &str, buf: &mut [u8]) -> Result<[u8; 32], HashFilesError> {
    let mut file = File::open(path).map_err(|e| io_error("open", path, e))?;
    let mut hasher = Sha256::new();
    loop {
        match file.read(buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_error("read", path, e)),
        }
    }
    Ok(hasher.finalize().into())
}

fn utf8(path: &Path) -> Result<&str, HashFilesError> {
    path.to_str().ok_or_else(|| HashFilesError::NotUtf8 { path: path.to_path_buf() })
}

fn invalid(pattern: &str, e: pattern::PatternError) -> HashFilesError {
    HashFilesError::InvalidPattern { pattern: pattern.to_string(), reason: e.to_string() }
}

fn io_error(action: &'static str, path: &str, source: io::Error) -> HashFilesError {
    HashFilesError::Io { action, path: path.to_string(), source }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_the_first_argument_is_an_option() {
        assert_eq!(parse_args(&args(&["a", "b"])).unwrap(), (false, args(&["a", "b"])));
        assert_eq!(parse_args(&args(&["--Follow-Symbolic-LINKS", "a"])).unwrap(), (true, args(&["a"])));
        assert_eq!(
            parse_args(&args(&["a", "--follow-symbolic-links"])).unwrap(),
            (false, args(&["a", "--follow-symbolic-links"]))
        );
        assert_eq!(parse_args(&args(&["--follow-symbolic-links"])).unwrap(), (true, vec![]));
        let err = parse_args(&args(&["--nope", "a"])).unwrap_err();
        assert!(err.to_string().contains("'--nope'"), "{err}");
        assert!(matches!(parse_args(&[]), Err(HashFilesError::NoArguments)));
        assert!(matches!(
            parse_args(&vec!["x".to_string(); 256]),
            Err(HashFilesError::TooManyArguments { count: 256 })
        ));
    }

    /// Leaving a directory out of the search gives the hash its `!dir/**` exclusion gives, and
    /// what lies in it (here a name that is not UTF-8, which fails the runner's search even
    /// below an excluded directory) no longer matters.
    #[test]
    fn unsearched_directories_are_as_excluded_and_never_read() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path();
        fs::create_dir_all(ws.join("pkg")).unwrap();
        fs::create_dir_all(ws.join(".nox/env")).unwrap();
        fs::write(ws.join("pyproject.toml"), "top").unwrap();
        fs::write(ws.join("pkg/pyproject.toml"), "pkg").unwrap();
        fs::write(ws.join(".nox/env/pyproject.toml"), "cached").unwrap();
        let patterns = args(&["**/pyproject.toml", "!.nox/**"]);
        let excluded = hash_files(ws, None, &patterns, false).unwrap();
        let nox = Path::new(".nox");
        assert_eq!(hash_files_outside(ws, None, &patterns, false, &[nox]).unwrap(), excluded);
        assert_eq!(hash_files_outside(ws, None, &patterns, false, &[&ws.join(".nox")]).unwrap(), excluded);
        assert_ne!(hash_files(ws, None, &args(&["**/pyproject.toml"]), false).unwrap(), excluded);

        use std::os::unix::ffi::OsStrExt;
        fs::write(ws.join(".nox/env").join(std::ffi::OsStr::from_bytes(b"bad-\xff")), "").unwrap();
        assert!(matches!(hash_files(ws, None, &patterns, false), Err(HashFilesError::InvalidName { .. })));
        assert_eq!(hash_files_outside(ws, None, &patterns, false, &[nox]).unwrap(), excluded);
    }

    #[test]
    fn no_match_is_empty_and_errors_name_the_pattern() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(hash_files(dir.path(), None, &args(&["# c", "", "x"]), false).unwrap(), "");
        let err = hash_files(dir.path(), None, &args(&["a/../b"]), false).unwrap_err();
        assert!(err.to_string().contains("'a/../b'"), "{err}");
    }
}
