#!/usr/bin/env python3
"""The helper of scripts/bench (run that instead): data sets, runs, medians, the table.

Each measured step is a fresh "runner step": fresh RUNNER_TEMP, GITHUB_OUTPUT/STATE/ENV files,
the action through its Node launcher (`node dist/main.js`, `node dist/post.js`) with
UV_NOX_CACHE_BINARY pointing at a tiny wrapper that runs the release binary under
`/usr/bin/time` (peak RSS and CPU of the binary alone), and @actions/cache 6.3.0 driven by
tests/interop/actions-cache.js (system tar + zstd). Wall time is measured around the whole
command (node included), CPU time (user+sys) of the command and all its children with
/usr/bin/time. Ours and the official toolkit alternate; the cache server is restarted for each
protocol and run, so it holds only that run's entries.
"""

import argparse
import contextlib
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

TIME_FMT = "%e %U %S %M"


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


# ---------------------------------------------------------------------------------------------
# Data sets


def make_set_a(bench: Path, root: Path, tools: Path) -> dict:
    """examples/demo's uv cache and .nox after a cold `nox --reuse-venv=yes`."""
    base = bench / "a"
    ws = base / "ws"
    uv_cache = base / "uv-cache"
    stamp = base / "generated"
    if not stamp.exists():
        print("== data set A: cold nox run of examples/demo", file=sys.stderr)
        shutil.rmtree(base, ignore_errors=True)
        shutil.copytree(root / "examples/demo", ws, ignore=shutil.ignore_patterns(".nox", "__pycache__"))
        env = dict(os.environ, PATH=f"{tools}/bin:{os.environ['PATH']}", UV_CACHE_DIR=str(uv_cache))
        sh([str(tools / "bin/nox"), "--reuse-venv=yes"], cwd=ws, env=env, stdout=subprocess.DEVNULL)
        stamp.touch()
    return {
        "name": "A (demo uv cache + .nox)",
        "base": base,
        "ws": ws,
        "project": root / "examples/demo",
        "dirs": [uv_cache, ws / ".nox"],
        "inputs": {"INPUT_TARGETS": "uv nox", "INPUT_UV-CACHE-DIR": str(uv_cache)},
        "extra_env": {"UV_CACHE_DIR": str(uv_cache)},
        "official_paths": [str(uv_cache), ".nox"],
    }


# Data set C: a scientific stack and a test stack, pinned to what `uv pip compile` chose for
# Python 3.11 on manylinux x86_64 on 2026-12-02 (each has a cp311 manylinux wheel or is pure).
SET_C_DEPENDENCIES = ["numpy==2.4.6", "scipy==1.17.1", "pandas==3.1.1", "matplotlib==3.11.2", "scikit-learn==1.9.1"]
SET_C_TEST = ["pytest==9.2.0", "hypothesis==6.170.17", "coverage==7.17.5"]
SET_C_CONSTRAINTS = [  # what the above pull in
    "cloudpickle==3.1.3", "contourpy==1.3.3", "cycler==0.12.1", "fonttools==4.68.0", "iniconfig==2.3.1",
    "joblib==1.6.0", "kiwisolver==1.5.1", "narwhals==2.29.0", "packaging==26.4", "pillow==13.0.0",
    "pluggy==1.7.0", "pygments==2.21.0", "pyparsing==3.3.3", "python-dateutil==4.0.0",
    "sortedcontainers==2.4.0", "threadpoolctl==3.8.0", "tzdata==2026.6",
]
SET_C_BUILD = ["hatchling==1.33.0"]
SET_C_BUILD_CONSTRAINTS = ["pathspec==1.1.1", "tomlkit==0.15.2", "trove-classifiers==2026.9.21.13"]

SET_C_PACKAGE = '''"""Data set C's package: one small function that touches every library of the stack."""

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402
from sklearn.linear_model import LinearRegression  # noqa: E402


def fit_slope(xs, ys) -> dict:
    """The slope of ys over xs by scikit-learn and by scipy, their mean, the size of a plot."""
    frame = pd.DataFrame({"x": xs, "y": ys})
    model = LinearRegression().fit(frame[["x"]].to_numpy(), frame["y"].to_numpy())
    fig, ax = plt.subplots()
    ax.plot(frame["x"], frame["y"], "o")
    png = io.BytesIO()
    fig.savefig(png, format="png")
    plt.close(fig)
    return {
        "sklearn": float(model.coef_[0]),
        "scipy": float(stats.linregress(frame["x"], frame["y"]).slope),
        "mean": float(np.mean(frame["y"])),
        "png_bytes": png.tell(),
    }
'''

SET_C_TEST_FILE = '''from hypothesis import given, settings
from hypothesis import strategies as st

from bench_stack import fit_slope


@settings(max_examples=20, deadline=None)
@given(st.floats(-100, 100), st.floats(-100, 100))
def test_slope_of_a_line(slope, intercept):
    xs = list(range(10))
    fit = fit_slope(xs, [slope * x + intercept for x in xs])
    assert abs(fit["sklearn"] - slope) < 1e-6
    assert abs(fit["scipy"] - slope) < 1e-6
    assert fit["png_bytes"] > 0
'''

SET_C_NOXFILE = '''"""Data set C's session: a uv env filled from uv.lock, as examples/demo's is."""

import nox

nox.options.reuse_venv = "yes"
nox.options.sessions = ["tests"]


@nox.session(venv_backend="uv")
def tests(session: nox.Session) -> None:
    session.run_install("uv", "sync", "--locked", "--group=test")
    session.run("coverage", "run", "-m", "pytest", *session.posargs)
'''


def toml_list(items) -> str:
    """A TOML array of strings, one a line, for the generated pyproject.toml."""
    return "[\n" + "".join(f'    "{item}",\n' for item in items) + "]"


def write_set_c_project(project: Path):
    """The project of data set C: a pyproject.toml that pins every version (build ones too), a
    package, a test and a noxfile. Its uv.lock is made at generation time (`make_set_c`)."""
    (project / "src/bench_stack").mkdir(parents=True)
    (project / "tests").mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "bench-stack"\nversion = "0.1.0"\nrequires-python = "==3.11.*"\n'
        f"dependencies = {toml_list(SET_C_DEPENDENCIES)}\n\n"
        f"[dependency-groups]\ntest = {toml_list(SET_C_TEST)}\n\n"
        f'[build-system]\nrequires = {toml_list(SET_C_BUILD)}\nbuild-backend = "hatchling.build"\n\n'
        f"[tool.uv]\nconstraint-dependencies = {toml_list(SET_C_CONSTRAINTS)}\n"
        f"build-constraint-dependencies = {toml_list(SET_C_BUILD_CONSTRAINTS)}\n\n"
        '[tool.hatch.build.targets.wheel]\npackages = ["src/bench_stack"]\n'
    )
    (project / "src/bench_stack/__init__.py").write_text(SET_C_PACKAGE)
    (project / "tests/test_stack.py").write_text(SET_C_TEST_FILE)
    (project / "noxfile.py").write_text(SET_C_NOXFILE)


def make_set_c(bench: Path, tools: Path) -> dict:
    """Real data: the uv cache and .nox of numpy, scipy, pandas, matplotlib, scikit-learn,
    pytest, hypothesis and coverage, installed from PyPI by a cold `nox --reuse-venv=yes` of a
    generated project, once (nothing of it is in the repository)."""
    base = bench / "c"
    project = base / "project"
    ws = base / "ws"
    uv_cache = base / "uv-cache"
    stamp = base / "generated"
    if not stamp.exists():
        print("== data set C: uv lock and a cold nox run of the scientific stack (from PyPI)", file=sys.stderr)
        shutil.rmtree(base, ignore_errors=True)
        write_set_c_project(project)
        env = dict(os.environ, PATH=f"{tools}/bin:{os.environ['PATH']}", MPLCONFIGDIR=str(base / "mplconfig"))
        # The .nox a CI job saves after its tests holds the bytecode of what they imported.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        # The lock's downloads go to a cache of their own, so that the data set's uv cache holds
        # only what the nox run put there, as on a runner that runs `uv sync --locked`.
        sh([str(tools / "bin/uv"), "lock", "--quiet"], cwd=project, env=dict(env, UV_CACHE_DIR=str(base / "lock-cache")))
        shutil.rmtree(base / "lock-cache")
        shutil.copytree(project, ws)
        env["UV_CACHE_DIR"] = str(uv_cache)
        sh([str(tools / "bin/nox"), "--reuse-venv=yes"], cwd=ws, env=env, stdout=subprocess.DEVNULL)
        stamp.touch()
    return {
        "name": "C (scientific stack uv cache + .nox)",
        "base": base,
        "ws": ws,
        "project": project,
        "dirs": [uv_cache, ws / ".nox"],
        "inputs": {"INPUT_TARGETS": "uv nox", "INPUT_UV-CACHE-DIR": str(uv_cache)},
        "extra_env": {"UV_CACHE_DIR": str(uv_cache)},
        "official_paths": [str(uv_cache), ".nox"],
    }


WORDS = (
    "self def return import from class if else elif for while in not and or None True False "
    "try except finally with as yield lambda raise assert pass break continue global nonlocal "
    "value result args kwargs name path data config request response item key index count "
    "buffer stream parser token node module package version self._cache self._lock os.path "
    "typing.Optional[str] List[int] Dict[str, Any] isinstance len range enumerate zip sorted"
).split()


def _line_pool(rng: random.Random, n: int) -> list:
    pool = []
    for _ in range(n):
        indent = "    " * rng.randint(0, 3)
        words = rng.choices(WORDS, k=rng.randint(2, 10))
        kind = rng.random()
        if kind < 0.15:
            line = f"{indent}def {words[0]}_{rng.randint(0, 999)}({', '.join(words[1:4])}):"
        elif kind < 0.25:
            line = f'{indent}"""{" ".join(words).capitalize()}."""'
        elif kind < 0.35:
            line = f"{indent}# {' '.join(words)}"
        else:
            line = f"{indent}{words[0]} = {'.'.join(words[1:3])}({', '.join(words[3:])})"
        pool.append(line + "\n")
    return pool


def _system_python_version() -> list:
    """major, minor, micro of /usr/bin/python3, which the generated envs' bin/python links to."""
    return subprocess.run(
        ["/usr/bin/python3", "-c", "import sys; print(*sys.version_info[:3])"],
        check=True, capture_output=True, text=True,
    ).stdout.split()


def _new_venv(env: Path, ver: list) -> Path:
    """An env that passes the action's post-restore validation (bin/python is /usr/bin/python3
    and pyvenv.cfg carries its version); returns its site-packages directory."""
    (env / "bin").mkdir(parents=True)
    os.symlink("/usr/bin/python3", env / "bin/python")
    (env / "pyvenv.cfg").write_text(
        f"home = /usr/bin\ninclude-system-site-packages = false\nversion = {'.'.join(ver)}\n"
    )
    return env / f"lib/python{ver[0]}.{ver[1]}/site-packages"


def _write_modules(site: Path, count: int, rng, pool, mean_lines: int, width: int):
    """`count` `.py`-like files of about `mean_lines` lines from `pool`, 25 a package."""
    for i in range(count):
        pkg = site / f"pkg{i // 250:0{width}d}" / f"sub{(i // 25) % 10}"
        if i % 25 == 0:
            pkg.mkdir(parents=True)
        lines = rng.choices(pool, k=int(rng.expovariate(1 / mean_lines)) + 5)
        (pkg / f"mod{i % 25:02d}.py").write_text("".join(lines))


def make_set_b(bench: Path, quick: bool) -> dict:
    """A venv-like tree: envs with pyvenv.cfg and bin/python, then site-packages full of
    `.py`-like text files (compressible) and a few `.so`-like random files (incompressible)."""
    scale = "quick" if quick else "full"
    base = bench / f"b-{scale}"
    ws = base / "ws"
    envdir = ws / ".nox"
    stamp = base / "generated"
    # full: 4 envs x 25 000 text files (~6.5 KB mean) + 4 x 12 x 10 MiB random ≈ 1.13 GB, 100k files
    envs, files_per_env, sos_per_env, so_size = (4, 2500, 12, 1 << 20) if quick else (4, 25000, 12, 10 << 20)
    if not stamp.exists():
        print(f"== data set B ({scale}): generating {envdir}", file=sys.stderr)
        shutil.rmtree(base, ignore_errors=True)
        rng = random.Random(20261123)
        ver = _system_python_version()
        pool = _line_pool(rng, 30000)
        for e in range(envs):
            env = envdir / f"tests-3-{e}"
            site = _new_venv(env, ver)
            os.symlink("python", env / "bin/python3")
            _write_modules(site, files_per_env, rng, pool, mean_lines=160, width=3)
            for s in range(sos_per_env):
                lib = site / f"pkg{s % (files_per_env // 250):03d}" / f"_native{s}.cpython-311-x86_64-linux-gnu.so"
                lib.write_bytes(rng.randbytes(so_size))
        stamp.touch()
    return {
        "name": f"B (synthetic, {scale})",
        "base": base,
        "ws": ws,
        "dirs": [envdir],
        "inputs": {"INPUT_TARGETS": "nox", "INPUT_NOX-ENVDIR": ".nox", "INPUT_EVICT-PROJECT": "false"},
        "extra_env": {},
        "official_paths": [".nox"],
    }


# --scaling: how the cost grows with the number of files and with the bytes
SCALING_FILES = (1_000, 10_000, 100_000, 300_000)
SCALING_BYTES = (50 << 20, 500 << 20, 2 << 30)


def make_scaling_set(bench: Path, files: int = 0, size: int = 0) -> dict:
    """One venv-like env: `files` small `.py`-like files of 4 KiB on average (the files series),
    or `size` bytes in files of 8 MiB, half text and half random (the bytes series)."""
    label = f"{files}-files" if files else f"{size >> 20}-MiB"
    base = bench / "scaling" / label
    ws = base / "ws"
    envdir = ws / ".nox"
    stamp = base / "generated"
    if not stamp.exists():
        print(f"== scaling set {label}: generating {envdir}", file=sys.stderr)
        shutil.rmtree(base, ignore_errors=True)
        rng = random.Random(20261204)
        site = _new_venv(envdir / "tests", _system_python_version())
        pool = _line_pool(rng, 30000)
        _write_modules(site, files, rng, pool, mean_lines=100, width=4)
        chunk = 8 << 20
        for i in range(size // chunk):
            lib = site / f"big{i // 16:03d}"
            lib.mkdir(parents=True, exist_ok=True)
            if i % 2:
                (lib / f"_native{i}.so").write_bytes(rng.randbytes(chunk))
            else:
                text = "".join(rng.choices(pool, k=chunk // 40)).encode()[:chunk]
                (lib / f"data{i}.py").write_bytes(text)
        stamp.touch()
    return {
        "name": f"scaling {label}",
        "files": files,
        "size": size,
        "base": base,
        "ws": ws,
        "dirs": [envdir],
        "inputs": {"INPUT_TARGETS": "nox", "INPUT_NOX-ENVDIR": ".nox", "INPUT_EVICT-PROJECT": "false"},
        "extra_env": {},
        "official_paths": [".nox"],
    }


def user_args() -> str:
    """The options given to scripts/bench (without the ones it adds itself)."""
    added = {"--root", "--bin-dir", "--object-store", "--plot-python"}
    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg in added:
            skip = True
        else:
            args.append(arg)
    return " ".join(args)


def run_scaling(b: "Bench", files_points, bytes_points, plot_python: str, out_png: Path):
    """Saves and restores each scaling set with ours (v2), @actions/cache (v2) and the
    baseline; prints the table, writes the points as JSON next to the PNG's source data and
    draws the PNG with matplotlib (in `plot_python`, the bench's tools venv)."""
    import json
    points = []
    load_before = os.getloadavg()
    for ds in [make_scaling_set(b.bench, files=n) for n in files_points] + \
              [make_scaling_set(b.bench, size=n) for n in bytes_points]:
        b.rss.pop(ds["name"], None)
        b.run_set(ds)
        size, entries = tree_stats(ds["dirs"])
        point = {"name": ds["name"], "series": "files" if ds["files"] else "bytes",
                 "bytes": size, "entries": entries, "rss_mib": b.rss.get(ds["name"], 0) / 1024}
        for op in ("save", "restore"):
            for who, key in (("ours", "ours-v2"), ("official", "official-v2"), ("baseline", "baseline")):
                wall, cpu = b.med(ds["name"], op, key)
                point[f"{who}_{op}"] = wall
                point[f"{who}_{op}_cpu"] = cpu
        points.append(point)
        # Each set's data can go once measured: the largest are gigabytes.
    load_after = os.getloadavg()
    data = b.bench / "scaling.json"
    data.write_text(json.dumps({"points": points, "load": [load_before[0], load_after[0]]}, indent=1))

    def fmt(x):
        return "–" if x is None else f"{x:.2f}"

    print()
    print(f"`scripts/bench {user_args()}`: {b.runs} run(s), medians; wall s, v2 on "
          f"the local test server. Load average before {load_before[0]:.1f}, after {load_after[0]:.1f}; "
          f"{os.cpu_count()} CPUs.")
    print()
    print("| set | bytes | files+dirs | ours save | @actions/cache save | `tar\|zstd` save | ours restore "
          "| @actions/cache restore | `zstd -d\|tar` restore | our peak RSS |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for p in points:
        print(f"| {p['name']} | {p['bytes']:,} | {p['entries']:,} | {fmt(p['ours_save'])} | "
              f"{fmt(p['official_save'])} | {fmt(p['baseline_save'])} | {fmt(p['ours_restore'])} | "
              f"{fmt(p['official_restore'])} | {fmt(p['baseline_restore'])} | {p['rss_mib']:.0f} MiB |")
    sh([plot_python, str(b.root / "scripts/bench_plot.py"), str(data), str(out_png)])
    print(f"\nplot: {out_png.relative_to(b.root)}")


def tree_stats(dirs) -> tuple:
    size = files = 0
    for d in dirs:
        for dirpath, dirnames, filenames in os.walk(d):
            for f in filenames:
                st = os.lstat(os.path.join(dirpath, f))
                size += st.st_size
                files += 1
            files += len(dirnames)
    return size, files


def linked_bytes(dirs) -> int:
    """Bytes of the files that are hard links between two of dirs (uv links the files of its
    cache into the envs it fills): tree_stats counts them in each dir, and so does an archive
    per target."""
    where, size = {}, {}  # (dev, inode) -> indexes of the dirs holding it; -> its size
    for n, d in enumerate(dirs):
        for dirpath, _, filenames in os.walk(d):
            for f in filenames:
                st = os.lstat(os.path.join(dirpath, f))
                inode = (st.st_dev, st.st_ino)
                where.setdefault(inode, set()).add(n)
                size[inode] = st.st_size
    return sum(size[inode] for inode, ns in where.items() if len(ns) > 1)


# ---------------------------------------------------------------------------------------------
# Running things


class Server:
    """A cache server on 127.0.0.1 that prints ACTIONS_CACHE_URL, ACTIONS_RESULTS_URL and
    ACTIONS_RUNTIME_TOKEN lines: the test server, or a runner's own (tests/runner-cache-server)."""

    def __init__(self, binary: Path, *extra: str):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        self.proc = subprocess.Popen([str(binary), "--port", str(port), *extra], stdout=subprocess.PIPE, text=True)
        self.env = {}
        for _ in range(3):
            k, v = self.proc.stdout.readline().strip().split("=", 1)
            self.env[k] = v

    def stop(self):
        self.proc.kill()
        self.proc.wait()


# The runners' own v1 cache servers (built by scripts/runners), by backend name.
RUNNER_SERVERS = {"v1-act": "act", "v1-gitea": "gitea-act"}


def runner_server_binaries(root: Path) -> dict:
    # Not `check`: without the Forgejo runner's and act_runner's sources it exits 1 after
    # building act's and Gitea's act's servers, which are all this needs.
    out = subprocess.run([str(root / "scripts/runners")], check=False, capture_output=True, text=True).stdout
    paths = {line.split()[0]: Path(line.split()[2]) for line in out.splitlines()}
    return {backend: paths[f"{runner}-cache-server"] for backend, runner in RUNNER_SERVERS.items()}


class ObjectStore:
    """versitygw (scripts/object-store) on a free port of 127.0.0.1, one empty bucket."""

    BUCKET, ACCESS, SECRET = "bench-cache", "benchaccesskey", "bench-secret-key-0123"

    def __init__(self, binary: Path, root: Path):
        shutil.rmtree(root, ignore_errors=True)
        (root / self.BUCKET).mkdir(parents=True)
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.proc = subprocess.Popen(
            [str(binary), "--access", self.ACCESS, "--secret", self.SECRET, "--port", f"127.0.0.1:{self.port}",
             "posix", str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            sys.exit("versitygw did not start")
        self.env = {
            "UV_NOX_CACHE_S3_BUCKET": self.BUCKET, "UV_NOX_CACHE_S3_ENDPOINT": f"http://127.0.0.1:{self.port}",
            "AWS_ACCESS_KEY_ID": self.ACCESS, "AWS_SECRET_ACCESS_KEY": self.SECRET,
            "GITHUB_REPOSITORY": "bench/bench",
        }

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def timed(cmd, env, cwd, log: Path):
    """Runs cmd under /usr/bin/time; returns (wall s, cpu s)."""
    tfile = log.with_suffix(".time")
    start = time.perf_counter()
    with open(log, "w") as out:
        r = subprocess.run(
            ["/usr/bin/time", "-f", TIME_FMT, "-o", str(tfile)] + cmd,
            env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
        )
    wall = time.perf_counter() - start
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}; see {log}")
    _, user, system, _ = tfile.read_text().split()[-4:]
    return wall, float(user) + float(system)


def binary_rss(tfile: Path) -> int:
    """Peak RSS (KiB) over the binary's runs logged in tfile (one line per run)."""
    rss = 0
    for line in tfile.read_text().splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3].isdigit():
            rss = max(rss, int(parts[3]))
    return rss


def read_runner_file(path: Path) -> dict:
    """`name<<delim\\nvalue\\ndelim` records of GITHUB_OUTPUT / GITHUB_STATE."""
    out, lines, i = {}, path.read_text().splitlines(), 0
    while i < len(lines):
        if "<<" in lines[i]:
            name, delim = lines[i].split("<<", 1)
            j = lines.index(delim, i + 1)
            out[name] = "\n".join(lines[i + 1:j])
            i = j + 1
        else:
            i += 1
    return out


def can_mount_loop(bench: Path) -> bool:
    """Whether a fresh ext4 file system on a loop device can be made and mounted here."""
    if os.geteuid() != 0 or shutil.which("mkfs.ext4") is None:
        return False
    image, mnt = bench / "probe-fs.img", bench / "probe-mnt"
    mnt.mkdir(exist_ok=True)
    try:
        with open(image, "wb") as f:
            f.truncate(64 << 20)
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        if subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], **quiet).returncode != 0:
            return False
        if subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], **quiet).returncode != 0:
            return False
        subprocess.run(["umount", str(mnt)], **quiet)
        return True
    finally:
        image.unlink(missing_ok=True)
        mnt.rmdir()


# The work (installs, tests) the bench's jobs pretend to have done between restore and save.
JOB_WORK_S = 600


class Bench:
    def __init__(self, args):
        self.args = args
        self.root = Path(args.root)
        self.bench = self.root / "target/bench"
        self.bin_dir = Path(args.bin_dir)
        self.runs = args.runs
        self.who = args.who.split(",")
        self.backends = args.backends.split(",")
        if any(b in RUNNER_SERVERS for b in self.backends):
            self.runner_servers = runner_server_binaries(self.root)
        self.object_store = Path(args.object_store) if args.object_store else None
        self.npm = self.bench / "npm"
        # Per invocation, so that two benches never delete each other's steps.
        self.steps = self.bench / f"steps-{os.getpid()}"
        self.wrapper = self.bench / "binary-under-time.sh"
        self.wrapper.write_text(
            # bash, not sh: dash drops variables whose names hold a hyphen (INPUT_KEY-SUFFIX).
            "#!/bin/bash\nexec /usr/bin/time -f '%e %U %S %M' -a -o \"$BENCH_BINARY_TIMES\" "
            f"{self.bin_dir / 'uv-nox-cache'} \"$@\"\n"
        )
        self.wrapper.chmod(0o755)
        self.results = {}  # (set, op, who) -> list of (wall, cpu)
        self.rss = {}  # set -> KiB
        self.rss_steps = []  # (set, step, KiB)
        self.our_archive_size = self.archive_size = 0
        self.fresh_fs = not args.no_fresh_fs and can_mount_loop(self.bench)
        # Room for the restored tree plus @actions/cache's downloaded archive (sparse file).
        self.fresh_fs_bytes = 6 << 30

    def record(self, set_name, op, who, value):
        self.results.setdefault((set_name, op, who), []).append(value)

    def base_env(self, ds, step_dir: Path, temp=None):
        step_dir.mkdir(parents=True, exist_ok=True)
        if temp is None:
            temp = step_dir / "temp"
            temp.mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": f"{self.bench / 'tools/bin'}:/usr/bin:/bin",
            "HOME": str(self.bench / "home"),
            "GITHUB_WORKSPACE": str(ds["ws"]),
            "RUNNER_TEMP": str(temp),
            "RUNNER_OS": "Linux",
            "RUNNER_ARCH": "X64",
            "GITHUB_EVENT_NAME": "push",
            "GITHUB_REF": "refs/heads/main",
            "GITHUB_ACTIONS": "true",
        }
        env.update(ds["extra_env"])
        return env

    # -- ours --------------------------------------------------------------------------------

    def ours_step(self, ds, step, backend_env, suffix, step_dir: Path, state=None, temp=None):
        env = self.base_env(ds, step_dir, temp)
        env.update(backend_env)
        inputs = {
            "INPUT_TARGETS": "uv nox", "INPUT_WORKING-DIRECTORY": ".", "INPUT_RESTORE-KEYS": "auto",
            "INPUT_SAVE": "auto", "INPUT_LOOKUP-ONLY": "false", "INPUT_FAIL-ON-CACHE-MISS": "false",
            "INPUT_UV-PRUNE": "none", "INPUT_NOX-ENVDIR": ".nox", "INPUT_EVICT-PROJECT": "true",
            "INPUT_BACKEND": "auto", "INPUT_COMPRESSION": "zstd", "INPUT_TIMEOUT": "3600",
            "INPUT_KEY-SUFFIX": suffix,
        }
        inputs.update(ds["inputs"])
        env.update(inputs)
        for name in ("output", "state", "env", "summary"):
            (step_dir / name).write_text("")
        env.update(
            GITHUB_OUTPUT=str(step_dir / "output"), GITHUB_STATE=str(step_dir / "state"),
            GITHUB_ENV=str(step_dir / "env"), GITHUB_STEP_SUMMARY=str(step_dir / "summary"),
            UV_NOX_CACHE_BINARY=str(self.wrapper), BENCH_BINARY_TIMES=str(step_dir / "binary.time"),
        )
        if self.args.tuning:
            env["UV_NOX_CACHE_TEST_TUNING"] = self.args.tuning
        for k, v in (state or {}).items():
            env[f"STATE_{k}"] = v
        script = "main.js" if step == "restore" else "post.js"
        result = timed(["node", str(self.root / "dist" / script)], env, ds["ws"], step_dir / f"{step}.log")
        return result, step_dir

    def ours(self, ds, backend_env, tag, i):
        suffix = f"bench-{tag}-{i}-{time.time_ns()}"
        d = self.steps / f"ours-{tag}-{i}"
        shutil.rmtree(d, ignore_errors=True)
        # The main step first (a miss), untimed, for the state the post step gets.
        _, main_dir = self.ours_step(ds, "restore", backend_env, suffix, d / "main")
        state = read_runner_file(main_dir / "state")
        # The bench runs no installs or tests between the steps, so the entry would record a
        # job's work of about nothing, and a restore longer than 10 s would be given up as
        # costing more than the work it saves (docs/reliability.md): the job is made to look
        # as if its work took JOB_WORK_S, as a job that installs such trees does.
        for name in ("RESTORE_STARTED", "RESTORE_ENDED"):
            if state.get(name, "").isdigit():
                state[name] = str(int(state[name]) - JOB_WORK_S * 1000)
        (save, save_dir) = self.ours_step(ds, "save", backend_env, suffix, d / "post", state)
        log = (save_dir / "save.log").read_text()
        if any(bad in log for bad in ("save failed", "pack failed", "another job", "nothing to save")):
            sys.exit(f"our save did not save; see {save_dir / 'save.log'}")
        with self.fresh(ds) as temp:
            (restore, restore_dir) = self.ours_step(ds, "restore", backend_env, suffix, d / "restore", temp=temp)
            out = read_runner_file(restore_dir / "output")
            if out.get("cache-hit") != "true":
                sys.exit(f"our restore missed ({out}); see {restore_dir / 'restore.log'}")
        save_rss, restore_rss = binary_rss(save_dir / "binary.time"), binary_rss(restore_dir / "binary.time")
        self.rss_steps.append((ds["name"], f"{tag} save", save_rss))
        self.rss_steps.append((ds["name"], f"{tag} restore", restore_rss))
        rss = max(save_rss, restore_rss)
        self.rss[ds["name"]] = max(self.rss.get(ds["name"], 0), rss)
        return save, restore

    # -- @actions/cache ----------------------------------------------------------------------

    def official(self, ds, backend_env, tag, i):
        key = f"official-{tag}-{i}-{time.time_ns()}"
        d = self.steps / f"official-{tag}-{i}"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        env = self.base_env(ds, d)
        env.update(backend_env)
        env["ACTIONS_CACHE_MODULE"] = str(self.npm / "node_modules/@actions/cache/lib/cache.js")
        driver = str(self.root / "tests/interop/actions-cache.js")
        # One actions/cache call per directory, as two `actions/cache` steps would.
        script = " && ".join(
            f"node {driver} {{cmd}} '{p}' '{key}-{n}'" for n, p in enumerate(ds["official_paths"])
        )
        save = timed(["sh", "-c", script.format(cmd="save")], env, ds["ws"], d / "save.log")
        if (d / "save.log").read_text().count("RESULT saved") != len(ds["official_paths"]):
            sys.exit(f"@actions/cache did not save; see {d / 'save.log'}")
        with self.fresh(ds) as temp:
            env["RUNNER_TEMP"] = str(temp)
            restore = timed(["sh", "-c", script.format(cmd="restore")], env, ds["ws"], d / "restore.log")
            if (d / "restore.log").read_text().count("RESULT restored") != len(ds["official_paths"]):
                sys.exit(f"@actions/cache did not restore; see {d / 'restore.log'}")
        return save, restore

    # -- tar | zstd --------------------------------------------------------------------------

    def baseline(self, ds, i):
        """One archive per directory, as the action and two actions/cache steps make (in one
        archive, files hard-linked between the uv cache and .nox would be stored once)."""
        d = self.steps / f"baseline-{i}"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        env = dict(os.environ)
        names = [os.path.relpath(p, ds["ws"]) for p in ds["dirs"]]
        pack = " && ".join(
            f"tar -cf - -C '{ds['ws']}' '{name}' | zstd -T0 -q -o '{d}/{n}.tar.zst'" for n, name in enumerate(names)
        )
        save = timed(["sh", "-c", pack], env, ds["ws"], d / "save.log")
        self.archive_size = sum(f.stat().st_size for f in d.glob("*.tar.zst"))
        with self.fresh(ds) as temp:
            out = temp / "baseline-out"
            unpack = " && ".join(
                f"mkdir -p '{out}/{n}' && zstd -d -c -q '{d}/{n}.tar.zst' | tar -xf - -C '{out}/{n}'"
                for n in range(len(names))
            )
            restore = timed(["sh", "-c", unpack], env, ds["ws"], d / "restore.log")
        return save, restore

    class _Fresh:
        """The data set's base directory as a fresh runner has it for a restore: the workspace
        without the saved directories, on a new, empty ext4 file system (a loop device mounted
        over the base, so the data set underneath stays as it is), with the step's RUNNER_TEMP
        on it too. Every tool restores onto a file system in the same state: on a well-used one
        ext4 spends most of a restore of 100k files searching for free inodes, more after each
        deletion, which is not what a runner's new disk does. Where loop devices cannot be
        mounted (not root, no loop module), the saved directories are moved aside instead."""

        def __init__(self, bench, ds):
            self.bench, self.ds = bench, ds
            self.image = bench.bench / "fresh-fs.img"
            self.base = Path(ds["base"])

        def __enter__(self):
            ds = self.ds
            if self.bench.fresh_fs:
                skeleton = self.bench.skeleton(ds)
                self.image.unlink(missing_ok=True)
                with open(self.image, "wb") as f:
                    f.truncate(self.bench.fresh_fs_bytes)
                sh(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", str(self.image)])
                sh(["mount", "-o", "loop", str(self.image), str(self.base)])
                try:
                    shutil.copytree(skeleton, self.base, symlinks=True, dirs_exist_ok=True)
                except BaseException:
                    sh(["umount", str(self.base)])
                    raise
            else:
                for p in ds["dirs"]:
                    os.rename(p, str(p) + ".orig")
            temp = self.base / "runner-temp"
            temp.mkdir(exist_ok=True)
            return temp

        def __exit__(self, *exc):
            if self.bench.fresh_fs:
                sh(["umount", str(self.base)])
                self.image.unlink(missing_ok=True)
                return
            shutil.rmtree(self.base / "runner-temp", ignore_errors=True)
            for p in self.ds["dirs"]:
                if os.path.lexists(p):
                    shutil.rmtree(p)
                os.rename(str(p) + ".orig", p)

    def fresh(self, ds):
        """A context for one restore: yields the RUNNER_TEMP to use (see `_Fresh`)."""
        return self._Fresh(self, ds)

    def skeleton(self, ds) -> Path:
        """A copy of the data set's base without its saved directories, made once."""
        path = self.bench / "skeletons" / Path(ds["base"]).name
        if not path.exists():
            saved = {Path(p).resolve() for p in ds["dirs"]}
            tmp = path.with_suffix(".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(
                ds["base"], tmp, symlinks=True,
                ignore=lambda d, names: [n for n in names if (Path(d) / n).resolve() in saved],
            )
            tmp.rename(path)
        return path

    def both_clients(self, ds, env, proto, i, flip):
        """Ours and @actions/cache against the same server, in alternating order across runs."""
        order = [("official", self.official), ("ours", self.ours)]
        for who, fn in (order if flip else order[::-1]):
            if who not in self.who:
                continue
            save, restore = fn(ds, env, proto, i)
            self.record(ds["name"], "save", f"{who}-{proto}", save)
            self.record(ds["name"], "restore", f"{who}-{proto}", restore)

    def run_set(self, ds):
        name = ds["name"]
        for i in range(self.runs):
            print(f"== {name}: run {i + 1}/{self.runs}", file=sys.stderr)
            flip = i % 2 == 1
            for proto in [p for p in ("v2", "v1") if p in self.backends]:
                server = Server(self.bin_dir / "examples/cache-server")
                try:
                    env = {"ACTIONS_RUNTIME_TOKEN": server.env["ACTIONS_RUNTIME_TOKEN"],
                           "ACTIONS_CACHE_URL": server.env["ACTIONS_CACHE_URL"]}
                    if proto == "v2":
                        env["ACTIONS_RESULTS_URL"] = server.env["ACTIONS_RESULTS_URL"]
                        env["ACTIONS_CACHE_SERVICE_V2"] = "true"
                    self.both_clients(ds, env, proto, i, flip)
                finally:
                    server.stop()
            for proto in [p for p in RUNNER_SERVERS if p in self.backends]:
                data = self.bench / f"runner-server-{os.getpid()}"
                shutil.rmtree(data, ignore_errors=True)
                server = Server(self.runner_servers[proto], "--dir", str(data))
                try:
                    # ACT=true, as these runners set it for every job: our save reserves without
                    # a size and uploads while packing, which their servers accept.
                    env = {"ACTIONS_RUNTIME_TOKEN": server.env["ACTIONS_RUNTIME_TOKEN"],
                           "ACTIONS_CACHE_URL": server.env["ACTIONS_CACHE_URL"],
                           "ACT": "true"}
                    self.both_clients(ds, env, proto, i, flip)
                finally:
                    server.stop()
                    shutil.rmtree(data, ignore_errors=True)
            if "local" in self.backends and "ours" in self.who:
                store = self.bench / "store"
                shutil.rmtree(store, ignore_errors=True)
                local = {"INPUT_BACKEND": "local", "INPUT_LOCAL-DIR": str(store)}
                save, restore = self.ours(ds, local, "local", i)
                self.record(name, "save", "ours-local", save)
                self.record(name, "restore", "ours-local", restore)
                self.our_archive_size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
            if "s3" in self.backends and "ours" in self.who:
                store = ObjectStore(self.object_store, self.bench / "s3-root")
                try:
                    save, restore = self.ours(ds, store.env, "s3", i)
                finally:
                    store.stop()
                    shutil.rmtree(self.bench / "s3-root", ignore_errors=True)
                self.record(name, "save", "ours-s3", save)
                self.record(name, "restore", "ours-s3", restore)
            if "baseline" in self.who:
                save, restore = self.baseline(ds, i)
                self.record(name, "save", "baseline", save)
                self.record(name, "restore", "baseline", restore)
            shutil.rmtree(self.steps, ignore_errors=True)

    def med(self, set_name, op, who):
        values = self.results.get((set_name, op, who), [])
        if not values:
            return None, None
        return statistics.median(v[0] for v in values), statistics.median(v[1] for v in values)


# ---------------------------------------------------------------------------------------------
# --jobs: whole CI jobs on the local backend, cold then warm, per target choice

JOB_TARGETS = ("uv", "nox", "uv nox")
# The machine's way to PyPI, handed to the install step (the runner env is built from scratch).
NETWORK_VARS = ("SSL_CERT_FILE", "SSL_CERT_DIR", "UV_NATIVE_TLS", "UV_SYSTEM_CERTS", "UV_INDEX_URL",
                "UV_DEFAULT_INDEX", "UV_INDEX", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def network_env() -> dict:
    """The variables of NETWORK_VARS (either case for the proxies) that this machine sets."""
    names = NETWORK_VARS + tuple(n.lower() for n in NETWORK_VARS if n.endswith("PROXY"))
    return {n: os.environ[n] for n in names if n in os.environ}


@contextlib.contextmanager
def fresh_runner(b: Bench, runner: Path):
    """The runner's directory for one job (workspace, HOME with the uv cache, RUNNER_TEMP), new
    each time but always at the same path, as on a hosted runner: cached venvs and the nox key
    hold absolute paths. It is a new ext4 file system where the bench can mount one (as for
    every restore of the main bench), else an emptied directory on the disk."""
    shutil.rmtree(runner, ignore_errors=True)
    runner.mkdir(parents=True)
    image = b.bench / "job-fs.img"
    if b.fresh_fs:
        with open(image, "wb") as f:
            f.truncate(b.fresh_fs_bytes)
        sh(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", str(image)])
        sh(["mount", "-o", "loop", str(image), str(runner)])
    try:
        yield runner
    finally:
        if b.fresh_fs:
            sh(["umount", str(runner)])
            image.unlink(missing_ok=True)
        shutil.rmtree(runner, ignore_errors=True)


def job_set(ds, runner: Path, targets: str, store: Path) -> dict:
    """A data set dict (the shape `ours_step` takes) for one job of ds's project on runner."""
    home = runner / "home"
    uv_cache = home / ".cache/uv"
    ws = runner / "work/project"
    return {
        "name": ds["name"],
        "base": runner,
        "ws": ws,
        "project": ds["project"],
        "dirs": [uv_cache, ws / ".nox"],
        "inputs": {"INPUT_TARGETS": targets, "INPUT_UV-CACHE-DIR": str(uv_cache),
                   "INPUT_BACKEND": "local", "INPUT_LOCAL-DIR": str(store)},
        "extra_env": {"HOME": str(home), "UV_CACHE_DIR": str(uv_cache)},
    }


def run_job(b: Bench, ds, targets: str, store: Path, logs: Path) -> dict:
    """One CI job on a fresh runner: checkout (a copy of the project with new mtimes, as git
    gives), the restore step, `nox --install-only`, the save step. Returns the (wall, cpu) of
    the three, the restore's outputs and the save's log; the logs stay in logs."""
    shutil.rmtree(logs, ignore_errors=True)
    with fresh_runner(b, b.bench / "jobs/runner") as runner:
        job = job_set(ds, runner, targets, store)
        shutil.copytree(job["project"], job["ws"], copy_function=shutil.copyfile,
                        ignore=shutil.ignore_patterns(".nox", "__pycache__", ".venv"))
        Path(job["extra_env"]["HOME"]).mkdir()
        temp = runner / "temp"
        temp.mkdir()
        restore, main_dir = b.ours_step(job, "restore", {}, "jobs", logs / "main", temp=temp)
        env = b.base_env(job, logs / "install", temp)
        env.update(read_runner_file(main_dir / "env"))  # what the runner hands to later steps
        env.update(network_env())
        nox = [str(b.bench / "tools/bin/nox"), "--install-only", "--reuse-venv=yes"]
        install = timed(nox, env, job["ws"], logs / "install/install.log")
        state = read_runner_file(main_dir / "state")
        save, save_dir = b.ours_step(job, "save", {}, "jobs", logs / "post", state, temp=temp)
    return {"restore": restore, "install": install, "save": save,
            "outputs": read_runner_file(main_dir / "output"), "save_log": (save_dir / "save.log").read_text()}


def run_jobs(b: Bench, ds, runs: int) -> dict:
    """Cold job then warm job against one new local store, per target choice and run (the
    choices rotate across runs, so drift in the machine's load spreads over all of them).
    Returns {targets: {"cold"|"warm": [job], "stored": bytes}}."""
    results = {t: {"cold": [], "warm": [], "stored": 0} for t in JOB_TARGETS}
    store = b.bench / "jobs/store"
    for i in range(runs):
        for k in range(len(JOB_TARGETS)):
            targets = JOB_TARGETS[(i + k) % len(JOB_TARGETS)]
            print(f"== jobs, {ds['name']}: run {i + 1}/{runs}, targets: {targets}", file=sys.stderr)
            shutil.rmtree(store, ignore_errors=True)
            logs = b.bench / "jobs/logs" / targets.replace(" ", "-")
            cold = run_job(b, ds, targets, store, logs / "cold")
            if cold["outputs"].get("cache-hit") != "false" or "saved" not in cold["save_log"]:
                sys.exit(f"the cold job hit or did not save; see {logs / 'cold'}")
            results[targets]["stored"] = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
            warm = run_job(b, ds, targets, store, logs / "warm")
            if warm["outputs"].get("cache-hit") != "true":
                sys.exit(f"the warm job missed ({warm['outputs']}); see {logs / 'warm'}")
            results[targets]["cold"].append(cold)
            results[targets]["warm"].append(warm)
    shutil.rmtree(store, ignore_errors=True)
    return results


def print_jobs(sets, results, runs, load_before, load_after, fresh_fs):
    """The Markdown table of --jobs, and which target choice wins on each set."""

    def med(jobs, *steps):
        return statistics.median(sum(j[s][0] for s in steps) for j in jobs)

    def spread(jobs, *steps):
        """The median, and the range over the runs: cold installs move with the network."""
        walls = [sum(j[s][0] for s in steps) for j in jobs]
        if len(walls) == 1:
            return f"{walls[0]:.2f}"
        return f"{statistics.median(walls):.2f} ({min(walls):.2f}–{max(walls):.2f})"

    busy = load_before[0] > 1.5
    print()
    print(f"`scripts/bench {' '.join(sys.argv[7:])}`: "
          f"{', '.join(f'{n} run(s) of {name.split()[0]}' for name, n in runs.items())}; "
          f"medians, wall s. Local backend; every job on a fresh runner directory"
          + (" (a new ext4 file system)" if fresh_fs else "")
          + "; cold installs download from PyPI. "
          f"Load average before {load_before[0]:.1f}, after {load_after[0]:.1f}; {os.cpu_count()} CPUs"
          + (" — **the machine was busy** (load above 1.5 at the start)." if busy else "."))
    print()
    print("| data set | targets | cold restore | cold install | cold phase | warm restore | warm install "
          "| warm phase | warm / cold | cold save | warm save | stored |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    wins = []
    for ds in sets:
        r = results[ds["name"]]
        warm_phase = {t: med(r[t]["warm"], "restore", "install") for t in JOB_TARGETS}
        best = min(JOB_TARGETS, key=warm_phase.get)
        for t in JOB_TARGETS:
            cold, warm = r[t]["cold"], r[t]["warm"]
            cold_phase = med(cold, "restore", "install")
            ratio = warm_phase[t] / cold_phase
            mark = "**" if t == best else ""
            print(f"| {ds['name']} | `{t}` | {med(cold, 'restore'):.2f} | {med(cold, 'install'):.2f} "
                  f"| {spread(cold, 'restore', 'install')} | {med(warm, 'restore'):.2f} | {med(warm, 'install'):.2f} "
                  f"| {mark}{spread(warm, 'restore', 'install')}{mark} | {ratio:.2f} | {med(cold, 'save'):.2f} "
                  f"| {med(warm, 'save'):.2f} | {r[t]['stored'] / 1e6:.1f} MB |")
        wins.append(f"{ds['name']}: `{best}` ({warm_phase[best]:.2f} s)")
    print()
    print("Phase = restore step + `nox --install-only`, median (range over the runs); warm / cold is the "
          "ratio of the medians. Lowest warm install phase: " + "; ".join(wins) + ".")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--quick", action="store_true", help="small synthetic set, 1 run")
    parser.add_argument("--runs", type=int, default=None,
                        help="default 3 (1 with --quick); with --jobs 3 for A and 2 for C")
    parser.add_argument("--sets", help="a, b, c (c installs a scientific stack from PyPI); default a,b, "
                                       "with --jobs a,c")
    parser.add_argument("--jobs", action="store_true",
                        help="whole CI jobs on the local backend, cold and warm, per target choice (sets a, c)")
    parser.add_argument("--who", default="ours,official,baseline", help="for trying things out")
    parser.add_argument("--backends", default="v2,v1,v1-act,v1-gitea,local,s3",
                        help="v2 and v1: the test server; v1-act, v1-gitea: the runners' own servers; "
                             "local; s3: versitygw")
    parser.add_argument("--object-store", help="the versitygw binary of scripts/object-store (for s3)")
    parser.add_argument("--net-rate", metavar="RATE",
                        help="shape loopback to RATE (tc tbf, e.g. 1gbit) to stand for a runner's network link")
    parser.add_argument("--no-fresh-fs", action="store_true",
                        help="restore onto the disk the data sets are on, not a new ext4 per restore")
    parser.add_argument("--scaling", action="store_true",
                        help="the cost curve: trees of 1k to 300k files and of 50 MB to 2 GB, v2 and "
                             "baseline, 1 run by default; draws docs/scaling.png")
    parser.add_argument("--scaling-files", help="comma-separated file counts (default 1000,10000,100000,300000)")
    parser.add_argument("--scaling-mib", help="comma-separated sizes in MiB (default 50,500,2048)")
    parser.add_argument("--plot-python", help="a Python with matplotlib (scripts/bench provides one)")
    parser.add_argument("--tuning", metavar="NAME=VALUE,...",
                        help="hand our steps UV_NOX_CACHE_TEST_TUNING (e.g. download_block=8388608,parallelism=8) "
                             "to size the ranged downloads and the upload parts")
    args = parser.parse_args()
    if args.scaling:
        args.runs = args.runs or 1
        args.backends = "v2"
        b = Bench(args)
        (b.bench / "home").mkdir(exist_ok=True)
        files = [int(n) for n in args.scaling_files.split(",")] if args.scaling_files else SCALING_FILES
        mib = [int(n) << 20 for n in args.scaling_mib.split(",")] if args.scaling_mib else SCALING_BYTES
        run_scaling(b, files, mib, args.plot_python or sys.executable, b.root / "docs/scaling.png")
        return
    if args.sets is None:
        args.sets = "a,c" if args.jobs else "a,b"
    if args.jobs and "b" in args.sets.split(","):
        sys.exit("--jobs runs sets a and c: b has no project to install")
    runs = args.runs
    if args.runs is None:
        args.runs = 1 if args.quick else 3
    b = Bench(args)
    tools = b.bench / "tools"
    sets = []
    if "a" in args.sets.split(","):
        sets.append(make_set_a(b.bench, b.root, tools))
    if "b" in args.sets.split(","):
        sets.append(make_set_b(b.bench, args.quick))
    if "c" in args.sets.split(","):
        sets.append(make_set_c(b.bench, tools))
    (b.bench / "home").mkdir(exist_ok=True)
    if args.jobs:
        load_before = os.getloadavg()
        job_runs = {ds["name"]: runs or (2 if ds["name"].startswith("C") else 3) for ds in sets}
        results = {ds["name"]: run_jobs(b, ds, job_runs[ds["name"]]) for ds in sets}
        print_jobs(sets, results, job_runs, load_before, os.getloadavg(), b.fresh_fs)
        return
    load_before = os.getloadavg()
    info = []
    if args.net_rate:
        # Every packet on lo leaves through this queue once, so both directions share the rate.
        sh(["tc", "qdisc", "add", "dev", "lo", "root", "tbf", "rate", args.net_rate,
            "burst", "1mb", "latency", "50ms"])
    try:
        for ds in sets:
            b.run_set(ds)
            size, files = tree_stats(ds["dirs"])
            info.append((ds["name"], size, files, b.our_archive_size, b.archive_size))
    finally:
        if args.net_rate:
            subprocess.run(["tc", "qdisc", "del", "dev", "lo", "root"])
    load_after = os.getloadavg()

    def fmt(x):
        return "–" if x is None else f"{x:.2f}"

    print()
    print(f"`scripts/bench {' '.join(sys.argv[7:])}`: {args.runs} run(s), medians; wall s "
          f"(CPU s = user+sys of the command and its children). Load average before "
          f"{load_before[0]:.1f}, after {load_after[0]:.1f}; {os.cpu_count()} CPUs. Restores onto "
          + ("a new ext4 file system each (loop device)." if b.fresh_fs else "the data sets' own disk.")
          + (f" Loopback shaped to {args.net_rate} (tc tbf)." if args.net_rate else ""))
    print()
    print("| data set | op | backend | ours wall | @actions/cache wall | ratio | ours CPU | official CPU |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for ds in sets:
        n = ds["name"]
        for op in ("save", "restore"):
            for proto in ("v2", "v1", *RUNNER_SERVERS, "local", "s3"):
                ow, oc = b.med(n, op, f"ours-{proto}")
                aw, ac = b.med(n, op, f"official-{proto}")
                ratio = "–" if aw is None else f"**{ow / aw:.2f}**"
                print(f"| {n} | {op} | {proto} | {fmt(ow)} | {fmt(aw)} | {ratio} | {fmt(oc)} | {fmt(ac)} |")
    print()
    print("| data set | op | `tar`+`zstd -T0` wall | CPU | ours v2 / baseline | ours local / baseline "
          "| ours s3 / baseline |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for ds in sets:
        n = ds["name"]
        for op in ("save", "restore"):
            bw, bc = b.med(n, op, "baseline")
            v2, _ = b.med(n, op, "ours-v2")
            lo, _ = b.med(n, op, "ours-local")
            s3, _ = b.med(n, op, "ours-s3")
            r2 = "–" if None in (v2, bw) else f"{v2 / bw:.2f}"
            rl = "–" if None in (lo, bw) else f"{lo / bw:.2f}"
            rs = "–" if None in (s3, bw) else f"{s3 / bw:.2f}"
            print(f"| {n} | {op} | {fmt(bw)} | {fmt(bc)} | {r2} | {rl} | {rs} |")
    print()
    print("| data set | bytes | files+dirs | our archive (zstd) | `tar \\| zstd -T0` archive | binary peak RSS |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, size, files, ours, base in info:
        print(f"| {name} | {size:,} | {files:,} | {ours:,} | {base:,} | {b.rss.get(name, 0) / 1024:.0f} MiB |")
    print()
    for ds in sets:
        if len(ds["dirs"]) > 1:
            print(f"{ds['name']}: {linked_bytes(ds['dirs']):,} of its bytes are files hard-linked between "
                  "the uv cache and .nox (counted in both above, and stored in both archives).")
    print()
    print("Peak RSS of the binary per step (max over runs): " + "; ".join(
        f"{n} {step} {max(k for n2, s2, k in b.rss_steps if (n2, s2) == (n, step)) / 1024:.0f} MiB"
        for n, step in dict.fromkeys((n, s) for n, s, _ in b.rss_steps)))


if __name__ == "__main__":
    main()
