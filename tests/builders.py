"""Small real models and LoRA files that tests build for themselves."""

from __future__ import annotations

from pathlib import Path

TE_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


def tiny_record(**kw):
    """A GenerationRecord for the tiny base at 256 px (override any field)."""
    from fakestudio.record import GenerationRecord

    base = dict(
        prompt="photo",
        negative_prompt="",
        seed=0,
        steps=2,
        guidance=7.0,
        width=256,
        height=256,
        scheduler="euler",
        base_model="tiny",
        base_sha256="0" * 64,
    )
    return GenerationRecord(**{**base, **kw})


def make_lora(
    pipe,
    path: Path,
    *,
    form: str = "peft",
    seed: int = 0,
    rank: int = 4,
    alpha: float = 8,
    with_te: bool = True,
    scale: float = 1.0,
    header: dict | None = None,
    layers: str = "attention",
) -> Path:
    """A LoRA with random (non-zero) weights for `pipe`, written in `form` by our exporter;
    `layers`: which UNet layers, as `fakestudio train --layers`."""
    import torch
    from peft import LoraConfig, get_peft_model_state_dict

    from fakestudio.train.export import save_lora
    from fakestudio.train.loop import UNET_TARGETS as TARGETS

    torch.manual_seed(seed)
    ucfg = LoraConfig(
        r=rank, lora_alpha=alpha, target_modules=TARGETS[layers], init_lora_weights=False
    )
    pipe.unet.add_adapter(ucfg, adapter_name="build")
    ustate = {
        k: v.detach().clone() * scale
        for k, v in get_peft_model_state_dict(pipe.unet, adapter_name="build").items()
    }
    pipe.unet.delete_adapters("build")
    te_states, te_cfgs = {}, {}
    encoders = (
        ["text_encoder", "text_encoder_2"] if hasattr(pipe, "text_encoder_2") else ["text_encoder"]
    )
    for name in encoders if with_te else []:
        te = getattr(pipe, name)
        tcfg = LoraConfig(
            r=rank, lora_alpha=alpha, target_modules=TE_TARGETS, init_lora_weights=False
        )
        te.add_adapter(tcfg, adapter_name="build")
        te_states[name] = {
            k: v.detach().clone() * scale
            for k, v in get_peft_model_state_dict(te, adapter_name="build").items()
        }
        te_cfgs[name] = tcfg
        te.delete_adapter("build")
    if not any(pipe.get_list_adapters().values()):
        pipe.unload_lora_weights()  # no peft wrappers left on a shared pipe
    sdxl = hasattr(pipe, "text_encoder_2")
    return save_lora(
        path,
        sgm_layers_per_block=pipe.unet.config.layers_per_block if sdxl else None,
        unet_state=ustate,
        unet_config=ucfg,
        te_states=te_states,
        te_configs=te_cfgs,
        form=form,
        header=header,
    )


def build_tiny_sdxl(folder: Path) -> Path:
    """A tiny SDXL-architecture diffusers folder (two text encoders, added conditioning)."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from fakestudio import tiny

    torch.manual_seed(1)
    tok = tiny.byte_tokenizer()
    te_cfg = tiny.text_encoder_config(tok, hidden=32)
    te = CLIPTextModel(CLIPTextConfig(**te_cfg))
    te2 = CLIPTextModelWithProjection(CLIPTextConfig(**te_cfg))
    unet = UNet2DConditionModel(
        **tiny.unet_config(
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=32 + 6 * 8,
            transformer_layers_per_block=1,
            use_linear_projection=True,
        )
    )
    vae = AutoencoderKL(**tiny.vae_config())
    sched = EulerDiscreteScheduler(**tiny.SCHEDULE, timestep_spacing="leading")
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=te,
        text_encoder_2=te2,
        tokenizer=tok,
        tokenizer_2=tok,
        unet=unet,
        scheduler=sched,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder
