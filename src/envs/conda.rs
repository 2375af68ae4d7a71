//! conda envs under the nox envdir (nox's `conda`, `mamba`, `micromamba` and `rattler`
//! backends): a prefix with `conda-meta/` and no `pyvenv.cfg`. nox reuses one whenever
//! `conda-meta/` exists, without checking its interpreter or its path, and a conda prefix embeds
//! its absolute path in scripts and metadata; the checks made for venvs do not apply. So conda
//! envs are never saved, and one found in a restored entry (saved by another tool) is removed
//! before it is moved into place: nox recreates it.

use std::fs;
use std::path::Path;

/// The names of the conda envs directly under `envdir`, sorted.
pub fn conda_envs(envdir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(envdir) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| e.path().join("conda-meta").is_dir() && !e.path().join("pyvenv.cfg").exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// Removes the conda envs of a restored `envdir`; returns their names.
pub fn remove_conda_envs(envdir: &Path) -> Vec<String> {
    conda_envs(envdir).into_iter().filter(|name| fs::remove_dir_all(envdir.join(name)).is_ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A faithful conda prefix (`conda-meta/history`, `conda-meta/<pkg>.json`, `bin/python`)
    /// counts; a venv, even one holding a `conda-meta` directory, does not.
    #[test]
    fn conda_prefixes_are_told_from_venvs() {
        let dir = tempfile::tempdir().unwrap();
        let conda = dir.path().join("tests-3-12");
        fs::create_dir_all(conda.join("conda-meta")).unwrap();
        fs::write(conda.join("conda-meta/history"), "==> 2026-10-21 <==\n").unwrap();
        fs::write(conda.join("conda-meta/python-3.12.7-h1.json"), "{\"name\": \"python\"}\n").unwrap();
        fs::create_dir_all(conda.join("bin")).unwrap();
        std::os::unix::fs::symlink("python3.12", conda.join("bin/python")).unwrap();
        let venv = dir.path().join("lint");
        fs::create_dir_all(venv.join("conda-meta")).unwrap();
        fs::write(venv.join("pyvenv.cfg"), "home = /usr/bin\n").unwrap();
        assert_eq!(conda_envs(dir.path()), ["tests-3-12"]);
        assert_eq!(remove_conda_envs(dir.path()), ["tests-3-12"]);
        assert!(!conda.exists() && venv.exists());
    }
}
