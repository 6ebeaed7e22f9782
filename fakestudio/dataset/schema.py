"""The dataset format: what `prepare` writes and `load_dataset` reads back for the trainer.

See docs/dataset.md. Privacy: dataset.json holds sha256 hashes of the source files, never
their paths or names.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from detectors.fingerprint import sha256_file
from fakestudio.errors import UserError

FORMAT = "fakestudio.dataset/1"
DATASET_JSON = "dataset.json"
IMAGES_DIR = "images"
CAPTION_SUFFIX = ".txt"

# Files considered photos (case-insensitive). Everything else in the folder is ignored, except
# the same-named .txt caption files. Pillow reads most of these; HEIC/HEIF only with a plugin.
PHOTO_SUFFIXES = frozenset(
    ".jpg .jpeg .jpe .jfif .png .webp .bmp .tif .tiff .gif .avif .heic .heif .jp2 .j2k "
    ".ppm .pgm .pbm .pnm .tga .dib .ico .psd".split()
)
MAX_BUCKET_ASPECT = 2.0
BUCKET_STEP = 64


# -- the format ---------------------------------------------------------------------------------


@dataclass
class Consent:
    statement: str
    recorded: str  # ISO 8601 with offset, UTC


@dataclass
class DatasetImage:
    file: str  # relative to the dataset folder: "images/0001.png"
    caption: str
    width: int
    height: int
    bucket: tuple[int, int]  # (width, height); equals (width, height) of the PNG
    sha256: str  # of the prepared PNG
    source_sha256: str  # of the original photo file
    face: bool  # True when cropped around a detected face


@dataclass
class Skipped:
    index: int  # the photo's position (1-based) in the sorted folder listing
    reason: str


@dataclass
class Duplicate:
    index: int
    duplicate_of: int  # the index of the photo that was kept: images/{duplicate_of:04d}.png
    bits: int  # Hamming distance of the two perceptual hashes (0..64)


@dataclass
class Dataset:
    root: Path  # the dataset folder (not stored in dataset.json)
    token: str
    class_word: str
    resolution: int
    person: bool
    consent: Consent | None  # always set when person is True
    created_by: str
    images: list[DatasetImage]
    skipped: list[Skipped] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    fingerprint: str = ""
    format: str = FORMAT

    def path(self, image: DatasetImage) -> Path:
        return self.root / image.file

    def buckets(self) -> dict[tuple[int, int], int]:
        """{(width, height): number of images}, in bucket order."""
        out: dict[tuple[int, int], int] = {}
        for im in sorted(self.images, key=lambda i: i.bucket):
            out[im.bucket] = out.get(im.bucket, 0) + 1
        return out

    def to_json(self) -> dict:
        return {
            "format": self.format,
            "token": self.token,
            "class_word": self.class_word,
            "resolution": self.resolution,
            "person": self.person,
            "consent": asdict(self.consent) if self.consent else None,
            "created_by": self.created_by,
            "images": [{**asdict(i), "bucket": list(i.bucket)} for i in self.images],
            "skipped": [asdict(s) for s in self.skipped],
            "duplicates": [asdict(d) for d in self.duplicates],
            "warnings": list(self.warnings),
            "fingerprint": self.fingerprint,
        }


def compute_fingerprint(images: list[DatasetImage]) -> str:
    """sha256 over the lines "<png sha256>\\t<caption>\\n", sorted, UTF-8."""
    lines = sorted(f"{i.sha256}\t{i.caption}\n" for i in images)
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()


def has_token(caption: str, token: str) -> bool:
    """True when `token` stands as a whole word in `caption` (case-insensitive, as CLIP is)."""
    return re.search(rf"(?<!\w){re.escape(token)}(?!\w)", caption, re.IGNORECASE) is not None


def buckets_for(resolution: int) -> list[tuple[int, int]]:
    """Aspect-ratio buckets (width, height): sides multiples of 64, area <= resolution^2,
    aspect at most 2:1, each portrait bucket mirrored as a landscape one; sorted by width.

    512 -> 384x640, 448x576, 512x512, 576x448, 640x384."""
    area = resolution * resolution
    out = set()
    for w in range(BUCKET_STEP, resolution + 1, BUCKET_STEP):
        h = (area // w) // BUCKET_STEP * BUCKET_STEP
        if h / w <= MAX_BUCKET_ASPECT:
            out |= {(w, h), (h, w)}
    return sorted(out)


def nearest_bucket(width: float, height: float, buckets: list[tuple[int, int]]) -> tuple[int, int]:
    """The bucket whose aspect is nearest (in log scale) to width/height; ties: the squarer."""
    aspect = math.log(width / height)
    return min(buckets, key=lambda b: (abs(math.log(b[0] / b[1]) - aspect), abs(b[0] - b[1])))


# -- loading (for the trainer) ------------------------------------------------------------------


def _bad(path: Path, what: str) -> UserError:
    return UserError(f"{path}: {what}; run `fakestudio prepare` again to rebuild it")


def load_dataset(path: str | Path, *, verify: bool = True) -> Dataset:
    """Read and validate DATASET/dataset.json (or the file itself). Every problem is a UserError.

    With `verify` (default) each image's sha256 and size are checked against the record and the
    fingerprint is recomputed: `Dataset.fingerprint` is always the recomputed one; when it
    differs from the stored one (captions edited by hand) a warning is added."""
    path = Path(path).expanduser()
    root = path.parent if path.name == DATASET_JSON and path.is_file() else path
    meta = root / DATASET_JSON
    if not root.exists():
        raise UserError(f"{root}: no such dataset folder")
    if not meta.is_file():
        raise UserError(
            f"{root}: no {DATASET_JSON} here; make a dataset with "
            f"`fakestudio prepare PHOTOS/ --token TOKEN --out {root}`"
        )
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise _bad(meta, f"not UTF-8 text ({e.reason})") from e
    except json.JSONDecodeError as e:
        raise _bad(meta, f"not valid JSON (line {e.lineno}: {e.msg})") from e
    except OSError as e:
        raise UserError(f"{meta}: cannot read ({e.strerror or e})") from e
    if not isinstance(data, dict):
        raise _bad(meta, "not a JSON object")
    fmt = data.get("format")
    if fmt != FORMAT:
        if isinstance(fmt, str) and fmt.startswith("fakestudio.dataset/"):
            raise UserError(
                f"{meta}: dataset format {fmt!r}; this fakestudio reads {FORMAT!r} "
                "(update fakestudio, or prepare the dataset again)"
            )
        raise _bad(meta, f"not a fakestudio dataset (format {fmt!r}, expected {FORMAT!r})")

    def need(obj: dict, key: str, kind, where: str = ""):
        value = obj.get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise _bad(meta, f"missing or invalid {where}{key!r}")
        return value

    token = need(data, "token", str).strip()
    if not token:
        raise _bad(meta, "empty 'token'")
    class_word = need(data, "class_word", str)
    resolution = need(data, "resolution", int)
    person = need(data, "person", bool)
    created_by = data.get("created_by") if isinstance(data.get("created_by"), str) else ""
    consent = None
    if data.get("consent") is not None:
        c = need(data, "consent", dict)
        consent = Consent(
            need(c, "statement", str, "consent."), need(c, "recorded", str, "consent.")
        )
    if person and (consent is None or not consent.statement.strip()):
        raise _bad(meta, "a dataset of a person without a consent statement")

    images: list[DatasetImage] = []
    for n, raw in enumerate(need(data, "images", list)):
        where = f"images[{n}]."
        if not isinstance(raw, dict):
            raise _bad(meta, f"images[{n}] is not an object")
        file = need(raw, "file", str, where)
        rel = Path(file)
        if rel.is_absolute() or ".." in rel.parts or not file.strip():
            raise _bad(meta, f"{where}file {file!r} is not a path inside the dataset")
        bucket = need(raw, "bucket", list, where)
        if len(bucket) != 2 or not all(isinstance(v, int) and v > 0 for v in bucket):
            raise _bad(meta, f"{where}bucket {bucket!r} is not [width, height]")
        img = DatasetImage(
            file=file,
            caption=need(raw, "caption", str, where),
            width=need(raw, "width", int, where),
            height=need(raw, "height", int, where),
            bucket=(bucket[0], bucket[1]),
            sha256=need(raw, "sha256", str, where),
            source_sha256=need(raw, "source_sha256", str, where),
            face=bool(raw.get("face", False)),
        )
        if (img.width, img.height) != img.bucket:
            raise _bad(meta, f"{file}: size {img.width}x{img.height} differs from its bucket")
        if not has_token(img.caption, token):
            raise UserError(
                f"{meta}: the caption of {file} does not contain the token {token!r} "
                f"({img.caption!r}); add it, or prepare the dataset again"
            )
        if not (root / rel).is_file():
            raise UserError(
                f"{root}: image {file} is missing; prepare the dataset again (nothing to train on "
                "for that caption)"
            )
        images.append(img)
    if not images:
        raise _bad(meta, "no images")

    skipped = [
        Skipped(int(s.get("index", 0)), str(s.get("reason", "")))
        for s in data.get("skipped") or []
        if isinstance(s, dict)
    ]
    duplicates = [
        Duplicate(int(d.get("index", 0)), int(d.get("duplicate_of", 0)), int(d.get("bits", 0)))
        for d in data.get("duplicates") or []
        if isinstance(d, dict)
    ]
    warn = [str(w) for w in data.get("warnings") or []]
    ds = Dataset(
        root=root,
        token=token,
        class_word=class_word,
        resolution=resolution,
        person=person,
        consent=consent,
        created_by=created_by,
        images=images,
        skipped=skipped,
        duplicates=duplicates,
        warnings=warn,
        fingerprint=str(data.get("fingerprint", "")),
    )
    if verify:
        _verify_files(ds)
    return ds


def _verify_files(ds: Dataset) -> None:
    from PIL import Image

    for img in ds.images:
        p = ds.path(img)
        if sha256_file(p) != img.sha256:
            raise UserError(
                f"{ds.root}: {img.file} changed since it was prepared (sha256 differs); "
                "prepare the dataset again so its record stays true"
            )
        try:
            with Image.open(p) as im:
                size = im.size
        except Exception as e:  # any decoder failure is a bad dataset file
            raise UserError(f"{ds.root}: {img.file} is not a readable image ({e})") from e
        if size != img.bucket:
            raise UserError(f"{ds.root}: {img.file} is {size[0]}x{size[1]}, recorded {img.bucket}")
        side = p.with_suffix(CAPTION_SUFFIX)
        if side.is_file():
            try:
                text = " ".join(side.read_text(encoding="utf-8").split())
            except (OSError, UnicodeDecodeError):
                text = None
            if text is not None and text != img.caption:
                ds.warnings.append(
                    f"{side.relative_to(ds.root).as_posix()} differs from the caption in "
                    f"{DATASET_JSON}; fakestudio train uses {DATASET_JSON}"
                )
    actual = compute_fingerprint(ds.images)
    if ds.fingerprint and actual != ds.fingerprint:
        ds.warnings.append(
            "captions were edited after prepare: the dataset fingerprint was recomputed"
        )
    ds.fingerprint = actual
