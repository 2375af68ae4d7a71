// The hash of the crate's sources that the binary embeds (`--version`) and the freshness test
// recomputes: SHA-256 over every source file's path and contents, in path order. Shared by
// `build.rs` and the tests through `include!`, so both always agree on what "the sources" are.

/// The files whose contents make the shipped binary what it is, relative to the crate root.
fn source_files(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = vec![root.join("Cargo.toml"), root.join("Cargo.lock"), root.join("build.rs")];
    walk(&root.join("src"), &mut files);
    walk(&root.join("build"), &mut files);
    files.sort();
    files
}

/// Hex SHA-256 of the sources under `root`, with line endings normalised to `\n`.
fn source_hash(root: &std::path::Path) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    for file in source_files(root) {
        let rel = file.strip_prefix(root).unwrap_or(&file).to_string_lossy().replace('\\', "/");
        let text = std::fs::read(&file).unwrap_or_default();
        let text: Vec<u8> = text.into_iter().filter(|&b| b != b'\r').collect();
        hasher.update(rel.as_bytes());
        hasher.update([0]);
        hasher.update((text.len() as u64).to_le_bytes());
        hasher.update(&text);
    }
    hex::encode(hasher.finalize())
}
