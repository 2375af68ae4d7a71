//! Embeds a hash of the crate's sources into the binary, so `--version` tells which sources a
//! shipped binary was built from and a test can tell when `dist/` is stale.

include!("build/source_hash.rs");

fn main() {
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    for file in source_files(&root) {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rustc-env=UV_NOX_CACHE_SOURCE_HASH={}", source_hash(&root));
}
