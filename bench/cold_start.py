"""Cold start of `fakestudio verify`, and the size of the core install.

    .venv/bin/python bench/cold_start.py                  # builds a core venv in a temp folder
    .venv/bin/python bench/cold_start.py --core-venv /tmp/core --runs 9   # built once, kept

A journalist runs `fakestudio verify picture.png` once, in a new process: what counts is the
time from the command to its answer, imports included. This labels a 512 px photo-like PNG
(`fakestudio label`, with a private FAKESTUDIO_HOME so the ledger lookup is real and nothing
touches yours), then times, alternating, each in a new process:

* the baseline: `python -c pass` (the interpreter's own start-up on this machine);
* `fakestudio verify` of the labelled PNG in this environment (every extra installed);
* the same in a core-only environment (`pip install <repo>` without extras, built here from a
  copy of the repository through pip's cache, or given with --core-venv).

Prints the median and best seconds of each, the ratio to the baseline and the target
(issue 26: <= 1.0 s), and the core install's size: the new venv's size minus an empty venv's
(pip and setuptools, which every venv has), and the largest packages in it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 1.0


def photo_like(side: int, seed: int = 0) -> Image.Image:
    """A smooth random colour field with sensor-like noise: textured like a photo."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
    a = np.asarray(small.resize((side, side), Image.Resampling.BICUBIC), dtype=np.int16)
    a = a + rng.normal(0, 5, a.shape).astype(np.int16)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def du_mb(path: Path) -> float:
    """Disk usage in MiB, as `du -sm` counts it (the issue's 400 MB target is in its units)."""
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0]) / 1024


def make_venv(where: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
    return where


def install_core(venv: Path, tmp: Path) -> None:
    """`pip install <repository>`, no extras, from a copy (pip builds in the source tree)."""
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for pkg in ("fakestudio", "detectors"):
        shutil.copytree(ROOT / pkg, src / pkg, ignore=skip)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--disable-pip-version-check", str(src)], check=True)


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python*/site-packages"))


def largest(venv: Path, n: int = 8) -> list[tuple[str, float]]:
    sizes = {}
    for entry in site_packages(venv).iterdir():
        if entry.name.endswith((".dist-info", ".pth")) or entry.name == "__pycache__":
            continue
        name = entry.name.removesuffix(".libs").split("-")[0]  # numpy.libs counts as numpy
        mb = du_mb(entry)
        sizes[name] = sizes.get(name, 0.0) + mb
    return sorted(sizes.items(), key=lambda kv: -kv[1])[:n]


def timed(cmd: list[str], env: dict, want_rc: int = 0) -> float:
    t = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if res.returncode != want_rc:
        raise SystemExit(f"{' '.join(cmd)}: exit {res.returncode}\n{res.stderr[-2000:]}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7, help="runs of each command (alternating)")
    ap.add_argument("--core-venv", type=Path, help="a core-only venv (built there when missing)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="fakestudio-cold-"))
    try:
        home = tmp / "home"
        env = {**os.environ, "FAKESTUDIO_HOME": str(home), "PYTHONPATH": str(ROOT)}
        dev_cli = [sys.executable, "-m", "fakestudio"]
        src = tmp / "photo.png"
        photo_like(512).save(src)
        out = tmp / "labelled"
        label = [*dev_cli, "label", str(src), "--out", str(out), "--generator", "bench"]
        subprocess.run(label, env=env, check=True, capture_output=True)
        picture = out / src.name

        empty = du_mb(make_venv(tmp / "empty"))
        core = args.core_venv or tmp / "core"
        if not (core / "bin" / "fakestudio").exists():
            print(f"building a core-only venv in {core} (pip install, no extras) ...")
            make_venv(core)
            install_core(core, tmp)
        core_mb = du_mb(core)
        core_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}

        cases = {
            "python -c pass": ([sys.executable, "-c", "pass"], env),
            "verify (all extras)": ([*dev_cli, "verify", str(picture)], env),
            "verify (core venv)": (
                [str(core / "bin" / "fakestudio"), "verify", str(picture)],
                core_env,
            ),  # fmt: skip
        }
        for cmd, e in cases.values():  # warm the file cache: "cold" is a new process
            timed(cmd, e)
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.runs):
            for name, (cmd, e) in cases.items():
                times[name].append(timed(cmd, e))

        base = statistics.median(times["python -c pass"])
        print(f"\n{Path(picture).name}: 512x512 labelled PNG; {args.runs} runs each, new process")
        print(f"{'':24} {'median s':>9} {'best s':>8} {'x baseline':>11}")
        for name, ts in times.items():
            med = statistics.median(ts)
            print(f"{name:24} {med:9.3f} {min(ts):8.3f} {med / base:11.1f}")
        for name in ("verify (all extras)", "verify (core venv)"):
            med = statistics.median(times[name])
            verdict = "meets" if med <= TARGET_S else "MISSES"
            print(f"{name}: {med:.2f} s {verdict} the target of {TARGET_S:.1f} s")

        print(
            f"\ncore install: {core_mb - empty:.0f} MiB ({core_mb:.0f} venv - {empty:.0f} empty venv)"
        )
        for name, mb in largest(core):
            print(f"  {name:24} {mb:6.0f} MiB")
        probe = "import importlib.util as u; print(u.find_spec('torch') is None)"
        no_torch = subprocess.run([str(core / "bin" / "python"), "-c", probe],
                                  capture_output=True, text=True).stdout.strip()  # fmt: skip
        print(f"  torch absent: {no_torch}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
