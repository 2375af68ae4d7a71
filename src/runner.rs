//! Talking to the runner: workflow commands on stdout (written by a `tracing` layer), outputs,
//! state, job-level environment variables and the job summary.
//!
//! Log levels map to workflow commands: `error!` → `::error::`, `warn!` → `::warning::`,
//! `info!` with target `notice` → `::notice::`, other `info!` → a plain line, `debug!` →
//! `::debug::` (only when `RUNNER_DEBUG=1`). Everything goes to stdout, where the runner reads
//! commands, so the order of lines is kept.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

/// The tracing target that turns an `info!` into a `::notice::`.
pub const NOTICE: &str = "notice";

/// Installs the workflow-command layer as the global subscriber (once per process).
pub fn init_logging(debug: bool) {
    let _ = tracing_subscriber::registry().with(WorkflowCommands { debug }).try_init();
}

/// Installs a subscriber for the command-line commands (`key`): warnings, errors and notices go
/// to stderr as `warning: …`, plain log lines nowhere.
pub fn init_cli_logging() {
    let _ = tracing_subscriber::registry().with(CliMessages).try_init();
}

struct CliMessages;

impl<S: Subscriber> Layer<S> for CliMessages {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        let kind = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warning",
            Level::INFO if event.metadata().target() == NOTICE => "notice",
            _ => return,
        };
        eprintln!("{kind}: {}", message.0);
    }
}

/// A notice: shown in the log and as an annotation.
#[macro_export]
macro_rules! notice {
    ($($arg:tt)*) => { tracing::info!(target: $crate::runner::NOTICE, $($arg)*) };
}

struct WorkflowCommands {
    debug: bool,
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }
}

impl<S: Subscriber> Layer<S> for WorkflowCommands {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        let level = *event.metadata().level();
        let line = match level {
            Level::ERROR => format!("::error::{}", escape_data(&message.0)),
            Level::WARN => format!("::warning::{}", escape_data(&message.0)),
            Level::INFO if event.metadata().target() == NOTICE => {
                format!("::notice::{}", escape_data(&message.0))
            }
            Level::INFO => message.0,
            _ if self.debug => format!("::debug::{}", escape_data(&message.0)),
            _ => return,
        };
        print_line(&line);
    }
}

fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Escapes a workflow command's data: `%`, CR and LF.
pub fn escape_data(text: &str) -> String {
    text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// Whether `add_mask` writes: not in the operator's commands (`entries`, `prune`), whose output
/// is read by people and programs, where the line would print the secret itself.
static MASKING: AtomicBool = AtomicBool::new(true);

/// Stops `add_mask` from writing for the rest of the process.
pub fn no_masking() {
    MASKING.store(false, Ordering::Relaxed);
}

/// Tells the runner to mask `secret` in every later log line.
pub fn add_mask(secret: &str) {
    if !secret.is_empty() && MASKING.load(Ordering::Relaxed) {
        print_line(&format!("::add-mask::{}", escape_data(secret)));
    }
}

/// A `::group::` that ends when dropped.
pub struct Group(());

pub fn group(title: &str) -> Group {
    print_line(&format!("::group::{}", escape_data(title)));
    Group(())
}

impl Drop for Group {
    fn drop(&mut self) {
        print_line("::endgroup::");
    }
}

/// Name/value pairs bound for one of the runner's files (`GITHUB_OUTPUT`, `GITHUB_STATE`,
/// `GITHUB_ENV`), written in the heredoc form so any value is safe.
#[derive(Debug, Default)]
pub struct FileCommands {
    pairs: Vec<(String, String)>,
}

impl FileCommands {
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.pairs.iter_mut().find(|(n, _)| n == name) {
            Some(pair) => pair.1 = value,
            None => self.pairs.push((name.to_string(), value)),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// Appends every pair to `file`; with no file (a laptop), prints `name=value` lines when
    /// `print_without_file` is set.
    pub fn commit(&self, file: Option<&Path>, print_without_file: bool) -> std::io::Result<()> {
        let Some(file) = file else {
            if print_without_file {
                for (name, value) in &self.pairs {
                    print_line(&format!("{name}={value}"));
                }
            }
            return Ok(());
        };
        let mut text = String::new();
        for (name, value) in &self.pairs {
            let delimiter = delimiter_for(value);
            let _ = write!(text, "{name}<<{delimiter}\n{value}\n{delimiter}\n");
        }
        append(file, &text)
    }
}

/// A heredoc delimiter that does not occur in `value`.
fn delimiter_for(value: &str) -> String {
    let mut n: u64 = std::process::id() as u64;
    loop {
        let candidate = format!("ghadelimiter_{n:016x}");
        if !value.contains(&candidate) {
            return candidate;
        }
        n = n.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    }
}

/// Appends `text` to `file`, creating it when needed.
pub fn append(file: &Path, text: &str) -> std::io::Result<()> {
    let mut f = OpenOptions::new().create(true).append(true).open(file)?;
    f.write_all(text.as_bytes())
}

/// Reads the state the restore step left for the post step, from `STATE_<name>`.
pub fn read_state(lookup: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(&crate::env::state_var(name)).filter(|v| !v.is_empty())
}

/// One row of the job summary table.
#[derive(Debug, Clone, Default)]
pub struct SummaryRow {
    pub target: String,
    /// The primary key (for a save, the key saved under).
    pub key: String,
    /// On a fallback restore, the key restored from, shown beside the primary key.
    pub restored_from: Option<String>,
    pub result: String,
    pub size: String,
    pub time: String,
    pub notes: String,
}

/// Appends a Markdown table to the job summary.
pub fn write_summary(file: Option<&PathBuf>, title: &str, rows: &[SummaryRow]) -> std::io::Result<()> {
    let Some(file) = file else { return Ok(()) };
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut text = format!(
        "### {title}\n\n| target | key | result | size | time | envs invalidated / evicted |\n|---|---|---|---|---|---|\n"
    );
    for r in rows {
        let key = match &r.restored_from {
            Some(from) => format!("`{}`<br>restored from `{}`", cell(&r.key), cell(from)),
            None => format!("`{}`", cell(&r.key)),
        };
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {} | {} |",
            cell(&r.target),
            key,
            cell(&r.result),
            cell(&r.size),
            cell(&r.time),
            cell(&r.notes)
        );
    }
    text.push('\n');
    append(file, &text)
}

/// `412 MB`, `3.1 kB`: sizes as people read them.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heredoc_form_survives_newlines() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("out");
        let mut cmds = FileCommands::default();
        cmds.set("a", "one");
        cmds.set("b", "two\nlines");
        cmds.set("a", "uno");
        cmds.commit(Some(&file), false).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        let parsed = parse_file_commands(&text);
        assert_eq!(parsed, vec![("a".into(), "uno".into()), ("b".into(), "two\nlines".into())]);
    }

    /// Reads the heredoc form the way the runner does.
    fn parse_file_commands(text: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            let (name, delim) = line.split_once("<<").unwrap();
            let mut value = Vec::new();
            for l in lines.by_ref() {
                if l == delim {
                    break;
                }
                value.push(l);
            }
            out.push((name.to_string(), value.join("\n")));
        }
        out
    }

    #[test]
    fn escapes_command_data() {
        assert_eq!(escape_data("50%\r\nx"), "50%25%0D%0Ax");
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(412_000_000), "412.0 MB");
    }
}
