//! Hostile input through the whole action (issue 7): malicious archives served under the
//! action's own key by the v1 and v2 services and the local store, concurrent saves and
//! restores, malformed inputs, unreadable targets and a full disk. Whatever happens, the step
//! exits 0 (except for a malformed input), says why with a `::warning::`, and nothing outside
//! the target's root changes.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tar::EntryType;

use crate::s3::ObjectStore;
use crate::support::action::{Job, Machine, Step};
use crate::support::cache_server::{CacheServer, Personality};
use crate::support::local_store;

// ---------------------------------------------------------------------------------------------
// A machine wired to one store.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Store {
    Local,
    /// `_apis/artifactcache` (GHES / Forgejo personality).
    V1(Personality),
    /// Twirp + blob (github.com).
    V2,
    /// An S3 bucket on a real object store (`s3.rs`).
    S3,
}

const STORES: [Store; 4] = [Store::Local, Store::V1(Personality::Github), Store::V2, Store::S3];

struct Rig {
    machine: Machine,
    server: Option<CacheServer>,
    object_store: Option<ObjectStore>,
    store: Store,
}

impl Rig {
    fn new(store: Store) -> Rig {
        let server = match store {
            Store::Local => None,
            Store::V1(personality) => Some(CacheServer::start(personality)),
            Store::V2 => Some(CacheServer::start(Personality::Github)),
            Store::S3 => None,
        };
        let object_store = (store == Store::S3).then(ObjectStore::start);
        let machine = Machine::new();
        fs::write(machine.workspace.join("uv.lock"), "version = 1\n").unwrap();
        Rig { machine, server, object_store, store }
    }

    /// A job caching `.nox` only, talking to this rig's store.
    fn job(&self) -> Job {
        let mut job = self.machine.job();
        job.input("targets", "nox");
        if let Some(object_store) = &self.object_store {
            object_store.configure(&mut job);
        }
        if let Some(server) = &self.server {
            job.set_env("ACTIONS_RUNTIME_TOKEN", server.token());
            job.set_env("GITHUB_SERVER_URL", "https://github.com");
            match self.store {
                Store::V2 => {
                    job.set_env("ACTIONS_RESULTS_URL", &server.results_url());
                    job.set_env("ACTIONS_CACHE_SERVICE_V2", "True");
                }
                _ => {
                    job.set_env("ACTIONS_CACHE_URL", &server.base_url_v1());
                }
            }
        }
        job
    }

    /// Stores `archive` under the key and version the action computes for `.nox`, bypassing
    /// every check a client would make.
    fn plant(&self, job: &Job, archive: Vec<u8>) {
        self.plant_for(job, "nox", ".nox", archive);
    }

    /// The same for `target`, whose path string (the `path` input of actions/cache) is `path`.
    fn plant_for(&self, job: &Job, target: &str, path: &str, archive: Vec<u8>) {
        let key = job.keys()[target].clone();
        let version = uv_nox_cache::key::version(path, "zstd-without-long");
        match (&self.server, &self.object_store) {
            (Some(server), _) => server.plant(&key, &version, archive),
            (None, Some(store)) => {
                let git_ref = &job.env["GITHUB_REF"];
                store.save_entry(git_ref, &key, &version, &archive);
            }
            (None, None) => {
                let repository =
                    job.env.get("GITHUB_REPOSITORY").map_or("unknown-repository", String::as_str);
                let git_ref = &job.env["GITHUB_REF"];
                let path = local_store::entry_path(&self.machine.store, repository, git_ref, &version, &key);
                local_store::write_entry(&path, &key, &archive);
            }
        }
    }

    fn root(&self) -> &Path {
        self.machine.root.path()
    }

    fn nox(&self) -> PathBuf {
        self.machine.workspace.join(".nox")
    }

    /// Sentinel directories around the target: beside the machine, the workspace's parents,
    /// the workspace itself and HOME; and a `.nox` that a refused restore must leave alone.
    fn sentinels(&self) {
        for dir in [
            self.root().join("sentinel"),
            self.root().join("work/sentinel"),
            self.root().join("work/repo/sentinel"),
            self.machine.workspace.join("sentinel"),
            self.machine.home.join("sentinel"),
        ] {
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("secret"), "secret\n").unwrap();
        }
        fs::create_dir_all(self.nox().join("old")).unwrap();
        fs::write(self.nox().join("old/keep"), "old\n").unwrap();
    }

    /// The whole machine except the jobs' runner files: path → kind, mode, content digest.
    /// Everything on the machine but the jobs' own files and the local store's record of
    /// restores (`.<entry>.used`, the store's housekeeping: docs/backends.md).
    fn tree(&self) -> BTreeMap<String, String> {
        tree(self.root(), &|rel: &str| {
            rel.starts_with("job-") || (rel.starts_with("store/") && rel.ends_with(".used"))
        })
    }
}

/// Like `support::action::snapshot`, but safe on fifos and devices (it never opens them) and
/// recording link counts, so a hard link made to a file anywhere shows up.
fn tree(root: &Path, skip: &dyn Fn(&str) -> bool) -> BTreeMap<String, String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            if skip(&rel) {
                continue;
            }
            let meta = fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            let kind = meta.file_type();
            let value = if kind.is_symlink() {
                format!("link -> {}", fs::read_link(&path).unwrap().display())
            } else if kind.is_dir() {
                stack.push(path.clone());
                format!("dir {mode:o}")
            } else if kind.is_file() {
                let digest = hex::encode(Sha256::digest(fs::read(&path).unwrap()));
                format!("file {mode:o} links {} {digest}", meta.nlink())
            } else {
                format!("special {:?} {mode:o}", kind)
            };
            out.insert(rel, value);
        }
    }
    out
}

fn without(tree: &BTreeMap<String, String>, prefix: &str) -> BTreeMap<String, String> {
    tree.iter().filter(|(k, _)| !k.starts_with(prefix)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn warnings(step: &Step) -> Vec<&str> {
    step.stdout.lines().filter(|l| l.starts_with("::warning::")).collect()
}

// ---------------------------------------------------------------------------------------------
// Archives written header by header, so that anything a hostile client could store fits.

struct Tar(Vec<u8>);

impl Tar {
    /// An archive of `.nox`, as actions/cache names it, starting with its root directory.
    fn nox() -> Tar {
        Tar(Vec::new()).dir(".nox/")
    }

    fn entry(mut self, name: &str, kind: EntryType, mode: u32, link: &str, data: &[u8]) -> Tar {
        self.0.extend_from_slice(header(name, kind, mode, link, data.len() as u64).as_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().next_multiple_of(512), 0);
        self
    }

    fn dir(self, name: &str) -> Tar {
        self.entry(name, EntryType::Directory, 0o755, "", b"")
    }

    fn file(self, name: &str, data: &[u8]) -> Tar {
        self.entry(name, EntryType::Regular, 0o644, "", data)
    }

    fn symlink(self, name: &str, target: &str) -> Tar {
        self.entry(name, EntryType::Symlink, 0o777, target, b"")
    }

    fn hard_link(self, name: &str, target: &str) -> Tar {
        self.entry(name, EntryType::Link, 0o644, target, b"")
    }

    fn zstd(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0u8; 1024]);
        zstd::encode_all(&self.0[..], 3).unwrap()
    }

    fn gzip(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0u8; 1024]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&self.0).unwrap();
        gz.finish().unwrap()
    }
}

/// A ustar header with the name and link name copied in raw (no checks), split into
/// `prefix` + `name` when longer than 100 bytes.
fn header(name: &str, kind: EntryType, mode: u32, link: &str, size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    let ustar = header.as_ustar_mut().unwrap();
    let bytes = name.as_bytes();
    if bytes.len() <= 100 {
        ustar.name[..bytes.len()].copy_from_slice(bytes);
    } else {
        let split = bytes[..bytes.len().min(156)].iter().rposition(|&b| b == b'/').unwrap();
        ustar.prefix[..split].copy_from_slice(&bytes[..split]);
        ustar.name[..bytes.len() - split - 1].copy_from_slice(&bytes[split + 1..]);
    }
    ustar.linkname[..link.len()].copy_from_slice(link.as_bytes());
    header.set_mode(mode);
    header.set_size(size);
    header.set_entry_type(kind);
    header.set_mtime(1_600_000_000);
    header.set_cksum();
    header
}

/// A decompression bomb: one file of `size` zero bytes, streamed through zstd (≈ 40 kB per GiB).
fn bomb(size: u64) -> Vec<u8> {
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    encoder.write_all(header(".nox/", EntryType::Directory, 0o755, "", 0).as_bytes()).unwrap();
    encoder.write_all(header(".nox/zeros", EntryType::Regular, 0o644, "", size).as_bytes()).unwrap();
    let zeros = vec![0u8; 1 << 20];
    let mut left = size.next_multiple_of(512);
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        encoder.write_all(&zeros[..n]).unwrap();
        left -= n as u64;
    }
    encoder.write_all(&[0u8; 1024]).unwrap();
    encoder.finish().unwrap()
}

/// What a hostile case must end as.
enum Expect {
    /// The restore is refused: a warning naming the failure, a miss, nothing changed anywhere.
    Refused,
    /// Restored with this many warnings, and this check of the restored `.nox` (fifos and
    /// devices skipped, special mode bits stripped).
    Restored(usize, fn(&Path)),
}

type Build = Box<dyn Fn(&Rig) -> Vec<u8> + Sync>;

struct Case {
    name: &'static str,
    archive: Build,
    expect: Expect,
}

fn case(name: &'static str, archive: impl Fn(&Rig) -> Vec<u8> + Sync + 'static, expect: Expect) -> Case {
    Case { name, archive: Box::new(archive), expect }
}

/// 1.1 GiB of zeros (over the 1 GiB floor of the size cap) in a ~50 kB entry; built once.
fn big_bomb() -> Vec<u8> {
    static BOMB: OnceLock<Vec<u8>> = OnceLock::new();
    BOMB.get_or_init(|| bomb((1 << 30) + (100 << 20))).clone()
}

fn cases() -> Vec<Case> {
    let abs = |rig: &Rig, rel: &str| rig.root().join(rel).display().to_string();
    vec![
        case("dotdot", |_| Tar::nox().file(".nox/../sentinel/pwned", b"x").zstd(), Expect::Refused),
        case(
            "dotdot deep",
            |_| Tar::nox().dir(".nox/a/").file(".nox/a/../../../../sentinel/pwned", b"x").zstd(),
            Expect::Refused,
        ),
        case("dotdot root", |_| Tar(Vec::new()).dir("../../").file("../../sentinel/pwned", b"x").zstd(), {
            // A root of `../..` is re-rooted like any other, so this one lands inside `.nox`.
            Expect::Restored(0, |nox| assert_eq!(fs::read(nox.join("sentinel/pwned")).unwrap(), b"x"))
        }),
        case(
            "absolute name",
            move |rig| Tar::nox().file(&abs(rig, "sentinel/pwned"), b"x").zstd(),
            Expect::Refused,
        ),
        case("absolute root", move |rig| Tar(Vec::new()).dir(&abs(rig, "sentinel/")).zstd(), Expect::Refused),
        case("outside the root", |_| Tar::nox().file(".other/pwned", b"x").zstd(), Expect::Refused),
        case(
            "write through an absolute symlink",
            move |rig| {
                Tar::nox().symlink(".nox/link", &abs(rig, "sentinel")).file(".nox/link/pwned", b"x").zstd()
            },
            Expect::Refused,
        ),
        case(
            "write through a relative symlink",
            |_| Tar::nox().symlink(".nox/link", "../../../sentinel").file(".nox/link/secret", b"x").zstd(),
            Expect::Refused,
        ),
        case(
            "symlink replacing a directory",
            move |rig| {
                Tar::nox()
                    .dir(".nox/d/")
                    .symlink(".nox/d", &abs(rig, "home/sentinel"))
                    .file(".nox/d/secret", b"x")
                    .zstd()
            },
            Expect::Refused,
        ),
        case(
            "write through a hard link to a symlink",
            move |rig| {
                Tar::nox()
                    .symlink(".nox/s", &abs(rig, "sentinel"))
                    .hard_link(".nox/h", ".nox/s")
                    .file(".nox/h/pwned", b"x")
                    .zstd()
            },
            Expect::Refused,
        ),
        case(
            "hard link to an absolute path outside",
            move |rig| Tar::nox().hard_link(".nox/h", &abs(rig, "sentinel/secret")).zstd(),
            Expect::Refused,
        ),
        case(
            "hard link climbing out",
            |_| Tar::nox().hard_link(".nox/h", ".nox/../sentinel/secret").zstd(),
            Expect::Refused,
        ),
        case(
            "hard link then overwrite",
            |_| Tar::nox().hard_link(".nox/h", "../sentinel/secret").file(".nox/h", b"x").zstd(),
            Expect::Refused,
        ),
        case(
            "fifo and devices",
            |_| {
                Tar::nox()
                    .entry(".nox/fifo", EntryType::Fifo, 0o644, "", b"")
                    .entry(".nox/chr", EntryType::Char, 0o644, "", b"")
                    .entry(".nox/blk", EntryType::Block, 0o644, "", b"")
                    .file(".nox/ok", b"ok")
                    .zstd()
            },
            Expect::Restored(3, |nox| {
                for name in ["fifo", "chr", "blk"] {
                    assert!(fs::symlink_metadata(nox.join(name)).is_err(), "{name} was created");
                }
                assert_eq!(fs::read(nox.join("ok")).unwrap(), b"ok");
            }),
        ),
        case(
            "setuid, setgid and sticky bits",
            |_| {
                Tar::nox()
                    .entry(".nox/suid", EntryType::Regular, 0o4755, "", b"#!/bin/sh\n")
                    .entry(".nox/sgid", EntryType::Regular, 0o2755, "", b"#!/bin/sh\n")
                    .entry(".nox/sticky/", EntryType::Directory, 0o1777, "", b"")
                    .gzip()
            },
            Expect::Restored(0, |nox| {
                let mode = |n: &str| fs::symlink_metadata(nox.join(n)).unwrap().permissions().mode() & 0o7777;
                assert_eq!((mode("suid"), mode("sgid"), mode("sticky")), (0o755, 0o755, 0o777));
            }),
        ),
        case(
            "header claiming 65 GiB",
            |_| {
                let mut tar = Tar::nox();
                tar.0.extend_from_slice(
                    header(".nox/huge", EntryType::Regular, 0o644, "", 65 << 30).as_bytes(),
                );
                tar.0.extend_from_slice(&[0u8; 4096]);
                zstd::encode_all(&tar.0[..], 3).unwrap()
            },
            Expect::Refused,
        ),
        case("not an archive", |_| b"<html>hello</html>".to_vec(), Expect::Refused),
        case("first entry a file", |_| Tar(Vec::new()).file(".nox", b"x").zstd(), Expect::Refused),
    ]
}

/// One store: every case in its own machine, each judged on the whole machine's tree.
fn hostile_archives_through(store: Store) {
    for case in cases() {
        let rig = Rig::new(store);
        rig.sentinels();
        let mut job = rig.job();
        rig.plant(&job, (case.archive)(&rig));
        let before = rig.tree();
        let step = job.main();
        let context = format!("{store:?} / {}\n{}", case.name, step.log());
        assert_eq!(step.code, 0, "{context}");
        assert!(!step.stdout.contains("::error::"), "{context}");
        let after = rig.tree();
        match case.expect {
            Expect::Refused => {
                assert!(
                    warnings(&step).iter().any(|w| w.contains("nox: restoring") && w.contains("failed")),
                    "{context}"
                );
                assert_eq!(step.output("nox-restored"), "false", "{context}");
                assert_eq!(step.output("cache-hit"), "false", "{context}");
                assert_eq!(after, before, "{context}");
            }
            Expect::Restored(warned, check) => {
                assert_eq!(step.output("nox-restored"), "true", "{context}");
                assert_eq!(warnings(&step).len(), warned, "{context}");
                assert_eq!(without(&after, "work/repo/repo/.nox"), without(&before, "work/repo/repo/.nox"));
                check(&rig.nox());
                assert!(!rig.nox().join("old").exists(), "the restored tree replaced the old one");
            }
        }
        let leftovers: Vec<_> = fs::read_dir(&rig.machine.workspace)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("restoring") || n.ends_with(".previous"))
            .collect();
        assert!(leftovers.is_empty(), "{context}: {leftovers:?}");
    }
}

#[test]
fn hostile_archives_local_store() {
    hostile_archives_through(Store::Local);
}

#[test]
fn hostile_archives_v1() {
    hostile_archives_through(Store::V1(Personality::Github));
}

#[test]
fn hostile_archives_v1_forgejo() {
    hostile_archives_through(Store::V1(Personality::Forgejo));
}

#[test]
fn hostile_archives_v2() {
    hostile_archives_through(Store::V2);
}

#[test]
fn hostile_archives_s3() {
    hostile_archives_through(Store::S3);
}

/// A tiny entry holding more than the size cap of zeros is refused from its headers, before a
/// byte is written, on every store: the v1/v2 services do not report an entry's size, so the
/// cap relative to it must follow the compressed bytes actually read.
#[test]
fn decompression_bombs_are_refused_on_every_store() {
    for store in STORES {
        let rig = Rig::new(store);
        rig.sentinels();
        let mut job = rig.job();
        let archive = big_bomb();
        assert!(archive.len() < 200_000, "the bomb is {} bytes", archive.len());
        rig.plant(&job, archive);
        let before = rig.tree();
        let started = Instant::now();
        let step = job.main();
        let context = format!("{store:?}\n{}", step.log());
        assert_eq!(step.code, 0, "{context}");
        assert!(warnings(&step).iter().any(|w| w.contains("decompression bomb")), "{context}");
        assert_eq!(step.output("nox-restored"), "false", "{context}");
        assert_eq!(rig.tree(), before, "{context}");
        // Refused from the headers: writing the bomb out would take far longer than this.
        let (elapsed, limit) = (started.elapsed(), Duration::from_secs(120));
        assert!(elapsed < limit, "refusing the bomb took {elapsed:?}, past the {limit:?} limit\n{context}");
    }
}

/// 100k tiny files (and 1k directories) restore correctly, within the step's `timeout`.
#[test]
fn a_hundred_thousand_tiny_entries() {
    let mut tar = Tar::nox();
    for d in 0..1000 {
        tar = tar.dir(&format!(".nox/d{d}/"));
        for f in 0..100 {
            tar = tar.file(&format!(".nox/d{d}/f{f}"), format!("{d}/{f}").as_bytes());
        }
    }
    let archive = tar.zstd();
    for store in [Store::Local, Store::V2] {
        let rig = Rig::new(store);
        let mut job = rig.job();
        // 10-25 s (local) and 50-60 s (v2) on a shared 2-core machine with a debug build, and
        // several times that with both cores busy: the limit is the action's own deadline.
        let timeout = Duration::from_secs(600);
        job.input("timeout", &timeout.as_secs().to_string());
        rig.plant(&job, archive.clone());
        let started = Instant::now();
        let step = job.main();
        let elapsed = started.elapsed();
        assert_eq!(step.code, 0, "{}", step.log());
        let context =
            format!("{store:?}: {elapsed:?}, with the `timeout` input at {timeout:?}\n{}", step.log());
        assert!(!step.summary.contains("timed out"), "the restore hit the `timeout` input: {context}");
        assert_eq!(step.output("nox-restored"), "true", "{context}");
        let files = tree(&rig.nox(), &|_| false);
        assert_eq!(files.len(), 101_000);
        assert_eq!(fs::read(rig.nox().join("d999/f99")).unwrap(), b"999/99");
        eprintln!("{store:?}: 101k entries restored in {elapsed:?}");
    }
}

#[test]
fn a_fifo_in_the_target_does_not_hang_the_tree_walk() {
    // Guards the helper itself: `tree` must never open a fifo.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    let t = tree(dir.path(), &|_| false);
    assert!(t["fifo"].starts_with("special"));
}

// ---------------------------------------------------------------------------------------------
// Races.

/// Fills `.nox` with `size` bytes of incompressible data that depends on `seed`, in a few files.
fn fill(nox: &Path, seed: u64, size: usize) {
    let _ = fs::remove_dir_all(nox);
    fs::create_dir_all(nox.join("data")).unwrap();
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for part in 0..4 {
        let bytes: Vec<u8> = (0..size / 4)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        fs::write(nox.join(format!("data/part{part}")), bytes).unwrap();
    }
    fs::write(nox.join("seed"), seed.to_string()).unwrap();
}

fn assert_clean(step: &Step, context: &str) {
    assert_eq!(step.code, 0, "{context}\n{}", step.log());
    assert!(!step.stdout.contains("::error::"), "{context}\n{}", step.log());
    assert!(warnings(step).is_empty(), "{context}\n{}", step.log());
}

/// Two post steps save the same key at the same moment.
#[test]
fn two_saves_of_one_key_at_once() {
    for store in
        [Store::V1(Personality::Github), Store::V2, Store::V1(Personality::Forgejo), Store::Local, Store::S3]
    {
        let rig = Rig::new(store);
        fill(&rig.nox(), 1, 4 << 20);
        let before = tree(&rig.nox(), &|_| false);
        let (mut a, mut b) = (rig.job(), rig.job());
        assert_eq!(a.main().output("nox-restored"), "false");
        assert_eq!(b.main().output("nox-restored"), "false");
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| a.post());
            let b = s.spawn(|| b.post());
            (a.join().unwrap(), b.join().unwrap())
        });
        let context = format!("{store:?}\n--- a\n{}\n--- b\n{}", a.log(), b.log());
        for step in [&a, &b] {
            assert_eq!(step.code, 0, "{context}");
            assert!(!step.stdout.contains("::error::") && warnings(step).is_empty(), "{context}");
        }
        let saved = [&a, &b].iter().filter(|s| s.stdout.contains("nox: saved")).count();
        let lost = [&a, &b]
            .iter()
            .filter(|s| s.stdout.contains("::notice::nox: another job saved") && s.stdout.contains("first"))
            .count();
        match store {
            Store::V1(Personality::Github) | Store::V2 => {
                assert_eq!((saved, lost), (1, 1), "{context}");
                assert_eq!(rig.server.as_ref().unwrap().entries().len(), 1);
            }
            Store::V1(Personality::Forgejo | Personality::Gitea) => {
                assert_eq!((saved, lost), (2, 0), "{context}");
                assert_eq!(rig.server.as_ref().unwrap().entries().len(), 2);
            }
            Store::Local => assert_eq!((saved, lost), (2, 0), "{context}"),
            // The key is checked before the upload: the later save finds it taken, or both
            // upload at once and the last whole object stays.
            Store::S3 => {
                assert_eq!(saved + lost, 2, "{context}");
                assert_eq!(rig.object_store.as_ref().unwrap().entries().len(), 1, "{context}");
            }
        }
        fs::remove_dir_all(rig.nox()).unwrap();
        let step = rig.job().main();
        assert_clean(&step, &format!("{store:?}: the restore after the race"));
        assert_eq!(step.output("nox-cache-hit"), "true", "{}", step.log());
        assert_eq!(tree(&rig.nox(), &|_| false), before, "{store:?}: a complete entry");
    }
}

/// A job of `rig` caching only the uv cache, in `~/.cache/uv`, on the local store at `store`:
/// unlike nox's (which fingerprints the envdir's absolute path), uv's key is the same on every
/// machine, so jobs on different machines (runners) share its entries.
fn uv_job(rig: &Rig, store: &str) -> Job {
    let mut job = rig.job();
    job.input("targets", "uv").input("uv-cache-dir", "~/.cache/uv").input("local-dir", store);
    job
}

fn uv_dir(rig: &Rig) -> PathBuf {
    rig.machine.home.join(".cache/uv")
}

/// On the local store, restores running while another machine saves the same key over and over
/// always get one complete entry or the other, never a partial one.
#[test]
fn restores_during_repeated_saves_never_see_a_partial_entry() {
    let saver = Rig::new(Store::Local);
    let reader = Rig::new(Store::Local);
    let shared = saver.machine.store.display().to_string();
    assert_eq!(uv_job(&saver, &shared).keys(), uv_job(&reader, &shared).keys());
    let mut versions = Vec::new();
    for seed in [1, 2] {
        fill(&uv_dir(&saver), seed, 6 << 20);
        versions.push(tree(&uv_dir(&saver), &|_| false));
    }
    let first = uv_job(&saver, &shared).post();
    assert!(first.stdout.contains("uv: saved"), "{}", first.log());
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for round in 0..6u64 {
                fill(&uv_dir(&saver), 1 + round % 2, 6 << 20);
                let step = uv_job(&saver, &shared).post();
                assert_clean(&step, "a save");
                assert!(step.stdout.contains("uv: saved"), "{}", step.log());
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let mut restores = 0;
        while !done.load(std::sync::atomic::Ordering::SeqCst) || restores < 3 {
            let _ = fs::remove_dir_all(uv_dir(&reader));
            let step = uv_job(&reader, &shared).main();
            assert_clean(&step, "a restore during saves");
            assert_eq!(step.output("uv-restored"), "true", "{}", step.log());
            let got = tree(&uv_dir(&reader), &|_| false);
            assert!(versions.contains(&got), "restore {restores} got a tree that was never saved");
            restores += 1;
        }
        eprintln!("{restores} restores during 6 saves, all complete");
    });
}

/// Four jobs on four machines sharing one store at once: two share a key, two have their own.
#[test]
fn four_jobs_share_one_local_store() {
    let store = tempfile::tempdir().unwrap();
    let shared = store.path().display().to_string();
    let rigs: Vec<(Rig, &str, u64)> = [("same", 7), ("same", 7), ("three", 3), ("four", 4)]
        .map(|(suffix, seed)| (Rig::new(Store::Local), suffix, seed))
        .into();
    let job = |rig: &Rig, suffix: &str| {
        let mut job = uv_job(rig, &shared);
        job.input("key-suffix", suffix);
        job
    };
    let keys: Vec<String> =
        rigs.iter().map(|(rig, suffix, _)| job(rig, suffix).keys()["uv"].clone()).collect();
    assert_eq!(keys[0], keys[1]);
    assert!(keys[1] != keys[2] && keys[2] != keys[3]);
    std::thread::scope(|s| {
        for (rig, suffix, seed) in &rigs {
            let job = &job;
            s.spawn(move || {
                for round in 0..2 {
                    fill(&uv_dir(rig), *seed, 2 << 20);
                    let want = tree(&uv_dir(rig), &|_| false);
                    let mut first = job(rig, suffix);
                    let main = first.main();
                    assert_clean(&main, &format!("{suffix} round {round}: restore"));
                    let post = first.post();
                    assert_clean(&post, &format!("{suffix} round {round}: save"));
                    fs::remove_dir_all(uv_dir(rig)).unwrap();
                    let again = job(rig, suffix).main();
                    assert_clean(&again, &format!("{suffix} round {round}: restore after save"));
                    assert_eq!(again.output("uv-cache-hit"), "true", "{}", again.log());
                    assert_eq!(tree(&uv_dir(rig), &|_| false), want, "{suffix} round {round}");
                }
            });
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Bad input and disk trouble.

/// Every input that can hold a malformed value: the step fails with an `::error::` naming it.
/// (`python`, `uv-cache-dir` and `local-dir` take any path: see the next test.)
#[test]
fn each_malformed_input_is_an_error_naming_it() {
    let long = "x".repeat(101);
    let table: &[(&str, &str)] = &[
        ("targets", "uv pip"),
        ("targets", "nox,uv"),
        ("working-directory", "../elsewhere"),
        ("working-directory", "/abs/path"),
        ("key-files", "uv.lock\n!"),
        ("key-files", "sub/../uv.lock"),
        ("key-suffix", "a,b"),
        ("key-suffix", "tab\there"),
        ("key-suffix", &long),
        ("restore-keys", "some"),
        ("save", "sometimes"),
        ("lookup-only", "yes"),
        ("fail-on-cache-miss", "maybe"),
        ("uv-prune", "all"),
        ("nox-envdir", "/abs/../.nox"),
        ("nox-envdir", "../.nox"),
        ("evict-project", "1"),
        ("backend", "s3"),
        ("backend", "github"),
        ("compression", "xz"),
        ("timeout", "0"),
        ("timeout", "ten"),
        ("timeout", "21601"),
    ];
    let machine = Machine::new();
    let mut named = std::collections::BTreeSet::new();
    for (input, value) in table {
        let value = value.replace("\\n", "\n").replace("\\t", "\t");
        for post in [false, true] {
            let mut job = machine.job();
            job.input(input, &value);
            let step = if post { job.post() } else { job.main() };
            let context =
                format!("{input}={value:?} ({})\n{}", if post { "post" } else { "main" }, step.log());
            assert_eq!(step.code, 1, "{context}");
            let errors: Vec<&str> = step.stdout.lines().filter(|l| l.starts_with("::error::")).collect();
            assert_eq!(errors.len(), 1, "{context}");
            assert!(errors[0].contains(&format!("`{input}`")), "{context}");
            assert!(step.outputs.is_empty() || step.outputs.get("cache-hit").is_none_or(|v| v == "false"));
        }
        named.insert(*input);
    }
    assert_eq!(named.len(), 14, "{named:?}");
}

/// The three free-form inputs: odd values are not errors, they end as notices or warnings.
#[test]
fn free_form_inputs_with_odd_values_do_not_fail() {
    let machine = Machine::new();
    fs::write(machine.workspace.join("not-a-dir"), "x").unwrap();
    let file = machine.workspace.join("not-a-dir").display().to_string();
    for (input, value, says) in [
        ("python", "/nonexistent/python3", "did not run"),
        ("uv-cache-dir", file.as_str(), ""),
        ("local-dir", file.as_str(), ""),
    ] {
        let mut job = machine.job();
        job.input(input, value);
        let main = job.main();
        let post = job.post();
        for step in [&main, &post] {
            let context = format!("{input}={value}\n{}", step.log());
            assert_eq!(step.code, 0, "{context}");
            assert!(!step.stdout.contains("::error::"), "{context}");
            assert!(step.stdout.contains(says), "{context}");
        }
    }
}

/// A target the save cannot read ends as a warning and no archive is left behind. Tests run as
/// root, so permissions stop nothing: a path longer than PATH_MAX (4096 bytes) is what root
/// cannot open by name. The uv cache is used (outside the workspace) so that hashFiles, which
/// walks the workspace for the nox key, does not meet it first (it would warn too).
#[test]
fn an_unreadable_target_at_save_is_a_warning() {
    let rig = Rig::new(Store::Local);
    let uv = uv_dir(&rig);
    let mut deep = uv.clone();
    let name = "d".repeat(250);
    fs::create_dir_all(&uv).unwrap();
    fs::write(uv.join("CACHEDIR.TAG"), "x").unwrap();
    // create_dir_all would fail past PATH_MAX: go down by relative paths in bash (dash refuses).
    let status = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "cd '{}' && for i in $(seq 20); do mkdir {name} && cd {name} || exit 1; done && echo x > f",
            uv.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
    deep.push(&name);
    let store = rig.machine.store.display().to_string();
    let mut job = uv_job(&rig, &store);
    let post = job.post();
    assert_eq!(post.code, 0, "{}", post.log());
    assert!(!post.stdout.contains("::error::"), "{}", post.log());
    assert!(
        warnings(&post).iter().any(|w| w.contains("uv: packing") && w.contains("not saving")),
        "{}",
        post.log()
    );
    assert!(fs::read_dir(job.dir.join("temp")).unwrap().next().is_none(), "the temporary archive was left");
    assert!(!rig.machine.store.join("v2").exists(), "nothing was stored");

    // A target that is a file, and a target that is a symlink loop: nothing to save, no error.
    fs::remove_dir_all(&uv).ok();
    let _ = std::process::Command::new("rm").arg("-rf").arg(&uv).status();
    fs::write(&uv, "a file").unwrap();
    let post = uv_job(&rig, &store).post();
    assert_eq!(post.code, 0, "{}", post.log());
    assert!(post.stdout.contains("nothing to save"), "{}", post.log());
    fs::remove_file(&uv).unwrap();
    std::os::unix::fs::symlink(&uv, &uv).unwrap();
    let post = uv_job(&rig, &store).post();
    assert_eq!(post.code, 0, "{}", post.log());
    assert!(!post.stdout.contains("::error::"), "{}", post.log());
}

/// A fifo inside the target is left out of the archive; neither save nor restore waits on it.
#[test]
fn a_fifo_in_the_target_is_skipped_at_save() {
    let rig = Rig::new(Store::Local);
    let store = rig.machine.store.display().to_string();
    let uv = uv_dir(&rig);
    fs::create_dir_all(&uv).unwrap();
    fs::write(uv.join("data"), "data").unwrap();
    assert!(std::process::Command::new("mkfifo").arg(uv.join("fifo")).status().unwrap().success());
    let post = uv_job(&rig, &store).post();
    assert_clean(&post, "save with a fifo");
    assert!(post.stdout.contains("uv: saved"), "{}", post.log());
    fs::remove_dir_all(&uv).unwrap();
    let main = uv_job(&rig, &store).main();
    assert_clean(&main, "restore");
    assert_eq!(fs::read(uv.join("data")).unwrap(), b"data");
    assert!(fs::symlink_metadata(uv.join("fifo")).is_err());
}

/// A size-limited tmpfs, unmounted on drop. A machine that does not allow mounting fails the
/// test: the full-disk tests never pass without a full disk.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run `mount` for the full-disk test: {e}"));
        let why = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "cannot mount a tmpfs for the full-disk test (needs root): {why}");
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// A restore of 4 MiB that do not compress into a uv cache whose parent is a 2 MiB tmpfs,
/// through `store`; returns the step, the tree of the machine's home before it, the rig and the
/// mounted disk (unmounted when dropped).
fn restore_onto_a_full_disk(store: Store) -> (Step, BTreeMap<String, String>, Rig, Tmpfs) {
    let rig = Rig::new(store);
    let local = rig.machine.store.display().to_string();
    let disk = Tmpfs::mount(&rig.machine.home.join(".cache"), "2m");
    let uv = uv_dir(&rig);
    fs::create_dir_all(uv.join("old")).unwrap();
    fs::write(uv.join("old/keep"), "old").unwrap();
    let before = tree(&rig.machine.home, &|_| false);
    // 4 MiB of incompressible data: well within the size caps, twice the disk.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let noise: Vec<u8> = (0..4 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let archive =
        Tar(Vec::new()).dir("../../home/.cache/uv/").file("../../home/.cache/uv/big", &noise).zstd();
    let mut job = uv_job(&rig, &local);
    rig.plant_for(&job, "uv", "~/.cache/uv", archive);
    let step = job.main();
    (step, before, rig, disk)
}

/// The service does not tell the entry's size (v1 as Forgejo serves it): the disk fills during
/// the restore, which is a warning and a miss, the old cache untouched, the staging gone.
#[test]
fn a_full_disk_during_restore_is_a_warning_and_changes_nothing() {
    let (step, before, rig, _disk) = restore_onto_a_full_disk(Store::V1(Personality::Forgejo));
    assert_eq!(step.code, 0, "{}", step.log());
    assert!(!step.stdout.contains("::error::"), "{}", step.log());
    assert!(
        warnings(&step).iter().any(|w| w.contains("uv: restoring") && w.contains("No space left")),
        "{}",
        step.log()
    );
    assert_eq!(step.output("uv-restored"), "false");
    assert_eq!(tree(&rig.machine.home, &|_| false), before, "the old cache and its disk are unchanged");
}

/// The store tells the entry's size: it would not fit once extracted, so the target is skipped
/// before anything is downloaded, with a warning that gives both numbers.
#[test]
fn an_entry_that_would_not_fit_is_skipped_before_downloading() {
    let (step, before, rig, _disk) = restore_onto_a_full_disk(Store::Local);
    assert_eq!(step.code, 0, "{}", step.log());
    let warned = warnings(&step);
    let warning =
        warned.iter().find(|w| w.contains("uv: not restoring")).unwrap_or_else(|| panic!("{}", step.log()));
    assert!(warning.contains("compressed") && warning.contains("MB free"), "{warning}");
    assert!(warning.contains(&uv_dir(&rig).display().to_string()), "{warning}");
    assert_eq!(step.output("uv-restored"), "false");
    assert_eq!(tree(&rig.machine.home, &|_| false), before);
}

/// A save whose RUNNER_TEMP is full (a 1 MiB tmpfs): a warning, nothing stored, no archive left.
#[test]
fn a_full_runner_temp_during_save_is_a_warning() {
    let rig = Rig::new(Store::Local);
    let store = rig.machine.store.display().to_string();
    let mut job = uv_job(&rig, &store);
    let temp = job.dir.join("temp");
    let _disk = Tmpfs::mount(&temp, "1m");
    fill(&uv_dir(&rig), 5, 4 << 20);
    let post = job.post();
    assert_eq!(post.code, 0, "{}", post.log());
    assert!(!post.stdout.contains("::error::"), "{}", post.log());
    assert!(
        warnings(&post).iter().any(|w| w.contains("uv: packing") && w.contains("not saving")),
        "{}",
        post.log()
    );
    assert!(fs::read_dir(&temp).unwrap().next().is_none(), "the partial archive was left behind");
    assert!(!rig.machine.store.join("v2").exists(), "nothing was stored");
}
