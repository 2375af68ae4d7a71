//! Conformance of `hash_files` with the runner's hashFiles: every case builds a workspace, runs
//! our function and the reference (`tests/hashfiles-reference/hash-files.js`, which does what the
//! runner's bundled script does on top of `@actions/glob` 0.4.0 and minimatch 3.1.2, the versions
//! runners ship), and requires the same hex digest, or both failing.
//!
//! Each case also states what the reference must give (a hash, "" or a failure), so that a
//! broken fixture cannot make a case pass by having both sides agree on nothing.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use uv_nox_cache::hash_files::{hash_files, parse_args};

use crate::support::tools;

/// What the reference must give for a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// A 64-digit hash.
    Hash,
    /// The empty string: nothing matched.
    Empty,
    /// The run fails.
    Fail,
}
use Want::{Empty, Fail, Hash};

/// The directories of one case.
struct Env {
    /// The workspace given to both sides.
    ws: PathBuf,
    /// A directory outside the workspace, for link targets and absolute patterns.
    out: PathBuf,
    /// What `~` and `$HOME` mean.
    home: PathBuf,
}

/// Builds the case's files; `Err` names why the case cannot be run here (it is then reported
/// as skipped, and only the unreadable-file case may do that).
type Fixture = fn(&mut Env) -> Result<(), String>;

struct Case {
    name: &'static str,
    fixture: Fixture,
    args: &'static [&'static str],
    want: Want,
}

const fn case(name: &'static str, fixture: Fixture, args: &'static [&'static str], want: Want) -> Case {
    Case { name, fixture, args, want }
}

fn write(path: impl AsRef<Path>, content: impl AsRef<[u8]>) {
    let path = path.as_ref();
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

/// A project with nested lock files, dot directories, odd names and odd contents.
fn tree(e: &mut Env) -> Result<(), String> {
    let ws = &e.ws;
    for (name, content) in [
        ("uv.lock", "root lock\n"),
        ("pyproject.toml", "[project]\nname = \"x\"\n"),
        ("a/uv.lock", "a\n"),
        ("a/b/c/uv.lock", "abc\n"),
        ("a/x", "a/x\n"),
        ("a-b/uv.lock", "a-b\n"),
        ("a.txt", "a.txt\n"),
        ("b/uv.lock", "b\n"),
        (".hidden/uv.lock", "hidden\n"),
        (".nox/py311/uv.lock", "nox\n"),
        (".nox/py311/bin/python", "#!python\n"),
        (".git/config", "[core]\n"),
        ("deps.lock/inner.txt", "inside a directory called deps.lock\n"),
        ("x.lock/file", "inside x.lock\n"),
        ("Upper/UV.LOCK", "upper\n"),
        ("Upper/uv.lock", "lower\n"),
        ("sp ace/uv.lock", "space\n"),
        ("ünï/uv.lock", "unicode\n"),
        ("ünï/名前.txt", "cjk\n"),
        ("emoji/😀.txt", "astral\n"),
        ("crlf.txt", "one\r\ntwo\r\n"),
        ("empty.txt", ""),
        ("star*.txt", "literal star\n"),
        ("weird[1].txt", "brackets\n"),
        ("back\\slash.txt", "backslash\n"),
        ("{a,b}.txt", "braces\n"),
        ("a.{js,ts}", "braces 2\n"),
        ("x.js", "js\n"),
        ("#x", "hash name\n"),
        ("d]x", "bracket name\n"),
        ("deep/1/2/3/4/5/6/7/8/9/10/uv.lock", "deep\n"),
        ("deep/1/2/3/4/5/6/7/8/9/10/z.txt", "deep z\n"),
        ("package-lock.json", "{}\n"),
        ("homedir/h.lock", "home in workspace\n"),
        ("tr /f.txt", "directory name ending in a space\n"),
    ] {
        write(ws.join(name), content);
    }
    fs::create_dir_all(ws.join("emptydir")).unwrap();
    // Larger than one read buffer, so the file is hashed in several pieces.
    write(ws.join("big/data.bin"), (0..1_000_003u32).map(|i| (i * 7 % 251) as u8).collect::<Vec<u8>>());
    write(e.out.join("out.lock"), "outside\n");
    write(e.out.join("sub/deep.lock"), "outside deep\n");
    write(e.home.join("h.lock"), "home\n");
    Ok(())
}

/// The tree plus symbolic links to files and directories, inside and outside.
fn links(e: &mut Env) -> Result<(), String> {
    tree(e)?;
    let ws = &e.ws;
    write(ws.join("real/target.lock"), "target\n");
    write(ws.join("real/sub/x.lock"), "real sub\n");
    fs::create_dir_all(ws.join("links")).unwrap();
    symlink("../real/target.lock", ws.join("links/linkfile.lock")).unwrap();
    symlink("../real", ws.join("links/linkdir")).unwrap();
    symlink(e.out.join("out.lock"), ws.join("links/outside.lock")).unwrap();
    symlink(&e.out, ws.join("links/outdir")).unwrap();
    Ok(())
}

/// A directory symlink cycle.
fn cycle(e: &mut Env) -> Result<(), String> {
    tree(e)?;
    write(e.ws.join("loop/f.lock"), "in loop\n");
    symlink("..", e.ws.join("loop/up")).unwrap();
    symlink(".", e.ws.join("loop/here")).unwrap();
    Ok(())
}

fn dangling(e: &mut Env) -> Result<(), String> {
    tree(e)?;
    symlink("does-not-exist", e.ws.join("dangling.lock")).unwrap();
    Ok(())
}

fn self_link(e: &mut Env) -> Result<(), String> {
    tree(e)?;
    symlink("self.lock", e.ws.join("self.lock")).unwrap();
    Ok(())
}

fn socket(e: &mut Env) -> Result<(), String> {
    tree(e)?;
    let listener = std::os::unix::net::UnixListener::bind(e.ws.join("sock.lock")).unwrap();
    drop(listener); // the socket file stays; nobody listens, so open() fails with ENXIO
    Ok(())
}

fn fifo(e: &mut Env) -> Result<(), String> {
    tree(e)?;
    let status = Command::new("mkfifo").arg(e.ws.join("pipe.lock")).status().unwrap();
    assert!(status.success(), "mkfifo failed");
    Ok(())
}

fn bad_utf8(e: &mut Env) -> Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    tree(e)?;
    let name = std::ffi::OsStr::from_bytes(b"bad\xff.bin");
    write(e.ws.join(name), "invalid name\n");
    Ok(())
}

fn unreadable(e: &mut Env) -> Result<(), String> {
    tree(e)?;
    let path = e.ws.join("secret.lock");
    write(&path, "secret\n");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
    // Root (as in this CI) reads mode-000 files anyway: the runner would succeed too, so the
    // case would not test a failure. Skip it then; the socket and self-link cases cover
    // "a matched file cannot be read" for root.
    if fs::File::open(&path).and_then(|mut f| f.read(&mut [0; 1])).is_ok() {
        return Err("mode 000 does not stop this user (root) from reading".into());
    }
    Ok(())
}

/// The tree in a workspace whose name holds glob characters.
fn glob_named_ws(e: &mut Env) -> Result<(), String> {
    e.ws = e.ws.with_file_name("ws [x]*?{a,b}");
    tree(e)
}

/// The workspace given through a symlink: the root is its physical path.
fn linked_ws(e: &mut Env) -> Result<(), String> {
    tree(e)?;
    let link = e.ws.with_file_name("ws-link");
    symlink(&e.ws, &link).unwrap();
    e.ws = link;
    Ok(())
}

/// `~` inside the workspace, written with a trailing slash (so `~` alone is directory-only).
fn home_in_ws_slash(e: &mut Env) -> Result<(), String> {
    tree(e)?;
    e.home = PathBuf::from(format!("{}/", e.ws.join("homedir").display()));
    Ok(())
}

/// `~` inside the workspace.
fn home_in_ws(e: &mut Env) -> Result<(), String> {
    tree(e)?;
    e.home = e.ws.join("homedir");
    Ok(())
}

const F: &str = "--follow-symbolic-links";

#[rustfmt::skip]
const CASES: &[Case] = &[
    // Plain patterns.
    case("root-lock", tree, &["uv.lock"], Hash),
    case("all-locks", tree, &["**/uv.lock"], Hash),
    case("star-lock-includes-lock-directories", tree, &["*.lock"], Hash),
    case("star-is-everything", tree, &["*"], Hash),
    case("globstar", tree, &["**"], Hash),
    case("dot", tree, &["."], Hash),
    case("dot-slash", tree, &["./"], Hash),
    case("dot-slash-lock", tree, &["./uv.lock"], Hash),
    case("absolute-workspace", tree, &["{ws}"], Hash),
    case("absolute-locks", tree, &["{ws}/**/uv.lock"], Hash),
    case("missing", tree, &["nope.lock"], Empty),
    case("empty-dir", tree, &["emptydir"], Empty),
    case("deep", tree, &["deep/**/uv.lock"], Hash),
    case("deep-star", tree, &["**/10/*"], Hash),
    case("star-star-inside-segment", tree, &["a**/uv.lock"], Hash),
    case("order-a-x-before-a-b", tree, &["a*/**"], Hash),
    case("double-slash", tree, &["a//uv.lock"], Hash),
    case("hidden", tree, &[".hidden/*"], Hash),
    case("git-dir", tree, &[".git/**"], Hash),
    case("crlf-content", tree, &["crlf.txt"], Hash),
    case("empty-file", tree, &["empty.txt"], Hash),
    case("unicode-dir", tree, &["ünï/*"], Hash),
    case("space-dir", tree, &["sp ace/uv.lock"], Hash),
    case("case-sensitive-miss", tree, &["upper/uv.lock"], Empty),
    case("case-sensitive-upper", tree, &["Upper/UV.LOCK"], Hash),
    case("question", tree, &["a/?v.lock"], Hash),
    case("question-one-char", tree, &["?.txt"], Hash),
    case("question-astral-is-two-units", tree, &["emoji/?.txt"], Empty),
    case("question-question-astral", tree, &["emoji/??.txt"], Hash),
    // Directories.
    case("directory-pulls-subtree", tree, &["deps.lock"], Hash),
    case("directory-trailing-slash", tree, &["deps.lock/"], Hash),
    case("file-trailing-slash", tree, &["package-lock.json/"], Empty),
    case("file-globstar-matches-file", tree, &["package-lock.json/**"], Hash),
    case("file-as-directory-fails", tree, &["package-lock.json/x"], Fail),
    case("file-as-directory-glob-empty", tree, &["package-lock.json/*.txt"], Empty),
    case("dir-only", tree, &["a/"], Hash),
    case("dir-only-glob", tree, &["*/"], Hash),
    case("negated-dir-only-spares-file", tree, &["package-lock.json", "!package-lock.json/"], Hash),
    // Negation and order.
    case("negate-after", tree, &["**/uv.lock", "!.nox/**"], Hash),
    case("negate-before-has-no-effect", tree, &["!.nox/**", "**/uv.lock"], Hash),
    case("negate-directory", tree, &["**/uv.lock", "!.nox"], Hash),
    case("re-include", tree, &["**/uv.lock", "!a/**", "a/b/**"], Hash),
    case("double-negation", tree, &["!!uv.lock"], Hash),
    case("negations-with-spaces", tree, &["! ! uv.lock", "**/uv.lock", "! !! .nox"], Hash),
    case("dir-only-trailing-space", tree, &["tr /"], Hash),
    case("negate-with-space", tree, &["**/uv.lock", "! a/uv.lock"], Hash),
    case("negate-everything", tree, &["**", "!**"], Empty),
    case("only-negation", tree, &["!uv.lock"], Empty),
    // Pattern list parsing.
    case("comment-line", tree, &["# comment", "uv.lock"], Hash),
    case("comment-only", tree, &["#uv.lock"], Empty),
    case("empty-pattern", tree, &[""], Empty),
    case("bracket-hash", tree, &["[#]x"], Hash),
    case("globstar-hash", tree, &["**/#x"], Hash),
    case("js-trim", tree, &["  uv.lock\t"], Hash),
    case("js-trim-bom", tree, &["\u{feff}uv.lock"], Hash),
    case("js-trim-keeps-nel", tree, &["uv.lock\u{85}"], Empty),
    case("lines-in-one-argument", tree, &["uv.lock\na/uv.lock"], Hash),
    case("crlf-lines", tree, &["uv.lock\r\na/uv.lock\r\n"], Hash),
    case("option-later-is-pattern", tree, &["uv.lock", "--follow-symbolic-links"], Hash),
    case("duplicate-pattern", tree, &["uv.lock", "uv.lock"], Hash),
    // Escapes, brackets, braces.
    case("escaped-star", tree, &["star\\*.txt"], Hash),
    case("escaped-brackets", tree, &["weird\\[1\\].txt"], Hash),
    case("bracket-escape", tree, &["weird[[]1].txt"], Hash),
    case("escaped-backslash", tree, &["back\\\\slash.txt"], Hash),
    case("braces-literal", tree, &["{a,b}.txt"], Hash),
    case("braces-not-expanded", tree, &["**/*.{js,ts}"], Hash),
    case("extglob-literal", tree, &["+(a|b).txt"], Empty),
    case("class-range", tree, &["[a-b]/uv.lock"], Hash),
    case("class-negation", tree, &["[!a]*/uv.lock"], Hash),
    case("class-caret", tree, &["[^a.]*/uv.lock"], Hash),
    case("class-close-first-literal-root", tree, &["[]d]]x"], Empty),
    case("class-close-first", tree, &["[]d]]*"], Hash),
    case("class-reversed-range-is-literal", tree, &["[z-a]*"], Empty),
    case("class-unclosed", tree, &["weird[1*"], Hash),
    case("posix-class-minimatch3", tree, &["[[:alpha:]]/uv.lock"], Empty),
    case("degenerate-bang-is-literal-root", tree, &["[!]/uv.lock"], Empty),
    case("degenerate-bang", tree, &["*/[!]v.lock"], Hash),
    case("degenerate-caret", tree, &["*/[^]v.lock"], Hash),
    case("escaped-dash-in-class", tree, &["[a\\-c]*/uv.lock"], Hash),
    case("class-with-slash-escape", tree, &["[\\]]x"], Empty),
    case("single-char-class-is-literal-root", tree, &["[a]/b/**"], Hash),
    // Roots.
    case("two-roots", tree, &["a/**", "deep/**"], Hash),
    case("two-roots-reversed", tree, &["deep/**", "a/**"], Hash),
    case("shared-root", tree, &["d*/1/**", "a*/uv.lock"], Hash),
    case("shared-root-reversed", tree, &["a*/uv.lock", "d*/1/**"], Hash),
    case("nested-roots", tree, &["a/b/**", "a/**"], Hash),
    case("leading-slash-is-filesystem-root", tree, &["/src/*.js"], Empty),
    case("outside-absolute", tree, &["{out}/**"], Empty),
    case("home-outside", tree, &["~/h.lock", "~/**"], Empty),
    case("home-in-workspace", home_in_ws, &["~/h.lock"], Hash),
    case("home-tilde-in-workspace", home_in_ws, &["~"], Hash),
    case("home-with-trailing-slash", home_in_ws_slash, &["~", "~/h.lock"], Hash),
    case("big-file", tree, &["big/*"], Hash),
    case("escaped-slash", tree, &["a\\/uv.lock"], Empty),
    case("trailing-backslash", tree, &["uv.lock\\"], Empty),
    case("globstar-dir-only", tree, &["**/"], Hash),
    case("globstar-middle-dir-only", tree, &["a/**/"], Hash),
    case("two-globstars", tree, &["**/b/**/uv.lock"], Hash),
    case("lock-dirs-only", tree, &["*.lock/"], Hash),
    case("negate-dir-only-subtree", tree, &["**", "!a/", "!.git/"], Hash),
    case("workspace-globstar-explicit", tree, &["{ws}/**"], Hash),
    case("whitespace-argument", tree, &["   ", "uv.lock"], Hash),
    case("pattern-with-inner-cr", tree, &["uv\r.lock"], Empty),
    case("pattern-with-line-separator", tree, &["uv.lock\u{2028}"], Hash),
    case("workspace-with-glob-characters", glob_named_ws, &["**/uv.lock", "."], Hash),
    case("workspace-through-symlink", linked_ws, &["**/uv.lock"], Hash),
    // Invalid patterns.
    case("bare-bang", tree, &["!"], Fail),
    case("bang-space", tree, &["uv.lock", "! "], Fail),
    case("dotdot", tree, &["../x"], Fail),
    case("inner-dotdot", tree, &["a/../uv.lock"], Fail),
    case("inner-dot", tree, &["a/./uv.lock"], Fail),
    case("bracket-dot-twin", tree, &["[.]/x"], Fail),
    // Symbolic links, not followed (the default).
    case("link-to-file", links, &["links/linkfile.lock"], Hash),
    case("link-to-dir-globstar", links, &["links/linkdir/**"], Empty),
    case("link-to-dir-star", links, &["links/linkdir/*.lock"], Empty),
    case("literal-through-link", links, &["links/linkdir/target.lock"], Hash),
    case("link-outside-accepted", links, &["links/outside.lock"], Hash),
    case("links-all", links, &["links/**"], Hash),
    case("everything-with-links", links, &["**"], Hash),
    // Followed.
    case("follow-links", links, &[F, "links/**"], Hash),
    case("follow-link-dir", links, &[F, "links/linkdir"], Hash),
    case("follow-everything", links, &[F, "**"], Hash),
    case("link-to-outside-dir", links, &["links/outdir/**"], Empty),
    case("follow-link-to-outside-dir", links, &[F, "links/outdir/**"], Hash),
    case("follow-case-insensitive", links, &["--FOLLOW-Symbolic-LINKS", "**/*.lock"], Hash),
    case("cycle-not-followed", cycle, &["loop/**"], Hash),
    case("cycle-followed", cycle, &[F, "loop/**"], Hash),
    case("cycle-followed-all", cycle, &[F, "**/*.lock"], Hash),
    // Failures.
    case("dangling-matched", dangling, &["**"], Fail),
    case("dangling-matched-lock", dangling, &["*.lock"], Fail),
    case("dangling-not-matched", dangling, &["*.txt"], Hash),
    case("dangling-excluded", dangling, &["*.lock", "!dangling.lock"], Hash),
    case("dangling-followed-is-omitted", dangling, &[F, "**"], Hash),
    case("self-link-matched", self_link, &["*.lock"], Fail),
    case("self-link-followed", self_link, &[F, "*.lock"], Fail),
    case("socket-matched", socket, &["*.lock"], Fail),
    case("socket-excluded", socket, &["*.lock", "!sock.lock"], Hash),
    case("fifo-matched", fifo, &["*.lock"], Fail),
    case("fifo-not-matched", fifo, &["*.txt"], Hash),
    case("bad-utf8-reached", bad_utf8, &["**"], Fail),
    case("bad-utf8-not-reached", bad_utf8, &["*.txt"], Hash),
    case("bad-utf8-followed", bad_utf8, &[F, "**"], Hash),
    case("unreadable-file", unreadable, &["*.lock"], Fail),
];

/// How long the reference may run: the runner's own limit for `hashFiles()`, past which it
/// fails the step. Only a blocked read comes near it, and the FIFO cases watch for that.
const REFERENCE_TIMEOUT: Duration = Duration::from_secs(120);
/// Why a reference run that reads a FIFO is a failure.
const BLOCKED_ON_FIFO: &str = "blocked reading the FIFO (the runner fails hashFiles after 120 s)";

/// Whether a process holds `fifo` open for reading (or is blocked opening it): a non-blocking
/// open for writing succeeds only then. The write end is handed back and must stay open until
/// the reader is stopped, or the reader would see end-of-file and go on.
fn fifo_reader(fifo: &Path) -> Option<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    /// `O_NONBLOCK` on Linux.
    const O_NONBLOCK: i32 = 0o4000;
    fs::OpenOptions::new().write(true).custom_flags(O_NONBLOCK).open(fifo).ok()
}

/// Runs the reference; `Err` holds its stderr, or why it was stopped. With `fifo`, a reference
/// that starts reading that FIFO is stopped at once: it would block until the runner's limit.
fn reference(
    project: &Path,
    e: &Env,
    patterns: &[String],
    follow: bool,
    fifo: Option<&Path>,
) -> Result<String, String> {
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hashfiles-reference/hash-files.js");
    let mut cmd = Command::new("node");
    cmd.arg(driver)
        .arg(project)
        .current_dir(&e.ws)
        .env("patterns", patterns.join("\n"))
        .env("HOME", &e.home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if follow {
        cmd.env("followSymbolicLinks", "true");
    }
    let mut child = cmd.spawn().expect("start node for the hashFiles reference");
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).ok();
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Ok(status);
        }
        // Held until the reader is killed (see `fifo_reader`).
        let write_end = fifo.and_then(fifo_reader);
        let stopped = if write_end.is_some() {
            Some(BLOCKED_ON_FIFO.to_string())
        } else if start.elapsed() > REFERENCE_TIMEOUT {
            Some(format!("did not finish within {} s, the runner's limit", REFERENCE_TIMEOUT.as_secs()))
        } else {
            None
        };
        if let Some(why) = stopped {
            child.kill().ok();
            child.wait().ok();
            drop(write_end);
            break Err(why);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stderr = reader.join().unwrap();
    match status {
        Err(why) => Err(why),
        Ok(s) if !s.success() => Err(stderr),
        Ok(_) => {
            let value = stderr
                .split("__OUTPUT__")
                .nth(1)
                .unwrap_or_else(|| panic!("no __OUTPUT__ in the reference's stderr: {stderr}"));
            Ok(value.to_string())
        }
    }
}

fn substitute(arg: &str, e: &Env) -> String {
    let canon = |p: &Path| fs::canonicalize(p).unwrap().to_str().unwrap().to_string();
    arg.replace("{ws}", &canon(&e.ws)).replace("{out}", &canon(&e.out)).replace("{home}", &canon(&e.home))
}

/// What one case gave: the reference's kind of result, and the problems found.
struct Outcome {
    kind: Option<Want>,
    skipped: Option<String>,
    problems: Vec<String>,
}

fn run_case(project: &Path, c: &Case) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let mut e =
        Env { ws: dir.path().join("ws"), out: dir.path().join("outside"), home: dir.path().join("home") };
    if let Err(why) = (c.fixture)(&mut e) {
        return Outcome { kind: None, skipped: Some(format!("{}: {why}", c.name)), problems: vec![] };
    }
    let args: Vec<String> = c.args.iter().map(|a| substitute(a, &e)).collect();
    let (follow, patterns) = parse_args(&args).unwrap();
    let fifo = c.name.starts_with("fifo").then(|| e.ws.join("pipe.lock"));
    let want = reference(project, &e, &patterns, follow, fifo.as_deref());
    let got = hash_files(&e.ws, Some(&e.home), &patterns, follow);
    let kind = match &want {
        Ok(v) if v.is_empty() => Empty,
        Ok(_) => Hash,
        Err(_) => Fail,
    };
    let mut problems = Vec::new();
    if kind != c.want {
        problems.push(format!("{}: the reference gave {want:?}, the case expects {:?}", c.name, c.want));
    }
    let same = match (&want, &got) {
        (Ok(a), Ok(b)) => a == b,
        (Err(_), Err(_)) => true,
        _ => false,
    };
    if !same {
        problems.push(format!(
            "{}: {:?}\n    runner:  {want:?}\n    ours:    {:?}",
            c.name,
            c.args,
            got.map_err(|e| e.to_string())
        ));
    }
    Outcome { kind: Some(kind), skipped: None, problems }
}

#[test]
fn hash_files_matches_the_runner() {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let project = tools::npm_project("glob", tools::ACTIONS_GLOB_PACKAGES);
    // Node start-up dominates, so a few cases run at once.
    let next = AtomicUsize::new(0);
    let outcomes = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(c) = CASES.get(i) else { break };
                    let outcome = run_case(&project, c);
                    outcomes.lock().unwrap().push((i, outcome));
                }
            });
        }
    });
    let mut outcomes = outcomes.into_inner().unwrap();
    outcomes.sort_by_key(|(i, _)| *i);

    let count = |w| outcomes.iter().filter(|(_, o)| o.kind == Some(w)).count();
    let skipped: Vec<&String> = outcomes.iter().filter_map(|(_, o)| o.skipped.as_ref()).collect();
    eprintln!(
        "{} cases: {} hashes, {} empty, {} failures, {} skipped",
        CASES.len(),
        count(Hash),
        count(Empty),
        count(Fail),
        skipped.len()
    );
    for s in &skipped {
        eprintln!("skipped {s}");
    }
    let differing: Vec<String> =
        outcomes.iter().filter(|(_, o)| !o.problems.is_empty()).map(|(_, o)| o.problems.join("\n")).collect();
    assert!(
        differing.is_empty(),
        "{} of {} cases differ:\n{}",
        differing.len(),
        CASES.len(),
        differing.join("\n")
    );
    assert!(skipped.iter().all(|s| s.starts_with("unreadable-file")), "unexpected skips: {skipped:?}");
}

#[test]
fn hash_files_order_and_digest_by_hand() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    write(ws.join("a-b/uv.lock"), "2");
    write(ws.join("a/uv.lock"), "1");
    let mut outer = Sha256::new();
    for content in ["1", "2"] {
        outer.update(Sha256::digest(content));
    }
    let want = hex::encode(outer.finalize());
    let got = hash_files(ws, None, &["**/uv.lock".to_string()], false).unwrap();
    assert_eq!(got, want, "a/ is walked before a-b/");
}

/// Pieces the random patterns are made of: wildcards, brackets of every kind, escapes, names
/// that exist in the tree below, and the forms the runner refuses.
const PIECES: &[&str] = &[
    "*",
    "**",
    "?",
    "a",
    "b",
    "c",
    "A",
    "é",
    "a b",
    "uv.lock",
    "x.lock",
    ".nox",
    "link",
    "d]",
    "!a",
    "[a-c]",
    "[!a]",
    "[^a-b]*",
    "[]a]",
    "[!]]",
    "[a]",
    "[ab]*",
    "[[]a]",
    "*[]]",
    "[z-a]",
    "[a\\-c]",
    "[[:alpha:]]",
    "[!]",
    "[^]",
    "[",
    "]",
    "[.]",
    "\\*",
    "a\\",
    "{a,b}",
    "a*",
    "*.lock",
    "**.lock",
    "?*",
    "*?",
    "a?b",
    "~",
    ".",
];

/// The tree for random patterns: names that the pieces above can hit, and links.
fn random_tree(ws: &Path) {
    for name in [
        "uv.lock",
        "a/uv.lock",
        "a/b/uv.lock",
        "a/b/c/x.lock",
        "b/a",
        "ab/uv.lock",
        ".nox/a/uv.lock",
        "x.lock/f",
        "]a",
        "[a]",
        "a*b",
        "c/{a,b}",
        "!a",
        "a b/c",
        "d]",
        "A/uv.lock",
        "é/a",
        "a-b/x",
        "a.b/y",
        "axb/uv.lock",
    ] {
        write(ws.join(name), name);
    }
    symlink("../a", ws.join("b/link")).unwrap();
    symlink("uv.lock", ws.join("c/l.lock")).unwrap();
}

/// Thousands of random pattern lists, each compared with the runner's result. The reference
/// runs them all in one node process (`--many`).
#[test]
fn hash_files_random_patterns_match_the_runner() {
    const CASES: usize = 3000;
    let project = tools::npm_project("glob", tools::ACTIONS_GLOB_PACKAGES);
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    random_tree(&ws);
    let home = ws.join("a");

    // xorshift64, fixed seed: the same cases every run.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut pick = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let mut cases = Vec::new();
    for _ in 0..CASES {
        let lines: Vec<String> = (0..1 + pick(3))
            .map(|_| {
                let mut line =
                    (0..1 + pick(4)).map(|_| PIECES[pick(PIECES.len())]).collect::<Vec<_>>().join("/");
                if pick(5) == 0 {
                    line.push('/');
                }
                if pick(4) == 0 {
                    line.insert(0, '!');
                }
                line
            })
            .collect();
        cases.push((lines.join("\n"), pick(4) == 0));
    }
    let json: Vec<_> = cases.iter().map(|(p, f)| serde_json::json!({"patterns": p, "follow": f})).collect();
    let cases_file = dir.path().join("cases.json");
    let results_file = dir.path().join("results.json");
    fs::write(&cases_file, serde_json::to_string(&json).unwrap()).unwrap();
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hashfiles-reference/hash-files.js");
    let status = Command::new("node")
        .arg(driver)
        .arg(&project)
        .arg("--many")
        .arg(&cases_file)
        .arg(&results_file)
        .current_dir(&ws)
        .env("HOME", &home)
        .stdout(Stdio::null())
        .status()
        .expect("start node for the hashFiles reference");
    assert!(status.success(), "the reference failed: {status}");
    let want: Vec<String> = serde_json::from_str(&fs::read_to_string(&results_file).unwrap()).unwrap();
    assert_eq!(want.len(), CASES);

    let mut problems = Vec::new();
    for ((patterns, follow), want) in cases.iter().zip(&want) {
        let got = hash_files(&ws, Some(&home), std::slice::from_ref(patterns), *follow);
        let same = match &got {
            Ok(h) => h == want,
            Err(_) => want.starts_with("ERROR: "),
        };
        if !same {
            problems.push(format!(
                "{patterns:?} follow={follow}\n    runner: {want:?}\n    ours:   {:?}",
                got.map_err(|e| e.to_string())
            ));
        }
    }
    let hashes = want.iter().filter(|w| w.len() == 64).count();
    let errors = want.iter().filter(|w| w.starts_with("ERROR: ")).count();
    eprintln!("{CASES} random cases: {hashes} hashes, {errors} failures");
    assert!(hashes > CASES / 10 && errors > CASES / 20, "the random cases no longer test much");
    assert!(
        problems.is_empty(),
        "{} of {CASES} random cases differ (first 20):\n{}",
        problems.len(),
        problems.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
}
