"""LoRA loading: both file forms, weights, A1111 prompt tags, weight 0."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fakestudio.errors import UserError
from fakestudio.generate import render
from fakestudio.lora import LoraSpec, apply_loras, extract_prompt_loras, parse_lora_arg, read_header
from tests.builders import make_lora, tiny_record


def record(**kw):
    return tiny_record(**{"prompt": "photo of ben0a man", "seed": 5, "steps": 2, **kw})


def image(pipe, specs):
    pipe.unload_lora_weights()
    apply_loras(pipe, specs)
    try:
        return np.asarray(render(pipe, record())).astype(np.int16)
    finally:
        pipe.unload_lora_weights()


@pytest.fixture(scope="module")
def loras(tiny_pipe, tmp_path_factory):
    d = tmp_path_factory.mktemp("loras")
    return {
        "peft": make_lora(
            tiny_pipe, d / "peft.safetensors", form="peft", seed=1, header={"trigger": "ben0a"}
        ),
        "kohya": make_lora(tiny_pipe, d / "kohya.safetensors", form="kohya", seed=1),
        "other": make_lora(tiny_pipe, d / "other.safetensors", form="peft", seed=2),
        "dir": d,
    }


def test_parse_lora_arg():
    assert parse_lora_arg("a/b.safetensors:0.5") == LoraSpec(
        __import__("pathlib").Path("a/b.safetensors"), 0.5
    )
    assert parse_lora_arg("b.safetensors").weight == 1.0


def test_kohya_form_has_a1111_keys(loras):
    from safetensors import safe_open

    with safe_open(str(loras["kohya"]), "pt") as f:
        keys = list(f.keys())
    assert any(k.startswith("lora_unet_") and k.endswith(".lora_down.weight") for k in keys)
    assert any(k.startswith("lora_te_text_model_encoder_layers_0_self_attn_q_proj") for k in keys)
    assert all(k.endswith((".lora_down.weight", ".lora_up.weight", ".alpha")) for k in keys)


def test_both_forms_load_and_give_the_same_image(tiny_pipe, loras):
    none = image(tiny_pipe, [])
    peft = image(tiny_pipe, [LoraSpec(loras["peft"], 1.0)])
    kohya = image(tiny_pipe, [LoraSpec(loras["kohya"], 1.0)])
    assert np.abs(peft - none).mean() > 2  # the LoRA does something
    assert np.abs(peft - kohya).max() <= 1  # same weights, same alpha, either form


def test_weight_zero_is_exactly_no_lora_and_weights_scale(tiny_pipe, loras):
    none = image(tiny_pipe, [])
    zero = image(tiny_pipe, [LoraSpec(loras["peft"], 0.0)])
    half = image(tiny_pipe, [LoraSpec(loras["peft"], 0.5)])
    full = image(tiny_pipe, [LoraSpec(loras["peft"], 1.0)])
    assert np.array_equal(zero, none)
    assert 0 < np.abs(half - none).mean() < np.abs(full - none).mean()


def test_two_loras_stack(tiny_pipe, loras):
    one = image(tiny_pipe, [LoraSpec(loras["peft"], 1.0)])
    two = image(tiny_pipe, [LoraSpec(loras["peft"], 1.0), LoraSpec(loras["other"], 1.0)])
    assert np.abs(one - two).mean() > 1


def test_prompt_tags_equal_lora_option(tiny_pipe, loras):
    clean, specs = extract_prompt_loras("photo of ben0a man <lora:peft:0.8>", loras["dir"])
    assert clean == "photo of ben0a man"
    assert specs == [LoraSpec(loras["peft"], 0.8)]
    with pytest.raises(UserError, match="--lora-dir"):
        extract_prompt_loras("x <lora:peft:0.8>", None)
    with pytest.raises(UserError, match="nope"):
        extract_prompt_loras("x <lora:nope>", loras["dir"])


def test_header_and_refs(tiny_pipe, loras):
    assert read_header(loras["peft"])["fakestudio"]["trigger"] == "ben0a"
    refs = apply_loras(tiny_pipe, [LoraSpec(loras["peft"], 0.7), LoraSpec(loras["other"], 0.0)])
    tiny_pipe.unload_lora_weights()
    assert len(refs) == 1 and refs[0].trigger == "ben0a" and refs[0].weight == 0.7
    assert refs[0].name == "peft.safetensors" and len(refs[0].sha256) == 64


def test_bad_lora_files(tiny_pipe, tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all")
    with pytest.raises(UserError, match="junk.safetensors: not a valid safetensors"):
        apply_loras(tiny_pipe, [LoraSpec(junk, 1.0)])
    with pytest.raises(UserError, match="not found"):
        apply_loras(tiny_pipe, [LoraSpec(tmp_path / "missing.safetensors", 1.0)])
    from safetensors.torch import save_file

    nolora = tmp_path / "weights.safetensors"
    save_file({"x": torch.zeros(2)}, nolora)
    with pytest.raises(UserError, match="no LoRA weights"):
        apply_loras(tiny_pipe, [LoraSpec(nolora, 1.0)])


def _renamed(src, dst, share: float):
    """A copy of kohya file `src` whose first `share` of modules are renamed to ones no base has."""
    from safetensors.torch import load_file, save_file

    sd = load_file(str(src))
    modules = sorted({k.split(".")[0] for k in sd})
    gone = set(modules[: int(len(modules) * share)])
    out = {}
    for k, v in sd.items():
        head, _, tail = k.partition(".")
        out[
            ("lora_unet_nowhere_" + head.removeprefix("lora_") if head in gone else head)
            + "."
            + tail
        ] = v
    save_file(out, str(dst))
    return dst, len(modules), len(modules) - len(gone)


def test_partial_matches_are_reported_and_clear_mismatches_refused(tiny_pipe, loras, tmp_path):
    said = []
    part, total, kept = _renamed(loras["kohya"], tmp_path / "part.safetensors", 0.25)
    refs = apply_loras(tiny_pipe, [LoraSpec(part, 1.0)], warn=said.append)
    tiny_pipe.unload_lora_weights()
    assert len(refs) == 1
    assert said == [
        f"part.safetensors: {kept} of {total} LoRA modules match this base; "
        f"{total - kept} are ignored"
    ]
    most, total, kept = _renamed(loras["kohya"], tmp_path / "most.safetensors", 0.75)
    with pytest.raises(UserError, match=f"only {kept} of {total} LoRA modules match"):
        apply_loras(tiny_pipe, [LoraSpec(most, 1.0)])
    assert not tiny_pipe.get_list_adapters().get("unet")  # nothing left loaded
    assert not [n for n, _ in tiny_pipe.unet.named_modules() if n.endswith(".base_layer")]
    said.clear()
    apply_loras(tiny_pipe, [LoraSpec(loras["kohya"], 1.0)], warn=said.append)
    tiny_pipe.unload_lora_weights()
    assert said == []  # a full match says nothing


def test_other_cross_attention_width_is_refused(tiny_pipe, tmp_path):
    from safetensors.torch import save_file

    width = tiny_pipe.unet.config.cross_attention_dim + 8
    key = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k"
    other = tmp_path / "other-arch.safetensors"
    save_file(
        {
            f"{key}.lora_down.weight": torch.zeros(4, width),
            f"{key}.lora_up.weight": torch.zeros(8, 4),
        },
        str(other),
    )
    with pytest.raises(
        UserError, match=f"another base architecture \\(cross-attention width {width}"
    ):
        apply_loras(tiny_pipe, [LoraSpec(other, 1.0)])


def test_prompt_tags_resolve_a1111_aliases(tiny_pipe, tmp_path):
    """A1111 writes <lora:ALIAS:w> with the file's ss_output_name; such prompts resolve too."""
    path = make_lora(
        tiny_pipe,
        tmp_path / "ben0a-v2-final.safetensors",
        form="kohya",
        header={"trigger": "ben0a"},
    )
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), "pt") as f:
        meta = {**f.metadata(), "ss_output_name": "ben0a"}
    save_file(load_file(str(path)), str(path), metadata=meta)
    (tmp_path / "junk.safetensors").write_bytes(b"\xff" * 16)  # unreadable files are passed over
    clean, specs = extract_prompt_loras("photo of ben0a man <lora:ben0a:0.5>", tmp_path)
    assert clean == "photo of ben0a man" and specs == [LoraSpec(path, 0.5)]
