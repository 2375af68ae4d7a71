//! The `uv-python` target with real uv and nox: nox envs built on a Python uv manages survive a
//! restore onto a fresh runner when uv's Python directory is restored first, and lose their
//! interpreter (and are removed) when it is not, which the save step warns about.
//!
//! uv cannot download a Python here (no network but the package registries), so the managed
//! Python is made from the interpreter the test tools run on, laid out as `uv python install`
//! lays out its relocatable builds: `cpython-X.Y.Z-linux-<arch>-gnu/` holding the executable,
//! its shared library and the standard library. Real uv takes it for one of its own: `uv python
//! install X.Y` (which nox's `--download-python always` runs) finds it installed and adds its
//! minor-version link, and `uv venv` builds the session's env on that link.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::real_tools::{self, checkout_example};
use crate::support::action::{Job, Machine};
use crate::support::tools;

/// uv's Python directory on a runner without `UV_PYTHON_INSTALL_DIR` or `XDG_DATA_HOME`.
fn python_dir(machine: &Machine) -> PathBuf {
    machine.home.join(".local/share/uv/python")
}

/// What the standard library copy leaves out: installed packages, the test suite, GUI and
/// bootstrap modules, none of which a session needs; bytecode is written again on first use.
const LEFT_OUT_OF_THE_STDLIB: &[&str] =
    &["site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "__pycache__"];

/// Installs, as `uv python install` would, a copy of the test tools' base interpreter into the
/// machine's uv Python directory; returns its `X.Y` version.
fn install_uv_managed_python(machine: &Machine) -> String {
    install_uv_managed_python_in(&machine.home)
}

/// The `X.Y` version of the test tools' interpreter.
pub fn tools_python_minor() -> String {
    let out = Command::new(tools::python_tools_bin().join("python3"))
        .args(["-I", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        .output()
        .expect("run the test tools' python");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// [`install_uv_managed_python`] for a runner whose user has `home`.
pub fn install_uv_managed_python_in(home: &Path) -> String {
    let python = tools::python_tools_bin().join("python3");
    let out = Command::new(&python)
        .args(["-I", "-c", "import sys; print(sys.base_prefix); print('%d.%d.%d' % sys.version_info[:3])"])
        .output()
        .expect("run the test tools' python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let (base, version) = text.trim().split_once('\n').unwrap();
    let (base, minor) = (Path::new(base), version.rsplit_once('.').unwrap().0.to_string());
    let install = home
        .join(".local/share/uv/python")
        .join(format!("cpython-{version}-linux-{}-gnu", std::env::consts::ARCH));
    fs::create_dir_all(install.join("bin")).unwrap();
    let executable = fs::canonicalize(base.join(format!("bin/python{minor}"))).unwrap();
    fs::copy(&executable, install.join(format!("bin/python{minor}"))).unwrap();
    for link in ["python3", "python"] {
        std::os::unix::fs::symlink(format!("python{minor}"), install.join("bin").join(link)).unwrap();
    }
    copy_tree(&base.join(format!("lib/python{minor}")), &install.join(format!("lib/python{minor}")));
    fs::create_dir_all(install.join(format!("lib/python{minor}/site-packages"))).unwrap();
    for lib in fs::read_dir(base.join("lib")).unwrap().flatten() {
        if lib.file_name().to_string_lossy().starts_with(&format!("libpython{minor}")) {
            fs::copy(lib.path(), install.join("lib").join(lib.file_name())).unwrap();
        }
    }
    // The copy is the interpreter now: its prefix is the install, not where it came from.
    let prefix = Command::new(install.join("bin/python3"))
        .args(["-I", "-c", "import sys; print(sys.prefix)"])
        .output()
        .expect("run the uv-managed copy");
    assert_eq!(String::from_utf8_lossy(&prefix.stdout).trim(), install.to_string_lossy(), "{prefix:?}");
    minor
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap().flatten() {
        let name = entry.file_name();
        if LEFT_OUT_OF_THE_STDLIB.contains(&name.to_string_lossy().as_ref()) {
            continue;
        }
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(entry.path()).unwrap(), to.join(&name)).unwrap();
        } else if kind.is_dir() {
            copy_tree(&entry.path(), &to.join(&name));
        } else {
            fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

/// The example project, its `tests` session asking for Python `minor` (as projects testing
/// several versions do), which nox has uv provide.
fn checkout_on_python(machine: &Machine, minor: &str) {
    checkout_example(machine);
    let noxfile = machine.workspace.join("noxfile.py");
    let text = fs::read_to_string(&noxfile).unwrap();
    assert!(text.contains("@nox.session\n"), "the example's noxfile changed:\n{text}");
    fs::write(&noxfile, text.replace("@nox.session\n", &format!("@nox.session(python=\"{minor}\")\n")))
        .unwrap();
}

/// `nox --download-python always`: nox has uv install the session's Python (it finds the one
/// installed) and builds the env on it. uv may use managed Pythons only, and download none.
fn nox(machine: &Machine, offline: bool) -> String {
    let args = ["--download-python", "always", "--reuse-venv=yes"];
    let env = [("UV_PYTHON_PREFERENCE", "only-managed"), ("UV_PYTHON_DOWNLOADS", "never")];
    real_tools::nox_with(machine, &args, &env, offline)
}

fn job(machine: &Machine, targets: &str) -> Job {
    let mut job = machine.job();
    job.set_env("PATH", &real_tools::tools_path(machine));
    job.input("targets", targets);
    job
}

/// The `home` the session env's `pyvenv.cfg` names.
fn env_home(machine: &Machine) -> PathBuf {
    let cfg = fs::read_to_string(machine.workspace.join(".nox/tests/pyvenv.cfg")).unwrap();
    let home = cfg.lines().find_map(|l| l.strip_prefix("home = ")).expect("pyvenv.cfg has a home");
    PathBuf::from(home)
}

/// A new job on the same runner: a new checkout's envs, uv cache and Pythons are all gone.
fn fresh_runner(machine: &Machine) {
    for dir in [machine.workspace.join(".nox"), machine.home.join(".cache/uv"), python_dir(machine)] {
        fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    }
}

#[test]
fn nox_envs_on_uv_managed_pythons_survive_when_uv_python_is_restored_first() {
    let machine = Machine::new();
    let minor = install_uv_managed_python(&machine);
    checkout_on_python(&machine, &minor);

    let mut cold = job(&machine, "nox uv-python uv");
    let main = cold.main();
    assert_eq!(main.code, 0, "{}", main.log());
    assert_eq!(main.output("uv-python-cache-hit"), "false", "{}", main.log());
    assert!(
        main.stdout.contains(&format!("uv-python directory: {}", python_dir(&machine).display())),
        "{}",
        main.log()
    );
    nox(&machine, false);
    assert!(
        env_home(&machine).starts_with(python_dir(&machine)),
        "the env is not on uv's Python: {:?}",
        env_home(&machine)
    );
    let post = cold.post();
    for target in ["uv-python", "uv", "nox"] {
        assert!(post.stdout.contains(&format!("{target}: saved")), "{target} not saved:\n{}", post.log());
    }
    assert!(!post.stdout.contains("Add `uv-python`"), "{}", post.log());

    fresh_runner(&machine);
    let mut warm = job(&machine, "nox uv uv-python");
    let main = warm.main();
    assert_eq!(main.code, 0, "{}", main.log());
    for target in ["uv-python", "uv", "nox"] {
        assert_eq!(main.output(&format!("{target}-cache-hit")), "true", "{target}:\n{}", main.log());
    }
    main.assert_hits("true");
    assert!(!main.stdout.contains("removed after restore"), "{}", main.log());
    // uv-python is restored first, whatever the input's order: the nox envs it validates
    // found their interpreter in place.
    let (pythons, envs) = (main.stdout.find("uv-python: exact hit"), main.stdout.find("nox: exact hit"));
    assert!(pythons.is_some() && pythons < envs, "{}", main.log());
    // uv's lock and scratch directory were left out; the installs and links came back.
    let restored: Vec<String> = fs::read_dir(python_dir(&machine))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(restored.iter().all(|n| !n.starts_with('.')), "{restored:?}");
    assert!(env_home(&machine).is_dir(), "{:?} did not come back ({restored:?})", env_home(&machine));

    let log = nox(&machine, true);
    assert!(log.contains("existing virtual environment"), "nox did not reuse the env:\n{log}");
    let post = warm.post();
    assert!(!post.stdout.contains(": saved"), "exact hits are not saved again:\n{}", post.log());
}

#[test]
fn without_uv_python_the_envs_lose_their_interpreter_and_the_save_says_so() {
    let machine = Machine::new();
    let minor = install_uv_managed_python(&machine);
    checkout_on_python(&machine, &minor);

    let mut cold = job(&machine, "uv nox");
    assert_eq!(cold.main().code, 0);
    nox(&machine, false);
    let post = cold.post();
    assert!(
        post.stdout.contains("Add `uv-python` to `targets`")
            && post.stdout.contains("the envs tests are built on Pythons uv installed"),
        "{}",
        post.log()
    );

    fresh_runner(&machine);
    let mut warm = job(&machine, "uv nox");
    let main = warm.main();
    assert_eq!(main.code, 0, "{}", main.log());
    assert_eq!(main.output("nox-cache-hit"), "false", "{}", main.log());
    assert!(main.stdout.contains("env `tests` removed after restore"), "{}", main.log());
    assert!(!machine.workspace.join(".nox/tests").exists(), "the env without its interpreter was kept");
}

/// The key follows the Pythons a job asks for — `requires-python`, `.python-version(s)`, the
/// noxfile — and not the dependencies, which do not change what uv installs there.
#[test]
fn the_uv_python_key_follows_the_requested_versions_only() {
    let machine = Machine::new();
    let write = |name: &str, text: &str| fs::write(machine.workspace.join(name), text).unwrap();
    write(
        "pyproject.toml",
        "[project]\nname = \"demo\"\nrequires-python = \">=3.10\"\ndependencies = [\"a\"]\n",
    );
    write("uv.lock", "version = 1\n");
    let mut job = machine.job();
    job.input("targets", "uv-python");
    let key = || job.keys()["uv-python"].clone();
    let first = key();
    assert!(first.starts_with("uv-nox-cache-1-uv-python-"), "{first}");

    write("uv.lock", "version = 1\n# another resolution\n");
    write(
        "pyproject.toml",
        "[project]\nname = \"demo\"\nrequires-python = \">=3.10\"\ndependencies = [\"a\", \"b\"]\n",
    );
    assert_eq!(key(), first, "dependencies moved the uv-python key");

    write(
        "pyproject.toml",
        "[project]\nname = \"demo\"\nrequires-python = \">=3.11\"\ndependencies = [\"a\", \"b\"]\n",
    );
    let moved = key();
    assert_ne!(moved, first);
    assert_eq!(
        moved.rsplit_once('-').unwrap().1,
        first.rsplit_once('-').unwrap().1,
        "only the fingerprint moved"
    );
    for (file, text) in
        [(".python-version", "3.12\n"), (".python-versions", "3.12\n3.13\n"), ("noxfile.py", "import nox\n")]
    {
        let before = key();
        write(file, text);
        assert_ne!(key(), before, "{file} did not move the key");
    }
}
