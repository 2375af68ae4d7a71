//! Does a noxfile turn env reuse on? A cached `.nox` only helps when it does: nox's default
//! (`--reuse-venv=no`) deletes and recreates every env (docs/domain.md §3), which is the
//! lsst-sqre/run-nox trap. Reuse can also be turned on by the command (`-r`, `-R`,
//! `--reuse-venv=yes`); of those the action can see only what the workflow file spells out, so
//! that is read too. The answers only decide whether to print a notice, so a plain text scan is
//! enough; nothing runs or parses Python or YAML.

use std::path::Path;

/// True when `source` (a noxfile) turns reuse on anywhere: `nox.options.reuse_venv = "yes"` or
/// `"always"` (or `True`), `nox.options.reuse_existing_virtualenvs = True`, or
/// `@nox.session(reuse_venv=True)`. Comments are ignored.
pub fn noxfile_enables_reuse(source: &str) -> bool {
    source.lines().map(strip_comment).any(|line| {
        assignments(line, "reuse_venv")
            .any(|v| matches!(v, "True" | "\"yes\"" | "'yes'" | "\"always\"" | "'always'"))
            || assignments(line, "reuse_existing_virtualenvs").any(|v| v == "True")
    })
}

/// What the workflow's `nox` commands say about reuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkflowReuse {
    /// Some `nox` command passes `-r`, `-R`, `--reuse-venv=yes|always` or
    /// `--reuse-existing-virtualenvs`.
    Reuses,
    /// The workflow runs `nox`, never with one of those.
    Never,
    /// No `nox` command was found (it may run from a script or a Makefile).
    Unknown,
}

/// Reads the `nox` command lines of a workflow file (a line scan, as the action only prints a
/// notice from it): a line where `nox` (or a path ending in `/nox`) is a word, not after
/// `install` or `add` (installing nox is not running it).
pub fn workflow_reuse(workflow: &str) -> WorkflowReuse {
    let commands = nox_commands(workflow);
    let reuses = commands.iter().any(|args| {
        args.iter().enumerate().any(|(i, w)| {
            matches!(*w, "-r" | "-R" | "--reuse-existing-virtualenvs" | "--no-install")
                || matches!(*w, "--reuse-venv=yes" | "--reuse-venv=always")
                || (*w == "--reuse-venv" && args.get(i + 1).is_some_and(|v| matches!(*v, "yes" | "always")))
        })
    });
    match (reuses, commands.is_empty()) {
        (true, _) => WorkflowReuse::Reuses,
        (false, false) => WorkflowReuse::Never,
        (false, true) => WorkflowReuse::Unknown,
    }
}

/// Whether some `nox` command of a workflow file skips installs on reused envs (`-R`,
/// `--no-install`); `None` when the file runs no `nox` command the scan can see.
pub fn workflow_skips_installs(workflow: &str) -> Option<bool> {
    let commands = nox_commands(workflow);
    if commands.is_empty() {
        return None;
    }
    Some(commands.iter().flatten().any(|w| matches!(*w, "-R" | "--no-install")))
}

/// The arguments of each `nox` command of a workflow file, as whitespace-separated words with
/// quotes trimmed.
fn nox_commands(workflow: &str) -> Vec<Vec<&str>> {
    let mut commands = Vec::new();
    for line in workflow.lines().map(strip_comment) {
        let words: Vec<&str> =
            line.split_whitespace().map(|w| w.trim_matches(|c| c == '"' || c == '\'')).collect();
        let Some(at) = words.iter().position(|w| *w == "nox" || w.ends_with("/nox")) else { continue };
        if words[..at].iter().any(|w| matches!(*w, "install" | "add" | "pipx")) {
            continue;
        }
        commands.push(words[at + 1..].to_vec());
    }
    commands
}

/// The workflow file `GITHUB_WORKFLOW_REF` names, read from the checkout: its path inside the
/// repository and its text.
pub fn read_workflow(workspace: &Path, workflow_ref: Option<&str>) -> Option<(String, String)> {
    let path = workflow_path(workflow_ref?)?;
    let text = std::fs::read_to_string(workspace.join(path)).ok()?;
    Some((path.to_string(), text))
}

/// The workflow file's path inside the repository, from `GITHUB_WORKFLOW_REF`
/// (`owner/repo/.github/workflows/ci.yml@refs/heads/main`).
pub fn workflow_path(workflow_ref: &str) -> Option<&str> {
    let end =
        [".yml@", ".yaml@"].iter().filter_map(|s| workflow_ref.find(s).map(|i| i + s.len() - 1)).min()?;
    let path = &workflow_ref[..end];
    let mut parts = path.splitn(3, '/');
    let (_owner, _repo, rest) = (parts.next()?, parts.next()?, parts.next()?);
    Some(rest)
}

/// The value token after each `name =` (not `==`) in `line` where `name` is a whole identifier
/// outside a string literal.
fn assignments<'a>(line: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    line.match_indices(name).filter_map(move |(at, _)| {
        let before = line[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') || string_at(line, at) {
            return None;
        }
        let rest = line[at + name.len()..].trim_start();
        let value = rest.strip_prefix('=').filter(|r| !r.starts_with('='))?.trim_start();
        let end = value.find(|c: char| c == ',' || c == ')' || c == ';' || c.is_whitespace());
        Some(&value[..end.unwrap_or(value.len())])
    })
}

/// Whether byte `at` of `line` is inside a string literal, and where a `#` comment starts
/// before `at`, if one does.
fn string_state(line: &str, at: usize) -> (bool, Option<usize>) {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if i >= at {
            return (quote.is_some(), None);
        }
        match quote {
            Some(_) if escaped => escaped = false,
            Some(_) if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' => return (false, Some(i)),
            None => {}
        }
    }
    (quote.is_some(), None)
}

fn string_at(line: &str, at: usize) -> bool {
    string_state(line, at).0
}

/// `line` without a trailing `# comment`, leaving `#` inside string literals alone.
fn strip_comment(line: &str) -> &str {
    match string_state(line, line.len()) {
        (_, Some(hash)) => &line[..hash],
        _ => line,
    }
}

#[cfg(test)]
mod tests {
    use super::noxfile_enables_reuse as reuse;
    use super::{WorkflowReuse, workflow_path, workflow_reuse, workflow_skips_installs};

    #[test]
    fn workflow_commands() {
        let wf = "jobs:\n  t:\n    steps:\n      - run: pip install uv nox\n      - run: nox -s tests\n";
        assert_eq!(workflow_reuse(wf), WorkflowReuse::Never);
        assert_eq!(workflow_reuse(&format!("{wf}      - run: nox -R -s lint\n")), WorkflowReuse::Reuses);
        assert_eq!(workflow_reuse("run: |\n  uvx nox --reuse-venv=yes\n"), WorkflowReuse::Reuses);
        assert_eq!(workflow_reuse("run: python -m nox --reuse-venv always\n"), WorkflowReuse::Reuses);
        assert_eq!(workflow_reuse("run: .venv/bin/nox -r\n"), WorkflowReuse::Reuses);
        assert_eq!(workflow_reuse("run: nox --reuse-venv=no # -r\n"), WorkflowReuse::Never);
        assert_eq!(workflow_reuse("run: make test\n"), WorkflowReuse::Unknown);
        assert_eq!(
            workflow_path("o/r/.github/workflows/ci.yml@refs/heads/main"),
            Some(".github/workflows/ci.yml")
        );
        assert_eq!(
            workflow_path("o/r/.forgejo/workflows/a.yaml@refs/pull/1/merge"),
            Some(".forgejo/workflows/a.yaml")
        );
        assert_eq!(workflow_path("nonsense"), None);
    }

    #[test]
    fn workflow_commands_that_skip_installs() {
        let wf = "steps:\n  - run: pip install nox\n  - run: nox -r -s tests\n";
        assert_eq!(workflow_skips_installs(wf), Some(false));
        assert_eq!(workflow_skips_installs(&format!("{wf}  - run: nox -R -s lint\n")), Some(true));
        assert_eq!(workflow_skips_installs("run: nox --reuse-venv=yes --no-install\n"), Some(true));
        assert_eq!(workflow_skips_installs("run: nox -r  # not -R\n"), Some(false));
        assert_eq!(workflow_skips_installs("run: make test\n"), None);
    }

    #[test]
    fn turned_on() {
        assert!(reuse("import nox\nnox.options.reuse_venv = \"yes\"\n"));
        assert!(reuse("nox.options.reuse_venv='always'"));
        assert!(reuse("nox.options.reuse_venv = True"));
        assert!(reuse("nox.options.reuse_existing_virtualenvs = True\n"));
        assert!(reuse("@nox.session(python=[\"3.12\"], reuse_venv=True)\ndef tests(s): ..."));
        assert!(reuse("@nox.session(\n    venv_backend=\"uv\",\n    reuse_venv = True,\n)\ndef t(s): ..."));
        assert!(reuse("from nox import options\noptions.reuse_venv = \"yes\"  # speed\n"));
    }

    #[test]
    fn not_turned_on() {
        assert!(!reuse("import nox\n\n@nox.session\ndef tests(session):\n    session.install('.')\n"));
        assert!(!reuse("nox.options.reuse_venv = \"no\""));
        assert!(!reuse("nox.options.reuse_venv = 'never'"));
        assert!(!reuse("@nox.session(reuse_venv=False)\ndef t(s): ..."));
        assert!(!reuse("nox.options.reuse_existing_virtualenvs = False"));
        assert!(!reuse("# nox.options.reuse_venv = \"yes\"\n"));
        assert!(!reuse("if nox.options.reuse_venv == \"yes\": pass"));
        assert!(!reuse("my_reuse_venv = True"));
        assert!(!reuse("session.log(\"# reuse_venv=True\")  # nox.options.reuse_venv = 'yes'"));
    }
}
