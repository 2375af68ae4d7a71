//! The documentation tells one story: claims that were once true and are not any more stay out,
//! and every link between the pages lands on a heading that exists.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::action::repo_root;

/// The pages a user reads: the README, `docs/`, and the example workflows' comments.
fn pages() -> Vec<PathBuf> {
    let root = repo_root();
    let mut pages = vec![root.join("README.md")];
    for dir in ["docs", "examples/workflows"] {
        let mut found: Vec<PathBuf> = fs::read_dir(root.join(dir))
            .unwrap_or_else(|e| panic!("read {dir}: {e}"))
            .map(|entry| entry.unwrap().path())
            .filter(|p| p.extension().is_some_and(|ext| ext == "md" || ext == "yml"))
            .collect();
        found.sort();
        pages.extend(found);
    }
    pages
}

/// The text with every run of whitespace (line breaks, `#` comment starts) made one space, so a
/// claim is found however it is wrapped.
fn flattened(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap();
    text.split(|c: char| c.is_whitespace() || c == '#')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Claims about the project in cached envs that stopped being true when editable installs that
/// follow the checkout began to be kept: `nox -R` passes on those after a restore.
const RETIRED: &[&str] = &[
    "never contains your project",
    "a cached env never holds it",
    "the project is never stored in a cached environment",
    "your own project is left out of what is saved",
    "creates a fresh, empty env on which installs are skipped",
];

#[test]
fn retired_claims_about_the_project_in_cached_envs_do_not_come_back() {
    let mut found = Vec::new();
    for page in pages() {
        let text = flattened(&page).to_lowercase();
        for claim in RETIRED {
            if text.contains(&claim.to_lowercase()) {
                found.push(format!("{}: \"{claim}\"", page.strip_prefix(repo_root()).unwrap().display()));
            }
        }
    }
    assert!(found.is_empty(), "retired claims are back (editable installs are kept):\n{}", found.join("\n"));
}

#[test]
fn every_page_that_explains_nox_dash_r_points_at_the_one_explanation() {
    let root = repo_root();
    for page in ["README.md", "docs/faq.md", "docs/migrating.md", "docs/troubleshooting.md"] {
        let text = fs::read_to_string(root.join(page)).unwrap();
        assert!(
            text.contains("caching-strategy.md#what-nox--r-does-after-a-cache-hit"),
            "{page} speaks of `nox -R` without pointing at docs/caching-strategy.md's section"
        );
    }
}

/// GitHub's anchor for a heading: lower case, punctuation other than `-` and `_` dropped, spaces
/// made hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(path: &Path) -> Vec<String> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut in_code = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            out.push(slug(line.trim_start_matches('#')));
        }
    }
    out
}

#[test]
fn links_between_pages_land_on_headings_that_exist() {
    let root = repo_root();
    let mut broken = Vec::new();
    for page in pages().into_iter().filter(|p| p.extension().is_some_and(|e| e == "md")) {
        let text = fs::read_to_string(&page).unwrap();
        for (target, anchor) in text.split("](").skip(1).filter_map(|rest| {
            let link = rest.split(')').next()?;
            let (file, anchor) = link.split_once('#')?;
            (!link.contains("://")).then(|| (file.to_string(), anchor.to_string()))
        }) {
            let file = if target.is_empty() { page.clone() } else { page.parent().unwrap().join(&target) };
            if !file.exists() || !anchors(&file).contains(&anchor) {
                broken.push(format!("{}: ({target}#{anchor})", page.strip_prefix(&root).unwrap().display()));
            }
        }
    }
    assert!(broken.is_empty(), "links to headings that do not exist:\n{}", broken.join("\n"));
}
