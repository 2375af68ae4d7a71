//! The validated configuration: every input parsed into a type, the runner's environment read
//! once, and the cache service chosen. Invalid input is the only error that fails the step, and
//! it is raised here, naming the input, the value and what is allowed.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::archive::{Compression, CompressionLevel, GZIP_LEVELS, ZSTD_LEVELS};
use crate::backend::artifact_cache::Reservation;
use crate::backend::aws_credentials::CredentialSource;
use crate::backend::local::Bound as LocalBound;
use crate::backend::s3::S3Settings;
use crate::backend::scope::Scope;
use crate::backend::{BackendKind, Secret};
use crate::env;
use crate::inputs::RawInputs;
use crate::targets::{self, Target};

/// Which fallback keys a restore may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreKeys {
    /// uv: prefix fallback (its cache is content-addressed, so partial hits are harmless);
    /// nox: exact only (a partial env is only safe after an exact sync).
    Auto,
    None,
    All,
}

/// When the post step saves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SavePolicy {
    Auto,
    Always,
    Never,
}

/// Whether the uv cache is pruned before saving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UvPrune {
    None,
    Ci,
}

pub use crate::backend::CacheMode;

/// Facts about the runner and the job, read from the environment once.
#[derive(Debug, Clone)]
pub struct RunnerEnv {
    pub workspace: PathBuf,
    pub temp: PathBuf,
    pub home: Option<PathBuf>,
    /// `RUNNER_OS`, or this machine's OS named the runner's way.
    pub os: String,
    /// The OS release: `ImageOS` on hosted runners, else `/etc/os-release`'s `ID` + `VERSION_ID`.
    pub os_release: String,
    /// `RUNNER_ARCH`, or this machine's architecture named the runner's way.
    pub arch: String,
    pub event_name: String,
    pub git_ref: String,
    pub debug: bool,
    pub token: Option<Secret>,
    pub output_file: Option<PathBuf>,
    pub state_file: Option<PathBuf>,
    pub env_file: Option<PathBuf>,
    pub summary_file: Option<PathBuf>,
    /// `UV_CACHE_DIR` as set for the job.
    pub uv_cache_dir_env: Option<PathBuf>,
    /// `UV_PYTHON_INSTALL_DIR` as set for the job.
    pub uv_python_install_dir_env: Option<PathBuf>,
    pub xdg_data_home: Option<PathBuf>,
    pub uv_link_mode: Option<String>,
    pub xdg_cache_home: Option<PathBuf>,
    /// `GITHUB_RUN_ID` and `GITHUB_RUN_ATTEMPT`: which run a `save: always` entry came from.
    pub run_id: Option<String>,
    pub run_attempt: Option<String>,
    /// `GITHUB_WORKFLOW_REF` (`owner/repo/.github/workflows/ci.yml@refs/heads/main`): the
    /// workflow file whose `nox` commands the reuse notice reads.
    pub workflow_ref: Option<String>,
}

/// Everything the flows need, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub targets: Vec<Target>,
    /// The project root, absolute.
    pub working_directory: PathBuf,
    pub key_files: Vec<String>,
    pub key_suffix: Option<String>,
    /// The `python` input; `None` means `python3` on PATH.
    pub python: Option<String>,
    pub restore_keys: RestoreKeys,
    pub save: SavePolicy,
    pub lookup_only: bool,
    pub fail_on_cache_miss: bool,
    pub uv_cache_dir: Option<PathBuf>,
    pub uv_prune: UvPrune,
    /// The `uv-max-size` input in bytes: the most the saved uv entry may hold.
    pub uv_max_size: Option<u64>,
    /// The nox envdir, absolute.
    pub nox_envdir: PathBuf,
    pub evict_project: bool,
    pub backend: BackendKind,
    /// Why `backend: auto` chose what it chose, for a notice.
    pub backend_reason: String,
    pub cache_mode: CacheMode,
    pub compression: Compression,
    /// The `compression-level` input: `auto`, or a level valid for `compression`.
    pub compression_level: CompressionLevel,
    pub timeout: Duration,
    pub runner: RunnerEnv,
}

/// An input the action cannot work with.
#[derive(Debug, thiserror::Error)]
#[error("invalid input `{input}`: {message}")]
pub struct ConfigError {
    pub input: &'static str,
    pub message: String,
}

fn invalid(input: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError { input, message: message.into() }
}

/// The longest `key-suffix` accepted; keys must stay under the services' 512 characters.
pub const MAX_KEY_SUFFIX: usize = 100;
/// The longest `timeout`, in seconds (six hours, a job's own limit on GitHub).
pub const MAX_TIMEOUT_SECS: u64 = 6 * 60 * 60;

impl Config {
    /// Validates `raw` against the environment seen through `lookup`; `cwd` stands in for a
    /// missing `GITHUB_WORKSPACE`.
    pub fn new(
        raw: &RawInputs,
        lookup: &dyn Fn(&str) -> Option<String>,
        cwd: &Path,
    ) -> Result<Self, ConfigError> {
        let runner = RunnerEnv::read(lookup, cwd);
        let working_directory = parse_working_directory(raw.working_directory.as_deref(), &runner.workspace)?;
        let nox_envdir = working_directory.join(envdir_path(raw.nox_envdir.as_deref().unwrap_or(".nox"))?);
        let (backend, backend_reason) = select_backend(raw, lookup, &runner)?;
        let compression = choice(
            "compression",
            raw.compression.as_deref(),
            Compression::Zstd,
            &[("zstd", Compression::Zstd), ("gzip", Compression::Gzip)],
        )?;
        Ok(Config {
            targets: parse_targets(raw.targets.as_deref().unwrap_or("uv nox"))?,
            key_files: parse_key_files(raw.key_files.as_deref(), runner.home.as_deref())?,
            key_suffix: parse_key_suffix(raw.key_suffix.as_deref())?,
            python: raw.python.clone(),
            restore_keys: choice(
                "restore-keys",
                raw.restore_keys.as_deref(),
                RestoreKeys::Auto,
                &[("auto", RestoreKeys::Auto), ("none", RestoreKeys::None), ("all", RestoreKeys::All)],
            )?,
            save: choice(
                "save",
                raw.save.as_deref(),
                SavePolicy::Auto,
                &[("auto", SavePolicy::Auto), ("always", SavePolicy::Always), ("never", SavePolicy::Never)],
            )?,
            lookup_only: boolean("lookup-only", raw.lookup_only.as_deref(), false)?,
            fail_on_cache_miss: boolean("fail-on-cache-miss", raw.fail_on_cache_miss.as_deref(), false)?,
            uv_cache_dir: parse_uv_cache_dir(raw.uv_cache_dir.as_deref(), &runner, &working_directory)?,
            uv_prune: choice(
                "uv-prune",
                raw.uv_prune.as_deref(),
                UvPrune::None,
                &[("none", UvPrune::None), ("ci", UvPrune::Ci)],
            )?,
            uv_max_size: raw.uv_max_size.as_deref().map(parse_size).transpose()?,
            evict_project: boolean("evict-project", raw.evict_project.as_deref(), true)?,
            cache_mode: cache_mode(lookup(env::ACTIONS_CACHE_MODE).as_deref()),
            compression,
            compression_level: parse_compression_level(raw.compression_level.as_deref(), compression)?,
            timeout: parse_timeout(raw.timeout.as_deref())?,
            working_directory,
            nox_envdir,
            backend,
            backend_reason,
            runner,
        })
    }
}

impl RunnerEnv {
    fn read(lookup: &dyn Fn(&str) -> Option<String>, cwd: &Path) -> Self {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let path = |name: &str| get(name).map(PathBuf::from);
        let workspace = path(env::GITHUB_WORKSPACE).unwrap_or_else(|| cwd.to_path_buf());
        RunnerEnv {
            workspace: if workspace.is_absolute() { workspace } else { cwd.join(workspace) },
            temp: path(env::RUNNER_TEMP).unwrap_or_else(std::env::temp_dir),
            home: path(env::HOME),
            os: get(env::RUNNER_OS).map_or_else(|| machine_os().to_string(), |os| runner_os_name(&os)),
            os_release: get(env::IMAGE_OS).unwrap_or_else(os_release),
            arch: get(env::RUNNER_ARCH)
                .map_or_else(|| machine_arch().to_string(), |arch| runner_arch_name(&arch)),
            event_name: get(env::GITHUB_EVENT_NAME).unwrap_or_default(),
            git_ref: get(env::GITHUB_REF).unwrap_or_default(),
            debug: get(env::RUNNER_DEBUG).as_deref() == Some("1"),
            token: get(env::ACTIONS_RUNTIME_TOKEN).map(Secret),
            output_file: path(env::GITHUB_OUTPUT),
            state_file: path(env::GITHUB_STATE),
            env_file: path(env::GITHUB_ENV),
            summary_file: path(env::GITHUB_STEP_SUMMARY),
            uv_cache_dir_env: path(env::UV_CACHE_DIR),
            uv_python_install_dir_env: path(env::UV_PYTHON_INSTALL_DIR),
            xdg_data_home: path(env::XDG_DATA_HOME),
            uv_link_mode: get(env::UV_LINK_MODE),
            xdg_cache_home: path(env::XDG_CACHE_HOME),
            run_id: get(env::GITHUB_RUN_ID),
            run_attempt: get(env::GITHUB_RUN_ATTEMPT),
            workflow_ref: get(env::GITHUB_WORKFLOW_REF),
        }
    }
}

/// "the targets are `uv-python`, `uv` and `nox`", from [`targets::ALL`].
fn known_targets() -> String {
    let names: Vec<String> = targets::ALL.iter().map(|t| format!("`{}`", t.name())).collect();
    match names.split_last() {
        Some((last, [])) => format!("the target is {last}"),
        Some((last, rest)) => format!("the targets are {} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// The targets, each once, in restore order (whatever order the input gives them in).
fn parse_targets(value: &str) -> Result<Vec<Target>, ConfigError> {
    let known = known_targets();
    let mut targets = Vec::new();
    for word in value.split_whitespace() {
        let Some(target) = Target::named(word) else {
            let message = if word.contains(',') {
                format!(
                    "`{value}` separates targets with commas; separate them with spaces \
                     (`targets: uv nox`); {known}"
                )
            } else if let Some(lower) = Target::named(&word.to_lowercase()) {
                format!("`{word}` is not a target: targets are lower case, write `{}`", lower.name())
            } else {
                format!("`{word}` is not a target; {known}, separated by spaces (`targets: uv nox`)")
            };
            return Err(invalid("targets", message));
        };
        if !targets.contains(&target) {
            targets.push(target);
        }
    }
    if targets.is_empty() {
        return Err(invalid(
            "targets",
            format!("no target given; {known}, separated by spaces (`targets: uv nox`)"),
        ));
    }
    targets.sort();
    Ok(targets)
}

/// The project root: a directory inside the workspace that exists. A misspelt or not yet
/// checked-out directory would otherwise give keys of no files and cache nothing useful.
fn parse_working_directory(value: Option<&str>, workspace: &Path) -> Result<PathBuf, ConfigError> {
    let value = value.unwrap_or(".");
    let dir = workspace.join(relative_path("working-directory", value)?);
    // The workspace itself is the runner's to provide; only a directory below it is checked.
    if dir != workspace && !dir.is_dir() {
        let what = if dir.exists() { "is not a directory" } else { "does not exist" };
        return Err(invalid(
            "working-directory",
            format!(
                "`{value}` {what} (looked at {}); give the project's directory relative to the \
                 workspace, and check it out before this step (the `path:` of actions/checkout)",
                dir.display()
            ),
        ));
    }
    Ok(dir)
}

/// The `uv-cache-dir` input, resolved. uv itself follows `UV_CACHE_DIR`, so an input naming
/// another directory would cache a directory uv never writes: both set and different is an
/// error rather than one silently winning (docs/decisions.md).
fn parse_uv_cache_dir(
    value: Option<&str>,
    runner: &RunnerEnv,
    working_directory: &Path,
) -> Result<Option<PathBuf>, ConfigError> {
    let Some(value) = value else { return Ok(None) };
    let dir = expand_home(value, runner, working_directory);
    if let Some(env_dir) = &runner.uv_cache_dir_env {
        let env_dir = working_directory.join(env_dir);
        if normalize(&env_dir) != normalize(&dir) {
            return Err(invalid(
                "uv-cache-dir",
                format!(
                    "`{value}` ({}) is not the directory `UV_CACHE_DIR` names ({}), which uv writes \
                     to; remove the input or the variable, or set both to the same directory",
                    dir.display(),
                    env_dir.display()
                ),
            ));
        }
    }
    Ok(Some(dir))
}

/// `path` without `.` components or a trailing slash (no file system access).
fn normalize(path: &Path) -> PathBuf {
    path.components().filter(|c| !matches!(c, Component::CurDir)).collect()
}

/// The `key-files` lines, each checked as hashFiles would parse it: a pattern the runner refuses
/// is a mistake in the workflow, not cache trouble.
fn parse_key_files(value: Option<&str>, home: Option<&Path>) -> Result<Vec<String>, ConfigError> {
    let patterns = lines(value);
    for pattern in &patterns {
        crate::hash_files::check_pattern(pattern, home)
            .map_err(|e| invalid("key-files", format!("`{pattern}` is not a hashFiles pattern: {e}")))?;
    }
    Ok(patterns)
}

fn parse_key_suffix(value: Option<&str>) -> Result<Option<String>, ConfigError> {
    let Some(value) = value else { return Ok(None) };
    if value.chars().count() > MAX_KEY_SUFFIX {
        return Err(invalid(
            "key-suffix",
            format!(
                "`{value}` is {} characters long; at most {MAX_KEY_SUFFIX} are allowed",
                value.chars().count()
            ),
        ));
    }
    if value.contains(',') || value.chars().any(char::is_control) {
        return Err(invalid(
            "key-suffix",
            format!(
                "`{}` holds a comma or a control character, which cache keys cannot carry; write it \
                 without them, e.g. `{}`",
                value.escape_debug(),
                value.replace(',', "-").chars().filter(|c| !c.is_control()).collect::<String>()
            ),
        ));
    }
    Ok(Some(value.to_string()))
}

fn boolean(input: &'static str, value: Option<&str>, default: bool) -> Result<bool, ConfigError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(_) => {
            Err(invalid(input, format!("`{}` is not a boolean; allowed: true, false", value.unwrap())))
        }
    }
}

fn choice<T: Copy>(
    input: &'static str,
    value: Option<&str>,
    default: T,
    allowed: &[(&str, T)],
) -> Result<T, ConfigError> {
    let Some(value) = value else { return Ok(default) };
    allowed.iter().find(|(name, _)| name.eq_ignore_ascii_case(value)).map(|(_, v)| *v).ok_or_else(|| {
        let names: Vec<&str> = allowed.iter().map(|(name, _)| *name).collect();
        invalid(input, format!("`{value}` is not allowed; allowed: {}", names.join(", ")))
    })
}

/// `auto`, or a whole number in the range of the chosen compression.
fn parse_compression_level(
    value: Option<&str>,
    compression: Compression,
) -> Result<CompressionLevel, ConfigError> {
    let Some(value) = value.map(str::trim).filter(|v| !v.eq_ignore_ascii_case("auto")) else {
        return Ok(CompressionLevel::Auto);
    };
    let (range, name) = match compression {
        Compression::Zstd => (ZSTD_LEVELS, "zstd"),
        Compression::Gzip => (GZIP_LEVELS, "gzip"),
    };
    match value.parse::<i32>() {
        Ok(level) if range.contains(&level) => Ok(CompressionLevel::Fixed(level)),
        _ => Err(invalid(
            "compression-level",
            format!(
                "`{value}` is not `auto` or a {name} level from {} to {}; use `auto` to let the \
                 level follow the upload",
                range.start(),
                range.end()
            ),
        )),
    }
}

/// A size such as `2GB`, `500MB`, `1.5GiB` or a plain number of bytes: `kB`, `MB`, `GB`, `TB`
/// are powers of 1000, `KiB`, `MiB`, `GiB`, `TiB` of 1024 (case-insensitive).
fn parse_size(value: &str) -> Result<u64, ConfigError> {
    let bad = || {
        invalid(
            "uv-max-size",
            format!("`{value}` is not a size; write a number with a unit, such as `2GB` or `500MB`"),
        )
    };
    let split = value.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(value.len());
    let (number, unit) = (value[..split].trim(), value[split..].trim());
    let number: f64 = number.parse().map_err(|_| bad())?;
    let scale: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" | "t" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let bytes = (number * scale).round();
    if !(1.0..=u64::MAX as f64).contains(&bytes) {
        return Err(bad());
    }
    Ok(bytes as u64)
}

fn parse_timeout(value: Option<&str>) -> Result<Duration, ConfigError> {
    let Some(value) = value else { return Ok(Duration::from_secs(600)) };
    match value.parse::<u64>() {
        Ok(secs) if (1..=MAX_TIMEOUT_SECS).contains(&secs) => Ok(Duration::from_secs(secs)),
        _ => Err(invalid(
            "timeout",
            format!("`{value}` is not a number of seconds from 1 to {MAX_TIMEOUT_SECS}"),
        )),
    }
}

/// The nox envdir: relative to the working directory (without `..`), or absolute, for runners
/// whose workspace moves from job to job while envs must stay at the path they were built at.
fn envdir_path(value: &str) -> Result<PathBuf, ConfigError> {
    let path = Path::new(value);
    if path.is_absolute() && !path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Ok(path.to_path_buf());
    }
    relative_path("nox-envdir", value)
}

/// A path inside the workspace: relative, without `..`.
fn relative_path(input: &'static str, value: &str) -> Result<PathBuf, ConfigError> {
    let path = Path::new(value);
    if path.is_absolute()
        || path.components().any(|c| matches!(c, Component::ParentDir | Component::Prefix(_)))
    {
        return Err(invalid(
            input,
            format!("`{value}` leaves the workspace; give a path relative to the workspace, without `..`"),
        ));
    }
    Ok(path.components().filter(|c| !matches!(c, Component::CurDir)).collect())
}

fn lines(value: Option<&str>) -> Vec<String> {
    value.unwrap_or_default().lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
}

fn expand_home(value: &str, runner: &RunnerEnv, base: &Path) -> PathBuf {
    let path = match (value.strip_prefix("~/"), &runner.home) {
        (Some(rest), Some(home)) => home.join(rest),
        _ if value == "~" => runner.home.clone().unwrap_or_else(|| PathBuf::from(value)),
        _ => PathBuf::from(value),
    };
    if path.is_absolute() { path } else { base.join(path) }
}

fn cache_mode(value: Option<&str>) -> CacheMode {
    match value {
        Some("none") => CacheMode { read: false, write: false },
        Some("read") => CacheMode { read: true, write: false },
        Some("write-only") => CacheMode { read: false, write: true },
        _ => CacheMode { read: true, write: true },
    }
}

/// `@actions/cache`'s `isGhes`: any server other than github.com, *.ghe.com or *.localhost.
pub fn is_ghes(server_url: Option<&str>) -> bool {
    let url = server_url.unwrap_or("https://github.com");
    let host = url.split("://").nth(1).unwrap_or(url).split(['/', ':']).next().unwrap_or("");
    let host = host.trim_end().to_ascii_uppercase();
    !(host == "GITHUB.COM" || host.ends_with(".GHE.COM") || host.ends_with(".LOCALHOST"))
}

/// Chooses the cache service (docs/backends.md). An explicit `backend:` always wins, and fails
/// the step when what it needs is missing. `backend: auto` takes the first of, in order: s3
/// when a bucket is named (the `s3-bucket` input or `UV_NOX_CACHE_S3_BUCKET`); the runner's
/// cache service as `@actions/cache` chooses it (docs/protocol.md §1.2) — v2 when the runner
/// asks for it (`ACTIONS_CACHE_SERVICE_V2`, not on GHES-style servers), else v1 — when the
/// runner passed its URL; the local store.
fn select_backend(
    raw: &RawInputs,
    lookup: &dyn Fn(&str) -> Option<String>,
    runner: &RunnerEnv,
) -> Result<(BackendKind, String), ConfigError> {
    let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
    let token = runner.token.clone().unwrap_or_else(|| Secret(String::new()));
    // The runners' own servers take a reservation without a size, so the upload can overlap
    // packing; GHES is left to the toolkit's way (docs/decisions.md).
    let runners_own = [env::ACT, env::FORGEJO_ACTIONS, env::GITEA_ACTIONS]
        .iter()
        .any(|name| get(name).is_some_and(|v| v.eq_ignore_ascii_case("true")));
    let reservation = if runners_own { Reservation::WhilePacking } else { Reservation::SizeFirst };
    let v1 = get(env::ACTIONS_CACHE_URL).map(|url| BackendKind::ArtifactCache {
        url,
        token: token.clone(),
        reservation,
    });
    let v2 = get(env::ACTIONS_RESULTS_URL).map(|url| BackendKind::Github { url, token: token.clone() });
    let local_bound = parse_local_max_size(raw.local_max_size.as_deref())?;
    let s3 = s3_settings(raw, lookup, runner)?;
    let local = || {
        let default = runner
            .xdg_cache_home
            .clone()
            .or_else(|| runner.home.as_ref().map(|h| h.join(".cache")))
            .unwrap_or_else(|| runner.temp.clone())
            .join("uv-nox-cache");
        let root =
            raw.local_dir.as_deref().map(|d| expand_home(d, runner, &runner.workspace)).unwrap_or(default);
        BackendKind::Local { root, scope: Scope::from_env(&get), bound: local_bound }
    };
    let missing = |name: &str, var: &str| {
        invalid(
            "backend",
            format!(
                "`{name}` needs {var}, which the runner passes to node actions only; \
                 use `backend: auto` (falls back to the local store) or `backend: local`"
            ),
        )
    };
    let named = |name: &str| format!("`backend: {name}`");
    let backends = ["auto", "github", "artifactcache", "local", "s3"].map(|name| (name, name));
    match choice("backend", raw.backend.as_deref(), "auto", &backends)? {
        "github" => Ok((v2.ok_or_else(|| missing("github", env::ACTIONS_RESULTS_URL))?, named("github"))),
        "artifactcache" => {
            Ok((v1.ok_or_else(|| missing("artifactcache", env::ACTIONS_CACHE_URL))?, named("artifactcache")))
        }
        "local" => Ok((local(), named("local"))),
        "s3" => match s3 {
            Some(settings) => Ok((BackendKind::S3(Box::new(settings)), named("s3"))),
            None => Err(invalid(
                "backend",
                "`s3` needs a bucket: set the `s3-bucket` input, or UV_NOX_CACHE_S3_BUCKET on the runner",
            )),
        },
        _ => {
            let wants_v2 = !is_ghes(get(env::GITHUB_SERVER_URL).as_deref())
                && get(env::ACTIONS_CACHE_SERVICE_V2).is_some();
            let auto = [
                s3.map(|settings| {
                    let why = format!("a bucket is configured ({})", settings.bucket);
                    (BackendKind::S3(Box::new(settings)), why)
                }),
                v2.filter(|_| wants_v2).map(|kind| (kind, "the runner offers the v2 cache service".into())),
                v1.filter(|_| !wants_v2).map(|kind| (kind, "the runner offers the v1 cache service".into())),
            ];
            let why_local = "no runner cache service is configured (no ACTIONS_CACHE_URL / ACTIONS_RESULTS_URL), \
                             so the local store is used";
            Ok(auto.into_iter().flatten().next().unwrap_or_else(|| (local(), why_local.into())))
        }
    }
}

/// `local-max-size`: a size, or `none` for no bound; unset is the default bound.
fn parse_local_max_size(value: Option<&str>) -> Result<LocalBound, ConfigError> {
    let Some(value) = value else { return Ok(LocalBound::Default) };
    if value.eq_ignore_ascii_case("none") {
        return Ok(LocalBound::None);
    }
    crate::byte_size::parse(value).filter(|bytes| *bytes > 0).map(LocalBound::Bytes).ok_or_else(|| {
        invalid(
            "local-max-size",
            format!(
                "`{value}` is not a size; give {}, or `none` to never remove entries",
                crate::byte_size::FORMS
            ),
        )
    })
}

/// This machine's OS named as `RUNNER_OS` names it.
fn machine_os() -> &'static str {
    match std::env::consts::OS {
        "linux" => "Linux",
        "macos" => "macOS",
        "windows" => "Windows",
        other => other,
    }
}

/// This machine's architecture named as `RUNNER_ARCH` names it.
fn machine_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "X64",
        "aarch64" => "ARM64",
        "x86" => "X86",
        "arm" => "ARM",
        other => other,
    }
}

/// `RUNNER_OS` in GitHub's spelling: Gitea's act sets Go's names (`linux`), which would give
/// the same machine another key than act and the Forgejo runner give it.
fn runner_os_name(os: &str) -> String {
    match os {
        "linux" => "Linux".into(),
        "darwin" => "macOS".into(),
        "windows" => "Windows".into(),
        other => other.into(),
    }
}

/// `RUNNER_ARCH` in GitHub's spelling: Gitea's act sets Go's names (`amd64`, `arm64`).
fn runner_arch_name(arch: &str) -> String {
    match arch {
        "amd64" => "X64".into(),
        "arm64" => "ARM64".into(),
        "386" => "X86".into(),
        "arm" => "ARM".into(),
        other => other.into(),
    }
}

/// `ID` + `VERSION_ID` from `/etc/os-release` (`debian12`, `ubuntu24.04`), or empty.
fn os_release() -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            .map(|v| v.trim().trim_matches('"').to_string())
            .unwrap_or_default()
    };
    format!("{}{}", field("ID"), field("VERSION_ID"))
}

/// The `s3-*` inputs, each falling back to its `UV_NOX_CACHE_S3_*` variable; `None` when no
/// bucket is named either way.
fn s3_settings(
    raw: &RawInputs,
    lookup: &dyn Fn(&str) -> Option<String>,
    runner: &RunnerEnv,
) -> Result<Option<S3Settings>, ConfigError> {
    let get = |name: &str| lookup(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let setting = |input: Option<&String>, suffix: &'static str| {
        input
            .cloned()
            .map(|v| (v, ""))
            .or_else(|| get(&format!("{}{suffix}", env::S3_ENV_PREFIX)).map(|v| (v, suffix)))
    };
    let from = |suffix: &str| {
        if suffix.is_empty() { String::new() } else { format!(" (from {}{suffix})", env::S3_ENV_PREFIX) }
    };
    let Some((bucket, source)) = setting(raw.s3_bucket.as_ref(), "BUCKET") else { return Ok(None) };
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !valid_bucket {
        return Err(invalid(
            "s3-bucket",
            format!(
                "`{bucket}`{} is not a bucket name; use 3 to 63 lower-case letters, digits, `.` and `-`",
                from(source)
            ),
        ));
    }
    let prefix = setting(raw.s3_prefix.as_ref(), "PREFIX");
    if let Some((prefix, source)) = &prefix
        && prefix.starts_with('/')
    {
        return Err(invalid(
            "s3-prefix",
            format!("`{prefix}`{} starts with `/`; give it without, e.g. `uv-nox-cache/`", from(source)),
        ));
    }
    let region = setting(raw.s3_region.as_ref(), "REGION")
        .map(|(v, _)| v)
        .or_else(|| get("AWS_REGION"))
        .or_else(|| get("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| "us-east-1".into());
    let endpoint = match setting(raw.s3_endpoint.as_ref(), "ENDPOINT") {
        Some((url, source)) if !(url.starts_with("http://") || url.starts_with("https://")) => {
            return Err(invalid(
                "s3-endpoint",
                format!("`{url}`{} is not an http:// or https:// URL", from(source)),
            ));
        }
        Some((url, _)) => Some(url),
        None => get("AWS_ENDPOINT_URL_S3"),
    };
    let path_style = match setting(raw.s3_path_style.as_ref(), "PATH_STYLE") {
        Some((value, source)) => boolean("s3-path-style", Some(&value), false)
            .map_err(|e| invalid(e.input, format!("{}{}", e.message, from(source))))?,
        None => endpoint.is_some(),
    };
    Ok(Some(S3Settings {
        bucket,
        prefix: prefix.map(|(v, _)| v).unwrap_or_else(|| "uv-nox-cache/".into()),
        endpoint: endpoint.unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com")),
        credentials: CredentialSource::from_env(&get, runner.home.as_deref(), &region),
        region,
        path_style,
        scope: Scope::from_env(&get),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let lookup = |name: &str| map.get(name).cloned();
        Config::new(&RawInputs::read(&lookup), &lookup, Path::new("/ws"))
    }

    #[test]
    fn sizes_are_read_with_their_units() {
        assert_eq!(parse_size("2GB").unwrap(), 2_000_000_000);
        assert_eq!(parse_size("500 MB").unwrap(), 500_000_000);
        assert_eq!(parse_size("1.5GiB").unwrap(), 1_610_612_736);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        for bad in ["lots", "2 parsecs", "0GB", "-1GB", "GB"] {
            let err = parse_size(bad).unwrap_err().to_string();
            assert!(err.contains("uv-max-size") && err.contains(bad), "{err}");
        }
        let cfg = config(&[("INPUT_UV-MAX-SIZE", "2GB")]).unwrap();
        assert_eq!(cfg.uv_max_size, Some(2_000_000_000));
    }

    fn s3(cfg: &Config) -> &S3Settings {
        match &cfg.backend {
            BackendKind::S3(settings) => settings,
            other => panic!("not s3: {other:?}"),
        }
    }

    /// A fleet admin's runner variables turn `backend: auto` into S3, with the runner's scope.
    #[test]
    fn runner_variables_configure_the_s3_backend() {
        let dir = tempfile::tempdir().unwrap();
        let event = dir.path().join("event.json");
        std::fs::write(&event, r#"{"repository":{"default_branch":"trunk"}}"#).unwrap();
        let event = event.display().to_string();
        let cfg = config(&[
            ("UV_NOX_CACHE_S3_BUCKET", "fleet-cache"),
            ("UV_NOX_CACHE_S3_ENDPOINT", "http://minio:9000"),
            ("ACTIONS_CACHE_URL", "http://runner/"),
            ("AWS_REGION", "eu-central-1"),
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("GITHUB_REPOSITORY", "o/r"),
            ("GITHUB_REF", "refs/pull/3/merge"),
            ("GITHUB_BASE_REF", "release"),
            ("GITHUB_EVENT_PATH", &event),
        ])
        .unwrap();
        let settings = s3(&cfg);
        assert_eq!(settings.bucket, "fleet-cache");
        assert_eq!(
            (settings.endpoint.as_str(), settings.region.as_str()),
            ("http://minio:9000", "eu-central-1")
        );
        assert!(settings.path_style, "a custom endpoint defaults to path style");
        assert_eq!(settings.prefix, "uv-nox-cache/");
        assert_eq!(settings.scope.own_ref, "refs/pull/3/merge");
        assert_eq!(settings.scope.fallback_refs, ["refs/heads/release", "refs/heads/trunk"]);
        assert!(cfg.backend_reason.contains("fleet-cache"));

        // Inputs win over the variables; AWS itself is virtual-host style.
        let cfg = config(&[
            ("UV_NOX_CACHE_S3_BUCKET", "fleet-cache"),
            ("INPUT_S3-BUCKET", "other.bucket"),
            ("INPUT_S3-PREFIX", "ci/"),
        ])
        .unwrap();
        let settings = s3(&cfg);
        assert_eq!((settings.bucket.as_str(), settings.prefix.as_str()), ("other.bucket", "ci/"));
        assert_eq!(settings.endpoint, "https://s3.us-east-1.amazonaws.com");
        assert!(!settings.path_style);
    }

    #[test]
    fn bad_s3_settings_name_the_input_and_the_variable() {
        let error = config(&[("UV_NOX_CACHE_S3_BUCKET", "Bad_Bucket")]).unwrap_err();
        assert_eq!(error.input, "s3-bucket");
        assert!(error.message.contains("UV_NOX_CACHE_S3_BUCKET"), "{error}");
        let error =
            config(&[("INPUT_S3-BUCKET", "ok-bucket"), ("INPUT_S3-ENDPOINT", "minio:9000")]).unwrap_err();
        assert_eq!(error.input, "s3-endpoint");
        let error =
            config(&[("INPUT_S3-BUCKET", "ok-bucket"), ("UV_NOX_CACHE_S3_PATH_STYLE", "yes")]).unwrap_err();
        assert_eq!(error.input, "s3-path-style");
        let error = config(&[("INPUT_BACKEND", "s3")]).unwrap_err();
        assert_eq!(error.input, "backend");
        assert!(error.message.contains("UV_NOX_CACHE_S3_BUCKET"), "{error}");
    }

    #[test]
    fn an_absolute_nox_envdir_is_taken_as_it_is() {
        let cfg = config(&[("INPUT_NOX-ENVDIR", "/var/envs/demo")]).unwrap();
        assert_eq!(cfg.nox_envdir, PathBuf::from("/var/envs/demo"));
    }

    #[test]
    fn runner_os_and_arch_in_gos_spelling_are_named_as_github_names_them() {
        let cfg = config(&[("RUNNER_OS", "linux"), ("RUNNER_ARCH", "amd64")]).unwrap();
        assert_eq!((cfg.runner.os.as_str(), cfg.runner.arch.as_str()), ("Linux", "X64"));
        let cfg = config(&[("RUNNER_OS", "macOS"), ("RUNNER_ARCH", "ARM64")]).unwrap();
        assert_eq!((cfg.runner.os.as_str(), cfg.runner.arch.as_str()), ("macOS", "ARM64"));
    }

    #[test]
    fn defaults_follow_the_design() {
        let cfg = config(&[("HOME", "/home/u")]).unwrap();
        assert_eq!(cfg.targets, vec![targets::uv::TARGET, targets::nox::TARGET]);
        assert_eq!(cfg.nox_envdir, PathBuf::from("/ws/.nox"));
        assert_eq!(cfg.restore_keys, RestoreKeys::Auto);
        assert_eq!(cfg.save, SavePolicy::Auto);
        assert!(cfg.evict_project && !cfg.lookup_only && !cfg.fail_on_cache_miss);
        assert_eq!(cfg.compression, Compression::Zstd);
        assert_eq!(cfg.compression_level, CompressionLevel::Auto);
        assert_eq!(cfg.timeout, Duration::from_secs(600));
        assert!(
            matches!(&cfg.backend, BackendKind::Local { root, .. } if root == Path::new("/home/u/.cache/uv-nox-cache"))
        );
    }

    #[test]
    fn each_bad_value_names_its_input() {
        for (input, value) in [
            ("INPUT_TARGETS", "uv pip"),
            ("INPUT_LOOKUP-ONLY", "yes"),
            ("INPUT_EVICT-PROJECT", "1"),
            ("INPUT_FAIL-ON-CACHE-MISS", "maybe"),
            ("INPUT_BACKEND", "s3"),
            ("INPUT_KEY-SUFFIX", &"x".repeat(MAX_KEY_SUFFIX + 1)),
            ("INPUT_KEY-SUFFIX", "a,b"),
            ("INPUT_RESTORE-KEYS", "some"),
            ("INPUT_SAVE", "sometimes"),
            ("INPUT_UV-PRUNE", "all"),
            ("INPUT_COMPRESSION", "xz"),
            ("INPUT_COMPRESSION-LEVEL", "20"),
            ("INPUT_COMPRESSION-LEVEL", "fast"),
            ("INPUT_TIMEOUT", "0"),
            ("INPUT_TIMEOUT", "ten"),
            ("INPUT_WORKING-DIRECTORY", "../elsewhere"),
            ("INPUT_NOX-ENVDIR", "/abs/../.nox"),
            ("INPUT_NOX-ENVDIR", "../.nox"),
            ("INPUT_KEY-FILES", "uv.lock\n!"),
            ("INPUT_KEY-FILES", "../other/uv.lock"),
        ] {
            let err = config(&[(input, value)]).expect_err(input);
            let name = input.strip_prefix("INPUT_").unwrap().to_lowercase();
            assert_eq!(err.input, name, "{input}={value}: {err}");
            assert!(err.to_string().contains(&format!("`{name}`")), "{err}");
        }
    }

    #[test]
    fn compression_level_is_auto_or_a_level_of_the_chosen_compression() {
        let level = |pairs: &[(&str, &str)]| config(pairs).map(|cfg| cfg.compression_level);
        assert_eq!(level(&[("INPUT_COMPRESSION-LEVEL", "AUTO")]).unwrap(), CompressionLevel::Auto);
        assert_eq!(level(&[("INPUT_COMPRESSION-LEVEL", "-7")]).unwrap(), CompressionLevel::Fixed(-7));
        assert_eq!(level(&[("INPUT_COMPRESSION-LEVEL", "19")]).unwrap(), CompressionLevel::Fixed(19));
        let gzip = [("INPUT_COMPRESSION", "gzip"), ("INPUT_COMPRESSION-LEVEL", "9")];
        assert_eq!(level(&gzip).unwrap(), CompressionLevel::Fixed(9));
        let err = level(&[("INPUT_COMPRESSION", "gzip"), ("INPUT_COMPRESSION-LEVEL", "19")]).unwrap_err();
        assert!(err.to_string().contains("gzip level from 1 to 9"), "{err}");
    }

    #[test]
    fn working_directory_moves_the_envdir() {
        let ws = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(ws.path().join("sub/proj")).unwrap();
        let ws_var = ws.path().to_str().unwrap();
        let cfg = config(&[
            ("GITHUB_WORKSPACE", ws_var),
            ("INPUT_WORKING-DIRECTORY", "./sub/proj"),
            ("INPUT_NOX-ENVDIR", "envs"),
        ])
        .unwrap();
        assert_eq!(cfg.working_directory, ws.path().join("sub/proj"));
        assert_eq!(cfg.nox_envdir, ws.path().join("sub/proj/envs"));
    }

    #[test]
    fn a_working_directory_that_is_not_there_is_an_error() {
        let ws = tempfile::tempdir().unwrap();
        std::fs::write(ws.path().join("file"), "x").unwrap();
        let ws_var = ws.path().to_str().unwrap();
        for (value, says) in [("does-not-exist", "does not exist"), ("file", "is not a directory")] {
            let err =
                config(&[("GITHUB_WORKSPACE", ws_var), ("INPUT_WORKING-DIRECTORY", value)]).unwrap_err();
            assert_eq!(err.input, "working-directory");
            let text = err.to_string();
            assert!(
                text.contains(&format!("`{value}` {says}")) && text.contains("actions/checkout"),
                "{text}"
            );
        }
        // The workspace itself is not checked: the runner provides it.
        assert!(config(&[("INPUT_WORKING-DIRECTORY", ".")]).is_ok());
    }

    #[test]
    fn targets_errors_say_how_targets_are_separated() {
        let err = config(&[("INPUT_TARGETS", "uv,nox")]).unwrap_err().to_string();
        assert!(
            err.contains("`uv,nox` separates targets with commas") && err.contains("`targets: uv nox`"),
            "{err}"
        );
        let err = config(&[("INPUT_TARGETS", "uv pip")]).unwrap_err().to_string();
        assert!(err.contains("`pip` is not a target") && err.contains("separated by spaces"), "{err}");
    }

    #[test]
    fn targets_are_restored_pythons_first_whatever_the_input_order() {
        let cfg = config(&[("INPUT_TARGETS", "nox uv-python uv nox")]).unwrap();
        assert_eq!(cfg.targets, targets::ALL);
        let err = config(&[("INPUT_TARGETS", "uv python")]).unwrap_err().to_string();
        assert!(err.contains("`python` is not a target") && err.contains("`uv-python`"), "{err}");
    }

    #[test]
    fn uv_cache_dir_must_agree_with_uv_cache_dir_env() {
        let home = [("HOME", "/home/u")];
        let err = config(&[home[0], ("UV_CACHE_DIR", "/tmp/uv"), ("INPUT_UV-CACHE-DIR", "~/.cache/uv")])
            .unwrap_err();
        assert_eq!(err.input, "uv-cache-dir");
        let text = err.to_string();
        assert!(
            text.contains("/home/u/.cache/uv") && text.contains("/tmp/uv") && text.contains("UV_CACHE_DIR"),
            "{text}"
        );
        // The same directory written two ways is no conflict (the post step sees the
        // UV_CACHE_DIR the main step exported).
        let cfg =
            config(&[home[0], ("UV_CACHE_DIR", "/home/u/.cache/uv/"), ("INPUT_UV-CACHE-DIR", "~/.cache/uv")])
                .unwrap();
        assert_eq!(cfg.uv_cache_dir, Some(PathBuf::from("/home/u/.cache/uv")));
        assert!(config(&[home[0], ("UV_CACHE_DIR", "/tmp/uv")]).is_ok());
        assert!(config(&[home[0], ("INPUT_UV-CACHE-DIR", "/tmp/uv")]).is_ok());
    }

    /// What `vars` choose: the backend's kind, as its label.
    fn chosen(vars: &[(&str, &str)]) -> &'static str {
        match config(vars).unwrap().backend {
            BackendKind::S3(_) => "s3",
            BackendKind::Github { .. } => "github",
            BackendKind::ArtifactCache { .. } => "artifactcache",
            BackendKind::Local { .. } => "local",
        }
    }

    const V1: (&str, &str) = ("ACTIONS_CACHE_URL", "http://c/");
    const V2: (&str, &str) = ("ACTIONS_RESULTS_URL", "http://r/");
    const WANTS_V2: (&str, &str) = ("ACTIONS_CACHE_SERVICE_V2", "True");
    const BUCKET: (&str, &str) = ("UV_NOX_CACHE_S3_BUCKET", "fleet-cache");

    #[test]
    fn an_explicit_github_backend_wins_over_a_runner_level_bucket() {
        assert_eq!(chosen(&[V1, V2, BUCKET, ("INPUT_BACKEND", "github")]), "github");
    }

    #[test]
    fn an_explicit_artifactcache_backend_wins_over_a_runner_level_bucket() {
        assert_eq!(chosen(&[V1, V2, WANTS_V2, BUCKET, ("INPUT_BACKEND", "artifactcache")]), "artifactcache");
    }

    #[test]
    fn an_explicit_local_backend_wins_over_everything() {
        assert_eq!(chosen(&[V1, V2, WANTS_V2, BUCKET, ("INPUT_BACKEND", "local")]), "local");
    }

    #[test]
    fn an_explicit_s3_backend_needs_a_bucket() {
        assert_eq!(chosen(&[V1, V2, BUCKET, ("INPUT_BACKEND", "s3")]), "s3");
        let err = config(&[V1, V2, ("INPUT_BACKEND", "s3")]).unwrap_err();
        assert!(err.input == "backend" && err.message.contains("needs a bucket"), "{err}");
    }

    #[test]
    fn an_explicit_runner_service_the_runner_did_not_pass_fails_the_step() {
        let err = config(&[V1, BUCKET, ("INPUT_BACKEND", "github")]).unwrap_err();
        assert!(err.input == "backend" && err.message.contains("ACTIONS_RESULTS_URL"), "{err}");
        let err = config(&[V2, ("INPUT_BACKEND", "artifactcache")]).unwrap_err();
        assert!(err.input == "backend" && err.message.contains("ACTIONS_CACHE_URL"), "{err}");
    }

    #[test]
    fn auto_takes_a_bucket_first() {
        assert_eq!(chosen(&[V1, V2, WANTS_V2, BUCKET]), "s3");
        assert_eq!(chosen(&[V1, V2, ("INPUT_S3-BUCKET", "fleet-cache")]), "s3");
    }

    #[test]
    fn auto_takes_v2_when_the_runner_asks_for_it() {
        assert_eq!(chosen(&[V1, V2, WANTS_V2]), "github");
        // A Forgejo host is GHES-style: v1 even when the V2 flag is set.
        assert_eq!(
            chosen(&[V1, V2, WANTS_V2, ("GITHUB_SERVER_URL", "https://code.example.org")]),
            "artifactcache"
        );
    }

    #[test]
    fn auto_takes_v1_otherwise() {
        assert_eq!(chosen(&[V1, V2]), "artifactcache");
    }

    #[test]
    fn auto_falls_back_to_the_local_store() {
        assert_eq!(chosen(&[]), "local");
        // V2 wanted but no results URL: no service, so the local store (as the toolkit has it).
        assert_eq!(chosen(&[V1, ("ACTIONS_CACHE_SERVICE_V2", "1")]), "local");
    }

    #[test]
    fn v1_reserves_while_packing_on_the_runners_own_servers_only() {
        let v1 = ("ACTIONS_CACHE_URL", "http://c/");
        let reservation = |extra: &[(&str, &str)]| {
            let mut vars = vec![v1];
            vars.extend_from_slice(extra);
            match config(&vars).unwrap().backend {
                BackendKind::ArtifactCache { reservation, .. } => reservation,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(reservation(&[]), Reservation::SizeFirst, "GHES: the toolkit's way");
        for runner in ["ACT", "FORGEJO_ACTIONS", "GITEA_ACTIONS"] {
            assert_eq!(reservation(&[(runner, "true")]), Reservation::WhilePacking, "{runner}");
        }
        assert_eq!(reservation(&[("ACT", "")]), Reservation::SizeFirst);
    }

    #[test]
    fn ghes_test_matches_the_toolkit() {
        assert!(!is_ghes(None));
        assert!(!is_ghes(Some("https://github.com")));
        assert!(!is_ghes(Some("https://acme.ghe.com/")));
        assert!(!is_ghes(Some("http://github.localhost:8080")));
        assert!(is_ghes(Some("https://codeberg.org")));
    }

    #[test]
    fn cache_mode_values() {
        assert_eq!(cache_mode(Some("read")), CacheMode { read: true, write: false });
        assert_eq!(cache_mode(Some("write-only")), CacheMode { read: false, write: true });
        assert_eq!(cache_mode(Some("none")), CacheMode { read: false, write: false });
        assert_eq!(cache_mode(Some("write")), CacheMode { read: true, write: true });
        assert_eq!(cache_mode(None), CacheMode { read: true, write: true });
    }

    #[test]
    fn local_max_size_is_a_size_or_none() {
        let bound = |value: &str| match config(&[("INPUT_LOCAL-MAX-SIZE", value)]).map(|cfg| cfg.backend) {
            Ok(BackendKind::Local { bound, .. }) => Ok(bound),
            Ok(other) => panic!("not local: {other:?}"),
            Err(e) => Err(e),
        };
        assert_eq!(bound("5GB").unwrap(), LocalBound::Bytes(5_000_000_000));
        assert_eq!(bound("None").unwrap(), LocalBound::None);
        let error = bound("0").unwrap_err();
        assert_eq!(error.input, "local-max-size");
        assert!(error.message.contains("`none`"), "{error}");
        assert!(matches!(
            config(&[]).unwrap().backend,
            BackendKind::Local { bound: LocalBound::Default, .. }
        ));
    }
}
