"""LoRA files: parse `--lora FILE[:WEIGHT]` and `<lora:name:0.8>`, check, load, weigh.

Both file forms load through diffusers' own `load_lora_weights`: the diffusers/peft form
(`unet.…lora_A.weight`) and the kohya/Automatic1111 form (`lora_unet_…lora_down.weight` with
`.alpha`). A LoRA at weight 0 is not loaded at all, so the image is exactly the no-LoRA image
(and the record, hence the watermark payload, does not mention it).
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from detectors.fingerprint import sha256_file  # noqa: F401  (re-exported for callers)
from fakestudio.errors import UserError
from fakestudio.lora_info import (
    a1111_hash,
    module_of,
    part_of,
    read_header,
    safetensors_metadata,
    short_error,
    trigger_of,
)
from fakestudio.record import LoraRef

PROMPT_LORA = re.compile(r"<lora:([^:>]+)(?::([^>]+))?>")


@dataclass(frozen=True)
class LoraSpec:
    path: Path
    weight: float = 1.0


def parse_lora_arg(arg: str) -> LoraSpec:
    """`FILE` or `FILE:WEIGHT` (the last colon-separated part, when it is a number)."""
    head, sep, tail = arg.rpartition(":")
    if sep and head:
        try:
            weight = float(tail)
        except ValueError:
            pass
        else:
            if not math.isfinite(weight):
                raise UserError(f"--lora {arg}: the weight must be a finite number, not {tail}")
            return LoraSpec(Path(head).expanduser(), weight)
    return LoraSpec(Path(arg).expanduser())


def extract_prompt_loras(prompt: str, lora_dir: Path | None) -> tuple[str, list[LoraSpec]]:
    """Take Automatic1111 `<lora:name:weight>` tags out of a prompt, resolving names in lora_dir."""
    specs = []
    for m in PROMPT_LORA.finditer(prompt):
        name, weight = m.group(1).strip(), m.group(2)
        if lora_dir is None:
            raise UserError(
                f"prompt uses <lora:{name}>; pass --lora-dir DIR to say where LoRAs live"
            )
        path = _find_in_dir(Path(lora_dir).expanduser(), name)
        try:
            w = float(weight) if weight is not None else 1.0
        except ValueError:
            raise UserError(f"<lora:{name}:{weight}>: weight {weight!r} is not a number") from None
        if not math.isfinite(w):
            raise UserError(f"<lora:{name}:{weight}>: the weight must be a finite number")
        specs.append(LoraSpec(path, w))
    clean = re.sub(r"\s{2,}", " ", PROMPT_LORA.sub("", prompt)).strip(" ,")
    return clean, specs


def _find_in_dir(lora_dir: Path, name: str) -> Path:
    """A prompt tag's file, inside ``lora_dir`` only: no ``..``, no absolute path, no symbolic
    link that leads out (a prompt can come from anyone: a copied A1111 prompt, a web form)."""
    if not lora_dir.is_dir():
        raise UserError(f"{lora_dir}: --lora-dir is not a folder")
    root = lora_dir.resolve()
    rel = PurePosixPath(name.replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts or PureWindowsPath(name).drive:
        raise UserError(f"<lora:{name}>: a LoRA name must stay inside --lora-dir {lora_dir}")
    outside = None
    for cand in (
        root.joinpath(*rel.parts),
        root.joinpath(*rel.parts[:-1], f"{rel.name}.safetensors"),
    ):
        if cand.is_file():
            if cand.resolve().is_relative_to(root):
                return cand
            outside = cand
    want = f"{rel.name}.safetensors"
    for dirpath, _dirnames, filenames in sorted(os.walk(root)):  # links to folders: not followed
        if want in filenames:
            cand = Path(dirpath, want)
            if cand.relative_to(root).as_posix().endswith(f"{rel}.safetensors"):
                if cand.resolve().is_relative_to(root):
                    return cand
                outside = cand
    # Automatic1111 names a LoRA by its `ss_output_name` when it has one: prompts copied from
    # A1111 use that alias, whatever the file is called (same rules: inside, no link out)
    if len(rel.parts) == 1:
        for dirpath, _dirnames, filenames in sorted(os.walk(root)):
            for fname in sorted(f for f in filenames if f.endswith(".safetensors")):
                cand = Path(dirpath, fname)
                if safetensors_metadata(cand).get("ss_output_name") != name:
                    continue
                if cand.resolve().is_relative_to(root):
                    return cand
                outside = cand
    if outside is not None:
        raise UserError(
            f"<lora:{name}>: {outside.name} in {lora_dir} is a link to a file outside it; refused"
        )
    raise UserError(f"<lora:{name}>: no {name}.safetensors in {lora_dir}")


def apply_loras(
    pipe, specs: list[LoraSpec], warn: Callable[[str], None] | None = None
) -> list[LoraRef]:
    """Load every LoRA with a non-zero weight into the pipeline and set their weights.

    A LoRA clearly made for another architecture (SDXL on SD1, another cross-attention width,
    under half of its modules found) is refused with one line; one whose modules only partly
    matched loads with a `warn` line saying how many did."""
    warn = warn or _stderr
    refs, names, weights = [], [], []
    is_xl = hasattr(pipe, "text_encoder_2")
    for i, spec in enumerate(specs):
        meta = read_header(spec.path)  # checks the file even at weight 0
        if meta["_family"] == "sdxl" and not is_xl:
            raise UserError(
                f"{spec.path}: LoRA was made for another base architecture (SDXL); "
                "this base is Stable Diffusion 1.x"
            )
        modules, width = lora_modules(spec.path)
        base_width = getattr(pipe.unet.config, "cross_attention_dim", None)
        if width is not None and base_width is not None and width != base_width:
            raise UserError(
                f"{spec.path}: LoRA was made for another base architecture (cross-attention "
                f"width {width}, this base has {base_width})"
            )
        if spec.weight == 0:
            continue
        name = f"lora{i}"
        _load_one(pipe, spec.path, name)
        matched = _adapted_modules(pipe, name)
        if matched < len(modules):
            if matched * 2 < len(modules):
                _remove_adapter(pipe, name)
                raise UserError(
                    f"{spec.path}: only {matched} of {len(modules)} LoRA modules match this "
                    "base: made for another base architecture"
                )
            warn(
                f"{spec.path.name}: {matched} of {len(modules)} LoRA modules match this base; "
                f"{len(modules) - matched} are ignored"
            )
        names.append(name)
        weights.append(spec.weight)
        refs.append(
            LoraRef(
                spec.path.name,
                sha256_file(spec.path),
                spec.weight,
                trigger_of(meta),
                a1111_hash(spec.path, meta),
            )
        )
    if names:
        pipe.set_adapters(names, adapter_weights=weights)
    return refs


def lora_modules(path: Path) -> tuple[set[str], int | None]:
    """The modules a LoRA file adapts (by their down/A weights) and the cross-attention width
    its UNet keys were made for (None when it has no cross-attention key projection)."""
    from safetensors import safe_open

    modules, width = set(), None
    with safe_open(str(path), framework="numpy") as f:  # shapes only
        for k in f.keys():
            found = module_of(k)
            if found is None or found[1] != "down":
                continue
            modules.add(found[0])
            flat = k.replace(".", "_")
            if part_of(k)[0] == "unet" and ("attn2_to_k" in flat or "attn2_processor_to_k" in flat):
                shape = f.get_slice(k).get_shape()
                if len(shape) == 2:
                    width = int(shape[1])
    return modules, width


def _adapted_modules(pipe, adapter: str) -> int:
    """How many layers of the pipeline's UNet and text encoders carry `adapter`."""
    n = 0
    for part in ("unet", "text_encoder", "text_encoder_2"):
        model = getattr(pipe, part, None)
        if model is None:
            continue
        for module in model.modules():
            lora_a = getattr(module, "lora_A", None)
            if lora_a is not None and adapter in lora_a:
                n += 1
    return n


def _remove_adapter(pipe, adapter: str) -> None:
    """Take a refused LoRA out again; with no other adapter left, take peft's wrappers out
    too, so the base is exactly as it was."""
    pipe.delete_adapters(adapter)
    if not any(pipe.get_list_adapters().values()):
        pipe.unload_lora_weights()


def _stderr(message: str) -> None:
    print(f"fakestudio: {message}", file=sys.stderr)


def _load_one(pipe, path: Path, adapter: str) -> None:
    import diffusers.utils.logging as dlog

    level = dlog.get_verbosity()
    dlog.set_verbosity(dlog.CRITICAL)  # diffusers logs its own error line before raising: ours only
    try:
        pipe.load_lora_weights(str(path), adapter_name=adapter)
    except (RuntimeError, ValueError, KeyError, IndexError) as e:
        msg = short_error(e)
        if "target modules" in msg.lower() and "not found" in msg.lower():
            raise UserError(
                f"{path}: no layer of this base matches the LoRA's target modules "
                "(made for another base architecture?)"
            ) from None
        if any(w in msg.lower() for w in ("size mismatch", "mismatched_sizes", "shape")):
            raise UserError(
                f"{path}: LoRA was made for another base architecture "
                f"(tensor shapes do not fit this base: {msg[:100]})"
            ) from None
        raise UserError(f"{path}: cannot load this LoRA ({msg})") from None
    finally:
        dlog.set_verbosity(level)
    loaded = {a for adapters in pipe.get_list_adapters().values() for a in adapters}
    if adapter not in loaded:
        raise UserError(
            f"{path}: no layer of this base matches the LoRA's keys "
            "(made for another base architecture?)"
        )
