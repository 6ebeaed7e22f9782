"""Uploaded images: bounded in bytes while they arrive, checked against the CLI's
image-bomb rules before any pixel is decoded, kept only in a private temporary folder for the
length of the request. Names are reduced to a bare file name (no folders, no control
characters): they appear in reports and pages, never as a path on this machine.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from starlette.datastructures import UploadFile
from starlette.requests import Request

MULTIPART_OVERHEAD = 64 * 1024  # headers and boundaries around the files of one request
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")


class UploadRefused(Exception):
    """A request whose upload is refused: HTTP status, a stable code, one line."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Upload:
    name: str  # a bare, safe file name
    path: Path  # inside the request's private temporary folder
    size: int


def safe_name(name: str | None, fallback: str = "upload") -> str:
    """The last component of a client's file name, without control characters, at most 120
    characters; `fallback` when nothing is left."""
    base = re.split(r"[/\\]", name or "")[-1]
    base = _UNSAFE.sub("", base).strip().lstrip(".")
    if len(base) > 120:
        stem, dot, ext = base.rpartition(".")
        base = (stem[: 110 - len(ext)] + dot + ext) if dot and len(ext) <= 8 else base[:120]
    return base or fallback


class UploadFolder:
    """A private temporary folder (mode 0700) for one request's files; removed on exit."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="fakestudio-web-"))

    def __enter__(self) -> UploadFolder:
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


async def read_images(
    request: Request, fields: tuple[str, ...], max_bytes: int, folder: UploadFolder
) -> dict[str, Upload]:
    """The named file fields of a multipart request, each saved into `folder` under its safe
    name (in its own sub-folder, so two uploads may share a name). Refuses with 413 a body
    over the limit while it arrives, and with 400 a request without one of the fields."""
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        raise UploadRefused(
            415, "not-multipart", "send the image as multipart/form-data (field 'file')"
        )
    limit = max_bytes * len(fields) + MULTIPART_OVERHEAD
    length = request.headers.get("content-length")
    if length is not None:
        try:
            too_big = int(length) > limit
        except ValueError:
            raise UploadRefused(400, "bad-request", "bad Content-Length") from None
        if too_big:
            raise UploadRefused(413, "too-large", f"upload over {max_bytes // 2**20} MB")
    counted = Request(request.scope, _bounded_receive(request.receive, limit, max_bytes))
    try:
        form = await counted.form(max_files=len(fields), max_fields=8, max_part_size=64 * 1024)
    except UploadRefused:
        raise
    except Exception as e:  # noqa: BLE001 - a malformed body: Starlette's parser says why
        raise UploadRefused(400, "bad-multipart", f"malformed upload ({e})") from None
    try:
        out: dict[str, Upload] = {}
        for i, field in enumerate(fields):
            item = form.get(field)
            if not isinstance(item, UploadFile):
                raise UploadRefused(400, "missing-file", f"no file in field {field!r}")
            name = safe_name(item.filename, fallback=f"{field}.img")
            sub = folder.root / str(i)
            sub.mkdir()
            path = sub / name
            size = 0
            with open(path, "wb") as fh:
                while chunk := await item.read(1 << 20):
                    size += len(chunk)
                    if size > max_bytes:
                        raise UploadRefused(
                            413, "too-large", f"{name}: over {max_bytes // 2**20} MB"
                        )
                    fh.write(chunk)
            out[field] = Upload(name, path, size)
        return out
    finally:
        await form.close()


def _bounded_receive(receive, limit: int, max_bytes: int):
    seen = 0

    async def inner():
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise UploadRefused(413, "too-large", f"upload over {max_bytes // 2**20} MB")
        return message

    return inner


def bomb_check(upload: Upload) -> None:
    """The CLI's decompression-bomb rules (detectors.image_io: at most 64 MP and 65,535 px a
    side in the header, 256 MB a file), applied before anything decodes the pixels: 413.
    Other problems (not an image, truncated) are left to the report, as `verify` does."""
    from detectors import image_io

    im, info = image_io.open_image(upload.path)
    if im is not None:
        im.close()
        return
    reason = str(info.get("reason") or "")
    if "decompression-bomb" in reason or "too large" in reason:
        raise UploadRefused(413, "too-large", f"{upload.name}: {reason}")
