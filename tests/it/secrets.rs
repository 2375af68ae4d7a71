//! The runtime token and signed URLs never leave the action: through restore and save, a
//! succeeding and a failing run, with `RUNNER_DEBUG=1` and without, neither the token nor any
//! signature (`sig=…`) appears in stdout, stderr, the job summary, the outputs, the state or
//! the job environment — except in the `::add-mask::` line that masks the token.

use crate::support::action::{Job, Step};
use crate::support::cache_server::{Fault, Route};
use crate::support::rig::{FAST_TIMING, Rig, Service, fresh_checkout, populate};

/// A made-up signature that a misbehaving server echoes back in its error bodies.
const ECHOED_SIG: &str = "EchoedSignature0123456789";

/// Everything a workflow (or its logs) can see of one step, `::add-mask::` lines left out.
fn visible(job: &Job, step: &Step) -> String {
    let mut text = String::new();
    for stream in [&step.stdout, &step.stderr] {
        for line in stream.lines().filter(|l| !l.starts_with("::add-mask::")) {
            text.push_str(line);
            text.push('\n');
        }
    }
    text.push_str(&step.summary);
    for map in [&step.outputs, &step.env_file, &job.state] {
        for (k, v) in map {
            text.push_str(&format!("{k}={v}\n"));
        }
    }
    text
}

fn run(service: Service, debug: bool) {
    let rig = Rig::new(service);
    let server = rig.server();
    let token = server.token().to_string();
    let job = || {
        let mut job = rig.job();
        job.set_env("UV_NOX_CACHE_TEST_TUNING", FAST_TIMING);
        if debug {
            job.set_env("RUNNER_DEBUG", "1");
        }
        job
    };
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut record = |what: &str, job: &Job, step: &Step| {
        assert!(step.stdout.contains(&format!("::add-mask::{token}")), "{what}: token not masked");
        if debug {
            assert!(step.stdout.contains("::debug::"), "{what}: RUNNER_DEBUG=1 shows debug lines");
        }
        seen.push((what.to_string(), visible(job, step)));
    };

    // A save and an exact hit.
    let mut a = job();
    let step = a.main();
    record("first restore", &a, &step);
    populate(&rig.machine, "secret");
    let step = a.post();
    assert!(step.stdout.contains("nox: saved"), "{}", step.log());
    record("save", &a, &step);
    fresh_checkout(&rig.machine);
    let mut b = job();
    let step = b.main();
    assert_eq!(step.output("cache-hit"), "true", "{}", step.log());
    record("exact hit", &b, &step);

    // Failing restores: a lookup refused with the token and a signed URL in the body, then
    // downloads refused and cut off.
    fresh_checkout(&rig.machine);
    let echo = format!(
        r#"{{"message":"token {token} is not valid for http://blob.example/c/1?sv=2020&sig={ECHOED_SIG}"}}"#
    );
    server.inject(Fault::Answer { route: Route::Lookup, status: 400, body: echo, times: 2 });
    let mut c = job();
    let step = c.main();
    assert!(step.stdout.contains("::warning::"), "{}", step.log());
    record("refused lookup", &c, &step);
    server.inject(Fault::Status { route: Route::Download, status: 404, times: 1 });
    server.inject(Fault::Truncate { route: Route::Download, times: usize::MAX });
    let mut d = job();
    let step = d.main();
    assert!(step.stdout.contains("::warning::"), "{}", step.log());
    record("broken download", &d, &step);

    // A failing save: the upload refused, the service echoing the secrets.
    server.clear_faults();
    let echo = format!(r#"{{"message":"bad upload for {token} at ?sig={ECHOED_SIG}"}}"#);
    server.inject(Fault::Answer { route: Route::Upload, status: 400, body: echo, times: usize::MAX });
    let mut e = job();
    e.input("key-suffix", "other");
    e.main();
    populate(&rig.machine, "secret again");
    let step = e.post();
    assert!(step.stdout.contains("::warning::"), "{}", step.log());
    record("failed save", &e, &step);

    // The signatures the server actually handed out (v2 blob URLs).
    let mut secrets = vec![token.clone(), ECHOED_SIG.to_string()];
    for r in server.requests() {
        if let Some(sig) = r.query.split('&').find_map(|p| p.strip_prefix("sig=")) {
            secrets.push(sig.to_string());
        }
    }
    for (what, text) in &seen {
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{what} shows `{secret}`:\n{text}");
        }
        let lower = text.to_ascii_lowercase();
        for (i, _) in lower.match_indices("sig=") {
            assert!(lower[i + 4..].starts_with("***"), "{what} shows a signature:\n{text}");
        }
    }
}

macro_rules! secrets {
    ($($name:ident: $service:ident, $debug:expr;)*) => {
        $( #[test] fn $name() { run(Service::$service, $debug) } )*
    };
}

secrets! {
    forgejo_v1: ForgejoV1, false;
    forgejo_v1_debug: ForgejoV1, true;
    github_v1: GithubV1, false;
    github_v1_debug: GithubV1, true;
    github_v2: GithubV2, false;
    github_v2_debug: GithubV2, true;
}
