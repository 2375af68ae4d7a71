//! `archive-bench`: times the archive code alone, without a backend or the action around it, for
//! the thread and compression measurements of docs/performance.md.
//!
//!   archive-bench pack <dir> <archive> [level] [threads]
//!                                                    pack <dir> (zstd; a level, or `auto`, the default),
//!                                                    with that many threads reading files ahead
//!   archive-bench unpack <archive> <dest> [threads]  unpack with that many file creation threads
//!
//! Prints one line: the wall time in seconds, then what was written. Not a test: nothing here
//! asserts a timing.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use uv_nox_cache::archive::{self, Compression, CompressionLevel, PackSpec, UnpackLimits};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let started = Instant::now();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["pack", dir, out, ref rest @ ..] => {
            pack(Path::new(dir), Path::new(out), rest.first().copied(), rest.get(1).copied())
        }
        ["unpack", input, dest, ref rest @ ..] => {
            unpack(Path::new(input), Path::new(dest), rest.first().copied())
        }
        _ => Err(
            "usage: archive-bench pack <dir> <archive> [level] [threads] | unpack <archive> <dest> [threads]"
                .into(),
        ),
    };
    match result {
        Ok(what) => {
            println!("{:.3} s  {what}", started.elapsed().as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("archive-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn pack(dir: &Path, out: &Path, level: Option<&str>, threads: Option<&str>) -> Result<String, String> {
    let skip = HashSet::new();
    let spec = PackSpec { root: dir, name: ".nox", skip: &skip, extra: &[], comment: None };
    let mut file = BufWriter::new(File::create(out).map_err(|e| e.to_string())?);
    let level = match level {
        None | Some("auto") => CompressionLevel::Auto,
        Some(n) => CompressionLevel::Fixed(n.parse().map_err(|_| format!("not a level: {n:?}"))?),
    };
    // A reader that always waits: what a fast streaming upload looks like to the packer.
    let started = Instant::now();
    let waited = || started.elapsed();
    let stats = match threads {
        Some(n) => {
            let n = n.parse().map_err(|_| format!("threads must be a number, not {n:?}"))?;
            archive::pack_with_threads(&spec, Compression::Zstd, level, &mut file, &waited, n)
        }
        None => archive::pack_at(&spec, Compression::Zstd, level, &mut file, &waited),
    }
    .map_err(|e| e.to_string())?;
    drop(file);
    let size = std::fs::metadata(out).map_err(|e| e.to_string())?.len();
    Ok(format!("{} entries, {} bytes in, {size} bytes out", stats.entries, stats.bytes))
}

fn unpack(input: &Path, dest: &Path, threads: Option<&str>) -> Result<String, String> {
    let limits = UnpackLimits { max_bytes: u64::MAX, max_entries: u64::MAX, max_ratio: 0, ratio_floor: 0 };
    let mut file = BufReader::new(File::open(input).map_err(|e| e.to_string())?);
    let stats = match threads {
        Some(n) => {
            let n = n.parse().map_err(|_| format!("threads must be a number, not {n:?}"))?;
            archive::unpack_with_threads(&mut file, dest, &limits, n)
        }
        None => archive::unpack(&mut file, dest, &limits),
    }
    .map_err(|e| e.to_string())?;
    Ok(format!("{} entries, {} bytes", stats.entries, stats.bytes))
}
