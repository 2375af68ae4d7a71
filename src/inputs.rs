//! The action's inputs as the runner hands them over: raw strings from `INPUT_*`, nothing
//! validated yet (that is `config.rs`'s job). An empty value counts as unset.

use crate::env;

/// Every input the action accepts, as declared in action.yml (docs/design.md §3).
pub const INPUT_NAMES: &[&str] = &[
    "targets",
    "working-directory",
    "key-files",
    "key-suffix",
    "python",
    "restore-keys",
    "save",
    "lookup-only",
    "fail-on-cache-miss",
    "uv-cache-dir",
    "uv-prune",
    "uv-max-size",
    "nox-envdir",
    "evict-project",
    "backend",
    "local-dir",
    "local-max-size",
    "s3-bucket",
    "s3-prefix",
    "s3-endpoint",
    "s3-region",
    "s3-path-style",
    "compression",
    "compression-level",
    "timeout",
];

/// The raw inputs, one optional string each.
#[derive(Debug, Default, Clone)]
pub struct RawInputs {
    pub targets: Option<String>,
    pub working_directory: Option<String>,
    pub key_files: Option<String>,
    pub key_suffix: Option<String>,
    pub python: Option<String>,
    pub restore_keys: Option<String>,
    pub save: Option<String>,
    pub lookup_only: Option<String>,
    pub fail_on_cache_miss: Option<String>,
    pub uv_cache_dir: Option<String>,
    pub uv_prune: Option<String>,
    pub uv_max_size: Option<String>,
    pub nox_envdir: Option<String>,
    pub evict_project: Option<String>,
    pub backend: Option<String>,
    pub local_dir: Option<String>,
    pub local_max_size: Option<String>,
    pub s3_bucket: Option<String>,
    pub s3_prefix: Option<String>,
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    pub s3_path_style: Option<String>,
    pub compression: Option<String>,
    pub compression_level: Option<String>,
    pub timeout: Option<String>,
}

impl RawInputs {
    /// Reads every input through `lookup` (the process environment in production, a map in
    /// tests). Values are trimmed; empty means unset.
    pub fn read(lookup: &dyn Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| {
            lookup(&env::input_var(name)).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
        };
        RawInputs {
            targets: get("targets"),
            working_directory: get("working-directory"),
            key_files: get("key-files"),
            key_suffix: get("key-suffix"),
            python: get("python"),
            restore_keys: get("restore-keys"),
            save: get("save"),
            lookup_only: get("lookup-only"),
            fail_on_cache_miss: get("fail-on-cache-miss"),
            uv_cache_dir: get("uv-cache-dir"),
            uv_prune: get("uv-prune"),
            uv_max_size: get("uv-max-size"),
            nox_envdir: get("nox-envdir"),
            evict_project: get("evict-project"),
            backend: get("backend"),
            local_dir: get("local-dir"),
            local_max_size: get("local-max-size"),
            s3_bucket: get("s3-bucket"),
            s3_prefix: get("s3-prefix"),
            s3_endpoint: get("s3-endpoint"),
            s3_region: get("s3-region"),
            s3_path_style: get("s3-path-style"),
            compression: get("compression"),
            compression_level: get("compression-level"),
            timeout: get("timeout"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn reads_hyphenated_names_and_treats_blank_as_unset() {
        let env: HashMap<&str, &str> =
            [("INPUT_KEY-FILES", " a\nb "), ("INPUT_KEY-SUFFIX", "   "), ("INPUT_TARGETS", "uv")].into();
        let raw = RawInputs::read(&|name| env.get(name).map(|v| v.to_string()));
        assert_eq!(raw.key_files.as_deref(), Some("a\nb"));
        assert_eq!(raw.key_suffix, None);
        assert_eq!(raw.targets.as_deref(), Some("uv"));
        assert_eq!(raw.python, None);
    }
}
