"""Write a trained LoRA as one .safetensors file, in the kohya/A1111 or the diffusers form.

- `kohya` form, the key names Automatic1111, ComfyUI, kohya's scripts and diffusers all read:
  `lora_unet_<module_with_underscores>.lora_down.weight` / `.lora_up.weight` / `.alpha`,
  `lora_te_text_model_…` for SD1 text encoders (`lora_te1_`/`lora_te2_` for SDXL). We map the
  keys ourselves instead of using diffusers' converter, which always writes alpha = rank and,
  under transformers 5, drops the `text_model_` that Automatic1111 matches on. SDXL UNet
  modules take the SGM block names kohya's SDXL trainer writes (`lora_unet_input_blocks_4_1_…`).
- `peft` (diffusers) form, read by every diffusers since 0.2x and by ComfyUI: UNet keys in
  diffusers' attention-processor naming (`unet.<block>.attn1.processor.to_q_lora.down.weight`,
  the diffusers names ComfyUI maps; diffusers converts them to peft's on load) and text-encoder
  keys in peft's (`text_encoder.text_model.<module>.lora_A.weight`, with the `text_model.` that
  transformers 4 needs and that diffusers strips for transformers 5). ComfyUI reads no alpha
  in this form, so alpha/rank is folded into the up weights and the header says alpha = rank:
  every loader applies the same delta. `lora_adapter_metadata` holds only LoraConfig fields
  that every supported peft knows (r, lora_alpha, target_modules).

Both forms carry what kohya's trainer writes and A1111 reads (`ss_*`, `sshs_*` hashes), the
SAI model spec (`modelspec.*`), and our own metadata under `fakestudio` as JSON; the file is
written to a temp name and renamed.
"""

from __future__ import annotations

import json
from pathlib import Path

from fakestudio.lora_info import (
    BASE_MODEL_VERSION,
    HEADER_KEY,
    MODELSPEC_ARCHITECTURE,
    legacy_hash,
    tensor_data_sha256,
)

FORMS = ("peft", "kohya")
PEFT_METADATA_FIELDS = ("r", "lora_alpha", "target_modules")


def _module_and_kind(peft_key: str) -> tuple[str, str]:
    """'down_blocks.1.attn1.to_q.lora_A.weight' -> ('down_blocks.1.attn1.to_q', 'A')."""
    for kind in ("A", "B"):
        marker = f".lora_{kind}."
        if marker in peft_key:
            return peft_key.split(marker)[0], kind
    raise ValueError(f"not a peft LoRA key: {peft_key}")


def _text_model(module: str) -> str:
    """transformers 5 drops CLIP's `text_model.`; A1111, ComfyUI and transformers 4 need it."""
    return module if module.startswith("text_model.") else "text_model." + module


RESNET_SGM = {"conv1": "in_layers.2", "conv2": "out_layers.3"}  # diffusers -> SGM layer names


def sgm_unet_module(module: str, layers_per_block: int) -> str:
    """A diffusers UNet module in the SGM/LDM block names kohya's SDXL trainer (and the original
    SDXL checkpoints) use: `down_blocks.1.attentions.0.…` -> `input_blocks.4.1.…`,
    `down_blocks.1.resnets.0.conv1` -> `input_blocks.4.0.in_layers.2`."""
    per = layers_per_block + 1  # resnets (with attentions) plus a down/upsampler per level
    parts = module.split(".")
    if parts[0] == "mid_block":
        if parts[1] == "attentions":
            return ".".join(["middle_block", "1", *parts[3:]])
        if parts[1] == "resnets" and parts[3] in RESNET_SGM:
            return f"middle_block.{2 * int(parts[2])}.{RESNET_SGM[parts[3]]}"
    elif parts[0] in ("down_blocks", "up_blocks") and parts[2] in ("attentions", "resnets"):
        level, index = int(parts[1]), int(parts[3])
        block = (
            f"input_blocks.{1 + level * per + index}"
            if parts[0] == "down_blocks"
            else f"output_blocks.{level * per + index}"
        )
        if parts[2] == "attentions":
            return ".".join([block, "1", *parts[4:]])
        if parts[4] in RESNET_SGM:
            return f"{block}.0.{RESNET_SGM[parts[4]]}"
    raise ValueError(f"only attention, feed-forward and ResNet conv modules are written: {module}")


def to_kohya(
    state: dict, prefix: str, alpha: float, sgm_layers_per_block: int | None = None
) -> dict:
    """peft state dict of one model -> kohya keys under `prefix` (lora_unet, lora_te, ...);
    with `sgm_layers_per_block` the UNet modules get SDXL's SGM block names."""
    import torch

    out = {}
    for key, tensor in state.items():
        module, kind = _module_and_kind(key)
        if prefix.startswith("lora_te"):
            module = _text_model(module)
        elif sgm_layers_per_block is not None:
            module = sgm_unet_module(module, sgm_layers_per_block)
        name = f"{prefix}_{module.replace('.', '_')}"
        out[f"{name}.lora_{'down' if kind == 'A' else 'up'}.weight"] = tensor.contiguous()
        out[f"{name}.alpha"] = torch.tensor(float(alpha))
    return out


def to_diffusers_unet(state: dict, scale: float) -> dict:
    """peft UNet state dict -> diffusers keys, with the LoRA scale (alpha / rank) folded into
    the up weights. Attention projections only: the attention-processor names every diffusers
    and ComfyUI read (`unet.<block>.processor.to_q_lora.down.weight`); with other layers too
    (`--layers all`), the peft names diffusers' own `save_lora_weights` writes
    (`unet.<module>.lora_A.weight`) for every module."""
    modules = [_module_and_kind(key) for key in state]
    processor_names = all(_processor_name(m) is not None for m, _ in modules)
    out = {}
    for key, (module, kind) in zip(state, modules, strict=True):
        if processor_names:
            name = f"unet.{_processor_name(module)}_lora.{'down' if kind == 'A' else 'up'}.weight"
        else:
            name = f"unet.{module}.lora_{kind}.weight"
        out[name] = _scaled(state[key], scale if kind == "B" else 1.0)
    return out


def _processor_name(module: str) -> str | None:
    """'…attn1.to_q' -> '…attn1.processor.to_q', '…to_out.0' -> '…processor.to_out'; None for
    a module that is not an attention projection."""
    head, _, leaf = module.rpartition(".")
    if leaf == "0" and head.endswith(".to_out"):
        head, _, leaf = head.rpartition(".")
    if not leaf.startswith("to_"):
        return None
    return f"{head}.processor.{leaf}"


def to_diffusers_text(state: dict, name: str, scale: float) -> dict:
    out = {}
    for key, tensor in state.items():
        module, kind = _module_and_kind(key)
        out[f"{name}.{_text_model(module)}.lora_{kind}.weight"] = _scaled(
            tensor, scale if kind == "B" else 1.0
        )
    return out


def _scaled(tensor, scale: float):
    if scale == 1.0:
        return tensor.contiguous()
    return (tensor.float() * scale).to(tensor.dtype).contiguous()


def _adapter_metadata(config, prefix: str) -> dict:
    """The LoraConfig fields every supported peft (0.17 on) accepts; alpha = rank (folded)."""
    d = config.to_dict()
    out = {f"{prefix}.{k}": d[k] for k in PEFT_METADATA_FIELDS if k in d}
    out[f"{prefix}.lora_alpha"] = d["r"]
    targets = out.get(f"{prefix}.target_modules")
    if isinstance(targets, set | frozenset | tuple):
        out[f"{prefix}.target_modules"] = sorted(targets)
    return out


def a1111_metadata(
    header: dict,
    *,
    output_name: str,
    form: str,
    started_at: float | None = None,
    tag_frequency: dict | None = None,
) -> dict[str, str]:
    """kohya's `ss_*` keys and the SAI model spec (`modelspec.*`) from our header: what A1111's
    Lora page and model sites read (name, base version, resolution, tags, trigger)."""
    family = header.get("base_family") or "sd1"
    res = int(header.get("resolution") or 0)
    rank, alpha = header.get("rank"), header.get("alpha")
    if form == "peft":
        alpha = rank  # folded into the weights
    ss = {
        "ss_output_name": output_name,
        "ss_base_model_version": BASE_MODEL_VERSION.get(family, "sd_v1"),
        "ss_v2": str(family == "sd2"),
        "ss_sd_model_name": str(header.get("base_model") or ""),
        "ss_new_sd_model_hash": str(header.get("base_sha256") or ""),
        "ss_resolution": f"({res}, {res})",
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(rank),
        "ss_network_alpha": str(alpha),
        "ss_num_train_images": str(header.get("images") or 0),
        "ss_steps": str(header.get("steps") or 0),
        "ss_max_train_steps": str(header.get("steps") or 0),
        "ss_epoch": str(int(header.get("epochs") or 0)),
        "ss_learning_rate": str(header.get("lr")),
        "ss_lr_scheduler": str(header.get("lr_scheduler")),
        "ss_mixed_precision": str(header.get("mixed_precision")),
        "ss_seed": str(header.get("seed")),
        "ss_min_snr_gamma": str(header.get("min_snr_gamma")),
        "ss_noise_offset": str(header.get("noise_offset")),
        "ss_tag_frequency": json.dumps(tag_frequency or {}, sort_keys=True),
        "ss_training_comment": f"trained by {header.get('software')}",
    }
    if header.get("layers") == "all":  # kohya's LoCon: the ResNet convolutions too
        ss["ss_network_args"] = json.dumps({"conv_dim": str(rank), "conv_alpha": str(alpha)})
    if started_at is not None:
        ss["ss_training_started_at"] = str(started_at)
    spec = {
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": MODELSPEC_ARCHITECTURE.get(family, MODELSPEC_ARCHITECTURE["sd1"]),
        "modelspec.implementation": "diffusers",
        "modelspec.title": output_name,
        "modelspec.resolution": f"{res}x{res}",
        "modelspec.date": str(header.get("created") or ""),
        "modelspec.prediction_type": str(header.get("prediction_type") or "epsilon"),
    }
    if header.get("trigger"):
        spec["modelspec.trigger_phrase"] = str(header["trigger"])
    return {**ss, **spec}


def tag_frequency(captions: list[str], folder: str = "dataset") -> dict:
    """kohya's `ss_tag_frequency`: {folder: {tag: count}}, tags being a caption's
    comma-separated parts. `folder` is a name, never a path."""
    counts: dict[str, int] = {}
    for caption in captions:
        for tag in (t.strip() for t in caption.split(",")):
            if tag:
                counts[tag] = counts.get(tag, 0) + 1
    return {folder: counts}


def lora_bytes(
    *,
    unet_state: dict,
    unet_config,
    te_states: dict | None = None,  # {"text_encoder": state, "text_encoder_2": state}
    te_configs: dict | None = None,
    form: str = "peft",
    header: dict | None = None,
    output_name: str | None = None,
    started_at: float | None = None,
    tag_frequency: dict | None = None,
    sgm_layers_per_block: int | None = None,
) -> bytes:
    """Serialise the LoRA weights (peft state dicts, no adapter names) to safetensors bytes.

    `sgm_layers_per_block` (SDXL: the UNet's layers_per_block): the kohya form names UNet
    modules as kohya's SDXL trainer does (`lora_unet_input_blocks_4_1_…`), which kohya's
    scripts need and A1111, ComfyUI and diffusers also read."""
    from safetensors.torch import save

    if form not in FORMS:
        raise ValueError(f"unknown LoRA form {form!r}; choose {' or '.join(FORMS)}")
    te_states = te_states or {}
    te_configs = te_configs or {}
    metadata = {"format": "pt"}
    tensors: dict = {}
    if form == "peft":
        scale = unet_config.lora_alpha / unet_config.r
        tensors.update(to_diffusers_unet(unet_state, scale))
        adapter_meta = _adapter_metadata(unet_config, "unet")
        for name, state in te_states.items():
            c = te_configs[name]
            tensors.update(to_diffusers_text(state, name, c.lora_alpha / c.r))
            adapter_meta.update(_adapter_metadata(c, name))
        metadata["lora_adapter_metadata"] = json.dumps(adapter_meta, sort_keys=True)
    else:
        tensors.update(
            to_kohya(unet_state, "lora_unet", unet_config.lora_alpha, sgm_layers_per_block)
        )
        two = len(te_states) > 1
        for name, state in te_states.items():
            prefix = ("lora_te2" if name.endswith("_2") else "lora_te1") if two else "lora_te"
            tensors.update(to_kohya(state, prefix, te_configs[name].lora_alpha))
        metadata["ss_network_dim"] = str(unet_config.r)
        metadata["ss_network_alpha"] = str(unet_config.lora_alpha)
        metadata["ss_network_module"] = "networks.lora"
    if header is not None:
        name = output_name or str(header.get("trigger") or "lora")
        metadata.update(
            a1111_metadata(
                header,
                output_name=name,
                form=form,
                started_at=started_at,
                tag_frequency=tag_frequency,
            )
        )
        # kohya hashes a copy holding only the ss_* metadata, so the hashes do not depend on
        # keys written after them; A1111 takes `sshs_model_hash` as the file's hash
        bare = save(tensors, metadata={k: v for k, v in metadata.items() if k.startswith("ss_")})
        metadata["sshs_model_hash"] = tensor_data_sha256(bare)
        metadata["sshs_legacy_hash"] = legacy_hash(bare)
        metadata[HEADER_KEY] = json.dumps(header, sort_keys=True, default=str)
    return save(tensors, metadata=metadata)


def save_lora(path: Path, **kwargs) -> Path:
    """Write lora_bytes(**kwargs) atomically to `path`."""
    from detectors.files import atomic_write, clean_stale_parts

    path = Path(path)
    clean_stale_parts(path.parent, path.name)  # what a killed run left of this file
    atomic_write(path, lora_bytes(**kwargs))
    return path
