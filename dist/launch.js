'use strict';
// Starts the uv-nox-cache binary built for this machine: `node dist/main.js` runs
// `dist/<target triple>/uv-nox-cache restore` and exits with its status. No npm dependencies.
//
// When dist/ has no binary for this machine and `cargo` is on PATH, the action's own sources
// are built once (`cargo build --release --locked`) into the tool cache and reused afterwards.
//
// Two variables exist for tests and local runs only:
// - UV_NOX_CACHE_BINARY=<path> runs that binary instead of looking in dist/ (a fresh build);
// - UV_NOX_CACHE_PLATFORM=<platform>-<arch>[-<libc>] (e.g. `sunos-x64`, `linux-arm64-musl`)
//   pretends to be another machine.

const { spawn, spawnSync } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');

const NAME = 'uv-nox-cache';
const ROOT = path.join(__dirname, '..');

/** `<process.platform>-<process.arch>[-<libc>]` → the target triple folder under dist/. */
const PLATFORMS = {
  'linux-x64-gnu': 'x86_64-unknown-linux-gnu',
  'linux-x64-musl': 'x86_64-unknown-linux-musl',
  'linux-arm64-gnu': 'aarch64-unknown-linux-gnu',
  'linux-arm64-musl': 'aarch64-unknown-linux-musl',
  'darwin-x64': 'x86_64-apple-darwin',
  'darwin-arm64': 'aarch64-apple-darwin',
  'win32-x64': 'x86_64-pc-windows-msvc',
};

function isFile(p) {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/** musl when its loader is present, or when Node was not linked against glibc. */
function isMusl() {
  try {
    if (fs.readdirSync('/lib').some((f) => f.startsWith('ld-musl-'))) return true;
  } catch {
    // no /lib: fall through to Node's own report
  }
  if (!process.report) return false;
  process.report.excludeNetwork = true; // skips slow reverse-DNS lookups in getReport()
  return !process.report.getReport().header.glibcVersionRuntime;
}

/** This machine as `{ platform, arch, libc }` (libc only on Linux). */
function host(env = process.env) {
  if (env.UV_NOX_CACHE_PLATFORM) {
    const [platform, arch, libc] = env.UV_NOX_CACHE_PLATFORM.split('-');
    return { platform, arch, libc };
  }
  const { platform, arch } = process;
  return { platform, arch, libc: platform === 'linux' ? (isMusl() ? 'musl' : 'gnu') : undefined };
}

/** The target triple for `h`, or undefined when no binary is built for it. */
function triple(h) {
  return PLATFORMS[[h.platform, h.arch, h.libc].filter(Boolean).join('-')];
}

function exe(h) {
  return h.platform === 'win32' ? `${NAME}.exe` : NAME;
}

function fail(message) {
  console.log(`::error::${message}`);
  process.exit(1);
}

/** Full path of `cmd` on env.PATH, or undefined. */
function which(cmd, env) {
  const exts = process.platform === 'win32' ? (env.PATHEXT || '.EXE').split(';') : [''];
  for (const dir of (env.PATH || '').split(path.delimiter).filter(Boolean)) {
    for (const ext of exts) {
      if (isFile(path.join(dir, cmd + ext))) return path.join(dir, cmd + ext);
    }
  }
  return undefined;
}

/** Relative paths (with `/`) of every file under `dir`, recursively. */
function walk(dir) {
  const abs = path.join(ROOT, dir);
  if (!fs.existsSync(abs)) return [];
  return fs.readdirSync(abs, { withFileTypes: true }).flatMap((e) => {
    const rel = `${dir}/${e.name}`;
    return e.isDirectory() ? walk(rel) : [rel];
  });
}

/** `<crate version>-<hash of the sources>`: one build folder per distinct source tree. */
function buildId() {
  const cargoToml = fs.readFileSync(path.join(ROOT, 'Cargo.toml'), 'utf8');
  const version = (cargoToml.match(/^version\s*=\s*"([^"]+)"/m) || [])[1] || 'unknown';
  const hash = crypto.createHash('sha256');
  const files = ['Cargo.toml', 'Cargo.lock', 'build.rs', ...walk('build'), ...walk('src')];
  for (const rel of files.sort()) {
    if (!isFile(path.join(ROOT, rel))) continue;
    hash.update(`${rel}\0`).update(fs.readFileSync(path.join(ROOT, rel))).update('\0');
  }
  return `${version}-${hash.digest('hex').slice(0, 16)}`;
}

/** Builds the action's own sources with cargo, once per source tree; returns the binary. */
function buildFromSource(cargo, h, env) {
  const targetDir = path.join(env.RUNNER_TOOL_CACHE || os.tmpdir(), NAME, buildId());
  const bin = path.join(targetDir, 'release', exe(h));
  if (isFile(bin)) return bin;
  console.log(`::group::Building ${NAME} from source into ${targetDir}`);
  const built = spawnSync(cargo, ['build', '--release', '--locked'], {
    cwd: ROOT,
    stdio: 'inherit',
    env: { ...env, CARGO_TARGET_DIR: targetDir },
  });
  console.log('::endgroup::');
  if (built.status !== 0 || !isFile(bin)) {
    fail(`building ${NAME} from source with ${cargo} failed (see the log above)`);
  }
  return bin;
}

/** Finds or builds the binary for this machine. */
function resolveBinary(env = process.env) {
  if (env.UV_NOX_CACHE_BINARY) return env.UV_NOX_CACHE_BINARY;
  const h = host(env);
  const t = triple(h);
  const prebuilt = t && path.join(__dirname, t, exe(h));
  if (prebuilt && isFile(prebuilt)) return prebuilt;

  const cargo = which('cargo', env);
  if (cargo) return buildFromSource(cargo, h, env);

  const where = `${h.platform}/${h.arch}${h.libc ? ` (${h.libc})` : ''}`;
  // A supported platform whose binary is missing is a ref that carries only the Linux x64 build
  // (a branch or a commit between releases): release tags carry every platform's binary.
  const [why, fix] = t
    ? [
        `no prebuilt binary for ${where} in this copy of the action (dist/${t}/ is missing)`,
        'use a release tag (@vX.Y.Z, or its commit SHA), whose dist/ holds binaries for every ' +
          'supported platform',
      ]
    : [
        `no build for ${where} (builds exist for ${Object.keys(PLATFORMS).join(', ')})`,
        'run this job on a supported runner (Linux x64/arm64, macOS x64/arm64, Windows x64)',
      ];
  return fail(
    `${NAME}: ${why}, and cargo is not on PATH to build it from source. ` +
      `Fix: ${fix}, or install Rust (https://rustup.rs) in a step before this one so the ` +
      'launcher can build it.',
  );
}

/**
 * Runs `uv-nox-cache <command>` and exits with its status (killed by a signal → 1). A runner
 * cancels a step by sending SIGINT, then SIGTERM, to this process only: both are passed on to
 * the binary, which cleans up and dies of the signal, and then this process dies of it too.
 */
function run(command) {
  const bin = resolveBinary();
  const child = spawn(bin, [command], { stdio: 'inherit' });
  const forwarded = new Set();
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => {
      forwarded.add(signal);
      child.kill(signal);
    });
  }
  child.on('error', (e) => fail(`${NAME}: cannot start ${bin}: ${e.message}`));
  child.on('exit', (code, signal) => {
    if (signal && forwarded.has(signal)) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
      return;
    }
    process.exit(code === null ? 1 : code);
  });
}

module.exports = { PLATFORMS, host, triple, resolveBinary, run };
