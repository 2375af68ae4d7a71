//! The action's packaging: the action.yml files declare docs/design.md §3, the node launcher's
//! platform table matches the release matrix, and the launcher fails or falls back as documented.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_yaml_ng::{Mapping, Value};

/// The inputs of docs/design.md §3, in its order, with the `default:` each action.yml declares
/// (`None`: computed at run time, so not declared).
// The binary's own list (`uv-nox-cache inputs`) is compared with it below.
const DESIGN_INPUTS: &[(&str, Option<&str>)] = &[
    ("targets", Some("uv nox")),
    ("working-directory", Some(".")),
    ("key-files", None),
    ("key-suffix", None),
    ("python", None),
    ("restore-keys", Some("auto")),
    ("save", Some("auto")),
    ("lookup-only", Some("false")),
    ("fail-on-cache-miss", Some("false")),
    ("uv-cache-dir", None),
    ("uv-prune", Some("none")),
    ("uv-max-size", None),
    ("nox-envdir", Some(".nox")),
    ("evict-project", Some("true")),
    ("backend", Some("auto")),
    ("local-dir", None),
    ("local-max-size", None),
    ("s3-bucket", None),
    ("s3-prefix", None),
    ("s3-endpoint", None),
    ("s3-region", None),
    ("s3-path-style", None),
    ("compression", Some("zstd")),
    ("compression-level", Some("auto")),
    ("timeout", Some("600")),
];

const DESIGN_OUTPUTS: &[&str] = &[
    "cache-hit",
    "uv-cache-hit",
    "nox-cache-hit",
    "uv-python-cache-hit",
    "uv-restored",
    "nox-restored",
    "uv-python-restored",
    "uv-key",
    "nox-key",
    "uv-python-key",
    "uv-matched-key",
    "nox-matched-key",
    "uv-python-matched-key",
];

/// The launcher's `<platform>-<arch>[-<libc>]` → target triple table, as the brief fixes it.
const PLATFORMS: &[(&str, &str)] = &[
    ("linux-x64-gnu", "x86_64-unknown-linux-gnu"),
    ("linux-x64-musl", "x86_64-unknown-linux-musl"),
    ("linux-arm64-gnu", "aarch64-unknown-linux-gnu"),
    ("linux-arm64-musl", "aarch64-unknown-linux-musl"),
    ("darwin-x64", "x86_64-apple-darwin"),
    ("darwin-arm64", "aarch64-apple-darwin"),
    ("win32-x64", "x86_64-pc-windows-msvc"),
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn yaml(rel: &str) -> Mapping {
    let text = fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"));
    match serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("parse {rel}: {e}")) {
        Value::Mapping(map) => map,
        other => panic!("{rel}: top level is not a mapping: {other:?}"),
    }
}

fn get<'a>(map: &'a Mapping, key: &str) -> Option<&'a Value> {
    map.get(Value::from(key))
}

fn str_at<'a>(map: &'a Mapping, key: &str, what: &str) -> &'a str {
    get(map, key).and_then(Value::as_str).unwrap_or_else(|| panic!("{what}: no string `{key}`"))
}

fn section<'a>(action: &'a Mapping, key: &str, rel: &str) -> &'a Mapping {
    get(action, key).and_then(Value::as_mapping).unwrap_or_else(|| panic!("{rel}: no `{key}` mapping"))
}

/// Names of `inputs`/`outputs` in file order, after checking each has a description.
fn described_names(action: &Mapping, key: &str, rel: &str) -> Vec<String> {
    section(action, key, rel)
        .iter()
        .map(|(name, body)| {
            let name = name.as_str().unwrap_or_else(|| panic!("{rel}: {key} name {name:?}")).to_owned();
            let body = body.as_mapping().unwrap_or_else(|| panic!("{rel}: {key}.{name} is not a mapping"));
            let description = str_at(body, "description", &format!("{rel}: {key}.{name}"));
            assert!(!description.trim().is_empty(), "{rel}: {key}.{name} has an empty description");
            name
        })
        .collect()
}

/// The three node actions and the Forgejo sh action all take the inputs of docs/design.md §3.
const ACTIONS: &[&str] = &["action.yml", "restore/action.yml", "save/action.yml", "forgejo/action.yml"];

#[test]
fn every_action_declares_the_design_inputs_with_descriptions() {
    let want: Vec<String> = DESIGN_INPUTS.iter().map(|(name, _)| name.to_string()).collect();
    for rel in ACTIONS {
        let action = yaml(rel);
        assert_eq!(
            described_names(&action, "inputs", rel),
            want,
            "{rel}: inputs differ from docs/design.md §3"
        );
    }
}

#[test]
fn the_binary_knows_exactly_the_declared_inputs() {
    let out = Command::new(env!("CARGO_BIN_EXE_uv-nox-cache")).arg("inputs").output().unwrap();
    assert!(out.status.success());
    let binary: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect();
    let declared = described_names(&yaml("action.yml"), "inputs", "action.yml");
    assert_eq!(binary, declared, "the binary's inputs and action.yml's differ");
}

#[test]
fn input_defaults_are_those_of_the_design() {
    for rel in ACTIONS {
        let inputs = section(&yaml(rel), "inputs", rel).clone();
        for (name, default) in DESIGN_INPUTS {
            let body = get(&inputs, name).and_then(Value::as_mapping).unwrap();
            let declared = get(body, "default").map(|v| match v {
                Value::String(s) => s.clone(),
                other => panic!("{rel}: inputs.{name}.default is not a string: {other:?}"),
            });
            assert_eq!(declared.as_deref(), *default, "{rel}: default of {name}");
        }
    }
}

#[test]
fn sub_actions_repeat_the_root_inputs_exactly() {
    let root_inputs = section(&yaml("action.yml"), "inputs", "action.yml").clone();
    for rel in &ACTIONS[1..] {
        assert_eq!(section(&yaml(rel), "inputs", rel), &root_inputs, "{rel}: run scripts/sync-actions");
    }
}

#[test]
fn outputs_are_declared_where_restore_runs() {
    let want: Vec<String> = DESIGN_OUTPUTS.iter().map(|s| s.to_string()).collect();
    for rel in ["action.yml", "restore/action.yml", "forgejo/action.yml"] {
        assert_eq!(described_names(&yaml(rel), "outputs", rel), want, "{rel}: outputs");
    }
    assert!(get(&yaml("save/action.yml"), "outputs").is_none(), "save/ sets no outputs");
}

#[test]
fn runs_start_the_launcher_with_the_right_command() {
    let post_if = "success() || env.UV_NOX_CACHE_SAVE_ON_FAILURE == 'true'";
    let cases: &[(&str, &str, &str, Option<&str>)] = &[
        ("action.yml", "node24", "dist/main.js", Some("dist/post.js")),
        ("restore/action.yml", "node24", "../dist/restore.js", None),
        ("save/action.yml", "node24", "../dist/save.js", None),
    ];
    for (rel, using, main, post) in cases {
        let action = yaml(rel);
        let runs = section(&action, "runs", rel);
        assert_eq!(str_at(runs, "using", rel), *using, "{rel}");
        assert_eq!(str_at(runs, "main", rel), *main, "{rel}");
        assert_eq!(get(runs, "post").and_then(Value::as_str), *post, "{rel}");
        if post.is_some() {
            assert_eq!(str_at(runs, "post-if", rel), post_if, "{rel}");
        }
        let dir = Path::new(rel).parent().unwrap();
        for script in [Some(*main), *post].into_iter().flatten() {
            assert!(root().join(dir).join(script).is_file(), "{rel}: {script} does not exist");
        }
    }
    let forgejo = yaml("forgejo/action.yml");
    let runs = section(&forgejo, "runs", "forgejo/action.yml");
    assert_eq!(str_at(runs, "using", "forgejo"), "sh");
    assert_eq!(str_at(runs, "main", "forgejo"), "sh \"$GITHUB_ACTION_PATH/launch.sh\" restore || exit $?");
    assert_eq!(str_at(runs, "post", "forgejo"), "sh \"$GITHUB_ACTION_PATH/launch.sh\" save || exit $?");
    assert_eq!(str_at(runs, "post-if", "forgejo"), post_if);
    assert!(root().join("forgejo/launch.sh").is_file());
}

// ---- the node launcher ----

fn node() -> Command {
    Command::new("node")
}

fn output(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?} (node is needed for these tests): {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `PLATFORMS` as dist/launch.js exports it.
fn launcher_platforms() -> Vec<(String, String)> {
    let out = output(
        node()
            .args(["-e", r#"console.log(JSON.stringify(require("./dist/launch.js").PLATFORMS))"#])
            .current_dir(root()),
    );
    assert!(out.status.success(), "node failed: {}", text(&out.stderr));
    let table: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&out.stdout).expect("PLATFORMS is a JSON object");
    table.into_iter().map(|(k, v)| (k, v.as_str().expect("triple is a string").to_owned())).collect()
}

#[test]
fn launcher_platform_table_is_the_documented_one() {
    let mut want: Vec<(String, String)> =
        PLATFORMS.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let mut got = launcher_platforms();
    want.sort();
    got.sort();
    assert_eq!(got, want);
}

#[test]
fn release_matrix_builds_exactly_the_launcher_triples() {
    let workflow = yaml(".github/workflows/release.yml");
    let include = get(section(&workflow, "jobs", "release.yml"), "build")
        .and_then(|build| build.get("strategy"))
        .and_then(|strategy| strategy.get("matrix"))
        .and_then(|matrix| matrix.get("include"))
        .and_then(Value::as_sequence)
        .expect("release.yml: jobs.build.strategy.matrix.include");
    let built: Vec<&str> =
        include.iter().map(|cell| cell.get("target").and_then(Value::as_str).expect("target")).collect();
    let built_set: BTreeSet<&str> = built.iter().copied().collect();
    assert_eq!(built.len(), built_set.len(), "release.yml builds a triple twice: {built:?}");
    let launcher = launcher_platforms();
    let wanted: BTreeSet<&str> = launcher.iter().map(|(_, triple)| triple.as_str()).collect();
    assert_eq!(built_set, wanted);
}

/// Runs the launcher itself; unix-only (symlinks, shell scripts as fake binaries).
#[cfg(unix)]
mod launcher {
    use super::*;

    /// A copy of the launcher in a temporary action root, with no binaries, plus a `bin/` that holds
    /// only `node` (and whatever a test adds), for use as PATH.
    struct Launcher {
        dir: tempfile::TempDir,
    }

    impl Launcher {
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("tempdir");
            let dist = dir.path().join("action/dist");
            fs::create_dir_all(&dist).unwrap();
            for js in ["launch.js", "main.js", "post.js"] {
                fs::copy(root().join("dist").join(js), dist.join(js)).unwrap();
            }
            fs::write(dir.path().join("action/Cargo.toml"), "[package]\nname = \"x\"\nversion = \"9.8.7\"\n")
                .unwrap();
            fs::create_dir_all(dir.path().join("action/src")).unwrap();
            fs::write(dir.path().join("action/src/main.rs"), "fn main() {}\n").unwrap();
            let bin = dir.path().join("bin");
            fs::create_dir_all(&bin).unwrap();
            let out = output(node().args(["-e", "console.log(process.execPath)"]));
            let node_path = PathBuf::from(text(&out.stdout).trim());
            std::os::unix::fs::symlink(node_path, bin.join("node")).unwrap();
            Launcher { dir }
        }

        fn path(&self, rel: &str) -> PathBuf {
            self.dir.path().join(rel)
        }

        /// Adds an executable shell script to `bin/`.
        fn script(&self, rel: &str, body: &str) {
            use std::os::unix::fs::PermissionsExt;
            let path = self.path(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }

        /// `node dist/<entry>.js` as platform `platform`, with PATH = bin/ only.
        fn run(&self, entry: &str, platform: &str) -> Output {
            output(
                Command::new(self.path("bin/node"))
                    .arg(self.path(&format!("action/dist/{entry}.js")))
                    .env_clear()
                    .env("PATH", self.path("bin"))
                    .env("RUNNER_TOOL_CACHE", self.path("toolcache"))
                    .env("UV_NOX_CACHE_PLATFORM", platform),
            )
        }
    }

    #[test]
    fn launcher_on_an_unsupported_platform_without_cargo_names_the_platform_and_the_fix() {
        let launcher = Launcher::new();
        let out = launcher.run("main", "sunos-x64");
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "stdout: {stdout}\nstderr: {}", text(&out.stderr));
        assert!(stdout.starts_with("::error::"), "{stdout}");
        assert!(stdout.contains("sunos/x64"), "names the platform: {stdout}");
        assert!(stdout.contains("supported runner"), "names the first fix: {stdout}");
        assert!(stdout.contains("install Rust"), "names the second fix: {stdout}");
    }

    #[test]
    fn launcher_without_the_prebuilt_binary_and_without_cargo_names_the_missing_folder() {
        let launcher = Launcher::new();
        let out = launcher.run("main", "linux-arm64-musl");
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stdout}");
        assert!(stdout.contains("linux/arm64 (musl)"), "{stdout}");
        assert!(stdout.contains("dist/aarch64-unknown-linux-musl/"), "{stdout}");
    }

    /// On a supported platform whose binary this ref lacks (a branch between releases), the fix is
    /// a release tag, not another runner: the runner is fine.
    #[test]
    fn launcher_on_a_supported_platform_without_its_binary_says_to_use_a_release_tag() {
        let launcher = Launcher::new();
        for platform in ["darwin-arm64", "darwin-x64", "win32-x64", "linux-arm64-gnu"] {
            let out = launcher.run("main", platform);
            let stdout = text(&out.stdout);
            assert_eq!(out.status.code(), Some(1), "{platform}: {stdout}");
            assert!(stdout.contains("use a release tag (@vX.Y.Z"), "{platform}: {stdout}");
            assert!(!stdout.contains("supported runner"), "{platform}: blames the runner: {stdout}");
            assert!(stdout.contains("install Rust"), "{platform}: {stdout}");
        }
    }

    #[test]
    fn launcher_runs_the_prebuilt_binary_and_passes_its_exit_code_on() {
        let launcher = Launcher::new();
        launcher.script(
            "action/dist/x86_64-unknown-linux-musl/uv-nox-cache",
            "echo \"binary ran: $*\"\nexit 7\n",
        );
        let out = launcher.run("post", "linux-x64-musl");
        assert_eq!(out.status.code(), Some(7));
        assert_eq!(text(&out.stdout), "binary ran: save\n");
    }

    #[test]
    fn launcher_runs_uv_nox_cache_binary_when_set() {
        let launcher = Launcher::new();
        launcher.script("elsewhere/uv-nox-cache", "echo \"override ran: $*\"\n");
        let out = output(
            Command::new(launcher.path("bin/node"))
                .arg(launcher.path("action/dist/main.js"))
                .env_clear()
                .env("PATH", launcher.path("bin"))
                .env("UV_NOX_CACHE_PLATFORM", "sunos-x64")
                .env("UV_NOX_CACHE_BINARY", launcher.path("elsewhere/uv-nox-cache")),
        );
        assert!(out.status.success(), "{}", text(&out.stdout));
        assert_eq!(text(&out.stdout), "override ran: restore\n");
    }

    #[test]
    fn launcher_maps_death_by_signal_to_exit_code_1() {
        let launcher = Launcher::new();
        launcher.script("action/dist/x86_64-apple-darwin/uv-nox-cache", "kill -9 $$\n");
        let out = launcher.run("main", "darwin-x64");
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    }

    #[test]
    fn launcher_builds_with_cargo_once_into_the_tool_cache_when_no_binary_ships() {
        let launcher = Launcher::new();
        // A fake cargo: records how it was called and "builds" a binary where cargo would put it.
        let log = launcher.path("cargo.log");
        launcher.script(
            "bin/cargo",
            &format!(
                "PATH=/usr/bin:/bin\n\
                 echo \"$PWD|$*|$CARGO_TARGET_DIR\" >> '{log}'\n\
                 mkdir -p \"$CARGO_TARGET_DIR/release\"\n\
                 printf '#!/bin/sh\\necho \"built binary ran: $1\"\\n' > \"$CARGO_TARGET_DIR/release/uv-nox-cache\"\n\
                 chmod +x \"$CARGO_TARGET_DIR/release/uv-nox-cache\"\n",
                log = log.display()
            ),
        );
        for entry in ["main", "post"] {
            let out = launcher.run(entry, "linux-arm64-gnu");
            assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
            let command = if entry == "main" { "restore" } else { "save" };
            assert!(
                text(&out.stdout).ends_with(&format!("built binary ran: {command}\n")),
                "{}",
                text(&out.stdout)
            );
        }
        let calls = fs::read_to_string(&log).unwrap();
        let calls: Vec<&str> = calls.lines().collect();
        assert_eq!(calls.len(), 1, "cargo runs once, the second step reuses its build: {calls:?}");
        let [cwd, args, target_dir] = calls[0].split('|').collect::<Vec<_>>()[..] else {
            panic!("{calls:?}")
        };
        assert_eq!(fs::canonicalize(cwd).unwrap(), fs::canonicalize(launcher.path("action")).unwrap());
        assert_eq!(args, "build --release --locked");
        let target_dir = Path::new(target_dir);
        assert_eq!(target_dir.parent().unwrap(), launcher.path("toolcache/uv-nox-cache"));
        let id = target_dir.file_name().unwrap().to_str().unwrap();
        assert!(id.starts_with("9.8.7-") && id.len() == "9.8.7-".len() + 16, "version + source hash: {id}");

        // A change to the sources is a new build folder.
        fs::write(launcher.path("action/src/main.rs"), "fn main() { /* changed */ }\n").unwrap();
        assert!(launcher.run("main", "linux-arm64-gnu").status.success());
        assert_eq!(fs::read_to_string(&log).unwrap().lines().count(), 2);
    }
}

/// forgejo/launch.sh picks the Linux triple of this machine and execs its binary.
#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
#[test]
fn forgejo_launch_sh_runs_the_binary_for_this_machine() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("forgejo")).unwrap();
    fs::copy(root().join("forgejo/launch.sh"), dir.path().join("forgejo/launch.sh")).unwrap();
    let linux_triples = PLATFORMS.iter().map(|(_, t)| *t).filter(|t| t.contains("-linux-"));
    for triple in linux_triples {
        let bin = dir.path().join("dist").join(triple).join("uv-nox-cache");
        fs::create_dir_all(bin.parent().unwrap()).unwrap();
        fs::write(&bin, format!("#!/bin/sh\necho \"{triple} $*\"\nexit 5\n")).unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let musl = fs::read_dir("/lib").is_ok_and(|entries| {
        entries.flatten().any(|e| e.file_name().to_string_lossy().starts_with("ld-musl-"))
    });
    let want = format!("{}-unknown-linux-{}", std::env::consts::ARCH, if musl { "musl" } else { "gnu" });

    let out = output(Command::new("sh").arg(dir.path().join("forgejo/launch.sh")).arg("save"));
    assert_eq!(out.status.code(), Some(5), "exit code passed on: {}", text(&out.stdout));
    assert_eq!(text(&out.stdout), format!("{want} save\n"));

    // Without the binary it fails with a workflow error that names the missing file.
    fs::remove_file(dir.path().join("dist").join(&want).join("uv-nox-cache")).unwrap();
    let out = output(Command::new("sh").arg(dir.path().join("forgejo/launch.sh")).arg("restore"));
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("::error::") && stdout.contains(&format!("dist/{want}/")), "{stdout}");
}
