//! hashFiles(): the runner's algorithm, byte for byte. Interface only for now.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum HashFilesError {
    #[error("{0}")]
    Todo(String),
}

/// What the runner's `hashFiles(patterns...)` gives for `workspace`: 64 lowercase hex digits,
/// or an empty string when no file matched.
pub fn hash_files(
    workspace: &Path,
    home: Option<&Path>,
    patterns: &[String],
    follow_symbolic_links: bool,
) -> Result<String, HashFilesError> {
    let _ = (workspace, home, patterns, follow_symbolic_links);
    Err(HashFilesError::Todo("hash_files".into()))
}

/// The runner's argument handling: only the first argument may be an option.
pub fn parse_args(args: &[String]) -> Result<(bool, Vec<String>), HashFilesError> {
    let _ = args;
    Err(HashFilesError::Todo("parse_args".into()))
}
