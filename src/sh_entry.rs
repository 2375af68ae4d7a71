//! The inputs of the Forgejo `sh` entry (`forgejo/action.yml`), which `/bin/sh` may lose.
//!
//! The Forgejo runner starts an `sh` action as `sh -c "<runs.main>"` with every input in the
//! environment as `INPUT_<NAME>`, hyphens kept (`INPUT_WORKING-DIRECTORY`). Where `/bin/sh` is
//! dash or busybox (Debian, Ubuntu, `python:*-slim`, Alpine), a variable whose name holds a
//! hyphen is not a shell variable, so the shell passes it on to nothing it starts: by the time
//! this binary runs, every hyphenated input is gone.
//!
//! The shell's own process still holds them: `/proc/<pid>/environ` is the environment a
//! process was started with, untouched by the shell. So the entry keeps that shell alive
//! (`main: sh launch.sh restore || exit $?` is not a command dash may replace itself with), and
//! `launch.sh` tells the binary the shell's pid. The binary takes the `INPUT_*` variables it
//! lacks from there — only from a process of the same step (same `GITHUB_ACTION_PATH`) — and
//! refuses to run when it cannot read them back, rather than run with defaults the user did not
//! choose.
//!
//! The runner fills in input defaults for the main step only: the post step gets just the
//! inputs written in `with:` (the Forgejo runner's `runPostStep`, `sh` case), none at all in the
//! bare `uses:` form. So the main step records the inputs it ran with in the step state
//! ([`inputs_to_record`]), and the post step takes every input it still lacks from there, else
//! leaves it to its default: an input the runner did not pass is never a reason to refuse.

use std::collections::HashMap;
use std::path::Path;

use crate::env::input_var;
use crate::inputs::INPUT_NAMES;
use crate::runner::read_state;

/// Set by `forgejo/launch.sh` to the pid of the runner's `sh -c` process.
pub const PARENT_PID: &str = "UV_NOX_CACHE_SH_PARENT";
/// Set by the runner for `sh` actions: the action's own folder.
const GITHUB_ACTION_PATH: &str = "GITHUB_ACTION_PATH";

/// The inputs could not be recovered: the step must not run with defaults instead.
#[derive(Debug, thiserror::Error)]
#[error(
    "the inputs whose names hold a hyphen (working-directory, key-files, restore-keys, …) did not reach \
     the action: /bin/sh in this job image drops such variables, and {why}. Fix: use the node entry \
     (uses: OWNER/uv-nox-cache@<version>) in an image with node, or run the job where /proc is mounted"
)]
pub struct LostInputs {
    why: String,
}

/// The variables to add to the process environment: the `INPUT_*` that `own` lacks and the
/// runner's shell still has, then (in the post step) those the main step recorded. Empty when
/// the binary was not started by the `sh` entry.
pub fn recovered_inputs(own: &dyn Fn(&str) -> Option<String>) -> Result<HashMap<String, String>, LostInputs> {
    let Some(pid) = own(PARENT_PID).filter(|p| !p.is_empty()) else {
        return Ok(HashMap::new());
    };
    let mut recovered = HashMap::new();
    let kept_hyphens = INPUT_NAMES.iter().any(|name| name.contains('-') && own(&input_var(name)).is_some());
    if !kept_hyphens {
        // dash or busybox dropped them, or the runner passed none: its shell knows which.
        let path = Path::new("/proc").join(pid.trim()).join("environ");
        let bytes = std::fs::read(&path).map_err(|e| LostInputs {
            why: format!("they could not be read back from {}: {e}", path.display()),
        })?;
        let parent = parse_environ(&bytes);
        if parent.get(GITHUB_ACTION_PATH).map(String::as_str) != own(GITHUB_ACTION_PATH).as_deref() {
            return Err(LostInputs { why: format!("process {pid} is not this step's shell") });
        }
        recovered
            .extend(parent.into_iter().filter(|(name, _)| name.starts_with("INPUT_") && own(name).is_none()));
    }
    for name in INPUT_NAMES {
        let var = input_var(name);
        if own(&var).is_none()
            && !recovered.contains_key(&var)
            && let Some(value) = read_state(own, &state_name(name))
        {
            recovered.insert(var, value);
        }
    }
    Ok(recovered)
}

/// What the main step of the `sh` entry leaves in the step state for its post step: every
/// input it ran with that is not empty, as `(state name, value)`. Nothing outside the `sh`
/// entry, whose post step gets its inputs from the runner.
pub fn inputs_to_record(lookup: &dyn Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    if lookup(PARENT_PID).is_none_or(|p| p.is_empty()) {
        return Vec::new();
    }
    INPUT_NAMES
        .iter()
        .filter_map(|name| lookup(&input_var(name)).filter(|v| !v.is_empty()).map(|v| (state_name(name), v)))
        .collect()
}

/// The state name of input `name`: `INPUT_WORKING_DIRECTORY` (no hyphen, so every shell passes
/// `STATE_INPUT_WORKING_DIRECTORY` on).
fn state_name(name: &str) -> String {
    format!("INPUT_{}", name.to_uppercase().replace('-', "_"))
}

/// `NAME=value` entries separated by NUL bytes, as in `/proc/<pid>/environ`.
fn parse_environ(bytes: &[u8]) -> HashMap<String, String> {
    bytes
        .split(|b| *b == 0)
        .filter_map(|entry| {
            let entry = String::from_utf8_lossy(entry);
            let (name, value) = entry.split_once('=')?;
            Some((name.to_string(), value.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nul_separated_entries_with_equals_in_values() {
        let env = parse_environ(b"INPUT_KEY-FILES=a=b\0PLAIN=1\0\0junk\0");
        assert_eq!(env.get("INPUT_KEY-FILES").map(String::as_str), Some("a=b"));
        assert_eq!(env.get("PLAIN").map(String::as_str), Some("1"));
        assert_eq!(env.len(), 2);
    }

    #[test]
    fn nothing_to_do_outside_the_sh_entry() {
        let none = |_: &str| None;
        assert!(recovered_inputs(&none).unwrap().is_empty());
    }

    /// The environment of this test process, which plays the runner's shell: it has no
    /// `GITHUB_ACTION_PATH` and no `INPUT_*`, as the shell of a post step given no `with:`.
    fn post_step_env(state: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let me = std::process::id().to_string();
        let state: HashMap<String, String> =
            state.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name: &str| if name == PARENT_PID { Some(me.clone()) } else { state.get(name).cloned() }
    }

    #[test]
    fn a_post_step_given_no_inputs_takes_those_the_main_step_recorded() {
        let main_step = |name: &str| match name {
            PARENT_PID => Some("1".to_string()),
            "INPUT_WORKING-DIRECTORY" => Some("sub".to_string()),
            "INPUT_TARGETS" => Some("uv nox".to_string()),
            "INPUT_KEY-FILES" => Some(String::new()),
            _ => None,
        };
        let recorded = inputs_to_record(&main_step);
        assert!(recorded.contains(&("INPUT_WORKING_DIRECTORY".into(), "sub".into())), "{recorded:?}");
        assert!(!recorded.iter().any(|(name, _)| name == "INPUT_KEY_FILES"), "{recorded:?}");

        let state: Vec<(String, String)> =
            recorded.iter().map(|(name, value)| (crate::env::state_var(name), value.clone())).collect();
        let state: Vec<(&str, &str)> = state.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let recovered = recovered_inputs(&post_step_env(&state)).unwrap();
        assert_eq!(recovered.get("INPUT_WORKING-DIRECTORY").map(String::as_str), Some("sub"));
        assert_eq!(recovered.get("INPUT_TARGETS").map(String::as_str), Some("uv nox"));
    }

    #[test]
    fn an_input_nobody_passed_is_left_to_its_default() {
        let recovered = recovered_inputs(&post_step_env(&[])).unwrap();
        assert!(!recovered.contains_key("INPUT_WORKING-DIRECTORY"), "{recovered:?}");
    }

    #[test]
    fn nothing_is_recorded_outside_the_sh_entry() {
        let node = |name: &str| (name == "INPUT_WORKING-DIRECTORY").then(|| "sub".to_string());
        assert!(inputs_to_record(&node).is_empty());
    }

    #[test]
    fn a_process_of_another_step_is_refused() {
        // This test process is nobody's `sh -c`: it has no GITHUB_ACTION_PATH of the step.
        let me = std::process::id().to_string();
        let own = |name: &str| match name {
            PARENT_PID => Some(me.clone()),
            GITHUB_ACTION_PATH => Some("/nowhere/forgejo".to_string()),
            _ => None,
        };
        let err = recovered_inputs(&own).unwrap_err().to_string();
        assert!(err.contains("is not this step's shell"), "{err}");
        assert!(err.contains("Fix:"), "{err}");
    }
}
