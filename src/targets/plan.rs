//! One plan per configured target: its directory, what it is called inside the archive, the
//! path string its service-side version is computed from, and its keys — asked of each target's
//! [`Rules`](super::Rules), the same way for every target.

use std::path::{Path, PathBuf};

use super::Target;
use super::rules::{Pythons, TargetPlan};
use crate::archive;
use crate::config::Config;
use crate::hash_files;
use crate::key::{self, KeyParts};

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("hashing the key files of `{target}`: {source}")]
    HashFiles { target: &'static str, source: hash_files::HashFilesError },
    #[error(
        "the `{target}` key is {len} characters long; cache services accept at most {max} — shorten `key-suffix`"
    )]
    KeyTooLong { target: &'static str, len: usize, max: usize },
}

/// Builds the plans for every configured target, asking each interpreter once.
pub fn plans(cfg: &Config) -> Result<Vec<TargetPlan>, PlanError> {
    let dirs: Vec<(Target, PathBuf, &'static str)> = cfg
        .targets
        .iter()
        .map(|&target| {
            let (dir, source) = target.rules().dir(cfg);
            (target, dir, source)
        })
        .collect();
    let cached: Vec<&Path> = dirs.iter().map(|(_, dir, _)| dir.as_path()).collect();
    // Restores' staging directories (a live one, or one left by a killed run) hold copies of
    // cached trees, key files and all: the key search never looks inside them.
    let staging: Vec<PathBuf> = cached.iter().flat_map(|dir| crate::place::staging_siblings(dir)).collect();
    let unsearched: Vec<&Path> = cached.iter().copied().chain(staging.iter().map(PathBuf::as_path)).collect();
    let pythons = Pythons::new(cfg);
    dirs.iter()
        .map(|(target, dir, source)| plan(cfg, *target, &pythons, dir, source, &cached, &unsearched))
        .collect()
}

fn plan(
    cfg: &Config,
    target: Target,
    pythons: &Pythons,
    dir: &Path,
    dir_source: &'static str,
    cached: &[&Path],
    unsearched: &[&Path],
) -> Result<TargetPlan, PlanError> {
    let rules = target.rules();
    let interpreter = rules.interpreter(cfg, pythons);
    let hash = hash_files::hash_files_outside(
        &cfg.runner.workspace,
        cfg.runner.home.as_deref(),
        &key_file_patterns(cfg, target, cached),
        false,
        unsearched,
    )
    .map_err(|source| PlanError::HashFiles { target: target.name(), source })?;
    let key = KeyParts {
        target: target.name(),
        os: format!("{}-{}", key::sanitize(&cfg.runner.os), key::sanitize(&cfg.runner.os_release)),
        arch: key::sanitize(&cfg.runner.arch),
        fingerprint: rules.fingerprint(cfg, interpreter.as_ref()),
        suffix: cfg.key_suffix.clone(),
        hash: if hash.is_empty() { key::NO_KEY_FILES.to_string() } else { hash },
    };
    let primary = key.primary();
    if primary.len() > key::MAX_KEY_LEN {
        return Err(PlanError::KeyTooLong {
            target: target.name(),
            len: primary.len(),
            max: key::MAX_KEY_LEN,
        });
    }
    Ok(TargetPlan {
        target,
        archive_name: archive::name_relative_to(&cfg.runner.workspace, dir),
        version_path: rules.version_path(cfg, dir),
        dir: dir.to_path_buf(),
        dir_source,
        restore_keys: rules.restore_keys(cfg, &key),
        key,
        interpreter,
    })
}

/// The patterns hashed into `target`'s key, rooted at the working directory. The cached
/// directories themselves are excluded: envs and caches inside the workspace hold files such as
/// `pyproject.toml` and `requirements.txt` of their own, and must not move the key they are
/// stored under.
pub fn key_file_patterns(cfg: &Config, target: Target, cached: &[&Path]) -> Vec<String> {
    let mut patterns: Vec<String> = target.rules().key_files().into_iter().map(str::to_string).collect();
    patterns.extend(cfg.key_files.iter().cloned());
    let mut patterns: Vec<String> = patterns.iter().map(|p| rooted(cfg, p)).collect();
    patterns.extend(
        cached
            .iter()
            .filter_map(|dir| relative_glob(cfg, dir))
            .filter(|r| !r.is_empty())
            .map(|r| format!("!{r}/**")),
    );
    patterns
}

/// What a user should hear about the keys before anything is looked up, from the restore step
/// and from `uv-nox-cache key` alike: a target whose key files matched nothing (its key carries
/// `nofiles`), and a `key-files` line that matches no file, so it adds nothing to any key.
pub fn key_notices(cfg: &Config, plans: &[TargetPlan]) -> Vec<String> {
    let mut notices: Vec<String> = plans
        .iter()
        .filter(|plan| plan.key.hash == key::NO_KEY_FILES)
        .map(|plan| {
            format!(
                "{}: no key file matched (uv.lock, pyproject.toml, …); the key carries `nofiles`",
                plan.target.name()
            )
        })
        .collect();
    for pattern in cfg.key_files.iter().filter(|p| !p.starts_with('!')) {
        let matched = hash_files::hash_files(
            &cfg.runner.workspace,
            cfg.runner.home.as_deref(),
            &[rooted(cfg, pattern)],
            false,
        );
        if matched.is_ok_and(|hash| hash.is_empty()) {
            notices.push(format!(
                "`key-files`: `{pattern}` matches no file under {}, so it adds nothing to the keys; patterns \
                 are relative to `working-directory`",
                cfg.working_directory.display()
            ));
        }
    }
    notices
}

/// `pattern` (a `!` exclusion too) rooted at the working directory, as hashFiles takes it.
fn rooted(cfg: &Config, pattern: &str) -> String {
    match relative_glob(cfg, &cfg.working_directory).filter(|wd| !wd.is_empty()) {
        Some(wd) => match pattern.strip_prefix('!') {
            Some(rest) => format!("!{wd}/{}", rest.trim_start()),
            None => format!("{wd}/{pattern}"),
        },
        None => pattern.to_string(),
    }
}

/// `dir` relative to the workspace, glob characters escaped; `None` outside the workspace.
fn relative_glob(cfg: &Config, dir: &Path) -> Option<String> {
    dir.strip_prefix(&cfg.runner.workspace).ok().map(|r| escape_glob(&r.to_string_lossy().replace('\\', "/")))
}

/// Escapes glob characters so a directory name is matched literally.
fn escape_glob(text: &str) -> String {
    text.chars().fold(String::new(), |mut s, c| {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            s.push('\\');
        }
        s.push(c);
        s
    })
}
