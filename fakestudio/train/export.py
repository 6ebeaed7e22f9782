"""Write a trained LoRA as one .safetensors file, in the diffusers/peft or kohya/A1111 form.

- `peft` (diffusers) form: `unet.<module>.lora_A.weight` / `lora_B`, `text_encoder.…`, and the
  peft config (rank, alpha, targets) in the header's `lora_adapter_metadata`, which diffusers'
  `load_lora_weights` reads back, so alpha != rank survives.
- `kohya` form, the key names Automatic1111, ComfyUI and kohya's scripts match:
  `lora_unet_<module_with_underscores>.lora_down.weight` / `.lora_up.weight` / `.alpha`,
  `lora_te_text_model_…` for SD1 text encoders (`lora_te1_`/`lora_te2_` for SDXL). We map the
  keys ourselves instead of using diffusers' converter, which always writes alpha = rank and,
  under transformers 5, drops the `text_model_` that Automatic1111 matches on.

Our own metadata (trigger word, base hash, consent, ...) goes in the header under
`fakestudio` as JSON; the file is written to a temp name and renamed.
"""

from __future__ import annotations

import json
from pathlib import Path

from fakestudio.lora import HEADER_KEY

FORMS = ("peft", "kohya")


def _module_and_kind(peft_key: str) -> tuple[str, str]:
    """'down_blocks.1.attn1.to_q.lora_A.weight' -> ('down_blocks.1.attn1.to_q', 'A')."""
    for kind in ("A", "B"):
        marker = f".lora_{kind}."
        if marker in peft_key:
            return peft_key.split(marker)[0], kind
    raise ValueError(f"not a peft LoRA key: {peft_key}")


def to_kohya(state: dict, prefix: str, alpha: float) -> dict:
    """peft state dict of one model -> kohya keys under `prefix` (lora_unet, lora_te, ...)."""
    import torch

    out = {}
    for key, tensor in state.items():
        module, kind = _module_and_kind(key)
        if prefix.startswith("lora_te") and not module.startswith("text_model."):
            module = "text_model." + module  # transformers 5 drops it; A1111 matches on it
        name = f"{prefix}_{module.replace('.', '_')}"
        out[f"{name}.lora_{'down' if kind == 'A' else 'up'}.weight"] = tensor.contiguous()
        out[f"{name}.alpha"] = torch.tensor(float(alpha))
    return out


def _config_metadata(config, prefix: str) -> dict:
    d = config.to_dict()
    clean = {}
    for k, v in d.items():
        if isinstance(v, set):
            v = sorted(v)
        if hasattr(v, "value"):  # enums
            v = v.value
        clean[f"{prefix}.{k}"] = v
    return clean


def lora_bytes(
    *,
    unet_state: dict,
    unet_config,
    te_states: dict | None = None,  # {"text_encoder": state, "text_encoder_2": state}
    te_configs: dict | None = None,
    form: str = "peft",
    header: dict | None = None,
) -> bytes:
    """Serialise the LoRA weights (peft state dicts, no adapter names) to safetensors bytes."""
    from safetensors.torch import save

    if form not in FORMS:
        raise ValueError(f"unknown LoRA form {form!r}; choose {' or '.join(FORMS)}")
    te_states = te_states or {}
    te_configs = te_configs or {}
    metadata = {"format": "pt"}
    if header is not None:
        metadata[HEADER_KEY] = json.dumps(header, sort_keys=True, default=str)
    tensors: dict = {}
    if form == "peft":
        adapter_meta = _config_metadata(unet_config, "unet")
        tensors.update({f"unet.{k}": v.contiguous() for k, v in unet_state.items()})
        for name, state in te_states.items():
            tensors.update({f"{name}.{k}": v.contiguous() for k, v in state.items()})
            adapter_meta.update(_config_metadata(te_configs[name], name))
        metadata["lora_adapter_metadata"] = json.dumps(adapter_meta, sort_keys=True)
    else:
        tensors.update(to_kohya(unet_state, "lora_unet", unet_config.lora_alpha))
        two = len(te_states) > 1
        for name, state in te_states.items():
            prefix = ("lora_te2" if name.endswith("_2") else "lora_te1") if two else "lora_te"
            tensors.update(to_kohya(state, prefix, te_configs[name].lora_alpha))
        metadata["ss_network_dim"] = str(unet_config.r)
        metadata["ss_network_alpha"] = str(unet_config.lora_alpha)
        metadata["ss_network_module"] = "networks.lora"
    return save(tensors, metadata=metadata)


def save_lora(path: Path, **kwargs) -> Path:
    """Write lora_bytes(**kwargs) atomically to `path`."""
    from detectors.files import atomic_write

    path = Path(path)
    atomic_write(path, lora_bytes(**kwargs))
    return path
