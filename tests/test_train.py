"""LoRA training on the tiny base: outputs, header, exact resume, Ctrl-C, previews, guards,
kohya-made LoRAs, bad input, and two processes under `accelerate launch`."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from fakestudio.cli import cli
from fakestudio.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
TOKEN, CLASS_WORD = "ben0a", "man"
CONSENT = "I, Ben, agree that this LoRA of my face is trained, for this test."


# -- helpers --------------------------------------------------------------------------------


def make_dataset(folder: Path, sizes=((256, 256),) * 4, resolution=256, caption=None) -> Path:
    """A dataset folder in `prepare`'s format (dataset.json + images/NNNN.png), synthetic."""
    from fakestudio.dataset import DatasetImage, compute_fingerprint

    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images = []
    for i, (w, h) in enumerate(sizes):
        yy, xx = np.mgrid[0:h, 0:w]
        a = np.stack([(xx * (i + 1)) % 256, (yy * 2 + i * 40) % 256, ((xx + yy) // 2) % 256], -1)
        a = np.clip(a + rng.normal(0, 8, a.shape), 0, 255).astype(np.uint8)
        rel = f"images/{i + 1:04d}.png"
        Image.fromarray(a).save(folder / rel)
        images.append(
            dict(
                file=rel,
                caption=caption
                or f"photo of {TOKEN} {CLASS_WORD}, {['smiling', 'outdoors'][i % 2]}",
                width=w,
                height=h,
                bucket=[w, h],
                sha256=hashlib.sha256((folder / rel).read_bytes()).hexdigest(),
                source_sha256=hashlib.sha256(b"photo %d" % i).hexdigest(),
                face=False,
            )
        )
    fp = compute_fingerprint(
        [DatasetImage(**{**im, "bucket": tuple(im["bucket"])}) for im in images]
    )
    doc = {
        "format": "fakestudio.dataset/1",
        "token": TOKEN,
        "class_word": CLASS_WORD,
        "resolution": resolution,
        "person": True,
        "consent": {"statement": CONSENT, "recorded": "2026-01-01T00:00:00+00:00"},
        "created_by": "tests",
        "images": images,
        "skipped": [],
        "duplicates": [],
        "warnings": [],
        "fingerprint": fp,
    }
    (folder / "dataset.json").write_text(json.dumps(doc, indent=1))
    return folder


def run(*args, code=0):
    res = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert res.exit_code == code, res.output
    return res


def user_error(res, *needles):
    assert res.exit_code == 2, res.output
    line = res.stderr.strip().splitlines()[-1]
    assert "Traceback" not in res.stderr, res.stderr
    for n in needles:
        assert n in line, line


def tensors(path: Path) -> dict:
    return load_file(str(path))


def header(path: Path) -> dict:
    with safe_open(str(path), "pt") as f:
        return json.loads(f.metadata()["fakestudio"])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, tiny_folder):
    return make_dataset(tmp_path_factory.mktemp("ds") / "dataset")


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    """One short real run, both forms, shared by the output tests."""
    out = tmp_path_factory.mktemp("lora") / "ben0a.safetensors"
    res = run(
        "train",
        dataset,
        "--out",
        out,
        *"--steps 4 --lr 1e-2 --rank 4 --alpha 2".split(),
        *"--format both --json".split(),
    )
    return json.loads(res.stdout)


# -- 2 + 5: training, output forms, header, loading -------------------------------------------


def test_train_writes_both_forms_with_our_header(trained):
    kohya, peft = map(Path, trained["outputs"])
    # OUT is the kohya file, so A1111's prompt tag is <lora:ben0a:1>, as the docs show
    assert kohya.name == "ben0a.safetensors" and peft.name == "ben0a.peft.safetensors"
    assert trained["steps"] == 4 and trained["loss"] > 0
    for path in (peft, kohya):
        h = header(path)
        assert h["trigger"] == TOKEN and h["class_word"] == CLASS_WORD
        assert h["base_model"] == "tiny" and len(h["base_sha256"]) == 64
        assert len(h["dataset_fingerprint"]) == 64 and h["consent"] == CONSENT
        assert (h["rank"], h["alpha"], h["steps"]) == (4, 2.0, 4)
        assert h["software"].startswith("fakestudio ")
    pk, kk = tensors(peft), tensors(kohya)
    assert all(k.startswith("unet.") and ".processor.to_" in k for k in pk)
    assert all(k.startswith("lora_unet_") for k in kk)
    assert {v.item() for k, v in kk.items() if k.endswith(".alpha")} == {2.0}
    ups = [v for k, v in pk.items() if "_lora.up" in k]
    assert all(v.shape[1] == 4 for v in ups) and any(v.abs().max() > 0 for v in ups)
    targets = {k.split("_lora.")[0].rsplit(".", 1)[-1] for k in pk}
    assert targets == {"to_q", "to_k", "to_v", "to_out"}
    assert sum(v.numel() for v in pk.values()) == sum(
        v.numel() for k, v in kk.items() if not k.endswith(".alpha")
    )
    # the same delta: the peft form folds alpha / rank = 0.5 into its up weights
    tail = ".processor.to_q_lora.up.weight"
    peft_up = next(k for k in pk if k.endswith("attn1" + tail))
    up = (
        "lora_unet_" + peft_up[len("unet.") : -len(tail)].replace(".", "_") + "_to_q.lora_up.weight"
    )
    assert torch.allclose(pk[peft_up], kk[up] * 0.5)


@pytest.mark.filterwarnings("ignore:Already found a `peft_config`")  # two adapters, on purpose
def test_both_forms_load_in_plain_diffusers(trained, tiny_folder):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_folder, safety_checker=None)
    kohya, peft = map(Path, trained["outputs"])
    for name, path in (("a", peft), ("b", kohya)):
        pipe.load_lora_weights(str(path), adapter_name=name)
    assert set(pipe.get_list_adapters()["unet"]) == {"a", "b"}
    layers = [m for m in pipe.unet.modules() if hasattr(m, "lora_B") and "a" in m.lora_B]
    assert len(layers) == 32
    for m in layers:
        assert m.scaling["b"] == pytest.approx(0.5)  # alpha 2 / rank 4 in the kohya form
        assert torch.equal(m.lora_A["a"].weight, m.lora_A["b"].weight)
        delta_a = m.lora_B["a"].weight * m.scaling["a"]
        assert torch.allclose(delta_a, m.lora_B["b"].weight * m.scaling["b"])


def test_both_forms_load_in_fakestudio_generate(trained, tmp_path):
    from detectors.c2pa import read_c2pa
    from fakestudio.lora_info import tensor_data_sha256

    for path in trained["outputs"]:
        args = ["--lora", path, *"--steps 1 --seed 3 --json --out".split(), tmp_path]
        res = run("generate", "photo of ben0a man", *args)
        image = json.loads(res.stdout)[0]["path"]
        loras = read_c2pa(image).generation["loras"]
        assert loras[0]["trigger"] == TOKEN
        assert loras[0]["sha256"] == hashlib.sha256(Path(path).read_bytes()).hexdigest()
        # A1111's hash (of the tensor data) in the parameters text, as A1111 writes it
        params = Image.open(image).text["parameters"]
        short = tensor_data_sha256(Path(path))[:12]
        assert f'Lora hashes: "{Path(path).stem}: {short}"' in params


def test_layers_all_trains_the_resnet_convolutions_too(dataset, tmp_path, tiny_folder):
    """`--layers all` (LoCon): both forms hold the ResNet convs, the transformers' in/out and
    feed-forward layers beside the attention; diffusers loads every module of both."""
    from diffusers import StableDiffusionPipeline

    out = tmp_path / "all.safetensors"
    res = run(
        "train", dataset, "--out", out, *"--steps 2 --layers all --format both --json".split()
    )
    kohya, peft = map(Path, json.loads(res.stdout)["outputs"])
    kk, pk = tensors(kohya), tensors(peft)
    for leaf in ("conv1", "conv2", "proj_in", "ff_net_2", "to_q"):
        assert any(k.endswith(f"_{leaf}.lora_down.weight") for k in kk), leaf
    assert any(".resnets.0.conv1.lora_A.weight" in k for k in pk)
    assert header(kohya)["layers"] == "all"
    with safe_open(str(kohya), "pt") as f:
        assert "conv_dim" in f.metadata()["ss_network_args"]
    pipe = StableDiffusionPipeline.from_pretrained(tiny_folder, safety_checker=None)
    modules = sum(k.startswith("lora_unet_") and k.endswith(".lora_down.weight") for k in kk)
    for name, path in (("k", kohya), ("p", peft)):
        pipe.load_lora_weights(str(path), adapter_name=name)
        loaded = [m for m in pipe.unet.modules() if hasattr(m, "lora_A") and name in m.lora_A]
        assert len(loaded) == modules > 32
    # a resumed run must keep the layers
    user_error(
        run("train", dataset, "--out", out, "--steps", 4, "--resume", code=2), "layers='all'"
    )


def test_lora_info_prints_our_header(trained):
    kohya, peft = trained["outputs"]
    res = run("lora-info", kohya)
    for needle in (TOKEN, CLASS_WORD, CONSENT, "4 / 2.0", "kohya", "tiny", "4 steps"):
        assert needle in res.stdout, res.stdout
    assert "<lora:ben0a:1>" in res.stdout
    info = json.loads(run("lora-info", peft, "--json").stdout)
    assert info["form"] == "peft" and info["rank"] == 4 and info["alpha"] == 4.0
    assert info["scale"] == 1.0  # alpha / rank folded into the weights
    assert info["fakestudio"]["dataset_fingerprint"] == header(Path(peft))["dataset_fingerprint"]
    assert info["parts"] == {"unet": 32}
    assert info["a1111"]["tag"] == "<lora:ben0a.peft:1>" and not info["a1111"]["loads"]


# -- 3: exact resume and Ctrl-C ------------------------------------------------------------------


def test_resume_after_ctrl_c_is_exact(tmp_path, monkeypatch, tiny_folder):
    """20 steps straight == 10 steps, Ctrl-C, --resume for the other 10: identical weights."""
    from fakestudio.commands import train as cmd

    ds = make_dataset(tmp_path / "ds", sizes=[(256, 256)] * 3 + [(192, 320)] * 2)
    common = (
        "--steps 20 --batch-size 2 --lr 1e-3 --lr-scheduler cosine --warmup-steps 3 "
        "--noise-offset 0.05 --min-snr-gamma 5 --caption-dropout 0.3 --seed 7"
    ).split()
    straight = tmp_path / "a" / "x.safetensors"
    run("train", ds, "--out", straight, *common)

    resumed = tmp_path / "b" / "x.safetensors"
    original = cmd._lines

    def ctrl_c_at_10(info):
        original(info)
        if info.step == 10:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(cmd, "_lines", ctrl_c_at_10)
    res = run("train", ds, "--out", resumed, *common, code=130)
    line = res.stderr.strip().splitlines()[-1]
    assert "interrupted at step 10" in line and "step-000010" in line and "--resume" in line
    assert not resumed.exists()
    monkeypatch.setattr(cmd, "_lines", original)
    user_error(run("train", ds, "--out", resumed, *common, code=2), "--resume")
    run("train", ds, "--out", resumed, *common, "--resume")

    a, b = tensors(straight), tensors(resumed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert header(resumed)["steps"] == 20
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_resume_refuses_other_settings(tmp_path, dataset):
    out = tmp_path / "x.safetensors"
    run("train", dataset, "--out", out, "--steps", 2, "--rank", 2)
    user_error(
        run("train", dataset, "--out", out, "--steps", 4, "--rank", 4, "--resume", code=2),
        "rank=2",
        "4",
    )


# -- 4: previews through the labeller ---------------------------------------------------------


def test_previews_are_labelled(tmp_path, dataset):
    from detectors.c2pa import TRAINED_ALGORITHMIC_MEDIA, read_c2pa
    from detectors.watermarks import durable

    out = tmp_path / "x.safetensors"
    flags = "--steps 2 --sample-every 2 --lr 1e-2 --gradient-checkpointing --json".split()
    prompt = ["--sample-prompt", "photo of ben0a man on a beach"]
    res = run("train", dataset, "--out", out, *flags, *prompt)
    (png,) = json.loads(res.stdout)["samples"]
    png = Path(png)
    assert png.parent == tmp_path / "x-training" / "samples" and png.suffix == ".png"
    mark = durable.decode(np.asarray(Image.open(png).convert("RGB")))
    assert mark.found and png.stem.endswith(mark.payload)
    c2pa = read_c2pa(png)
    assert c2pa.valid and c2pa.digital_source_type == TRAINED_ALGORITHMIC_MEDIA
    (lora,) = c2pa.generation["loras"]
    snapshot = png.parent / "step-000002.safetensors"
    assert lora["sha256"] == hashlib.sha256(snapshot.read_bytes()).hexdigest()
    assert lora["trigger"] == TOKEN
    ups = [v for k, v in tensors(snapshot).items() if k.endswith("lora_up.weight")]
    assert all(v.abs().max() > 0 for v in ups)  # gradients flow through checkpointed blocks


# -- 2: guards --------------------------------------------------------------------------------


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, dataset, monkeypatch):
    real = torch.nn.functional.mse_loss
    calls = {"n": 0}

    def poisoned(*a, **k):
        calls["n"] += 1
        out = real(*a, **k)
        return out * float("nan") if calls["n"] > 3 else out

    monkeypatch.setattr(torch.nn.functional, "mse_loss", poisoned)
    out = tmp_path / "x.safetensors"
    res = run("train", dataset, "--out", out, "--steps", 10, "--checkpoint-every", 2, code=2)
    user_error(res, "loss became nan at step 4", "step-000002", "--lr")
    assert not out.exists()
    ckpts = sorted(p.name for p in (tmp_path / "x-training" / "checkpoints").iterdir())
    assert ckpts == ["step-000002"]


def test_out_of_memory_says_what_to_try(tmp_path, dataset, monkeypatch):
    def oom(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(torch.nn.functional, "mse_loss", oom)
    res = run("train", dataset, "--out", tmp_path / "x.safetensors", "--steps", 2, code=2)
    user_error(res, "out of GPU memory at batch 1 x 256x256", "--gradient-checkpointing")


def test_loss_guard_catches_explosions_not_noise():
    from fakestudio.train.loop import LossGuard

    g = LossGuard(factor=10, patience=3)
    assert all(g.check(v) is None for v in [0.1, 0.3, 0.05, 0.2] * 5)
    assert g.check(50.0) is None and g.check(0.1) is None  # one spike is noise
    assert g.check(40.0) is None and g.check(40.0) is None
    assert "exploded" in g.check(40.0)
    assert "inf" in LossGuard(10, 3).check(float("inf"))


# -- kohya's own layout -------------------------------------------------------------------------


def kohya_made_lora(pipe, path: Path, rank=4, alpha=1.0) -> Path:
    """A LoRA laid out as kohya's sd-scripts write it for SD1: every Linear / 1x1 conv inside
    the UNet's Transformer2DModels and the text encoder's attention + MLP, fp16, with alpha
    tensors and ss_* metadata."""
    g = torch.Generator().manual_seed(3)
    out = {}

    def add(prefix, name, module):
        w = module.weight
        conv = w.ndim == 4
        down = torch.randn((rank, w.shape[1], *([1, 1] if conv else [])), generator=g) * 0.2
        up = torch.randn((w.shape[0], rank, *([1, 1] if conv else [])), generator=g) * 0.2
        key = f"{prefix}_{name.replace('.', '_')}"
        out[f"{key}.lora_down.weight"] = down.half()
        out[f"{key}.lora_up.weight"] = up.half()
        out[f"{key}.alpha"] = torch.tensor(alpha).half()

    for name, m in pipe.unet.named_modules():
        if ".attentions." in name and isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
            if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1):
                continue
            add("lora_unet", name, m)
    for name, m in pipe.text_encoder.named_modules():
        if isinstance(m, torch.nn.Linear) and (".self_attn." in name or ".mlp." in name):
            name = name if name.startswith("text_model.") else "text_model." + name
            add("lora_te", name, m)
    meta = {
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(rank),
        "ss_network_alpha": str(alpha),
        "ss_output_name": "ben0a_kohya",
        "ss_sd_model_name": "v1-5-pruned-emaonly.safetensors",
        "ss_base_model_version": "sd_v1",
        "ss_learning_rate": "0.0001",
        "ss_max_train_steps": "2400",
        "ss_num_train_images": "24",
        "ss_resolution": "(512, 512)",
        "ss_mixed_precision": "fp16",
        "ss_tag_frequency": json.dumps({"100_ben0a man": {"ben0a": 24, "man": 24, "smiling": 5}}),
        "sshs_model_hash": "0" * 64,
        "modelspec.architecture": "stable-diffusion-v1/lora",
    }
    save_file(out, str(path), metadata=meta)
    return path


def test_kohya_made_lora_loads_and_is_described(tiny_pipe, tmp_path):
    lora = kohya_made_lora(tiny_pipe, tmp_path / "ben0a_kohya.safetensors")
    info = json.loads(run("lora-info", lora, "--json").stdout)
    assert info["form"] == "kohya" and info["rank"] == 4 and info["alpha"] == 1.0
    assert info["fakestudio"] is None and info["parts"]["text_encoder"] == 12
    assert info["kohya"]["ss_output_name"] == "ben0a_kohya"
    assert info["kohya"]["ss_tag_frequency (top 10)"][0] == ["ben0a", 24]
    text = run("lora-info", lora).stdout
    assert "ss_sd_model_name" in text and "lora_unet_" in text and "4 / 1.0" in text

    imgs = []
    for extra in ([], ["--lora", lora]):
        res = run(
            "generate",
            "photo of ben0a man",
            "--steps",
            2,
            "--seed",
            5,
            "--out",
            tmp_path / "out",
            "--json",
            *extra,
        )
        imgs.append(np.asarray(Image.open(json.loads(res.stdout)[0]["path"]), dtype=np.int16))
    assert np.abs(imgs[0] - imgs[1]).mean() > 1  # the kohya LoRA took effect

    bare = tmp_path / "bare.safetensors"
    save_file(load_file(str(lora)), str(bare))  # no metadata at all
    text = run("lora-info", bare).stdout
    assert "none (no fakestudio header" in text and "4 / 1.0" in text


# -- bad input ------------------------------------------------------------------------------------


def test_bad_datasets(tmp_path, tiny_folder):
    out = tmp_path / "o" / "x.safetensors"
    user_error(run("train", tmp_path / "nope", "--out", out, code=2), "nope", "no such dataset")
    empty = make_dataset(tmp_path / "empty", sizes=[])
    user_error(run("train", empty, "--out", out, code=2), "no images")
    no_token = make_dataset(tmp_path / "notoken", caption="photo of a man")
    user_error(run("train", no_token, "--out", out, code=2), "does not contain the token", TOKEN)
    big = make_dataset(tmp_path / "big", sizes=[(512, 512)], resolution=512)
    user_error(run("train", big, "--out", out, "--resolution", 256, code=2), "512", "256")
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_bad_options_and_bases(tmp_path, dataset):
    out = tmp_path / "x.safetensors"
    user_error(run("train", dataset, "--out", tmp_path / "x.ckpt", code=2), ".safetensors")
    user_error(
        run("train", dataset, "--out", out, "--mixed-precision", "fp16", "--device", "cpu", code=2),
        "fp16",
        "CUDA",
    )
    user_error(run("train", dataset, "--out", out, "--resume", code=2), "no checkpoint")
    flux = tmp_path / "flux"
    flux.mkdir()
    (flux / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"}))
    user_error(
        run("train", dataset, "--out", out, "--base", flux, code=2),
        "FluxPipeline",
        "not a Stable Diffusion",
    )
    user_error(run("train", dataset, "--out", out, "--base", tmp_path, code=2), "model_index")
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file")
    user_error(run("train", dataset, "--out", blocker / "x.safetensors", code=2), "not writable")
    toml = tmp_path / "train.toml"
    toml.write_text("rank = 4\nlearning_rate = 1e-4\n")
    user_error(run("train", dataset, "--out", out, "--config", toml, code=2), "learning_rate")
    assert not out.exists() and not (tmp_path / "x-training").exists()


def test_full_disk_leaves_nothing_half_written(tmp_path, dataset, monkeypatch):
    import detectors.files

    class FullDisk:
        def __getattr__(self, name):
            return getattr(os, name)

        @staticmethod
        def fsync(fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(detectors.files, "os", FullDisk())
    out = tmp_path / "x.safetensors"
    res = run("train", dataset, "--out", out, "--steps", 2, "--format", "both", code=2)
    user_error(res, "x.safetensors", "No space left on device", "--resume")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x-training"]  # no LoRA, no .part
    monkeypatch.undo()
    run("train", dataset, "--out", out, "--steps", 2, "--format", "both", "--resume")
    assert out.exists() and (tmp_path / "x.peft.safetensors").exists()


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    import fakestudio.train.checkpoint as ck

    gen = torch.Generator().manual_seed(0)
    kw = dict(
        lora={"unet.a.lora_A.weight": torch.ones(2, 2)},
        optimizer={
            "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.ones(2)}},
            "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "params": [0]}],
        },
        scheduler={"last_epoch": 3},
        rng=[ck.capture_rng(gen)],
        state={"total": 9},
    )
    first = ck.save_checkpoint(tmp_path, 3, **kw)
    back = ck.load_checkpoint(first)
    assert back.step == 3 and torch.equal(back.optimizer["state"][0]["exp_avg"], torch.ones(2))
    assert back.optimizer["param_groups"][0]["betas"] == (0.9, 0.999)
    assert torch.equal(back.rng[0]["generator"], gen.get_state())

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ck.os, "fsync", full)
    with pytest.raises(OSError):
        ck.save_checkpoint(tmp_path, 6, **kw)
    monkeypatch.undo()
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-000003"]
    assert ck.latest_checkpoint(tmp_path) == first


# -- config and data order ------------------------------------------------------------------------


def test_toml_config_and_precedence(tmp_path):
    from fakestudio.train.config import make_config

    toml = tmp_path / "train.toml"
    toml.write_text(
        '[train]\nrank = 16\nlr = 5e-5\nmin-snr-gamma = 5\nclass_images = "cls"\nsteps = 300\n'
    )
    cfg = make_config("ds", "x.safetensors", toml, rank=32, lr=None)
    assert (cfg.rank, cfg.lr, cfg.min_snr_gamma, cfg.max_steps) == (32, 5e-5, 5.0, 300)
    assert cfg.class_images == Path("cls") and cfg.batch_size == 1
    toml.write_text('rank = "big"\n')
    with pytest.raises(UserError, match="rank must be int"):
        make_config("ds", "x.safetensors", toml)


def test_epoch_order_is_bucketed_deterministic_and_sharded():
    from fakestudio.train.data import epoch_batches, steps_per_epoch

    buckets = [(256, 256)] * 5 + [(192, 320)] * 3
    a = epoch_batches(buckets, 2, seed=1, epoch=0, processes=2)
    assert a == epoch_batches(buckets, 2, seed=1, epoch=0, processes=2)
    assert a != epoch_batches(buckets, 2, seed=1, epoch=1, processes=2)
    assert all(len({buckets[i] for i in b}) == 1 for b in a)
    assert len(a) % 2 == 0 and sorted(i for b in a[:5] for i in b) == list(range(8))
    assert steps_per_epoch(buckets, 2, 2) == len(a) // 2


# -- SDXL, text encoder, prior preservation ------------------------------------------------------


def test_sdxl_with_text_encoders_and_prior_preservation(tmp_path, dataset):
    from diffusers import StableDiffusionXLPipeline

    from tests.builders import build_tiny_sdxl

    xl = build_tiny_sdxl(tmp_path / "xl")
    cls = tmp_path / "class"
    cls.mkdir()
    for i in range(2):
        Image.fromarray(np.full((300, 280, 3), 60 * i + 30, np.uint8)).save(cls / f"{i}.png")
    out = tmp_path / "xl.safetensors"
    flags = "--steps 2 --lr 1e-2 --train-text-encoder --format kohya --json".split()
    res = run("train", dataset, "--out", out, "--base", xl, "--class-images", cls, *flags)
    h = json.loads(res.stdout)["header"]
    assert h["base_family"] == "sdxl" and h["prior_preservation"] and h["train_text_encoder"]
    keys = tensors(out).keys()
    for prefix in ("lora_unet_", "lora_te1_text_model_", "lora_te2_text_model_"):
        assert any(k.startswith(prefix) for k in keys), prefix
    pipe = StableDiffusionXLPipeline.from_pretrained(xl)
    pipe.load_lora_weights(str(out))
    assert {"unet", "text_encoder", "text_encoder_2"} <= set(pipe.get_list_adapters())


# -- 6: two processes -----------------------------------------------------------------------------


def test_accelerate_launch_two_processes(tmp_path, dataset, trained, fs_home):
    """`accelerate launch --multi_gpu --num_processes 2` on CPUs: torchrun + gloo. (accelerate's
    `--cpu` flag alone starts one process unless MPI is set up; see docs/training.md.)"""
    launcher = Path(sys.executable).with_name("accelerate")
    if not launcher.exists():
        pytest.skip("accelerate's launcher is not installed")
    out = tmp_path / "ddp.safetensors"
    env = {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": "",
        "FAKESTUDIO_HOME": str(fs_home),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT),
    }
    port = str(29500 + os.getpid() % 1000)
    launch = "launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no "
    launch += f"--dynamo_backend no --main_process_port {port} -m fakestudio train"
    flags = "--steps 3 --rank 4 --alpha 2 --device cpu --json".split()
    cmd = [str(launcher), *launch.split(), str(dataset), "--out", str(out), *flags]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
    if proc.returncode and "gloo" in proc.stderr.lower() and "error" in proc.stderr.lower():
        pytest.skip(f"no gloo process group here: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)  # only the main process printed
    assert result["steps"] == 3 and result["header"]["batch_size"] == 2  # 1 per process x 2
    single = tensors(Path(trained["outputs"][0]))  # kohya, the default form (OUT)
    ddp = tensors(out)
    assert ddp.keys() == single.keys()
    assert all(ddp[k].shape == single[k].shape for k in ddp)
    assert not list((tmp_path / "ddp-training" / "checkpoints").glob(".*"))  # no partials


def test_lora_info_bad_files(tmp_path):
    user_error(run("lora-info", tmp_path / "missing.safetensors", code=2), "not found")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(os.urandom(64))
    user_error(run("lora-info", junk, code=2), "not a valid safetensors")


def test_help_is_grouped():
    text = run("train", "--help").stdout
    for section in (
        "Output:",
        "LoRA and schedule:",
        "Speed and memory:",
        "Checkpoints and previews:",
    ):
        assert section in text
