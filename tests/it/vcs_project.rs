//! A project as many real ones are: its version comes from git through hatch-vcs, which writes a
//! git-ignored `src/vcspkg/_version.py` into the checkout whenever the project is built, and its
//! nox session installs it editable with uv. The build backend comes from PyPI at test time; the
//! project is a git repository the test makes and commits to, one commit per job.
//!
//! Two promises are checked on it with real uv and nox: a job that changed nothing the next job
//! would feel does not save again under `save: always` (the project's own rebuild and uv's
//! bookkeeping do not count), and after a restore into a fresh checkout the restore step says
//! beforehand that `nox -R` cannot import the generated file, and what to run instead.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use crate::support::action::{Machine, Step};
use crate::support::tools;

/// The session installs the project editable, and the package `EXTRA` names when it is set
/// (an install the key files do not pin).
const NOXFILE: &str = "import os\nimport nox\n\n@nox.session(venv_backend='uv')\ndef check(session):\n    \
                       session.install('-e', '.')\n    \
                       if os.environ.get('EXTRA'):\n        session.install(os.environ['EXTRA'])\n    \
                       session.run('python', '-c', 'import vcspkg; print(\"answer\", vcspkg.answer(), vcspkg.version)')\n";

/// Writes the project with `answer()` returning `answer`.
fn write_project(ws: &Path, answer: u32) {
    fs::create_dir_all(ws.join("src/vcspkg")).unwrap();
    fs::write(
        ws.join("pyproject.toml"),
        "[project]\nname = \"vcspkg\"\ndynamic = [\"version\"]\nrequires-python = \">=3.8\"\n\n\
         [build-system]\nrequires = [\"hatchling\", \"hatch-vcs\"]\nbuild-backend = \"hatchling.build\"\n\n\
         [tool.hatch.version]\nsource = \"vcs\"\n\n\
         [tool.hatch.build.hooks.vcs]\nversion-file = \"src/vcspkg/_version.py\"\n",
    )
    .unwrap();
    fs::write(
        ws.join("src/vcspkg/__init__.py"),
        format!("from ._version import version\n\n\ndef answer():\n    return {answer}\n"),
    )
    .unwrap();
    fs::write(ws.join(".gitignore"), "/.nox/\n/src/vcspkg/_version.py\n__pycache__/\n").unwrap();
    fs::write(ws.join("noxfile.py"), NOXFILE).unwrap();
}

fn git(ws: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=ci", "-c", "user.email=ci@example.org", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(ws)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", ws)
        .output()
        .unwrap_or_else(|e| panic!("git is needed for this test (apt-get install git): {e}"));
    assert!(out.status.success(), "git {args:?}: {}", text(&out));
}

/// The repository with its first release tagged.
fn init_repo(ws: &Path) {
    write_project(ws, 41);
    git(ws, &["init", "-q"]);
    git(ws, &["add", "-A"]);
    git(ws, &["commit", "-qm", "first"]);
    git(ws, &["tag", "v1.0.0"]);
}

/// A new commit that changes the code and nothing the key hashes, then what a fresh checkout of it
/// has: no ignored or untracked file (no `.nox`, no `_version.py`) and an empty uv cache.
fn next_commit_fresh_checkout(machine: &Machine, answer: u32) {
    write_project(&machine.workspace, answer);
    git(&machine.workspace, &["commit", "-qam", &format!("answer {answer}")]);
    git(&machine.workspace, &["clean", "-qfdx"]);
    let _ = fs::remove_dir_all(machine.home.join(".cache/uv"));
    assert!(!machine.workspace.join("src/vcspkg/_version.py").exists());
}

fn tools_path(machine: &Machine) -> String {
    format!("{}:{}", tools::python_tools_bin().display(), machine.path)
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// One job: restore, `nox --reuse-venv=yes` (installs run, plus `extra` when given), save.
fn job(machine: &Machine, save: &str, run_id: u32, answer: u32, extra: Option<&str>) -> (Step, Step) {
    let mut job = machine.job();
    job.set_env("PATH", &tools_path(machine))
        .set_env("GITHUB_RUN_ID", &run_id.to_string())
        .input("save", save);
    let main = job.main();
    assert_eq!(main.code, 0, "{}", main.log());
    let mut cmd = machine.command(&tools::nox(), &tools::python_tools_bin());
    cmd.arg("--reuse-venv=yes");
    if let Some(extra) = extra {
        cmd.env("EXTRA", extra);
    }
    let run = cmd.output().expect("run nox");
    assert!(run.status.success(), "job {run_id}:\n{}", text(&run));
    assert!(
        text(&run).contains(&format!("answer {answer} ")),
        "job {run_id} ran the new code:\n{}",
        text(&run)
    );
    let post = job.post();
    assert_eq!(post.code, 0, "{}", post.log());
    (main, post)
}

/// The entries in the local store: one file per saved entry.
fn stored_entries(machine: &Machine) -> usize {
    // Dot-files are the store's own records (a restore's `.<entry>.used`), not entries.
    fn count(dir: &Path) -> usize {
        fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                    .map(|e| if e.path().is_dir() { count(&e.path()) } else { 1 })
                    .sum()
            })
            .unwrap_or(0)
    }
    count(&machine.store)
}

/// Four `save: always` jobs in a row, each on a new commit with no dependency change: the first
/// saves both targets; the other three restore those entries, reinstall the project (a new
/// version each time, a new build in the uv cache, new timestamps in uv's bookkeeping), and save
/// nothing. Then a `save: auto` job saves under the primary key, and on its exact hit the next
/// job's reinstall of the project draws no "the job changed the envs" notice — while an install
/// the key does not pin does.
#[test]
fn save_always_saves_once_across_unchanged_jobs_and_notices_only_real_changes() {
    let machine = Machine::new();
    init_repo(&machine.workspace);
    let (_, post) = job(&machine, "always", 1, 41, None);
    for target in ["uv", "nox"] {
        assert!(post.stdout.contains(&format!("{target}: saved uv-nox-cache-")), "{}", post.log());
    }
    let after_first = stored_entries(&machine);
    assert_eq!(after_first, 2, "one entry per target");
    for (run_id, answer) in [(2, 42), (3, 43), (4, 44)] {
        next_commit_fresh_checkout(&machine, answer);
        let (main, post) = job(&machine, "always", run_id, answer, None);
        assert_eq!(main.output("nox-restored"), "true", "{}", main.log());
        assert_eq!(main.output("uv-restored"), "true", "{}", main.log());
        for line in ["nox: the envs are as restored from", "uv: the cache is as restored from"] {
            assert!(post.stdout.contains(line), "job {run_id} must not save again:\n{}", post.log());
        }
        assert!(!post.stdout.contains(": saved uv-nox-cache-"), "job {run_id}:\n{}", post.log());
        assert!(!post.stdout.contains("the job changed the envs"), "job {run_id}:\n{}", post.log());
    }
    assert_eq!(stored_entries(&machine), after_first, "nothing new was stored");

    next_commit_fresh_checkout(&machine, 45);
    let (_, post) = job(&machine, "auto", 5, 45, None);
    assert!(post.stdout.contains("nox: saved uv-nox-cache-"), "{}", post.log());
    let changed = "::notice::nox: the job changed the envs restored from";
    next_commit_fresh_checkout(&machine, 46);
    let (main, post) = job(&machine, "auto", 6, 46, None);
    assert_eq!(main.output("nox-cache-hit"), "true", "{}", main.log());
    assert!(!post.stdout.contains(changed), "only the project was reinstalled:\n{}", post.log());
    next_commit_fresh_checkout(&machine, 47);
    let (main, post) = job(&machine, "auto", 7, 47, Some("iniconfig"));
    assert_eq!(main.output("nox-cache-hit"), "true", "{}", main.log());
    assert!(post.stdout.contains(changed), "an unpinned install is a change:\n{}", post.log());
}

fn nox(machine: &Machine, args: &[&str], offline: bool) -> Output {
    let mut cmd = machine.command(&tools::nox(), &tools::python_tools_bin());
    cmd.args(args);
    if offline {
        cmd.env("UV_OFFLINE", "1");
    }
    cmd.output().expect("run nox")
}

/// The editable install is kept, but the `_version.py` hatch-vcs wrote is git-ignored: the save
/// records it, and after a restore into a fresh checkout the restore step says, before any nox
/// runs, that `nox -R` cannot import `vcspkg._version` and what to run instead — which is then
/// exactly what happens. Where the workflow's nox commands run their installs, the same is a
/// log line, not a notice.
#[test]
fn a_generated_version_file_missing_after_restore_is_named_before_nox_r() {
    let machine = Machine::new();
    init_repo(&machine.workspace);
    let mut first = machine.job();
    first.set_env("PATH", &tools_path(&machine));
    assert_eq!(first.main().code, 0);
    let cold = nox(&machine, &["--reuse-venv=yes"], false);
    assert!(cold.status.success() && text(&cold).contains("answer 41 1.0.0"), "{}", text(&cold));
    let post = first.post();
    let version_file = machine.workspace.join("src/vcspkg/_version.py");
    let recorded =
        format!("imports {}, which git does not track", fs::canonicalize(&version_file).unwrap().display());
    assert!(post.stdout.contains(&recorded), "the save records the generated file:\n{}", post.log());

    next_commit_fresh_checkout(&machine, 42);
    let mut second = machine.job();
    second.set_env("PATH", &tools_path(&machine));
    let main = second.main();
    assert_eq!(main.output("nox-cache-hit"), "true", "{}", main.log());
    let said = "::notice::nox: env `check`: vcspkg-1.0.0 imports";
    let notice = main
        .stdout
        .lines()
        .find(|l| l.starts_with(said))
        .unwrap_or_else(|| panic!("the restore names the missing file before nox runs:\n{}", main.log()));
    for part in [
        "imports src/vcspkg/_version.py (`vcspkg._version`) from the checkout, which git does not track and this checkout lacks",
        "an import of `vcspkg._version` fails with ModuleNotFoundError",
        "(`nox -r` or `--reuse-venv=yes`)",
    ] {
        assert!(notice.contains(part), "{part}\n{notice}");
    }
    let skipped = nox(&machine, &["-R"], true);
    assert!(!skipped.status.success(), "{}", text(&skipped));
    assert!(
        text(&skipped).contains("No module named 'vcspkg._version'"),
        "nox -R hits what the restore said:\n{}",
        text(&skipped)
    );
    let installed = nox(&machine, &["-r"], true);
    assert!(installed.status.success(), "what the restore said to run works, offline:\n{}", text(&installed));
    assert!(text(&installed).contains("answer 42 1.0.1.dev1+g"), "the new code:\n{}", text(&installed));
    assert_eq!(second.post().code, 0);

    // A workflow whose nox commands run their installs: the same words, as a log line.
    let workflows = machine.workspace.join(".github/workflows");
    fs::create_dir_all(&workflows).unwrap();
    fs::write(workflows.join("ci.yml"), "jobs:\n  t:\n    steps:\n      - run: nox -r\n").unwrap();
    git(&machine.workspace, &["add", "-A"]);
    next_commit_fresh_checkout(&machine, 43);
    let mut third = machine.job();
    third
        .set_env("PATH", &tools_path(&machine))
        .set_env("GITHUB_WORKFLOW_REF", "o/r/.github/workflows/ci.yml@refs/heads/main");
    let main = third.main();
    assert_eq!(main.output("nox-cache-hit"), "true", "{}", main.log());
    assert!(!main.stdout.contains("::notice::nox: env `check`"), "{}", main.log());
    assert!(
        main.stdout.contains("nox: env `check`: vcspkg-1.0.0 imports src/vcspkg/_version.py"),
        "{}",
        main.log()
    );
}
