"""Audit a folder: verify every image in it, in parallel, and count what was found.

    from detectors.audit import audit
    result = audit("shared/", workers=2, on_progress=lambda done, total, rep: ...)
    result.summary["categories"]   # {"labelled": 3, "unlabelled": 10, "tampered": 0, ...}
    result.exit_code({"unlabelled", "tampered"})   # the CI gate of --fail-on

Walk: recursive, in sorted order; directory symlinks are followed, but each real directory is
entered once (tracked by device and inode), so symlink loops end. Files are picked by
extension (``MEDIA_EXTENSIONS``: pictures, video, audio and PDF, every format whose
credentials C2PA reads), and any other regular file whose first bytes are one of those formats
(``detectors.media.identify``: a JPEG named ``.bin``); the rest is counted as
``skipped_not_images``: files with neither pixels we decode nor credentials C2PA could read. A
broken link, a text file named ``.png`` or any other bad file gets its own "unreadable" report
and the audit goes on.

Parallelism: a ``ProcessPoolExecutor`` of ``workers`` processes (default: the CPUs this
process may use), forked on Linux before any progress-bar thread starts (fork needs no module
re-import, so workers start at once and a script without a ``__main__`` guard is safe; "spawn"
elsewhere). One exception: a process that has itself read a PDF's credentials in-process
(``detectors.c2pa.fork_safe()`` False; by default PDFs are read in a child process: c2pa-rs
then holds a worker-thread pool that forked children inherit without its threads, and their
PDF reads never return) starts its workers with "forkserver", which imports the main module as
"spawn" does. Each worker analyses one file at a time with the bounded loader of
``detectors.image_io`` (file <= 256 MB, <= 64 MP, decoded at most at 16.8 MP) and, where the
platform allows, an address-space limit (``memory_limit_mb`` on top of what the worker maps
when it starts). A worker that dies (a crash in a native library, the memory limit) does not
end the audit: the files it had in hand are retried one at a time in fresh processes, and a
file that kills its process again is reported "unreadable" with that reason. If worker
processes cannot start at all, the audit runs in this process instead.

Time: every file gets at most ``time_limit`` seconds (default ``PER_FILE_SECONDS``): an alarm in
the process doing the work stops the analysis and the file is reported "unreadable" with the
reason. Work stuck in native code, where the alarm cannot interrupt it, is caught by the
parent: when no worker finishes a file for ``time_limit + STALL_GRACE`` seconds the workers are
killed and the files they held are retried one per fresh process, each killed at the limit.
Ctrl-C (KeyboardInterrupt) stops the audit, not the report: ``audit`` returns the files done so
far with ``summary["complete"]`` False and a note, so the JSON and CSV written from it are valid.
Reports come to ``on_progress`` as each file finishes (``CsvStream`` writes them to disk as they
come).

Imports neither fakestudio nor torch (nor numpy, until a file is verified in this process).
"""

from __future__ import annotations

import csv
import io
import math
import os
import signal
import tempfile
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detectors import media
from detectors.files import printable
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
        ".ico",
        ".jp2",
        ".j2k",
        ".jpx",
        ".jpf",
    }
)
#: every extension audit verifies: pictures, video, audio, PDF (``detectors.media.EXTENSIONS``)
MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | media.MEDIA_EXTENSIONS
FAIL_ON = ("unlabelled", "tampered", "mismatch", "ai-metadata", "unreadable")
MEMORY_LIMIT_MB = 4096  # address space a worker may add to what it maps at start (RLIMIT_AS)
INLINE_MAX_FILES = 2  # this few files are verified in-process (no worker start-up)
PER_FILE_SECONDS = 60.0  # default time limit for the analysis of one file
STALL_GRACE = 30.0  # no file finished for time_limit + this: the workers are stuck, kill them
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
    "kind",  # image, video, audio, document (detectors.media)
)

Progress = Callable[[int, int, dict], None]


@dataclass
class AuditResult:
    root: str
    reports: list[dict]  # Report.to_dict(full=False), in walk order
    summary: dict
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """False when the audit was interrupted (Ctrl-C): the reports are those done by then."""
        return bool(self.summary.get("complete", True))

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

        atomic_write(Path(path), self.csv_text().encode("utf-8", "backslashreplace"))


class CsvStream:
    """CSV rows written as the files finish, to a hidden ``.NAME.*.part`` file beside ``path``
    (flushed per row: a killed run leaves the rows done so far there); ``finish(result)``
    replaces it by the final CSV in walk order, ``abort()`` removes it."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        fd, self.tmp = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".part", dir=self.path.parent
        )
        self.fh = os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace", newline="")
        self.writer = csv.DictWriter(self.fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        self.writer.writeheader()
        self.fh.flush()

    def add(self, report: dict) -> None:
        if not self.fh.closed:
            self.writer.writerow(csv_row(report))
            self.fh.flush()

    def finish(self, result: AuditResult) -> None:
        self.fh.close()
        try:
            result.write_csv(self.path)
        finally:
            self.abort()

    def abort(self) -> None:
        self.fh.close()
        try:
            os.unlink(self.tmp)
        except FileNotFoundError:
            pass


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
    time_limit: float | None = PER_FILE_SECONDS,
    registry: str | None = None,
    online: bool = False,
) -> AuditResult:
    """Verify every image under ``root``. ``on_start(total)`` is called once the walk is done,
    ``on_progress(done, total, report_dict)`` after each file (in completion order).
    ``time_limit``: seconds per file (None: no limit). Ctrl-C returns the files done so far
    (``result.complete`` False). ``registry``: verify --registry's look-up, for files whose
    manifest is gone. ``online``: C2PA may fetch remote manifests and OCSP.
    ``detectors.audit_ray.audit_ray`` runs the same checks as Ray tasks."""
    if time_limit is not None and not (math.isfinite(time_limit) and time_limit > 0):
        raise ValueError(f"time_limit must be a positive number of seconds, not {time_limit!r}")
    files, skipped, notes = find_images(root)
    total = len(files)
    workers = default_workers() if workers is None else max(1, int(workers))
    args = (
        trust_anchors or None,
        str(ledger_path) if ledger_path else None,
        use_ledger,
        time_limit,
        registry,
        online,
    )
    results: list[dict | None] = [None] * total
    done = 0

    def record(i: int, rep: dict) -> None:
        nonlocal done
        results[i] = rep
        done += 1
        if on_progress:
            on_progress(done, total, rep)

    interrupted = False
    try:
        if workers <= 1 or total <= INLINE_MAX_FILES:
            if on_start:
                on_start(total)
            for i, path in enumerate(files):
                record(i, verify_one(str(path), *args))
        else:
            # on_start (which may start a progress-bar thread) runs once the workers exist
            left = _run_pool(
                files, args, min(workers, total), memory_limit_mb, record, notes, on_start
            )
            for i in left:  # the workers could not start: do it here
                record(i, verify_one(str(files[i]), *args))
    except KeyboardInterrupt:
        interrupted = True
        notes.append(f"interrupted: {done} of {total} files analysed; this report holds only those")
    reports = [r for r in results if r is not None]
    summary = summarise(reports, skipped)
    summary["complete"] = not interrupted
    summary["found"] = total
    return AuditResult(str(root), reports, summary, notes)


def find_images(root: str | os.PathLike) -> tuple[list[Path], int, list[str]]:
    """(media files in sorted walk order, number of other files skipped, notes)."""
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
            path = Path(dirpath) / name
            if os.path.splitext(name)[1].lower() in MEDIA_EXTENSIONS:
                files.append(path)
            elif media.identify_file(path) is not None:  # a picture or video named otherwise
                files.append(path)
            else:
                skipped += 1
    return files, skipped, notes


def summarise(reports: list[dict], skipped: int = 0) -> dict:
    cats = Counter((r.get("verdict") or {}).get("category", "unreadable") for r in reports)
    outcomes = Counter((r.get("verdict") or {}).get("outcome", "unreadable") for r in reports)
    kinds = Counter(((r.get("media") or {}).get("kind") or "unknown") for r in reports)
    return {
        "total": len(reports),
        "categories": {c: cats.get(c, 0) for c in CATEGORY_ORDER},
        "outcomes": dict(sorted(outcomes.items())),
        # image, video, audio, document, unknown (not identified: unreadable ones)
        "kinds": dict(sorted(kinds.items())),
        "skipped_not_images": skipped,  # neither pixels we decode nor credentials C2PA reads
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
    if ("tampered" in fail and cats.get("tampered")) or (
        "mismatch" in fail and cats.get("mismatch")
    ):
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
        "file": printable(r.get("file")),
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
        "headline": printable(v.get("headline")),
        "reason": printable(img.get("reason")) if img.get("reason") else None,
        "kind": (r.get("media") or {}).get("kind"),
    }


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


# --- internals ------------------------------------------------------------------------------


class TimeUp(BaseException):
    """The per-file alarm (a BaseException: the checks' own ``except Exception`` must not
    swallow it and carry on)."""


@contextmanager
def deadline(seconds: float | None):
    """SIGALRM after ``seconds`` raises ``TimeUp`` here (main thread of a process only;
    elsewhere, or with ``seconds`` None, no limit)."""
    if (
        not seconds
        or not hasattr(signal, "setitimer")
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return

    def on_alarm(signum, frame):
        raise TimeUp()

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def timeout_reason(seconds) -> str:
    return f"the analysis took longer than the time limit of {seconds:g} s per file; stopped"


def verify_one(
    path: str, anchors, ledger_path, use_ledger, time_limit=None, registry=None, online=False
) -> dict:
    """Verify one file in this process; any unexpected failure becomes an "unreadable" report."""
    try:
        from detectors.verify import verify_image

        try:
            with deadline(time_limit):
                rep = verify_image(
                    path,
                    trust_anchors=anchors,
                    ledger_path=ledger_path,
                    use_ledger=use_ledger,
                    registry=registry,
                    online=online,
                )
        except TimeUp:
            return error_report(path, timeout_reason(time_limit))
        return rep.to_dict(full=False)
    except TimeUp:  # the alarm fired just as the analysis ended
        return error_report(path, timeout_reason(time_limit))
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
        "checks": {},
        "media": None,
        "notes": [reason],
    }


def _init_worker(memory_limit_mb: int | None) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")  # one process per core already
    try:  # Ctrl-C is the parent's to handle: it kills the workers and keeps what is done
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except (ValueError, OSError):
        pass
    try:  # imported before the first file, so that the time limit counts analysis only
        import detectors.verify  # noqa: F401
    except Exception:  # noqa: BLE001 - the first file will report it
        pass
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

    from detectors.c2pa import fork_safe

    methods = multiprocessing.get_all_start_methods()
    if sys.platform.startswith("linux") and "fork" in methods:
        if fork_safe():
            return multiprocessing.get_context("fork")
        # this process read a PDF: c2pa-rs's thread pool would hang forked workers
        if "forkserver" in methods:
            return multiprocessing.get_context("forkserver")
    return multiprocessing.get_context("spawn")


def _kill(pool: ProcessPoolExecutor) -> None:
    """Kill the pool's worker processes now (stuck in native code, or Ctrl-C)."""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):  # no public API (<3.14)
        try:
            proc.kill()
        except Exception:  # noqa: BLE001 - already gone
            pass
    pool.shutdown(wait=False, cancel_futures=True)


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
    time_limit = args[3]
    stall = time_limit + STALL_GRACE if time_limit else None
    try:
        while pending or inflight:
            while pending and len(inflight) < workers * 4:
                i = pending.popleft()
                inflight[pool.submit(verify_one, str(files[i]), *args)] = i
            if not started:
                started = True
                if on_start:
                    on_start(len(files))
            done, _ = wait(list(inflight), timeout=stall, return_when=FIRST_COMPLETED)
            suspects: list[int] = []
            if not done:  # no file finished for time_limit + STALL_GRACE: stuck in native code
                suspects = list(inflight.values())
                inflight.clear()
                _kill(pool)
                notes.append(
                    f"no worker finished a file for {stall:g} s; the workers were killed and "
                    f"{len(suspects)} file(s) retried one at a time"
                )
                for i in suspects:
                    record(i, _isolated(files[i], args, memory_limit_mb))
                pool = _new_pool(workers, memory_limit_mb)
                continue
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
    except BaseException:  # Ctrl-C: do not wait for the files in hand
        _kill(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _ping() -> int:
    return os.getpid()


def _isolated(path: Path, args: tuple, memory_limit_mb) -> dict:
    pool = _new_pool(1, memory_limit_mb)
    time_limit = args[3]
    try:
        return pool.submit(verify_one, str(path), *args).result(
            timeout=time_limit + STALL_GRACE if time_limit else None
        )
    except FutureTimeout:
        _kill(pool)
        return error_report(str(path), timeout_reason(time_limit))
    except BrokenProcessPool:
        return error_report(
            str(path), "the analysis process crashed on this file (native library or memory limit)"
        )
    except Exception as e:  # noqa: BLE001
        return error_report(str(path), f"{type(e).__name__}: {e}")
    except BaseException:  # Ctrl-C
        _kill(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
