"""The world base recipe: tokenizer, exact resume across slices and stages, export, CLI errors."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from fakestudio.world.model import caption_words, world_tokenizer
from fakestudio.world.scenes import scene_stream

ROOT = Path(__file__).resolve().parents[1]
# a miniature of the recipe: every stage runs, in seconds
SMALL = dict(
    scale="test", vae_steps=3, vae_batch=2, vae_crop=64, cache_scenes=16, unet_steps=3,
    unet_batch=4, warmup=2, eval_every=0, text_pretrain=3,
)  # fmt: skip


@pytest.fixture(scope="module")
def tokenizer():
    return world_tokenizer()


def test_every_caption_word_is_one_token_and_any_word_encodes(tokenizer):
    for word in set(caption_words(200, seed=3)):
        assert len(tokenizer(word, add_special_tokens=False).input_ids) == 1, word
    stream = scene_stream(4, two=1.0)
    assert max(len(tokenizer(next(stream).caption()).input_ids) for _ in range(30)) <= 77
    assert world_tokenizer().get_vocab() == tokenizer.get_vocab()  # same ids on every build
    ids = tokenizer("ad4x", add_special_tokens=False).input_ids
    assert len(ids) > 1 and tokenizer.decode(ids).replace(" ", "") == "ad4x"


def _weights(run_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run_dir / "checkpoint" / "models.safetensors"))


def test_slices_end_with_the_weights_of_one_run(tmp_path):
    from fakestudio.world.trainer import WorldRecipe, WorldTrainer

    recipe = WorldRecipe(**SMALL)
    straight = WorldTrainer(tmp_path / "a", recipe).run()
    assert straight["stage"] == "done"
    for n in (2, 3, None):  # slices cut inside the VAE stage, across the cache, into the UNet
        status = WorldTrainer(tmp_path / "b", recipe).run(max_steps=n)
    assert status["stage"] == "done"
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert a.keys() == b.keys() and any(k.startswith("ema.unet.") for k in a)
    assert all((a[k] == b[k]).all() for k in a)
    log = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert {e["stage"] for e in log} == {"vae", "cache", "text", "unet"}
    assert any("text_read" in e for e in log)
    assert all("elapsed_s" in e for e in log)


def test_export_loads_as_a_base_and_draws_256px(tmp_path):
    from fakestudio.models import load_base
    from fakestudio.world.trainer import WorldRecipe, WorldTrainer

    trainer = WorldTrainer(tmp_path / "run", WorldRecipe(**SMALL))
    trainer.run()
    out = trainer.export(tmp_path / "world-base")
    base = load_base(str(out))
    assert base.family == "sd1" and base.pipe.vae.config.scaling_factor != 1.0
    image = base.pipe("a photo of a person", num_inference_steps=2, output_type="pil").images[0]
    assert image.size == (256, 256)


def test_changing_the_recipe_of_a_run_is_one_clear_error(tmp_path):
    from fakestudio.world.trainer import WorldRecipe, WorldTrainer

    WorldTrainer(tmp_path / "run", WorldRecipe(**SMALL)).run(max_steps=1)
    # more steps may be added to a run ...
    WorldTrainer(tmp_path / "run", WorldRecipe(**(SMALL | {"unet_steps": 5})))
    # ... but its learning rate is fixed
    with pytest.raises(ValueError, match="vae_lr=0.0003, not 0.01"):
        WorldTrainer(tmp_path / "run", replace(WorldRecipe(**SMALL), vae_lr=0.01))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train_world.py"), "--run-dir",
         str(tmp_path / "run"), "--scale", "base", "--status"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "scale='test', not 'base'" in proc.stderr and "Traceback" not in proc.stderr


def test_the_vae_sees_every_hue_at_the_same_brightness():
    import numpy as np
    from PIL import Image

    from fakestudio.world.draw import render
    from fakestudio.world.samples import sample_scenes
    from fakestudio.world.trainer import turn_hue

    im = render(sample_scenes("b0bz")[0], 128)  # a yellow striped shirt
    luma = np.array([0.299, 0.587, 0.114])
    a = np.asarray(im, dtype=float)
    assert np.abs(np.asarray(turn_hue(im, 0.0), dtype=float) - a).max() <= 1
    hues = set()
    for deg in (0, 90, 180, 270):
        b = np.asarray(turn_hue(im, deg), dtype=float)
        unclipped = (b > 2).all(axis=2) & (b < 253).all(axis=2)
        assert np.abs((b - a)[unclipped] @ luma).mean() < 1.0  # brightness kept
        shirt = b[-10:, 40:88].reshape(-1, 3).mean(axis=0)
        hues.add(int(np.degrees(np.arctan2(*(shirt[[1, 2]] - shirt.mean()))) // 45))
    assert len(hues) >= 3  # the shirt comes out in other colours
    assert isinstance(turn_hue(im, 33.0), Image.Image)


def test_recoloured_scenes_change_each_region_on_its_own():
    """The VAE's recoloured scenes: hair and shirt take colours of their own, so pink hair
    beside ordinary skin (a sample person's held-out feature) is a picture the VAE has met."""
    import numpy as np

    from fakestudio.world.attributes import COLOURS
    from fakestudio.world.draw import random_palette, render
    from fakestudio.world.samples import sample_scenes

    scene = sample_scenes("b0bz")[0]
    assert np.array_equal(np.asarray(render(scene, 128)), np.asarray(render(scene, 128, COLOURS)))
    rng = np.random.default_rng(0)
    one, two = random_palette(rng), random_palette(rng)
    assert one != two
    mixed = {**one, "shirt_colour": two["shirt_colour"]}  # only the shirt's colour differs
    a, b, c = (np.asarray(render(scene, 128, p), dtype=float) for p in (one, two, mixed))
    changed = np.abs(a - c).max(axis=2) > 12
    assert 0.05 < changed.mean() < 0.6  # the shirt changed, the rest did not
    assert (np.abs(a - b).max(axis=2) > 12).mean() > changed.mean() + 0.1
    assert np.abs(c - b)[changed].mean() < 8  # and it is the other palette's shirt


def test_a_run_started_before_the_hue_turns_resumes_as_it_was(tmp_path):
    from dataclasses import asdict

    from fakestudio.world.trainer import LEGACY, WorldRecipe, WorldTrainer

    old = asdict(WorldRecipe(**SMALL))
    for k in LEGACY:
        del old[k]
    (tmp_path / "recipe.json").write_text(json.dumps(old))
    trainer = WorldTrainer(tmp_path, log=lambda m: None)
    assert trainer.recipe.vae_hue == 0.0 and trainer.recipe.latent_channels == 8
    assert trainer.recipe.vae_recolour == 0.0 and trainer.recipe.vae_lr_end == 1.0
    assert trainer.recipe.text_start == 0 and trainer.schedule()["beta_end"] == 0.012
    assert trainer.recipe.prediction == trainer.schedule()["prediction_type"] == "epsilon"
    assert trainer.vae.config.latent_channels == 8 and trainer.unet.config.in_channels == 8
    assert len(trainer.vae.config.block_out_channels) == 5 and trainer.unet.config.sample_size == 16
    fresh = WorldTrainer(tmp_path / "new", WorldRecipe(**SMALL))
    assert fresh.vae.config.latent_channels == 4 and fresh.unet.config.out_channels == 4
    assert len(fresh.vae.config.block_out_channels) == 4 and fresh.unet.config.sample_size == 32
    wide = WorldTrainer(tmp_path / "wide", WorldRecipe(**(SMALL | {"latent_channels": 16})))
    assert wide.vae.config.latent_channels == 16 and wide.unet.config.out_channels == 16
    # and the command line reads such a run the same way (it once filled in today's defaults)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train_world.py"), "--run-dir", str(tmp_path),
         "--status", "--json"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["recipe"]["vae_hue"] == 0.0


def test_a_new_run_may_start_from_another_runs_vae_and_cache(tmp_path):
    """Changing the UNet's recipe does not retrain the VAE; the text encoder stays at its first
    weights until `text_start` (run 3's, trained from the start, stopped telling captions apart)."""
    import torch

    from fakestudio.world.trainer import WorldRecipe, WorldTrainer

    quiet = dict(log=lambda m: None)
    first = WorldTrainer(tmp_path / "a", WorldRecipe(**SMALL), **quiet)
    first.run()
    assert first.stage == "done"
    with pytest.raises(ValueError, match="made with vae_lr=0.0003, not 0.01"):
        WorldTrainer(tmp_path / "x", WorldRecipe(**(SMALL | {"vae_lr": 0.01})),
                     from_run=tmp_path / "a", **quiet)  # fmt: skip
    recipe = WorldRecipe(**(SMALL | {"text_start": 2, "unet_lr": 1e-3}))
    second = WorldTrainer(tmp_path / "b", recipe, from_run=tmp_path / "a", **quiet)
    assert (second.stage, second.step) == ("text", 0)
    assert second.scaling_factor == first.scaling_factor
    for k, v in first.vae.state_dict().items():
        assert torch.equal(v, second.vae.state_dict()[k])
    assert len(list((tmp_path / "b" / "latents").glob("chunk-*"))) == 1
    text0 = {k: v.clone() for k, v in second.text_encoder.state_dict().items()}
    unet0 = {k: v.clone() for k, v in second.unet.state_dict().items()}

    def moved(model, before):
        return any(not torch.equal(v, before[k]) for k, v in model.state_dict().items())

    second.run(max_steps=1)  # the text encoder's reading lesson
    assert (second.stage, second.step) == ("unet", 0) and moved(second.text_encoder, text0)
    assert not moved(second.unet, unet0)
    text0 = {k: v.clone() for k, v in second.text_encoder.state_dict().items()}
    second.run(max_steps=2)  # UNet steps 0 and 1: the text encoder is frozen
    assert moved(second.unet, unet0) and not moved(second.text_encoder, text0)
    second.run()  # step 2: it learns
    assert second.stage == "done" and moved(second.text_encoder, text0)
    # the base generates with the noise schedule it was trained on (more noise at the end)
    assert second.pipeline().scheduler.config.beta_end == recipe.beta_end == 0.02
    assert second.export(tmp_path / "out").joinpath("scheduler").is_dir()
    saved = json.loads((tmp_path / "out" / "scheduler" / "scheduler_config.json").read_text())
    assert saved["beta_end"] == 0.02 and saved["prediction_type"] == "v_prediction"
    with pytest.raises(ValueError, match="this run has begun"):
        WorldTrainer(tmp_path / "b", recipe, from_run=tmp_path / "a", **quiet)
    # the command line takes the source's VAE and cache recipe (here a miniature's)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train_world.py"), "--run-dir",
         str(tmp_path / "c"), "--from-run", str(tmp_path / "a"), "--status", "--json"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)
    assert status["stage"] == "text" and status["recipe"]["scale"] == "test"
    assert status["recipe"]["vae_steps"] == SMALL["vae_steps"]
