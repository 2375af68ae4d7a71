//! What a noxfile and a workflow file say about env reuse. A cached `.nox` only helps where nox
//! reuses envs: nox's default (`--reuse-venv=no`) deletes and recreates every env
//! (docs/domain.md §3), which is the lsst-sqre/run-nox trap. Reuse is set globally
//! (`nox.options.reuse_venv`), per session (`@nox.session(reuse_venv=…)`) and by the command
//! (`-r`, `-R`, `--reuse-venv=…`); of the commands the action can see only what the workflow file
//! spells out, so that is read too. The answers only decide what to log or notice, so a plain
//! text scan is enough; nothing runs or parses Python or YAML.

use std::path::Path;

/// A `reuse_venv` setting: nox's `--reuse-venv` values (`True` reads as `yes`, `False` as `no`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReuseMode {
    No,
    Yes,
    Never,
    Always,
}

impl ReuseMode {
    fn parse(token: &str) -> Option<ReuseMode> {
        match token.trim_matches(|c| c == '"' || c == '\'') {
            "no" | "False" => Some(ReuseMode::No),
            "yes" | "True" => Some(ReuseMode::Yes),
            "never" => Some(ReuseMode::Never),
            "always" => Some(ReuseMode::Always),
            _ => None,
        }
    }

    /// Whether nox reuses the env of a session whose decorator says `session` (nox's
    /// `resolve_reuse_existing_venv`): `always` and `never` win, else the session's own
    /// `reuse_venv` when given, else `yes`.
    pub fn reuses(self, session: Option<bool>) -> bool {
        match (self, session) {
            (ReuseMode::Always, _) => true,
            (ReuseMode::Never, _) => false,
            (_, Some(own)) => own,
            (mode, None) => mode == ReuseMode::Yes,
        }
    }
}

/// What a noxfile says about reuse: the global option and each session's own setting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoxfileReuse {
    /// `nox.options.reuse_venv` (or `reuse_existing_virtualenvs = True`), when set.
    pub global: Option<ReuseMode>,
    pub sessions: Vec<SessionReuse>,
}

/// One `@nox.session` function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionReuse {
    /// Its `name=`, or the function's name.
    pub name: String,
    /// Its decorator's `reuse_venv=True|False`, when given.
    pub reuse_venv: Option<bool>,
}

impl NoxfileReuse {
    /// Whether anything in the noxfile turns reuse on.
    pub fn turns_reuse_on(&self) -> bool {
        matches!(self.global, Some(ReuseMode::Yes | ReuseMode::Always))
            || self.sessions.iter().any(|s| s.reuse_venv == Some(true))
    }
}

/// Reads a noxfile's reuse settings: `nox.options.reuse_venv = …` (also through `from nox import
/// options`), `nox.options.reuse_existing_virtualenvs = True`, and each `@nox.session(...)` (or
/// `@session(...)`) decorator, which may span lines, with the `def` that follows it. Comments
/// are ignored.
pub fn noxfile_reuse(source: &str) -> NoxfileReuse {
    let mut out = NoxfileReuse::default();
    let mut lines = source.lines().map(strip_comment);
    while let Some(line) = lines.next() {
        let global = |name: &'static str| {
            line.match_indices(name)
                .filter(|(at, _)| line[..*at].ends_with("options.") && !string_at(line, *at))
                .filter_map(|(at, _)| assignments(&line[at..], name).next())
                .next()
        };
        if let Some(mode) = global("reuse_venv").and_then(ReuseMode::parse) {
            out.global = Some(mode);
        }
        if global("reuse_existing_virtualenvs") == Some("True") {
            out.global = Some(ReuseMode::Yes);
        }
        let trimmed = line.trim_start();
        if !(trimmed.starts_with("@nox.session") || trimmed.starts_with("@session")) {
            continue;
        }
        let mut decorator = trimmed.to_string();
        let mut depth = parens(&decorator);
        while depth > 0 {
            let Some(next) = lines.next() else { break };
            decorator.push(' ');
            decorator.push_str(next.trim());
            depth = parens(&decorator);
        }
        let function = loop {
            let Some(next) = lines.next() else { break None };
            let next = next.trim_start();
            if let Some(rest) = next.strip_prefix("def ").or_else(|| next.strip_prefix("async def ")) {
                break rest.split('(').next().map(|n| n.trim().to_string());
            }
        };
        let named = assignments(&decorator, "name")
            .next()
            .map(|v| v.trim_matches(|c| c == '"' || c == '\'').to_string());
        let Some(name) = named.or(function) else { continue };
        let reuse_venv = assignments(&decorator, "reuse_venv").find_map(|v| match v {
            "True" => Some(true),
            "False" => Some(false),
            _ => None,
        });
        out.sessions.push(SessionReuse { name, reuse_venv });
    }
    out
}

/// Open minus closed parentheses outside string literals.
fn parens(text: &str) -> i32 {
    text.char_indices()
        .filter(|(i, _)| !string_at(text, *i))
        .map(|(_, c)| match c {
            '(' => 1,
            ')' => -1,
            _ => 0,
        })
        .sum()
}

/// One `nox` command of a workflow file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoxCommand {
    /// What its options say about reuse (`-r`, `-R`, `--reuse-venv=…`, …), when they say it.
    pub reuse: Option<ReuseMode>,
    /// The sessions it names (`-s`, `-e`, `--session(s)`); `None` when it names none (nox runs
    /// the default sessions) or selects by keyword or tag.
    pub sessions: Option<Vec<String>>,
}

/// The `nox` commands of a workflow file (a line scan: a line where `nox`, or a path ending in
/// `/nox`, is a word not after `install`, `add` or `pipx` — installing nox is not running it).
pub fn nox_commands(workflow: &str) -> Vec<NoxCommand> {
    nox_command_args(workflow)
        .into_iter()
        .map(|args| {
            let mut reuse = None;
            let mut sessions: Option<Vec<String>> = None;
            let mut by_keyword = false;
            let mut i = 0;
            while i < args.len() {
                let arg = args[i];
                let (flag, inline) = match arg.split_once('=') {
                    Some((f, v)) if f.starts_with("--") => (f, Some(v)),
                    _ => (arg, None),
                };
                match flag {
                    "-r" | "-R" | "--reuse-existing-virtualenvs" => reuse = Some(ReuseMode::Yes),
                    "--no-reuse-existing-virtualenvs" => reuse = Some(ReuseMode::No),
                    "--reuse-venv" => {
                        let value = inline.or_else(|| {
                            i += 1;
                            args.get(i).copied()
                        });
                        reuse = value.and_then(ReuseMode::parse).or(reuse);
                    }
                    "-s" | "-e" | "--session" | "--sessions" => {
                        let list = sessions.get_or_insert_with(Vec::new);
                        list.extend(inline.map(str::to_string));
                        while let Some(name) = args.get(i + 1).filter(|a| !a.starts_with('-')) {
                            list.push(name.to_string());
                            i += 1;
                        }
                    }
                    "-k" | "--keywords" | "-t" | "--tags" => by_keyword = true,
                    _ => {}
                }
                i += 1;
            }
            NoxCommand { reuse, sessions: sessions.filter(|_| !by_keyword) }
        })
        .collect()
}

/// Whether some `nox` command of a workflow file skips installs on reused envs (`-R`,
/// `--no-install`); `None` when the file runs no `nox` command the scan can see.
pub fn workflow_skips_installs(workflow: &str) -> Option<bool> {
    let commands = nox_command_args(workflow);
    if commands.is_empty() {
        return None;
    }
    Some(commands.iter().flatten().any(|w| matches!(*w, "-R" | "--no-install")))
}

/// The arguments of each `nox` command of a workflow file, as whitespace-separated words with
/// quotes trimmed.
fn nox_command_args(workflow: &str) -> Vec<Vec<&str>> {
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
    use super::{noxfile_reuse, workflow_path, workflow_skips_installs};

    fn reuse(source: &str) -> bool {
        noxfile_reuse(source).turns_reuse_on()
    }

    #[test]
    fn workflow_paths() {
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
        assert!(!reuse("session.log(\"nox.options.reuse_venv = 'yes'\")"));
    }
}
