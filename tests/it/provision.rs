//! The real tools every other test drives, provisioned and checked once: `scripts/test` runs this
//! module first, with its output shown, so a tool that cannot be had stops the run at once with
//! its name, not after the suite has run for minutes.

use std::process::Command;

use crate::support::tools;

fn version_of(program: &std::path::Path, arg: &str) -> String {
    let out = Command::new(program)
        .arg(arg)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {arg} failed: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn uv_and_nox_from_pypi_run_at_their_pinned_versions() {
    let uv = version_of(&tools::uv(), "--version");
    assert!(uv.contains(tools::UV_VERSION), "uv reports `{uv}`, pinned {}", tools::UV_VERSION);
    assert!(tools::nox().exists(), "nox is missing from {}", tools::python_tools_bin().display());
    // The installed distribution's own metadata: nox's `--version` output moved between releases.
    let python = tools::python_tools_bin().join("python");
    let out = Command::new(&python)
        .args(["-c", "import importlib.metadata as m; print(m.version('nox'))"])
        .output()
        .expect("run the tools' python");
    let nox = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(nox, tools::NOX_VERSION, "nox in the tools venv");
    println!("provisioned: {uv}, nox {nox}");
}

#[test]
fn the_official_cache_client_and_the_runners_glob_are_installed_from_npm() {
    for (name, packages) in
        [("actions-cache", tools::ACTIONS_CACHE_PACKAGES), ("glob", tools::ACTIONS_GLOB_PACKAGES)]
    {
        let project = tools::npm_project(name, packages);
        for package in packages {
            let (module, version) = package.rsplit_once('@').unwrap();
            let manifest = project.join("node_modules").join(module).join("package.json");
            let text = std::fs::read_to_string(&manifest)
                .unwrap_or_else(|e| panic!("{package}: {} is missing: {e}", manifest.display()));
            assert!(text.contains(&format!("\"version\": \"{version}\"")), "{package}: {text}");
        }
        println!("provisioned: {}", packages.join(", "));
    }
}
