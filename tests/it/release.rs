//! Versioning and releases: cache keys do not depend on the crate version, and
//! `scripts/release --dry-run` cuts a consistent release in a clone without touching this
//! repository.

use std::fs;
use std::path::Path;
use std::process::Command;

use uv_nox_cache::key::SCHEMA;

use crate::support::action::{Machine, binary, repo_root};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Upgrading the action must not cold-start every cache: the key has a schema component that
/// changes with the archive or key format only, never with the version.
#[test]
fn cache_keys_carry_the_schema_and_not_the_crate_version() {
    let machine = Machine::new();
    fs::write(machine.workspace.join("uv.lock"), "version = 1\n").unwrap();
    fs::write(machine.workspace.join("noxfile.py"), "import nox\n").unwrap();
    let keys = machine.job().keys();
    assert_eq!(keys.keys().map(String::as_str).collect::<Vec<_>>(), ["nox", "uv"], "{keys:?}");
    for (target, key) in &keys {
        assert!(key.starts_with(&format!("uv-nox-cache-{SCHEMA}-{target}-")), "{key}");
        assert!(!key.contains(VERSION), "the key {key} contains the crate version {VERSION}");
    }

    // SCHEMA is a literal of its own, and the key module never looks at the crate version.
    let source = fs::read_to_string(repo_root().join("src/key.rs")).unwrap();
    assert!(
        source.contains(&format!("pub const SCHEMA: &str = \"{SCHEMA}\";")),
        "SCHEMA must stay a plain literal, bumped by hand when the archive or key format changes"
    );
    // (`CARGO_PKG_VERSION`, `crate::VERSION`)
    assert!(!source.contains("VERSION"), "src/key.rs reads the crate version: keys must not follow it");
}

/// A SCHEMA bump cold-starts every user's caches, so it must be announced: the CHANGELOG names
/// the current schema (an entry like "new cache schema `2`").
#[test]
fn the_changelog_names_the_current_cache_schema() {
    let changelog = fs::read_to_string(repo_root().join("CHANGELOG.md")).unwrap();
    let changelog = changelog.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        changelog.contains(&format!("schema `{SCHEMA}`")),
        "CHANGELOG.md does not mention cache schema `{SCHEMA}`: say that caches start cold once"
    );
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git").args(args).current_dir(dir).output().expect("git is installed");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

/// Everything a release could change in the real repository.
fn snapshot(root: &Path) -> [String; 4] {
    [
        git(root, &["rev-parse", "HEAD"]),
        git(root, &["for-each-ref", "--format=%(refname) %(objectname)"]),
        git(root, &["status", "--porcelain", "--untracked-files=all"]),
        git(root, &["diff", "HEAD"]),
    ]
}

/// `scripts/release X.Y.Z --dry-run`, with this test build standing in for the zigbuild output
/// (`--binary`; a real release builds its own, so its `--version` is the released one).
#[test]
fn release_dry_run_cuts_a_consistent_release_in_a_clone_and_leaves_the_repository_alone() {
    let root = repo_root();
    // No early return: a copy without git history cannot show that a release is consistent.
    let top = Command::new("git").args(["rev-parse", "--show-toplevel"]).current_dir(&root).output();
    let top = top.expect("git is installed (the release test needs it)");
    assert!(
        top.status.success(),
        "{} is not a git checkout, so `scripts/release --dry-run` cannot be checked: run the tests \
         from a git clone of the repository ({})",
        root.display(),
        String::from_utf8_lossy(&top.stderr).trim()
    );
    // The version in Cargo.toml until it is released; after that, the next patch release. The
    // CHANGELOG says whether it was: a clone need not carry the release tags.
    let changelog = fs::read_to_string(root.join("CHANGELOG.md")).unwrap();
    let released = changelog.lines().any(|l| l.starts_with(&format!("## [{VERSION}] - ")));
    let version = if released {
        let (rest, patch) = VERSION.rsplit_once('.').unwrap();
        format!("{rest}.{}", patch.parse::<u64>().unwrap() + 1)
    } else {
        VERSION.to_string()
    };
    let major = version.split('.').next().unwrap();

    let before = snapshot(&root);
    let clone = tempfile::tempdir().unwrap();
    let dir = clone.path().join("release");
    let mut cmd = Command::new("bash");
    cmd.arg(root.join("scripts/release"))
        .args([version.as_str(), "--dry-run", "--dir"])
        .arg(&dir)
        .arg("--binary")
        .arg(binary())
        .env("CARGO", option_env!("CARGO").unwrap_or("cargo"));
    if released {
        cmd.arg("--allow-empty");
    }
    let out = cmd.output().expect("run scripts/release");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let log = format!("--- stdout\n{stdout}--- stderr\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{log}");
    assert!(
        stdout.contains(&format!(
            "consistent: binary, Cargo.toml, Cargo.lock, CHANGELOG and tags all say {version}"
        )),
        "{log}"
    );
    if !released {
        // This build is of the released version, so --version agrees without a rebuild.
        assert!(stdout.contains(&format!("binary       uv-nox-cache {version} (source ")), "{log}");
    }

    // The clone: a release commit with the version, the CHANGELOG heading and both tags.
    assert_eq!(git(&dir, &["log", "-1", "--format=%s"]), format!("Release {version}"), "{log}");
    let cargo_toml = fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(cargo_toml.contains(&format!("\nversion = \"{version}\"\n")), "{cargo_toml}");
    let changelog = fs::read_to_string(dir.join("CHANGELOG.md")).unwrap();
    let heading = changelog.lines().find(|l| l.starts_with("## [") && !l.contains("Unreleased")).unwrap();
    assert!(heading.starts_with(&format!("## [{version}] - ")), "{heading}");
    let date = &heading[format!("## [{version}] - ").len()..];
    let digits =
        |r: std::ops::Range<usize>| date.get(r).is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit()));
    assert!(
        date.len() == 10
            && digits(0..4)
            && digits(5..7)
            && digits(8..10)
            && &date[4..5] == "-"
            && &date[7..8] == "-",
        "the heading's date is not YYYY-MM-DD: {heading}"
    );
    assert!(changelog.find("## [Unreleased]").unwrap() < changelog.find(heading).unwrap());
    for file in ["README.md", "docs/migrating.md", "examples/workflows/github.yml"] {
        let text = fs::read_to_string(dir.join(file)).unwrap();
        let pins: Vec<&str> = text.split("uv-nox-cache@v").skip(1).collect();
        assert!(!pins.is_empty(), "{file} pins no release of the action");
        for pinned in pins {
            let r#ref: String = pinned.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
            assert!(r#ref.matches('.').count() != 2 || r#ref == version, "{file} still pins v{}", r#ref);
        }
    }
    let tags = git(&dir, &["tag", "--points-at", "HEAD"]);
    let tags: Vec<&str> = tags.lines().collect();
    assert!(tags.contains(&format!("v{version}").as_str()), "{tags:?}");
    assert!(tags.contains(&format!("v{major}").as_str()), "{tags:?}");
    let shipped = dir.join("dist/x86_64-unknown-linux-gnu/uv-nox-cache");
    assert_eq!(fs::read(&shipped).unwrap(), fs::read(binary()).unwrap());
    assert_eq!(git(&dir, &["status", "--porcelain"]), "", "the release commit holds everything");

    // The real repository: same HEAD, refs (tags included), index and working tree.
    assert_eq!(snapshot(&root), before, "scripts/release --dry-run changed {}", root.display());
}

/// The `@vX.Y.Z` every snippet pins: the README, the docs and the example workflows all name
/// one release, and it is the one this checkout builds (`--version`) and the CHANGELOG's newest.
#[test]
fn the_docs_pin_the_release_this_checkout_builds() {
    let root = repo_root();
    let mut pages = vec![root.join("README.md")];
    for dir in ["docs", "examples/workflows"] {
        for entry in fs::read_dir(root.join(dir)).unwrap() {
            pages.push(entry.unwrap().path());
        }
    }
    for page in pages.iter().filter(|p| p.extension().is_some_and(|e| e == "md" || e == "yml")) {
        let text = fs::read_to_string(page).unwrap();
        for pinned in text.split("uv-nox-cache@v").skip(1).chain(text.split("uv-nox-cache/forgejo@v").skip(1))
        {
            let version: String = pinned.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
            // `@v0` is the moving major tag: it names no release.
            if version.matches('.').count() == 2 {
                assert_eq!(
                    version,
                    VERSION,
                    "{} pins v{version}; this checkout is {VERSION}",
                    page.display()
                );
            }
        }
    }
    let changelog = fs::read_to_string(root.join("CHANGELOG.md")).unwrap();
    let newest = changelog.lines().find(|l| l.starts_with("## [") && !l.starts_with("## [Unreleased]"));
    assert!(
        newest.is_some_and(|l| l.starts_with(&format!("## [{VERSION}]"))),
        "the CHANGELOG's newest release is {newest:?}, Cargo.toml says {VERSION}"
    );
    let out = Command::new(binary()).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&format!("uv-nox-cache {VERSION} ")));
}

/// An input or output the README documents is in the release it pins, or its row says it is not
/// released yet: what the CHANGELOG lists under "Unreleased" names the ones that are not.
#[test]
fn the_readme_marks_inputs_and_outputs_the_pinned_release_lacks() {
    let root = repo_root();
    let readme = fs::read_to_string(root.join("README.md")).unwrap();
    let changelog = fs::read_to_string(root.join("CHANGELOG.md")).unwrap();
    let unreleased = changelog
        .split("## [Unreleased]")
        .nth(1)
        .and_then(|rest| rest.split("\n## [").next())
        .expect("CHANGELOG.md has an Unreleased section");
    let rows = readme.lines().filter(|l| l.starts_with("| `"));
    let mut unmarked = Vec::new();
    for row in rows {
        let names: Vec<&str> = row.split('|').nth(1).unwrap().split('`').skip(1).step_by(2).collect();
        for name in names {
            let new = unreleased.contains(&format!("`{name}` input"))
                || unreleased.contains(&format!("input `{name}`"))
                || unreleased.contains(&format!("output `{name}`"))
                || unreleased.contains(&format!("`{name}` output"));
            if new && !row.contains("unreleased") {
                unmarked.push(name.to_string());
            }
        }
    }
    assert!(
        unmarked.is_empty(),
        "the README documents {unmarked:?}, which CHANGELOG.md lists as unreleased, without saying so in \
         their rows: mark them `(unreleased)` or cut the release (scripts/release)"
    );
}
