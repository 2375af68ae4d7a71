//! Own-project eviction: which paths of a saved envdir or uv cache hold the workspace's own code.
//!
//! An env restored with a copy of the project in `site-packages` runs that old copy whenever the
//! install step is skipped (`nox -R`, `if: cache-hit != 'true'`) or pip keeps a same-version
//! wheel (docs/domain.md §4). Leaving the project out of the archive makes it simply absent after
//! restore: installs rebuild it, and a skipped install fails loudly with an ImportError.
//! Editable installs that follow the checkout hold no copy and are kept ([`super::style`]).

use std::collections::HashSet;
use std::fs;
use std::path::{Component, Path, PathBuf};

use super::style::{Verdict, judge, pyproject_digest};
use super::{Evicted, Eviction, Kept, MARKER_FILE, env_names, normalize_lexically, resolve_lenient};

/// For every env under `envdir` (each subdirectory with a `pyvenv.cfg`): every site-packages
/// `*.dist-info` whose `direct_url.json` URL is a `file://` path inside `workspace` is judged
/// ([`judge`]). One that would go stale is left out — the dist-info directory plus everything its
/// `RECORD` lists (modules, packages, their `__pycache__`, console scripts, `.pth` files and
/// editable finders), resolved relative to site-packages and kept only when it stays inside the
/// env; an editable install that follows the checkout is kept, and listed in
/// [`Eviction::kept`]. Directories left with nothing but evicted entries are left out too, so no
/// empty package directory survives to be imported as a namespace package. A marker left by an
/// earlier restore is left out as well: [`super::markers`] supplies a fresh one.
///
/// Reads only; nothing on disk changes. Paths are relative to `envdir`.
pub fn nox_project_eviction(envdir: &Path, workspace: &Path) -> Eviction {
    let workspace = resolve_lenient(workspace);
    let mut eviction = Eviction::default();
    for env in env_names(envdir) {
        let marker = PathBuf::from(&env).join(MARKER_FILE);
        if envdir.join(&marker).exists() {
            eviction.skip.insert(marker);
        }
        for site in site_packages_dirs(envdir, &env) {
            for (dist_info, project, editable) in project_dist_infos(&envdir.join(&site), &workspace) {
                let dist = dist_info.trim_end_matches(".dist-info").to_string();
                let site_abs = resolve_lenient(&envdir.join(&site));
                let record = read_record(&envdir.join(&site).join(&dist_info));
                let env_abs = resolve_lenient(&envdir.join(&env));
                let verdict = judge(
                    &env_abs,
                    &site_abs,
                    &site_abs.join(&dist_info),
                    &project,
                    &workspace,
                    editable,
                    &record,
                );
                match verdict {
                    Verdict::Keep { reason, pyproject_sha256, import_dirs } => {
                        let env = env.clone();
                        let generated = Vec::new();
                        eviction.kept.push(Kept {
                            env,
                            dist,
                            reason,
                            pyproject_sha256,
                            import_dirs,
                            generated,
                        });
                    }
                    Verdict::Evict { reason } => {
                        let paths = dist_paths(envdir, &env, &site, &dist_info);
                        eviction.evicted.push(Evicted { env: env.clone(), dist, paths: paths.len(), reason });
                        eviction.skip.extend(paths);
                    }
                }
            }
        }
    }
    eviction
}

/// The distributions `nox_project_eviction` would keep in `env` whose project's
/// `pyproject.toml` no longer has the digest recorded when the env was saved (`recorded`:
/// `name-version` → digest): their metadata was generated from another `pyproject.toml`. Each is
/// returned as evicted, with its paths relative to `envdir`.
pub fn changed_since_saved(envdir: &Path, workspace: &Path, recorded: &[(String, String)]) -> Eviction {
    let workspace = resolve_lenient(workspace);
    let mut eviction = Eviction::default();
    for env in env_names(envdir) {
        for site in site_packages_dirs(envdir, &env) {
            for (dist_info, project, _) in project_dist_infos(&envdir.join(&site), &workspace) {
                let dist = dist_info.trim_end_matches(".dist-info").to_string();
                let Some((_, then)) = recorded.iter().find(|(d, _)| d == &dist) else { continue };
                if pyproject_digest(&project).as_deref() == Some(then.as_str()) {
                    continue;
                }
                let paths = dist_paths(envdir, &env, &site, &dist_info);
                let reason = "its pyproject.toml changed since the env was saved, so its metadata (entry points, dependencies) is old".to_string();
                eviction.evicted.push(Evicted { env: env.clone(), dist, paths: paths.len(), reason });
                eviction.skip.extend(paths);
            }
        }
    }
    eviction
}

/// Deletes from the envs under `envdir` what `eviction` leaves out (deepest paths first); used
/// after a restore, on the staging directory, for envs saved by another tool or whose project
/// changed since. Returns the paths that could not be deleted, with why.
pub fn remove_evicted(envdir: &Path, eviction: &Eviction) -> Vec<String> {
    let mut paths: Vec<&PathBuf> = eviction.skip.iter().collect();
    paths.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    let mut failed = Vec::new();
    for rel in paths {
        let path = envdir.join(rel);
        let Ok(meta) = fs::symlink_metadata(&path) else { continue };
        let removed = if meta.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
        if let Err(e) = removed {
            failed.push(format!("{}: {e}", path.display()));
        }
    }
    failed
}

/// Whether a top-level entry of the uv cache is one of uv's `environments-v*` buckets: the
/// throw-away envs of `uv run --with` and uvx, and — with uv's centralized project environments —
/// whole project `.venv`s holding a copy of the project as it was. Never saved: uv recreates
/// them, `uv cache prune` deletes them anyway, and a restored one could run yesterday's code.
pub fn is_uv_environments_bucket(name: &str) -> bool {
    name.starts_with("environments-v")
}

/// The `environments-v*` buckets of the uv cache at `cache_dir`, relative to it.
pub fn uv_environment_buckets(cache_dir: &Path) -> HashSet<PathBuf> {
    let Ok(entries) = fs::read_dir(cache_dir) else { return HashSet::new() };
    entries
        .flatten()
        .map(|e| PathBuf::from(e.file_name()))
        .filter(|name| is_uv_environments_bucket(&name.to_string_lossy()))
        .collect()
}

/// Builds of local paths in the uv cache at `cache_dir`: every `sdists-v*/path/<digest>/` and
/// `sdists-v*/editable/<digest>/`, plus the unpacked wheels in `archive-v*/` they link to.
///
/// All of them, not only those of the workspace: uv names these directories by a hash of the
/// source URL (the same digest for `path/` and `editable/` builds of one directory) and records
/// the source nowhere in them — `revision.rev` and `metadata.msgpack` hold a revision id and the
/// package name/version only. The digest is an internal uv hash that changes between uv
/// versions, so it cannot be recomputed reliably. Local builds outside the workspace are rare in
/// CI and cheap to rebuild, and leaving any in would re-open the uv#13685 path ("reinstalls the
/// stale build from the cache").
///
/// Reads only; nothing on disk changes. Paths are relative to `cache_dir`.
pub fn uv_local_builds(cache_dir: &Path) -> Eviction {
    let mut eviction = Eviction::default();
    for bucket in sorted_children(cache_dir).into_iter().filter(|b| b.starts_with("sdists-v")) {
        for kind in ["path", "editable"] {
            let kind_dir = PathBuf::from(&bucket).join(kind);
            for digest in sorted_children(&cache_dir.join(&kind_dir)) {
                let build = kind_dir.join(&digest);
                let mut paths = vec![build.clone()];
                let mut wheels = Vec::new();
                for revision in sorted_children(&cache_dir.join(&build)) {
                    for entry in sorted_children(&cache_dir.join(&build).join(&revision)) {
                        let rel = build.join(&revision).join(&entry);
                        if let Some(archive) = archive_target(cache_dir, &rel) {
                            paths.push(archive);
                        }
                        if let Some(name) = entry.strip_suffix(".whl") {
                            wheels.push(wheel_name_version(name));
                        }
                    }
                }
                wheels.sort();
                wheels.dedup();
                let dist = if wheels.is_empty() { digest.clone() } else { wheels.join(", ") };
                let env = kind_dir.to_string_lossy().replace('\\', "/");
                let reason = "a build of a local path, which goes stale when the source changes".to_string();
                eviction.evicted.push(Evicted { env, dist, paths: paths.len(), reason });
                eviction.skip.extend(paths);
            }
        }
    }
    eviction
}

/// `name-version` of a wheel file stem (`demo_pkg-0.1.0-py3-none-any` → `demo_pkg-0.1.0`).
fn wheel_name_version(stem: &str) -> String {
    stem.splitn(3, '-').take(2).collect::<Vec<_>>().join("-")
}

/// Where a uv link at `rel` (relative to `cache_dir`) points, when that is an entry of an
/// `archive-v*` bucket of the same cache; relative to `cache_dir`.
fn archive_target(cache_dir: &Path, rel: &Path) -> Option<PathBuf> {
    let target = fs::read_link(cache_dir.join(rel)).ok()?;
    let joined = cache_dir.join(rel).parent()?.join(target);
    let target = normalize_lexically(&joined)?;
    let cache = normalize_lexically(&std::path::absolute(cache_dir).ok()?)?;
    let inside = std::path::absolute(&target).ok()?.strip_prefix(&cache).ok()?.to_path_buf();
    let mut parts = inside.components();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Component::Normal(bucket)), Some(Component::Normal(_)), None)
            if bucket.to_string_lossy().starts_with("archive-v") =>
        {
            Some(inside)
        }
        _ => None,
    }
}

/// Names of the entries of `dir`, sorted; empty when it cannot be read.
fn sorted_children(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> = entries.flatten().filter_map(|e| e.file_name().into_string().ok()).collect();
    names.sort();
    names
}

/// The site-packages directories of one env, relative to the envdir: `lib/<python>/site-packages`
/// (POSIX; `lib64` only when it is a real directory, not uv's symlink to `lib`) and
/// `Lib/site-packages` (Windows).
pub(super) fn site_packages_dirs(envdir: &Path, env: &str) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for lib in ["lib", "lib64"] {
        let lib_dir = PathBuf::from(env).join(lib);
        if fs::symlink_metadata(envdir.join(&lib_dir)).map(|m| m.is_dir()).unwrap_or(false) {
            for python in sorted_children(&envdir.join(&lib_dir)) {
                let site = lib_dir.join(python).join("site-packages");
                if envdir.join(&site).is_dir() {
                    dirs.push(site);
                }
            }
        }
    }
    let windows = PathBuf::from(env).join("Lib").join("site-packages");
    if envdir.join(&windows).is_dir() && !dirs.iter().any(|d| same_dir(envdir, d, &windows)) {
        dirs.push(windows);
    }
    dirs
}

/// On case-insensitive file systems `Lib` and `lib` are one directory.
fn same_dir(envdir: &Path, a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(envdir.join(a)), fs::canonicalize(envdir.join(b))) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The `*.dist-info` directories in `site` installed from a path inside `workspace`: each name,
/// the project directory it was installed from (resolved), and whether it is editable.
pub(super) fn project_dist_infos(site: &Path, workspace: &Path) -> Vec<(String, PathBuf, bool)> {
    sorted_children(site)
        .into_iter()
        .filter(|name| name.ends_with(".dist-info"))
        .filter_map(|name| {
            let text = fs::read_to_string(site.join(&name).join("direct_url.json")).ok()?;
            let (path, editable) = direct_url(&text)?;
            let project = resolve_lenient(&path);
            project.starts_with(workspace).then_some((name, project, editable))
        })
        .collect()
}

/// The local path and the editable flag of a `direct_url.json` whose `url` is a `file://` URL.
fn direct_url(json: &str) -> Option<(PathBuf, bool)> {
    #[derive(serde::Deserialize)]
    struct DirInfo {
        #[serde(default)]
        editable: bool,
    }
    #[derive(serde::Deserialize)]
    struct DirectUrl {
        url: String,
        dir_info: Option<DirInfo>,
    }
    let parsed = serde_json::from_str::<DirectUrl>(json).ok()?;
    let editable = parsed.dir_info.is_some_and(|d| d.editable);
    Some((file_url_to_path(&parsed.url)?, editable))
}

/// The path column of a dist-info's `RECORD`; empty when there is none.
fn read_record(dist_info: &Path) -> Vec<String> {
    record_paths(&fs::read_to_string(dist_info.join("RECORD")).unwrap_or_default())
}

/// `file:///a/b%20c` → `/a/b c`; `file:///C:/x` → `C:/x`; `file://localhost/a` → `/a`. Other
/// hosts (UNC shares) and other schemes give `None`.
fn file_url_to_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("file://")?;
    let rest = rest.strip_prefix("localhost").unwrap_or(rest);
    if !rest.starts_with('/') {
        return None;
    }
    let decoded = percent_decode(rest)?;
    let bytes = decoded.as_bytes();
    let is_drive = bytes.len() >= 3 && bytes[0] == b'/' && bytes[1].is_ascii_alphabetic() && bytes[2] == b':';
    Some(PathBuf::from(if is_drive { &decoded[1..] } else { &decoded }))
}

fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// The path column of each `RECORD` line (CSV: a quoted field may hold commas and `""`).
fn record_paths(record: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for line in record.lines() {
        let field = if let Some(quoted) = line.strip_prefix('"') {
            let mut field = String::new();
            let mut chars = quoted.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    '"' => break,
                    c => field.push(c),
                }
            }
            field
        } else {
            line.split(',').next().unwrap_or("").to_string()
        };
        if !field.trim().is_empty() {
            paths.push(field);
        }
    }
    paths
}

/// Everything of one evicted distribution, relative to the envdir.
fn dist_paths(envdir: &Path, env: &str, site: &Path, dist_info: &str) -> HashSet<PathBuf> {
    let env_root = PathBuf::from(env);
    let env_abs = std::path::absolute(envdir.join(env)).ok().and_then(|p| normalize_lexically(&p));
    let mut paths = HashSet::new();
    paths.insert(site.join(dist_info));
    let record = fs::read_to_string(envdir.join(site).join(dist_info).join("RECORD")).unwrap_or_default();
    for entry in record_paths(&record) {
        let entry = PathBuf::from(entry.replace('\\', "/"));
        let rel = if entry.is_absolute() {
            // Old installers wrote absolute paths; keep those inside this env.
            let Some(inside) = env_abs.as_ref().and_then(|env| entry.strip_prefix(env).ok()) else {
                continue;
            };
            normalize_lexically(&env_root.join(inside))
        } else {
            normalize_lexically(&site.join(&entry))
        };
        let Some(rel) = rel.filter(|p| p.starts_with(&env_root) && p != &env_root) else { continue };
        if rel.extension().is_some_and(|e| e == "py") {
            paths.extend(bytecode_of(envdir, &rel));
        }
        paths.insert(rel);
    }
    let emptied = emptied_dirs(envdir, site, &paths);
    paths.extend(emptied);
    paths
}

/// `dir/__pycache__/<stem>.*.pyc` files of the module `dir/<stem>.py` that exist on disk.
fn bytecode_of(envdir: &Path, module: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(stem)) = (module.parent(), module.file_stem()) else { return Vec::new() };
    let prefix = format!("{}.", stem.to_string_lossy());
    let cache = dir.join("__pycache__");
    sorted_children(&envdir.join(&cache))
        .into_iter()
        .filter(|name| name.starts_with(&prefix) && name.ends_with(".pyc"))
        .map(|name| cache.join(name))
        .collect()
}

/// Directories below `site` (never `site` itself) whose every entry on disk is in `paths`.
fn emptied_dirs(envdir: &Path, site: &Path, paths: &HashSet<PathBuf>) -> Vec<PathBuf> {
    let mut candidates: Vec<PathBuf> = paths
        .iter()
        .filter(|p| p.starts_with(site))
        .flat_map(|p| p.ancestors().skip(1).map(Path::to_path_buf).collect::<Vec<_>>())
        .filter(|d| d.starts_with(site) && d != site)
        .collect();
    candidates.sort_by(|a, b| b.components().count().cmp(&a.components().count()).then(a.cmp(b)));
    candidates.dedup();
    let mut emptied: HashSet<PathBuf> = HashSet::new();
    for dir in candidates {
        if emptied.contains(&dir) || paths.contains(&dir) {
            continue;
        }
        let Ok(entries) = fs::read_dir(envdir.join(&dir)) else { continue };
        let all_gone = entries.flatten().all(|e| {
            let child = dir.join(e.file_name());
            paths.contains(&child) || emptied.contains(&child)
        });
        if all_gone {
            emptied.insert(dir);
        }
    }
    emptied.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls() {
        assert_eq!(file_url_to_path("file:///home/r/w%20s/proj"), Some(PathBuf::from("/home/r/w s/proj")));
        assert_eq!(file_url_to_path("file://localhost/a/b"), Some(PathBuf::from("/a/b")));
        assert_eq!(file_url_to_path("file:///C:/work/proj"), Some(PathBuf::from("C:/work/proj")));
        assert_eq!(file_url_to_path("file://server/share/x"), None);
        assert_eq!(file_url_to_path("https://files.pythonhosted.org/x.whl"), None);
        assert_eq!(file_url_to_path("file:///bad%zz"), None);
    }

    #[test]
    fn direct_url_json() {
        let editable = r#"{"url":"file:///w/proj","dir_info":{"editable":true}}"#;
        assert_eq!(direct_url(editable), Some((PathBuf::from("/w/proj"), true)));
        let plain = r#"{"url":"file:///w/proj","dir_info":{}}"#;
        assert_eq!(direct_url(plain), Some((PathBuf::from("/w/proj"), false)));
        let vcs = r#"{"url":"https://github.com/a/b","vcs_info":{"vcs":"git","commit_id":"abc"}}"#;
        assert_eq!(direct_url(vcs), None);
        assert_eq!(direct_url("not json"), None);
    }

    #[test]
    fn record_lines() {
        let record = "../../../bin/demo-cli,sha256=x,315\n\
                      demo_pkg/__init__.py,sha256=y,6\n\
                      \"odd,name.py\",sha256=z,1\n\
                      \"q\"\"uote.py\",,\n\
                      demo_pkg-0.1.0.dist-info/RECORD,,\n\n";
        assert_eq!(
            record_paths(record),
            [
                "../../../bin/demo-cli",
                "demo_pkg/__init__.py",
                "odd,name.py",
                "q\"uote.py",
                "demo_pkg-0.1.0.dist-info/RECORD"
            ]
        );
    }

    #[test]
    fn wheel_names() {
        assert_eq!(wheel_name_version("demo_pkg-0.1.0-py3-none-any"), "demo_pkg-0.1.0");
        assert_eq!(wheel_name_version("x-1.0-1-cp312-cp312-linux_x86_64"), "x-1.0");
    }

    #[test]
    fn record_outside_env_and_emptied_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let envdir = dir.path();
        let site = PathBuf::from("e/lib/python3.12/site-packages");
        let sp = envdir.join(&site);
        fs::create_dir_all(sp.join("pkg/__pycache__")).unwrap();
        fs::create_dir_all(sp.join("pkg-1.0.dist-info")).unwrap();
        fs::create_dir_all(sp.join("shared")).unwrap();
        fs::create_dir_all(envdir.join("e/bin")).unwrap();
        for f in ["pkg/__init__.py", "pkg/__pycache__/__init__.cpython-312.pyc", "shared/a.py", "shared/b.py"]
        {
            fs::write(sp.join(f), "").unwrap();
        }
        fs::write(
            sp.join("pkg-1.0.dist-info/RECORD"),
            "pkg/__init__.py,,\nshared/a.py,,\n../../../../../escape.txt,,\n../../../bin/tool,,\n",
        )
        .unwrap();
        let paths = dist_paths(envdir, "e", &site, "pkg-1.0.dist-info");
        let mut got: Vec<_> = paths.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        got.sort();
        assert_eq!(
            got,
            [
                "e/bin/tool",
                "e/lib/python3.12/site-packages/pkg",
                "e/lib/python3.12/site-packages/pkg-1.0.dist-info",
                "e/lib/python3.12/site-packages/pkg/__init__.py",
                "e/lib/python3.12/site-packages/pkg/__pycache__",
                "e/lib/python3.12/site-packages/pkg/__pycache__/__init__.cpython-312.pyc",
                "e/lib/python3.12/site-packages/shared/a.py",
            ]
        );
    }
}
