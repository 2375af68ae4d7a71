//! Safe environments with real uv and nox: the project never goes stale in a cache, and envs
//! restored onto another interpreter or another workspace path are removed, not trusted.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::action::{Machine, Step};
use crate::support::tools;

/// A project that installs itself NON-editably into a uv-backed nox env; its session prints
/// what the installed copy of the project answers.
fn write_project(ws: &Path, answer: u32) {
    fs::create_dir_all(ws.join("src/seedpkg")).unwrap();
    fs::write(
        ws.join("pyproject.toml"),
        "[project]\nname = \"seedpkg\"\nversion = \"1.0.0\"\n\n[build-system]\nrequires = [\"hatchling\"]\nbuild-backend = \"hatchling.build\"\n",
    )
    .unwrap();
    fs::write(ws.join("src/seedpkg/__init__.py"), format!("def answer():\n    return {answer}\n")).unwrap();
    fs::write(
        ws.join("noxfile.py"),
        "import nox\n\n@nox.session(venv_backend='uv')\ndef check(session):\n    session.install('.')\n    session.run('python', '-c', 'import seedpkg; print(\"answer\", seedpkg.answer())')\n",
    )
    .unwrap();
}

fn tools_path(machine: &Machine) -> String {
    format!("{}:{}", tools::python_tools_bin().display(), machine.path)
}

/// Runs nox offline, as a job after a restore would.
fn nox(machine: &Machine, args: &[&str]) -> Output {
    nox_command(machine, args).env("UV_OFFLINE", "1").output().expect("run nox")
}

fn nox_command(machine: &Machine, args: &[&str]) -> Command {
    let mut cmd = machine.command(&tools::nox(), &tools::python_tools_bin());
    cmd.args(args);
    cmd
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Job 1 runs nox online and saves; the source is fixed (same version); job 2 restores into a
/// fresh checkout. Returns job 2's restore step.
fn seed_scenario(machine: &Machine, evict: &str) -> Step {
    write_project(&machine.workspace, 41);
    let mut job = machine.job();
    job.set_env("PATH", &tools_path(machine)).input("evict-project", evict);
    assert_eq!(job.main().code, 0);
    let first = nox_command(machine, &["--reuse-venv=yes"]).output().unwrap();
    assert!(text(&first).contains("answer 41"), "{}", text(&first));
    let post = job.post();
    assert_eq!(post.code, 0, "{}", post.log());
    if evict == "true" {
        assert!(
            post.stdout.contains("left out of the archive (evict-project): seedpkg-1.0.0"),
            "{}",
            post.log()
        );
    }

    fs::remove_dir_all(machine.workspace.join(".nox")).unwrap();
    fs::remove_dir_all(machine.home.join(".cache/uv")).unwrap();
    write_project(&machine.workspace, 42); // the fix keeps the version number
    let mut job = machine.job();
    job.set_env("PATH", &tools_path(machine)).input("evict-project", evict);
    let main = job.main();
    assert_eq!(main.output("nox-cache-hit"), "true", "{}", main.log());
    main
}

#[test]
fn a_restored_env_never_tests_the_old_code() {
    let machine = Machine::new();
    seed_scenario(&machine, "true");
    let no_install = nox(&machine, &["-R"]);
    assert!(!no_install.status.success(), "nox -R must fail loudly:\n{}", text(&no_install));
    assert!(text(&no_install).contains("No module named 'seedpkg'"), "{}", text(&no_install));
    assert!(!text(&no_install).contains("answer 41"));
    let reinstall = nox(&machine, &["-r"]);
    assert!(reinstall.status.success(), "{}", text(&reinstall));
    assert!(text(&reinstall).contains("answer 42"), "{}", text(&reinstall));
}

#[test]
fn without_eviction_the_stale_copy_is_what_runs() {
    let machine = Machine::new();
    seed_scenario(&machine, "false");
    let no_install = nox(&machine, &["-R"]);
    assert!(no_install.status.success(), "{}", text(&no_install));
    assert!(text(&no_install).contains("answer 41"), "the old code ran:\n{}", text(&no_install));
}

/// A copy of the system interpreter at a path of our own, which a later job can take away.
fn private_python(machine: &Machine) -> PathBuf {
    let real = fs::canonicalize("/usr/bin/python3").unwrap();
    let dir = machine.root.path().join("interp/bin");
    fs::create_dir_all(&dir).unwrap();
    let copy = dir.join(real.file_name().unwrap());
    fs::copy(&real, &copy).unwrap();
    copy
}

#[test]
fn envs_built_on_a_vanished_interpreter_are_removed_and_rebuilt() {
    let machine = Machine::new();
    write_project(&machine.workspace, 42);
    let python = private_python(&machine);
    let mut job = machine.job();
    job.set_env("PATH", &tools_path(&machine));
    job.main();
    let first = nox_command(&machine, &["--reuse-venv=yes", "--force-python", &python.display().to_string()])
        .output()
        .unwrap();
    assert!(first.status.success(), "{}", text(&first));
    assert_eq!(job.post().code, 0);

    fs::remove_dir_all(machine.workspace.join(".nox")).unwrap();
    fs::remove_dir_all(python.parent().unwrap().parent().unwrap()).unwrap();
    let mut job = machine.job();
    job.set_env("PATH", &tools_path(&machine));
    let main = job.main();
    assert_eq!(main.code, 0, "{}", main.log());
    assert_eq!(main.output("nox-restored"), "true", "{}", main.log());
    assert_eq!(main.output("nox-cache-hit"), "false", "{}", main.log());
    let warning = main
        .stdout
        .lines()
        .find(|l| l.starts_with("::warning::nox: env `check"))
        .unwrap_or_else(|| panic!("{}", main.log()));
    assert!(warning.contains("removed after restore") && warning.contains("no longer exists"), "{warning}");
    assert_eq!(
        fs::read_dir(machine.workspace.join(".nox"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().is_dir())
            .count(),
        0
    );
    let rebuilt = nox(&machine, &["--reuse-venv=yes", "--force-python", "/usr/bin/python3"]);
    assert!(rebuilt.status.success() && text(&rebuilt).contains("answer 42"), "{}", text(&rebuilt));
}

#[test]
fn envs_restored_onto_another_workspace_path_are_removed() {
    let first = Machine::new();
    write_project(&first.workspace, 42);
    let mut job = first.job();
    job.set_env("PATH", &tools_path(&first));
    job.main();
    let saved_key = job.state["NOX_KEY"].clone();
    let out = nox_command(&first, &["--reuse-venv=yes"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(job.post().code, 0);

    // The same project checked out at another path (a container job, another runner layout).
    // Keys carry the envdir's path, so to restore the entry there at all we store it under the
    // other path's key, as a store shared by both layouts could hold it.
    let second = Machine::new();
    write_project(&second.workspace, 42);
    let mut job = second.job();
    job.set_env("PATH", &tools_path(&second)).input("local-dir", &first.store.display().to_string());
    let new_key = job.keys()["nox"].clone();
    assert_ne!(new_key, saved_key);
    copy_local_entry(&first.store, &saved_key, &new_key);
    let main = job.main();
    assert_eq!(main.output("nox-restored"), "true", "{}", main.log());
    assert_eq!(main.output("nox-cache-hit"), "false", "{}", main.log());
    assert!(main.stdout.contains("removed after restore"), "{}", main.log());
    assert!(
        main.stdout.contains(&first.workspace.display().to_string()),
        "the reason names the old path:\n{}",
        main.log()
    );
    assert!(!second.workspace.join(".nox/check").exists());
}

/// Stores the local-store entry of `from` again under `to`, in the same scope.
fn copy_local_entry(store: &Path, from: &str, to: &str) {
    use crate::support::local_store;
    use sha2::{Digest, Sha256};
    let (path, _, archive) = local_store::entries(store)
        .into_iter()
        .find(|(_, key, _)| key == from)
        .unwrap_or_else(|| panic!("no local entry for {from}"));
    let name = hex::encode(Sha256::digest(to.to_lowercase().as_bytes()));
    local_store::write_entry(&path.with_file_name(name), to, &archive);
}

/// A session that installs `idna`, then — when `FLAKE` is set, as when the index fails —
/// breaks off mid-install, and otherwise goes on to install `six` and the project.
fn write_flaky_project(ws: &Path) {
    write_project(ws, 42);
    fs::write(
        ws.join("noxfile.py"),
        "import os\nimport nox\n\n@nox.session(venv_backend='uv')\ndef check(session):\n    \
         session.install('idna')\n    if os.environ.get('FLAKE'):\n        \
         session.install('./no-such-project')\n    session.install('six')\n    session.install('.')\n    \
         session.run('python', '-c', 'import idna, six, seedpkg; print(\"answer\", seedpkg.answer())')\n",
    )
    .unwrap();
}

/// A job of run `run` (attempt `attempt`) with `save`, on a fresh checkout (no `.nox`, no uv
/// cache).
fn fresh_job(machine: &Machine, save: &str, run: &str, attempt: &str) -> crate::support::action::Job {
    let _ = fs::remove_dir_all(machine.workspace.join(".nox"));
    let _ = fs::remove_dir_all(machine.home.join(".cache/uv"));
    let mut job = machine.job();
    job.set_env("PATH", &tools_path(machine))
        .set_env("GITHUB_RUN_ID", run)
        .set_env("GITHUB_RUN_ATTEMPT", attempt)
        .input("save", save);
    job
}

/// `save: always`: the post step cannot read the job's status, so a job whose session failed
/// mid-install stores its envs under an unconfirmed key, which the next job takes only as a
/// fallback; the rerun completes the envs and saves them again; a job that changed nothing
/// saves nothing; a `save: auto` job (which runs only on success) confirms them under the
/// primary key, and the job after that has an exact hit.
#[test]
fn a_job_that_failed_mid_install_never_gives_an_exact_hit() {
    let machine = Machine::new();
    write_flaky_project(&machine.workspace);

    let mut job = fresh_job(&machine, "always", "7", "1");
    let primary = job.keys()["nox"].clone();
    assert_eq!(job.main().output("nox-restored"), "false");
    let failed = nox_command(&machine, &["--reuse-venv=yes"]).env("FLAKE", "1").output().unwrap();
    assert!(!failed.status.success(), "the session must fail mid-install:\n{}", text(&failed));
    let post = job.post();
    let first = format!("{primary}-unconfirmed-r7a1");
    assert!(post.stdout.contains(&format!("nox: saved {first}")), "{}", post.log());
    assert!(!post.stdout.contains(&format!("nox: saved {primary},")), "{}", post.log());
    assert!(post.stdout.contains("-unconfirmed-r7a1") && post.stdout.contains("uv: saved"), "{}", post.log());
    assert!(!post.stdout.contains(&format!("uv: saved {},", job.keys()["uv"])), "{}", post.log());

    // The rerun: the incomplete envs come back as a fallback, the session completes them.
    let mut job = fresh_job(&machine, "always", "7", "2");
    let main = job.main();
    assert_eq!(main.output("nox-cache-hit"), "false", "{}", main.log());
    assert_eq!(main.output("nox-restored"), "true", "{}", main.log());
    assert_eq!(main.output("nox-matched-key"), first, "{}", main.log());
    assert!(
        main.summary.contains(&format!("`{primary}`<br>restored from `{first}`")),
        "the summary shows the primary key and the key restored from:\n{}",
        main.summary
    );
    let rerun = nox_command(&machine, &["--reuse-venv=yes"]).output().unwrap();
    assert!(rerun.status.success() && text(&rerun).contains("answer 42"), "{}", text(&rerun));
    let post = job.post();
    let second = format!("{primary}-unconfirmed-r7a2");
    assert!(
        post.stdout.contains(&format!("nox: saved {second}")),
        "the repaired envs are saved:\n{}",
        post.log()
    );

    // The next run restores the complete envs; its installs change nothing, so nothing is saved.
    let mut job = fresh_job(&machine, "always", "8", "1");
    assert_eq!(job.main().output("nox-matched-key"), second);
    let warm = nox(&machine, &["-r"]);
    assert!(warm.status.success() && text(&warm).contains("answer 42"), "{}", text(&warm));
    let post = job.post();
    assert!(
        post.stdout.contains(&format!("nox: the envs are as restored from {second}; not saving")),
        "{}",
        post.log()
    );

    // A `save: auto` job confirms them under the primary key.
    let mut job = fresh_job(&machine, "auto", "9", "1");
    assert_eq!(job.main().output("nox-cache-hit"), "false");
    assert!(nox(&machine, &["-r"]).status.success());
    let post = job.post();
    assert!(post.stdout.contains(&format!("nox: saved {primary},")), "{}", post.log());
    let mut job = fresh_job(&machine, "auto", "10", "1");
    let main = job.main();
    assert_eq!(main.output("nox-cache-hit"), "true", "{}", main.log());
    let last = nox(&machine, &["-r"]);
    assert!(
        last.status.success() && text(&last).contains("answer 42"),
        "offline on the confirmed entries:\n{}",
        text(&last)
    );
}

/// The unconfirmed key works on the services as on the local store: the primary key's own
/// prefix match finds it, as a fallback, on v1 (act / Forgejo / Gitea) and v2 (github.com),
/// and a `save: auto` job's entry under the primary key wins over it.
#[test]
fn unconfirmed_entries_are_fallbacks_on_every_service() {
    use crate::support::action::Protocol;
    use crate::support::cache_server::{CacheServer, Personality};
    for (personality, protocol) in [(Personality::Forgejo, Protocol::V1), (Personality::Github, Protocol::V2)]
    {
        let server = CacheServer::start(personality);
        let machine = Machine::new();
        let env = machine.workspace.join(".nox/e");
        let job = |save: &str, run: &str| {
            let mut job = machine.job();
            job.use_service(&server, protocol)
                .input("targets", "nox")
                .input("save", save)
                .set_env("GITHUB_RUN_ID", run)
                .set_env("GITHUB_RUN_ATTEMPT", "1");
            job
        };
        fs::create_dir_all(&env).unwrap();
        fs::write(env.join("half-installed"), "x").unwrap();
        let mut first = job("always", "5");
        let primary = first.keys()["nox"].clone();
        first.main();
        let post = first.post();
        let unconfirmed = format!("{primary}-unconfirmed-r5a1");
        assert!(post.stdout.contains(&format!("nox: saved {unconfirmed}")), "{protocol:?}: {}", post.log());

        fs::remove_dir_all(machine.workspace.join(".nox")).unwrap();
        let mut second = job("always", "6");
        let main = second.main();
        assert_eq!(main.output("nox-cache-hit"), "false", "{protocol:?}: {}", main.log());
        assert_eq!(main.output("nox-matched-key").to_lowercase(), unconfirmed.to_lowercase(), "{protocol:?}");
        assert!(env.join("half-installed").is_file(), "{protocol:?}: restored");
        let post = second.post();
        assert!(
            post.stdout.contains("as restored from"),
            "{protocol:?}: nothing changed, nothing saved:\n{}",
            post.log()
        );

        let mut third = job("auto", "7");
        assert_eq!(third.main().output("nox-cache-hit"), "false");
        let post = third.post();
        assert!(post.stdout.contains(&format!("nox: saved {primary},")), "{protocol:?}: {}", post.log());
        let main = job("auto", "8").main();
        assert_eq!(main.output("nox-cache-hit"), "true", "{protocol:?}: {}", main.log());
    }
}
