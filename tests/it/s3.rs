//! The S3 backend against a real object store: versitygw (a single Go binary that fleets run
//! in front of a POSIX file system), built from the Go module proxy by `scripts/object-store`
//! and started by these tests on 127.0.0.1 with a temporary root. A store that cannot be built
//! or started fails the tests; nothing here passes without it.
//!
//! The client is driven directly (round trips, restore keys, ref scoping, races, refusals,
//! a stalled body through a small proxy) and through the action's steps, where every kind of
//! trouble must end as a warning and a miss with exit code 0.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use uv_nox_cache::backend::aws_credentials::CredentialSource;
use uv_nox_cache::backend::s3::{S3Backend, S3Settings, Scope};
use uv_nox_cache::backend::{Backend, BackendError, Saved, Secret, Tuning};

use crate::support::action::{Job, Machine, Step, repo_root};

pub const BUCKET: &str = "fleet-cache";
pub const ACCESS_KEY: &str = "uvnoxcachetestkey";
pub const SECRET_KEY: &str = "uv-nox-cache-test-secret-3f9a1c";
pub const REPOSITORY: &str = "owner/project";
pub const VERSION: &str = "0000000000000000000000000000000000000000000000000000000000000001";

/// The versitygw binary, built once per test run by `scripts/object-store`.
fn store_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let out = Command::new(repo_root().join("scripts/object-store"))
            .output()
            .expect("run scripts/object-store (it needs Go to build versitygw)");
        assert!(
            out.status.success(),
            "scripts/object-store could not build the object store the S3 tests need:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        assert!(path.is_file(), "scripts/object-store printed {}, which is not a file", path.display());
        path
    })
}

/// A running versitygw on 127.0.0.1 with its own root; killed when dropped.
pub struct ObjectStore {
    child: Child,
    port: u16,
    root: tempfile::TempDir,
}

impl ObjectStore {
    /// Starts a store holding one empty bucket, [`BUCKET`].
    pub fn start() -> ObjectStore {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join(BUCKET)).unwrap();
        let mut last = String::new();
        for _ in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let mut child = Command::new(store_binary())
                .args([
                    "--access",
                    ACCESS_KEY,
                    "--secret",
                    SECRET_KEY,
                    "--port",
                    &format!("127.0.0.1:{port}"),
                ])
                .arg("posix")
                .arg(root.path())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start versitygw");
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(60) {
                if answers_as_versitygw(port) {
                    return ObjectStore { child, port, root };
                }
                if let Some(status) = child.try_wait().unwrap() {
                    let mut stderr = String::new();
                    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
                    last = format!("versitygw exited with {status}: {stderr}");
                    break;
                }
                thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            if last.is_empty() {
                last = "versitygw did not listen within 60 s".into();
            }
        }
        panic!("the object store would not start: {last}");
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Writes an object straight into the store's file system, past every client check.
    pub fn plant(&self, object: &str, bytes: &[u8]) {
        let path = self.root.path().join(BUCKET).join(object);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }

    /// The entries of the bucket: its objects without the recorded digests and use markers.
    pub fn entries(&self) -> Vec<String> {
        self.objects()
            .into_iter()
            .filter(|name| !name.contains(".sha256/") && !name.contains(".used/"))
            .collect()
    }

    /// The path of an object in the store's file system.
    pub fn object_path(&self, object: &str) -> PathBuf {
        self.root.path().join(BUCKET).join(object)
    }

    /// The objects of the bucket (files below its directory), by name.
    pub fn objects(&self) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                if path.is_dir() {
                    walk(&path, base, out);
                } else {
                    out.push(path.strip_prefix(base).unwrap().display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        let base = self.root.path().join(BUCKET);
        walk(&base, &base, &mut out);
        out.sort();
        out
    }

    /// Stores `archive` as the entry `key` of [`REPOSITORY`] on `git_ref`, with its recorded
    /// sha256, as a save would, whatever the archive holds.
    pub fn save_entry(&self, git_ref: &str, key: &str, version: &str, archive: &[u8]) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("archive");
        fs::write(&path, archive).unwrap();
        let saved = client(settings(&self.endpoint(), git_ref, &[])).save_file(key, version, &path);
        assert!(matches!(saved, Ok(Saved::Stored)), "{saved:?}");
    }

    /// Points a job at this store, as a fleet admin's runner variables would.
    pub fn configure(&self, job: &mut Job) {
        job.set_env("UV_NOX_CACHE_S3_BUCKET", BUCKET)
            .set_env("UV_NOX_CACHE_S3_ENDPOINT", &self.endpoint())
            .set_env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .set_env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .set_env("GITHUB_REPOSITORY", REPOSITORY);
    }
}

/// Whether the server on `port` is versitygw: between the free port being picked and versitygw
/// binding it, another server started by a test running beside this one may take it.
fn answers_as_versitygw(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    if stream.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut head = Vec::new();
    let _ = stream.take(4096).read_to_end(&mut head);
    String::from_utf8_lossy(&head).to_ascii_lowercase().contains("server: versitygw")
}

impl Drop for ObjectStore {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn fast() -> Tuning {
    Tuning {
        upload_chunk: 5 << 20,
        download_block: 1 << 20,
        parallelism: 3,
        attempts: 2,
        retry_delay: Duration::from_millis(50),
        idle_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(5),
        ..Tuning::default()
    }
}

pub fn settings(endpoint: &str, own_ref: &str, fallback: &[&str]) -> S3Settings {
    S3Settings {
        bucket: BUCKET.into(),
        prefix: "uv-nox-cache/".into(),
        endpoint: endpoint.into(),
        region: "us-east-1".into(),
        path_style: true,
        credentials: CredentialSource::Keys {
            access_key: ACCESS_KEY.into(),
            secret: Secret(SECRET_KEY.into()),
            session_token: None,
        },
        scope: Scope {
            repository: REPOSITORY.into(),
            own_ref: own_ref.into(),
            fallback_refs: fallback.iter().map(|r| r.to_string()).collect(),
            read_only_event: None,
        },
    }
}

pub fn client(settings: S3Settings) -> S3Backend {
    S3Backend::new(settings, Instant::now() + Duration::from_secs(120), fast())
}

fn main_client(store: &ObjectStore) -> S3Backend {
    client(settings(&store.endpoint(), "refs/heads/main", &[]))
}

pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as u8
        })
        .collect()
}

fn save(backend: &dyn Backend, key: &str, bytes: &[u8]) -> Result<Saved, BackendError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("archive");
    fs::write(&path, bytes).unwrap();
    backend.save_file(key, VERSION, &path)
}

fn fetch(backend: &dyn Backend, key: &[&str]) -> Option<(String, Vec<u8>)> {
    let keys: Vec<String> = key.iter().map(|k| k.to_string()).collect();
    let hit = backend.lookup(&keys, VERSION).expect("lookup")?;
    let mut bytes = Vec::new();
    backend.download(&hit).expect("download").read_to_end(&mut bytes).expect("read the download");
    Some((hit.key, bytes))
}

/// One `PUT` for an archive of one part or less, a multipart upload for a larger one; both
/// come back byte for byte through ranged downloads, and land under the documented layout.
#[test]
fn round_trips_of_one_put_and_of_many_parts() {
    let store = ObjectStore::start();
    let backend = main_client(&store);
    let small = payload(300_000, 1);
    let large = payload((12 << 20) + 12345, 2);
    assert_eq!(save(&backend, "Small-Key", &small).unwrap(), Saved::Stored);
    assert_eq!(save(&backend, "large-key", &large).unwrap(), Saved::Stored);
    assert_eq!(fetch(&backend, &["small-key"]), Some(("small-key".into(), small.clone())));
    assert_eq!(fetch(&backend, &["large-key"]), Some(("large-key".into(), large.clone())));
    assert_eq!(
        store.entries(),
        [
            format!("uv-nox-cache/{REPOSITORY}/refs/heads/main/{VERSION}/large-key"),
            format!("uv-nox-cache/{REPOSITORY}/refs/heads/main/{VERSION}/small-key"),
        ]
    );
    // Each with its sha256, under the ETag of the object it describes.
    let digests: Vec<String> = store.objects().into_iter().filter(|name| name.contains(".sha256/")).collect();
    assert_eq!(digests.len(), 2, "{digests:?}");
    for (digest, bytes) in digests.iter().zip([&large, &small]) {
        assert!(digest.starts_with(&format!("uv-nox-cache/{REPOSITORY}/refs/heads/main/{VERSION}.sha256/")));
        let recorded = fs::read_to_string(store.object_path(digest)).unwrap();
        assert_eq!(recorded, hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes)), "{digest}");
    }
    assert!(fetch(&backend, &["absent"]).is_none());
    // A second save of a key finds it taken.
    assert!(matches!(save(&backend, "small-key", b"other").unwrap(), Saved::AlreadyExists(_)));
}

/// Restore keys match by prefix and the newest object wins.
#[test]
fn restore_keys_take_the_newest_prefix_match() {
    let store = ObjectStore::start();
    let backend = main_client(&store);
    save(&backend, "deps-linux-aaa", b"older").unwrap();
    // S3's LastModified has a resolution of one second.
    thread::sleep(Duration::from_millis(1100));
    save(&backend, "deps-linux-bbb", b"newer").unwrap();
    save(&backend, "other-linux-zzz", b"unrelated").unwrap();
    assert_eq!(
        fetch(&backend, &["deps-linux-ccc", "deps-linux-"]),
        Some(("deps-linux-bbb".into(), b"newer".to_vec()))
    );
    assert_eq!(
        fetch(&backend, &["deps-linux-aaa", "deps-"]),
        Some(("deps-linux-aaa".into(), b"older".to_vec()))
    );
    assert!(fetch(&backend, &["nothing-", "also-nothing"]).is_none());
}

/// A branch reads its own entries, then the default branch's; it writes only its own, so the
/// default branch never sees what a pull request saved.
#[test]
fn refs_are_scoped_like_githubs_cache() {
    let store = ObjectStore::start();
    let main = main_client(&store);
    let feature = client(settings(&store.endpoint(), "refs/pull/7/merge", &["refs/heads/main"]));
    save(&main, "key-main", b"from main").unwrap();
    assert_eq!(fetch(&feature, &["key-main"]), Some(("key-main".into(), b"from main".to_vec())));
    save(&feature, "key-pr", b"from the pr").unwrap();
    assert!(fetch(&main, &["key-pr"]).is_none(), "main must not read a pull request's entry");
    // The own ref comes first: the same key saved on both is read from the pull request's.
    save(&feature, "key-main", b"pr copy").unwrap();
    assert_eq!(fetch(&feature, &["key-main"]), Some(("key-main".into(), b"pr copy".to_vec())));
    assert_eq!(fetch(&main, &["key-main"]), Some(("key-main".into(), b"from main".to_vec())));

    // Never a sibling pull request's entry, nor another repository's.
    let sibling = client(settings(&store.endpoint(), "refs/pull/8/merge", &["refs/heads/main"]));
    assert!(fetch(&sibling, &["key-pr"]).is_none(), "a sibling pull request read pull request 7's entry");
    let mut elsewhere = settings(&store.endpoint(), "refs/pull/7/merge", &["refs/heads/main"]);
    elsewhere.scope.repository = "someone/else".into();
    let elsewhere = client(elsewhere);
    assert!(fetch(&elsewhere, &["key-pr"]).is_none() && fetch(&elsewhere, &["key-main"]).is_none());

    // A run on the base branch for a pull request reads it and writes nothing.
    let mut target = settings(&store.endpoint(), "refs/heads/main", &[]);
    target.scope.read_only_event = Some("pull_request_target".into());
    let target = client(target);
    assert_eq!(fetch(&target, &["key-main"]), Some(("key-main".into(), b"from main".to_vec())));
    let before = store.objects();
    let refused = save(&target, "key-target", b"from the target run").unwrap_err();
    assert!(matches!(refused, BackendError::Denied { .. }), "{refused}");
    assert_eq!(store.objects(), before, "nothing was written");
}

/// An object without a recorded sha256 (saved by 0.1.0, or put in the bucket past the action)
/// is never restored and is replaced by the next save; an entry whose bytes changed in the
/// bucket is refused and deleted.
#[test]
fn entries_are_checked_against_their_recorded_sha256() {
    let store = ObjectStore::start();
    let main = main_client(&store);
    store.plant(&format!("uv-nox-cache/{REPOSITORY}/refs/heads/main/{VERSION}/planted"), b"planted bytes");
    save(&main, "planted-older", b"older, with a digest").unwrap();
    assert_eq!(
        fetch(&main, &["planted", "planted-o"]),
        Some(("planted-older".into(), b"older, with a digest".to_vec())),
        "the object without a digest is passed over"
    );
    assert_eq!(save(&main, "planted", b"saved now").unwrap(), Saved::Stored, "and replaced");
    assert_eq!(fetch(&main, &["planted"]), Some(("planted".into(), b"saved now".to_vec())));

    let bytes = payload((7 << 20) + 99, 5);
    save(&main, "kept", &bytes).unwrap();
    let name = format!("uv-nox-cache/{REPOSITORY}/refs/heads/main/{VERSION}/kept");
    let mut stored = fs::read(store.object_path(&name)).unwrap();
    stored[1 << 20] ^= 1;
    fs::write(store.object_path(&name), stored).unwrap();
    let hit = main.lookup(&["kept".to_string()], VERSION).unwrap().expect("the entry is found");
    let mut reader = main.download(&hit).unwrap();
    let error = reader.read_to_end(&mut Vec::new()).unwrap_err();
    let refused = uv_nox_cache::backend::integrity::refusal(&error).expect("an integrity refusal");
    assert!(refused.contains(&name) && refused.contains("deleted from the bucket"), "{refused}");
    assert!(main.lookup(&["kept".to_string()], VERSION).unwrap().is_none(), "not used again");
}

/// Four clients save one key at once: every save ends cleanly and the object read back is one
/// whole payload.
#[test]
fn concurrent_saves_of_one_key_leave_one_whole_entry() {
    let store = ObjectStore::start();
    let payloads: Vec<Vec<u8>> = (0..4).map(|i| payload((6 << 20) + i * 1000, i as u64 + 10)).collect();
    let results: Vec<Result<Saved, BackendError>> = thread::scope(|s| {
        let handles: Vec<_> =
            payloads.iter().map(|p| s.spawn(|| save(&main_client(&store), "raced", p))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for result in &results {
        assert!(result.is_ok(), "{results:?}");
    }
    assert!(results.iter().any(|r| matches!(r, Ok(Saved::Stored))), "{results:?}");
    let (_, got) = fetch(&main_client(&store), &["raced"]).expect("an entry");
    assert!(payloads.contains(&got), "the entry is one whole payload ({} bytes)", got.len());
}

/// Wrong keys, a missing bucket and an unreachable store are errors (the flows turn them into
/// warnings and misses), and no error names the secret.
#[test]
fn refusals_are_errors_that_name_no_secret() {
    let store = ObjectStore::start();
    let mut wrong = settings(&store.endpoint(), "refs/heads/main", &[]);
    wrong.credentials = CredentialSource::Keys {
        access_key: ACCESS_KEY.into(),
        secret: Secret("not-the-secret-7d2e".into()),
        session_token: None,
    };
    let wrong = client(wrong);
    let mut errors = Vec::new();
    let error = wrong.lookup(&["k".to_string()], VERSION).unwrap_err();
    assert!(matches!(error, BackendError::Unauthorized { .. }), "{error:?}");
    errors.push(error);
    let error = save(&wrong, "k", b"bytes").unwrap_err();
    assert!(matches!(error, BackendError::Unauthorized { .. }), "{error:?}");
    errors.push(error);
    assert!(store.objects().is_empty());

    let mut missing = settings(&store.endpoint(), "refs/heads/main", &[]);
    missing.bucket = "no-such-bucket".into();
    let error = client(missing).lookup(&["k".to_string()], VERSION).unwrap_err();
    assert!(error.to_string().contains("NoSuchBucket"), "{error}");
    errors.push(error);

    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let error = client(settings(&format!("http://127.0.0.1:{closed}"), "refs/heads/main", &[]))
        .lookup(&["k".to_string()], VERSION)
        .unwrap_err();
    // Refused twice (the retry): the service is down for the rest of the step (health.rs).
    assert!(matches!(error, BackendError::Down { .. }), "{error:?}");
    errors.push(error);
    for error in &errors {
        let text = format!("{error} {error:?}");
        for secret in [SECRET_KEY, "not-the-secret-7d2e", "X-Amz-Signature", "X-Amz-Credential"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }
}

/// A session token is signed into every request; one the store does not know is refused.
#[test]
fn a_session_token_is_sent_and_a_bad_one_refused() {
    let store = ObjectStore::start();
    let mut with_token = settings(&store.endpoint(), "refs/heads/main", &[]);
    with_token.credentials = CredentialSource::Keys {
        access_key: ACCESS_KEY.into(),
        secret: Secret(SECRET_KEY.into()),
        session_token: Some(Secret("expired-session-token-5b1f".into())),
    };
    let result = client(with_token).lookup(&["k".to_string()], VERSION);
    let text = format!("{result:?}");
    assert!(!text.contains("expired-session-token-5b1f"), "{text}");
    let error = result.expect_err("versitygw refuses a session token it never issued");
    eprintln!("session token: {error}");
    assert!(matches!(error, BackendError::Unauthorized { .. }), "{error:?}");
}

/// A TCP proxy to `upstream` that forwards every answer's first `limit` bytes on each
/// connection, then goes silent (the connection stays open).
fn stalling_proxy(upstream: u16, limit: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else { continue };
            let (mut client_in, mut server_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            thread::spawn(move || std::io::copy(&mut client_in, &mut server_out));
            let (mut server_in, mut client_out) = (server, client);
            thread::spawn(move || {
                let mut sent = 0;
                let mut buf = [0u8; 16384];
                while let Ok(n) = server_in.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    let allowed = n.min(limit.saturating_sub(sent));
                    if client_out.write_all(&buf[..allowed]).is_err() {
                        return;
                    }
                    sent += allowed;
                    if allowed < n {
                        // Hold the connection open and silent until the client gives up.
                        let _ = client_out.read(&mut [0u8; 1]);
                        return;
                    }
                }
            });
        }
    });
    port
}

/// A store that stops sending mid-body: the download fails within the idle timeout's
/// retries, instead of hanging.
#[test]
fn a_store_that_stalls_mid_body_fails_the_download_in_time() {
    let store = ObjectStore::start();
    let bytes = payload(4 << 20, 3);
    save(&main_client(&store), "stalled", &bytes).unwrap();
    let proxy = stalling_proxy(store.port(), 300_000);
    let backend = client(settings(&format!("http://127.0.0.1:{proxy}"), "refs/heads/main", &[]));
    let started = Instant::now();
    let hit = backend.lookup(&["stalled".to_string()], VERSION).expect("a small answer passes").expect("hit");
    let read = backend.download(&hit).and_then(|mut r| {
        let mut out = Vec::new();
        r.read_to_end(&mut out).map_err(|e| BackendError::Io { op: "download", path: "-".into(), source: e })
    });
    let error = read.expect_err("a stalled body cannot complete").to_string();
    eprintln!("stall: {error}");
    // Stalled twice: the service is down for the rest of the step (health.rs).
    assert!(error.contains("stopped sending for 2 s"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "gave up after {:?} (limit 60 s)",
        started.elapsed()
    );
}

// ---- Through the action's steps ---------------------------------------------------------

fn uv_job(machine: &Machine, store: &ObjectStore) -> Job {
    let mut job = machine.job();
    job.input("targets", "uv").input("uv-cache-dir", "~/.cache/uv");
    store.configure(&mut job);
    job
}

pub fn fill(dir: &Path, seed: u64) -> BTreeMap<String, Vec<u8>> {
    let _ = fs::remove_dir_all(dir);
    let mut files = BTreeMap::new();
    for i in 0..20u64 {
        let name = format!("wheels/w{i}.bin");
        let bytes = payload(50_000 + i as usize * 1000, seed * 100 + i);
        fs::create_dir_all(dir.join("wheels")).unwrap();
        fs::write(dir.join(&name), &bytes).unwrap();
        files.insert(name, bytes);
    }
    files
}

pub fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in fs::read_dir(dir.join("wheels")).into_iter().flatten().flatten() {
        files.insert(
            format!("wheels/{}", entry.file_name().to_string_lossy()),
            fs::read(entry.path()).unwrap(),
        );
    }
    files
}

pub fn warnings(step: &Step) -> Vec<&str> {
    step.stdout.lines().filter(|l| l.starts_with("::warning")).collect()
}

/// `backend: auto` picks the bucket the runner names; a save on one machine is restored on
/// another, and the object is a plain `tar --zstd` archive.
#[test]
fn the_action_saves_and_restores_through_the_bucket() {
    let store = ObjectStore::start();
    let (a, b) = (Machine::new(), Machine::new());
    let uv = a.home.join(".cache/uv");
    let files = fill(&uv, 1);
    let mut job = uv_job(&a, &store);
    let main = job.main();
    assert_eq!(main.code, 0, "{}", main.log());
    assert!(main.stdout.contains("s3 bucket fleet-cache"), "{}", main.log());
    assert!(main.stdout.contains(&format!("::add-mask::{SECRET_KEY}")), "the secret is masked first");
    assert_eq!(main.output("uv-restored"), "false");
    let post = job.post();
    assert_eq!(post.code, 0, "{}", post.log());
    assert!(post.stdout.contains("uv: saved"), "{}", post.log());
    assert!(warnings(&post).is_empty(), "{}", post.log());

    let objects = store.entries();
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert!(objects[0].starts_with(&format!("uv-nox-cache/{REPOSITORY}/refs/heads/main/")), "{objects:?}");
    let listing = Command::new("tar")
        .arg("--zstd")
        .arg("-tf")
        .arg(store.root.path().join(BUCKET).join(&objects[0]))
        .output()
        .expect("run tar");
    assert!(listing.status.success(), "{}", String::from_utf8_lossy(&listing.stderr));

    let restored = uv_job(&b, &store).main();
    assert_eq!(restored.code, 0, "{}", restored.log());
    assert_eq!(restored.output("uv-cache-hit"), "true", "{}", restored.log());
    assert_eq!(read_tree(&b.home.join(".cache/uv")), files);
}

/// Trouble with the bucket is a warning and a miss, never a failed step.
#[test]
fn bucket_trouble_is_a_warning_and_a_miss() {
    let store = ObjectStore::start();
    let machine = Machine::new();
    fill(&machine.home.join(".cache/uv"), 2);
    let proxy = stalling_proxy(store.port(), 0);
    type Change<'a> = &'a dyn Fn(&mut Job);
    let cases: [(&str, Change); 4] = [
        ("wrong secret", &|job| {
            job.set_env("AWS_SECRET_ACCESS_KEY", "wrong-secret-value-91");
        }),
        ("missing bucket", &|job| {
            job.set_env("UV_NOX_CACHE_S3_BUCKET", "missing-bucket");
        }),
        ("no credentials", &|job| {
            job.env.remove("AWS_ACCESS_KEY_ID");
            job.env.remove("AWS_SECRET_ACCESS_KEY");
        }),
        ("stalled store", &|job| {
            job.set_env("UV_NOX_CACHE_S3_ENDPOINT", &format!("http://127.0.0.1:{proxy}"))
                .input("timeout", "8");
        }),
    ];
    for (name, change) in cases {
        let mut job = uv_job(&machine, &store);
        change(&mut job);
        let main = job.main();
        let context = format!("{name}\n{}", main.log());
        assert_eq!(main.code, 0, "{context}");
        assert!(!main.stdout.contains("::error::"), "{context}");
        assert_eq!(main.output("uv-restored"), "false", "{context}");
        assert!(!warnings(&main).is_empty(), "{context}");
        let post = job.post();
        let context = format!("{name}\n{}", post.log());
        assert_eq!(post.code, 0, "{context}");
        assert!(!post.stdout.contains("uv: saved"), "{context}");
        assert!(!warnings(&post).is_empty(), "{context}");
        for step in [&main, &post] {
            assert!(
                !step.stdout.contains("wrong-secret-value-91")
                    || step.stdout.contains("::add-mask::wrong-secret-value-91")
            );
        }
    }
    assert!(store.objects().is_empty(), "{:?}", store.objects());
}

/// `UV_NOX_CACHE_TEST_TUNING` reaches the s3 backend as it reaches the runner's services: with
/// a one-second idle timeout and one attempt, a silent store is given up on at once, well
/// before the `timeout` input, whose deadline is what stops it with the default timing.
#[test]
fn the_test_tuning_reaches_the_s3_backend() {
    let store = ObjectStore::start();
    let machine = Machine::new();
    let proxy = stalling_proxy(store.port(), 0);
    let mut job = uv_job(&machine, &store);
    job.set_env("UV_NOX_CACHE_S3_ENDPOINT", &format!("http://127.0.0.1:{proxy}"))
        .set_env("UV_NOX_CACHE_TEST_TUNING", "attempts=1,idle_timeout=1s,connect_timeout=5s,grace=1s")
        .input("timeout", "30");
    let main = job.main();
    assert_eq!(main.code, 0, "{}", main.log());
    let warned = warnings(&main);
    assert!(warned.iter().any(|w| w.contains("cache lookup failed")), "{}", main.log());
    assert!(
        !warned.iter().any(|w| w.contains("`timeout` input")),
        "the tuning's idle timeout, not the deadline:\n{}",
        main.log()
    );
}

/// Three machines share one bucket at once, two of them with the same key.
#[test]
fn several_jobs_share_one_bucket() {
    let store = ObjectStore::start();
    let machines: Vec<(Machine, &str, u64)> =
        [("same", 7), ("same", 7), ("own", 3)].map(|(suffix, seed)| (Machine::new(), suffix, seed)).into();
    thread::scope(|s| {
        for (machine, suffix, seed) in &machines {
            let store = &store;
            s.spawn(move || {
                let uv = machine.home.join(".cache/uv");
                let want = fill(&uv, *seed);
                let mut job = uv_job(machine, store);
                job.input("key-suffix", suffix);
                assert_eq!(job.main().code, 0);
                let post = job.post();
                assert_eq!(post.code, 0, "{}", post.log());
                assert!(warnings(&post).is_empty(), "{}", post.log());
                fs::remove_dir_all(&uv).unwrap();
                let mut again = uv_job(machine, store);
                again.input("key-suffix", suffix);
                let step = again.main();
                assert_eq!(step.output("uv-cache-hit"), "true", "{}", step.log());
                assert_eq!(read_tree(&uv), want, "{suffix}");
            });
        }
    });
    assert_eq!(store.entries().len(), 2, "{:?}", store.objects());
}

/// A stand-in for STS (versitygw's single-account mode has none): answers every
/// `AssumeRoleWithWebIdentity` with the store's keys and keeps the request bodies it got.
fn sts_stub() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = bodies.clone();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if std::io::BufRead::read_line(&mut reader, &mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            seen.lock().unwrap().push(String::from_utf8_lossy(&body).into_owned());
            let xml = format!(
                "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>\
                 <AccessKeyId>{ACCESS_KEY}</AccessKeyId><SecretAccessKey>{SECRET_KEY}</SecretAccessKey>\
                 </Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
            );
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
                xml.len()
            );
            let mut stream = stream;
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (port, bodies)
}

/// Web identity: the token file's JWT goes to STS once, and the keys it answers sign the
/// requests to the real store.
#[test]
fn web_identity_credentials_come_from_sts() {
    let store = ObjectStore::start();
    let (sts, bodies) = sts_stub();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    fs::write(&token_file, "eyJhbGciOiJSUzI1NiJ9.web-identity-token.sig\n").unwrap();
    let mut with_role = settings(&store.endpoint(), "refs/heads/main", &[]);
    with_role.credentials = CredentialSource::WebIdentity {
        role_arn: "arn:aws:iam::123456789012:role/ci-cache".into(),
        token_file,
        session_name: "uv-nox-cache".into(),
        sts_endpoint: format!("http://127.0.0.1:{sts}"),
    };
    let backend = client(with_role);
    assert_eq!(save(&backend, "via-role", b"assumed").unwrap(), Saved::Stored);
    assert_eq!(fetch(&backend, &["via-role"]), Some(("via-role".into(), b"assumed".to_vec())));
    let bodies = bodies.lock().unwrap();
    assert_eq!(bodies.len(), 1, "one STS call per backend: {bodies:?}");
    assert!(bodies[0].contains("Action=AssumeRoleWithWebIdentity"), "{}", bodies[0]);
    assert!(
        bodies[0].contains("RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fci-cache"),
        "{}",
        bodies[0]
    );
    assert!(
        bodies[0].contains("WebIdentityToken=eyJhbGciOiJSUzI1NiJ9.web-identity-token.sig"),
        "{}",
        bodies[0]
    );
}
