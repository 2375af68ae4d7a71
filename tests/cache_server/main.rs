//! `cargo run --example cache-server -- --port N [--personality github|forgejo|gitea]
//! [--token T] [--ignore-range]`: the test cache server on its own, for poking at it with
//! `curl` or pointing a local `@actions/cache` (or this action) at it by hand.

// The example starts and serves; the test-facing half of the API (request log, faults,
// planted entries) is used by the integration tests, which compile the same files.
#[allow(dead_code)]
#[path = "mod.rs"]
mod cache_server;

use cache_server::{CacheServer, Personality, ServerConfig};

fn main() {
    let mut config = ServerConfig::new(Personality::Github);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage(&format!("{arg} needs a value")));
        match arg.as_str() {
            "--port" => config.port = value().parse().unwrap_or_else(|_| usage("--port takes a number")),
            "--personality" => {
                config.personality = match value().as_str() {
                    "github" => Personality::Github,
                    "forgejo" => Personality::Forgejo,
                    "gitea" => Personality::Gitea,
                    other => usage(&format!("unknown personality {other}")),
                }
            }
            "--token" => config.token = value(),
            "--ignore-range" => config.ignore_range = true,
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let server = CacheServer::start_with(config);
    println!("ACTIONS_CACHE_URL={}", server.base_url_v1());
    println!("ACTIONS_RESULTS_URL={}", server.results_url());
    println!("ACTIONS_RUNTIME_TOKEN={}", server.token());
    // Serve until the process is killed (`server` lives as long as this loop).
    loop {
        std::thread::park();
    }
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("cache-server: {problem}");
    }
    eprintln!(
        "usage: cache-server --port N [--personality github|forgejo|gitea] [--token T] [--ignore-range]"
    );
    std::process::exit(2)
}
