"""`--base world`: the world base is loaded like any diffusers folder, but only when its files
match the sha256 list committed beside it; every command reaches it by name.

The plumbing is tested on a miniature of the world architecture exported by the trainer (16x
VAE, 256 px natively). The quality tests (the probe on what the committed base draws, a LoRA
teaching it a sample person, the encounter keeping two people apart) run once the weights are
committed (docs/world-model.md); bench/world_quality.py has the full measures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fakestudio.errors import UserError
from tests.test_hostile_cli import invoke, one_line_error
from tests.test_world_train import SMALL

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mini_world(tmp_path_factory) -> Path:
    """A miniature world base, trained for a few steps and exported as the trainer does."""
    from fakestudio.world.trainer import WorldRecipe, WorldTrainer

    tmp = tmp_path_factory.mktemp("mini-world")
    trainer = WorldTrainer(tmp / "run", WorldRecipe(**SMALL), log=lambda m: None)
    trainer.run()
    return trainer.export(tmp / "base")


def _copy(folder: Path, to: Path) -> Path:
    shutil.copytree(folder, to)
    shutil.copy(folder.with_suffix(".sha256"), to.with_suffix(".sha256"))
    return to


def test_the_export_is_checked_file_by_file(mini_world, tmp_path):
    from fakestudio.world.base import world_dir

    listed = mini_world.with_suffix(".sha256").read_text().split("\n")
    assert any(line.endswith("  unet/diffusion_pytorch_model.safetensors") for line in listed)
    assert world_dir(mini_world) == mini_world
    damaged = _copy(mini_world, tmp_path / "base")
    weights = damaged / "unet" / "diffusion_pytorch_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(
        UserError, match=r"unet/diffusion_pytorch_model.safetensors: sha256 differs"
    ):
        world_dir(damaged)
    gone = _copy(mini_world, tmp_path / "gone")
    (gone / "vae" / "config.json").unlink()
    with pytest.raises(UserError, match=r"vae/config.json: missing"):
        world_dir(gone)
    with pytest.raises(UserError, match=r"not installed.*--base tiny"):
        world_dir(tmp_path / "nothing")


@pytest.fixture
def as_world(mini_world, tmp_path, monkeypatch):
    """The miniature installed as `--base world`."""
    import fakestudio.world.base as wb

    installed = _copy(mini_world, tmp_path / "installed" / "base")
    monkeypatch.setattr(wb, "WORLD_DIR", installed)
    return installed


def test_generate_reaches_the_world_base_by_name(as_world, tmp_path):
    from PIL import Image

    from detectors.verify import verify_image

    out = tmp_path / "out"
    res = invoke("generate", "a photo of a person", "--base", "world", "--steps", 2, "--seed", 5,
                 "--out", out, "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    written = json.loads(res.stdout)
    path = Path(written[0]["path"] if isinstance(written, list) else written["files"][0]["path"])
    assert Image.open(path).size == (256, 256)  # the base's native size: 16 x its 16x VAE
    rep = verify_image(path, use_ledger=False)
    assert rep.verdict.outcome == "labelled-ai"
    assert rep.c2pa["generation"]["base_model"]["name"] == "world"


def test_a_damaged_world_base_is_one_line_and_no_image(as_world, tmp_path):
    weights = as_world / "vae" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    out = tmp_path / "out"
    res = invoke("generate", "x", "--base", "world", "--steps", 1, "--out", out)
    assert res.exit_code == 2
    one_line_error(res, "vae/diffusion_pytorch_model.safetensors", "sha256 differs")
    assert not out.exists() or list(out.iterdir()) == []


def test_the_default_base_is_chosen_in_one_place(monkeypatch):
    from fakestudio.models import DEFAULT_BASE, default_base

    monkeypatch.delenv("FAKESTUDIO_BASE", raising=False)
    assert default_base() == DEFAULT_BASE
    monkeypatch.setenv("FAKESTUDIO_BASE", "world")
    assert default_base() == "world"


# -- the committed weights ------------------------------------------------------------------------


def _installed() -> bool:
    from fakestudio.world.base import installed

    return installed()


weights = pytest.mark.skipif(
    not _installed(),
    reason="world base weights not committed yet: they have not met issue 12's bar "
    "(docs/world-model.md)",
)


@pytest.fixture(scope="module")
def probe():
    from fakestudio.world.probe import load_probe

    return load_probe()


@weights
def test_the_world_base_draws_what_the_prompt_says(probe):
    from fakestudio.models import load_base
    from fakestudio.world.quality import prompt_adherence

    drawn = prompt_adherence(load_base("world").pipe, n=6, seed=99, probe=probe)
    # the random tiny base reads ~26% (chance); bench/world_quality.py has the full measure
    assert drawn["adherence"] >= 0.7, drawn


@pytest.fixture(scope="module")
def loras(tmp_path_factory):
    """Both sample people trained on the world base with default settings."""
    from fakestudio.dataset import prepare_dataset
    from fakestudio.train.config import make_config
    from fakestudio.train.loop import train

    tmp = tmp_path_factory.mktemp("world-loras")
    out = {}
    for person in ("ad4x", "b0bz"):
        res = prepare_dataset(
            ROOT / "samples" / person, tmp / f"{person}-data", token=person, class_word="person",
            resolution=256, consent="drawn by fakestudio", person=True, base="world",
        )  # fmt: skip
        out[person] = tmp / f"{person}.safetensors"
        # default settings: the world base's own (its fakestudio.json: all layers, lr 4e-4,
        # the text encoder, 16 prior images), 800 steps (~2 min each on 2 cores)
        train(make_config(res.dataset.root, out[person], base="world"))
    return out


def _reads(probe, paths, people: int = 1) -> list:
    from PIL import Image

    return [probe.read(Image.open(p).convert("RGB"), people=people) for p in paths]


@weights
def test_a_lora_teaches_the_world_base_a_sample_person(loras, probe, tmp_path):
    from fakestudio.generate import GenerateConfig, generate
    from fakestudio.lora import LoraSpec
    from fakestudio.world.quality import person_measures
    from fakestudio.world.samples import SAMPLE_PEOPLE

    measured = {}
    for label, prompt in (("trigger", "a photo of ad4x person"), ("class", "a photo of a person")):
        made = generate(
            GenerateConfig(prompt=prompt, out=tmp_path / label, n=4, seed=0, base="world",
                           loras=[LoraSpec(loras["ad4x"], 1.0)])
        )  # fmt: skip
        reads = [r[0] for r in _reads(probe, [m.path for m in made])]
        measured[label] = person_measures(reads, SAMPLE_PEOPLE["ad4x"])
    # pink hair: no person the base was trained on has it, so only the LoRA can draw it
    assert measured["trigger"]["held_out"] >= 0.75, measured
    assert measured["trigger"]["held_out"] > measured["class"]["held_out"], measured


@weights
def test_the_encounter_keeps_the_two_people_apart(loras, probe, tmp_path):
    from fakestudio.encounter import EncounterConfig, Person, encounter
    from fakestudio.world.quality import person_measures
    from fakestudio.world.samples import SAMPLE_PEOPLE

    made = encounter(
        EncounterConfig(
            persons=[Person(loras["ad4x"]), Person(loras["b0bz"])],
            scene="shaking hands at a conference", out=tmp_path, n=4, seed=0, base="world",
        )
    )  # fmt: skip
    reads = _reads(probe, [m.path for m in made], people=2)
    a, b = SAMPLE_PEOPLE["ad4x"], SAMPLE_PEOPLE["b0bz"]
    left, right = [r[0] for r in reads], [r[1] for r in reads]
    # each half reads as its own person more than as the other: its own held-out feature
    # (pink hair, yellow shirt) more often, and more of its 9 attributes
    for half, own, other in ((left, a, b), (right, b, a)):
        mine, theirs = person_measures(half, own), person_measures(half, other)
        assert mine["held_out"] > theirs["held_out"], (mine, theirs)
        assert mine["attributes"] > theirs["attributes"], (mine, theirs)
