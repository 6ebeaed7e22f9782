"""Writing files so that nothing half-written is ever left behind."""

from __future__ import annotations

import errno
import os
import tempfile
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
