"""Training datasets: a folder of photos -> `DATASET/dataset.json` + `DATASET/images/NNNN.png`.

`prepare_dataset` reads every photo (EXIF orientation applied, any Pillow mode made RGB), keeps
or writes its caption, drops near-duplicates by perceptual hash, crops around the largest face
(or the centre) to the nearest aspect-ratio bucket, and writes the set atomically. `load_dataset`
reads it back for the trainer, validating everything it relies on. The format is in
docs/dataset.md.

Privacy: dataset.json holds sha256 hashes of the source files, never their paths or names
(photos are numbered by their position in the sorted folder listing), and the prepared PNGs
carry no EXIF, ICC profile or text chunks.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
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
DEFAULT_MAX_PIXELS = 120_000_000  # decompression-bomb guard: larger than any camera sensor
MAX_FILE_BYTES = 512 * 1024 * 1024
MAX_BUCKET_ASPECT = 2.0
BUCKET_STEP = 64
HAAR_CASCADE = "haarcascade_frontalface_default.xml"
DETECT_MAX_SIDE = 640  # faces are searched on a copy at most this large (faces >= 1/12 of it)

# A few hundred common English words (and words that already mean something to Stable
# Diffusion). A trigger token that is one of them fights the meaning the model already has.
COMMON_WORDS = frozenset(
    """
    a about above across act add after again against age ago air all almost alone along
    already also always am among an and animal another answer any anything are area arm army
    around art as ask at away baby back bad bag ball bank bar base be beach bear beautiful bed
    before begin behind believe best better between big bird black blue board boat body book
    born both box boy bread break bring brother brown build building business but buy by call
    came can car card care carry case cat cause center chair change child children city class
    clear close cloud cold color come common cool could country course cover cry cut dad dark
    day dead dear death deep did die different do doctor does dog door down draw dream dress
    drink drive dry during each ear early earth east easy eat egg end enough even evening ever
    every eye face fact fall family far farm fast father fear feel feet few field fight figure
    fill find fine fire first fish five floor flower fly follow food foot for force forest form
    four free friend from front full fun game garden gave get girl give glass go god gold good
    got great green ground group grow guy had hair half hand happy hard has hat have he head
    hear heart heavy help her here high hill him his hold home hope horse hot hour house how
    human hundred ice idea if in inside into is island it its job just keep key kid kind king
    knew know lady lake land large last late laugh lead learn leave left leg let letter life
    light like line lion list little live long look lord lost lot love low made make man many
    map mark may me mean men might mind miss model moment money month moon more morning most
    mother mountain mouth move much music must my name near need never new next nice night no
    north nose not note nothing now number of off office old on once one only open or order
    other our out over own page paint paper park part party pass past people person photo
    picture piece place plan plant play point poor portrait power present pretty queen quick
    quiet rain ran read ready real red rest rich ride right ring river road rock room rose round
    run sad said same sat saw say school sea second see seem self sell send set seven shape she
    ship shirt shoe short should show side sign silver simple sing sister sit six size skin sky
    sleep slow small smile snow so soft some son song soon sound south space speak special
    spring stand star start stay step still stone stop store story street strong study style
    such summer sun sure table take talk tall tea teacher team tell ten than that the their them
    then there these they thing think this those three through time to today together told too
    took top town tree true try turn two under up upon us use very voice wait walk wall want war
    warm was watch water way we wear weather week well went were west what wheel when where
    which while white who whole why wide wife wild will wind window winter with woman women wood
    word work world would write year yellow yes yet you young your
    sks
    """.split()
)
# Characters Automatic1111 reads as prompt syntax (emphasis, alternation, LoRA tags, weights).
PROMPT_SYNTAX = set("()[]{}<>:|,\\")


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


# -- photos -------------------------------------------------------------------------------------


class _Skip(Exception):
    """This photo cannot be used; the message is the reason (no file names in it)."""


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _scrub(message: str) -> str:
    """An exception message without object addresses (file names never reach it: we decode
    from memory)."""
    message = re.sub(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>", "the data", message)
    message = " ".join(message.split())
    return message[:200] or "unknown error"


def _looks_like_text(data: bytes) -> bool:
    head = data[:512]
    if not head or b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def open_photo(data: bytes, suffix: str = "", max_pixels: int = DEFAULT_MAX_PIXELS):
    """Decode a photo's bytes to an upright RGB image, or raise _Skip with the reason."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise _Skip("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise _Skip(f"too large: {_scrub(str(e))} (decompression-bomb guard)") from e
    except UnidentifiedImageError as e:
        if suffix.lower() in (".heic", ".heif"):
            raise _Skip(
                "unreadable: HEIC/HEIF needs the pillow-heif plugin; export the photo as JPEG"
            ) from e
        if _looks_like_text(data):
            raise _Skip("unreadable: a text file, not an image") from e
        raise _Skip("unreadable: not an image format Pillow can read") from e
    except Exception as e:  # a broken header is a skip, never an abort
        raise _Skip(f"unreadable: {_scrub(str(e))}") from e
    w, h = im.size
    if w * h > max_pixels:
        raise _Skip(
            f"too large: {w}x{h} is {w * h / 1e6:.0f} MP, over the {max_pixels / 1e6:.0f} MP "
            "decompression-bomb guard"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im.load()
    except Exception as e:
        raise _Skip(f"corrupt: {_scrub(str(e))}") from e
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # malformed EXIF: keep the stored orientation
        pass
    return to_rgb(im)


def to_rgb(im):
    """Any Pillow mode -> 8-bit RGB: alpha composited on white, 16-bit scaled, CMYK and
    embedded ICC profiles converted to sRGB where LittleCMS can."""
    import numpy as np
    from PIL import Image

    mode = im.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        a = np.asarray(im).astype(np.float64)
        if mode.startswith("I;16") or (mode == "I" and a.max(initial=0) > 255):
            a = a / 257.0
        elif mode == "F" and a.max(initial=0) <= 1.0:
            a = a * 255.0
        im = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
        mode = "L"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    icc = im.info.get("icc_profile")
    if icc and mode in ("RGB", "CMYK", "L"):
        converted = _icc_to_srgb(im, icc)
        if converted is not None:
            return converted
    return im if mode == "RGB" else im.convert("RGB")


def _icc_to_srgb(im, icc: bytes):
    try:
        from PIL import ImageCms

        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
    except Exception:  # an odd profile: fall back to a plain conversion
        return None


# -- faces and crops ----------------------------------------------------------------------------

FaceBox = tuple[int, int, int, int]  # x, y, width, height in image pixels
FaceDetector = Callable[[object], list[FaceBox]]  # an RGB PIL image -> face boxes


def haar_face_detector() -> tuple[FaceDetector | None, str | None]:
    """OpenCV's bundled frontal-face haar cascade, or (None, why it is unavailable)."""
    try:
        import cv2
    except ImportError:
        return None, "OpenCV (cv2) is not installed"
    version = getattr(cv2, "__version__", "?")
    if not hasattr(cv2, "CascadeClassifier"):
        return None, (
            f"OpenCV {version} has no haar cascade detector (CascadeClassifier left OpenCV's "
            "main package in 5.0); install opencv-python<5 for face crops"
        )
    folder = getattr(getattr(cv2, "data", None), "haarcascades", "") or ""
    xml = Path(folder) / HAAR_CASCADE
    if not xml.is_file():
        return None, f"OpenCV {version} ships no {HAAR_CASCADE}"
    clf = cv2.CascadeClassifier(str(xml))
    if clf.empty():
        return None, f"OpenCV {version} could not load {HAAR_CASCADE}"

    def detect(im) -> list[FaceBox]:
        import numpy as np

        w, h = im.size
        scale = min(1.0, DETECT_MAX_SIDE / max(w, h))
        small = im if scale == 1.0 else im.resize((round(w * scale), round(h * scale)))
        gray = np.asarray(small.convert("L"))
        side = max(24, min(gray.shape) // 12)  # ignore faces under 1/12 of the short side
        # minNeighbors 10: real faces gather 20-60 overlapping hits, the false positives seen on
        # foliage, ribbons and smooth noise 4-9 (histogram equalisation only added more of those)
        found = clf.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=10, minSize=(side, side))
        return [tuple(round(float(v) / scale) for v in box) for box in found]

    return detect, None


def head_and_shoulders(face: FaceBox) -> tuple[float, float, float, float]:
    """The face box grown to head and shoulders: 2.6 face-widths wide, 3.2 face-heights tall
    (0.6 above the box for hair, 1.6 below it for neck and shoulders)."""
    fx, fy, fw, fh = (float(v) for v in face)
    return fx - 0.8 * fw, fy - 0.6 * fh, fx + 1.8 * fw, fy + 2.6 * fh


def choose_bucket(
    width: int, height: int, buckets: list[tuple[int, int]], face: FaceBox | None = None
) -> tuple[int, int]:
    """The bucket nearest the aspect of what will be kept: the head-and-shoulders box (clipped
    to the photo) when there is a face, else the whole photo."""
    if face is None:
        return nearest_bucket(width, height, buckets)
    x0, y0, x1, y1 = head_and_shoulders(face)
    x0, y0, x1, y1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height))
    if x1 - x0 < 1 or y1 - y0 < 1:
        return nearest_bucket(width, height, buckets)
    return nearest_bucket(x1 - x0, y1 - y0, buckets)


def crop_box(
    width: int, height: int, bucket: tuple[int, int], face: FaceBox | None = None
) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of the region with the bucket's aspect that becomes the image.

    Without a face: the largest centred region. With one: the head-and-shoulders box, grown to
    the bucket's aspect and to at least the bucket's pixel size, shrunk to fit the photo, then
    shifted inside the photo; the top of the head is kept when the region must shrink."""
    bw, bh = bucket
    aspect = bw / bh
    max_w = min(float(width), height * aspect)
    max_h = max_w / aspect
    if face is None:
        return _inside((width - max_w) / 2, (height - max_h) / 2, max_w, max_h, width, height)
    fx, fy, fw, fh = (float(v) for v in face)
    ex0, ey0, ex1, ey1 = head_and_shoulders(face)
    cw = max(ex1 - ex0, (ey1 - ey0) * aspect)
    cw = max(cw, float(bw))
    cw = min(cw, max_w)
    ch = cw / aspect
    left = (ex0 + ex1) / 2 - cw / 2
    top = (ey0 + ey1) / 2 - ch / 2
    top = min(top, fy - 0.3 * fh)  # never cut the top of the head to show more chest
    return _inside(left, top, cw, ch, width, height)


def _inside(left, top, w, h, width, height) -> tuple[float, float, float, float]:
    """The box shifted into the image, rounding errors clamped (Pillow refuses -1e-14)."""
    left = min(max(left, 0.0), max(width - w, 0.0))
    top = min(max(top, 0.0), max(height - h, 0.0))
    return left, top, min(left + w, float(width)), min(top + h, float(height))


def render(im, bucket: tuple[int, int], face: FaceBox | None):
    """Crop and Lanczos-resize an RGB image to the bucket; a fresh image with no metadata."""
    from PIL import Image

    box = crop_box(im.width, im.height, bucket, face)
    out = im.resize(bucket, Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
    out.info = {}
    return out


def png_bytes(im) -> bytes:
    """PNG with no EXIF, ICC profile or text chunks."""
    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=6)
    return buf.getvalue()


# -- the token ----------------------------------------------------------------------------------


def check_token(token: str) -> str:
    token = token.strip() if token else ""
    if not token:
        raise UserError("--token must not be empty: choose a rare word, e.g. ben0a")
    if any(c.isspace() for c in token):
        raise UserError(f"--token {token!r} must be one word (no spaces), e.g. ben0a")
    bad = sorted(set(token) & PROMPT_SYNTAX)
    if bad:
        raise UserError(
            f"--token {token!r} contains {''.join(bad)!r}, which Automatic1111 reads as prompt "
            "syntax; use letters and digits, e.g. ben0a"
        )
    return token


def token_warnings(token: str, tokenizer=None, tokenizer_name: str = "") -> list[str]:
    """Why `token` may be a poor trigger word: a common word, or a whole token already known to
    the tokenizer (it then carries a meaning the LoRA must fight)."""
    out = []
    if token.lower() in COMMON_WORDS:
        out.append(
            f"the token {token!r} is a common word: the base model already has a meaning for it; "
            "a rare made-up word (e.g. ben0a, ohwx) trains faster and leaks less"
        )
    if tokenizer is not None and is_whole_token(tokenizer, token):
        out.append(
            f"the token {token!r} is already one whole token in the {tokenizer_name or 'base'} "
            "tokenizer's vocabulary: it carries a meaning the LoRA must overwrite"
        )
    return out


def is_whole_token(tokenizer, token: str) -> bool:
    """True when `token` encodes to a single vocabulary entry longer than one byte/character,
    or is in the vocabulary as `token</w>` (CLIP's end-of-word form)."""
    try:
        vocab = tokenizer.get_vocab()
    except Exception:
        vocab = {}
    if f"{token.lower()}</w>" in vocab and len(token) > 1:
        return True
    try:
        ids = tokenizer(token, add_special_tokens=False)["input_ids"]
    except Exception:
        return False
    if len(ids) != 1:
        return False
    piece = str(tokenizer.convert_ids_to_tokens(ids[0]))
    return len(piece.removesuffix("</w>")) > 1


def load_check_tokenizer(base: str = "tiny", tokenizer: str | Path | None = None):
    """(tokenizer or None, display name, note or None) for the whole-token check.

    `--tokenizer DIR` wins; else the base's: the tiny base (its folder when built, else the same
    byte-level vocabulary built in memory, without torch), a diffusers folder's tokenizer/, a
    tokenizer folder, a cached hub id; a single-file checkpoint uses an installed CLIP vocabulary
    if there is one. A base that does not exist is a UserError."""
    from fakestudio.single_file import (
        _is_tokenizer_dir,
        clip_tokenizer_from_bpe,
        installed_clip_bpe,
    )

    def from_dir(folder: Path):
        from transformers import CLIPTokenizer

        try:
            return CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
        except Exception as e:
            raise UserError(f"{folder}: cannot read the tokenizer ({_scrub(str(e))})") from e

    def pick(folder: Path):
        for cand in (folder / "tokenizer", folder):
            if _is_tokenizer_dir(cand):
                return cand
        return None

    if tokenizer is not None:
        folder = Path(tokenizer).expanduser()
        found = pick(folder)
        if found is None:
            raise UserError(
                f"--tokenizer {folder}: no CLIP tokenizer there (vocab.json + merges.txt)"
            )
        return from_dir(found), folder.name, None
    if base == "tiny":
        from fakestudio.tiny import byte_tokenizer, tiny_dir

        found = pick(tiny_dir())
        if found is not None:
            return from_dir(found), "tiny", None
        return byte_tokenizer(), "tiny", None
    path = Path(base).expanduser()
    if path.is_dir():
        found = pick(path)
        if found is None:
            raise UserError(f"--base {base}: no tokenizer/ folder there; pass --tokenizer DIR")
        return from_dir(found), path.resolve().name, None
    if path.is_file():
        bpe = installed_clip_bpe()
        if bpe is not None:
            return clip_tokenizer_from_bpe(bpe), "CLIP", None
        return (
            None,
            path.name,
            (
                f"--base {path.name} carries no tokenizer: the token was not checked against its "
                "vocabulary (pass --tokenizer DIR)"
            ),
        )
    from fakestudio.models import _hub_cached_folder, _looks_like_path

    if _looks_like_path(base):
        raise UserError(f"--base {base}: base model not found (no such file or folder)")
    folder = _hub_cached_folder(base)
    found = pick(folder) if folder is not None else None
    if found is None:
        raise UserError(
            f"--base {base}: not in the local Hugging Face cache (fakestudio never downloads); "
            "pass a local diffusers folder or --tokenizer DIR"
        )
    return from_dir(found), base, None


# -- preparing ----------------------------------------------------------------------------------


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
    phash: object = None
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
    base: str = "tiny",
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

    import imagehash

    default_caption = f"photo of {token} {class_word}".strip()
    prefix = f"{token} {class_word}".strip() + ", "
    reports: list[PhotoReport] = []
    for n, path in enumerate(files, start=1):
        rep = PhotoReport(index=n, source=path.relative_to(photos).as_posix(), status="kept")
        reports.append(rep)
        try:
            data = _read_limited(path)
            rep.source_sha256 = _sha256_bytes(data)
            im = open_photo(data, path.suffix, max_pixels)
            if min(im.size) < min_side:
                raise _Skip(
                    f"too small: {im.width}x{im.height}, shorter side under {min_side} px "
                    "(--min-side)"
                )
            rep.phash = imagehash.phash(im)
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
                f"--out {out}: cannot write there ({e.strerror or _scrub(str(e))})"
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
            raise UserError(f"cannot write the dataset: {e.strerror or _scrub(str(e))}") from e
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
        raise _Skip(f"too large: {size / 2**20:.0f} MB file")
    return path.read_bytes()


def _dedupe(reports: list[PhotoReport], bits: int) -> None:
    """Near-duplicates (pHash distance <= bits): the photo with the most pixels is kept (the
    earlier one on a tie); the others point at it."""
    cands = sorted((r for r in reports if r.status == "kept"), key=lambda r: (-r.pixels, r.index))
    kept: list[PhotoReport] = []
    for r in cands:
        best = min(kept, key=lambda k: (k.phash - r.phash, k.index), default=None)
        if best is not None and best.phash - r.phash <= bits:
            r.status, r.duplicate_of, r.bits = "duplicate", best.index, int(best.phash - r.phash)
        else:
            kept.append(r)


def _skip_reason(e: Exception) -> str:
    if isinstance(e, _Skip):
        return str(e)
    if isinstance(e, OSError):
        return f"unreadable: {e.strerror or _scrub(str(e))}"
    return f"unreadable: {type(e).__name__}: {_scrub(str(e))}"


def _render_one(r: PhotoReport, path: Path, buckets, detector, max_pixels: int):
    """(png bytes, bucket, face box or None) for a photo that passed the first look."""
    data = _read_limited(path)
    if _sha256_bytes(data) != r.source_sha256:
        raise _Skip("changed while the dataset was being prepared")
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
            raise UserError(f"cannot write the dataset: {e.strerror or _scrub(str(e))}") from e
        r.file, r.bucket, r.face = rel, bucket, face is not None
        images.append(
            DatasetImage(
                file=rel,
                caption=r.caption,
                width=bucket[0],
                height=bucket[1],
                bucket=bucket,
                sha256=_sha256_bytes(png),
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
