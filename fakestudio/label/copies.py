"""Labelled copies of pictures other generators made (`fakestudio label`).

Automatic1111, ComfyUI and most other generators write no label at all. A labelled copy
carries what fakestudio's own outputs carry: the invisible watermark(s), IPTC
DigitalSourceType in XMP, a signed C2PA manifest and a ledger row. The manifest says:

* `c2pa.created` by the generator (`trainedAlgorithmicMedia`) when the original has no
  credentials; when it has (any manifest, valid or not), the original is a `parentOf`
  ingredient (its manifest store copied in by c2pa) and the first action is `c2pa.opened`;
* which generator made it: named from the original's own metadata (Automatic1111 parameters,
  ComfyUI workflow, InvokeAI, NovelAI, ... via `detectors.metadata`), else as the user
  declared it (`--generator`); the assertion says which (`generator_from`);
* the watermark payload(s) as soft bindings.

The original is only read. The copy keeps its pixels (upright, alpha flattened on white) and
colour profile, not its metadata: prompts and workflows can be private and paths in them
name users. Only file names (never paths) and model file names go into the manifest, the
ledger and the XMP. Each copy's identifier derives from the original's bytes, the format and
the badge, so labelling the same file twice gives the same copy.

Every input is checked before anything is written (`plan`): a missing file, a file that is not
an image, an animation, a picture under 256 x 256 pixels, an unknown generator without
`--generator`, an output folder that is the originals' folder, two inputs that would land on
one output name: one line naming the file, nothing written.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from PIL import Image

from detectors.c2pa import TRAINED_ALGORITHMIC_MEDIA, read_c2pa
from detectors.image_io import MAX_PIXELS, load_image, open_image
from detectors.media import identify_file
from detectors.metadata import read_metadata
from detectors.watermarks import ours
from fakestudio import __version__
from fakestudio.errors import UserError
from fakestudio.label.identity import ensure_identity
from fakestudio.label.labeller import (
    EXTENSIONS,
    FORMATS,
    MIN_SIDE,
    Description,
    LabelOptions,
    Written,
    check_format,
    check_writable,
    label_pixels,
    write_output,
)
from fakestudio.label.manifest import Ingredient, build_derived_manifest
from fakestudio.record import GENERATOR_NAME

PARENT = "original"  # the ingredient label of the original in the manifest
_COPY_ID_KEY = b"fakestudio-label-copy-v1"
_MIME_FORMAT = {mime: fmt for fmt, mime in FORMATS.items()}
#: formats whose several frames are pages or pictures, not an animation: the first page (the
#: primary picture of a HEIF) is labelled
_PAGED = ("TIFF", "HEIF")


@dataclass
class CopyConfig:
    out: Path
    generator: str | None = None  # declared; used when the metadata names none
    fmt: str | None = None  # None: the original's format when png/jpeg/webp, else png
    badge: bool = False
    ledger_path: Path | None = None  # default: the user data directory


@dataclass
class Source:
    """One checked input and what will be written for it."""

    path: Path
    out_path: Path
    fmt: str
    generator: str
    generator_from: str  # "metadata" | "declared"
    models: dict  # {"base_model": name, "loras": [names]} as far as the metadata says
    credentials: str | None  # the original's C2PA state when it has a manifest
    mime: str
    width: int
    height: int


@dataclass
class LabelledCopy:
    source: Source
    written: Written

    def to_dict(self) -> dict:
        return {
            "source": str(self.source.path),
            **self.written.to_dict(),
            "generator": self.source.generator,
            "generator_from": self.source.generator_from,
            "original_credentials": self.source.credentials,
            "ingredient": self.source.credentials is not None,
        }


def plan(paths: Sequence[Path], cfg: CopyConfig) -> list[Source]:
    """Check every input and the output names; raise UserError (one line) on the first problem.
    Nothing is written."""
    if not paths:
        raise UserError("no image given")
    if cfg.fmt is not None:
        check_format(cfg.fmt)
    declared = (cfg.generator or "").strip() or None
    if cfg.generator is not None and declared is None:
        raise UserError("--generator: empty name")
    if declared is not None and (len(declared) > 100 or not declared.isprintable()):
        raise UserError("--generator: a short printable name, e.g. 'Automatic1111' or 'ComfyUI'")
    out_base = Path(cfg.out).expanduser()
    out_dir = out_base.resolve()
    sources: list[Source] = []
    seen: dict[Path, Path] = {}
    outputs: dict[Path, Path] = {}
    for given in paths:
        path = Path(given)
        real = path.expanduser().resolve()
        if real in seen:
            raise UserError(f"{path}: given twice")
        seen[real] = path
        if real.parent == out_dir:
            raise UserError(
                f"{path}: --out {cfg.out} is the folder of the original; write the labelled "
                "copies to another folder (originals are never modified)"
            )
        src = _inspect(path, cfg, declared)
        src.out_path = out_base / f"{path.stem}{EXTENSIONS[src.fmt]}"
        target = out_dir / src.out_path.name
        if target in outputs:
            raise UserError(
                f"{path}: {outputs[target]} would be written to the same file "
                f"{src.out_path.name}; label them into different folders"
            )
        outputs[target] = path
        sources.append(src)
    return sources


def label_copies(
    paths: Sequence[Path],
    cfg: CopyConfig,
    on_done: Callable[[int, int], None] | None = None,
) -> list[LabelledCopy]:
    """Check everything, then write one labelled copy per input into cfg.out."""
    sources = plan(paths, cfg)
    check_writable(cfg.out)
    identity = ensure_identity()
    done = []
    if on_done:
        on_done(0, len(sources))
    for i, src in enumerate(sources, 1):
        done.append(write_copy(src, cfg, identity=identity))
        if on_done:
            on_done(i, len(sources))
    return done


def write_copy(src: Source, cfg: CopyConfig, identity=None) -> LabelledCopy:
    """Label one checked input and write it (atomically) with its ledger row."""
    data = _read(src.path)
    rgb, icc = _pixels(src.path, data)
    payload = copy_payload(hashlib.sha256(data).hexdigest(), src.fmt, cfg.badge)
    opts = LabelOptions(
        fmt=src.fmt, badge=cfg.badge, identity=identity, ledger_path=cfg.ledger_path
    )
    ingredients = []
    if src.credentials is not None:
        ingredients.append(Ingredient(src.path.name, data, src.mime, "parentOf", PARENT))
    generation = generation_assertion(src)

    def manifest_for(marks: list[dict]) -> dict:
        return build_derived_manifest(
            marks,
            title=src.out_path.name,
            mime=FORMATS[src.fmt],
            source_type=TRAINED_ALGORITHMIC_MEDIA,
            parent=PARENT if ingredients else None,
            creator={"name": src.generator},
            generation=generation,
        )

    out = label_pixels(
        Image.fromarray(rgb),
        payload,
        opts,
        Description(software=src.generator, icc_profile=icc),
        manifest_for,
        ingredients,
    )
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    record = {
        "software": src.generator,
        "generator_from": src.generator_from,
        "labelled_by": f"{GENERATOR_NAME} {__version__}",
        "base_model": src.models.get("base_model"),
        "loras": [{"name": n} for n in src.models.get("loras", [])],
        "source": {"file_name": src.path.name, "sha256": hashlib.sha256(data).hexdigest()},
        "original_credentials": src.credentials,
        "record_prompt": False,
        "prompt": None,
    }
    written = write_output(out, src.out_path, opts, created=created, record=record)
    return LabelledCopy(src, written)


def copy_payload(source_sha256: str, fmt: str, badge: bool) -> str:
    """The copy's identifier: from the original's bytes, the format and the badge."""
    blob = f"{source_sha256}|{check_format(fmt)}|{int(badge)}".encode()
    return ours.payload_from_fingerprint(hashlib.sha256(_COPY_ID_KEY + blob).digest())


def generation_assertion(src: Source) -> dict:
    """`org.fakestudio.generation` for a picture fakestudio did not make: the generator and
    its models as far as known; never a prompt."""
    data: dict = {
        "version": 1,
        "software": src.generator,
        "generator_from": src.generator_from,
        "labelled_by": f"{GENERATOR_NAME} {__version__}",
        "prompt_recorded": False,
        "loras": [{"name": n} for n in src.models.get("loras", [])],
    }
    if src.models.get("base_model"):
        data["base_model"] = {"name": src.models["base_model"]}
    return data


# --- checks -----------------------------------------------------------------------------------


def _inspect(path: Path, cfg: CopyConfig, declared: str | None) -> Source:
    if not path.exists():
        raise UserError(f"{path}: file not found")
    if not path.is_file():
        raise UserError(f"{path}: not a file")
    if not os.access(path, os.R_OK):
        raise UserError(f"{path}: not readable (permission denied)")
    im, info = open_image(path)
    if im is None:
        raise UserError(f"{path}: not an image we can read ({_reason(info)})")
    try:
        rgb, info = load_image(path, image=im, info=info, close=False, max_pixels=MAX_PIXELS)
        if rgb is None:
            raise UserError(f"{path}: not an image we can read ({_reason(info)})")
        if (info.get("frames") or 1) > 1 and info.get("format") not in _PAGED:
            raise UserError(
                f"{path}: an animation ({info['frames']} frames); only still images are labelled"
            )
        h, w = rgb.shape[:2]
        if min(h, w) < MIN_SIDE:
            raise UserError(
                f"{path}: {w}x{h} pixels is too small; the invisible watermark needs at least "
                f"{MIN_SIDE}x{MIN_SIDE}"
            )
        meta = read_metadata(im, info.get("warnings"))
    finally:
        im.close()
    mt = identify_file(path)  # HEIC, DNG ...: the MIME C2PA reads and signs ingredients as
    mime = (mt.mime if mt is not None else None) or info.get("mime") or "application/octet-stream"
    fmt = check_format(cfg.fmt) if cfg.fmt else _MIME_FORMAT.get(mime, "png")
    generator, models = _generator(meta)
    if generator is not None:
        generator_from = "metadata"
    elif declared is not None:
        generator, generator_from = declared, "declared"
    else:
        raise UserError(
            f"{path}: its metadata names no generator; say which made it with "
            "--generator NAME (e.g. --generator 'Stable Diffusion XL')"
        )
    c2pa = read_c2pa(path, mime=mime)
    credentials = c2pa.state if c2pa.present else None
    return Source(
        path=path,
        out_path=path,  # set by plan()
        fmt=fmt,
        generator=generator,
        generator_from=generator_from,
        models=models,
        credentials=credentials,
        mime=mime,
        width=w,
        height=h,
    )


def _generator(meta) -> tuple[str | None, dict]:
    """The generator its metadata names and its model file names: the first generator claim
    (parameters, workflow), else a software tag only AI tools write (e.g. "NovelAI")."""
    claims = [c for c in meta.claims if c.get("ai") and c.get("kind") == "generator"]
    claims += [c for c in meta.claims if c.get("ai") and c.get("kind") == "software"]
    for claim in claims:
        fields = claim.get("fields") or {}
        models: dict = {}
        if claim["tool"] == "ComfyUI":
            found = fields.get("models") or {}
            if found.get("checkpoints"):
                models["base_model"] = _name(found["checkpoints"][0])
            models["loras"] = [_name(x) for x in found.get("loras", [])][:20]
        elif fields.get("model"):
            models["base_model"] = _name(fields["model"])
        return str(claim["tool"]), models
    return None, {}


def _name(value) -> str:
    """A model reference reduced to a file name (ComfyUI and A1111 may keep sub-folders)."""
    text = str(value).replace("\\", "/").rstrip("/")
    return text.rsplit("/", 1)[-1][:200]


def _reason(info: dict) -> str:
    return str(info.get("reason") or "unreadable").removeprefix("unreadable: ")


# --- pixels -----------------------------------------------------------------------------------


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e})") from None


def _pixels(path: Path, data: bytes):
    """Upright RGB pixels at full size (a camera raw demosaiced at full size too), and the
    colour profile when it is an RGB one."""
    im, info = open_image(path, data=data, raw_half_size=False)
    if im is None:
        raise UserError(f"{path}: not an image we can read ({_reason(info)})")
    icc = im.info.get("icc_profile")
    mode = im.mode
    rgb, info = load_image(path, image=im, info=info, max_pixels=MAX_PIXELS)
    if rgb is None:
        raise UserError(f"{path}: not an image we can read ({_reason(info)})")
    keep_icc = icc if mode in ("RGB", "RGBA", "P") and _rgb_profile(icc) else None
    return rgb, keep_icc


def _rgb_profile(icc) -> bool:
    return isinstance(icc, bytes) and len(icc) >= 20 and icc[16:20] == b"RGB "
