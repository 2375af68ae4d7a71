//! Round trips, interoperability with GNU tar + zstd, and hostile archives.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

const LIMITS: UnpackLimits =
    UnpackLimits { max_bytes: 1 << 30, max_entries: 1_000_000, max_ratio: 0, ratio_floor: 0 };

/// What a tree looks like, for comparisons: path → kind, mode, mtime, contents or link target,
/// and for hard-linked files the first path (sorted) sharing the inode.
#[derive(Debug, PartialEq)]
enum Node {
    Dir { mode: u32, mtime: SystemTime },
    File { mode: u32, mtime: SystemTime, contents: Vec<u8>, linked_to: PathBuf },
    Symlink { target: PathBuf },
}

fn snapshot(root: &Path) -> BTreeMap<PathBuf, Node> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Node>, inodes: &mut HashMap<u64, PathBuf>) {
        let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries {
            let meta = fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let mode = meta.mode() & 0o7777;
            if meta.file_type().is_symlink() {
                out.insert(rel, Node::Symlink { target: fs::read_link(&path).unwrap() });
            } else if meta.is_dir() {
                walk(root, &path, out, inodes);
                out.insert(rel, Node::Dir { mode, mtime: meta.modified().unwrap() });
            } else {
                let linked_to = inodes.entry(meta.ino()).or_insert_with(|| rel.clone()).clone();
                let contents = fs::read(&path).unwrap();
                out.insert(rel, Node::File { mode, mtime: meta.modified().unwrap(), contents, linked_to });
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out, &mut HashMap::new());
    let meta = fs::metadata(root).unwrap();
    out.insert(PathBuf::new(), Node::Dir { mode: meta.mode() & 0o7777, mtime: meta.modified().unwrap() });
    out
}

fn set_mtime(path: &Path, secs: u64, nanos: u32) {
    let t = UNIX_EPOCH + Duration::new(secs, nanos);
    let file = fs::File::open(path).unwrap();
    file.set_times(fs::FileTimes::new().set_modified(t)).unwrap();
}

fn write(path: &Path, contents: &[u8], mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A tree with every kind of entry the archives must carry. Modes survive a 022 umask, so GNU
/// tar (which applies it when not root) restores the same tree.
fn build_tree(root: &Path) {
    fs::create_dir_all(root).unwrap();
    write(&root.join("a.txt"), b"hello\n", 0o644);
    write(&root.join("empty"), b"", 0o600);
    write(&root.join("bin/tool"), b"#!/bin/sh\necho hi\n", 0o755);
    write(
        &root.join("deep/er/and/deeper/file.bin"),
        &(0..200_000u32).map(|i| (i * 7) as u8).collect::<Vec<_>>(),
        0o644,
    );
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    fs::create_dir_all(root.join("private")).unwrap();
    fs::set_permissions(root.join("private"), fs::Permissions::from_mode(0o700)).unwrap();
    symlink("a.txt", root.join("rel-link")).unwrap();
    symlink("/usr/bin/python3.12", root.join("bin/python")).unwrap();
    symlink("../../nowhere", root.join("dangling")).unwrap();
    fs::hard_link(root.join("a.txt"), root.join("deep/hard-a")).unwrap();
    fs::hard_link(root.join("bin/tool"), root.join("zz-hard-tool")).unwrap();
    let long_dir = "d".repeat(60) + "/" + &"e".repeat(60) + "/" + &"f".repeat(60);
    write(&root.join(&long_dir).join("g".repeat(120)), b"long name (> 256 bytes)", 0o644);
    write(&root.join("h".repeat(40)).join("i".repeat(80)), b"fits the ustar prefix", 0o644);
    symlink("t".repeat(150), root.join("long-target")).unwrap();
    let long_target = long_dir.clone() + "/" + &"g".repeat(120);
    fs::hard_link(root.join(&long_target), root.join("hard-to-long")).unwrap();
    write(&root.join("ünïcødé/日本語.txt"), "snowman ☃".as_bytes(), 0o644);
    write(&root.join("space name/x y"), b"spaces", 0o644);
    write(&root.join(std::ffi::OsStr::from_bytes(b"latin1-\xe9t\xe9")), b"not UTF-8", 0o644);
    // Mtimes last, deepest first, with sub-second parts.
    let mut all: Vec<PathBuf> = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
            if !e.file_type().unwrap().is_symlink() {
                all.push(e.path());
            }
        }
    }
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, path) in all.iter().enumerate() {
        set_mtime(path, 1_600_000_000 + i as u64 * 1000, (i as u32 * 123_456_789) % 1_000_000_000);
    }
    set_mtime(root, 1_700_000_000, 5);
}

fn pack_to_vec(root: &Path, name: &str, compression: Compression) -> Vec<u8> {
    pack_with_comment(root, name, compression, None)
}

fn pack_with_comment(root: &Path, name: &str, compression: Compression, comment: Option<&str>) -> Vec<u8> {
    let skip = HashSet::new();
    let spec = PackSpec { root, name, skip: &skip, extra: &[], comment };
    pack_both_ways(&spec, compression)
}

/// Packs `spec` twice, with the pack's thread reading every file itself and with four threads
/// reading small files ahead, asserts that both give the same bytes, and returns them.
fn pack_both_ways(spec: &PackSpec, compression: Compression) -> Vec<u8> {
    let pack_with = |threads| {
        let mut out = Vec::new();
        pack_with_threads(spec, compression, CompressionLevel::Auto, &mut out, &|| Duration::ZERO, threads)
            .unwrap();
        out
    };
    let alone = pack_with(0);
    let ahead = pack_with(4);
    if spec.extra.is_empty() {
        assert!(
            alone == ahead,
            "reading ahead changed the archive ({compression:?}, {})",
            spec.root.display()
        );
    } else {
        // Extras carry the time of each pack as their mtime: all the rest must be equal.
        assert_eq!(entries_but_mtimes(&alone), entries_but_mtimes(&ahead), "{compression:?}");
    }
    alone
}

/// An entry as (header without its mtime and checksum, PAX records but `mtime`, contents).
type EntryButMtime = (Vec<u8>, Vec<(String, Vec<u8>)>, Vec<u8>);

/// Each entry of a packed archive, but its mtime.
fn entries_but_mtimes(bytes: &[u8]) -> Vec<EntryButMtime> {
    let decoder: Box<dyn std::io::Read> = if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::new(bytes).unwrap())
    } else {
        Box::new(flate2::read::GzDecoder::new(bytes))
    };
    let mut archive = tar::Archive::new(decoder);
    let mut all = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut header = entry.header().as_bytes().to_vec();
        header[136..156].fill(0);
        let pax = match entry.pax_extensions().unwrap() {
            Some(records) => records
                .map(|r| r.unwrap())
                .filter(|r| r.key_bytes() != b"mtime")
                .map(|r| (r.key().unwrap().to_string(), r.value_bytes().to_vec()))
                .collect(),
            None => Vec::new(),
        };
        let mut contents = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut contents).unwrap();
        all.push((header, pax, contents));
    }
    all
}

fn unpack_slice(bytes: &[u8], dest: &Path) -> Result<UnpackStats, ArchiveError> {
    unpack(&mut &bytes[..], dest, &LIMITS)
}

#[test]
fn round_trip_keeps_content_modes_links_and_mtimes() {
    for compression in [Compression::Zstd, Compression::Gzip] {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        build_tree(&src);
        let bytes = pack_to_vec(&src, "../../../.cache/uv", compression);
        let dest = tmp.path().join("restored/uv");
        let stats = unpack_slice(&bytes, &dest).unwrap();
        assert_eq!(snapshot(&dest), snapshot(&src), "{compression:?}");
        assert_eq!(stats.entries, snapshot(&src).len() as u64);
        assert_eq!(stats.comment, None);
    }
}

/// The root's PAX comment comes back to us, and changes nothing in the tree.
#[test]
fn the_root_comment_round_trips_outside_the_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    build_tree(&src);
    let comment = "uv-nox-cache-entry {\"job_work_ms\":1234}";
    let bytes = pack_with_comment(&src, ".nox", Compression::Zstd, Some(comment));
    let dest = tmp.path().join("restored");
    let stats = unpack_slice(&bytes, &dest).unwrap();
    assert_eq!(stats.comment.as_deref(), Some(comment));
    assert_eq!(snapshot(&dest), snapshot(&src));
}

#[test]
fn archives_are_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    build_tree(&src);
    for compression in [Compression::Zstd, Compression::Gzip] {
        let first = pack_to_vec(&src, ".nox", compression);
        assert_eq!(first, pack_to_vec(&src, ".nox", compression), "{compression:?}");
    }
}

#[test]
fn zstd_stream_is_single_frame_with_checksum_and_no_long_window() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    build_tree(&src);
    let bytes = pack_to_vec(&src, ".nox", Compression::Zstd);
    // Frame header descriptor: bit 2 is the content checksum flag.
    assert_eq!(&bytes[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
    assert_ne!(bytes[4] & 0b100, 0, "content checksum flag");
    // A decoder limited to a 2^27 window (what `zstd -d` accepts without --long) reads it.
    let mut decoder = zstd::stream::read::Decoder::new(&bytes[..]).unwrap();
    decoder.window_log_max(27).unwrap();
    std::io::copy(&mut decoder, &mut std::io::sink()).unwrap();
}

#[test]
fn skip_and_extra_files() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    build_tree(&src);
    let skip: HashSet<PathBuf> = ["deep", "a.txt"].iter().map(PathBuf::from).collect();
    let extra = vec![
        (PathBuf::from("bin/tool"), b"replaced".to_vec()),
        (PathBuf::from("marker.json"), b"{}".to_vec()),
        (PathBuf::from("new/dir/x"), b"made up".to_vec()),
        (PathBuf::from("deep/inside"), b"extra wins over skip".to_vec()),
    ];
    let spec = PackSpec { root: &src, name: ".nox", skip: &skip, extra: &extra, comment: None };
    let bytes = pack_both_ways(&spec, Compression::Zstd);
    let dest = tmp.path().join("out");
    unpack_slice(&bytes, &dest).unwrap();
    assert!(!dest.join("a.txt").exists());
    assert!(!dest.join("deep/er").exists());
    assert_eq!(fs::read(dest.join("deep/inside")).unwrap(), b"extra wins over skip");
    assert_eq!(fs::read(dest.join("bin/tool")).unwrap(), b"replaced");
    assert_eq!(fs::metadata(dest.join("bin/tool")).unwrap().mode() & 0o777, 0o644);
    assert_eq!(fs::read(dest.join("marker.json")).unwrap(), b"{}");
    assert_eq!(fs::read(dest.join("new/dir/x")).unwrap(), b"made up");
    assert!(!dest.join("deep/hard-a").exists());
    assert!(fs::read(dest.join("rel-link")).is_err(), "dangling once a.txt is skipped");

    let bad = vec![(PathBuf::from("../escape"), Vec::new())];
    let spec = PackSpec { root: &src, name: ".nox", skip: &HashSet::new(), extra: &bad, comment: None };
    assert!(matches!(pack(&spec, Compression::Zstd, &mut Vec::new()), Err(ArchiveError::BadSpec { .. })));
}

#[test]
fn pack_errors_name_the_root() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    let spec = PackSpec { root: &missing, name: ".nox", skip: &HashSet::new(), extra: &[], comment: None };
    let err = pack(&spec, Compression::Zstd, &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}

/// Reading ahead past its budgets (more entries and more bytes of small files than are read
/// ahead at once, files just under and over the size read whole, hard links between files read
/// ahead, skipped and extra files among them) gives the archive the pack's thread gives alone,
/// and it restores to the same tree.
#[test]
fn reading_files_ahead_keeps_the_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    for d in 0..12 {
        for f in 0..400 {
            let text = format!("{d}/{f} ").repeat(f % 37);
            write(&src.join(format!("pkg{d:02}/mod{f:03}.py")), text.as_bytes(), 0o644);
        }
    }
    let pattern = |len: usize, seed: u8| (0..len).map(|i| (i as u8).wrapping_mul(seed)).collect::<Vec<_>>();
    let whole = read_pool::AHEAD_FILE_MAX as usize;
    for (i, len) in [whole, whole + 1, 3 << 20].into_iter().cycle().take(21).enumerate() {
        write(&src.join(format!("pkg{:02}/big{i:02}.so", i % 12)), &pattern(len, i as u8 | 1), 0o755);
    }
    fs::hard_link(src.join("pkg00/mod010.py"), src.join("pkg05/linked.py")).unwrap();
    fs::hard_link(src.join("pkg01/big01.so"), src.join("pkg11/linked.so")).unwrap();
    symlink("mod001.py", src.join("pkg03/alias.py")).unwrap();
    let skip: HashSet<PathBuf> = ["pkg02", "pkg04/mod100.py"].iter().map(PathBuf::from).collect();
    let extra = vec![(PathBuf::from("pkg04/mod200.py"), b"replaced".to_vec())];
    let spec = PackSpec { root: &src, name: ".nox", skip: &skip, extra: &extra, comment: None };
    let bytes = pack_both_ways(&spec, Compression::Zstd);

    let dest = tmp.path().join("out");
    unpack_slice(&bytes, &dest).unwrap();
    let (mut restored, mut expected) = (snapshot(&dest), snapshot(&src));
    expected.retain(|path, _| !path.starts_with("pkg02") && path != Path::new("pkg04/mod100.py"));
    let extra_node = restored.remove(Path::new("pkg04/mod200.py"));
    assert!(matches!(extra_node, Some(Node::File { contents, .. }) if contents == b"replaced"));
    expected.remove(Path::new("pkg04/mod200.py"));
    assert_eq!(restored, expected);
}

#[test]
fn name_relative_to_matches_actions_cache() {
    let ws = Path::new("/home/runner/work/p/p");
    assert_eq!(name_relative_to(ws, Path::new("/home/runner/.cache/uv")), "../../../.cache/uv");
    assert_eq!(name_relative_to(ws, Path::new("/home/runner/work/p/p/.nox")), ".nox");
    assert_eq!(name_relative_to(ws, ws), ".");
    assert_eq!(name_relative_to(ws, Path::new("/home/runner/work/p/p/a/../b/./c/")), "b/c");
    assert_eq!(name_relative_to(ws, Path::new("/tmp/x")), "../../../../../tmp/x");
    assert_eq!(name_relative_to(Path::new("/"), Path::new("/srv")), "srv");
}

// ---------------------------------------------------------------------------------------------
// Interoperability with GNU tar and zstd (the tools actions/cache runs).

fn require_tools() {
    for (tool, arg) in [("tar", "--version"), ("zstd", "--version")] {
        let ok = Command::new(tool).arg(arg).output().map(|o| o.status.success()).unwrap_or(false);
        assert!(
            ok,
            "`{tool}` is not installed: the interop tests need GNU tar and zstd (apt-get install tar zstd)"
        );
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// A workspace `home/runner/work/p/p` and a uv cache `home/runner/.cache/uv` under `base`.
fn layout(base: &Path) -> (PathBuf, PathBuf) {
    let ws = base.join("home/runner/work/p/p");
    fs::create_dir_all(&ws).unwrap();
    (ws, base.join("home/runner/.cache/uv"))
}

#[test]
fn gnu_tar_archives_unpack_rerooted() {
    require_tools();
    for (file, flags) in
        [("cache.tzst", &["--use-compress-program", "zstdmt"][..]), ("cache.tgz", &["-z"][..])]
    {
        let tmp = tempfile::tempdir().unwrap();
        let (ws, uv) = layout(&tmp.path().join("a"));
        build_tree(&uv);
        let name = name_relative_to(&ws, &uv);
        assert_eq!(name, "../../../.cache/uv");
        let archive = tmp.path().join(file);
        run(Command::new("tar")
            .args(["--posix", "-cf"])
            .arg(&archive)
            .arg("-P")
            .arg("-C")
            .arg(&ws)
            .arg(&name)
            .args(flags)
            .current_dir(tmp.path()));
        let dest = tmp.path().join("elsewhere/deeper/uv");
        unpack(&mut fs::File::open(&archive).unwrap(), &dest, &LIMITS).unwrap();
        assert_eq!(snapshot(&dest), snapshot(&uv), "{file}");
    }
}

#[test]
fn packed_archives_extract_with_gnu_tar() {
    require_tools();
    for (compression, file, flags) in [
        (Compression::Zstd, "cache.tzst", &["--use-compress-program", "unzstd"][..]),
        (Compression::Gzip, "cache.tgz", &["-z"][..]),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let (ws, uv) = layout(&tmp.path().join("a"));
        build_tree(&uv);
        let name = name_relative_to(&ws, &uv);
        let archive = tmp.path().join(file);
        // With the note every saved entry carries: GNU tar must not even mention it.
        let comment = Some("uv-nox-cache-entry {\"job_work_ms\":1234}");
        fs::write(&archive, pack_with_comment(&uv, &name, compression, comment)).unwrap();

        let listing = Command::new("tar").arg("-tf").arg(&archive).args(flags).output().unwrap();
        assert!(listing.status.success(), "{}", String::from_utf8_lossy(&listing.stderr));
        let stderr = String::from_utf8_lossy(&listing.stderr);
        // (Listing without -P, GNU tar says it drops the leading `../`, and nothing else.)
        assert!(stderr.lines().all(|l| l.contains("Removing leading")), "GNU tar warned: {stderr}");
        let listing = String::from_utf8(listing.stdout).unwrap();
        assert_eq!(listing.lines().next(), Some("../../../.cache/uv/"));
        assert!(listing.lines().any(|l| l.ends_with(&"g".repeat(120))), "long names listed in full");

        let (ws2, uv2) = layout(&tmp.path().join("b"));
        let extracted =
            Command::new("tar").arg("-xf").arg(&archive).arg("-P").arg("-C").arg(&ws2).args(flags).output();
        let extracted = extracted.unwrap();
        assert!(extracted.status.success() && extracted.stderr.is_empty(), "{extracted:?}");
        assert_eq!(snapshot(&uv2), snapshot(&uv), "{compression:?}");
        // And the compressed stream alone, with the zstd/gzip command line tools.
        let tool = if compression == Compression::Zstd { "zstd" } else { "gzip" };
        run(Command::new(tool).args(["-t"]).arg(&archive));
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile archives, written with raw headers.

struct Raw(Vec<u8>);

impl Raw {
    fn new() -> Self {
        Raw(Vec::new())
    }

    fn entry(mut self, name: &str, kind: tar::EntryType, mode: u32, link: &str, data: &[u8]) -> Self {
        let mut header = tar::Header::new_ustar();
        let ustar = header.as_ustar_mut().unwrap();
        ustar.name[..name.len()].copy_from_slice(name.as_bytes());
        ustar.linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_mode(mode);
        header.set_size(data.len() as u64);
        header.set_entry_type(kind);
        header.set_mtime(1_600_000_000);
        header.set_cksum();
        self.0.extend_from_slice(header.as_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().next_multiple_of(512), 0);
        self
    }

    fn dir(self, name: &str) -> Self {
        self.entry(name, tar::EntryType::Directory, 0o755, "", b"")
    }

    fn file(self, name: &str, data: &[u8]) -> Self {
        self.entry(name, tar::EntryType::Regular, 0o644, "", data)
    }

    fn zstd(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0u8; 1024]);
        zstd::encode_all(&self.0[..], 3).unwrap()
    }
}

/// A scratch area with a sentinel directory next to `dest`; `check` asserts that nothing outside
/// `dest` changed.
struct Arena {
    tmp: tempfile::TempDir,
}

impl Arena {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        write(&tmp.path().join("sentinel/secret"), b"secret", 0o644);
        Arena { tmp }
    }

    fn sentinel(&self) -> PathBuf {
        self.tmp.path().join("sentinel")
    }

    fn dest(&self) -> PathBuf {
        self.tmp.path().join("stage/a/dest")
    }

    /// Unpacks into `dest` twice, with the writer thread creating every file and with a pool of
    /// four threads creating the small ones, and asserts that both give the same tree or the
    /// same error (so every hostile archive here meets both ways, whatever this machine's CPUs).
    fn unpack(&self, bytes: &[u8], limits: &UnpackLimits) -> Result<UnpackStats, ArchiveError> {
        let alone = unpack_with_threads(&mut &bytes[..], &self.dest(), limits, 0);
        let tree = fs::symlink_metadata(self.dest()).is_ok().then(|| snapshot(&self.dest()));
        self.check();
        if tree.is_some() {
            make_writable(&self.dest());
            fs::remove_dir_all(self.dest()).unwrap();
        }
        let pooled = unpack_with_threads(&mut &bytes[..], &self.dest(), limits, 4);
        let pooled_tree = fs::symlink_metadata(self.dest()).is_ok().then(|| snapshot(&self.dest()));
        match (&alone, &pooled) {
            (Ok(_), Ok(_)) => assert_eq!(tree, pooled_tree, "one writer and a pool made different trees"),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            _ => panic!("one writer gave {alone:?}, a pool {pooled:?}"),
        }
        pooled
    }

    fn check(&self) {
        let outside: Vec<_> = walk_names(self.tmp.path())
            .into_iter()
            .filter(|p| !p.starts_with(self.dest()))
            .map(|p| p.strip_prefix(self.tmp.path()).unwrap().to_path_buf())
            .collect();
        let expected: Vec<PathBuf> =
            ["sentinel", "sentinel/secret", "stage", "stage/a"].iter().map(PathBuf::from).collect();
        assert_eq!(outside, expected);
        assert_eq!(fs::read(self.sentinel().join("secret")).unwrap(), b"secret");
        assert_eq!(fs::metadata(self.sentinel().join("secret")).unwrap().nlink(), 1);
    }
}

/// Gives every directory below `dir` (and `dir`) mode 0755, so that it can be removed.
fn make_writable(dir: &Path) {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            make_writable(&e.path());
        }
    }
}

fn walk_names(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        out.push(e.path());
        if e.file_type().unwrap().is_dir() {
            out.extend(walk_names(&e.path()));
        }
    }
    out.sort();
    out
}

fn assert_unsafe(result: Result<UnpackStats, ArchiveError>) {
    match result {
        Err(ArchiveError::Unsafe { .. }) => {}
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn refuses_parent_dir_escape() {
    let arena = Arena::new();
    let bytes = Raw::new().dir("x/").file("x/../../../../sentinel/pwned", b"!").zstd();
    assert_unsafe(arena.unpack(&bytes, &LIMITS));
    arena.check();
}

#[test]
fn refuses_absolute_names() {
    let arena = Arena::new();
    let abs = arena.sentinel().join("pwned");
    let bytes = Raw::new().dir("x/").file(abs.to_str().unwrap(), b"!").zstd();
    assert_unsafe(arena.unpack(&bytes, &LIMITS));
    arena.check();

    let arena = Arena::new();
    let bytes = Raw::new().dir(arena.sentinel().to_str().unwrap()).file("x", b"!").zstd();
    assert_unsafe(arena.unpack(&bytes, &LIMITS));
    arena.check();
}

#[test]
fn refuses_entries_outside_the_root() {
    let arena = Arena::new();
    let bytes = Raw::new().dir("../../.cache/uv/").file("../../.cache/uvx/file", b"!").zstd();
    assert_unsafe(arena.unpack(&bytes, &LIMITS));
    arena.check();
}

#[test]
fn refuses_writing_through_a_symlink() {
    let arena = Arena::new();
    let target = arena.sentinel();
    let bytes = Raw::new()
        .dir("x/")
        .entry("x/link", tar::EntryType::Symlink, 0o777, target.to_str().unwrap(), b"")
        .file("x/link/pwned", b"!")
        .zstd();
    assert_unsafe(arena.unpack(&bytes, &LIMITS));
    arena.check();

    // Also a directory entry through it, and a relative symlink climbing out.
    let arena = Arena::new();
    let bytes = Raw::new()
        .dir("x/")
        .entry("x/up", tar::EntryType::Symlink, 0o777, "../../../sentinel", b"")
        .dir("x/up/newdir/")
        .zstd();
    assert_unsafe(arena.unpack(&bytes, &LIMITS));
    arena.check();
}

#[test]
fn refuses_hard_links_outside() {
    let arena = Arena::new();
    let bytes = Raw::new()
        .dir("x/")
        .entry("x/h", tar::EntryType::Link, 0o644, "x/../../../sentinel/secret", b"")
        .file("x/h", b"overwrite")
        .zstd();
    assert_unsafe(arena.unpack(&bytes, &LIMITS));
    arena.check();

    let arena = Arena::new();
    let bytes = Raw::new().dir("x/").entry("x/h", tar::EntryType::Link, 0o644, "y/secret", b"").zstd();
    assert_unsafe(arena.unpack(&bytes, &LIMITS));
    arena.check();

    // A link target below the root but through an archived symlink.
    let arena = Arena::new();
    let bytes = Raw::new()
        .dir("x/")
        .entry("x/s", tar::EntryType::Symlink, 0o777, arena.sentinel().to_str().unwrap(), b"")
        .entry("x/h", tar::EntryType::Link, 0o644, "x/s/secret", b"")
        .zstd();
    assert_unsafe(arena.unpack(&bytes, &LIMITS));
    arena.check();
}

#[test]
fn skips_fifos_and_devices() {
    let arena = Arena::new();
    let bytes = Raw::new()
        .dir("x/")
        .entry("x/fifo", tar::EntryType::Fifo, 0o644, "", b"")
        .entry("x/null", tar::EntryType::Char, 0o666, "", b"")
        .file("x/after", b"ok")
        .zstd();
    let stats = arena.unpack(&bytes, &LIMITS).unwrap();
    assert_eq!(stats.entries, 2);
    let dest = arena.dest();
    assert!(fs::symlink_metadata(dest.join("fifo")).is_err());
    assert!(fs::symlink_metadata(dest.join("null")).is_err());
    assert_eq!(fs::read(dest.join("after")).unwrap(), b"ok");
    arena.check();
}

#[test]
fn strips_setuid_setgid_and_sticky_bits() {
    let arena = Arena::new();
    let bytes = Raw::new()
        .entry("x/", tar::EntryType::Directory, 0o1777, "", b"")
        .entry("x/suid", tar::EntryType::Regular, 0o4755, "", b"#!")
        .entry("x/sgid/", tar::EntryType::Directory, 0o2755, "", b"")
        .zstd();
    arena.unpack(&bytes, &LIMITS).unwrap();
    let mode = |p: &str| fs::metadata(arena.dest().join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("suid"), 0o755);
    assert_eq!(mode("sgid"), 0o755);
    assert_eq!(mode(""), 0o777);
    arena.check();
}

#[test]
fn stops_decompression_bombs() {
    let arena = Arena::new();
    let zeros = vec![0u8; 3 << 20];
    let bytes = Raw::new().dir("x/").file("x/a", &zeros).file("x/b", &zeros).zstd();
    assert!(bytes.len() < 10_000, "a bomb compresses well");
    let limits = UnpackLimits { max_bytes: 4 << 20, max_entries: 100, max_ratio: 0, ratio_floor: 0 };
    let err = arena.unpack(&bytes, &limits).unwrap_err();
    assert!(matches!(err, ArchiveError::TooManyBytes { .. }), "{err:?}");
    assert!(fs::symlink_metadata(arena.dest().join("x/b")).is_err());
    arena.check();

    let arena = Arena::new();
    let mut raw = Raw::new().dir("x/");
    for i in 0..20 {
        raw = raw.file(&format!("x/{i}"), b"");
    }
    let limits = UnpackLimits { max_bytes: 1 << 20, max_entries: 10, max_ratio: 0, ratio_floor: 0 };
    let err = arena.unpack(&raw.zstd(), &limits).unwrap_err();
    assert!(matches!(err, ArchiveError::TooManyEntries { limit: 10 }), "{err:?}");
    arena.check();
}

#[test]
fn rejects_truncated_and_corrupt_archives() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    build_tree(&src);
    for compression in [Compression::Zstd, Compression::Gzip] {
        let bytes = pack_to_vec(&src, "x", compression);
        for cut in [bytes.len() / 2, bytes.len() - 4, 10] {
            let arena = Arena::new();
            let err = arena.unpack(&bytes[..cut], &LIMITS).unwrap_err();
            assert!(matches!(err, ArchiveError::Corrupt { .. }), "{compression:?} cut at {cut}: {err:?}");
            arena.check();
        }
        let mut flipped = bytes.clone();
        let middle = flipped.len() / 2;
        for b in &mut flipped[middle..middle + 16] {
            *b ^= 0x5a;
        }
        let arena = Arena::new();
        let err = arena.unpack(&flipped, &LIMITS).unwrap_err();
        assert!(matches!(err, ArchiveError::Corrupt { .. } | ArchiveError::Unsafe { .. }), "{err:?}");
        arena.check();
    }
    let arena = Arena::new();
    let err = arena.unpack(b"PK\x03\x04 not a tar", &LIMITS).unwrap_err();
    assert!(matches!(err, ArchiveError::UnknownFormat { .. }), "{err:?}");
    let err = unpack(&mut &b""[..], &arena.tmp.path().join("empty"), &LIMITS).unwrap_err();
    assert!(matches!(err, ArchiveError::UnknownFormat { .. }), "{err:?}");
}

#[test]
fn first_entry_must_be_a_directory_and_dest_must_be_new() {
    let arena = Arena::new();
    let bytes = Raw::new().file("x", b"not a dir").zstd();
    let err = arena.unpack(&bytes, &LIMITS).unwrap_err();
    assert!(matches!(err, ArchiveError::RootNotDirectory { .. }), "{err:?}");

    let tmp = tempfile::tempdir().unwrap();
    let bytes = Raw::new().dir("x/").zstd();
    let err = unpack(&mut &bytes[..], tmp.path(), &LIMITS).unwrap_err();
    assert!(matches!(err, ArchiveError::DestExists { .. }), "{err:?}");
    assert!(err.to_string().contains(&tmp.path().display().to_string()));
}

#[test]
fn rerooting_accepts_any_root_spelling() {
    for (root, child) in
        [("./x/", "./x/sub/f"), (".", "./sub/f"), ("../../.cache/uv/", "../../.cache/uv//sub/./f")]
    {
        let arena = Arena::new();
        let bytes = Raw::new().dir(root).dir(&child[..child.len() - 2]).file(child, b"data").zstd();
        arena.unpack(&bytes, &LIMITS).unwrap();
        assert_eq!(fs::read(arena.dest().join("sub/f")).unwrap(), b"data", "{root}");
        arena.check();
    }
}

#[test]
fn later_entries_replace_files_and_symlinks() {
    let arena = Arena::new();
    let bytes = Raw::new()
        .dir("x/")
        .file("x/f", b"old")
        .file("x/f", b"new")
        .entry("x/s", tar::EntryType::Symlink, 0o777, arena.sentinel().join("secret").to_str().unwrap(), b"")
        .file("x/s", b"replaces the link, not its target")
        .zstd();
    arena.unpack(&bytes, &LIMITS).unwrap();
    assert_eq!(fs::read(arena.dest().join("f")).unwrap(), b"new");
    assert!(fs::symlink_metadata(arena.dest().join("s")).unwrap().is_file());
    arena.check();
}

#[test]
fn unpack_writes_large_files_in_pieces() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    let big: Vec<u8> = (0..(5u32 << 20) + 17).map(|i| (i % 251) as u8).collect();
    fs::File::create(src.join("big")).unwrap().write_all(&big).unwrap();
    let bytes = pack_to_vec(&src, "x", Compression::Zstd);
    let dest = tmp.path().join("dest");
    let stats = unpack_slice(&bytes, &dest).unwrap();
    assert_eq!(stats.bytes, big.len() as u64);
    assert_eq!(fs::read(dest.join("big")).unwrap(), big);
}

#[test]
fn a_hard_link_to_a_symlink_becomes_a_copy_of_the_symlink() {
    let arena = Arena::new();
    let bytes = Raw::new()
        .dir("x/")
        .entry("x/s", tar::EntryType::Symlink, 0o777, "/usr/bin/python3", b"")
        .entry("x/h", tar::EntryType::Link, 0o644, "x/s", b"")
        .zstd();
    arena.unpack(&bytes, &LIMITS).unwrap();
    assert_eq!(fs::read_link(arena.dest().join("h")).unwrap(), Path::new("/usr/bin/python3"));
    arena.check();
}

#[test]
fn an_empty_directory_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("empty");
    fs::create_dir(&src).unwrap();
    set_mtime(&src, 1_650_000_000, 42);
    for compression in [Compression::Zstd, Compression::Gzip] {
        let dest = tmp.path().join(format!("out-{compression:?}"));
        let stats = unpack_slice(&pack_to_vec(&src, ".", compression), &dest).unwrap();
        assert_eq!(stats.entries, 1);
        assert_eq!(snapshot(&dest), snapshot(&src));
    }
}

/// The cap relative to the compressed bytes read stops a bomb even when `max_bytes` (the
/// absolute cap) would let it through and nobody told `unpack` the archive's size.
#[test]
fn the_ratio_cap_follows_the_compressed_bytes_read() {
    let arena = Arena::new();
    let zeros = vec![0u8; 8 << 20];
    let bytes = Raw::new().dir("x/").file("x/a", &zeros).zstd();
    assert!(bytes.len() < 10_000, "a bomb compresses well");
    let limits = UnpackLimits { max_bytes: 1 << 40, max_entries: 100, max_ratio: 100, ratio_floor: 1 << 20 };
    let err = arena.unpack(&bytes, &limits).unwrap_err();
    assert!(matches!(err, ArchiveError::TooManyBytes { .. }), "{err:?}");
    arena.check();
    // An honest archive at a ratio below the cap unpacks.
    let arena = Arena::new();
    let noise: Vec<u8> = (0..(4u32 << 20)).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let bytes = Raw::new().dir("x/").file("x/a", &noise).zstd();
    let limits = UnpackLimits { max_bytes: 1 << 40, max_entries: 100, max_ratio: 100, ratio_floor: 1 << 20 };
    arena.unpack(&bytes, &limits).unwrap();
}

/// The `tar` crate reads a GNU long name (and a PAX extension) whole into memory before the
/// entry it describes reaches `unpack`: 64 MiB of zeros in one must be refused as a bomb, from
/// the decompressed stream's size against the compressed bytes read, not allocated.
#[test]
fn a_huge_gnu_long_name_is_refused_before_it_is_read_into_memory() {
    for kind in [tar::EntryType::GNULongName, tar::EntryType::XHeader] {
        let arena = Arena::new();
        let mut raw = Raw::new().dir("x/");
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_size(64 << 20);
        header.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
        header.set_cksum();
        raw.0.extend_from_slice(header.as_bytes());
        raw.0.resize(raw.0.len() + (64 << 20), 0);
        let raw = raw.file("x/a", b"a");
        let bytes = raw.zstd();
        let limits =
            UnpackLimits { max_bytes: 1 << 40, max_entries: 100, max_ratio: 100, ratio_floor: 1 << 20 };
        let err = arena.unpack(&bytes, &limits).unwrap_err().to_string();
        assert!(err.len() < 2000, "{kind:?}: the message holds the whole name");
        assert!(err.contains("decompression bomb"), "{kind:?}: {err}");
        arena.check();
    }
}

/// With a pool creating small files, entries that touch a path the pool may still be writing
/// (a hard link to it, a later file, symlink or directory of the same name, a file below a
/// read-only directory) still happen in the archive's order; `Arena::unpack` compares the tree
/// with the one a single writer makes.
#[test]
fn a_pool_of_file_writers_keeps_the_archive_order() {
    let arena = Arena::new();
    let mut raw = Raw::new().dir("x/");
    for d in 0..20 {
        raw = raw.entry(&format!("x/d{d}/"), tar::EntryType::Directory, 0o555, "", b"");
        for f in 0..50 {
            raw = raw.file(&format!("x/d{d}/f{f}"), format!("{d}/{f}").as_bytes());
        }
    }
    let bytes = raw
        .file("x/f", b"first")
        .entry("x/h", tar::EntryType::Link, 0o644, "x/f", b"")
        .file("x/f", b"second")
        .file("x/s", b"a file, then a symlink")
        .entry("x/s", tar::EntryType::Symlink, 0o777, "f", b"")
        .file("x/d", b"a file, then a directory")
        .dir("x/d/")
        .file("x/d/in", b"inside")
        .zstd();
    arena.unpack(&bytes, &LIMITS).unwrap();
    let dest = arena.dest();
    assert_eq!(fs::read(dest.join("h")).unwrap(), b"first");
    assert_eq!(fs::read(dest.join("f")).unwrap(), b"second");
    assert_eq!(fs::read_link(dest.join("s")).unwrap(), Path::new("f"));
    assert_eq!(fs::read(dest.join("d/in")).unwrap(), b"inside");
    for d in 0..20 {
        let dir = dest.join(format!("d{d}"));
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o555);
        for f in 0..50 {
            assert_eq!(fs::read(dir.join(format!("f{f}"))).unwrap(), format!("{d}/{f}").as_bytes());
        }
    }
    arena.check();
    make_writable(&dest);
}

/// Every level, and the automatic one across its switches (a reader said to wait all the time
/// drops the level after the first window), gives one zstd frame that GNU tar with `unzstd`
/// extracts to the same tree.
#[test]
fn every_compression_level_extracts_with_gnu_tar() {
    require_tools();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    build_tree(&src);
    // Over three adaptation windows of text that compresses, and some that does not.
    let line = b"    def method(self, value: int) -> int:  # a comment that repeats\n";
    let text: Vec<u8> = line.iter().copied().cycle().take(20 << 20).collect();
    let noise: Vec<u8> =
        (0..(4u64 << 20)).map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8).collect();
    for i in 0..3 {
        write(&src.join(format!("big/text{i}.py")), &text, 0o644);
    }
    write(&src.join("big/noise.so"), &noise, 0o755);
    let skip = HashSet::new();
    let spec = PackSpec { root: &src, name: "x", skip: &skip, extra: &[], comment: None };
    for level in [
        CompressionLevel::Auto,
        CompressionLevel::Fixed(-7),
        CompressionLevel::Fixed(1),
        CompressionLevel::Fixed(19),
    ] {
        let mut bytes = Vec::new();
        let started = std::time::Instant::now();
        pack_at(&spec, Compression::Zstd, level, &mut bytes, &|| started.elapsed()).unwrap();
        let mut decoder = zstd::stream::read::Decoder::new(&bytes[..]).unwrap().single_frame();
        std::io::copy(&mut decoder, &mut std::io::sink()).unwrap();
        let rest = std::io::Read::read_to_end(&mut decoder.finish(), &mut Vec::new()).unwrap();
        assert_eq!(rest, 0, "{level:?}: one frame, nothing after it");
        let archive = tmp.path().join("a.tzst");
        fs::write(&archive, &bytes).unwrap();
        let out = tmp.path().join(format!("out-{level:?}"));
        fs::create_dir(&out).unwrap();
        let extracted = Command::new("tar")
            .args(["--use-compress-program", "unzstd", "-xf"])
            .arg(&archive)
            .arg("-C")
            .arg(&out)
            .output()
            .unwrap();
        assert!(extracted.status.success() && extracted.stderr.is_empty(), "{level:?}: {extracted:?}");
        assert_eq!(snapshot(&out.join("x")), snapshot(&src), "{level:?}");
    }
}
