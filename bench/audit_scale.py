"""`audit --engine ray` against the local process pool, on the same files, in one run.

    python bench/audit_scale.py              # 200 photo-like 512 px files (PNG/JPEG), some labelled
    python bench/audit_scale.py --n 60       # shorter

Times ``detectors.audit.audit`` with the local pool (1 and 2 processes) and with Ray tasks on a
local Ray instance of 1 and 2 CPUs (Ray's start-up timed apart: on a cluster it is paid once),
and checks that every engine gives the same reports. Prints images per second and each figure's
ratio to the local pool with the same number of workers. A private FAKESTUDIO_HOME keeps your
keys and ledger out of it. On a 2-core machine shared with other work the ratios, not the
absolute figures, are the result.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_files(folder: Path, n: int) -> Path:
    from bench.verify_throughput import photo_like
    from fakestudio.label.labeller import LabelOptions, write_labelled
    from fakestudio.record import GenerationRecord

    folder.mkdir(parents=True, exist_ok=True)
    ledger = folder.parent / "ledger.sqlite"
    for i in range(n):
        im = photo_like(512, 512, i)
        if i % 10 == 0:  # a labelled output, in the ledger
            rec = GenerationRecord("bench", "", i, 2, 7.0, 512, 512, "euler", "tiny", "ab" * 32)
            write_labelled(im, rec, folder, f"gen{i:04d}", LabelOptions(ledger_path=ledger))
        elif i % 2:
            im.save(folder / f"photo{i:04d}.jpg", quality=90)
        else:
            im.save(folder / f"photo{i:04d}.png")
    return ledger


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fs-audit-scale-"))
    os.environ["FAKESTUDIO_HOME"] = str(tmp / "home")
    import ray

    from detectors.audit import audit
    from detectors.audit_ray import audit_ray

    files = tmp / "files"
    ledger = make_files(files, args.n)
    rates: dict[str, float] = {}
    baseline = None
    for workers in (1, 2):
        t = time.perf_counter()
        local = audit(files, workers=workers, ledger_path=ledger).to_dict()
        rates[f"local x{workers}"] = args.n / (time.perf_counter() - t)
        baseline = baseline or local
        assert local == baseline
    for cpus in (1, 2):
        t = time.perf_counter()
        ray.init(
            num_cpus=cpus,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"FAKESTUDIO_HOME": os.environ["FAKESTUDIO_HOME"]}},
        )
        start = time.perf_counter() - t
        try:
            t = time.perf_counter()
            res = audit_ray(files, num_cpus=cpus, ledger_path=ledger).to_dict()
            rates[f"ray x{cpus}"] = args.n / (time.perf_counter() - t)
        finally:
            ray.shutdown()
        assert res == baseline, "ray results differ from the local pool's"
        print(f"ray x{cpus}: start-up {start:.1f} s (not counted below)", flush=True)
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    for name, rate in rates.items():
        kind, n = name.split(" x")
        ratio = rate / rates[f"local x{n}"]
        print(f"{name:9s} {rate:6.1f} images/s   x{ratio:.2f} of local x{n}")
    print(f"{args.n} files; identical reports from every engine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
