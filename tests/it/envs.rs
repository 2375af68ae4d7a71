//! Own-project eviction, markers and validation against envs and caches made by real uv 0.13.9 and
//! nox 2026.10.20: the layouts these functions read are the tools', not hand-written imitations.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::Digest;

use uv_nox_cache::envs::{
    self, Evicted, Eviction, Kept, MARKER_FILE, Marker, PruneError, UV_TIMEOUT, markers,
    nox_project_eviction, uv_local_builds, uv_prune_ci, validate_and_prune,
};

use uv_nox_cache::python::Interpreter;

use crate::support::tools;

/// A workspace with a tiny hatchling project in `proj/` (package `demo_pkg` under `src/`, console
/// script `demo-cli`) and a private uv cache; the paths are canonical.
struct Workspace {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    ws: PathBuf,
    cache: PathBuf,
}

impl Workspace {
    fn new() -> Workspace {
        let tmp = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(tmp.path()).unwrap();
        let ws = root.join("ws");
        let proj = ws.join("proj");
        fs::create_dir_all(proj.join("src/demo_pkg")).unwrap();
        fs::write(
            proj.join("pyproject.toml"),
            "[project]\nname = \"demo-pkg\"\nversion = \"0.1.0\"\nrequires-python = \">=3.8\"\n\n\
             [project.scripts]\ndemo-cli = \"demo_pkg.cli:main\"\n\n\
             [build-system]\nrequires = [\"hatchling\"]\nbuild-backend = \"hatchling.build\"\n",
        )
        .unwrap();
        fs::write(proj.join("src/demo_pkg/__init__.py"), "X = 1\n").unwrap();
        fs::write(proj.join("src/demo_pkg/cli.py"), "def main():\n    print('demo')\n").unwrap();
        Workspace { root: root.clone(), ws, cache: root.join("uv-cache"), _tmp: tmp }
    }

    /// `uv <args>` in the workspace with this workspace's cache; panics with uv's output on failure.
    fn uv(&self, args: &[&str], venv: Option<&Path>) {
        let mut cmd = Command::new(tools::uv());
        cmd.args(args).current_dir(&self.ws).env("UV_CACHE_DIR", &self.cache).env("UV_NO_PROGRESS", "1");
        for var in ["VIRTUAL_ENV", "UV_LINK_MODE", "UV_NO_CACHE", "UV_PYTHON", "UV_COMPILE_BYTECODE"] {
            cmd.env_remove(var);
        }
        if let Some(venv) = venv {
            cmd.env("VIRTUAL_ENV", venv);
        }
        run(&mut cmd);
    }

    /// `uv venv -p <python> <ws>/.nox/<name>`.
    fn venv(&self, python: &Path, name: &str) -> PathBuf {
        let env = self.ws.join(".nox").join(name);
        self.uv(&["venv", "--quiet", "-p", python.to_str().unwrap(), env.to_str().unwrap()], None);
        env
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The real path of the system `python3` (behind any shim) and its `platform.python_version()`.
fn base_python() -> (PathBuf, String) {
    let out = run(Command::new("python3").args([
        "-c",
        "import os, platform, sys; print(os.path.realpath(sys.executable)); print(platform.python_version())",
    ]));
    let mut lines = out.lines();
    (PathBuf::from(lines.next().unwrap()), lines.next().unwrap().to_string())
}

/// `lib/pythonX.Y/site-packages` of an env, relative to the env.
fn site_packages(env: &Path) -> PathBuf {
    let lib = fs::read_dir(env.join("lib")).unwrap().next().unwrap().unwrap().file_name();
    Path::new("lib").join(lib).join("site-packages")
}

/// The skip set as sorted strings, leaving out what lies inside any `.dist-info` directory (uv's
/// own bookkeeping files there are covered by skipping the directory itself).
fn skipped(skip: &std::collections::HashSet<PathBuf>) -> BTreeSet<String> {
    skip.iter()
        .filter(|p| !p.parent().is_some_and(|d| d.to_string_lossy().ends_with(".dist-info")))
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

fn strings(paths: &[String]) -> BTreeSet<String> {
    paths.iter().cloned().collect()
}

#[test]
fn eviction_takes_a_plain_install_and_keeps_an_editable_one_but_no_pypi_package() {
    let w = Workspace::new();
    let (python, _) = base_python();
    let plain = w.venv(&python, "plain");
    w.uv(&["pip", "install", "--quiet", "--compile-bytecode", "./proj", "idna"], Some(&plain));
    let edit = w.venv(&python, "edit");
    w.uv(&["pip", "install", "--quiet", "-e", "./proj", "idna"], Some(&edit));
    let envdir = w.ws.join(".nox");

    let eviction = nox_project_eviction(&envdir, &w.ws);

    let sp = site_packages(&plain).to_string_lossy().into_owned();
    let py = python.file_name().unwrap().to_string_lossy().replace("python", "cpython-").replace('.', "");
    let expected = strings(&[
        "plain/bin/demo-cli".into(),
        format!("plain/{sp}/demo_pkg"),
        format!("plain/{sp}/demo_pkg/__init__.py"),
        format!("plain/{sp}/demo_pkg/cli.py"),
        format!("plain/{sp}/demo_pkg/__pycache__"),
        format!("plain/{sp}/demo_pkg/__pycache__/__init__.{py}.pyc"),
        format!("plain/{sp}/demo_pkg/__pycache__/cli.{py}.pyc"),
        format!("plain/{sp}/demo_pkg-0.1.0.dist-info"),
    ]);
    assert_eq!(skipped(&eviction.skip), expected);
    let per_env = |env: &str| eviction.skip.iter().filter(|p| p.starts_with(env)).count();
    assert_eq!(
        eviction.evicted,
        [Evicted {
            env: "plain".into(),
            dist: "demo_pkg-0.1.0".into(),
            paths: per_env("plain"),
            reason: "a non-editable copy of the project: it would run old code after a source change".into()
        }]
    );
    // hatchling's editable install is a path `.pth` to the checkout's `src`: it follows the
    // checkout, so it stays, with the digest of the pyproject.toml its metadata came from.
    let digest = hex::encode(sha2::Sha256::digest(fs::read(w.ws.join("proj/pyproject.toml")).unwrap()));
    assert_eq!(
        eviction.kept,
        [Kept {
            env: "edit".into(),
            dist: "demo_pkg-0.1.0".into(),
            reason: "editable: a path .pth puts proj/src of the checkout on sys.path, so it imports the current code"
                .into(),
            pyproject_sha256: Some(digest),
            import_dirs: vec![fs::canonicalize(w.ws.join("proj/src")).unwrap()],
            generated: Vec::new(),
        }]
    );
    assert!(eviction.skip.iter().all(|p| !p.to_string_lossy().contains("idna")));
    // Nothing on disk changed: the packer leaves these out, the live envs keep them.
    for p in &eviction.skip {
        assert!(fs::symlink_metadata(envdir.join(p)).is_ok(), "{} was removed", p.display());
    }
    assert!(plain.join(format!("{sp}/idna/__init__.py")).is_file());

    // A workspace elsewhere owns none of these distributions.
    let elsewhere = w.root.join("other");
    fs::create_dir_all(&elsewhere).unwrap();
    let none = nox_project_eviction(&envdir, &elsewhere);
    assert!(none.skip.is_empty() && none.evicted.is_empty() && none.kept.is_empty(), "{:?}", none.evicted);
}

#[test]
fn eviction_after_a_real_nox_run() {
    let w = Workspace::new();
    fs::write(
        w.ws.join("noxfile.py"),
        "import nox\n\n\
         @nox.session(venv_backend=\"uv\")\n\
         def tests(session):\n    session.install(\"./proj\")\n    session.run(\"demo-cli\")\n",
    )
    .unwrap();
    let nox = |args: &[&str]| {
        let bin = tools::python_tools_bin();
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        let mut nox = Command::new(tools::nox());
        nox.args(["--non-interactive", "-s", "tests"]).args(args).current_dir(&w.ws);
        nox.env("PATH", path).env("UV_CACHE_DIR", &w.cache);
        for var in ["VIRTUAL_ENV", "UV_LINK_MODE", "UV_NO_CACHE", "UV_PYTHON", "CONDA_PREFIX"] {
            nox.env_remove(var);
        }
        nox.output().unwrap()
    };
    let first = nox(&[]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let envdir = w.ws.join(".nox");
    let sp = site_packages(&envdir.join("tests")).to_string_lossy().into_owned();
    // A marker left on disk by an earlier restore is replaced by a fresh one, never archived.
    write_markers(&envdir, "Linux", "X64");

    let eviction = nox_project_eviction(&envdir, &w.ws);

    assert_eq!(
        skipped(&eviction.skip),
        strings(&[
            format!("tests/{MARKER_FILE}"),
            "tests/bin/demo-cli".into(),
            format!("tests/{sp}/demo_pkg"),
            format!("tests/{sp}/demo_pkg/__init__.py"),
            format!("tests/{sp}/demo_pkg/cli.py"),
            format!("tests/{sp}/demo_pkg-0.1.0.dist-info"),
        ])
    );
    assert_eq!(eviction.evicted.len(), 1);
    assert_eq!(
        (eviction.evicted[0].env.as_str(), eviction.evicted[0].dist.as_str()),
        ("tests", "demo_pkg-0.1.0")
    );

    // What a restore of that archive gives: the env without the project. `nox -R` (no installs)
    // now fails loudly instead of running an old copy; a reusing run reinstalls and passes.
    let mut skip: Vec<_> = eviction.skip.iter().collect();
    skip.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in skip {
        let p = envdir.join(p);
        if p.is_dir() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) }.unwrap();
    }
    let stale = nox(&["-R"]);
    assert!(!stale.status.success(), "nox -R ran with the project evicted");
    assert!(
        String::from_utf8_lossy(&stale.stderr).contains("demo-cli"),
        "{}",
        String::from_utf8_lossy(&stale.stderr)
    );
    let reused = nox(&["--reuse-venv=yes"]);
    assert!(reused.status.success(), "{}", String::from_utf8_lossy(&reused.stderr));
}

/// Every symlink under `dir`, as (link, where it points) absolute paths.
fn symlinks(dir: &Path, out: &mut Vec<(PathBuf, PathBuf)>) {
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            let target = path.parent().unwrap().join(fs::read_link(&path).unwrap());
            out.push((path, fs::canonicalize(target).unwrap()));
        } else if kind.is_dir() {
            symlinks(&path, out);
        }
    }
}

#[test]
fn uv_local_builds_are_the_path_and_editable_builds_and_their_archives() {
    let w = Workspace::new();
    let (python, _) = base_python();
    let plain = w.venv(&python, "plain");
    w.uv(&["pip", "install", "--quiet", "./proj", "idna"], Some(&plain));
    let edit = w.venv(&python, "edit");
    w.uv(&["pip", "install", "--quiet", "-e", "./proj"], Some(&edit));

    let eviction = uv_local_builds(&w.cache);

    let sdists = fs::read_dir(&w.cache)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .find(|n| n.starts_with("sdists-v"))
        .expect("an sdists bucket");
    let builds: Vec<String> = ["path", "editable"]
        .iter()
        .flat_map(|kind| {
            let sdists = &sdists;
            fs::read_dir(w.cache.join(sdists).join(kind))
                .unwrap()
                .flatten()
                .map(move |e| format!("{sdists}/{kind}/{}", e.file_name().to_string_lossy()))
        })
        .collect();
    assert_eq!(builds.len(), 2, "one build per kind: {builds:?}");
    let (dirs, archives): (Vec<_>, Vec<_>) = eviction
        .skip
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .partition(|p| p.starts_with("sdists-"));
    assert_eq!(strings(&dirs), strings(&builds));
    assert_eq!(archives.len(), 2, "the unpacked wheel of each build: {archives:?}");
    assert!(archives.iter().all(|a| a.starts_with("archive-v") && w.cache.join(a).is_dir()), "{archives:?}");
    let kinds: Vec<(String, String)> =
        eviction.evicted.iter().map(|e| (e.env.clone(), e.dist.clone())).collect();
    assert_eq!(
        kinds,
        [
            (format!("{sdists}/path"), "demo_pkg-0.1.0".into()),
            (format!("{sdists}/editable"), "demo_pkg-0.1.0".into())
        ]
    );
    assert!(
        eviction.evicted.iter().all(|e| e.paths == 2),
        "a build dir and its archive: {:?}",
        eviction.evicted
    );

    // The PyPI wheel (idna) and what it links to stay.
    let mut links = Vec::new();
    for bucket in fs::read_dir(&w.cache)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("wheels-v"))
    {
        symlinks(&bucket.path(), &mut links);
    }
    assert!(!links.is_empty(), "uv links its PyPI wheels to archive-v0");
    for (link, target) in links {
        let rel = |p: &Path| p.strip_prefix(&w.cache).unwrap().to_path_buf();
        assert!(
            !eviction.skip.contains(&rel(&link)) && !eviction.skip.contains(&rel(&target)),
            "{}",
            link.display()
        );
    }
}

#[test]
fn uv_prune_ci_shrinks_a_real_cache_and_refuses_symlink_mode() {
    let w = Workspace::new();
    let (python, _) = base_python();
    let env = w.venv(&python, "plain");
    w.uv(&["pip", "install", "--quiet", "./proj", "idna"], Some(&env));
    let count = || walk_count(&w.cache);
    let before = count();

    let err = uv_prune_ci(&tools::uv(), &w.cache, Some("symlink"), UV_TIMEOUT).unwrap_err();
    assert!(matches!(err, PruneError::SymlinkLinkMode), "{err}");
    assert_eq!(count(), before, "a refused prune touches nothing");

    uv_prune_ci(&tools::uv(), &w.cache, None, UV_TIMEOUT).unwrap();
    let after = count();
    assert!(after < before, "prune --ci removed nothing ({before} entries before and after)");
    let built: Vec<_> = glob_whl(&w.cache);
    assert!(!built.is_empty(), "prune --ci keeps wheels built from source");
}

fn walk_count(dir: &Path) -> usize {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| 1 + if e.file_type().unwrap().is_dir() { walk_count(&e.path()) } else { 0 })
                .sum()
        })
        .unwrap_or(0)
}

/// `sdists-v*/path/*/*/*.whl`.
fn glob_whl(cache: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for bucket in fs::read_dir(cache)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("sdists-v"))
    {
        for digest in fs::read_dir(bucket.path().join("path")).into_iter().flatten().flatten() {
            for rev in fs::read_dir(digest.path()).into_iter().flatten().flatten() {
                for file in fs::read_dir(rev.path()).into_iter().flatten().flatten() {
                    if file.path().extension().is_some_and(|e| e == "whl") {
                        found.push(file.path());
                    }
                }
            }
        }
    }
    found
}

/// Writes the markers `markers()` computes into the envs, as a restore would unpack them.
fn write_markers(envdir: &Path, os: &str, arch: &str) -> usize {
    let markers = markers(envdir, os, arch, &Eviction::default(), &Default::default());
    for (rel, bytes) in &markers {
        fs::write(envdir.join(rel), bytes).unwrap();
    }
    markers.len()
}

/// `cp -a` (keeps symlinks as they are).
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to.parent().unwrap()).unwrap();
    run(Command::new("cp").arg("-a").arg(from).arg(to));
}

#[test]
fn markers_record_the_interpreter_the_version_and_the_env_path() {
    let w = Workspace::new();
    let (python, version) = base_python();
    let env = w.venv(&python, "tests");
    let envdir = w.ws.join(".nox");

    let markers = markers(&envdir, "Linux", "X64", &Eviction::default(), &Default::default());

    assert_eq!(markers.len(), 1);
    assert_eq!(markers[0].0, Path::new("tests").join(MARKER_FILE));
    let marker: Marker = serde_json::from_slice(&markers[0].1).unwrap();
    assert_eq!(
        marker,
        Marker {
            schema: envs::MARKER_SCHEMA,
            os: "Linux".into(),
            arch: "X64".into(),
            env: env.to_string_lossy().into_owned(),
            interpreter: python.to_string_lossy().into_owned(),
            python_version: version,
            project: Vec::new(),
            uv_cache_files: Vec::new(),
        }
    );
    assert!(!env.join(MARKER_FILE).exists(), "markers() writes nothing");
}

#[test]
fn validation_keeps_an_unchanged_env_and_accepts_a_staged_restore() {
    let w = Workspace::new();
    let (python, _) = base_python();
    let env = w.venv(&python, "tests");
    let envdir = w.ws.join(".nox");
    assert_eq!(write_markers(&envdir, "Linux", "X64"), 1);
    // Restored into a staging dir whose final home is the envdir: judged at the final path.
    let stage = w.root.join("stage/.nox");
    copy_tree(&envdir, &stage);

    assert_eq!(validate_and_prune(&stage, &envdir, "Linux", "X64", None), []);
    assert!(stage.join("tests/pyvenv.cfg").is_file());
    assert_eq!(validate_and_prune(&envdir, &envdir, "Linux", "X64", None), []);
    assert!(env.join("pyvenv.cfg").is_file());
    assert!(!env.join(MARKER_FILE).exists(), "a validated env's marker is consumed");
    // Without a marker (saved by another tool) the structural checks alone pass it.
    assert_eq!(validate_and_prune(&envdir, &envdir, "Linux", "X64", None), []);
    assert!(env.join("pyvenv.cfg").is_file());
}

/// The interpreter the keys were computed with is not asked again: its answer stands for an env
/// built on it (here a made-up version, to show the answer was used), and an interpreter at
/// another path changes nothing.
#[test]
fn validation_takes_the_keys_interpreter_at_its_word() {
    let w = Workspace::new();
    let (python, version) = base_python();
    w.venv(&python, "tests");
    let envdir = w.ws.join(".nox");
    write_markers(&envdir, "Linux", "X64");

    let elsewhere = Interpreter { realpath: "/nowhere/python3".into(), version: "2.7.18".into() };
    assert_eq!(validate_and_prune(&envdir, &envdir, "Linux", "X64", Some(&elsewhere)), []);

    write_markers(&envdir, "Linux", "X64");
    let same = Interpreter { realpath: python.display().to_string(), version: "3.0.1".into() };
    let invalid = validate_and_prune(&envdir, &envdir, "Linux", "X64", Some(&same));
    assert_eq!(invalid.len(), 1, "{invalid:?}");
    let reason = &invalid[0].reason;
    assert!(reason.contains("is Python 3.0.1") && reason.contains(&version), "{reason}");
}

#[test]
fn validation_deletes_an_env_restored_to_another_path() {
    let w = Workspace::new();
    let (python, _) = base_python();
    let env = w.venv(&python, "tests");
    let envdir = w.ws.join(".nox");
    write_markers(&envdir, "Linux", "X64");
    let moved = w.root.join("elsewhere/.nox");
    copy_tree(&envdir, &moved);

    let invalid = validate_and_prune(&moved, &moved, "Linux", "X64", None);

    assert_eq!(invalid.len(), 1, "{invalid:?}");
    assert_eq!(invalid[0].env, "tests");
    let reason = &invalid[0].reason;
    assert!(reason.contains(&format!("built at {}", env.display())), "{reason}");
    assert!(reason.contains(&moved.join("tests").display().to_string()), "{reason}");
    assert!(!moved.join("tests").exists(), "the invalid env is deleted");
    assert!(env.join("pyvenv.cfg").is_file(), "the original is untouched");
}

#[test]
fn validation_deletes_an_env_from_another_os_or_arch() {
    let w = Workspace::new();
    let (python, _) = base_python();
    w.venv(&python, "a");
    w.venv(&python, "b");
    let envdir = w.ws.join(".nox");
    let markers = markers(&envdir, "Linux", "X64", &Eviction::default(), &Default::default());
    fs::write(envdir.join(&markers[0].0), &markers[0].1).unwrap();
    let arm: Vec<u8> =
        String::from_utf8(markers[1].1.clone()).unwrap().replace("\"X64\"", "\"ARM64\"").into();
    fs::write(envdir.join(&markers[1].0), arm).unwrap();

    let invalid = validate_and_prune(&envdir, &envdir, "macOS", "X64", None);

    assert_eq!(invalid.len(), 2, "{invalid:?}");
    assert_eq!(invalid[0].env, "a");
    assert!(invalid[0].reason.contains("built on OS Linux, this runner is macOS"), "{}", invalid[0].reason);
    assert!(!envdir.join("a").exists() && !envdir.join("b").exists());
    // On Linux, `b` fails on its arch.
    w.venv(&python, "b");
    write_markers(&envdir, "Linux", "ARM64");
    let invalid = validate_and_prune(&envdir, &envdir, "Linux", "X64", None);
    assert_eq!(invalid.len(), 1, "{invalid:?}");
    assert!(invalid[0].reason.contains("built on arch ARM64, this runner is X64"), "{}", invalid[0].reason);
}

/// A venv made from a copy of the base interpreter at `<root>/alt/bin`, which the caller removes.
fn venv_on_a_copied_python(w: &Workspace, name: &str) -> (PathBuf, PathBuf) {
    let (python, _) = base_python();
    let alt = w.root.join("alt/bin");
    fs::create_dir_all(&alt).unwrap();
    let copy = alt.join(python.file_name().unwrap());
    if !copy.exists() {
        fs::copy(&python, &copy).unwrap();
    }
    (w.venv(&copy, name), copy)
}

#[test]
fn validation_deletes_an_env_whose_interpreter_is_gone() {
    let w = Workspace::new();
    let (env, copy) = venv_on_a_copied_python(&w, "tests");
    let envdir = w.ws.join(".nox");
    write_markers(&envdir, "Linux", "X64");
    let marker: Marker = serde_json::from_slice(&fs::read(env.join(MARKER_FILE)).unwrap()).unwrap();
    assert_eq!(Path::new(&marker.interpreter), copy);
    fs::remove_dir_all(w.root.join("alt")).unwrap();

    let invalid = validate_and_prune(&envdir, &envdir, "Linux", "X64", None);

    assert_eq!(invalid.len(), 1, "{invalid:?}");
    assert_eq!(
        invalid[0].reason,
        format!("interpreter {} the env was built with no longer exists", copy.display())
    );
    assert!(!env.exists());
}

#[test]
fn validation_deletes_an_env_without_marker_whose_python_dangles() {
    let w = Workspace::new();
    let (python, _) = base_python();
    let (dangling, copy) = venv_on_a_copied_python(&w, "dangling");
    let fine = w.venv(&python, "fine");
    let envdir = w.ws.join(".nox");
    fs::remove_dir_all(w.root.join("alt")).unwrap();

    let invalid = validate_and_prune(&envdir, &envdir, "Linux", "X64", None);

    assert_eq!(invalid.len(), 1, "{invalid:?}");
    assert_eq!(invalid[0].env, "dangling");
    let reason = &invalid[0].reason;
    assert!(reason.contains("bin/python") && reason.contains(&copy.display().to_string()), "{reason}");
    assert!(reason.ends_with("does not exist"), "{reason}");
    assert!(!dangling.exists());
    assert!(fine.join("pyvenv.cfg").is_file());
}

#[test]
fn validation_deletes_an_env_whose_interpreter_changed_version() {
    let w = Workspace::new();
    let (python, version) = base_python();
    let env = w.venv(&python, "tests");
    let envdir = w.ws.join(".nox");
    let markers = markers(&envdir, "Linux", "X64", &Eviction::default(), &Default::default());
    let mut marker: Marker = serde_json::from_slice(&markers[0].1).unwrap();
    marker.python_version = "3.0.1".into();
    fs::write(env.join(MARKER_FILE), serde_json::to_vec(&marker).unwrap()).unwrap();

    let invalid = validate_and_prune(&envdir, &envdir, "Linux", "X64", None);

    assert_eq!(invalid.len(), 1, "{invalid:?}");
    assert_eq!(
        invalid[0].reason,
        format!("interpreter {} is Python {version}, the env was built with Python 3.0.1", python.display())
    );
    assert!(!env.exists());
}

#[test]
fn eviction_covers_a_setuptools_editable_finder_and_its_bytecode() {
    let w = Workspace::new();
    let flat = w.ws.join("flat");
    fs::create_dir_all(flat.join("flatpkg")).unwrap();
    fs::write(
        flat.join("pyproject.toml"),
        "[project]\nname = \"flatpkg\"\nversion = \"0.2.0\"\n\n[project.scripts]\nflat-cli = \"flatpkg:main\"\n\n\
         [build-system]\nrequires = [\"setuptools>=64\"]\nbuild-backend = \"setuptools.build_meta\"\n",
    )
    .unwrap();
    fs::write(flat.join("flatpkg/__init__.py"), "def main():\n    pass\n").unwrap();
    let (python, _) = base_python();
    let env = w.venv(&python, "st");
    w.uv(&["pip", "install", "--quiet", "--compile-bytecode", "-e", "./flat", "idna"], Some(&env));
    let sp = site_packages(&env).to_string_lossy().into_owned();
    let py = python.file_name().unwrap().to_string_lossy().replace("python", "cpython-").replace('.', "");

    let eviction = nox_project_eviction(&w.ws.join(".nox"), &w.ws);

    assert_eq!(
        skipped(&eviction.skip),
        strings(&[
            "st/bin/flat-cli".into(),
            format!("st/{sp}/__editable__.flatpkg-0.2.0.pth"),
            format!("st/{sp}/__editable___flatpkg_0_2_0_finder.py"),
            format!("st/{sp}/__pycache__"),
            format!("st/{sp}/__pycache__/__editable___flatpkg_0_2_0_finder.{py}.pyc"),
            format!("st/{sp}/flatpkg-0.2.0.dist-info"),
        ]),
        "site-packages/__pycache__ held only the finder's bytecode, so it goes too"
    );
    assert!(env.join(format!("{sp}/idna/__pycache__")).is_dir());
    assert!(eviction.kept.is_empty(), "{:?}", eviction.kept);
    assert!(
        eviction.evicted[0].reason.starts_with("an import-hook finder (")
            && eviction.evicted[0].reason.contains("modules added since are missing"),
        "{}",
        eviction.evicted[0].reason
    );
}

/// A project `name` in `<ws>/<name>`: `pyproject` is the whole pyproject.toml; `files` are
/// (path, content) pairs relative to the project.
fn project(w: &Workspace, name: &str, pyproject: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = w.ws.join(name);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("pyproject.toml"), pyproject).unwrap();
    for (path, content) in files {
        let path = dir.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }
    dir
}

const HATCHLING: &str = "[build-system]\nrequires = [\"hatchling\"]\nbuild-backend = \"hatchling.build\"\n";
const SETUPTOOLS: &str =
    "[build-system]\nrequires = [\"setuptools>=64\"]\nbuild-backend = \"setuptools.build_meta\"\n";

/// Installs `./<name>` editable into a new env `<name>` with real uv and returns what eviction
/// decides for it: `Ok(reason)` when kept, `Err(reason)` when evicted.
fn editable_verdict(w: &Workspace, name: &str) -> Result<String, String> {
    let (python, _) = base_python();
    let env = w.venv(&python, name);
    w.uv(&["pip", "install", "--quiet", "-e", &format!("./{name}")], Some(&env));
    let eviction = nox_project_eviction(&w.ws.join(".nox"), &w.ws);
    let kept: Vec<_> = eviction.kept.iter().filter(|k| k.env == name).collect();
    let evicted: Vec<_> = eviction.evicted.iter().filter(|e| e.env == name).collect();
    match (kept.as_slice(), evicted.as_slice()) {
        ([k], []) => Ok(k.reason.clone()),
        ([], [e]) => {
            assert!(e.paths > 1, "the whole install is left out: {e:?}");
            Err(e.reason.clone())
        }
        _ => panic!("{name}: expected one verdict, got kept {kept:?}, evicted {evicted:?}"),
    }
}

/// One real install per style, each judged: the path-`.pth` editables of hatchling and
/// setuptools stay; an import-hook finder, compiled extensions built in place and generated
/// metadata go, each with its reason.
#[test]
fn each_editable_install_style_gets_its_own_verdict() {
    let w = Workspace::new();
    let hatch_src = format!("[project]\nname = \"hsrc\"\nversion = \"0.1.0\"\n{HATCHLING}");
    project(&w, "hsrc", &hatch_src, &[("src/hsrc/__init__.py", "")]);
    let st_src = format!("[project]\nname = \"ssrc\"\nversion = \"0.1.0\"\n{SETUPTOOLS}");
    project(&w, "ssrc", &st_src, &[("src/ssrc/__init__.py", "")]);
    let exact = format!(
        "[project]\nname = \"hx\"\nversion = \"0.1.0\"\n{HATCHLING}[tool.hatch.build.targets.wheel]\ndev-mode-exact = true\n"
    );
    project(&w, "hx", &exact, &[("src/hx/__init__.py", "")]);
    let dynamic = format!(
        "[project]\nname = \"dyn\"\ndynamic = [\"version\", \"dependencies\"]\n{SETUPTOOLS}\
         [tool.setuptools.dynamic]\nversion = {{attr = \"dyn.V\"}}\ndependencies = {{file = \"reqs.txt\"}}\n"
    );
    project(&w, "dyn", &dynamic, &[("src/dyn/__init__.py", "V = '1.0'\n"), ("reqs.txt", "")]);
    let cext = format!("[project]\nname = \"cext\"\nversion = \"0.1.0\"\n{SETUPTOOLS}");
    project(
        &w,
        "cext",
        &cext,
        &[
            (
                "setup.py",
                "from setuptools import setup, Extension\nsetup(ext_modules=[Extension('cext._speed', ['src/cext/_speed.c'])])\n",
            ),
            ("src/cext/__init__.py", ""),
            (
                "src/cext/_speed.c",
                "#include <Python.h>\nstatic struct PyModuleDef d = {PyModuleDef_HEAD_INIT, \"_speed\", 0, -1, 0};\n\
                 PyMODINIT_FUNC PyInit__speed(void) { return PyModule_Create(&d); }\n",
            ),
        ],
    );

    assert_eq!(
        editable_verdict(&w, "hsrc"),
        Ok("editable: a path .pth puts hsrc/src of the checkout on sys.path, so it imports the current code"
            .into())
    );
    assert_eq!(
        editable_verdict(&w, "ssrc"),
        Ok("editable: a path .pth puts ssrc/src of the checkout on sys.path, so it imports the current code"
            .into())
    );
    let hook = editable_verdict(&w, "hx").unwrap_err();
    assert!(
        hook.starts_with("an import-hook finder (") && hook.contains("import _editable_impl_hx"),
        "{hook}"
    );
    let generated = editable_verdict(&w, "dyn").unwrap_err();
    assert_eq!(
        generated,
        "pyproject.toml marks dependencies as dynamic: generated from files the key does not hash, so the env's copy can be old"
    );
    let compiled = editable_verdict(&w, "cext").unwrap_err();
    assert!(
        compiled.starts_with("compiled extensions built in place in the checkout (cext/src/cext/_speed.")
            && compiled.ends_with("they stay old until the install step rebuilds them"),
        "{compiled}"
    );
}

/// After a restore, a kept editable install whose project's pyproject.toml changed since the
/// save is found and removed; one whose pyproject.toml is unchanged stays.
#[test]
fn a_kept_editable_whose_pyproject_changed_is_removed_after_restore() {
    let w = Workspace::new();
    let (python, _) = base_python();
    let env = w.venv(&python, "e");
    w.uv(&["pip", "install", "--quiet", "-e", "./proj"], Some(&env));
    let envdir = w.ws.join(".nox");
    let saved = nox_project_eviction(&envdir, &w.ws);
    let recorded: Vec<(String, String)> =
        saved.kept.iter().map(|k| (k.dist.clone(), k.pyproject_sha256.clone().unwrap())).collect();
    assert_eq!(recorded.len(), 1);
    assert!(envs::changed_since_saved(&envdir, &w.ws, &recorded).evicted.is_empty());

    let pyproject = w.ws.join("proj/pyproject.toml");
    let text = fs::read_to_string(&pyproject).unwrap();
    fs::write(&pyproject, text.replace("demo-cli = ", "demo-tool = ")).unwrap();
    let stale = envs::changed_since_saved(&envdir, &w.ws, &recorded);
    assert_eq!(stale.evicted.len(), 1);
    assert!(stale.evicted[0].reason.starts_with("its pyproject.toml changed since the env was saved"));
    assert_eq!(envs::remove_evicted(&envdir, &stale), Vec::<String>::new());
    let sp = site_packages(&env);
    assert!(!env.join(&sp).join("demo_pkg-0.1.0.dist-info").exists());
    assert!(!env.join("bin/demo-cli").exists());
    assert!(!env.join(&sp).join("_editable_impl_demo_pkg.pth").exists());
}

#[test]
fn validation_accepts_a_staged_env_whose_interpreter_is_copied_into_it() {
    let w = Workspace::new();
    let (python, _) = base_python();
    let envdir = w.ws.join(".nox");
    let env = envdir.join("copies");
    run(Command::new(&python).args(["-m", "venv", "--copies", "--without-pip"]).arg(&env));
    assert!(!fs::symlink_metadata(env.join("bin/python")).unwrap().file_type().is_symlink());
    assert_eq!(write_markers(&envdir, "Linux", "X64"), 1);
    let stage = w.root.join("stage/.nox");
    copy_tree(&envdir, &stage);
    fs::remove_dir_all(&envdir).unwrap();

    assert_eq!(validate_and_prune(&stage, &envdir, "Linux", "X64", None), []);
    assert!(stage.join("copies/bin/python").is_file());
}
