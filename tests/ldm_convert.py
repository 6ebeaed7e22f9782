"""Test utility: write a diffusers SD1.x / SDXL pipeline as an Automatic1111-style single file.

The inverse of what `fakestudio.single_file` loads: the original LDM key layout
(`model.diffusion_model.*`, `first_stage_model.*`, `cond_stage_model.transformer.*`, or for SDXL
`conditioner.embedders.0.transformer.*` + `conditioner.embedders.1.model.*`), derived from the
model configs so it holds for any SD-style block structure, not only the tiny one.

LDM numbering, for `L` layers per block and `N` resolution levels:
- UNet input_blocks: 0 is conv_in; each level adds `L` entries `[resnet, (attention)]` and, except
  the last level, one downsampler entry (`.0.op`).
- UNet middle_block: 0 resnet, 1 attention, 2 resnet.
- UNet output_blocks: each level adds `L + 1` entries `[resnet, (attention), (upsampler)]`; the
  upsampler sits at index 1 without attention and 2 with it.
- VAE decoder levels are numbered in reverse (`up.{N-1-i}`) and the mid-block attention is
  1x1 convs (`[C, C, 1, 1]`) where diffusers has linear layers (`[C, C]`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
VAE_RESNET = {"conv_shortcut": "nin_shortcut"}
VAE_ATTENTION = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}
OPENCLIP_LAYER = {
    "self_attn.out_proj": "attn.out_proj",
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
}


def save_as_single_file(pipe, path: Path, *, realistic_extras: bool = True) -> Path:
    """Write `pipe`'s UNet, VAE and text encoder(s) as one LDM-layout .safetensors file.

    `realistic_extras` adds what real checkpoints carry besides the weights (CLIP position_ids,
    the noise schedule buffers), which a loader must ignore.
    """
    tensors = pipeline_to_ldm(pipe, realistic_extras=realistic_extras)
    path = Path(path)
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(path), {"format": "pt"})
    return path


def pipeline_to_ldm(pipe, *, realistic_extras: bool = True) -> dict[str, torch.Tensor]:
    """The single file's tensors, by LDM name."""
    out: dict[str, torch.Tensor] = {}
    out.update(_prefixed("model.diffusion_model.", unet_to_ldm(pipe.unet)))
    out.update(_prefixed("first_stage_model.", vae_to_ldm(pipe.vae)))
    te2 = getattr(pipe, "text_encoder_2", None)
    if te2 is None:
        clip_prefix = "cond_stage_model.transformer.text_model."
        out.update(_prefixed(clip_prefix, clip_to_ldm(pipe.text_encoder)))
    else:
        clip_prefix = "conditioner.embedders.0.transformer.text_model."
        out.update(_prefixed(clip_prefix, clip_to_ldm(pipe.text_encoder)))
        out.update(_prefixed("conditioner.embedders.1.model.", openclip_to_ldm(te2)))
    if realistic_extras:
        n_pos = pipe.text_encoder.config.max_position_embeddings
        out[clip_prefix + "embeddings.position_ids"] = torch.arange(n_pos).unsqueeze(0)
        betas = getattr(pipe.scheduler, "betas", None)
        if betas is not None:
            alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
            out["betas"] = betas.float()
            out["alphas_cumprod"] = alphas_cumprod.float()
            out["alphas_cumprod_prev"] = torch.cat([torch.ones(1), alphas_cumprod[:-1]]).float()
    return out


def _prefixed(prefix: str, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in sd.items()}


def _rename(sd: dict[str, torch.Tensor], prefixes: dict[str, tuple[str, dict]]) -> dict:
    """Map each key through the longest matching diffusers prefix; fail on any unmapped key.

    `prefixes`: diffusers prefix -> (LDM prefix, renames for the first part of the remainder).
    """
    ordered = sorted(prefixes, key=len, reverse=True)
    out = {}
    for key, value in sd.items():
        for prefix in ordered:
            if key.startswith(prefix):
                ldm_prefix, inner = prefixes[prefix]
                rest = key[len(prefix) :]
                for old, new in inner.items():
                    if rest.startswith(old + "."):
                        rest = new + rest[len(old) :]
                        break
                out[ldm_prefix + rest] = value
                break
        else:
            raise KeyError(f"no LDM name for {key}")
    return out


def unet_to_ldm(unet) -> dict[str, torch.Tensor]:
    cfg = unet.config
    levels = len(cfg.block_out_channels)
    per_block = cfg.layers_per_block
    if not isinstance(per_block, int):
        raise NotImplementedError("per-level layers_per_block")
    m: dict[str, tuple[str, dict]] = {
        "conv_in.": ("input_blocks.0.0.", {}),
        "time_embedding.linear_1.": ("time_embed.0.", {}),
        "time_embedding.linear_2.": ("time_embed.2.", {}),
        "add_embedding.linear_1.": ("label_emb.0.0.", {}),
        "add_embedding.linear_2.": ("label_emb.0.2.", {}),
        "class_embedding.linear_1.": ("label_emb.0.0.", {}),
        "class_embedding.linear_2.": ("label_emb.0.2.", {}),
        "conv_norm_out.": ("out.0.", {}),
        "conv_out.": ("out.2.", {}),
        "mid_block.resnets.0.": ("middle_block.0.", UNET_RESNET),
        "mid_block.attentions.0.": ("middle_block.1.", {}),
        "mid_block.resnets.1.": ("middle_block.2.", UNET_RESNET),
    }
    n = 1
    for i in range(levels):
        for j in range(per_block):
            m[f"down_blocks.{i}.resnets.{j}."] = (f"input_blocks.{n}.0.", UNET_RESNET)
            m[f"down_blocks.{i}.attentions.{j}."] = (f"input_blocks.{n}.1.", {})
            n += 1
        if i < levels - 1:
            m[f"down_blocks.{i}.downsamplers.0.conv."] = (f"input_blocks.{n}.0.op.", {})
            n += 1
    n = 0
    for i, block_type in enumerate(cfg.up_block_types):
        has_attention = "CrossAttn" in block_type
        for j in range(per_block + 1):
            m[f"up_blocks.{i}.resnets.{j}."] = (f"output_blocks.{n}.0.", UNET_RESNET)
            m[f"up_blocks.{i}.attentions.{j}."] = (f"output_blocks.{n}.1.", {})
            if j == per_block and i < levels - 1:
                slot = 2 if has_attention else 1
                m[f"up_blocks.{i}.upsamplers.0.conv."] = (f"output_blocks.{n}.{slot}.conv.", {})
            n += 1
    return _rename(unet.state_dict(), m)


def vae_to_ldm(vae) -> dict[str, torch.Tensor]:
    levels = len(vae.config.block_out_channels)
    per_block = vae.config.layers_per_block
    m: dict[str, tuple[str, dict]] = {
        "quant_conv.": ("quant_conv.", {}),
        "post_quant_conv.": ("post_quant_conv.", {}),
    }
    for part in ("encoder", "decoder"):
        m[f"{part}.conv_in."] = (f"{part}.conv_in.", {})
        m[f"{part}.conv_out."] = (f"{part}.conv_out.", {})
        m[f"{part}.conv_norm_out."] = (f"{part}.norm_out.", {})
        m[f"{part}.mid_block.resnets.0."] = (f"{part}.mid.block_1.", VAE_RESNET)
        m[f"{part}.mid_block.resnets.1."] = (f"{part}.mid.block_2.", VAE_RESNET)
        m[f"{part}.mid_block.attentions.0."] = (f"{part}.mid.attn_1.", VAE_ATTENTION)
    for i in range(levels):
        for j in range(per_block):
            m[f"encoder.down_blocks.{i}.resnets.{j}."] = (
                f"encoder.down.{i}.block.{j}.",
                VAE_RESNET,
            )
        m[f"encoder.down_blocks.{i}.downsamplers.0.conv."] = (
            f"encoder.down.{i}.downsample.conv.",
            {},
        )
        ldm_level = levels - 1 - i
        for j in range(per_block + 1):
            m[f"decoder.up_blocks.{i}.resnets.{j}."] = (
                f"decoder.up.{ldm_level}.block.{j}.",
                VAE_RESNET,
            )
        m[f"decoder.up_blocks.{i}.upsamplers.0.conv."] = (
            f"decoder.up.{ldm_level}.upsample.conv.",
            {},
        )
    out = _rename(vae.state_dict(), m)
    for key, value in out.items():
        if ".mid.attn_1." in key and key.endswith(".weight") and value.ndim == 2:
            out[key] = value[:, :, None, None]  # linear -> 1x1 conv
    return out


def _text_model_sd(model) -> dict[str, torch.Tensor]:
    """The CLIP text transformer's tensors named as in `CLIPTextModel.text_model`."""
    sd = model.state_dict()
    if any(k.startswith("text_model.") for k in sd):
        return {k[len("text_model.") :]: v for k, v in sd.items() if k.startswith("text_model.")}
    return dict(sd)  # transformers >= 5.6 flattened CLIPTextModel


def clip_to_ldm(text_encoder) -> dict[str, torch.Tensor]:
    """SD1.x / SDXL-first encoder: the HF names themselves, under `...transformer.text_model.`."""
    return _text_model_sd(text_encoder)


def openclip_to_ldm(text_encoder) -> dict[str, torch.Tensor]:
    """SDXL's second encoder (CLIPTextModelWithProjection) in OpenCLIP's names."""
    sd = _text_model_sd(text_encoder)
    sd.pop("text_projection.weight", None)
    out = {
        "token_embedding.weight": sd.pop("embeddings.token_embedding.weight"),
        "positional_embedding": sd.pop("embeddings.position_embedding.weight"),
        "ln_final.weight": sd.pop("final_layer_norm.weight"),
        "ln_final.bias": sd.pop("final_layer_norm.bias"),
        # OpenCLIP computes x @ text_projection; a Linear stores the transpose.
        "text_projection": text_encoder.state_dict()["text_projection.weight"].T.contiguous(),
    }
    for i in range(text_encoder.config.num_hidden_layers):
        src, dst = f"encoder.layers.{i}.", f"transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            qkv = [sd.pop(f"{src}self_attn.{p}_proj.{kind}") for p in ("q", "k", "v")]
            out[f"{dst}attn.in_proj_{kind}"] = torch.cat(qkv, dim=0)
            for old, new in OPENCLIP_LAYER.items():
                out[f"{dst}{new}.{kind}"] = sd.pop(f"{src}{old}.{kind}")
    if sd:
        raise KeyError(f"no OpenCLIP name for {sorted(sd)[:3]}")
    return out
