//! The `uv-nox-cache` command: everything happens in the library's `run`.

fn main() -> std::process::ExitCode {
    few_allocator_arenas();
    let args: Vec<String> = std::env::args().collect();
    uv_nox_cache::run(&args)
}

/// A restore moves its bytes through a dozen threads (ranged downloads, decompression, file
/// creation): with glibc's default of one allocator arena per thread, each keeps the buffers it
/// freed as resident memory, and a large restore's peak grew by tens of MiB. Two arenas are
/// enough for threads that mostly wait on the network or the file system.
fn few_allocator_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets a tunable of the allocator, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
