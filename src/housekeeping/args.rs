//! The command-line arguments of `entries` and `prune`, read by hand: a few flags, each with
//! a message naming the flag, the value and what is accepted.

use std::time::Duration;

/// A mistake in the arguments: exit code 2, with the usage.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The arguments of `entries`.
#[derive(Debug, Default, PartialEq)]
pub struct EntriesArgs {
    pub json: bool,
    /// `--for-key`, in order: the primary key, then restore keys.
    pub keys: Vec<String>,
    /// `--ref`, in order: the job's own ref, then the refs it falls back to.
    pub refs: Vec<String>,
    pub repository: Option<String>,
}

/// The arguments of `prune`.
#[derive(Debug, Default, PartialEq)]
pub struct PruneArgs {
    pub max_age: Option<Duration>,
    pub max_size: Option<u64>,
    pub dry_run: bool,
    pub json: bool,
}

/// Splits `--flag=value` and `--flag value`.
fn next_value(
    flag: &str,
    inline: Option<&str>,
    rest: &mut std::slice::Iter<'_, String>,
) -> Result<String, UsageError> {
    inline
        .map(String::from)
        .or_else(|| rest.next().cloned())
        .ok_or_else(|| UsageError(format!("`{flag}` needs a value")))
}

pub fn entries(args: &[String]) -> Result<EntriesArgs, UsageError> {
    let mut out = EntriesArgs::default();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let (flag, inline) = arg.split_once('=').map_or((arg.as_str(), None), |(f, v)| (f, Some(v)));
        match flag {
            "--json" => out.json = true,
            "--for-key" => out.keys.push(next_value(flag, inline, &mut rest)?),
            "--ref" => out.refs.push(next_value(flag, inline, &mut rest)?),
            "--repository" => out.repository = Some(next_value(flag, inline, &mut rest)?),
            other => {
                return Err(UsageError(format!(
                    "`entries` takes --json, --for-key KEY, --ref REF and --repository OWNER/NAME, not `{other}`"
                )));
            }
        }
    }
    if !out.refs.is_empty() && out.keys.is_empty() {
        return Err(UsageError(
            "`--ref` says whose restore to explain: give the keys with `--for-key`".into(),
        ));
    }
    Ok(out)
}

pub fn prune(args: &[String]) -> Result<PruneArgs, UsageError> {
    let mut out = PruneArgs::default();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let (flag, inline) = arg.split_once('=').map_or((arg.as_str(), None), |(f, v)| (f, Some(v)));
        match flag {
            "--dry-run" => out.dry_run = true,
            "--json" => out.json = true,
            "--max-age" => {
                let value = next_value(flag, inline, &mut rest)?;
                let days = value.parse::<f64>().ok().filter(|d| d.is_finite() && *d >= 0.0 && *d < 1e6);
                let days = days.ok_or_else(|| {
                    UsageError(format!(
                        "`--max-age {value}` is not a number of days (e.g. `--max-age 7`, `--max-age 0.5`)"
                    ))
                })?;
                out.max_age = Some(Duration::from_secs_f64(days * 86_400.0));
            }
            "--max-size" => {
                let value = next_value(flag, inline, &mut rest)?;
                out.max_size = Some(crate::byte_size::parse(&value).ok_or_else(|| {
                    UsageError(format!(
                        "`--max-size {value}` is not a size; give {}",
                        crate::byte_size::FORMS
                    ))
                })?);
            }
            other => {
                return Err(UsageError(format!(
                    "`prune` takes --max-age DAYS, --max-size SIZE, --dry-run and --json, not `{other}`"
                )));
            }
        }
    }
    if out.max_age.is_none() && out.max_size.is_none() {
        return Err(UsageError("`prune` needs --max-age DAYS, --max-size SIZE or both".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn flags_take_values_both_ways_and_mistakes_name_the_flag() {
        let parsed = prune(&strings(&["--max-age", "7", "--max-size=10GB", "--dry-run"])).unwrap();
        assert_eq!(parsed.max_age, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(parsed.max_size, Some(10_000_000_000));
        assert!(parsed.dry_run);
        for (bad, says) in [
            (&["--max-age", "week"][..], "--max-age week"),
            (&["--max-size", "huge"], "--max-size huge"),
            (&["--dry-run"], "needs --max-age"),
            (&["--max-age"], "needs a value"),
            (&["--force"], "--force"),
        ] {
            let error = prune(&strings(bad)).unwrap_err().to_string();
            assert!(error.contains(says), "{bad:?}: {error}");
        }
        let parsed = entries(&strings(&[
            "--for-key",
            "k",
            "--ref",
            "refs/heads/a",
            "--ref=refs/heads/main",
            "--json",
        ]))
        .unwrap();
        assert_eq!(parsed.refs, ["refs/heads/a", "refs/heads/main"]);
        assert!(entries(&strings(&["--ref", "refs/heads/a"])).is_err());
    }
}
