"""What a LoRA file is, read without loading a model: its key layout, the base it fits, the
hashes Automatic1111 computes, and what A1111 and ComfyUI will show for it.

The key tables here are the one place that knows both LoRA forms (see `train/export.py`, which
writes them, and `docs/training.md`):

- kohya / A1111: `lora_unet_<module_with_underscores>.lora_down.weight` / `.lora_up.weight` /
  `.alpha`; `lora_te_` (SD1 text encoder), `lora_te1_` / `lora_te2_` (SDXL's two).
- diffusers / peft: `text_encoder.text_model.<module>.lora_A.weight` / `lora_B`, and for the UNet
  the attention-processor names `unet.<block>.attn1.processor.to_q_lora.down.weight` (ComfyUI's
  diffusers mapping and every diffusers since 0.2x read these).
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

from fakestudio.errors import UserError

HEADER_KEY = "fakestudio"  # our metadata lives in the safetensors header under this key
SDXL_ONLY_PREFIXES = ("text_encoder_2.", "lora_te2_", "te2.")
KOHYA_PREFIXES = {
    "lora_unet_": "unet",
    "lora_te_": "text_encoder",
    "lora_te1_": "text_encoder",
    "lora_te2_": "text_encoder_2",
}
PEFT_PREFIXES = {
    "unet.": "unet",
    "text_encoder.": "text_encoder",
    "text_encoder_2.": "text_encoder_2",
}
DOWN_SUFFIXES = (".lora_down.weight", ".lora_A.weight", ".lora.down.weight", "_lora.down.weight")
UP_SUFFIXES = (".lora_up.weight", ".lora_B.weight", ".lora.up.weight", "_lora.up.weight")
CROSS_ATTENTION = {768: "sd1", 1024: "sd2", 2048: "sdxl"}
BIG_KOHYA_KEYS = ("ss_tag_frequency", "ss_dataset_dirs", "ss_datasets", "ss_bucket_info")

# kohya's `ss_base_model_version` and the SAI model spec's architecture, per family
BASE_MODEL_VERSION = {"sd1": "sd_v1", "sd2": "sd_v2", "sdxl": "sdxl_base_v1-0"}
MODELSPEC_ARCHITECTURE = {
    "sd1": "stable-diffusion-v1/lora",
    "sd2": "stable-diffusion-v2-512/lora",
    "sdxl": "stable-diffusion-xl-v1-base/lora",
}
A1111_VERSION_WORDS = {"sd1": "SD1", "sd2": "SD2", "sdxl": "SDXL", None: "Unknown"}
HASH_BLOCK = 1 << 20
MAX_HEADER_BYTES = 100 << 20  # safetensors' own limit on the JSON header


def module_of(key: str) -> tuple[str, str] | None:
    """`lora_unet_x.lora_down.weight` -> ('lora_unet_x', 'down'); None for other keys."""
    for suffixes, kind in ((DOWN_SUFFIXES, "down"), (UP_SUFFIXES, "up")):
        for s in suffixes:
            if key.endswith(s):
                return key[: -len(s)], kind
    return None


def part_of(key: str) -> tuple[str, str]:
    """('unet' | 'text_encoder' | 'text_encoder_2' | 'other', 'kohya' | 'peft' | 'other')."""
    for prefix, name in KOHYA_PREFIXES.items():
        if key.startswith(prefix):
            return name, "kohya"
    for prefix, name in PEFT_PREFIXES.items():
        if key.startswith(prefix):
            return name, "peft"
    return "other", "other"


def safetensors_metadata(path: Path) -> dict:
    """A safetensors file's `__metadata__` from its header alone ({} for anything unreadable):
    cheap enough to scan a folder of LoRAs."""
    try:
        with open(path, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if not 0 < n <= MAX_HEADER_BYTES:
                return {}
            meta = json.loads(fh.read(n)).get("__metadata__")
    except (OSError, ValueError, AttributeError):
        return {}
    return meta if isinstance(meta, dict) else {}


# -------------------------------------------------------------------------------- the header


def read_header(path: Path) -> dict:
    """The safetensors metadata of a LoRA (our own keys decoded); UserError when unreadable."""
    from safetensors import safe_open

    if not path.exists():
        raise UserError(f"{path}: LoRA file not found")
    if path.suffix != ".safetensors":
        raise UserError(f"{path}: only .safetensors LoRAs are loaded (pickled files can run code)")
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = dict(f.metadata() or {})
            keys = list(f.keys())
    except PermissionError:
        raise UserError(f"{path}: LoRA file is not readable (permission denied)") from None
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise UserError(f"{path}: not a valid safetensors file ({short_error(e)})") from None
    if not keys:
        raise UserError(f"{path}: safetensors file holds no tensors")
    if not any("lora" in k.lower() for k in keys):
        raise UserError(f"{path}: holds no LoRA weights (no lora_* keys)")
    meta["_family"] = "sdxl" if any(k.startswith(SDXL_ONLY_PREFIXES) for k in keys) else None
    ours = meta.get(HEADER_KEY)
    if ours:
        try:
            meta[HEADER_KEY] = json.loads(ours)
        except ValueError:
            pass
    return meta


def trigger_of(meta: dict) -> str | None:
    ours = meta.get(HEADER_KEY)
    if isinstance(ours, dict) and ours.get("trigger"):
        return str(ours["trigger"])
    return meta.get("ss_trigger") or None  # not a kohya standard, but some tools write it


def short_error(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return (lines[0] if lines else type(e).__name__)[:160]


# ------------------------------------------------------------------------------------- hashes


def tensor_data_sha256(data: bytes | Path) -> str:
    """Automatic1111's LoRA hash (kohya's `sshs_model_hash`): sha256 of a safetensors file's
    tensor data, i.e. everything after the 8-byte length and the JSON header. It does not
    change when only the metadata does."""
    with _open(data) as fh:
        n = int.from_bytes(fh.read(8), "little")
        fh.seek(8 + n)
        h = hashlib.sha256()
        for chunk in iter(lambda: fh.read(HASH_BLOCK), b""):
            h.update(chunk)
    return h.hexdigest()


def legacy_hash(data: bytes | Path) -> str:
    """The additional-networks extension's old hash (`sshs_legacy_hash`): the first 8 hex
    digits of sha256 over the 64 KiB at offset 1 MiB of the file."""
    with _open(data) as fh:
        fh.seek(0x100000)
        return hashlib.sha256(fh.read(0x10000)).hexdigest()[:8]


def a1111_hash(path: Path, meta: dict | None = None) -> str:
    """The hash A1111 shows and writes in `Lora hashes` (its first 12 digits): the header's
    `sshs_model_hash` when present, else the sha256 of the tensor data."""
    if meta and isinstance(meta.get("sshs_model_hash"), str) and meta["sshs_model_hash"]:
        return meta["sshs_model_hash"]
    return tensor_data_sha256(Path(path))


def _open(data: bytes | Path):
    return io.BytesIO(data) if isinstance(data, bytes | bytearray) else open(data, "rb")


# ---------------------------------------------------------------------------------- describe


def describe_lora(path: Path) -> dict:
    """What a LoRA file says about itself: our header, kohya's ss_* metadata, what its tensors
    show (form, parts, rank, alpha, the base architecture they fit), and what Automatic1111
    and ComfyUI will show for it. UserError for missing, corrupt or not-a-LoRA files."""
    from safetensors import safe_open

    from detectors.fingerprint import sha256_file

    path = Path(path).expanduser()
    meta = read_header(path)
    ranks, alphas, parts, cross = set(), set(), {}, set()
    form = "other"
    n_params = 0
    with safe_open(str(path), framework="numpy") as f:  # shapes only: no tensor is loaded
        keys = list(f.keys())
        for k in keys:
            shape = f.get_slice(k).get_shape()
            n = 1
            for s in shape:
                n *= s
            n_params += n
            if k.endswith(".alpha"):
                alpha = _scalar(path, k)
                if alpha is not None:
                    alphas.add(alpha)
                continue
            if not k.endswith(DOWN_SUFFIXES):
                continue
            part, key_form = part_of(k)
            if key_form != "other":
                form = key_form
            parts[part] = parts.get(part, 0) + 1
            ranks.add(int(shape[0]))
            if part == "unet" and "attn2_to_k" in k.replace(".", "_") and len(shape) >= 2:
                cross.add(int(shape[1]))
    if not alphas:
        alphas |= _header_alpha(meta)
    if meta.get("_family") == "sdxl" or 2048 in cross:
        arch = "sdxl"
    elif len(cross) == 1:
        width = next(iter(cross))
        arch = CROSS_ATTENTION.get(width, f"unknown (cross-attention width {width})")
    else:
        arch = "unknown"
    ours = meta.get(HEADER_KEY) if isinstance(meta.get(HEADER_KEY), dict) else None
    kohya = {}
    for k, v in sorted(meta.items()):
        if not k.startswith(("ss_", "sshs_", "modelspec.")):
            continue
        if k == "ss_tag_frequency":
            kohya["ss_tag_frequency (top 10)"] = _top_tags(v)
        elif k in BIG_KOHYA_KEYS or len(str(v)) > 300:
            kohya[k] = f"({len(str(v))} characters)"
        else:
            kohya[k] = v
    one = lambda s: (next(iter(s)) if len(s) == 1 else sorted(s)) if s else None  # noqa: E731
    rank, alpha = one(ranks), one(alphas)
    scale = alpha / rank if isinstance(rank, int) and isinstance(alpha, float) else None
    trigger = trigger_of(meta)
    return {
        "file": path.name,
        "bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        "form": form,
        "architecture": arch,
        "parts": parts,
        "tensors": len(keys),
        "parameters": n_params,
        "rank": rank,
        "alpha": alpha,
        "scale": scale,
        "trigger": trigger,
        "a1111": a1111_view(path, meta, form),
        "comfyui": {"name": path.name, "reads": form in ("kohya", "peft")},
        "fakestudio": ours,
        "kohya": kohya or None,
    }


def a1111_view(path: Path, meta: dict, form: str) -> dict:
    """What Automatic1111's Lora page shows and writes, as its own code decides it: the name
    (`ss_output_name`, else the file name) used in the prompt tag, the SD version from
    `ss_base_model_version` / `ss_v2` (a file with no metadata at all is 'Unknown' and shown
    next to every checkpoint), the 12-digit hash and the legacy hash."""
    alias = str(meta.get("ss_output_name") or path.stem)
    version = str(meta.get("ss_base_model_version", ""))
    if version.startswith("sdxl_"):
        family = "sdxl"
    elif str(meta.get("ss_v2", "")) == "True":
        family = "sd2"
    elif any(not k.startswith("_") for k in meta):
        family = "sd1"
    else:
        family = None
    full = a1111_hash(path, meta)
    return {
        "name": alias,
        "tag": f"<lora:{alias}:1>",
        "sd_version": A1111_VERSION_WORDS[family],
        "hash": full[:12],
        "sha256": full,
        "legacy_hash": meta.get("sshs_legacy_hash") or legacy_hash(path),
        "trigger": meta.get("modelspec.trigger_phrase") or None,
        "loads": form == "kohya",
    }


_SCALAR_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4"}


def _scalar(path: Path, key: str) -> float | None:
    """A one-element tensor's value, read from the file's bytes: kohya often stores `.alpha`
    in bfloat16, which numpy has no type for (None for anything but one number)."""
    import numpy as np

    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        info = json.loads(fh.read(n)).get(key) or {}
        start, end = info.get("data_offsets", (0, 0))
        fh.seek(8 + n + start)
        raw = fh.read(end - start)
    dtype = info.get("dtype")
    if dtype == "BF16" and len(raw) == 2:  # the top half of a float32
        return float((np.frombuffer(raw, "<u2").astype("<u4") << 16).view("<f4")[0])
    if dtype in _SCALAR_DTYPES and len(raw) == np.dtype(_SCALAR_DTYPES[dtype]).itemsize:
        return float(np.frombuffer(raw, _SCALAR_DTYPES[dtype])[0])
    return None


def _header_alpha(meta: dict) -> set[float]:
    adapter = meta.get("lora_adapter_metadata")
    try:
        if adapter:
            a = json.loads(adapter).get("unet.lora_alpha")
            return {float(a)} if a is not None else set()
        if meta.get("ss_network_alpha"):
            return {float(meta["ss_network_alpha"])}
    except (ValueError, TypeError, AttributeError):
        pass
    return set()


def _top_tags(raw: str) -> list:
    try:
        freq = json.loads(raw)
    except ValueError:
        return []
    counts: dict[str, int] = {}
    for tags in freq.values() if isinstance(freq, dict) else []:
        if isinstance(tags, dict):
            for t, c in tags.items():
                if isinstance(c, int):
                    counts[t] = counts.get(t, 0) + c
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
