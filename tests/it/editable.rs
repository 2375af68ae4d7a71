//! The full loop with real uv and nox on a project that installs itself, per install style: a
//! cold job saves, the source changes without a version bump, a warm job restores and runs
//! `nox -R` (no installs). An editable install follows the checkout, so `nox -R` is green on the
//! new code; a non-editable one was evicted, so `nox -R` fails loudly instead of testing the old
//! copy. The restore log says which happened, per env.

use std::fs;
use std::path::Path;
use std::process::Output;

use crate::support::action::{Machine, Step};
use crate::support::tools;

/// How the session installs the project.
#[derive(Clone, Copy, Debug)]
enum Style {
    /// `session.install("-e", ".")`.
    Editable,
    /// The same with nox's default backend: virtualenv and pip.
    PipEditable,
    /// `uv sync --frozen` of the project (editable by default) from its uv.lock.
    UvSync,
    /// `session.install(".")`.
    Copy,
    /// `session.install("-e", ".")` of a flat layout: the package at the repository root.
    FlatEditable,
}

/// A hatchling project `seedpkg` 1.0.0 whose `answer()` returns `answer`, and a uv-backed nox
/// session `check` that installs it as `style` says and prints the answer.
fn write_project(ws: &Path, answer: u32, style: Style) {
    let package = if let Style::FlatEditable = style { "seedpkg" } else { "src/seedpkg" };
    fs::create_dir_all(ws.join(package)).unwrap();
    fs::write(
        ws.join("pyproject.toml"),
        "[project]\nname = \"seedpkg\"\nversion = \"1.0.0\"\nrequires-python = \">=3.8\"\n\n\
         [build-system]\nrequires = [\"hatchling\"]\nbuild-backend = \"hatchling.build\"\n",
    )
    .unwrap();
    fs::write(ws.join(package).join("__init__.py"), format!("def answer():\n    return {answer}\n")).unwrap();
    let backend = if let Style::PipEditable = style { "virtualenv" } else { "uv" };
    let install = match style {
        Style::Editable | Style::PipEditable | Style::FlatEditable => "session.install('-e', '.')",
        Style::UvSync => "session.run_install('uv', 'sync', '--frozen')",
        Style::Copy => "session.install('.')",
    };
    fs::write(
        ws.join("noxfile.py"),
        format!(
            "import nox\n\n@nox.session(venv_backend='{backend}')\ndef check(session):\n    {install}\n    \
             session.run('python', '-c', 'import seedpkg; print(\"answer\", seedpkg.answer())')\n"
        ),
    )
    .unwrap();
}

fn tools_path(machine: &Machine) -> String {
    format!("{}:{}", tools::python_tools_bin().display(), machine.path)
}

fn nox(machine: &Machine, args: &[&str], offline: bool) -> Output {
    let mut cmd = machine.command(&tools::nox(), &tools::python_tools_bin());
    cmd.args(args);
    if offline {
        cmd.env("UV_OFFLINE", "1");
    }
    cmd.output().expect("run nox")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Cold job, a same-version fix, a fresh checkout, the warm job's restore step.
fn full_loop(machine: &Machine, style: Style) -> Step {
    write_project(&machine.workspace, 41, style);
    if let Style::UvSync = style {
        let lock = machine
            .command(&tools::uv(), &tools::python_tools_bin())
            .args(["lock", "--quiet"])
            .output()
            .expect("run uv lock");
        assert!(lock.status.success(), "uv lock failed:\n{}", text(&lock));
    }
    let mut job = machine.job();
    job.set_env("PATH", &tools_path(machine));
    let main = job.main();
    assert_eq!(main.code, 0, "{}", main.log());
    let cold = nox(machine, &["--reuse-venv=yes"], false);
    assert!(cold.status.success() && text(&cold).contains("answer 41"), "{style:?}:\n{}", text(&cold));
    let post = job.post();
    assert!(post.stdout.contains("nox: saved"), "{}", post.log());
    let verdict = match style {
        Style::Editable | Style::PipEditable | Style::UvSync => {
            "nox: env `check`: kept seedpkg-1.0.0 — editable: a path .pth puts src"
        }
        Style::FlatEditable => {
            "nox: env `check`: kept seedpkg-1.0.0 — editable: a path .pth puts the checkout's root directory on sys.path"
        }
        Style::Copy => "nox: env `check`: left out seedpkg-1.0.0 — a non-editable copy of the project",
    };
    assert!(post.stdout.contains(verdict), "{style:?}: the save log names the verdict:\n{}", post.log());

    // The fix keeps the version number; the next job starts from a fresh checkout.
    fs::remove_dir_all(machine.workspace.join(".nox")).unwrap();
    let _ = fs::remove_dir_all(machine.home.join(".cache/uv")); // none with pip
    write_project(&machine.workspace, 42, style);
    let mut job = machine.job();
    job.set_env("PATH", &tools_path(machine));
    let main = job.main();
    assert_eq!(main.output("nox-cache-hit"), "true", "{}", main.log());
    main
}

/// The full loop for an editable `style`: the restore log names the kept install and why, and
/// `nox -R` (offline, no installs) passes on the new code.
fn nox_r_runs_the_new_code(style: Style) {
    let machine = Machine::new();
    let main = full_loop(&machine, style);
    let on_path =
        if let Style::FlatEditable = style { "the checkout's root directory" } else { "src of the checkout" };
    assert!(
        main.stdout.contains(&format!(
            "nox: env `check`: kept seedpkg-1.0.0 — editable: a path .pth puts {on_path} on sys.path"
        )),
        "{style:?}: the restore log names what was kept and why:\n{}",
        main.log()
    );
    let warm = nox(&machine, &["-R"], true);
    assert!(warm.status.success(), "{style:?}: nox -R must pass on the restored env:\n{}", text(&warm));
    assert!(text(&warm).contains("answer 42"), "{style:?}: the new code ran:\n{}", text(&warm));
}

#[test]
fn an_editable_install_runs_the_new_code_under_nox_r_after_a_hit() {
    nox_r_runs_the_new_code(Style::Editable);
}

#[test]
fn a_pip_editable_install_runs_the_new_code_under_nox_r_after_a_hit() {
    nox_r_runs_the_new_code(Style::PipEditable);
}

/// A flat layout at the repository root: the `.pth` puts the root itself on `sys.path`, and the
/// log says so in words rather than as `.`.
#[test]
fn a_flat_layout_editable_install_at_the_root_runs_the_new_code_under_nox_r_after_a_hit() {
    nox_r_runs_the_new_code(Style::FlatEditable);
}

#[test]
fn a_uv_sync_editable_project_runs_the_new_code_under_nox_r_after_a_hit() {
    nox_r_runs_the_new_code(Style::UvSync);
}

#[test]
fn a_non_editable_install_makes_nox_r_fail_loudly_after_a_hit() {
    let machine = Machine::new();
    let main = full_loop(&machine, Style::Copy);
    assert!(
        main.stdout.contains(
            "nox: env `check`: seedpkg-1.0.0 was evicted when saved — a non-editable copy of the project"
        ),
        "the restore log names what was evicted and why:\n{}",
        main.log()
    );
    let warm = nox(&machine, &["-R"], true);
    assert!(!warm.status.success(), "nox -R must fail loudly:\n{}", text(&warm));
    assert!(text(&warm).contains("No module named 'seedpkg'"), "{}", text(&warm));
    assert!(!text(&warm).contains("answer 41"), "the old code must never run:\n{}", text(&warm));
}

/// An env saved by another tool (here: by this action with `evict-project: false`, as
/// actions/cache would save it) still holds a non-editable copy; the restore removes it.
#[test]
fn a_restore_removes_a_stale_copy_from_an_env_saved_without_eviction() {
    let machine = Machine::new();
    write_project(&machine.workspace, 41, Style::Copy);
    let mut job = machine.job();
    job.set_env("PATH", &tools_path(&machine)).input("evict-project", "false");
    job.main();
    let cold = nox(&machine, &["--reuse-venv=yes"], false);
    assert!(cold.status.success(), "{}", text(&cold));
    assert_eq!(job.post().code, 0);

    fs::remove_dir_all(machine.workspace.join(".nox")).unwrap();
    write_project(&machine.workspace, 42, Style::Copy);
    let mut job = machine.job();
    job.set_env("PATH", &tools_path(&machine));
    let main = job.main();
    assert!(
        main.stdout.contains("nox: env `check`: removed seedpkg-1.0.0 after restore — a non-editable copy"),
        "{}",
        main.log()
    );
    let warm = nox(&machine, &["-R"], true);
    assert!(!warm.status.success() && text(&warm).contains("No module named 'seedpkg'"), "{}", text(&warm));
}

/// The reuse notice, per session: the noxfile turns reuse on for a maintenance session `docs`
/// only; the action reads the workflow file `GITHUB_WORKFLOW_REF` names, and when its `nox`
/// command runs `check` without reuse it names `check` — and only `check` — as the restored env
/// nox will recreate, which nox then does. It says nothing when the command reuses envs.
#[test]
fn the_reuse_notice_reads_the_workflow_and_names_the_envs_nox_will_recreate() {
    let machine = Machine::new();
    write_project(&machine.workspace, 42, Style::Copy);
    let noxfile = machine.workspace.join("noxfile.py");
    let mut text_of_noxfile = fs::read_to_string(&noxfile).unwrap();
    text_of_noxfile.push_str(
        "\n\n@nox.session(venv_backend='uv', reuse_venv=True)\ndef docs(session):\n    session.run('python', '-c', 'print(1)')\n",
    );
    fs::write(&noxfile, text_of_noxfile).unwrap();
    let workflows = machine.workspace.join(".github/workflows");
    fs::create_dir_all(&workflows).unwrap();
    let mut job = machine.job();
    job.set_env("PATH", &tools_path(&machine));
    job.main();
    assert!(nox(&machine, &["--reuse-venv=yes"], false).status.success());
    assert_eq!(job.post().code, 0);

    let warm = |workflow: &str| {
        fs::write(workflows.join("ci.yml"), workflow).unwrap();
        let mut job = machine.job();
        job.set_env("PATH", &tools_path(&machine))
            .set_env("GITHUB_WORKFLOW_REF", "me/repo/.github/workflows/ci.yml@refs/heads/main");
        let main = job.main();
        assert_eq!(main.output("nox-restored"), "true", "{}", main.log());
        main
    };
    let plain =
        warm("jobs:\n  t:\n    steps:\n      - run: pip install nox\n      - run: nox -s check docs\n");
    assert!(
        plain.stdout.contains(
            "::notice::nox: nox will delete and recreate the 1 restored envs (check): the noxfile turns reuse on only for docs and no `nox` command in .github/workflows/ci.yml that runs their sessions passes"
        ),
        "{}",
        plain.log()
    );
    let ran = nox(&machine, &["-s", "check", "docs"], false);
    assert!(ran.status.success(), "{}", text(&ran));
    assert!(
        text(&ran).contains("Creating virtual environment (uv) using"),
        "check is recreated:\n{}",
        text(&ran)
    );
    assert!(
        text(&ran).contains("Reusing existing virtual environment at .nox/docs"),
        "docs is reused:\n{}",
        text(&ran)
    );
    let reusing = warm("jobs:\n  t:\n    steps:\n      - run: nox -r -s check\n");
    assert!(
        !reusing.stdout.contains("nox will delete") && !reusing.stdout.contains("never turns env reuse on"),
        "no notice when the workflow reuses envs:\n{}",
        reusing.log()
    );
}
