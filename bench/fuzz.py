"""Fuzz the untrusted-bytes parsers for N minutes; keep every failing input as a regression file.

The targets and strategies are those of ``tests/test_fuzz.py`` (``tests/fuzz_targets.py``): here
they run in rounds with fresh random seeds until the time is up, each input under a wall-clock
alarm (``--per-input`` seconds: a hang is a failure too). A failing input is shrunk by
Hypothesis and written to ``tests/fuzz-regressions/<target>-<sha256[:12]>.bin``; the test suite
replays every file there (``test_regression_inputs_still_pass``), so commit the ones you fix.

    .venv/bin/python bench/fuzz.py --minutes 10 [--target xmp --target container] [--per-input 10]

Prints, per target, the inputs tried, the inputs per second, and the failures kept.
"""

from __future__ import annotations

import argparse
import hashlib
import signal
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, given, settings  # noqa: E402

from tests.fuzz_targets import REGRESSIONS, TARGETS, encode_input  # noqa: E402


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang("input took longer than the per-input limit")


def run_round(name: str, examples: int, per_input: float, stats: dict) -> Path | None:
    """One Hypothesis run of ``examples`` random inputs; the shrunk failing input, if any."""
    target = TARGETS[name]
    last_failure: list = []

    @settings(
        max_examples=examples,
        deadline=None,  # the alarm bounds time; Hypothesis' deadline would flag machine noise
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(target.strategy)
    def run(value):
        stats["tried"] += 1
        signal.setitimer(signal.ITIMER_REAL, per_input)
        try:
            target.check(value)
        except BaseException:
            last_failure[:] = [value]  # shrinking calls again: the last one kept is the smallest
            raise
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    try:
        run()
    except Exception:  # noqa: BLE001 - the failure is the product here
        if not last_failure:
            raise
        raw = encode_input(target, last_failure[0])
        REGRESSIONS.mkdir(parents=True, exist_ok=True)
        path = REGRESSIONS / f"{name}-{hashlib.sha256(raw).hexdigest()[:12]}.bin"
        path.write_bytes(raw)
        (path.with_suffix(".txt")).write_text(traceback.format_exc()[-4000:])
        return path
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--target", action="append", choices=sorted(TARGETS), default=None)
    ap.add_argument(
        "--per-input", type=float, default=10.0, help="seconds before an input is a hang"
    )
    ap.add_argument("--round", type=int, default=200, help="inputs per Hypothesis run")
    args = ap.parse_args(argv)
    names = args.target or sorted(TARGETS)
    signal.signal(signal.SIGALRM, _alarm)
    for name in names:
        TARGETS[name].warm_up()
    stats = {n: {"tried": 0, "seconds": 0.0, "failures": []} for n in names}
    end = time.monotonic() + args.minutes * 60
    while time.monotonic() < end:
        for name in names:
            if time.monotonic() >= end:
                break
            t0 = time.monotonic()
            kept = run_round(name, args.round, args.per_input, stats[name])
            stats[name]["seconds"] += time.monotonic() - t0
            if kept is not None:
                stats[name]["failures"].append(kept)
                print(f"{name}: failing input kept as {kept}", flush=True)
    print(f"{'target':<14} {'inputs':>8} {'inputs/s':>9}  failures")
    failed = 0
    for name in names:
        s = stats[name]
        rate = s["tried"] / s["seconds"] if s["seconds"] else 0.0
        print(f"{name:<14} {s['tried']:>8} {rate:>9.1f}  {len(s['failures'])}")
        failed += len(s["failures"])
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
