"""Audit a folder: verify every image in it, in parallel, and count what was found.

    from detectors.audit import audit
    result = audit("shared/", workers=2, on_progress=lambda done, total, rep: ...)
    result.summary["categories"]   # {"labelled": 3, "unlabelled": 10, "tampered": 0, ...}
    result.exit_code({"unlabelled", "tampered"})   # the CI gate of --fail-on

Walk: recursive, in sorted order; directory symlinks are followed, but each real directory is
entered once (tracked by device and inode), so symlink loops end. Files are picked by
extension (``IMAGE_EXTENSIONS``); a broken link, a text file named ``.png`` or any other bad
file gets its own "unreadable" report and the audit goes on.

Parallelism: a ``ProcessPoolExecutor`` of ``workers`` processes (default: the CPUs this
process may use), forked on Linux before any progress-bar thread starts (fork needs no module
re-import, so workers start at once and a script without a ``__main__`` guard is safe; "spawn"
elsewhere). Each worker analyses one file at a time with the bounded loader of
``detectors.image_io`` (file <= 256 MB, <= 64 MP, decoded at most at 16.8 MP) and, where the
platform allows, an address-space limit (``memory_limit_mb`` on top of what the worker maps
when it starts). A worker that dies (a crash in a native library, the memory limit) does not
end the audit: the files it had in hand are retried one at a time in fresh processes, and a
file that kills its process again is reported "unreadable" with that reason. If worker
processes cannot start at all, the audit runs in this process instead.

Imports neither fakestudio nor torch (nor numpy, until a file is verified in this process).
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter, deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detectors.verdict import CATEGORY_ORDER, make_verdict

SCHEMA = "fakestudio.audit/1"
IMAGE_EXTENSIONS = frozenset(
    {
        ".png",
        ".apng",
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".webp",
        ".gif",
        ".bmp",
        ".tif",
        ".tiff",
        ".avif",
        ".heic",
        ".heif",
    }
)
FAIL_ON = ("unlabelled", "tampered", "ai-metadata", "unreadable")
MEMORY_LIMIT_MB = 4096  # address space a worker may add to what it maps at start (RLIMIT_AS)
INLINE_MAX_FILES = 2  # this few files are verified in-process (no worker start-up)
CSV_COLUMNS = (
    "file",
    "outcome",
    "category",
    "exit_code",
    "format",
    "width",
    "height",
    "size",
    "sha256",
    "c2pa_state",
    "signer",
    "digital_source_type",
    "watermarks",
    "watermark_payload",
    "metadata_tools",
    "camera",
    "ledger_match",
    "ledger_entry",
    "headline",
    "reason",
)

Progress = Callable[[int, int, dict], None]


@dataclass
class AuditResult:
    root: str
    reports: list[dict]  # Report.to_dict(full=False), in walk order
    summary: dict
    notes: list[str] = field(default_factory=list)

    def exit_code(self, fail_on: Iterable[str] = ()) -> int:
        return fail_exit_code(self.summary, fail_on)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "root": self.root,
            "summary": self.summary,
            "notes": self.notes,
            "files": self.reports,
        }

    def csv_text(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in self.reports:
            w.writerow(csv_row(r))
        return buf.getvalue()

    def write_csv(self, path: str | os.PathLike) -> None:
        from detectors.files import atomic_write

        atomic_write(Path(path), self.csv_text().encode("utf-8"))


def audit(
    root: str | os.PathLike,
    *,
    workers: int | None = None,
    trust_anchors: list[bytes] | None = None,
    ledger_path: str | os.PathLike | None = None,
    use_ledger: bool = True,
    on_progress: Progress | None = None,
    on_start: Callable[[int], None] | None = None,
    memory_limit_mb: int | None = MEMORY_LIMIT_MB,
    registry: str | None = None,
    engine: str = "local",
    address: str | None = None,
) -> AuditResult:
    """Verify every image under ``root``. ``on_start(total)`` is called once the walk is done,
    ``on_progress(done, total, report_dict)`` after each file (in completion order).
    ``engine="ray"`` runs the same checks as Ray tasks (``detectors.audit_ray``)."""
    if engine == "ray":
        from detectors.audit_ray import audit_ray

        return audit_ray(
            root,
            address=address,
            num_cpus=workers,
            trust_anchors=trust_anchors,
            ledger_path=ledger_path,
            use_ledger=use_ledger,
            registry=registry,
            on_progress=on_progress,
            on_start=on_start,
        )
    files, skipped, notes = find_images(root)
    total = len(files)
    workers = default_workers() if workers is None else max(1, int(workers))
    args = (trust_anchors or None, str(ledger_path) if ledger_path else None, use_ledger)
    if registry:  # verify --registry's look-up, for files whose manifest is gone
        args += (registry,)
    results: list[dict | None] = [None] * total
    done = 0

    def record(i: int, rep: dict) -> None:
        nonlocal done
        results[i] = rep
        done += 1
        if on_progress:
            on_progress(done, total, rep)

    if workers <= 1 or total <= INLINE_MAX_FILES:
        if on_start:
            on_start(total)
        for i, path in enumerate(files):
            record(i, _verify_one(str(path), *args))
    else:
        # on_start (which may start a progress-bar thread) runs once the workers exist
        left = _run_pool(files, args, min(workers, total), memory_limit_mb, record, notes, on_start)
        for i in left:  # the workers could not start: do it here
            record(i, _verify_one(str(files[i]), *args))
    reports = [r for r in results if r is not None]
    return AuditResult(str(root), reports, summarise(reports, skipped), notes)


def find_images(root: str | os.PathLike) -> tuple[list[Path], int, list[str]]:
    """(image files in sorted walk order, number of non-image files skipped, notes)."""
    root_p = Path(root)
    notes: list[str] = []
    if root_p.is_file():
        return [root_p], 0, notes
    if not root_p.is_dir():
        raise NotADirectoryError(f"{root}: not a folder")
    visited: set[tuple[int, int]] = set()
    try:
        st = root_p.stat()
        visited.add((st.st_dev, st.st_ino))
    except OSError:
        pass
    files: list[Path] = []
    skipped = 0

    def onerror(err: OSError) -> None:
        notes.append(f"{err.filename}: {err.strerror or err}")

    for dirpath, dirnames, filenames in os.walk(root_p, followlinks=True, onerror=onerror):
        keep = []
        for d in sorted(dirnames):
            try:
                st = os.stat(os.path.join(dirpath, d))
            except OSError as e:
                notes.append(f"{os.path.join(dirpath, d)}: {e.strerror or e}")
                continue
            key = (st.st_dev, st.st_ino)
            if key in visited:
                notes.append(
                    f"{os.path.join(dirpath, d)}: already visited (symbolic link loop or alias), skipped"
                )
                continue
            visited.add(key)
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                files.append(Path(dirpath) / name)
            else:
                skipped += 1
    return files, skipped, notes


def summarise(reports: list[dict], skipped: int = 0) -> dict:
    cats = Counter((r.get("verdict") or {}).get("category", "unreadable") for r in reports)
    outcomes = Counter((r.get("verdict") or {}).get("outcome", "unreadable") for r in reports)
    return {
        "total": len(reports),
        "categories": {c: cats.get(c, 0) for c in CATEGORY_ORDER},
        "outcomes": dict(sorted(outcomes.items())),
        "skipped_not_images": skipped,
    }


def fail_exit_code(summary: dict, fail_on: Iterable[str]) -> int:
    """0, or for the ``fail_on`` categories present: 3 tampered, 4 unreadable, 1 unlabelled or
    AI-metadata-only (most urgent first)."""
    cats = summary.get("categories") or {}
    fail = set(fail_on)
    unknown = fail - set(FAIL_ON)
    if unknown:
        raise ValueError(
            f"unknown --fail-on categories: {', '.join(sorted(unknown))}; choose from {', '.join(FAIL_ON)}"
        )
    if "tampered" in fail and cats.get("tampered"):
        return 3
    if "unreadable" in fail and cats.get("unreadable"):
        return 4
    if ("unlabelled" in fail and cats.get("unlabelled")) or (
        "ai-metadata" in fail and cats.get("ai-metadata")
    ):
        return 1
    return 0


def csv_row(r: dict) -> dict:
    v = r.get("verdict") or {}
    c = r.get("c2pa") or {}
    img = r.get("image") or {}
    m = r.get("metadata") or {}
    led = r.get("ledger") or {}
    found = [w for w in r.get("watermarks") or [] if w.get("found")]
    ours = next((w for w in found if w.get("scheme") == "fakestudio"), None)
    cam = m.get("camera") or {}
    entry = led.get("entry") or {}
    return {
        "file": r.get("file"),
        "outcome": v.get("outcome"),
        "category": v.get("category"),
        "exit_code": v.get("exit_code"),
        "format": r.get("format"),
        "width": img.get("width"),
        "height": img.get("height"),
        "size": r.get("size"),
        "sha256": r.get("sha256"),
        "c2pa_state": c.get("state"),
        "signer": c.get("signer"),
        "digital_source_type": c.get("digital_source_type"),
        "watermarks": ";".join(str(w.get("scheme")) for w in found),
        "watermark_payload": ours.get("payload") if ours else None,
        "metadata_tools": ";".join(m.get("ai_tools") or []),
        "camera": " ".join(x for x in (cam.get("make"), cam.get("model")) if x) or None,
        "ledger_match": led.get("how") if led.get("matched") else None,
        "ledger_entry": entry.get("file_name"),
        "headline": v.get("headline"),
        "reason": img.get("reason"),
    }


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


# --- internals ------------------------------------------------------------------------------


def _verify_one(path: str, anchors, ledger_path, use_ledger, registry=None) -> dict:
    """Verify one file in this process; any unexpected failure becomes an "unreadable" report."""
    try:
        from detectors.verify import verify_image

        rep = verify_image(
            path,
            trust_anchors=anchors,
            ledger_path=ledger_path,
            use_ledger=use_ledger,
            registry=registry,
        )
        return rep.to_dict(full=False)
    except MemoryError:
        return error_report(path, "out of memory while analysing this file")
    except Exception as e:  # noqa: BLE001 - one bad file never ends an audit
        return error_report(path, f"the analysis failed: {type(e).__name__}: {e}")


def error_report(path: str, why: str) -> dict:
    """A minimal report (same schema) for a file that could not be analysed at all."""
    reason = "unreadable: " + " ".join(why.split())[:300]
    v = make_verdict(
        "unreadable", f"Could not analyse this file ({reason[len('unreadable: ') :]})", [reason]
    )
    return {
        "schema": "fakestudio.verify/1",
        "file": path,
        "size": None,
        "sha256": None,
        "format": None,
        "image": {"readable": False, "reason": reason, "notes": []},
        "verdict": v.to_dict(),
        "c2pa": {"state": "error", "message": reason},
        "watermarks": [],
        "metadata": {"claims": [], "problems": [], "ai_claimed": False, "ai_tools": []},
        "ledger": {
            "checked": False,
            "entries": 0,
            "matched": False,
            "how": None,
            "entry": None,
            "candidates": [],
        },
        "phash": None,
        "signals": [],
        "trust": {},
        "notes": [reason],
    }


def _init_worker(memory_limit_mb: int | None) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")  # one process per core already
    if memory_limit_mb:
        try:
            import resource

            # headroom on top of what the (forked) worker already maps: a parent that loaded
            # big libraries must not leave its workers without room to start
            limit = _mapped_bytes() + int(memory_limit_mb) * 1024 * 1024
            soft, hard = resource.getrlimit(resource.RLIMIT_AS)
            if hard != resource.RLIM_INFINITY:
                limit = min(limit, hard)
            if soft == resource.RLIM_INFINITY or soft > limit:
                resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        except (ImportError, ValueError, OSError):
            pass


def _mapped_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _mp_context():
    import multiprocessing
    import sys

    if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _new_pool(workers: int, memory_limit_mb: int | None) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=_mp_context(),
        initializer=_init_worker,
        initargs=(memory_limit_mb,),
    )


def _run_pool(files, args, workers, memory_limit_mb, record, notes, on_start) -> list[int]:
    """Verify ``files`` in worker processes; returns the indices left undone when the workers
    could not start at all (a first no-op task fails; the caller verifies those in-process).
    A worker dying later never sends a file back to this process: the files it may have held
    are retried one per fresh process."""
    pending = deque(range(len(files)))
    pool = _new_pool(workers, memory_limit_mb)
    try:
        pool.submit(_ping).result(timeout=120)
    except Exception:  # noqa: BLE001 - BrokenProcessPool, a timeout, an unpicklable main ...
        pool.shutdown(wait=False, cancel_futures=True)
        notes.append("worker processes could not start; verified in this process")
        if on_start:
            on_start(len(files))
        return list(pending)
    inflight: dict = {}
    started = False
    try:
        while pending or inflight:
            while pending and len(inflight) < workers * 4:
                i = pending.popleft()
                inflight[pool.submit(_verify_one, str(files[i]), *args)] = i
            if not started:
                started = True
                if on_start:
                    on_start(len(files))
            done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
            suspects: list[int] = []
            for fut in done:
                i = inflight.pop(fut)
                try:
                    record(i, fut.result())
                except BrokenProcessPool:
                    suspects.append(i)
                except Exception as e:  # noqa: BLE001 - e.g. a result that failed to pickle
                    record(i, error_report(str(files[i]), f"{type(e).__name__}: {e}"))
            if not suspects:
                continue
            suspects.extend(inflight.values())
            inflight.clear()
            pool.shutdown(wait=False, cancel_futures=True)
            notes.append(f"a worker process died; {len(suspects)} file(s) retried one at a time")
            for i in suspects:
                record(i, _isolated(files[i], args, memory_limit_mb))
            pool = _new_pool(workers, memory_limit_mb)
        return []
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _ping() -> int:
    return os.getpid()


def _isolated(path: Path, args: tuple, memory_limit_mb) -> dict:
    pool = _new_pool(1, memory_limit_mb)
    try:
        return pool.submit(_verify_one, str(path), *args).result()
    except BrokenProcessPool:
        return error_report(
            str(path), "the analysis process crashed on this file (native library or memory limit)"
        )
    except Exception as e:  # noqa: BLE001
        return error_report(str(path), f"{type(e).__name__}: {e}")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
