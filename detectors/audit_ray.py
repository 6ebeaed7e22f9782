"""`audit --engine ray`: the same per-file checks as the local audit, as Ray tasks.

    from detectors.audit_ray import audit_ray
    result = audit_ray("uploads/", address=None, num_cpus=2)     # a local Ray instance
    result = audit_ray("/mnt/shared/uploads", address="ray://head:10001")

Each task verifies a small batch of files with ``detectors.audit.verify_one`` (the very
function the local process pool runs), so the reports are identical. Back-pressure: at most
``in_flight`` batches are submitted at once (default: twice the cluster's CPUs); the driver
waits for one to finish before it submits the next, so a list of millions of files never
floods the object store. A task that fails (its worker died, the node went away) is retried by
Ray (``max_retries``); a batch that still fails gives each of its files an "unreadable" report
with the reason, and the audit goes on.

On a cluster every node must see the files at the same path (a shared mount), and each node
consults its own fakestudio home for the local signing CA; pass ``ledger_path`` on a shared
mount to use one ledger. Ray is imported only here, only when asked.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

from detectors.audit import AuditResult, error_report, find_images, summarise, verify_one

BATCH = 8  # files per task: amortises task overhead (~1 ms) over ~10-50 ms of work per file


def _verify_batch(paths: list[str], args: tuple) -> list[dict]:
    return [verify_one(p, *args) for p in paths]


def audit_ray(
    root: str | os.PathLike,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    trust_anchors: list[bytes] | None = None,
    ledger_path: str | os.PathLike | None = None,
    use_ledger: bool = True,
    registry: str | None = None,
    on_progress: Callable | None = None,
    on_start: Callable[[int], None] | None = None,
    time_limit: float | None = None,
    batch: int = BATCH,
    in_flight: int | None = None,
    online: bool = False,
) -> AuditResult:
    """Verify every image under ``root`` with Ray tasks; same results as ``detectors.audit``."""
    try:
        import ray
    except ImportError as e:
        raise RuntimeError("--engine ray needs Ray: pip install 'ray>=2.40'") from e

    files, skipped, notes = find_images(root)
    total = len(files)
    args: tuple = (
        trust_anchors or None,
        str(ledger_path) if ledger_path else None,
        use_ledger,
        time_limit,  # per file, inside the task (SIGALRM in the worker's main thread)
        registry,
        online,
    )
    started_here = not ray.is_initialized()
    # Ray's driver set-up changes the process's signal handlers (SIGINT ignored, which every
    # later child process would inherit): put them back when done
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    if started_here:
        kw: dict = {
            "include_dashboard": False,
            "log_to_driver": False,
            "configure_logging": False,
        }
        if address:
            kw["address"] = address
        else:
            kw["num_cpus"] = num_cpus or os.cpu_count() or 1
            home = os.environ.get("FAKESTUDIO_HOME")  # a local instance: the same home
            if home:
                kw["runtime_env"] = {"env_vars": {"FAKESTUDIO_HOME": home}}
        ray.init(**kw)
    try:
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        limit = in_flight or 2 * cpus
        task = ray.remote(num_cpus=1, max_retries=2)(_verify_batch)
        args_ref = ray.put(args)
        batches = [
            [str(p) for p in files[i : i + max(1, batch)]] for i in range(0, total, max(1, batch))
        ]
        results: list[dict | None] = [None] * total
        pending: dict = {}
        nxt = 0
        done = 0
        if on_start:
            on_start(total)
        while nxt < len(batches) or pending:
            while nxt < len(batches) and len(pending) < limit:
                pending[task.remote(batches[nxt], args_ref)] = nxt
                nxt += 1
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                b = pending.pop(ref)
                start = b * max(1, batch)
                try:
                    reports = ray.get(ref)
                except Exception as e:  # noqa: BLE001 - a lost node, a crashed worker
                    why = f"the Ray task failed: {type(e).__name__}"
                    reports = [error_report(p, why) for p in batches[b]]
                for k, rep in enumerate(reports):
                    results[start + k] = rep
                    done += 1
                    if on_progress:
                        on_progress(done, total, rep)
    finally:
        if started_here:
            ray.shutdown()
        for sig, handler in handlers.items():
            if handler is not None and threading.current_thread() is threading.main_thread():
                signal.signal(sig, handler)
    reports = [r for r in results if r is not None]
    summary = summarise(reports, skipped)
    summary["complete"] = len(reports) == total  # the local pool's fields, same meaning
    summary["found"] = total
    return AuditResult(str(root), reports, summary, notes)
