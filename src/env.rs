//! The names of every environment variable the action reads, in one place, each with what it
//! means. Inputs arrive as `INPUT_<NAME>` (upper-cased, hyphens kept); the runner sets the rest.

/// The workspace all archive names are relative to (fallback: the current directory).
pub const GITHUB_WORKSPACE: &str = "GITHUB_WORKSPACE";
/// File that step outputs are appended to; absent on a laptop (outputs then go to stdout).
pub const GITHUB_OUTPUT: &str = "GITHUB_OUTPUT";
/// File that state for the post step is appended to.
pub const GITHUB_STATE: &str = "GITHUB_STATE";
/// File that job-level environment variables are appended to.
pub const GITHUB_ENV: &str = "GITHUB_ENV";
/// Markdown file rendered as the job summary.
pub const GITHUB_STEP_SUMMARY: &str = "GITHUB_STEP_SUMMARY";
/// The event that triggered the workflow (`push`, `release`, `pull_request_target`…).
pub const GITHUB_EVENT_NAME: &str = "GITHUB_EVENT_NAME";
/// The ref the workflow runs on (`refs/heads/main`, `refs/tags/v1`…).
pub const GITHUB_REF: &str = "GITHUB_REF";
/// The server's URL; a host other than github.com / *.ghe.com / *.localhost means GHES-style (v1).
pub const GITHUB_SERVER_URL: &str = "GITHUB_SERVER_URL";
/// Temporary directory of the job.
pub const RUNNER_TEMP: &str = "RUNNER_TEMP";
/// `Linux`, `macOS` or `Windows`.
pub const RUNNER_OS: &str = "RUNNER_OS";
/// `X64`, `ARM64`…
pub const RUNNER_ARCH: &str = "RUNNER_ARCH";
/// `1` when the workflow runs with debug logging.
pub const RUNNER_DEBUG: &str = "RUNNER_DEBUG";
/// GitHub's hosted image name (`ubuntu24`), part of the OS key component.
pub const IMAGE_OS: &str = "ImageOS";
/// JWT for the cache service; masked and never logged.
pub const ACTIONS_RUNTIME_TOKEN: &str = "ACTIONS_RUNTIME_TOKEN";
/// Base URL of the v1 `_apis/artifactcache` service.
pub const ACTIONS_CACHE_URL: &str = "ACTIONS_CACHE_URL";
/// Base URL of the v2 results service (Twirp).
pub const ACTIONS_RESULTS_URL: &str = "ACTIONS_RESULTS_URL";
/// Non-empty means the runner asks for the v2 service.
pub const ACTIONS_CACHE_SERVICE_V2: &str = "ACTIONS_CACHE_SERVICE_V2";
/// `read`, `write`, `write-only` or `none`; anything else allows both.
pub const ACTIONS_CACHE_MODE: &str = "ACTIONS_CACHE_MODE";
/// uv's own cache-dir override; wins over the `uv-cache-dir` input, as in uv.
pub const UV_CACHE_DIR: &str = "UV_CACHE_DIR";
/// uv's link mode; `symlink` forbids pruning.
pub const UV_LINK_MODE: &str = "UV_LINK_MODE";
/// Base of per-user caches.
pub const XDG_CACHE_HOME: &str = "XDG_CACHE_HOME";
/// uv's directory of managed Python installations; wins over everything else, as in uv.
pub const UV_PYTHON_INSTALL_DIR: &str = "UV_PYTHON_INSTALL_DIR";
/// Base of per-user data (`$XDG_DATA_HOME/uv/python` holds uv's Pythons).
pub const XDG_DATA_HOME: &str = "XDG_DATA_HOME";
/// The user's home directory (`~`).
pub const HOME: &str = "HOME";
/// The search path for `python3`, `uv`.
pub const PATH: &str = "PATH";
/// Exported by the restore step when `save: always`; read by `post-if` in action.yml.
pub const SAVE_ON_FAILURE: &str = "UV_NOX_CACHE_SAVE_ON_FAILURE";
/// The run and its attempt, named in the keys of `save: always` entries.
pub const GITHUB_RUN_ID: &str = "GITHUB_RUN_ID";
pub const GITHUB_RUN_ATTEMPT: &str = "GITHUB_RUN_ATTEMPT";
/// `true` in jobs run by nektos/act (and Gitea's act, which both runners embed).
pub const ACT: &str = "ACT";
/// `true` in jobs run by a Forgejo runner.
pub const FORGEJO_ACTIONS: &str = "FORGEJO_ACTIONS";
/// `true` in jobs run by a Gitea (or Forgejo) runner.
pub const GITEA_ACTIONS: &str = "GITEA_ACTIONS";
/// The workflow file of the run, `owner/repo/<path>@<ref>`.
pub const GITHUB_WORKFLOW_REF: &str = "GITHUB_WORKFLOW_REF";

/// The environment variable carrying input `name`.
pub fn input_var(name: &str) -> String {
    format!("INPUT_{}", name.to_uppercase().replace(' ', "_"))
}

/// The environment variable carrying state `name` in the post step.
pub fn state_var(name: &str) -> String {
    format!("STATE_{name}")
}

/// Test-only timing (retry delays, timeouts, grace period): see `test_tuning.rs`.
pub const TEST_TUNING: &str = "UV_NOX_CACHE_TEST_TUNING";
/// `owner/name` of the repository (the scope of the local and S3 stores, `backend/scope.rs`).
pub const GITHUB_REPOSITORY: &str = "GITHUB_REPOSITORY";
/// A pull request's base branch name (the local and S3 stores read its entries after the run's own).
pub const GITHUB_BASE_REF: &str = "GITHUB_BASE_REF";
/// The event payload, whose `repository.default_branch` the local and S3 stores read last.
pub const GITHUB_EVENT_PATH: &str = "GITHUB_EVENT_PATH";
/// The S3 inputs as a fleet admin sets them once on the runners: `UV_NOX_CACHE_S3_BUCKET`, …
pub const S3_ENV_PREFIX: &str = "UV_NOX_CACHE_S3_";
