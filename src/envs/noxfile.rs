//! Does a noxfile turn env reuse on? A cached `.nox` only helps when it does: nox's default
//! (`--reuse-venv=no`) deletes and recreates every env (docs/domain.md §3), which is the
//! lsst-sqre/run-nox trap. The answer only decides whether to print a notice, so a plain text
//! scan is enough; it does not run or parse Python.

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
