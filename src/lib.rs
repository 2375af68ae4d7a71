//! uv-nox-cache restores and saves Python `uv` caches and `nox` environments through the CI
//! runner's own cache service.
//!
//! The main step (`restore`) reads the inputs, computes one key per target (uv's cache dir,
//! nox's envdir) the way the runner's `hashFiles()` would, looks each up, extracts what it finds
//! into a staging directory, checks it, and moves it into place; it reports `cache-hit` outputs
//! and leaves the keys in the step state. The post step (`save`) packs each target that was not
//! an exact hit — leaving out what must never be cached — and stores it.
//!
//! One place decides what fails the step: invalid input is an `::error::` and exit 1; any cache,
//! network, archive or disk trouble is a `::warning::` and a miss; `fail-on-cache-miss` turns a
//! total miss into exit 1.

pub mod archive;
pub mod backend;
pub mod byte_size;
pub mod cancel;
pub mod config;
pub mod deadline;
pub mod disk;
pub mod entry_note;
pub mod env;
pub mod envs;
pub mod flow;
pub mod hash_files;
pub mod housekeeping;
pub mod inputs;
pub mod key;
pub mod place;
pub mod progress;
pub mod python;
pub mod report;
pub mod runner;
pub mod sh_entry;
pub mod steps;
pub mod targets;
pub mod test_tuning;
pub mod token;
pub mod utc;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use config::Config;

/// The release, from Cargo.toml.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The hash of the sources this binary was built from (see `build/source_hash.rs`).
pub const SOURCE_HASH: &str = env!("UV_NOX_CACHE_SOURCE_HASH");

/// Runs the command named by `args[1]`.
pub fn run(args: &[String]) -> ExitCode {
    let recovered = match sh_entry::recovered_inputs(&|name| std::env::var(name).ok()) {
        Ok(recovered) => recovered,
        Err(e) => {
            println!("::error::uv-nox-cache: {e}");
            return ExitCode::FAILURE;
        }
    };
    let lookup = |name: &str| std::env::var(name).ok().or_else(|| recovered.get(name).cloned());
    let command = args.get(1).map(String::as_str);
    // Only these commands take arguments; for the others an argument is a mistake, not a no-op.
    let takes_arguments = matches!(command, Some("entries" | "prune" | "hash-files"));
    if let (false, Some(extra)) = (takes_arguments, args.get(2)) {
        eprintln!(
            "uv-nox-cache: `{}` takes no arguments, got `{extra}` (see `uv-nox-cache --help`)",
            command.unwrap_or("")
        );
        return ExitCode::from(2);
    }
    let cwd = match std::env::current_dir() {
        Ok(cwd) => cwd,
        Err(_)
            if matches!(
                command,
                Some("inputs" | "--version" | "-V" | "version" | "--help" | "-h" | "help")
            ) =>
        {
            PathBuf::from(".")
        }
        Err(e) => {
            eprintln!(
                "error: the current directory cannot be read ({e}): it was probably removed; cd into \
                 your project and run the command again"
            );
            return ExitCode::FAILURE;
        }
    };
    match command {
        Some("restore") => steps::restore(&lookup, &cwd),
        Some("save") => steps::save(&lookup, &cwd),
        Some("key") => key_command(&lookup, &cwd),
        Some("entries") => housekeeping::entries_command(&args[2..], &lookup, &cwd),
        Some("prune") => housekeeping::prune_command(&args[2..], &lookup, &cwd),
        Some("hash-files") => hash_files_command(&args[2..], &lookup, &cwd),
        Some("inputs") => {
            inputs::INPUT_NAMES.iter().for_each(|name| println!("{name}"));
            ExitCode::SUCCESS
        }
        Some("--version" | "-V" | "version") => {
            println!("uv-nox-cache {VERSION} (source {SOURCE_HASH})");
            ExitCode::SUCCESS
        }
        Some("--help" | "-h" | "help") => {
            print!("{HELP}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprint!("uv-nox-cache: unknown command `{other}`\n\n{HELP}");
            ExitCode::from(2)
        }
        None => {
            eprint!("uv-nox-cache: no command given\n\n{HELP}");
            ExitCode::from(2)
        }
    }
}

/// What `--help` prints: every command, and how inputs are passed.
const HELP: &str = "\
usage: uv-nox-cache <command>

Restores and saves uv caches and nox environments through the CI runner's cache service.
Inputs are read from INPUT_<NAME> variables as the runner passes them: the input's name in
upper case with its hyphens kept, e.g.
    env 'INPUT_WORKING-DIRECTORY=sub' 'INPUT_TARGETS=uv nox' uv-nox-cache key

commands:
  restore        the action's main step: restore each target, write outputs and state
  save           the action's post step: save each target that was not an exact hit
  key            print `<target> <primary key>` for each target; contacts no service
  hash-files [--follow-symbolic-links] PATTERN...
                 print what the runner's hashFiles('PATTERN', ...) gives for
                 GITHUB_WORKSPACE (or the current directory); an empty line when nothing
                 matches; exit 1 where hashFiles() would fail the step
  inputs         print the name of every input the action reads, one a line
  entries [--json] [--for-key KEY]... [--ref REF]... [--repository OWNER/NAME]
                 list the configured store's entries, newest first: saved, last used,
                 size, target, repository, ref, key. With --for-key (the primary key,
                 then restore keys) say which entry a job of --ref (its own ref, then
                 the refs it falls back to; default GITHUB_REF) would restore
  prune (--max-age DAYS | --max-size SIZE)... [--dry-run] [--json]
                 remove the `local` or `s3` store's entries not restored for DAYS, then
                 the least recently used until it takes at most SIZE (10GB, 500MB);
                 entries used within the last hour are kept; --dry-run only lists
  --version      print the release and the hash of the sources this binary was built from
  --help         print this help
";

/// `uv-nox-cache key`: one line per target, contacting no service.
fn key_command(lookup: &dyn Fn(&str) -> Option<String>, cwd: &Path) -> ExitCode {
    let cfg = match Config::new(&inputs::RawInputs::read(lookup), lookup, cwd) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Warnings and notices (an interpreter that does not run, no key file) go to stderr, so
    // stdout stays one `<target> <key>` line per target.
    runner::init_cli_logging();
    match targets::plans(&cfg) {
        Ok(plans) => {
            for notice in targets::key_notices(&cfg, &plans) {
                eprintln!("notice: {notice}");
            }
            plans.iter().for_each(|p| println!("{} {}", p.target.name(), p.key.primary()));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `uv-nox-cache hash-files [--follow-symbolic-links] PATTERN...`: what `hashFiles()` gives.
fn hash_files_command(args: &[String], lookup: &dyn Fn(&str) -> Option<String>, cwd: &Path) -> ExitCode {
    let workspace = lookup(env::GITHUB_WORKSPACE)
        .filter(|w| !w.is_empty())
        .map(PathBuf::from)
        .unwrap_or(cwd.to_path_buf());
    let home = lookup(env::HOME).map(PathBuf::from);
    let result = hash_files::parse_args(args).and_then(|(follow, patterns)| {
        hash_files::hash_files(&workspace, home.as_deref(), &patterns, follow)
    });
    match result {
        Ok(hex) => {
            println!("{hex}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: hashFiles would fail: {e}");
            ExitCode::FAILURE
        }
    }
}
