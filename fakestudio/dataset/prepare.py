"""`prepare_dataset`: a folder of photos -> `DATASET/dataset.json` + `DATASET/images/NNNN.png`.

Reads every photo, keeps or writes its caption, drops near-duplicates by perceptual hash,
crops around the largest face (or the centre) to the nearest aspect-ratio bucket, and writes
the set atomically (temp folder, then rename).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from detectors.fingerprint import hamming, phash_hex, sha256_bytes
from fakestudio.dataset.crops import (
    FaceDetector,
    choose_bucket,
    haar_face_detector,
    png_bytes,
    render,
)
from fakestudio.dataset.photos import (
    DEFAULT_MAX_PIXELS,
    MAX_FILE_BYTES,
    SkipPhoto,
    open_photo,
    scrub,
)
from fakestudio.dataset.schema import (
    BUCKET_STEP,
    CAPTION_SUFFIX,
    DATASET_JSON,
    IMAGES_DIR,
    PHOTO_SUFFIXES,
    Consent,
    Dataset,
    DatasetImage,
    Duplicate,
    Skipped,
    buckets_for,
    compute_fingerprint,
    has_token,
)
from fakestudio.dataset.tokens import check_token, load_check_tokenizer, token_warnings
from fakestudio.errors import UserError


@dataclass
class PhotoReport:
    """What happened to one photo. `source` (the path relative to PHOTOS) is for the terminal
    and --json only: it is never written into the dataset."""

    index: int
    source: str
    status: str  # "kept" | "duplicate" | "skipped"
    reason: str = ""
    duplicate_of: int | None = None
    bits: int | None = None
    file: str | None = None
    bucket: tuple[int, int] | None = None
    face: bool = False
    caption: str = ""
    caption_from: str = ""  # "txt" | "default"
    token_inserted: bool = False
    # working state, not reported
    pixels: int = 0
    phash: str | None = None
    source_sha256: str = ""


@dataclass
class PrepareResult:
    dataset: Dataset
    out: Path
    photos: list[PhotoReport]
    face_detection: str  # "haar" | "off" | "unavailable: <why>" | "custom"

    @property
    def kept(self) -> list[PhotoReport]:
        return [p for p in self.photos if p.status == "kept"]

    def to_json(self) -> dict:
        ds = self.dataset
        return {
            "dataset": str(self.out),
            "token": ds.token,
            "kept": len(ds.images),
            "faces": sum(1 for i in ds.images if i.face),
            "face_detection": self.face_detection,
            "buckets": {f"{w}x{h}": n for (w, h), n in ds.buckets().items()},
            "images": [
                {
                    "index": p.index,
                    "source": p.source,
                    "file": p.file,
                    "bucket": list(p.bucket or ()),
                    "face": p.face,
                    "caption": p.caption,
                    "caption_from": p.caption_from,
                    "token_inserted": p.token_inserted,
                }
                for p in self.kept
            ],
            "duplicates": [
                {
                    "index": p.index,
                    "source": p.source,
                    "duplicate_of": p.duplicate_of,
                    "bits": p.bits,
                }
                for p in self.photos
                if p.status == "duplicate"
            ],
            "skipped": [
                {"index": p.index, "source": p.source, "reason": p.reason}
                for p in self.photos
                if p.status == "skipped"
            ],
            "warnings": list(ds.warnings),
            "fingerprint": ds.fingerprint,
        }


ProgressFn = Callable[[str, int, int], None]  # (stage, done, total)


def find_photos(folder: Path, exclude: list[Path] = ()) -> tuple[list[Path], int]:
    """Photo files under `folder`, recursively, sorted by relative path; hidden files and
    folders (".DS_Store", "._IMG.jpg", ".git") and `exclude` folders are passed over.
    Returns (photos, number of other files ignored)."""
    excluded = {p.resolve() for p in exclude}
    photos, other = [], 0
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and (here / d).resolve() not in excluded
        )
        for name in filenames:
            if name.startswith("."):
                continue
            p = here / name
            if p.suffix.lower() in PHOTO_SUFFIXES:
                photos.append(p)
            elif p.suffix.lower() != CAPTION_SUFFIX:
                other += 1
    photos.sort(key=lambda p: p.relative_to(folder).as_posix())
    return photos, other


def read_caption(photo: Path) -> str | None:
    """The same-named .txt beside the photo, whitespace collapsed; None when absent or empty."""
    side = photo.with_suffix(CAPTION_SUFFIX)
    if not side.is_file():
        return None
    raw = side.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    text = " ".join(text.split())
    return text or None


def _check_out(photos: Path, out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    rp, ro = photos.resolve(), out.resolve()
    if rp == ro or ro in rp.parents:
        raise UserError(f"--out {out}: contains the photos folder; choose a folder outside it")
    if out.is_dir() and any(out.iterdir()):
        if not (out / DATASET_JSON).is_file():
            raise UserError(
                f"--out {out}: not empty and not a fakestudio dataset; refusing to replace it "
                "(even with --force): choose another folder"
            )
        if not force:
            raise UserError(f"--out {out}: a dataset is already there; pass --force to replace it")


def _make_parents(folder: Path) -> list[Path]:
    """Create missing ancestors of `folder`; returns those created (deepest last)."""
    missing = []
    p = folder
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    created = []
    for d in reversed(missing):
        d.mkdir()
        created.append(d)
    return created


def _install(tmp: Path, out: Path) -> None:
    """Move the finished folder into place; an existing dataset is swapped out, then removed."""
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if not out.exists():
        os.rename(tmp, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.rmdir(old)
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def prepare_dataset(
    photos: str | Path,
    out: str | Path,
    *,
    token: str,
    class_word: str = "",
    resolution: int = 512,
    consent: str | None = None,
    person: bool = True,
    dedupe_bits: int = 6,
    min_side: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    crop: str = "face",
    base: str | None = None,
    tokenizer: str | Path | None = None,
    force: bool = False,
    face_detector: FaceDetector | None | str = "auto",
    on_progress: ProgressFn | None = None,
    now: datetime | None = None,
) -> PrepareResult:
    """Turn a folder of photos into a dataset folder (see docs/dataset.md).

    `face_detector`: "auto" (OpenCV's haar cascade when available), None (centre crops), or a
    callable RGB image -> [(x, y, w, h)]. `crop="center"` also turns face crops off.
    Every user mistake raises UserError before anything is written; one bad photo is skipped
    with its reason and never stops the set. Output is built beside `out` and renamed."""
    from fakestudio import __version__

    progress = on_progress or (lambda stage, done, total: None)
    photos, out = Path(photos).expanduser(), Path(out).expanduser()
    token = check_token(token)
    class_word = " ".join((class_word or "").split())
    if resolution % BUCKET_STEP or not 128 <= resolution <= 4096:
        raise UserError(f"--resolution {resolution}: use a multiple of 64 from 128 to 4096")
    if not 0 <= dedupe_bits <= 64:
        raise UserError(f"--dedupe-bits {dedupe_bits}: use 0 (same perceptual hash only) to 64")
    if crop not in ("face", "center"):
        raise UserError(f"--crop {crop!r}: use face or center")
    min_side = resolution // 2 if min_side is None else min_side
    statement = " ".join((consent or "").split())
    if person and not statement:
        raise UserError(
            "--consent is required for a dataset of a person: a LoRA reproduces a likeness, so "
            'record who agreed (e.g. --consent "I am the person in these photos"); '
            "use --no-person for objects or styles"
        )
    if not photos.exists():
        raise UserError(f"{photos}: no such folder")
    if not photos.is_dir():
        raise UserError(f"{photos}: not a folder (pass the folder that holds the photos)")
    _check_out(photos, out, force)

    tok, tok_name, tok_note = load_check_tokenizer(base, tokenizer)
    notes = token_warnings(token, tok, tok_name) + ([tok_note] if tok_note else [])
    if class_word and token.lower() == class_word.lower():
        notes.append(f"the token {token!r} equals the class word: choose a distinct rare token")

    files, other = find_photos(photos, exclude=[out])
    if not files:
        extra = f" ({other} other files ignored)" if other else ""
        raise UserError(
            f"{photos}: no photos found{extra}; looked recursively for "
            ".jpg .jpeg .png .webp .tif .bmp .gif .avif"
        )

    default_caption = f"photo of {token} {class_word}".strip()
    prefix = f"{token} {class_word}".strip() + ", "
    reports: list[PhotoReport] = []
    for n, path in enumerate(files, start=1):
        rep = PhotoReport(index=n, source=path.relative_to(photos).as_posix(), status="kept")
        reports.append(rep)
        try:
            data = _read_limited(path)
            rep.source_sha256 = sha256_bytes(data)
            im = open_photo(data, path.suffix, max_pixels)
            if min(im.size) < min_side:
                raise SkipPhoto(
                    f"too small: {im.width}x{im.height}, shorter side under {min_side} px "
                    "(--min-side)"
                )
            rep.phash = phash_hex(im)
            rep.pixels = im.width * im.height
            caption = read_caption(path)
            rep.caption_from = "txt" if caption else "default"
            caption = caption or default_caption
            if not has_token(caption, token):
                caption, rep.token_inserted = prefix + caption, True
            rep.caption = caption
        except Exception as e:  # never abort the set for one photo
            rep.status, rep.reason = "skipped", _skip_reason(e)
        progress("reading", n, len(files))

    _dedupe(reports, dedupe_bits)
    if not any(r.status == "kept" for r in reports):
        why = "; ".join(f"{r.source}: {r.reason}" for r in reports if r.status == "skipped")
        raise UserError(f"{photos}: no usable photos ({len(reports)} skipped: {why})")

    if crop == "center" or face_detector is None:
        detector, detection = None, "off"
    elif face_detector == "auto":
        detector, why = haar_face_detector()
        detection = "haar" if detector else f"unavailable: {why}"
        if detector is None:
            notes.append(f"face detection unavailable ({why}): every photo was centre-cropped")
    else:
        detector, detection = face_detector, "custom"

    buckets = buckets_for(resolution)
    created: list[Path] = []
    tmp: Path | None = None
    try:
        try:
            created = _make_parents(out.parent)
            tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent))
            (tmp / IMAGES_DIR).mkdir()
        except OSError as e:
            raise UserError(
                f"--out {out}: cannot write there ({e.strerror or scrub(str(e))})"
            ) from e
        images = _render_all(reports, files, tmp, buckets, detector, max_pixels, progress)
        if not images:
            why = "; ".join(f"{r.source}: {r.reason}" for r in reports if r.status == "skipped")
            raise UserError(f"{photos}: no usable photos ({why})")
        notes += _summary_warnings(reports, person, detector is not None, token)
        recorded = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
        ds = Dataset(
            root=out,
            token=token,
            class_word=class_word,
            resolution=resolution,
            person=person,
            consent=Consent(statement, recorded.isoformat(timespec="seconds"))
            if statement
            else None,
            created_by=f"fakestudio {__version__}",
            images=images,
            skipped=[Skipped(r.index, r.reason) for r in reports if r.status == "skipped"],
            duplicates=[
                Duplicate(r.index, r.duplicate_of, r.bits)
                for r in reports
                if r.status == "duplicate"
            ],
            warnings=notes,
        )
        ds.fingerprint = compute_fingerprint(images)
        text = json.dumps(ds.to_json(), indent=2, ensure_ascii=False) + "\n"
        try:
            _write(tmp / DATASET_JSON, text.encode("utf-8"))
        except OSError as e:
            raise UserError(f"cannot write the dataset: {e.strerror or scrub(str(e))}") from e
        _fsync_dir(tmp / IMAGES_DIR)
        _fsync_dir(tmp)
        try:
            _install(tmp, out)
        except OSError as e:
            raise UserError(
                f"--out {out}: cannot move the dataset into place ({e.strerror})"
            ) from e
        tmp = None
        created = []
        _fsync_dir(out.parent)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        for d in reversed(created):
            try:
                d.rmdir()
            except OSError:
                pass
    return PrepareResult(dataset=ds, out=out, photos=reports, face_detection=detection)


def _read_limited(path: Path) -> bytes:
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise SkipPhoto(f"too large: {size / 2**20:.0f} MB file")
    return path.read_bytes()


def _dedupe(reports: list[PhotoReport], bits: int) -> None:
    """Near-duplicates (pHash distance <= bits): the photo with the most pixels is kept (the
    earlier one on a tie); the others point at it."""
    cands = sorted((r for r in reports if r.status == "kept"), key=lambda r: (-r.pixels, r.index))
    kept: list[PhotoReport] = []
    for r in cands:
        best = min(kept, key=lambda k: (hamming(k.phash, r.phash), k.index), default=None)
        if best is not None and hamming(best.phash, r.phash) <= bits:
            r.status, r.duplicate_of, r.bits = "duplicate", best.index, hamming(best.phash, r.phash)
        else:
            kept.append(r)


def _skip_reason(e: Exception) -> str:
    if isinstance(e, SkipPhoto):
        return str(e)
    if isinstance(e, OSError):
        return f"unreadable: {e.strerror or scrub(str(e))}"
    return f"unreadable: {type(e).__name__}: {scrub(str(e))}"


def _render_one(r: PhotoReport, path: Path, buckets, detector, max_pixels: int):
    """(png bytes, bucket, face box or None) for a photo that passed the first look."""
    data = _read_limited(path)
    if sha256_bytes(data) != r.source_sha256:
        raise SkipPhoto("changed while the dataset was being prepared")
    im = open_photo(data, path.suffix, max_pixels)
    face = None
    if detector is not None:
        faces = list(detector(im))
        if faces:
            face = max(faces, key=lambda b: (b[2] * b[3], -b[0]))
    bucket = choose_bucket(im.width, im.height, buckets, face)
    return png_bytes(render(im, bucket, face)), bucket, face


def _render_all(reports, files, tmp, buckets, detector, max_pixels, progress) -> list[DatasetImage]:
    images = []
    todo = [r for r in reports if r.status == "kept"]
    for done, r in enumerate(todo, start=1):
        try:
            png, bucket, face = _render_one(r, files[r.index - 1], buckets, detector, max_pixels)
        except Exception as e:  # never abort the set for one photo
            r.status, r.reason = "skipped", _skip_reason(e)
            progress("cropping", done, len(todo))
            continue
        name = f"{r.index:04d}"
        rel = f"{IMAGES_DIR}/{name}.png"
        try:  # a failed write is the output's problem, not the photo's: stop the whole run
            _write(tmp / rel, png)
            _write(tmp / IMAGES_DIR / f"{name}{CAPTION_SUFFIX}", (r.caption + "\n").encode("utf-8"))
        except OSError as e:
            raise UserError(f"cannot write the dataset: {e.strerror or scrub(str(e))}") from e
        r.file, r.bucket, r.face = rel, bucket, face is not None
        images.append(
            DatasetImage(
                file=rel,
                caption=r.caption,
                width=bucket[0],
                height=bucket[1],
                bucket=bucket,
                sha256=sha256_bytes(png),
                source_sha256=r.source_sha256,
                face=face is not None,
            )
        )
        progress("cropping", done, len(todo))
    return images


def _summary_warnings(reports, person: bool, detecting: bool, token: str) -> list[str]:
    kept = [r for r in reports if r.status == "kept"]
    out = []
    inserted = [r for r in kept if r.token_inserted]
    if inserted:
        which = ", ".join(f"{r.index:04d}" for r in inserted[:20])
        more = f" and {len(inserted) - 20} more" if len(inserted) > 20 else ""
        out.append(
            f"the token {token!r} was missing from {len(inserted)} caption(s) and was "
            f"inserted: {which}{more}"
        )
    if len(kept) < 5:
        out.append(f"only {len(kept)} image(s): 15-30 varied photos make a better personal LoRA")
    if person and detecting and not any(r.face for r in kept):
        out.append("no face was found in any photo: check that the photos show the person")
    return out


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
