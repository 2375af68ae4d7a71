//! One hashFiles pattern, built the way the runner's bundled `@actions/glob` 0.4.0 builds it
//! (`Pattern`, `fixupPattern`, `getLiteral`), and matched the way minimatch 3.1.2 matches it
//! (`parse` of one segment into a regular expression, `matchOne` with `**`).
//!
//! It exists because the cache key must equal the runner's `hashFiles()` byte for byte, and the
//! runner's matching has many quirks that a general glob crate does not share: `[!]` matches any
//! character, `[[:digit:]]` is a one-character set followed by `]`, `{a,b}` is literal, `\` escapes,
//! `?` matches one UTF-16 code unit, and a segment with a wildcard never matches an empty name.
//! Reference: `docs/hashfiles.md` §2.3 and §2.4.

use std::fmt;

/// Why a pattern line was refused; the caller adds the pattern itself to the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PatternError {
    /// Nothing left after the `!` characters.
    Empty,
    /// A `.` segment (other than the first) or a `..` segment.
    RelativeSegment(String),
    /// `~` used but no home directory is known, or it is not absolute.
    Home(String),
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatternError::Empty => write!(f, "pattern cannot be empty (a lone '!' negates nothing)"),
            PatternError::RelativeSegment(p) => write!(
                f,
                "'{p}' uses '.' or '..' as a path segment, which the runner refuses; \
                 write the path from the workspace without them"
            ),
            PatternError::Home(why) => write!(f, "'~' cannot be expanded: {why}"),
        }
    }
}

/// Bits of the runner's `MatchKind`.
pub(crate) const MATCH_DIRECTORY: u8 = 1;
pub(crate) const MATCH_FILE: u8 = 2;
pub(crate) const MATCH_ALL: u8 = MATCH_DIRECTORY | MATCH_FILE;

/// A pattern line after negation, rooting and normalisation.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    pub negate: bool,
    /// `@actions/glob` segments: the first is `/`, the others never contain `/`.
    pub segments: Vec<String>,
    /// The line ended with `/`: it only matches directories.
    pub trailing_separator: bool,
    /// The leading literal segments: where the walk starts.
    pub search_path: String,
    /// An implicit `P/**` twin, added so that a matched directory brings its whole subtree.
    pub implicit: bool,
    /// The line as written, for error messages.
    pub line: String,
    /// minimatch's `set[0]`: the pattern split on `/`, each part compiled.
    set: Vec<Seg>,
}

impl Pattern {
    /// The `Pattern(line)` constructor. `cwd` is the physical workspace path, `home` what `~` means.
    pub fn new(line: &str, cwd: &str, home: Option<&str>) -> Result<Pattern, PatternError> {
        Pattern::build(js_trim(line), false, cwd, home, line)
    }

    /// The implicit `P/**` twin of this pattern (same negation, not directory-only).
    pub fn twin(&self, cwd: &str) -> Result<Pattern, PatternError> {
        let mut segments = self.segments.clone();
        segments.push("**".to_string());
        let mut text = js_trim(&segments_to_string(&segments)).to_string();
        if self.negate {
            text.insert(0, '!');
        }
        // The twin is already rooted, so neither cwd nor home is consulted again.
        Pattern::build(&text, true, cwd, None, &self.line)
    }

    fn build(
        text: &str,
        implicit: bool,
        cwd: &str,
        home: Option<&str>,
        line: &str,
    ) -> Result<Pattern, PatternError> {
        let mut pattern = text;
        let mut negate = false;
        while let Some(rest) = pattern.strip_prefix('!') {
            negate = !negate;
            pattern = js_trim(rest);
        }
        let pattern = fixup(pattern, cwd, home)?;
        let segments = path_segments(&pattern);
        let trailing_separator = pattern.ends_with('/');
        let pattern = safe_trim_trailing_separator(&pattern);

        let mut search = Vec::new();
        for segment in &segments {
            let literal = literal_of(segment);
            if literal.is_empty() {
                break;
            }
            search.push(literal);
        }
        let search_path = segments_to_string(&search);

        // minimatch trims again and splits on runs of `/`.
        let set = split_slashes(js_trim(&pattern)).into_iter().map(compile_segment).collect();
        Ok(Pattern {
            negate,
            segments,
            trailing_separator,
            search_path,
            implicit,
            line: line.to_string(),
            set,
        })
    }
}

impl Pattern {
    /// `Pattern.match(itemPath)`. `file` is the item path split on `/`, and `file_slash` the same
    /// with a trailing empty part (the path with `/` appended).
    pub fn match_kind(&self, file: &[&str], file_slash: &[&str]) -> u8 {
        let explicit_globstar = !self.implicit && self.segments.last().is_some_and(|s| s.as_str() == "**");
        let file = if explicit_globstar { file_slash } else { file };
        if match_one(file, &self.set, false) {
            if self.trailing_separator { MATCH_DIRECTORY } else { MATCH_ALL }
        } else {
            0
        }
    }

    /// `Pattern.partialMatch(itemPath)`: could something below this path match?
    pub fn partial_match(&self, path: &str, file: &[&str]) -> bool {
        // The file-system root: the runner tests it against the root segment, always `/` here.
        if path == "/" {
            return true;
        }
        match_one(file, &self.set, true)
    }

    /// Whether the pattern uses a bracket form on which minimatch 3 (what runners ship) and
    /// minimatch 10 disagree: a POSIX class such as `[[:digit:]]`, or `[!]` / `[^]`.
    pub fn has_divergent_brackets(line: &str) -> bool {
        line.contains("[[:") || line.contains("[!]") || line.contains("[^]")
    }
}

/// JavaScript's `String.prototype.trim`: WhiteSpace and LineTerminator code points. Unlike
/// `str::trim`, it removes U+FEFF and keeps U+0085.
pub(crate) fn js_trim(s: &str) -> &str {
    fn is_js_space(c: char) -> bool {
        matches!(
            c,
            '\u{9}'..='\u{D}'
                | ' '
                | '\u{A0}'
                | '\u{1680}'
                | '\u{2000}'..='\u{200A}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202F}'
                | '\u{205F}'
                | '\u{3000}'
                | '\u{FEFF}'
        )
    }
    s.trim_matches(is_js_space)
}

/// `fixupPattern`: refuse `.`/`..` segments, then root the pattern at cwd or home.
fn fixup(pattern: &str, cwd: &str, home: Option<&str>) -> Result<String, PatternError> {
    if pattern.is_empty() {
        return Err(PatternError::Empty);
    }
    let literals: Vec<String> = path_segments(pattern).iter().map(|s| literal_of(s)).collect();
    let relative = literals.iter().enumerate().any(|(i, s)| (s == "." && i != 0) || s == "..");
    if relative {
        return Err(PatternError::RelativeSegment(pattern.to_string()));
    }
    let pattern = normalize_separators(pattern);
    let rooted = if pattern == "." || pattern.starts_with("./") {
        format!("{}{}", glob_escape(cwd), &pattern[1..])
    } else if pattern == "~" || pattern.starts_with("~/") {
        let home = home.ok_or_else(|| PatternError::Home("no home directory is known".into()))?;
        if !home.starts_with('/') {
            return Err(PatternError::Home(format!("the home directory '{home}' is not an absolute path")));
        }
        format!("{}{}", glob_escape(home), &pattern[1..])
    } else if pattern.starts_with('/') {
        pattern
    } else {
        let root = glob_escape(cwd);
        let sep = if root.ends_with('/') { "" } else { "/" };
        format!("{root}{sep}{pattern}")
    };
    Ok(normalize_separators(&rooted))
}

/// `normalizeSeparators`: collapse runs of `/`.
fn normalize_separators(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for c in p.chars() {
        if c == '/' && out.ends_with('/') {
            continue;
        }
        out.push(c);
    }
    out
}

/// `safeTrimTrailingSeparator`: `/foo/` becomes `/foo`, `/` stays.
fn safe_trim_trailing_separator(p: &str) -> String {
    let p = normalize_separators(p);
    if p.len() > 1 && p.ends_with('/') { p[..p.len() - 1].to_string() } else { p }
}

/// The segments of `@actions/glob`'s `Path`: rooted paths give `/` then the names, others are
/// split on `/`.
fn path_segments(p: &str) -> Vec<String> {
    let p = safe_trim_trailing_separator(p);
    match p.strip_prefix('/') {
        Some(rest) => std::iter::once("/")
            .chain(rest.split('/').filter(|s| !s.is_empty()))
            .map(str::to_string)
            .collect(),
        None => p.split('/').map(str::to_string).collect(),
    }
}

/// `Path.toString()` of segments whose first is `/`.
fn segments_to_string<S: AsRef<str>>(segments: &[S]) -> String {
    let mut out = String::new();
    for (i, s) in segments.iter().enumerate() {
        if i > 0 && !out.ends_with('/') {
            out.push('/');
        }
        out.push_str(s.as_ref());
    }
    out
}

/// `Pattern.globEscape`: neutralise glob characters of the cwd or home path.
fn glob_escape(s: &str) -> String {
    let s = s.replace('\\', "\\\\");
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        // `[` is escaped as `[[]` when a `]` follows within the same segment (not right after).
        let closes = c == '[' && chars[i + 1..].iter().take_while(|&&x| x != '/').skip(1).any(|&x| x == ']');
        match c {
            '[' if closes => out.push_str("[[]"),
            '?' => out.push_str("[?]"),
            '*' => out.push_str("[*]"),
            _ => out.push(c),
        }
    }
    out
}

/// `Pattern.getLiteral`: the segment as a literal name, or "" when it has a wildcard.
fn literal_of(segment: &str) -> String {
    let c: Vec<char> = segment.chars().collect();
    let mut literal = String::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch == '\\' && i + 1 < c.len() {
            i += 1;
            literal.push(c[i]);
            i += 1;
            continue;
        }
        if ch == '*' || ch == '?' {
            return String::new();
        }
        if ch == '[' && i + 1 < c.len() {
            let mut set = String::new();
            let mut closed = None;
            let mut j = i + 1;
            while j < c.len() {
                if c[j] == '\\' && j + 1 < c.len() {
                    j += 1;
                    set.push(c[j]);
                } else if c[j] == ']' {
                    closed = Some(j);
                    break;
                } else {
                    set.push(c[j]);
                }
                j += 1;
            }
            if let Some(closed) = closed {
                // JavaScript counts UTF-16 code units.
                if set.encode_utf16().count() > 1 {
                    return String::new();
                }
                if !set.is_empty() {
                    literal.push_str(&set);
                    i = closed + 1;
                    continue;
                }
            }
        }
        literal.push(ch);
        i += 1;
    }
    literal
}

/// JavaScript's `s.split(/\/+/)`.
pub(crate) fn split_slashes(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'/' {
            parts.push(&s[start..i]);
            while i < bytes.len() && bytes[i] == b'/' {
                i += 1;
            }
            start = i;
        } else {
            i += 1;
        }
    }
    parts.push(&s[start..]);
    parts
}

/// One part of minimatch's compiled pattern.
#[derive(Debug, Clone)]
enum Seg {
    /// No magic: compared for equality after unescaping.
    Str(String),
    /// `**` as a whole segment.
    Globstar,
    /// A regular expression, kept as tokens over UTF-16 code units.
    Re(Vec<Tok>),
    /// A regular expression JavaScript refuses to build: minimatch then matches nothing.
    Never,
}

/// The pieces of the regular expression minimatch 3 writes for one segment.
#[derive(Debug, Clone)]
enum Tok {
    /// `(?!(?:^|\/)\.{1,2}(?:$|\/))` at the start: the name is not `.` or `..`.
    NotDotStart,
    /// `(?=.)`: a character follows that is not a line terminator.
    NonEmptyAhead,
    Lit(u16),
    /// `[^/]`
    Any,
    /// `[^/]*?`
    Star,
    Class(Class),
}

#[derive(Debug, Clone)]
struct Class {
    negated: bool,
    ranges: Vec<(u16, u16)>,
}

impl Class {
    fn matches(&self, c: u16) -> bool {
        self.ranges.iter().any(|&(a, b)| a <= c && c <= b) != self.negated
    }
}

/// Characters minimatch escapes in a regular expression (`reSpecials`).
fn is_special(c: u16) -> bool {
    c < 128 && b"().*{}+?[]^$\\!".contains(&(c as u8))
}

fn compile_segment(segment: &str) -> Seg {
    match segment {
        "**" => Seg::Globstar,
        "" => Seg::Str(String::new()),
        _ => {
            let units: Vec<u16> = segment.encode_utf16().collect();
            let parsed = parse(&units, false);
            if !parsed.magic {
                Seg::Str(glob_unescape(segment))
            } else if parsed.valid {
                Seg::Re(parsed.toks)
            } else {
                Seg::Never
            }
        }
    }
}

struct Parsed {
    toks: Vec<Tok>,
    magic: bool,
    /// False when the emitted expression has a range JavaScript refuses (`[z-a]` via escapes).
    valid: bool,
}

const U_BACKSLASH: u16 = b'\\' as u16;

/// minimatch 3.1.2 `parse()` with `{dot, nobrace, noext, nocomment, nonegate}`, emitting tokens
/// instead of regular-expression source. `sub` is minimatch's SUBPARSE.
fn parse(pat: &[u16], sub: bool) -> Parsed {
    let mut re: Vec<Tok> = Vec::new();
    let mut magic = false;
    let mut valid = true;
    let mut escaping = false;
    let mut in_class = false;
    let mut class_start = usize::MAX;
    let mut re_class_start = 0;
    // The class as emitted: (code unit, escaped with `\`).
    let mut class_src: Vec<(u16, bool)> = Vec::new();

    let mut i = 0;
    while i < pat.len() {
        let c = pat[i];
        let emit = |re: &mut Vec<Tok>, class_src: &mut Vec<(u16, bool)>, c, escaped, in_class| {
            if in_class {
                class_src.push((c, escaped));
            } else {
                re.push(Tok::Lit(c));
            }
        };
        if escaping && is_special(c) {
            emit(&mut re, &mut class_src, c, true, in_class);
            escaping = false;
            i += 1;
            continue;
        }
        match c {
            U_BACKSLASH => escaping = true,
            0x3F | 0x2A | 0x2B | 0x40 | 0x21 => {
                // ? * + @ !
                if in_class {
                    let c = if c == 0x21 && i == class_start.wrapping_add(1) { 0x5E } else { c };
                    class_src.push((c, false));
                } else if c == 0x2A {
                    re.push(Tok::Star);
                    magic = true;
                } else if c == 0x3F {
                    re.push(Tok::Any);
                    magic = true;
                } else {
                    re.push(Tok::Lit(c));
                }
            }
            0x28 => emit(&mut re, &mut class_src, c, false, in_class), // (
            0x29 | 0x7C => {
                // ) |
                emit(&mut re, &mut class_src, c, true, in_class);
                escaping = false;
            }
            0x5B => {
                // [
                if in_class {
                    class_src.push((c, true));
                } else {
                    in_class = true;
                    class_start = i;
                    re_class_start = re.len();
                    class_src.clear();
                }
            }
            0x5D => {
                // ]
                if i == class_start.wrapping_add(1) || !in_class {
                    emit(&mut re, &mut class_src, c, true, in_class);
                    escaping = false;
                } else if !js_class_is_valid(&pat[class_start + 1..i]) {
                    let sp = parse(&pat[class_start + 1..i], true);
                    re.truncate(re_class_start);
                    re.push(Tok::Lit(0x5B));
                    re.extend(sp.toks);
                    re.push(Tok::Lit(0x5D));
                    magic |= sp.magic;
                    valid &= sp.valid;
                    in_class = false;
                } else {
                    magic = true;
                    in_class = false;
                    match emitted_class(&class_src) {
                        Some(class) => re.push(Tok::Class(class)),
                        None => valid = false,
                    }
                }
            }
            _ => {
                // Escaped or not, an ordinary character stands for itself.
                escaping = false;
                emit(&mut re, &mut class_src, c, false, in_class);
            }
        }
        i += 1;
    }

    if in_class {
        // "[abc" is "\[abc": re-read what followed the `[`.
        let sp = parse(&pat[class_start + 1..], true);
        re.truncate(re_class_start);
        re.push(Tok::Lit(0x5B));
        re.extend(sp.toks);
        magic |= sp.magic;
        valid &= sp.valid;
    }
    if escaping {
        re.push(Tok::Lit(U_BACKSLASH));
    }
    let starts_with_bracket = matches!(re.first(), Some(Tok::Star | Tok::Any | Tok::Class(_)));
    if !re.is_empty() && magic {
        re.insert(0, Tok::NonEmptyAhead);
    }
    // In a sub-expression this lookahead sits mid-string, where it can never fire.
    if starts_with_bracket && !sub {
        re.insert(0, Tok::NotDotStart);
    }
    Parsed { toks: re, magic, valid }
}

/// The class minimatch emitted, read as JavaScript reads `[...]`; `None` for a reversed range.
fn emitted_class(src: &[(u16, bool)]) -> Option<Class> {
    let (negated, body) = match src.first() {
        Some(&(0x5E, false)) => (true, &src[1..]),
        _ => (false, src),
    };
    let mut ranges = Vec::new();
    let mut i = 0;
    while i < body.len() {
        let a = body[i].0;
        if i + 2 < body.len() && body[i + 1] == (0x2D, false) {
            let b = body[i + 2].0;
            if a > b {
                return None;
            }
            ranges.push((a, b));
            i += 3;
        } else {
            ranges.push((a, a));
            i += 1;
        }
    }
    Some(Class { negated, ranges })
}

/// Whether `new RegExp('[' + cs + ']')` succeeds (no `u` flag) for the raw pattern text `cs`.
/// minimatch re-reads an invalid class as literal text.
fn js_class_is_valid(cs: &[u16]) -> bool {
    let is_hex = |c: u16| (c as u8 as u16 == c) && (c as u8).is_ascii_hexdigit();
    let hex = |s: &[u16]| s.iter().fold(0u32, |v, &c| v * 16 + (c as u8 as char).to_digit(16).unwrap_or(0));
    // One class atom at `i`: its code unit (None for \d, \w, \s and their negations), and the
    // index after it. None overall for an unterminated escape.
    let atom = |i: usize| -> Option<(Option<u32>, usize)> {
        if cs[i] != U_BACKSLASH {
            return Some((Some(cs[i] as u32), i + 1));
        }
        let e = *cs.get(i + 1)?;
        let ch = char::from_u32(e as u32).unwrap_or('\0');
        Some(match ch {
            'd' | 'D' | 's' | 'S' | 'w' | 'W' => (None, i + 2),
            'b' => (Some(8), i + 2),
            'f' => (Some(12), i + 2),
            'n' => (Some(10), i + 2),
            'r' => (Some(13), i + 2),
            't' => (Some(9), i + 2),
            'v' => (Some(11), i + 2),
            '0'..='7' => {
                // Legacy octal: up to three digits, at most 0o377.
                let max = if ch <= '3' { 3 } else { 2 };
                let mut j = i + 1;
                let mut v = 0;
                while j < cs.len() && j < i + 1 + max && (0x30..=0x37).contains(&cs[j]) {
                    v = v * 8 + (cs[j] - 0x30) as u32;
                    j += 1;
                }
                (Some(v), j)
            }
            'x' if cs.len() >= i + 4 && cs[i + 2..i + 4].iter().all(|&c| is_hex(c)) => {
                (Some(hex(&cs[i + 2..i + 4])), i + 4)
            }
            'u' if cs.len() >= i + 6 && cs[i + 2..i + 6].iter().all(|&c| is_hex(c)) => {
                (Some(hex(&cs[i + 2..i + 6])), i + 6)
            }
            'c' => match cs.get(i + 2).and_then(|&c| char::from_u32(c as u32)) {
                Some(l) if l.is_ascii_alphanumeric() || l == '_' => (Some(l as u32 % 32), i + 3),
                _ => (Some(U_BACKSLASH as u32), i + 1),
            },
            _ => (Some(e as u32), i + 2),
        })
    };
    let mut i = usize::from(cs.first() == Some(&0x5E));
    while i < cs.len() {
        let Some((a, next)) = atom(i) else {
            return false;
        };
        i = next;
        if i + 1 < cs.len() && cs[i] == 0x2D {
            let Some((b, next)) = atom(i + 1) else {
                return false;
            };
            if let (Some(a), Some(b)) = (a, b)
                && a > b
            {
                return false;
            }
            i = next;
        }
    }
    true
}

/// minimatch's `globUnescape`: `\x` becomes `x` (JavaScript's `.` skips line terminators).
fn glob_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(&n) = chars.peek()
            && !is_line_terminator(n as u32)
        {
            out.push(n);
            chars.next();
            continue;
        }
        out.push(c);
    }
    out
}

fn is_line_terminator(c: u32) -> bool {
    matches!(c, 0x0A | 0x0D | 0x2028 | 0x2029)
}

/// `^re$` against one name.
fn regex_matches(toks: &[Tok], s: &[u16], pos: usize) -> bool {
    let Some((tok, rest)) = toks.split_first() else {
        return pos == s.len();
    };
    match tok {
        Tok::NotDotStart => {
            let dots = s.iter().all(|&c| c == 0x2E) && (s.len() == 1 || s.len() == 2);
            !(pos == 0 && dots) && regex_matches(rest, s, pos)
        }
        Tok::NonEmptyAhead => {
            pos < s.len() && !is_line_terminator(s[pos] as u32) && regex_matches(rest, s, pos)
        }
        Tok::Lit(c) => pos < s.len() && s[pos] == *c && regex_matches(rest, s, pos + 1),
        Tok::Any => pos < s.len() && regex_matches(rest, s, pos + 1),
        Tok::Class(class) => pos < s.len() && class.matches(s[pos]) && regex_matches(rest, s, pos + 1),
        Tok::Star => (pos..=s.len()).any(|p| regex_matches(rest, s, p)),
    }
}

fn segment_matches(p: &Seg, f: &str) -> bool {
    match p {
        Seg::Str(s) => s == f,
        Seg::Re(toks) => {
            let units: Vec<u16> = f.encode_utf16().collect();
            regex_matches(toks, &units, 0)
        }
        Seg::Globstar | Seg::Never => false,
    }
}

/// minimatch 3.1.2 `matchOne(file, pattern, partial)` with `dot: true`.
fn match_one(file: &[&str], pattern: &[Seg], partial: bool) -> bool {
    let (mut fi, mut pi) = (0, 0);
    let (fl, pl) = (file.len(), pattern.len());
    while fi < fl && pi < pl {
        let p = &pattern[pi];
        if let Seg::Globstar = p {
            let pr = pi + 1;
            if pr == pl {
                // A trailing `**` swallows the rest, but never `.` or `..`.
                return file[fi..].iter().all(|f| *f != "." && *f != "..");
            }
            let mut fr = fi;
            while fr < fl {
                if match_one(&file[fr..], &pattern[pr..], partial) {
                    return true;
                }
                if file[fr] == "." || file[fr] == ".." {
                    break;
                }
                fr += 1;
            }
            return partial && fr == fl;
        }
        if !segment_matches(p, file[fi]) {
            return false;
        }
        fi += 1;
        pi += 1;
    }
    if fi == fl && pi == pl {
        true
    } else if fi == fl {
        partial
    } else {
        // Out of pattern: only a final empty part (a trailing `/`) is left over.
        fi == fl - 1 && file[fi].is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(glob: &str, name: &str) -> bool {
        segment_matches(&compile_segment(glob), name)
    }

    #[test]
    fn js_trim_differs_from_str_trim() {
        assert_eq!(js_trim(" \t\u{feff}a b\u{a0}\u{3000}"), "a b");
        assert_eq!(js_trim("a\u{85}"), "a\u{85}");
        assert_eq!(js_trim("\r\n"), "");
    }

    #[test]
    fn split_like_javascript() {
        assert_eq!(split_slashes("/a//b/"), vec!["", "a", "b", ""]);
        assert_eq!(split_slashes("/"), vec!["", ""]);
        assert_eq!(split_slashes("a"), vec!["a"]);
    }

    #[test]
    fn patterns_are_rooted_and_split() {
        let p = Pattern::new("  !! a//b*/c/ ", "/ws", None).unwrap();
        assert!(!p.negate);
        assert!(p.trailing_separator);
        assert_eq!(p.segments, ["/", "ws", "a", "b*", "c"]);
        assert_eq!(p.search_path, "/ws/a");

        let p = Pattern::new("! x", "/ws", None).unwrap();
        assert!(p.negate);
        assert_eq!(p.search_path, "/ws/x");

        let p = Pattern::new("~/x", "/ws", Some("/home/u")).unwrap();
        assert_eq!(p.search_path, "/home/u/x");
        assert_eq!(Pattern::new("./", "/ws", None).unwrap().search_path, "/ws");
        assert_eq!(Pattern::new("/abs/[x]/*", "/ws", None).unwrap().search_path, "/abs/x");
        assert_eq!(Pattern::new("[ab]/x", "/ws", None).unwrap().search_path, "/ws");
    }

    #[test]
    fn invalid_patterns() {
        assert_eq!(Pattern::new("!", "/ws", None).unwrap_err(), PatternError::Empty);
        for bad in ["..", "../x", "a/../b", "a/./b", "a/[.][.]/b"] {
            assert!(matches!(Pattern::new(bad, "/ws", None), Err(PatternError::RelativeSegment(_))), "{bad}");
        }
        assert!(matches!(Pattern::new("~", "/ws", None), Err(PatternError::Home(_))));
        // `[.]` is allowed as the first segment, but its `/**` twin is refused.
        let p = Pattern::new("[.]/x", "/ws", None).unwrap();
        assert!(p.twin("/ws").is_err());
    }

    #[test]
    fn cwd_glob_characters_are_escaped() {
        assert_eq!(glob_escape("/w [x]*?\\"), "/w [[]x][*][?]\\\\");
        assert_eq!(glob_escape("/a[/b]"), "/a[/b]");
        let p = Pattern::new("*.lock", "/w [x]*?", None).unwrap();
        assert_eq!(p.search_path, "/w [x]*?");
    }

    #[test]
    fn literals() {
        assert_eq!(literal_of("a\\*b"), "a*b");
        assert_eq!(literal_of("weird[[]1]"), "weird[1]");
        assert_eq!(literal_of("[!]"), "!");
        assert_eq!(literal_of("[]x]"), "[]x]");
        assert_eq!(literal_of("a*"), "");
        assert_eq!(literal_of("[ab]"), "");
    }

    #[test]
    fn segment_matching() {
        assert!(matches("*.lock", "uv.lock"));
        assert!(matches("*.lock", ".lock"));
        assert!(!matches("*", ""));
        assert!(matches("?v.lock", "uv.lock"));
        assert!(!matches("?", "😀"));
        assert!(matches("??", "😀"));
        assert!(matches("[a-c]x", "bx"));
        assert!(!matches("[!a-c]x", "bx"));
        assert!(matches("[^a-c]x", "dx"));
        assert!(matches("[]a]", "]"));
        assert!(matches("star\\*", "star*"));
        assert!(!matches("star\\*", "starx"));
        assert!(matches("{a,b}", "{a,b}"));
        assert!(matches("+(a|b)", "+(a|b)"));
        assert!(matches("a**b", "axxb"));
        // minimatch 3: `[!]` is `[^]`, any one character; a POSIX class is a set then `]`.
        assert!(matches("[!]", "x"));
        assert!(!matches("[[:digit:]]", "1"));
        assert!(matches("[[:digit:]]", "d]"));
        // `\-` in a class loses its backslash and makes a range.
        assert!(matches("[a\\-c]", "b"));
        // A reversed range is not a class: the brackets are literal.
        assert!(matches("[z-a]", "[z-a]"));
        assert!(matches("[z-a]*", "[z-a]x"));
        // An unclosed class: `[` is literal, and what follows still globs (and needs a char).
        assert!(matches("x[*", "x[y"));
        assert!(!matches("x[*", "x["));
        // `*` never matches a name starting with a line terminator.
        assert!(!matches("*", "\nx"));
    }

    #[test]
    fn match_one_with_globstar() {
        let p = Pattern::new("a/**", "/ws", None).unwrap();
        let file = split_slashes("/ws/a");
        let file_slash = split_slashes("/ws/a/");
        assert_eq!(p.match_kind(&file, &file_slash), MATCH_ALL);
        let twin = Pattern::new("a", "/ws", None).unwrap().twin("/ws").unwrap();
        assert_eq!(twin.match_kind(&file, &file_slash), 0);
        let deep = split_slashes("/ws/a/b/c");
        assert_eq!(twin.match_kind(&deep, &deep), MATCH_ALL);

        let p = Pattern::new("**/uv.lock", "/ws", None).unwrap();
        assert!(p.partial_match("/ws/x", &split_slashes("/ws/x")));
        assert!(!p.partial_match("/other", &split_slashes("/other")));
        assert!(p.partial_match("/", &split_slashes("/")));
        let dir_only = Pattern::new("a/", "/ws", None).unwrap();
        assert_eq!(dir_only.match_kind(&file, &file_slash), MATCH_DIRECTORY);
    }
}
