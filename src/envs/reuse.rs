//! Which restored envs nox will throw away, per session.
//!
//! nox decides reuse per session: the command line's `--reuse-venv` (or `-r`, `-R`), else
//! `nox.options.reuse_venv`, then each session's own `reuse_venv=` ([`ReuseMode::reuses`]). A
//! noxfile that turns reuse on for a few maintenance sessions only still has nox delete and
//! recreate the env of every other session, restored or not. So the restore step maps each
//! restored env to its session (nox names the env directory after the session's signature),
//! reads which `nox` commands of the workflow run that session and with what reuse, and names
//! the envs nox will recreate.

use super::noxfile::{NoxCommand, NoxfileReuse, ReuseMode, SessionReuse, nox_commands, noxfile_reuse};

/// The notice to give about reuse, if any: `noxfile` is the noxfile's text, `workflow` the
/// workflow file (its path and text) when it could be read, `restored` the envs that came back.
pub fn reuse_advice(noxfile: &str, workflow: Option<(&str, &str)>, restored: &[String]) -> Option<String> {
    let file = noxfile_reuse(noxfile);
    let commands = workflow.map(|(path, text)| (path, nox_commands(text))).filter(|(_, c)| !c.is_empty());
    let recreated: Vec<&str> = restored
        .iter()
        .filter(|env| {
            let Some(session) = session_of(&file, env) else { return false };
            match &commands {
                Some((_, commands)) => {
                    let running: Vec<&NoxCommand> =
                        commands.iter().filter(|c| runs(c, session, env)).collect();
                    !running.is_empty() && running.iter().all(|c| !reuses(&file, c.reuse, session))
                }
                None => !reuses(&file, None, session),
            }
        })
        .map(String::as_str)
        .collect();
    let why = noxfile_reason(&file);
    match (&commands, recreated.is_empty()) {
        (Some((path, _)), false) => Some(format!(
            "nox will delete and recreate the {} restored envs ({}): {why} and no `nox` command in {path} that runs their sessions passes `--reuse-venv=yes`, `-r` or `-R`",
            recreated.len(),
            recreated.join(", ")
        )),
        (None, false) => Some(format!(
            "nox will delete and recreate the {} restored envs ({}) unless it runs with `--reuse-venv=yes` (or `-r`): {why}",
            recreated.len(),
            recreated.join(", ")
        )),
        (Some((path, commands)), true) if restored.is_empty() && !file.turns_reuse_on() => {
            commands.iter().all(|c| c.reuse.is_none_or(|m| !m.reuses(None))).then(|| {
                format!(
                    "the noxfile never turns env reuse on and no `nox` command in {path} passes `--reuse-venv=yes`, `-r` or `-R`, so nox recreates every env and a cached .nox does not help"
                )
            })
        }
        (None, true) if restored.is_empty() && !file.turns_reuse_on() => Some(
            "the noxfile never turns env reuse on, so a cached .nox only helps when nox runs with `--reuse-venv=yes` (or `-r`)"
                .to_string(),
        ),
        _ => None,
    }
}

/// Why the noxfile leaves reuse off, in words.
fn noxfile_reason(file: &NoxfileReuse) -> String {
    let on: Vec<&str> =
        file.sessions.iter().filter(|s| s.reuse_venv == Some(true)).map(|s| s.name.as_str()).collect();
    match file.global {
        Some(ReuseMode::Never) => "the noxfile sets `nox.options.reuse_venv = \"never\"`".to_string(),
        Some(ReuseMode::Yes | ReuseMode::Always) => "their sessions set `reuse_venv=False`".to_string(),
        _ if on.is_empty() => "the noxfile never turns reuse on".to_string(),
        _ => format!("the noxfile turns reuse on only for {}", on.join(", ")),
    }
}

/// Whether nox reuses `session`'s env under a command whose options say `command` about reuse.
fn reuses(file: &NoxfileReuse, command: Option<ReuseMode>, session: &SessionReuse) -> bool {
    command.or(file.global).unwrap_or(ReuseMode::No).reuses(session.reuse_venv)
}

/// Whether `command` runs `session` (whose env is `env`): it names no sessions (the defaults:
/// all of them, unless the noxfile narrows them, which is not read), or names it, one of its
/// signatures (`tests-3.12`) or its env.
fn runs(command: &NoxCommand, session: &SessionReuse, env: &str) -> bool {
    let Some(names) = &command.sessions else { return true };
    names.iter().any(|name| {
        name == &session.name || env_name(name) == env || name.starts_with(&format!("{}-", session.name))
    })
}

/// The session `env` (a directory under the envdir) belongs to: the one whose env name is `env`
/// or a prefix of it followed by `-` (a Python version or parameters), the longest such.
fn session_of<'a>(file: &'a NoxfileReuse, env: &str) -> Option<&'a SessionReuse> {
    file.sessions
        .iter()
        .filter(|s| {
            let name = env_name(&s.name);
            env == name || env.strip_prefix(&name).is_some_and(|rest| rest.starts_with('-'))
        })
        .max_by_key(|s| s.name.len())
}

/// The env directory name nox gives a session signature (`_normalize_path`): lower-cased, runs
/// of characters other than letters, digits, `_` and `-` turned into one `-`, trimmed of `-`.
fn env_name(signature: &str) -> String {
    let mut out = String::new();
    for c in signature.chars().filter(char::is_ascii) {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAINTENANCE: &str = "import nox\n\n@nox.session(python=['3.12'])\ndef tests(session):\n    ...\n\n\
                               @nox.session(\n    reuse_venv=True,\n)\ndef docs(session):\n    ...\n\n\
                               @nox.session(name='release-notes', reuse_venv=True)\ndef notes(session):\n    ...\n";

    fn envs(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn env_names_follow_nox() {
        assert_eq!(env_name("tests-3.12"), "tests-3-12");
        assert_eq!(env_name("tests(django='4.2')"), "tests-django-4-2");
        assert_eq!(env_name("Lint"), "lint");
    }

    #[test]
    fn a_noxfile_that_reuses_only_maintenance_sessions() {
        let file = noxfile_reuse(MAINTENANCE);
        assert_eq!(file.global, None);
        let names: Vec<(&str, Option<bool>)> =
            file.sessions.iter().map(|s| (s.name.as_str(), s.reuse_venv)).collect();
        assert_eq!(names, [("tests", None), ("docs", Some(true)), ("release-notes", Some(true))]);
        let restored = envs(&["tests-3-12", "docs", "release-notes"]);
        let wf = "steps:\n  - run: nox -s tests docs\n";
        let advice = reuse_advice(MAINTENANCE, Some((".github/workflows/ci.yml", wf)), &restored).unwrap();
        assert!(
            advice.starts_with("nox will delete and recreate the 1 restored envs (tests-3-12): the noxfile turns reuse on only for docs, release-notes and no `nox` command in .github/workflows/ci.yml that runs their sessions"),
            "{advice}"
        );
        // The same without a workflow to read.
        let advice = reuse_advice(MAINTENANCE, None, &restored).unwrap();
        assert!(advice.contains("(tests-3-12) unless it runs with `--reuse-venv=yes`"), "{advice}");
        // A command that reuses, or one that never runs the session, leaves nothing to say.
        assert_eq!(reuse_advice(MAINTENANCE, Some(("ci.yml", "run: nox -r -s tests\n")), &restored), None);
        assert_eq!(reuse_advice(MAINTENANCE, Some(("ci.yml", "run: nox -s docs\n")), &restored), None);
        // `--reuse-venv=never` on the command recreates even the sessions that reuse.
        let never =
            reuse_advice(MAINTENANCE, Some(("ci.yml", "run: nox --reuse-venv=never\n")), &restored).unwrap();
        assert!(never.contains("the 3 restored envs (tests-3-12, docs, release-notes)"), "{never}");
    }

    #[test]
    fn the_global_option_and_a_session_that_opts_out() {
        let file = "import nox\nnox.options.reuse_venv = 'yes'\n\n@nox.session\ndef tests(s): ...\n\n\
                    @nox.session(reuse_venv=False)\ndef fresh(s): ...\n";
        let restored = envs(&["tests", "fresh"]);
        let advice = reuse_advice(file, Some(("ci.yml", "run: nox\n")), &restored).unwrap();
        assert!(
            advice.contains("the 1 restored envs (fresh): their sessions set `reuse_venv=False`"),
            "{advice}"
        );
        // `-R` on the command does not override a session's own `False` (only `always` does).
        assert!(reuse_advice(file, Some(("ci.yml", "run: nox -R\n")), &restored).is_some());
        assert_eq!(reuse_advice(file, Some(("ci.yml", "run: nox --reuse-venv=always\n")), &restored), None);
    }

    #[test]
    fn nothing_restored() {
        let plain = "import nox\n@nox.session\ndef tests(s): ...\n";
        let none: Vec<String> = Vec::new();
        assert!(reuse_advice(plain, None, &none).unwrap().contains("only helps when nox runs with"));
        assert!(
            reuse_advice(plain, Some(("ci.yml", "run: nox -s tests\n")), &none)
                .unwrap()
                .contains("so nox recreates every env and a cached .nox does not help")
        );
        assert_eq!(reuse_advice(plain, Some(("ci.yml", "run: nox -r\n")), &none), None);
        assert_eq!(
            reuse_advice(MAINTENANCE, None, &none),
            None,
            "some sessions reuse: nothing certain to say"
        );
    }

    #[test]
    fn workflow_commands() {
        let cmds = nox_commands(
            "- run: pip install nox\n- run: nox -s tests-3.12 lint -- --cov\n- run: uvx nox --reuse-venv yes -k fast\n\
             - run: python -m nox --session=docs -R\n",
        );
        assert_eq!(
            cmds,
            [
                NoxCommand { reuse: None, sessions: Some(vec!["tests-3.12".into(), "lint".into()]) },
                NoxCommand { reuse: Some(ReuseMode::Yes), sessions: None },
                NoxCommand { reuse: Some(ReuseMode::Yes), sessions: Some(vec!["docs".into()]) },
            ]
        );
        assert_eq!(nox_commands("run: make test\n"), []);
        assert_eq!(nox_commands("run: nox --reuse-venv=no # -r\n")[0].reuse, Some(ReuseMode::No));
    }
}
