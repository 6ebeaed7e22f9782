"""`--base model.safetensors`: Automatic1111-style single files load offline, exactly, or fail clearly.

The single files are made here from tiny diffusers pipelines by `tests/ldm_convert.py` (the
original LDM key layout), so a round trip must give back every tensor and every pixel.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import shutil
import socket
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from fakestudio import single_file  # noqa: E402
from fakestudio.single_file import BaseModelError, load_single_file  # noqa: E402

try:  # tests/ as a package (rootdir on sys.path) or as a plain folder (pytest's default)
    from tests import builders, ldm_convert
except ModuleNotFoundError:
    import builders
    import ldm_convert

pipeline_to_ldm = ldm_convert.pipeline_to_ldm
save_as_single_file = ldm_convert.save_as_single_file
unet_to_ldm = ldm_convert.unet_to_ldm
vae_to_ldm = ldm_convert.vae_to_ldm

COMPONENTS = ("unet", "vae", "text_encoder")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to reach the hub fails loudly instead of hanging or passing by luck."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def sd1_pipe(tiny_folder):
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline.from_pretrained(
        tiny_folder, local_files_only=True, safety_checker=None, requires_safety_checker=False
    )


@pytest.fixture(scope="module")
def sd1_file(sd1_pipe, tmp_path_factory):
    return save_as_single_file(sd1_pipe, tmp_path_factory.mktemp("sf") / "tiny-sd1.safetensors")


@pytest.fixture(scope="module")
def configs_only(tiny_folder, tmp_path_factory):
    """The tiny folder's configs without weights or tokenizer: weights can only come from the file."""
    folder = tmp_path_factory.mktemp("cfg") / "tiny-configs"
    shutil.copytree(
        tiny_folder, folder, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "tokenizer*")
    )
    return folder


def assert_same_weights(a, b, components=COMPONENTS):
    for name in components:
        sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        assert sa.keys() == sb.keys(), name
        unequal = [k for k in sa if not torch.equal(sa[k], sb[k])]
        assert not unequal, f"{name}: {unequal[:5]}"


def generate(pipe, **kwargs):
    gen = torch.Generator("cpu").manual_seed(1234)
    return pipe(
        "a lighthouse at dusk",
        num_inference_steps=2,
        height=256,
        width=256,
        generator=gen,
        output_type="np",
        **kwargs,
    ).images


# -- round trips ----------------------------------------------------------------------------------


def test_sd1_round_trip_is_exact(sd1_pipe, sd1_file, tiny_folder):
    loaded = load_single_file(sd1_file, config=tiny_folder)
    assert type(loaded).__name__ == "StableDiffusionPipeline"
    assert_same_weights(sd1_pipe, loaded)
    assert type(loaded.scheduler) is type(sd1_pipe.scheduler)
    assert loaded.tokenizer.get_vocab() == sd1_pipe.tokenizer.get_vocab()
    assert (generate(loaded) == generate(sd1_pipe)).all()


def test_weights_come_from_the_file(sd1_pipe, sd1_file, configs_only, tiny_folder):
    # a config folder without weights, and the tokenizer given explicitly
    loaded = load_single_file(sd1_file, config=configs_only, tokenizer=tiny_folder / "tokenizer")
    assert_same_weights(sd1_pipe, loaded)
    # a diffusers folder is accepted as --tokenizer too
    loaded = load_single_file(sd1_file, config=configs_only, tokenizer=tiny_folder)
    assert loaded.tokenizer.get_vocab() == sd1_pipe.tokenizer.get_vocab()


def test_sdxl_round_trip_is_exact(tmp_path):
    from diffusers import StableDiffusionXLPipeline

    folder = builders.build_tiny_sdxl(tmp_path / "tiny-sdxl")
    pipe = StableDiffusionXLPipeline.from_pretrained(
        folder, local_files_only=True, add_watermarker=False
    )
    path = save_as_single_file(pipe, tmp_path / "tiny-sdxl.safetensors")
    for weights in folder.glob("*/*.safetensors"):
        weights.unlink()  # configs only: the weights must come from the file
    loaded = load_single_file(path, config=folder)
    assert type(loaded).__name__ == "StableDiffusionXLPipeline"
    assert_same_weights(pipe, loaded, COMPONENTS + ("text_encoder_2",))
    assert (generate(loaded) == generate(pipe)).all()


# -- what goes into the file ----------------------------------------------------------------------


def test_ldm_layout_of_full_size_configs():
    """The bundled configs build the public models, and our LDM names are what diffusers reads.

    Built on the meta device: parameter counts of SD1.5 / SDXL-base-1.0 and the LDM names of real
    checkpoints, without a byte of real weights.
    """
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import (
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
    )

    expected = {"sd15": (859_520_964, 686), "sdxl": (2_567_463_684, 1680)}
    for arch, (unet_params, unet_tensors) in expected.items():
        with init_empty_weights():
            unet = UNet2DConditionModel.from_config(
                UNet2DConditionModel.load_config(single_file.CONFIGS_DIR / arch / "unet")
            )
            vae = AutoencoderKL.from_config(
                AutoencoderKL.load_config(single_file.CONFIGS_DIR / arch / "vae")
            )
        assert sum(p.numel() for p in unet.parameters()) == unet_params
        assert sum(p.numel() for p in vae.parameters()) == 83_653_863
        ldm_unet = {"model.diffusion_model." + k: v for k, v in unet_to_ldm(unet).items()}
        ldm_vae = {"first_stage_model." + k: v for k, v in vae_to_ldm(vae).items()}
        assert len(ldm_unet) == unet_tensors and len(ldm_vae) == 248
        assert ldm_vae["first_stage_model.decoder.mid.attn_1.q.weight"].shape == (512, 512, 1, 1)
        back = convert_ldm_unet_checkpoint(ldm_unet, dict(unet.config))
        assert {k: v.shape for k, v in back.items()} == {
            k: v.shape for k, v in unet.state_dict().items()
        }
        back = convert_ldm_vae_checkpoint(ldm_vae, dict(vae.config))
        assert {k: v.shape for k, v in back.items()} == {
            k: v.shape for k, v in vae.state_dict().items()
        }
    # upsamplers sit after the attention when there is one (SD1.5: UpBlock2D first)
    for name in ("output_blocks.2.1.conv", "output_blocks.5.2.conv", "input_blocks.9.0.op"):
        with init_empty_weights():
            unet = UNet2DConditionModel.from_config(
                UNet2DConditionModel.load_config(single_file.CONFIGS_DIR / "sd15" / "unet")
            )
        assert f"{name}.weight" in unet_to_ldm(unet)


def test_bundled_text_encoder_configs():
    from accelerate import init_empty_weights
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cases = [
        ("sd15/text_encoder", CLIPTextModel, 123_060_480),
        ("sdxl/text_encoder", CLIPTextModel, 123_060_480),
        ("sdxl/text_encoder_2", CLIPTextModelWithProjection, 694_659_840),
    ]
    for sub, cls, params in cases:
        config = CLIPTextConfig.from_pretrained(
            single_file.CONFIGS_DIR / sub, local_files_only=True
        )
        with init_empty_weights():
            model = cls(config)
        assert sum(p.numel() for p in model.parameters()) == params, sub
        assert next(model.parameters()).dtype == torch.float32, sub


# -- bad files ------------------------------------------------------------------------------------


def expect_error(path, match=None, **kwargs) -> str:
    with pytest.raises(BaseModelError) as info:
        load_single_file(path, **kwargs)
    message = str(info.value)
    assert Path(path).name in message
    assert "\n" not in message
    if match:
        assert match in message, message
    return message


def test_random_bytes(tmp_path):
    path = tmp_path / "random.safetensors"
    path.write_bytes(os.urandom(4096))
    expect_error(path, "not a valid safetensors file")


def test_truncated(tmp_path, sd1_file):
    path = tmp_path / "truncated.safetensors"
    data = sd1_file.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    expect_error(path, "not a valid safetensors file")


def test_empty_and_missing(tmp_path):
    (tmp_path / "empty.safetensors").write_bytes(b"")
    expect_error(tmp_path / "empty.safetensors", "not a valid safetensors file")
    expect_error(tmp_path / "absent.safetensors", "no such file")


class _Trap:
    """Unpickling this creates a file: proof that a pickle was loaded."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickles_are_refused_unopened(tmp_path):
    marker = tmp_path / "unpickled"
    payload = pickle.dumps({"state_dict": _Trap(marker)}, protocol=2)
    for name in ("model.ckpt", "model.pt", "sneaky.safetensors"):
        (tmp_path / name).write_bytes(payload)
        expect_error(tmp_path / name, "convert it to .safetensors")
    torch.save({"state_dict": {"w": torch.zeros(1)}}, tmp_path / "zipped.safetensors")
    expect_error(tmp_path / "zipped.safetensors", "convert it to .safetensors")
    assert not marker.exists()


def test_header_length_that_looks_like_a_pickle_opcode(tmp_path, sd1_file):
    # a header of 0x280 bytes starts the file with 80 02, pickle's PROTO 2 opcode
    path = tmp_path / "proto.safetensors"
    for n in range(1000):
        save_file({"w": torch.zeros(1)}, str(path), {"pad": "x" * n})
        if path.read_bytes()[:2] == b"\x80\x02":
            break
    else:
        pytest.fail("no header length 0x280 reached")
    expect_error(path, "not a Stable Diffusion checkpoint")


def test_unrelated_keys(tmp_path):
    path = tmp_path / "unrelated.safetensors"
    save_file({"encoder.weight": torch.zeros(2, 2), "head.bias": torch.zeros(2)}, str(path))
    expect_error(path, "not a Stable Diffusion checkpoint")
    lora = tmp_path / "lora.safetensors"
    save_file({"lora_unet_down_blocks_0.lora_down.weight": torch.zeros(2, 2)}, str(lora))
    expect_error(lora, "LoRA")


def test_sd2_is_named(tmp_path):
    path = tmp_path / "v2.safetensors"
    tensors = {
        "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(1),
        "cond_stage_model.model.token_embedding.weight": torch.zeros(1),
    }
    save_file(tensors, str(path))
    expect_error(path, "2.x")


def test_wrong_config_is_explained(sd1_file, tiny_folder):
    # the bundled SD1.5 configs do not fit the tiny weights
    message = expect_error(sd1_file, "--config", tokenizer=tiny_folder / "tokenizer")
    assert "bundled sd15 config" in message and "expects" in message


def test_sd1_file_with_sdxl_config(sd1_file, tiny_folder):
    expect_error(sd1_file, "is for SDXL", config=single_file.BUNDLED["sdxl"], tokenizer=tiny_folder)


def test_missing_and_extra_weights(tmp_path, sd1_pipe, tiny_folder):
    tensors = pipeline_to_ldm(sd1_pipe)
    short = dict(tensors)
    del short["model.diffusion_model.out.2.bias"]
    save_file(short, str(tmp_path / "short.safetensors"))
    expect_error(tmp_path / "short.safetensors", "lacks weights", config=tiny_folder)
    extra = dict(tensors)
    extra["model.diffusion_model.input_blocks.99.0.in_layers.0.weight"] = torch.zeros(1)
    save_file(extra, str(tmp_path / "extra.safetensors"))
    expect_error(tmp_path / "extra.safetensors", "UNet tensors", config=tiny_folder)


# -- tokenizers -----------------------------------------------------------------------------------


def test_no_tokenizer_anywhere(sd1_file, configs_only, monkeypatch):
    monkeypatch.setattr(single_file, "installed_clip_bpe", lambda: None)
    expect_error(sd1_file, "--tokenizer", config=configs_only)


def test_bad_tokenizer_folder(sd1_file, configs_only, tmp_path):
    expect_error(sd1_file, "--tokenizer", config=configs_only, tokenizer=tmp_path)


def write_bpe(path: Path, merges: list[str]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(["#version: 0.2", *merges]) + "\n")
    return path


def test_installed_clip_vocabulary_is_used(sd1_file, configs_only, tmp_path, monkeypatch):
    # no merges: 2 * 256 byte symbols + 2 specials = the tiny text encoder's 514 embeddings
    bpe = write_bpe(tmp_path / single_file.CLIP_BPE_FILE, [])
    monkeypatch.setattr(single_file, "installed_clip_bpe", lambda: bpe)
    loaded = load_single_file(sd1_file, config=configs_only)
    vocab = loaded.tokenizer.get_vocab()
    assert len(vocab) == 514 and vocab["!"] == 0 and vocab["<|endoftext|>"] == 513


def test_clip_tokenizer_from_bpe(tmp_path):
    tok = single_file.clip_tokenizer_from_bpe(
        write_bpe(tmp_path / "bpe.txt.gz", ["c a", "ca t</w>", "d o", "do g</w>"])
    )
    vocab = tok.get_vocab()
    assert vocab["!"] == 0 and vocab["ca"] == 512 and vocab["dog</w>"] == 515
    assert tok("Cat DOG").input_ids == [516, 513, 515, 517]
    real = single_file.installed_clip_bpe()
    if real is not None:  # the real vocabulary, where open-clip-torch / clip-anytorch is installed
        tok = single_file.clip_tokenizer_from_bpe(real)
        assert len(tok) == 49408
        assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]


def test_installed_clip_bpe_is_found_without_import(tmp_path, monkeypatch):
    package = tmp_path / "site" / "open_clip"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    write_bpe(package / single_file.CLIP_BPE_FILE, [])
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "open_clip", raising=False)
    assert single_file.installed_clip_bpe() == package / single_file.CLIP_BPE_FILE
    assert "open_clip" not in sys.modules


def test_sdxl_second_tokenizer_pads_with_bang(tmp_path):
    bpe = write_bpe(tmp_path / "bpe.txt.gz", [])
    main = single_file.clip_tokenizer_from_bpe(bpe)
    pair = single_file._tokenizer_pair(single_file.SDXL, main, None, tmp_path / "x.safetensors")
    assert pair["tokenizer"].pad_token == "<|endoftext|>"
    assert pair["tokenizer_2"].pad_token == "!" and pair["tokenizer_2"].pad_token_id == 0


def test_bundled_configs_are_complete():
    for arch, folder in single_file.BUNDLED.items():
        index = json.loads((folder / "model_index.json").read_text())
        single_file._check_config(folder, "bundled", arch, Path("x.safetensors"))
        assert ("text_encoder_2" in index) == (arch == single_file.SDXL)
