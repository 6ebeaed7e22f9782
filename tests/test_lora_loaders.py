"""Both LoRA forms we write, mapped key by key the way each loader maps them, on the real SD1.5
and SDXL architectures (built from the bundled configs on the meta device: names and shapes,
no weights).

The loaders' mappings are re-implemented here from reading their code (not vendored):
- ComfyUI `comfy/lora.py` (`model_lora_keys_unet`, `model_lora_keys_clip`, `load_lora`): a key
  map from LoRA module names to model weights (kohya names from diffusers names with `_`,
  diffusers names with `.to_` -> `.processor.to_` and `to_out.0` -> `to_out`, text encoders as
  `text_encoder[_2].text_model.encoder.layers.N.<proj>`), then for each mapped name the
  `.lora_up/.lora_down`, `_lora.up/_lora.down`, `.lora_B/.lora_A` and `.alpha` keys; every
  other key is logged "lora key not loaded". `unet_to_diffusers` is taken to cover every
  diffusers UNet weight (it is ComfyUI's full SD-UNet conversion).
- Automatic1111 `extensions-builtin/Lora/networks.py` (`convert_diffusers_name_to_compvis`,
  `load_network`): the part before the first `.` converted to LDM module names and looked up
  among the checkpoint's modules (`diffusion_model_…`, `transformer_text_model_…`, SDXL's
  `0_transformer_text_model_…` and `1_model_transformer_resblocks_N_attn` for OpenCLIP's
  fused q/k/v); A1111 reads only the kohya form.
- kohya sd-scripts `networks/lora.py` (`create_network_from_weights` + `load_state_dict`):
  one LoRA module per Linear under the UNet's Transformer2DModel and the text encoder's
  CLIPAttention/CLIPMLP, named `lora_unet_`/`lora_te_` (SDXL `lora_te1_`/`lora_te2_`) + the
  module path with `_`; for SDXL kohya trains its own UNet with SGM/LDM block names
  (`input_blocks.4.1.…`), which our SDXL kohya form therefore uses.
- diffusers, oldest supported (0.35 / peft 0.17 / transformers 4): the constraints that broke
  there, checked without installing that stack: `lora_adapter_metadata` holds only LoraConfig
  fields every peft has, text-encoder keys carry `text_model.`, UNet keys survive diffusers'
  legacy conversion (`.processor.` dropped, `to_q_lora.down` -> `to_q.lora_A`).
- diffusers, current: the real `load_lora_weights` on tiny SD1 and SDXL pipelines.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from fakestudio.train.export import lora_bytes
from tests.ldm_convert import unet_to_ldm

CONFIGS = Path(__file__).resolve().parents[1] / "fakestudio" / "configs"
UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TE_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
EXPECTED_MODULES = {"sd1": 128 + 48, "sdxl": 70 * 4 * 2 + (12 + 32) * 4}
HEADER = {"trigger": "ben0a", "base_model": "x", "resolution": 512, "rank": 1, "alpha": 2.0}


# ------------------------------------------------------------------------- the architectures


def _config(family: str, part: str) -> dict:
    folder = "sd15" if family == "sd1" else "sdxl"
    return json.loads((CONFIGS / folder / part / "config.json").read_text())


@pytest.fixture(scope="module", params=["sd1", "sdxl"])
def arch(request):
    """{family, unet, encoders: {name: model}} with meta tensors."""
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    family = request.param
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(_config(family, "unet"))
        encoders = {
            "text_encoder": CLIPTextModel(CLIPTextConfig(**_config(family, "text_encoder")))
        }
        if family == "sdxl":
            cfg = CLIPTextConfig(**_config(family, "text_encoder_2"))
            encoders["text_encoder_2"] = CLIPTextModelWithProjection(cfg)
    return {"family": family, "unet": unet, "encoders": encoders, "ldm": _ldm_names(unet)}


def _ldm_names(unet) -> dict[str, str]:
    """diffusers UNet weight name -> its LDM name (the single-file layout)."""

    class Names:  # unet_to_ldm renames a state dict; feed it the names themselves
        config = unet.config

        @staticmethod
        def state_dict():
            return {k: k for k in unet.state_dict()}

    return {diffusers: ldm for ldm, diffusers in unet_to_ldm(Names).items()}


def _peft_state(model, targets: list[str], rank: int = 1) -> dict:
    """A peft-style LoRA state dict (`<module>.lora_A.weight`) for every targeted Linear."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    for name, m in model.named_modules():
        if not any(name.endswith("." + t) for t in targets):
            continue
        if isinstance(m, torch.nn.Linear):
            state[f"{name}.lora_A.weight"] = torch.randn(rank, m.in_features, generator=gen)
            state[f"{name}.lora_B.weight"] = torch.randn(m.out_features, rank, generator=gen)
        elif isinstance(m, torch.nn.Conv2d):  # peft's: a k x k down conv, a 1 x 1 up conv
            k = m.kernel_size
            state[f"{name}.lora_A.weight"] = torch.randn(rank, m.in_channels, *k, generator=gen)
            state[f"{name}.lora_B.weight"] = torch.randn(m.out_channels, rank, 1, 1, generator=gen)
    return state


@pytest.fixture(scope="module")
def files(arch):
    """{form: {key: shape}} of the two forms our exporter writes, with metadata."""
    return _files(arch, UNET_TARGETS)


@pytest.fixture(scope="module")
def files_all(arch):
    """The same for a LoRA on all layers (`fakestudio train --layers all`)."""
    from fakestudio.train.loop import UNET_TARGETS as TARGETS

    return _files(arch, TARGETS["all"], {"layers": "all"})


def _files(arch, unet_targets: list[str], header: dict | None = None) -> dict:
    from peft import LoraConfig

    ucfg = LoraConfig(r=1, lora_alpha=2.0, target_modules=unet_targets)
    te_states = {n: _peft_state(m, TE_TARGETS) for n, m in arch["encoders"].items()}
    te_cfgs = {n: LoraConfig(r=1, lora_alpha=2.0, target_modules=TE_TARGETS) for n in te_states}
    out = {}
    for form in ("kohya", "peft"):
        data = lora_bytes(
            unet_state=_peft_state(arch["unet"], unet_targets),
            unet_config=ucfg,
            te_states=te_states,
            te_configs=te_cfgs,
            form=form,
            header={**HEADER, "base_family": arch["family"], **(header or {})},
            sgm_layers_per_block=2 if arch["family"] == "sdxl" else None,
        )
        from safetensors.torch import load

        out[form] = {"tensors": load(data), "metadata": _metadata(data)}
    return out


def _metadata(data: bytes) -> dict:
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + n]).get("__metadata__", {})


def _modules(tensors: dict) -> set[str]:
    from fakestudio.lora_info import module_of

    return {m for k in tensors if (f := module_of(k)) and f[1] == "down" for m in [f[0]]}


def _weights(model) -> list[str]:
    return [k[: -len(".weight")] for k in model.state_dict() if k.endswith(".weight")]


# -------------------------------------------------------------------------------- ComfyUI


LORA_CLIP_MAP = {
    "mlp.fc1": "mlp_fc1",
    "mlp.fc2": "mlp_fc2",
    "self_attn.k_proj": "self_attn_k_proj",
    "self_attn.q_proj": "self_attn_q_proj",
    "self_attn.v_proj": "self_attn_v_proj",
    "self_attn.out_proj": "self_attn_out_proj",
}


def comfy_key_map(arch) -> dict[str, str]:
    key_map = {}
    for ldm in arch["ldm"].values():  # the model's own (LDM) names
        if ldm.endswith(".weight"):
            key_map["lora_unet_" + ldm[: -len(".weight")].replace(".", "_")] = (
                "diffusion_model." + ldm
            )
    for k in _weights(arch["unet"]):  # diffusers names (unet_to_diffusers covers them all)
        target = "diffusion_model." + arch["ldm"][k + ".weight"]
        key_map["lora_unet_" + k.replace(".", "_")] = target
        for p in ("", "unet."):
            name = p + k.replace(".to_", ".processor.to_")
            if name.endswith(".to_out.0"):
                name = name[:-2]
            key_map[name] = target
    encoders = arch["encoders"]
    clip_l = encoders["text_encoder"].config.num_hidden_layers
    for b in range(clip_l):
        for c, flat in LORA_CLIP_MAP.items():
            target = f"clip_l:{b}.{c}"
            key_map[f"lora_te_text_model_encoder_layers_{b}_{flat}"] = target
            key_map[f"lora_te1_text_model_encoder_layers_{b}_{flat}"] = target
            key_map[f"text_encoder.text_model.encoder.layers.{b}.{c}"] = target
    if "text_encoder_2" in encoders:
        for b in range(encoders["text_encoder_2"].config.num_hidden_layers):
            for c, flat in LORA_CLIP_MAP.items():
                target = f"clip_g:{b}.{c}"
                key_map[f"lora_te2_text_model_encoder_layers_{b}_{flat}"] = target
                key_map[f"text_encoder_2.text_model.encoder.layers.{b}.{c}"] = target
    return key_map


def comfy_load(tensors: dict, key_map: dict) -> tuple[dict, list[str]]:
    """{model weight: (up, down, alpha)} and the keys ComfyUI would log as not loaded."""
    patches, loaded = {}, set()
    for x, target in key_map.items():
        alpha = None
        if f"{x}.alpha" in tensors:
            alpha = tensors[f"{x}.alpha"].item()
            loaded.add(f"{x}.alpha")
        for up, down in (
            (f"{x}.lora_up.weight", f"{x}.lora_down.weight"),
            (f"{x}_lora.up.weight", f"{x}_lora.down.weight"),
            (f"{x}.lora_B.weight", f"{x}.lora_A.weight"),
        ):
            if up in tensors:
                patches[target] = (tensors[up], tensors[down], alpha)
                loaded |= {up, down}
                break
    return patches, [k for k in tensors if k not in loaded]


@pytest.mark.parametrize("form", ["kohya", "peft"])
def test_comfyui_maps_every_key(arch, files, form):
    tensors = files[form]["tensors"]
    patches, ignored = comfy_load(tensors, comfy_key_map(arch))
    assert ignored == []
    assert len(patches) == len(_modules(tensors)) == EXPECTED_MODULES[arch["family"]]
    # the same delta in both forms: ComfyUI scales by alpha / rank, or 1 without alpha
    deltas = {}
    for target, (up, down, alpha) in patches.items():
        deltas[target] = _delta(up, down, alpha)
    other, _ = comfy_load(
        files["peft" if form == "kohya" else "kohya"]["tensors"], comfy_key_map(arch)
    )
    some = sorted(deltas)[:: max(1, len(deltas) // 8)]
    for t in some:
        up, down, alpha = other[t]
        ref = _delta(up, down, alpha)
        assert torch.allclose(deltas[t], ref, atol=1e-5)


def _delta(up, down, alpha):
    """The weight change a loader applies (ComfyUI scales by alpha / rank, or 1 without alpha);
    convolutions flattened: a k x k down conv then a 1 x 1 up conv."""
    scale = alpha / down.shape[0] if alpha is not None else 1.0
    return scale * (up.flatten(1) @ down.flatten(1))


def _all_layer_modules(arch) -> int:
    """How many modules `--layers all` adapts: the UNet's targets and the text encoders'."""
    from fakestudio.train.loop import UNET_TARGETS as TARGETS

    def count(model, targets):
        return sum(
            1
            for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear | torch.nn.Conv2d)
            and any(name.endswith("." + t) for t in targets)
        )

    return count(arch["unet"], TARGETS["all"]) + sum(
        count(te, TE_TARGETS) for te in arch["encoders"].values()
    )


def test_comfyui_maps_every_key_of_a_lora_on_all_layers(arch, files_all):
    """The kohya form; the diffusers form of such a LoRA uses peft's names (what diffusers'
    own `save_lora_weights` writes), which diffusers reads (below) and ComfyUI's map lacks."""
    tensors = files_all["kohya"]["tensors"]
    patches, ignored = comfy_load(tensors, comfy_key_map(arch))
    assert ignored == []
    assert len(patches) == len(_modules(tensors)) == _all_layer_modules(arch)
    assert any("_resnets_" in k or "_in_layers_" in k for k in tensors)
    # the same deltas as the diffusers form, module by module
    peft = files_all["peft"]["tensors"]
    compared = 0
    for key in list(tensors)[::7]:
        if key.endswith(".lora_down.weight"):
            name = key.removesuffix(".lora_down.weight")
            up, down = tensors[name + ".lora_up.weight"], tensors[key]
            alpha = tensors[name + ".alpha"].item()
            found = [k for k in peft if k.endswith(".lora_A.weight") and _flat(k) == _flat(key)]
            if found:  # SD1 (diffusers names on both sides)
                (a,) = found
                b = a.replace(".lora_A.", ".lora_B.")
                assert torch.allclose(_delta(up, down, alpha), _delta(peft[b], peft[a], None))
                compared += 1
    assert compared >= 10 or arch["family"] == "sdxl"


def _flat(key: str) -> str:
    """A LoRA key's module with `_` for `.`, prefixes dropped: comparable across forms."""
    module = re.sub(r"\.(lora_(down|up|A|B)\.weight|alpha)$", "", key)
    return module.replace("lora_unet_", "").removeprefix("unet.").replace(".", "_")


# ---------------------------------------------------------------------------- Automatic1111

SUFFIX_CONVERSION = {
    "attentions": {},
    "resnets": {
        "conv1": "in_layers_2",
        "conv2": "out_layers_3",
        "time_emb_proj": "emb_layers_1",
        "conv_shortcut": "skip_connection",
    },
}


def a1111_compvis(key: str) -> str:
    """A1111's diffusers-name -> LDM-name conversion (the parts our files use)."""
    m = re.match(r"lora_unet_down_blocks_(\d+)_(attentions|resnets)_(\d+)_(.+)", key)
    if m:
        b, kind, i, rest = int(m[1]), m[2], int(m[3]), m[4]
        rest = SUFFIX_CONVERSION[kind].get(rest, rest)
        return f"diffusion_model_input_blocks_{1 + b * 3 + i}_{1 if kind == 'attentions' else 0}_{rest}"
    m = re.match(r"lora_unet_mid_block_(attentions|resnets)_(\d+)_(.+)", key)
    if m:
        kind, i, rest = m[1], int(m[2]), m[3]
        rest = SUFFIX_CONVERSION[kind].get(rest, rest)
        return f"diffusion_model_middle_block_{1 if kind == 'attentions' else i * 2}_{rest}"
    m = re.match(r"lora_unet_up_blocks_(\d+)_(attentions|resnets)_(\d+)_(.+)", key)
    if m:
        b, kind, i, rest = int(m[1]), m[2], int(m[3]), m[4]
        rest = SUFFIX_CONVERSION[kind].get(rest, rest)
        return (
            f"diffusion_model_output_blocks_{b * 3 + i}_{1 if kind == 'attentions' else 0}_{rest}"
        )
    m = re.match(r"lora_te_text_model_encoder_layers_(\d+)_(.+)", key)
    if m:
        return f"transformer_text_model_encoder_layers_{m[1]}_{m[2]}"
    m = re.match(r"lora_te2_text_model_encoder_layers_(\d+)_(.+)", key)
    if m:
        rest = m[2].replace("mlp_fc1", "mlp_c_fc").replace("mlp_fc2", "mlp_c_proj")
        return f"1_model_transformer_resblocks_{m[1]}_{rest.replace('self_attn', 'attn')}"
    return key


def a1111_layers(arch) -> set[str]:
    """The names A1111 gives the checkpoint's modules (LDM layout, dots as `_`)."""
    names = set()
    for k in unet_to_ldm(arch["unet"]):
        if k.endswith(".weight"):
            names.add("diffusion_model_" + k[: -len(".weight")].replace(".", "_"))
    te = "0_transformer_text_model" if arch["family"] == "sdxl" else "transformer_text_model"
    for k in _weights(arch["encoders"]["text_encoder"]):
        names.add(f"{te}_" + k.removeprefix("text_model.").replace(".", "_"))
    if "text_encoder_2" in arch["encoders"]:
        for i in range(arch["encoders"]["text_encoder_2"].config.num_hidden_layers):
            names |= {
                f"1_model_transformer_resblocks_{i}_attn",
                f"1_model_transformer_resblocks_{i}_attn_out_proj",
            }
    return names


def a1111_load(tensors: dict, layers: set[str]) -> tuple[set[str], list[str]]:
    matched, failed = set(), []
    for key in tensors:
        head, _, part = key.partition(".")
        name = a1111_compvis(head)
        found = name in layers
        if not found:
            m = re.match(r"(.*)_([qkv]_proj)$", name)
            found = bool(m) and m[1] in layers
        if not found and "lora_unet" in head:
            name = head.replace("lora_unet", "diffusion_model")
            found = name in layers
        elif not found and "lora_te1_text_model" in head:
            name = head.replace("lora_te1_text_model", "0_transformer_text_model")
            found = name in layers
        if found and part in ("lora_up.weight", "lora_down.weight", "alpha"):
            matched.add(head)
        else:
            failed.append(key)
    return matched, failed


def test_a1111_maps_every_key_of_the_kohya_form(arch, files):
    tensors = files["kohya"]["tensors"]
    matched, failed = a1111_load(tensors, a1111_layers(arch))
    assert failed == []
    assert len(matched) == EXPECTED_MODULES[arch["family"]]


def test_a1111_maps_every_key_of_a_lora_on_all_layers(arch, files_all):
    tensors = files_all["kohya"]["tensors"]
    matched, failed = a1111_load(tensors, a1111_layers(arch))
    assert failed == []
    assert len(matched) == _all_layer_modules(arch)
    args = json.loads(files_all["kohya"]["metadata"]["ss_network_args"])
    assert args == {"conv_dim": "1", "conv_alpha": "2.0"}  # kohya's LoCon


def test_a1111_reads_the_header_fields_it_shows(arch, files):
    """network.py: alias from ss_output_name, SD version from ss_base_model_version / ss_v2,
    hash from sshs_model_hash (else the tensor data's sha256)."""
    from fakestudio.lora_info import legacy_hash, tensor_data_sha256

    for form in ("kohya", "peft"):
        meta = files[form]["metadata"]
        assert meta["ss_output_name"] == "ben0a"
        version = meta["ss_base_model_version"]
        assert version.startswith("sdxl_") == (arch["family"] == "sdxl")
        assert meta["ss_v2"] == "False"
        assert meta["ss_resolution"] == "(512, 512)" and meta["ss_sd_model_name"] == "x"
        assert meta["modelspec.trigger_phrase"] == "ben0a"
        assert meta["modelspec.architecture"].startswith(
            "stable-diffusion-xl-v1-base" if arch["family"] == "sdxl" else "stable-diffusion-v1"
        )
        from safetensors.torch import save

        data = save(files[form]["tensors"], metadata=meta)
        assert meta["sshs_model_hash"] == tensor_data_sha256(data)
        bare = save(files[form]["tensors"], {k: v for k, v in meta.items() if k.startswith("ss_")})
        assert meta["sshs_legacy_hash"] == legacy_hash(bare)


def test_a1111_cannot_read_the_diffusers_form(arch, files):
    """A1111 splits keys at the first dot, so `unet.down_blocks…` never matches: the kohya
    form is the one to give A1111 (lora-info says so)."""
    matched, failed = a1111_load(files["peft"]["tensors"], a1111_layers(arch))
    assert not matched and failed


# ------------------------------------------------------------------------------------ kohya


def kohya_modules(arch) -> set[str]:
    """SD1: kohya trains diffusers' UNet (diffusers names); SDXL: its own SGM-layout UNet.
    Linear and 1x1 conv layers in the transformers; with `conv_dim` (LoCon) also the 3x3 convs
    of the ResNet blocks and samplers."""
    names = set()
    conv_blocks = ("ResnetBlock2D", "Downsample2D", "Upsample2D")
    for name, m in arch["unet"].named_modules():
        if type(m).__name__ in ("Transformer2DModel", *conv_blocks):
            for child, c in m.named_modules():
                if isinstance(c, torch.nn.Linear | torch.nn.Conv2d):
                    full = f"{name}.{child}"
                    if arch["family"] == "sdxl":
                        full = arch["ldm"][full + ".weight"][: -len(".weight")]
                    names.add("lora_unet_" + full.replace(".", "_"))
    for name, m in arch["encoders"]["text_encoder"].named_modules():
        if type(m).__name__ in ("CLIPAttention", "CLIPMLP"):
            for child, c in m.named_modules():
                if isinstance(c, torch.nn.Linear):
                    full = f"{name}.{child}"
                    if not full.startswith("text_model."):  # transformers 4 names
                        full = "text_model." + full
                    prefix = "lora_te1_" if arch["family"] == "sdxl" else "lora_te_"
                    names.add(prefix + full.replace(".", "_"))
    if "text_encoder_2" in arch["encoders"]:
        for name, m in arch["encoders"]["text_encoder_2"].named_modules():
            if type(m).__name__ in ("CLIPAttention", "CLIPMLP"):
                for child, c in m.named_modules():
                    if isinstance(c, torch.nn.Linear):
                        full = f"{name}.{child}"
                        if not full.startswith("text_model."):
                            full = "text_model." + full
                        names.add("lora_te2_" + full.replace(".", "_"))
    return names


@pytest.mark.parametrize("layers", ["attention", "all"])
def test_kohya_maps_every_key(arch, files, files_all, layers):
    modules = kohya_modules(arch)
    tensors = (files if layers == "attention" else files_all)["kohya"]["tensors"]
    expected = {
        f"{m}.{p}" for m in modules for p in ("lora_down.weight", "lora_up.weight", "alpha")
    }
    unexpected = [k for k in tensors if k not in expected]
    assert unexpected == []
    assert len(_modules(tensors)) == (
        EXPECTED_MODULES[arch["family"]] if layers == "attention" else _all_layer_modules(arch)
    )


# ------------------------------------------------------------------- diffusers, oldest supported

OLD_PEFT_LORA_FIELDS = {"r", "lora_alpha", "target_modules"}  # in every peft LoraConfig


def legacy_to_peft(key: str) -> str:
    """diffusers' `convert_unet_state_dict_to_peft` for the keys we write."""
    key = key.replace(".processor.", ".")
    for old, new in (
        (".to_out_lora.up", ".to_out.0.lora_B"),
        (".to_out_lora.down", ".to_out.0.lora_A"),
        ("_lora.down", ".lora_A"),
        ("_lora.up", ".lora_B"),
    ):
        if old in key:
            return key.replace(old, new)
    return key


def test_oldest_diffusers_constraints(arch, files):
    meta = json.loads(files["peft"]["metadata"]["lora_adapter_metadata"])
    assert {k.split(".", 1)[1] for k in meta} <= OLD_PEFT_LORA_FIELDS
    tensors = files["peft"]["tensors"]
    unet_modules = {n for n, _ in arch["unet"].named_modules()}
    for key in tensors:
        part, rest = key.split(".", 1)
        if part == "unet":
            assert "lora_A" not in key  # so diffusers runs its legacy conversion
            module = legacy_to_peft(rest).rsplit(".lora_", 1)[0]
            assert module in unet_modules, key
        else:
            assert rest.startswith("text_model.encoder.layers."), key  # transformers 4 names
            assert rest.endswith((".lora_A.weight", ".lora_B.weight"))


# --------------------------------------------------------------------------- diffusers, current


@pytest.fixture(scope="module")
def tiny_sdxl(tmp_path_factory):
    from diffusers import StableDiffusionXLPipeline

    from tests.builders import build_tiny_sdxl

    folder = build_tiny_sdxl(tmp_path_factory.mktemp("xl") / "xl")
    return StableDiffusionXLPipeline.from_pretrained(folder)


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
@pytest.mark.parametrize("form", ["kohya", "peft"])
@pytest.mark.parametrize("layers", ["attention", "all"])
def test_current_diffusers_loads_every_module_without_warning(
    family, form, layers, request, tmp_path, caplog
):
    from tests.builders import make_lora

    pipe = request.getfixturevalue("tiny_pipe" if family == "sd1" else "tiny_sdxl")
    path = make_lora(pipe, tmp_path / f"{form}.safetensors", form=form, layers=layers)
    with safe_open(str(path), "pt") as f:
        modules = _modules({k: None for k in f.keys()})
    caplog.set_level(logging.WARNING)
    pipe.load_lora_weights(str(path), adapter_name="check")
    try:
        layers = sum(
            1
            for part in ("unet", "text_encoder", "text_encoder_2")
            if getattr(pipe, part, None) is not None
            for m in getattr(pipe, part).modules()
            if hasattr(m, "lora_A") and "check" in m.lora_A
        )
        assert layers == len(modules)
        assert not [r for r in caplog.records if r.name.startswith(("diffusers", "peft"))]
    finally:
        pipe.unload_lora_weights()  # the session's pipe: leave no peft wrappers behind
