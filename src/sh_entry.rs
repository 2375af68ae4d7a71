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
//! refuses to run when an input that the runner always sets is still missing, rather than run
//! with defaults the user did not choose.

use std::collections::HashMap;
use std::path::Path;

/// Set by `forgejo/launch.sh` to the pid of the runner's `sh -c` process.
pub const PARENT_PID: &str = "UV_NOX_CACHE_SH_PARENT";
/// Set by the runner for `sh` actions: the action's own folder.
const GITHUB_ACTION_PATH: &str = "GITHUB_ACTION_PATH";
/// An input the Forgejo runner always sets (it fills in defaults), and whose name has a hyphen.
const ALWAYS_SET: &str = "INPUT_WORKING-DIRECTORY";

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
/// runner's shell still has. Empty when the binary was not started by the `sh` entry.
pub fn recovered_inputs(own: &dyn Fn(&str) -> Option<String>) -> Result<HashMap<String, String>, LostInputs> {
    let Some(pid) = own(PARENT_PID).filter(|p| !p.is_empty()) else {
        return Ok(HashMap::new());
    };
    if own(ALWAYS_SET).is_some() {
        return Ok(HashMap::new()); // bash, or a shell that keeps such names
    }
    let path = Path::new("/proc").join(pid.trim()).join("environ");
    let bytes = std::fs::read(&path).map_err(|e| LostInputs {
        why: format!("they could not be read back from {}: {e}", path.display()),
    })?;
    let parent = parse_environ(&bytes);
    if parent.get(GITHUB_ACTION_PATH).map(String::as_str) != own(GITHUB_ACTION_PATH).as_deref() {
        return Err(LostInputs { why: format!("process {pid} is not this step's shell") });
    }
    let recovered: HashMap<String, String> =
        parent.into_iter().filter(|(name, _)| name.starts_with("INPUT_") && own(name).is_none()).collect();
    if !recovered.contains_key(ALWAYS_SET) {
        return Err(LostInputs {
            why: format!("the runner's shell (process {pid}) does not have them either"),
        });
    }
    Ok(recovered)
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
