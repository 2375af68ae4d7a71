//! Entries that stay lean and current. A uv upgrade, a downgrade and back, with two real uv releases whose cache buckets differ
//! (0.12: `wheels-v6`, `sdists-v9`, `simple-v25`; 0.13: `wheels-v8`, `sdists-v11`, `simple-v28`):
//! the upgrade starts a new entry from the older uv's, and saves it without the buckets the new
//! uv does not use; the downgrade never restores what the newer uv wrote. `uv-max-size` on a
//! real cache, a drifted exact hit refreshed once, uv's content-addressed links, and conda envs
//! under the nox envdir left out.

use std::fs;
use std::path::Path;

use crate::support::action::{Job, Machine};
use crate::support::rig::{assert_clean, fresh_checkout};
use crate::support::tools;

/// A job on a fresh runner of `machine` with the uv of `bin` on PATH.
fn job_with(machine: &Machine, bin: &Path) -> Job {
    fresh_checkout(machine);
    let mut job = machine.job();
    job.input("targets", "uv");
    job.set_env("PATH", &format!("{}:{}", bin.display(), machine.path));
    job
}

/// What the job's own work does with uv: installs a small package from PyPI into the cache.
fn install(machine: &Machine, bin: &Path) {
    let target = machine.root.path().join("site");
    let _ = fs::remove_dir_all(&target);
    let out = machine
        .command(&bin.join("uv"), bin)
        .args(["pip", "install", "--quiet", "--target"])
        .arg(&target)
        .arg("six==1.16.0")
        .output()
        .expect("run uv");
    assert!(out.status.success(), "uv pip install: {}", String::from_utf8_lossy(&out.stderr));
}

fn buckets(machine: &Machine) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(machine.home.join(".cache/uv"))
        .map(|entries| entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.retain(|n| n.contains("-v"));
    names.sort();
    names
}

#[test]
fn an_upgrade_starts_a_lean_entry_and_a_downgrade_never_restores_it() {
    let machine = Machine::new();
    fs::write(machine.workspace.join("requirements.txt"), "six==1.16.0\n").unwrap();
    let (older, newer) = (tools::older_uv_bin(), tools::python_tools_bin());

    // uv 0.12, cold: its entry is keyed on its series.
    let mut job = job_with(&machine, &older);
    assert_clean(&job.main());
    install(&machine, &older);
    let post = job.post();
    assert_clean(&post);
    assert!(post.stdout.contains("uv: saved"), "{}", post.log());
    let old_key = job.keys()["uv"].clone();
    assert!(old_key.contains("-uv0.12-"), "{old_key}");

    // Upgrade to uv 0.13: a new key, restored from 0.12's entry by prefix; saved without 0.12's
    // buckets, each named with its size.
    let mut job = job_with(&machine, &newer);
    let main = job.main();
    assert_clean(&main);
    assert_eq!(main.output("uv-cache-hit"), "false", "{}", main.log());
    assert_eq!(main.output("uv-matched-key"), old_key, "{}", main.log());
    install(&machine, &newer);
    assert!(buckets(&machine).contains(&"wheels-v6".to_string()), "{:?}", buckets(&machine));
    let post = job.post();
    assert_clean(&post);
    assert!(post.stdout.contains("uv: saved"), "{}", post.log());
    let new_key = job.keys()["uv"].clone();
    assert!(new_key.contains("-uv0.13-"), "{new_key}");
    let line = post
        .stdout
        .lines()
        .find(|l| l.contains("buckets this job's uv does not use"))
        .unwrap_or_else(|| panic!("no line names the dead buckets:\n{}", post.log()));
    eprintln!("{line}");
    for dead in ["wheels-v6", "sdists-v9", "simple-v25"] {
        assert!(line.contains(&format!("{dead} (")), "{dead} not named with its size: {line}");
    }
    for live in ["wheels-v8", "simple-v28", "archive-v0"] {
        assert!(!line.contains(live), "{live} is read by uv 0.13: {line}");
    }

    // Downgrade to uv 0.12: 0.13's newer entry is never restored; 0.12's own comes back exactly.
    let mut job = job_with(&machine, &older);
    let main = job.main();
    assert_clean(&main);
    assert_eq!(main.output("uv-cache-hit"), "true", "{}", main.log());
    assert_eq!(main.output("uv-matched-key"), old_key, "{}", main.log());
    assert!(!buckets(&machine).contains(&"wheels-v8".to_string()), "{:?}", buckets(&machine));
    install(&machine, &older);
    assert_clean(&job.post());

    // Back to uv 0.13: its own entry, exactly, without the buckets of 0.12.
    let mut job = job_with(&machine, &newer);
    let main = job.main();
    assert_clean(&main);
    assert_eq!(main.output("uv-cache-hit"), "true", "{}", main.log());
    assert_eq!(main.output("uv-matched-key"), new_key, "{}", main.log());
    let restored = buckets(&machine);
    assert!(restored.contains(&"wheels-v8".to_string()), "{restored:?}");
    for dead in ["wheels-v6", "sdists-v9", "simple-v25"] {
        assert!(!restored.contains(&dead.to_string()), "{dead} came back: {restored:?}");
    }
    install(&machine, &newer);
    assert_clean(&job.post());
}

/// `uv-max-size` on a real cache: the saved entry holds at most the limit, the summary says what
/// was left out, and uv still works on the restored cache — offline for what was kept, and
/// downloading again what was left out (no pointer to a missing wheel).
#[test]
fn the_size_budget_holds_a_real_cache_under_its_limit() {
    let machine = Machine::new();
    let bin = tools::python_tools_bin();
    let packages = ["six==1.16.0", "idna==3.7", "packaging==24.1", "iniconfig==2.0.0", "pyparsing==3.1.2"];
    let install_all = |offline: bool| {
        let target = machine.root.path().join("site");
        let _ = fs::remove_dir_all(&target);
        let mut cmd = machine.command(&bin.join("uv"), &bin);
        cmd.args(["pip", "install", "--quiet", "--target"]).arg(&target).args(packages);
        if offline {
            cmd.arg("--offline");
        }
        cmd.output().expect("run uv")
    };
    let mut job = job_with(&machine, &bin);
    job.input("uv-max-size", "300kB");
    assert_clean(&job.main());
    assert!(install_all(false).status.success());
    let full = cache_bytes(&machine.home.join(".cache/uv"));
    assert!(full > 300_000, "the cache ({full} bytes) must be over the limit for this test");
    let post = job.post();
    assert_clean(&post);
    assert!(post.stdout.contains("over `uv-max-size`"), "{}", post.log());
    post.stdout
        .lines()
        .filter(|l| l.contains("uv-max-size") || l.contains("left out"))
        .for_each(|l| eprintln!("{l}"));
    let summary = post.summary.clone();
    assert!(summary.contains("uv-max-size"), "the summary does not say what was left out:\n{summary}");

    let mut job = job_with(&machine, &bin);
    job.input("uv-max-size", "300kB");
    let main = job.main();
    assert_clean(&main);
    assert_eq!(main.output("uv-cache-hit"), "true", "{}", main.log());
    let restored = cache_bytes(&machine.home.join(".cache/uv"));
    assert!(restored <= 300_000 && restored > 0, "restored {restored} bytes of {full}\n{summary}");
    let offline = install_all(true);
    assert!(!offline.status.success(), "everything was kept: the budget left nothing out");
    let online = install_all(false);
    assert!(
        online.status.success(),
        "uv chokes on the lean cache: {}",
        String::from_utf8_lossy(&online.stderr)
    );
}

/// Bytes of the regular files under `dir`.
fn cache_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let meta = entry.path().symlink_metadata().unwrap();
        if meta.is_dir() {
            total += cache_bytes(&entry.path());
        } else if meta.is_file() {
            total += meta.len();
        }
    }
    total
}

/// uv's `content-addressed-cache` preview hard-links each file of `archive-v0` to
/// `files-v0/<sha256>`: the saved entry keeps those as links (one copy of the bytes), and the
/// restore brings them back linked; uv's bucket check keeps `files-v0`.
#[test]
fn content_addressed_cache_links_stay_links() {
    use std::os::unix::fs::MetadataExt;
    let machine = Machine::new();
    let bin = tools::python_tools_bin();
    let mut job = job_with(&machine, &bin);
    job.set_env("UV_PREVIEW_FEATURES", "content-addressed-cache");
    assert_clean(&job.main());
    let target = machine.root.path().join("site");
    let out = machine
        .command(&bin.join("uv"), &bin)
        .env("UV_PREVIEW_FEATURES", "content-addressed-cache")
        .args(["pip", "install", "--quiet", "--link-mode", "copy", "--target"])
        .arg(&target)
        .arg("six==1.16.0")
        .output()
        .expect("run uv");
    assert!(out.status.success(), "uv: {}", String::from_utf8_lossy(&out.stderr));
    let cache = machine.home.join(".cache/uv");
    let linked = |cache: &Path| -> Vec<(u64, u64)> {
        let mut inodes: Vec<(u64, u64)> = Vec::new();
        let mut stack = vec![cache.join("files-v0")];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
                let meta = entry.path().symlink_metadata().unwrap();
                if meta.is_dir() {
                    stack.push(entry.path());
                } else if meta.is_file() {
                    inodes.push((meta.ino(), meta.nlink()));
                }
            }
        }
        inodes
    };
    let before = linked(&cache);
    assert!(!before.is_empty(), "uv {} wrote no files-v0: has the preview changed?", tools::UV_VERSION);
    assert!(before.iter().all(|(_, n)| *n >= 2), "files-v0 not linked into archive-v0 by uv: {before:?}");
    let post = job.post();
    assert_clean(&post);
    assert!(!post.stdout.contains("files-v0 ("), "files-v0 taken for a dead bucket:\n{}", post.log());

    fresh_checkout(&machine);
    let mut job = job_with(&machine, &bin);
    let main = job.main();
    assert_clean(&main);
    assert_eq!(main.output("uv-cache-hit"), "true", "{}", main.log());
    let after = linked(&cache);
    assert_eq!(after.len(), before.len(), "files-v0 came back incomplete");
    assert!(after.iter().all(|(_, n)| *n >= 2), "the restore broke the links into copies: {after:?}");
}

/// An exact hit that the job grew well past what was restored is saved once more, under a key
/// the next restore prefers; that job, adding nothing, saves nothing.
#[test]
fn a_drifted_exact_hit_is_refreshed_once() {
    let machine = Machine::new();
    fs::write(machine.workspace.join("requirements.txt"), "six==1.16.0\n").unwrap();
    let bin = tools::python_tools_bin();
    let run = |packages: &[&str]| {
        let target = machine.root.path().join("site");
        let _ = fs::remove_dir_all(&target);
        let out = machine
            .command(&bin.join("uv"), &bin)
            .args(["pip", "install", "--quiet", "--target"])
            .arg(&target)
            .args(packages)
            .output()
            .expect("run uv");
        assert!(out.status.success(), "uv: {}", String::from_utf8_lossy(&out.stderr));
    };
    let job_here = || {
        let mut job = job_with(&machine, &bin);
        // The real floor is 50 MB; these packages add a few hundred kB.
        job.set_env("UV_NOX_CACHE_TEST_TUNING", "drift_min_bytes=100000");
        job
    };

    let mut job = job_here();
    assert_clean(&job.main());
    run(&["six==1.16.0"]);
    assert_clean(&job.post());
    let primary = job.keys()["uv"].clone();

    // Same key, exact hit; the job adds more than 20 % and the floor: saved again.
    let mut job = job_here();
    let main = job.main();
    assert_eq!(main.output("uv-cache-hit"), "true", "{}", main.log());
    run(&["six==1.16.0", "packaging==24.1", "pyparsing==3.1.2", "idna==3.7"]);
    let post = job.post();
    assert_clean(&post);
    assert!(post.stdout.contains("the job added"), "{}", post.log());
    let saved =
        post.stdout.lines().find(|l| l.contains("uv: saved")).unwrap_or_else(|| panic!("{}", post.log()));
    assert!(saved.contains(&format!("{primary}-refreshed-")), "{saved}");

    // The next job restores the refreshed entry, counts it exact, and adds nothing: no save.
    let mut job = job_here();
    let main = job.main();
    assert_clean(&main);
    assert_eq!(main.output("uv-cache-hit"), "true", "{}", main.log());
    assert!(main.output("uv-matched-key").starts_with(&format!("{primary}-refreshed-")), "{}", main.log());
    run(&["six==1.16.0", "packaging==24.1", "pyparsing==3.1.2", "idna==3.7"]);
    let post = job.post();
    assert_clean(&post);
    assert!(!post.stdout.contains("uv: saved"), "re-saved without drift:\n{}", post.log());
    assert!(post.stdout.contains("exactly; not saving"), "{}", post.log());
}

/// A conda env under the envdir (nox's conda, mamba, micromamba or rattler backend) is left out
/// of the nox entry with a notice: nox would reuse it unchecked. A faithful `conda-meta/`
/// layout: no conda, mamba, micromamba or pixi is installed here.
#[test]
fn conda_envs_are_left_out_of_the_nox_entry() {
    let machine = Machine::new();
    fs::write(machine.workspace.join("noxfile.py"), "import nox\n").unwrap();
    let conda = machine.workspace.join(".nox/tests-3-12");
    fs::create_dir_all(conda.join("conda-meta")).unwrap();
    fs::write(
        conda.join("conda-meta/history"),
        "==> 2026-10-21 12:00:00 <==\n+conda-forge/linux-64::python-3.12.7-h1\n",
    )
    .unwrap();
    fs::write(conda.join("conda-meta/python-3.12.7-h1.json"), "{\"name\": \"python\"}\n").unwrap();
    fs::create_dir_all(conda.join("bin")).unwrap();
    fs::write(conda.join("bin/python3.12"), "#!/bin/sh\n").unwrap();
    std::os::unix::fs::symlink("python3.12", conda.join("bin/python")).unwrap();

    let mut job = machine.job();
    job.input("targets", "nox");
    assert_clean(&job.main());
    let post = job.post();
    assert_clean(&post);
    assert!(post.stdout.contains("conda envs") && post.stdout.contains("tests-3-12"), "{}", post.log());
    assert!(post.stdout.contains("nox: saved"), "{}", post.log());

    fresh_checkout(&machine);
    let mut job = machine.job();
    job.input("targets", "nox");
    let main = job.main();
    assert_clean(&main);
    assert_eq!(main.output("nox-restored"), "true", "{}", main.log());
    assert!(!conda.exists(), "a conda env came back from the cache unchecked");
}
