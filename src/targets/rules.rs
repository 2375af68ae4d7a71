//! The trait every target implements, and the plain values its methods trade in: the plan the
//! flows follow for one target, the interpreters keys are computed with, and what an archive
//! leaves out. Each method has the answer most targets give as its default, so a target states
//! only what makes it different.

use std::cell::OnceCell;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use tracing::info;

use super::Target;
use crate::config::{Config, RestoreKeys};
use crate::envs::{self, Eviction};
use crate::key::KeyParts;
use crate::python::{self, Interpreter};

/// What one target is, as the restore and save flows ask it. The flows call these in the order
/// they are listed: planning (`dir` to `restore_keys`), restoring (`job_env`, `after_extract`,
/// `state`, `after_restore`), saving (`before_save`, `after_exact_hit`, `leave_out`, `state`).
pub trait Rules: Sync {
    /// The name in the `targets` input, keys, outputs and logs.
    fn name(&self) -> &'static str;
    /// The directory restored into and saved from, and where that answer came from (for the log).
    fn dir(&self, cfg: &Config) -> (PathBuf, &'static str);
    /// The `hashFiles()` patterns of the key, before the `key-files` input's.
    fn key_files(&self) -> Vec<&'static str>;
    /// The interpreter the key is computed with, when it rests on one.
    fn interpreter(&self, _cfg: &Config, _pythons: &Pythons) -> Option<Interpreter> {
        None
    }
    /// The key's fingerprint component: what, besides the key files, must match for an entry
    /// to be usable here.
    fn fingerprint(&self, cfg: &Config, interpreter: Option<&Interpreter>) -> String;
    /// The path string actions/cache would be given for `dir`; the service-side version is
    /// computed from it. By default the home directory is written `~`.
    fn version_path(&self, cfg: &Config, dir: &Path) -> String {
        match cfg.runner.home.as_ref().and_then(|h| dir.strip_prefix(h).ok()) {
            Some(rel) if !rel.as_os_str().is_empty() => format!("~/{}", slashed(rel)),
            _ => slashed(dir),
        }
    }
    /// The fallback keys, in order. By default the key's prefix, unless `restore-keys: none`:
    /// a partial entry is only a head start.
    fn restore_keys(&self, cfg: &Config, key: &KeyParts) -> Vec<String> {
        match cfg.restore_keys {
            RestoreKeys::Auto | RestoreKeys::All => vec![key.restore_prefix()],
            RestoreKeys::None => Vec::new(),
        }
    }
    /// Variables later steps of the job need, given the directory (`GITHUB_ENV`).
    fn job_env(&self, _cfg: &Config, _dir: &Path) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    /// What a restore does with the tree extracted into `staging`, before it moves into place:
    /// complete it, check it against this machine, remove what is stale. `planned` is every
    /// target of the step (those before this one already restored). Returns what was removed,
    /// each with why.
    fn after_extract(
        &self,
        _cfg: &Config,
        _plan: &TargetPlan,
        _staging: &Path,
        _planned: &[TargetPlan],
    ) -> Vec<String> {
        Vec::new()
    }
    /// A digest of what `dir` holds, in what the next job would feel (`envs/state.rs`): the
    /// restore leaves it in the step state, and a `save: always` post step compares it with the
    /// directory then.
    fn state(&self, _cfg: &Config, dir: &Path) -> String {
        envs::cache_state(dir)
    }
    /// What a restore step says once every target is done; `restored` when this one was.
    fn after_restore(&self, _cfg: &Config, _restored: bool) {}
    /// What the directory holds, for the log: `the cache is` as restored.
    fn contents(&self) -> &'static str {
        "the cache is"
    }
    /// When an exact hit is saved again because the job added enough to it: `None` (never) by
    /// default. The restore then prefers the newest refreshed entry over the exact one
    /// ([`crate::key::refreshed_prefix`]).
    fn drift(&self) -> Option<Drift> {
        None
    }
    /// What a save step says before any target is saved.
    fn before_save(&self, _cfg: &Config) {}
    /// What a save step says about a target the restore found exactly, which is not saved again;
    /// `restored` is the digest the restore left ([`Rules::state`]).
    fn after_exact_hit(&self, _cfg: &Config, _plan: &TargetPlan, _primary: &str, _restored: Option<&str>) {}
    /// What the archive leaves out and adds. `stored` holds the targets saved earlier in this
    /// step. May change the directory first (a prune).
    fn leave_out(&self, cfg: &Config, plan: &TargetPlan, stored: &[&TargetPlan]) -> LeaveOut;
}

/// How much an exact hit must grow before the post step saves it again: more than `percent` of
/// what was restored, and more than `min_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drift {
    pub percent: u64,
    pub min_bytes: u64,
}

impl Drift {
    /// Whether going from `restored` to `now` bytes is drift worth a new entry.
    pub fn exceeded(self, restored: u64, now: u64) -> bool {
        let added = now.saturating_sub(restored);
        added > self.min_bytes && added.saturating_mul(100) > restored.saturating_mul(self.percent)
    }
}

/// Bytes of the regular files under `dir`.
pub fn tree_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// Everything the flows need to know about one target.
#[derive(Debug, Clone)]
pub struct TargetPlan {
    pub target: Target,
    /// The directory restored into and saved from.
    pub dir: PathBuf,
    /// Where `dir`'s value came from, for the log.
    pub dir_source: &'static str,
    /// `dir` relative to the workspace as actions/cache names it inside archives.
    pub archive_name: String,
    /// The path string actions/cache would be given for `dir`; the version derives from it.
    pub version_path: String,
    pub key: KeyParts,
    /// Fallback keys, in order.
    pub restore_keys: Vec<String>,
    /// The interpreter the key was computed with, as it answered (`None` when it did not run).
    pub interpreter: Option<Interpreter>,
}

impl TargetPlan {
    /// The rules of this plan's target.
    pub fn rules(&self) -> &'static dyn Rules {
        self.target.rules()
    }
}

/// What is left out of (or added to) one archive.
#[derive(Debug, Default)]
pub struct LeaveOut {
    /// Paths relative to the directory.
    pub skip: HashSet<PathBuf>,
    /// Files added at these paths (relative to the directory), with their bytes.
    pub extra: Vec<(PathBuf, Vec<u8>)>,
    /// For the job summary.
    pub notes: String,
}

impl LeaveOut {
    /// Also leaves out what `eviction` took out (`evict-project`), and says so in the log and
    /// the notes.
    pub fn with_eviction(mut self, name: &str, eviction: Eviction) -> LeaveOut {
        let evicted: Vec<String> =
            eviction.evicted.iter().map(|e| format!("{} from {}", e.dist, e.env)).collect();
        let kept: Vec<String> = eviction.kept.iter().map(|k| format!("{} in {}", k.dist, k.env)).collect();
        let mut notes = Vec::new();
        if !evicted.is_empty() {
            info!("{name}: left out of the archive (evict-project): {}", evicted.join(", "));
            notes.push(format!("evicted {}", evicted.join(", ")));
        }
        if !kept.is_empty() {
            notes.push(format!("kept editable {}", kept.join(", ")));
        }
        self.notes = notes.join("; ");
        self.skip.extend(eviction.skip);
        self
    }
}

/// The interpreters the keys are computed with, each asked once: `python3` on PATH, and the
/// `python` input's when it names another one. One that does not run is keyed as `unknown` and
/// reported: a warning naming the path when the `python` input names it, a notice when
/// `python3` is simply not on PATH.
pub struct Pythons<'a> {
    cfg: &'a Config,
    default: OnceCell<Option<Interpreter>>,
    given: OnceCell<Option<Interpreter>>,
}

impl<'a> Pythons<'a> {
    pub fn new(cfg: &'a Config) -> Self {
        Pythons { cfg, default: OnceCell::new(), given: OnceCell::new() }
    }

    /// `python3` on PATH.
    pub fn default(&self) -> Option<Interpreter> {
        self.default
            .get_or_init(|| {
                let found = python::probe(python::DEFAULT, &self.cfg.working_directory);
                if found.is_none() {
                    crate::notice!(
                        "`python3` is not on PATH, so the keys computed with it carry `unknown` for the \
                         interpreter; set up Python before this step (actions/setup-python)"
                    );
                }
                found
            })
            .clone()
    }

    /// The `python` input's interpreter; `python3` on PATH when the input is not given.
    pub fn chosen(&self) -> Option<Interpreter> {
        let Some(path) = self.cfg.python.as_deref().filter(|p| *p != python::DEFAULT) else {
            return self.default();
        };
        self.given
            .get_or_init(|| {
                let found = python::probe(path, &self.cfg.working_directory);
                if found.is_none() {
                    tracing::warn!(
                        "the `python` input `{path}` did not run (from {}); the nox key carries `unknown` \
                         for the interpreter. Point `python` at an interpreter that exists (e.g. the \
                         `python-path` output of actions/setup-python), or leave it unset for `python3` on PATH",
                        self.cfg.working_directory.display()
                    );
                }
                found
            })
            .clone()
    }
}

/// `path` with `/` separators.
pub(super) fn slashed(path: &Path) -> String {
    path.to_string_lossy().replace('\\', "/")
}
