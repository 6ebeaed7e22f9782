"""A base's own settings (`fakestudio.json` in its folder) and prior images the base draws.

The world base burns its pictures at guidance 7 and its LoRAs need a prior to keep the class
word apart (docs/world-model.md); these tests run the same mechanism on copies of the tiny
base that carry a settings file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fakestudio.errors import UserError
from tests.test_hostile_cli import invoke, one_line_error
from tests.test_train import header, make_dataset


@pytest.fixture(scope="module")
def tiny_with_settings(tiny_folder, tmp_path_factory) -> Path:
    """The tiny base as a plain diffusers folder that says how it likes to be used."""
    folder = tmp_path_factory.mktemp("bases") / "opinionated"
    shutil.copytree(tiny_folder, folder)
    settings = {"guidance": 2.5, "train": {"lr": 3e-3, "rank": 2, "prior_images": 2}}
    (folder / "fakestudio.json").write_text(json.dumps(settings))
    return folder


def test_settings_are_read_and_checked(tmp_path, tiny_folder):
    from fakestudio.base_settings import read_settings
    from fakestudio.models import base_settings

    assert base_settings("tiny").guidance == 7.0 and base_settings("tiny").train == {}
    assert read_settings(tiny_folder).guidance == 7.0  # no file: fakestudio's defaults
    folder = tmp_path / "base"
    folder.mkdir()
    for text, problem in (
        ("{", "not readable JSON"),
        ('{"guidance": "high"}', "guidance must be a number"),
        ('{"guidance": -1}', "guidance must be 0 or more"),
        ('{"train": [1]}', "train must be an object of training settings"),
        ('{"encounter": {"detail": 1}}', "encounter 'detail' must be a number from 0"),
        ('{"encounter": {"detail_top": "top"}}', "encounter 'detail_top' must be a number"),
        ('{"sampler": "euler"}', "only 'guidance', 'train' and 'encounter' are known"),
        ('{"encounter": {"person": "{who} at {place}"}}', "encounter 'person' template"),
        (
            '{"encounter": {"crowd": "{who}"}}',
            "encounter templates are ['detail', 'detail_top', 'merge'",
        ),
    ):
        (folder / "fakestudio.json").write_text(text)
        with pytest.raises(UserError, match=r"^base/fakestudio.json: ") as e:
            read_settings(folder)
        assert problem in str(e.value)


def test_train_defaults_come_from_the_base_and_yield_to_toml_and_flags(
    tiny_with_settings, tmp_path
):
    from fakestudio.train.config import make_config

    base = str(tiny_with_settings)
    cfg = make_config("ds", "x.safetensors", base=base)
    assert (cfg.lr, cfg.rank, cfg.prior_images) == (3e-3, 2, 2)
    toml = tmp_path / "train.toml"
    toml.write_text("lr = 5e-4\n")
    cfg = make_config("ds", "x.safetensors", toml, base=base, rank=8)
    assert (cfg.lr, cfg.rank, cfg.prior_images) == (5e-4, 8, 2)
    assert make_config("ds", "x.safetensors", base="tiny").lr == 1e-4


def test_a_wrong_train_setting_in_a_base_is_one_line(tiny_with_settings, tmp_path):
    from fakestudio.train.config import make_config

    broken = tmp_path / "broken"
    shutil.copytree(tiny_with_settings, broken)
    for train, problem in (
        ({"lr": "4e-4"}, "lr must be float (got '4e-4')"),  # JSON has numbers: TOML's check
        ({"rank": 2.5}, "rank must be int (got 2.5)"),
        ({"turbo": True}, "unknown setting 'turbo'"),
        ({"base": "tiny"}, "unknown setting 'base'"),
    ):
        (broken / "fakestudio.json").write_text(json.dumps({"train": train}))
        with pytest.raises(UserError, match=r"^broken/fakestudio.json: ") as e:
            make_config("ds", "x.safetensors", base=str(broken))
        assert problem in str(e.value)
    data = make_dataset(tmp_path / "ds")
    res = invoke("train", data, "--out", tmp_path / "x.safetensors", "--base", broken)
    one_line_error(res, "broken/fakestudio.json", "unknown setting 'base'")


def test_generate_uses_the_base_guidance_unless_asked(tiny_with_settings, tmp_path):
    from detectors.verify import verify_image

    for extra, want in (([], 2.5), (["--guidance", "4"], 4.0)):
        out = tmp_path / f"out-{want}"
        res = invoke("generate", "a photo", "--base", tiny_with_settings, "--steps", 1,
                     "--seed", 1, "--out", out, "--json", *extra)  # fmt: skip
        assert res.exit_code == 0, res.output
        (path,) = out.glob("*.png")
        assert verify_image(path, use_ledger=False).c2pa["generation"]["guidance"] == want


def test_a_broken_settings_file_is_one_line(tiny_with_settings, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_with_settings, broken)
    (broken / "fakestudio.json").write_text('{"guidance": "x"}')
    res = invoke("generate", "a photo", "--base", broken, "--steps", 1, "--out", tmp_path / "o")
    assert res.exit_code == 2
    one_line_error(res, "broken/fakestudio.json", "guidance must be a number")


def test_the_base_draws_labelled_class_images_once(tiny_with_settings, tmp_path):
    from detectors.verify import verify_image
    from fakestudio.train.config import make_config
    from fakestudio.train.loop import train

    data = make_dataset(tmp_path / "ds")
    out = tmp_path / "ben0a.safetensors"
    res = train(make_config(data, out, base=str(tiny_with_settings), max_steps=2))
    assert header(res.outputs[0])["prior_preservation"]
    drawn = sorted((tmp_path / "ben0a-training" / "class-images").glob("*.png"))
    assert len(drawn) == 2
    for p in drawn:  # generated pictures, labelled like every other
        rep = verify_image(p, use_ledger=False)
        assert rep.verdict.outcome == "labelled-ai"
        assert rep.c2pa["generation"]["guidance"] == 2.5
    before = [p.stat().st_mtime_ns for p in drawn]
    again = make_config(data, out, base=str(tiny_with_settings), max_steps=3, resume=True)
    assert train(again).resumed_from == 2
    assert [p.stat().st_mtime_ns for p in drawn] == before  # the same ask: drawn once


def test_encounter_prompts_follow_the_base_templates(tmp_path):
    import numpy as np

    from fakestudio.base_settings import read_settings
    from fakestudio.encounter import Person, person_prompt, region_masks, sides_of

    (tmp_path / "fakestudio.json").write_text(
        json.dumps({"encounter": {"person": "two people {scene}, on the {side} {who}"}})
    )
    words = read_settings(tmp_path).encounter
    assert words["scene"] == "{scene}"  # the templates not given keep fakestudio's defaults
    ben = Person(Path("a"), "ben0a", "man")
    assert person_prompt(ben, "at a desk", "right", words["person"]) == (
        "two people at a desk, on the right ben0a man"
    )
    assert person_prompt(ben, "at a desk") == "photo of ben0a man, at a desk"
    assert sides_of(region_masks("left-right", 256, 256, 0.1, 2, 8)) == ["left", "right"]
    swapped = region_masks("0.55,0,1,1;0,0,0.45,1", 256, 256, 0.1, 2, 8)
    assert sides_of(swapped) == ["right", "left"]
    assert np.allclose(swapped.sum(0), 1)


def test_the_committed_world_settings_are_the_code_s_and_load_clean():
    # SETTINGS (fakestudio/world/base.py) is what the export writes; a change there must be
    # written into the folder (python -m fakestudio.world.base) or the base says otherwise
    from fakestudio.base_settings import SETTINGS_FILE, read_settings
    from fakestudio.world.base import SETTINGS, WORLD_DIR

    assert json.loads((WORLD_DIR / SETTINGS_FILE).read_text()) == SETTINGS
    assert read_settings(WORLD_DIR).train == SETTINGS["train"]
