"""Writing files so that nothing half-written is ever left behind."""

from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
import time
from pathlib import Path


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write to a hidden temp file beside `path` (created 0600 by mkstemp, so a key is never
    readable by others), fsync, set `mode`, rename over `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def printable(name: object) -> str:
    """A file name (or any text) safe to write as UTF-8: bytes that were not valid UTF-8 in a
    file name (Python keeps them as lone surrogates) become ``\\xff`` escapes, so CSV, HTML and
    terminal output never fail on them and the name stays recognisable."""
    s = str(name)
    try:
        return s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # surrogates that did not come from a file name
        return s.encode("utf-8", "backslashreplace").decode("utf-8")


STALE_PART_SECONDS = 120  # a temp file of ours untouched this long belongs to a dead run
_PART_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.part$")  # what atomic_write's mkstemp makes


def clean_stale_parts(folder: Path, name: str | None = None) -> list[str]:
    """Remove the hidden ``.NAME.xxxxxxxx.part`` temp files that ``atomic_write`` (and the audit's
    CSV stream) create, when a killed run left them behind: only names of exactly that form,
    only regular files (never a link), only those untouched for ``STALE_PART_SECONDS``; with
    ``name``, only the temp files of that one output. Returns the names removed."""
    removed: list[str] = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not _PART_NAME.match(entry.name):
            continue
        if name is not None and not entry.name.startswith(f".{name}."):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or now - st.st_mtime < STALE_PART_SECONDS:
                continue
            os.unlink(entry.path)
            removed.append(entry.name)
        except OSError:
            continue
    return removed


def probe_writable(folder: Path, create: bool = True) -> Path:
    """Prove a file can be written in `folder` (OSError if not). `create`: make the folder
    first; else test the nearest existing ancestor, leaving nothing behind."""
    folder = Path(folder).expanduser()
    if create:
        folder.mkdir(parents=True, exist_ok=True)
        where = folder
    else:
        where = folder.absolute()
        while not where.exists() and where != where.parent:
            where = where.parent
        if not where.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, f"{where} is a file")
    fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=where)
    os.close(fd)
    os.unlink(probe)
    return folder
