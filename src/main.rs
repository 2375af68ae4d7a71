//! The `uv-nox-cache` command: everything happens in the library's `run`.

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    uv_nox_cache::run(&args)
}
