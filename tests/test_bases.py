"""`--base`: tiny, diffusers SD1/SDXL folders, hub ids only when cached, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from detectors.c2pa import read_c2pa
from detectors.watermarks import durable
from fakestudio.cli import cli
from fakestudio.errors import UserError
from fakestudio.models import load_base
from tests.builders import build_tiny_sdxl, make_lora


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def sdxl_folder(tmp_path_factory):
    return build_tiny_sdxl(tmp_path_factory.mktemp("sdxl") / "tiny-sdxl")


def test_tiny_is_a_plain_diffusers_folder(tiny_folder):
    index = json.loads((tiny_folder / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    base = load_base(str(tiny_folder))
    assert base.family == "sd1" and base.name == tiny_folder.name
    assert base.sha256 == load_base("tiny").sha256


def test_diffusers_sd1_folder_generates(tmp_path, tiny_folder):
    res = invoke(
        "generate",
        "x",
        "--base",
        tiny_folder,
        "--out",
        tmp_path,
        "--steps",
        2,
        "--seed",
        1,
        "--width",
        256,
        "--height",
        256,
        "--json",
    )
    assert res.exit_code == 0, res.output
    (o,) = json.loads(res.stdout)
    c = read_c2pa(o["path"])
    assert c.generation["base_model"]["name"] == tiny_folder.name
    assert str(tmp_path) not in json.dumps(c.active_manifest)  # names, never paths
    assert str(tiny_folder.parent) not in json.dumps(c.active_manifest)


def test_sdxl_folder_generates_labelled(tmp_path, sdxl_folder):
    res = invoke(
        "generate",
        "x",
        "--base",
        sdxl_folder,
        "--out",
        tmp_path,
        "--steps",
        2,
        "--seed",
        1,
        "--width",
        256,
        "--height",
        256,
        "--json",
    )
    assert res.exit_code == 0, res.output
    (o,) = json.loads(res.stdout)
    assert (
        durable.decode(np.asarray(Image.open(o["path"]).convert("RGB"))).payload == o["watermark"]
    )
    assert read_c2pa(o["path"]).state == "valid-untrusted"


def test_sdxl_lora_on_sd1_base_is_refused(tmp_path, sdxl_folder, tiny_folder):
    xl = load_base(str(sdxl_folder)).pipe
    lora = make_lora(xl, tmp_path / "xl.safetensors", with_te=True)
    res = invoke("generate", "x", "--lora", lora, "--out", tmp_path / "out", "--steps", 1)
    assert res.exit_code == 2
    assert "xl.safetensors" in res.stderr and "another base" in res.stderr
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_missing_and_wrong_base_folders(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_base(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no model_index.json"):
        load_base(str(tmp_path / "empty"))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "model_index.json").write_text('{"_class_name": "FluxPipeline"}')
    with pytest.raises(UserError, match="not a Stable Diffusion pipeline"):
        load_base(str(tmp_path / "other"))


def test_uncached_hub_id_says_how_to_get_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(UserError, match="huggingface-cli download stabilityai/sdxl-turbo"):
        load_base("stabilityai/sdxl-turbo")


def test_cached_hub_id_loads(monkeypatch, tmp_path, tiny_folder):
    """A hub id resolves when its snapshot is already in the local cache (laid out as the hub does)."""
    import shutil

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--someone--tiny-sd"
    snap = repo / "snapshots" / ("a" * 40)
    shutil.copytree(tiny_folder, snap)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("a" * 40)
    base = load_base("someone/tiny-sd")
    assert base.name == "someone/tiny-sd" and base.family == "sd1"


def test_sdxl_loras_load_on_sdxl_in_both_forms(tmp_path, sdxl_folder):
    from fakestudio.lora import LoraSpec, apply_loras

    pipe = load_base(str(sdxl_folder)).pipe
    for form in ("peft", "kohya"):
        lora = make_lora(pipe, tmp_path / f"xl-{form}.safetensors", form=form)
        refs = apply_loras(pipe, [LoraSpec(lora, 0.8)])
        loaded = pipe.get_list_adapters()
        pipe.unload_lora_weights()
        assert refs[0].weight == 0.8
        assert {"unet", "text_encoder", "text_encoder_2"} <= set(loaded), loaded


def test_shape_mismatch_lora_is_refused(tmp_path, sdxl_folder, tiny_folder):
    """A LoRA whose tensors do not fit (here: SD1 tiny LoRA on the narrower tiny-SDXL encoders)."""
    from fakestudio.lora import LoraSpec, apply_loras

    sd1 = load_base("tiny").pipe
    lora = make_lora(sd1, tmp_path / "sd1.safetensors", with_te=True)
    xl = load_base(str(sdxl_folder)).pipe
    with pytest.raises(UserError, match="sd1.safetensors: LoRA was made for another base"):
        apply_loras(xl, [LoraSpec(lora, 1.0)])
