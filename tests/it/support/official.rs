//! The official `@actions/cache@6.3.0`, provisioned from npm and driven by
//! `tests/interop/actions-cache.js`; the protocol and interop tests run it as a runner would.

use std::path::{Path, PathBuf};

use super::tools;

/// Where the official client and its driver script are.
pub struct Official {
    /// The toolkit's `lib/cache.js`.
    pub module: PathBuf,
    /// The Node driver: `save <path> <key>` / `restore <path> <key> [restore keys...]`.
    pub driver: PathBuf,
}

impl Official {
    pub fn provision() -> Official {
        let project = tools::npm_project("actions-cache", &["@actions/cache@6.3.0"]);
        let module = project.join("node_modules/@actions/cache/lib/cache.js");
        assert!(module.exists(), "{} is missing", module.display());
        let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/actions-cache.js");
        Official { module, driver }
    }
}
