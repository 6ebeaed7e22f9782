"""The fictitious encounter: regional composition measured, not assumed."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from detectors.c2pa import read_c2pa
from detectors.watermarks import durable
from fakestudio.cli import cli
from fakestudio.encounter import (
    BASE,
    DEFAULT_CONTEXT,
    Person,
    load_people,
    parse_context,
    person_prompt,
    plan_tiles,
    region_masks,
    regional_render,
    resolve_person,
)
from fakestudio.errors import UserError
from fakestudio.generate import render
from tests.builders import build_tiny_sdxl, make_lora, tiny_record

SCENE = "shaking hands at a tech conference, photo"


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def people(tiny_pipe, tmp_path_factory):
    d = tmp_path_factory.mktemp("people")
    a = make_lora(
        tiny_pipe, d / "ben0a.safetensors", seed=1, header={"trigger": "ben0a", "class_word": "man"}
    )
    b = make_lora(
        tiny_pipe,
        d / "cel3b.safetensors",
        seed=2,
        header={"trigger": "cel3b", "class_word": "woman"},
    )
    return a, b


def record(**kw):
    return tiny_record(**{"prompt": SCENE, "seed": 3, "steps": 8, **kw})


def test_masks_are_a_partition_with_soft_edges():
    m = region_masks("left-right", 256, 256, feather=0.04)
    assert m.shape == (3, 32, 32)
    assert np.allclose(m.sum(0), 1, atol=1e-5)
    assert m[1, 16, 5] > 0.9 and m[2, 16, 26] > 0.9  # A left, B right
    assert m[0, 0, 16] > 0.5  # background strip at the top
    assert 0.05 < m[1, 16, 15] < 0.95  # feathered border, not a hard cut
    boxes = region_masks("0,0,0.3,1;0.7,0,1,1", 256, 256, feather=0)
    assert boxes[0, 16, 16] == 1 and boxes[1, 16, 2] == 1 and boxes[2, 16, 30] == 1


def test_mask_image_layout(tmp_path):
    mask = np.zeros((64, 64, 3), np.uint8)
    mask[:, :20, 0] = 255  # red: first person
    mask[:, 44:, 2] = 255  # blue: second person
    Image.fromarray(mask).save(tmp_path / "mask.png")
    m = region_masks(str(tmp_path / "mask.png"), 256, 256, feather=0)
    assert m[1, 10, 2] == 1 and m[2, 10, 30] == 1 and m[0, 10, 16] == 1
    with pytest.raises(UserError, match="empty"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "black.png")
        region_masks(str(tmp_path / "black.png"), 256, 256, feather=0)


def test_tiles_cover_the_picture_and_the_people_share_one_call():
    m = region_masks("left-right", 512, 512, feather=0.04)  # 64x64 latents
    tiles, kept = plan_tiles(m, factor=8)
    bg, a, b = tiles
    assert a.size == b.size  # same size: both people in one batched UNet call
    assert all(t.size[0] % 8 == 0 and t.size[1] % 8 == 0 for t in tiles)
    assert a.x0 == 0 and 32 < a.x1 <= 40 and b.x1 == 64 and 24 <= b.x0 < 32  # own half + seam
    assert bg.size == (16, 64)  # the background strip at the top is a thin tile
    work = sum(t.size[0] * t.size[1] for t in tiles) / 64**2
    assert work < 1.6  # vs 3 pictures when every region runs on the whole picture
    assert np.allclose(kept.sum(0), 1, atol=1e-5)
    for r, tile in enumerate(tiles):
        outside = kept[r].copy()
        outside[tile.slices] = 0
        assert outside.max() == 0  # no region weighs where its pass did not run
    assert np.abs(kept - m).max() < 0.02  # only the faint feather tails moved

    wider, _ = plan_tiles(m, 8, context=0.1)
    assert wider[1].size[1] > a.size[1] and wider[1].x0 == 0
    full, same = plan_tiles(m, 8, context=None)
    assert all(t.size == (64, 64) for t in full) and same is m

    halves = region_masks("0,0,0.5,1;0.5,0,1,1", 256, 256, feather=0.04)
    no_bg, kept = plan_tiles(halves, 2)
    assert no_bg[0] is None and np.allclose(kept.sum(0), 1, atol=1e-5)  # no background pass
    lopsided = region_masks("0,0,0.2,0.3;0.4,0.1,1,1", 256, 256, feather=0)
    t = plan_tiles(lopsided, 2)[0]
    assert t[1].size == t[2].size and t[1].x0 == 0 and t[2].x1 == 32  # padded, kept inside


def test_parse_context():
    assert parse_context("full") is None and parse_context("0.1") == 0.1
    for bad in ("2", "-0.1", "wide"):
        with pytest.raises(UserError, match="--context"):
            parse_context(bad)


def _rms(a, b, region):
    return float(np.sqrt(((a[region] - b[region]) ** 2).mean()))


def test_regions_keep_identities_apart_and_merge_does_not(tiny_pipe, people):
    pipe = tiny_pipe
    pipe.unload_lora_weights()
    persons = [resolve_person(Person(p)) for p in people]
    assert persons[0].trigger == "ben0a" and persons[1].class_word == "woman"
    load_people(pipe, persons)
    prompts = [SCENE] + [person_prompt(p, SCENE) for p in persons]
    try:
        enc = regional_render(
            pipe,
            record(),
            prompts,
            [BASE, "lora0", "lora1"],
            region_masks("left-right", 256, 256, 0.04),
            output_type="np",
        )
        only = {}
        for name, prompt in (("lora0", prompts[1]), ("lora1", prompts[2])):
            pipe.set_adapters([name])
            only[name] = render(pipe, record(prompt=prompt), None)
        pipe.set_adapters(["lora0", "lora1"], adapter_weights=[1.0, 1.0])
        merged = render(pipe, record(prompt=f"photo of ben0a man and cel3b woman, {SCENE}"), None)
    finally:
        pipe.unload_lora_weights()
    a, b = (np.asarray(only[k], np.float32) / 255 for k in ("lora0", "lora1"))
    m = np.asarray(merged, np.float32) / 255
    left, right = (slice(24, 256), slice(8, 120)), (slice(24, 256), slice(136, 248))

    def isolation(img):
        """How much closer each side is to its own person than to the other (worse side)."""
        return min(
            _rms(img, b, left) / _rms(img, a, left), _rms(img, a, right) / _rms(img, b, right)
        )

    print(f"isolation: regional {isolation(enc):.2f}, merge {isolation(m):.2f}")
    assert isolation(enc) > 1.8  # each side much closer to its own person
    assert isolation(m) < 1.2  # the merge keeps neither side apart


@pytest.mark.parametrize(
    "context,layers",
    [(DEFAULT_CONTEXT, "attention"), (None, "attention"), (DEFAULT_CONTEXT, "all")],
    ids=["tiles", "full", "all-layers"],
)
def test_batched_equals_unbatched_per_region_passes(tiny_pipe, people, context, layers, tmp_path):
    """peft's per-sample adapters in one batch equal one pass per region, also for LoRAs on
    the ResNet convolutions (`train --layers all`)."""
    pipe = tiny_pipe
    pipe.unload_lora_weights()
    if layers == "all":
        people = [
            make_lora(pipe, tmp_path / f"{i}.safetensors", seed=i, layers="all") for i in (1, 2)
        ]
    load_people(pipe, [resolve_person(Person(p)) for p in people])
    args = (
        pipe,
        record(steps=6),
        [SCENE, "photo of ben0a man", "photo of cel3b woman"],
        [BASE, "lora0", "lora1"],
        region_masks("left-right", 256, 256, 0.04),
    )
    try:
        batched = regional_render(*args, batched=True, output_type="np", context=context)
        separate = regional_render(*args, batched=False, output_type="np", context=context)
    finally:
        pipe.unload_lora_weights()
    assert np.abs(batched - separate).max() < 1e-3


def test_encounter_cli_writes_labelled_image_listing_both_loras(tmp_path, people, tiny_folder):
    res = invoke(
        "encounter",
        "--person",
        people[0],
        "--person",
        f"{people[1]}:cel3b",
        "--scene",
        SCENE,
        "--out",
        tmp_path,
        "--steps",
        2,
        "--seed",
        5,
        "--json",
    )
    assert res.exit_code == 0, res.output
    (o,) = json.loads(res.stdout)
    rgb = np.asarray(Image.open(o["path"]).convert("RGB"))
    assert durable.decode(rgb).payload == o["watermark"]
    c = read_c2pa(o["path"])
    assert c.state == "valid-untrusted"
    gen = c.generation
    assert [lo["name"] for lo in gen["loras"]] == ["ben0a.safetensors", "cel3b.safetensors"]
    assert [lo["trigger"] for lo in gen["loras"]] == ["ben0a", "cel3b"]
    assert gen["composition"]["mode"] == "regional"
    assert gen["composition"]["layout"]["kind"] == "boxes"
    assert gen["composition"]["context"] == DEFAULT_CONTEXT
    assert SCENE not in json.dumps(c.active_manifest)


def test_merge_mode_and_lora_without_header(tmp_path, tiny_pipe, tiny_folder):
    plain = make_lora(tiny_pipe, tmp_path / "civitai_thing.safetensors", form="kohya", seed=4)
    other = make_lora(tiny_pipe, tmp_path / "other.safetensors", seed=5)
    res = invoke(
        "encounter",
        "--person",
        plain,
        "--person",
        other,
        "--scene",
        SCENE,
        "--merge",
        "--out",
        tmp_path / "out",
        "--steps",
        2,
        "--json",
    )
    assert res.exit_code == 0, res.output
    (o,) = json.loads(res.stdout)
    assert read_c2pa(o["path"]).generation["composition"]["mode"] == "merge"


def test_encounter_bad_input(tmp_path, people):
    res = invoke("encounter", "--person", people[0], "--scene", SCENE, "--out", tmp_path)
    assert res.exit_code == 2 and "exactly two" in res.stderr
    res = invoke(
        "encounter",
        "--person",
        people[0],
        "--person",
        people[1],
        "--scene",
        SCENE,
        "--layout",
        "0,0,2,1;0,0,1,1",
        "--out",
        tmp_path,
    )
    assert res.exit_code == 2 and "--layout" in res.stderr
    res = invoke(
        "encounter",
        "--person",
        people[0],
        "--person",
        people[1],
        "--scene",
        SCENE,
        "--context",
        "everything",
        "--out",
        tmp_path,
    )
    assert res.exit_code == 2 and "--context" in res.stderr
    assert list(tmp_path.iterdir()) == []


def test_encounter_on_sdxl(tmp_path_factory):
    folder = build_tiny_sdxl(tmp_path_factory.mktemp("xl") / "xl")
    from fakestudio.models import load_base

    pipe = load_base(str(folder)).pipe
    d = tmp_path_factory.mktemp("xl-loras")
    a = make_lora(pipe, d / "a.safetensors", seed=1)
    b = make_lora(pipe, d / "b.safetensors", seed=2)
    # each tile gets its own crop position and size in SDXL's micro-conditioning
    load_people(pipe, [Person(a, trigger="aaa1"), Person(b, trigger="bbb2")])
    args = (
        pipe,
        record(steps=3),
        [SCENE, "photo of aaa1", "photo of bbb2"],
        [BASE, "lora0", "lora1"],
        region_masks("left-right", 256, 256, 0.04),
    )
    batched = regional_render(*args, batched=True, output_type="np")
    separate = regional_render(*args, batched=False, output_type="np")
    assert np.abs(batched - separate).max() < 1e-3
    out = tmp_path_factory.mktemp("xl-out")
    res = invoke(
        "encounter",
        "--person",
        f"{a}:aaa1",
        "--person",
        f"{b}:bbb2",
        "--scene",
        SCENE,
        "--base",
        folder,
        "--out",
        out,
        "--steps",
        2,
        "--width",
        256,
        "--height",
        256,
        "--json",
    )
    assert res.exit_code == 0, res.output
    (o,) = json.loads(res.stdout)
    assert read_c2pa(o["path"]).generation["composition"]["mode"] == "regional"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"steps": 1001}, "--steps must be between 1 and 1000"),
        ({"steps": 0}, "--steps must be between 1 and 1000"),
        ({"width": 4104}, "--width 4104 is over 4096"),
        ({"height": 252}, "--height 252 is not divisible by 8"),
        ({"n": 0}, "-n must be at least 1"),
        ({"scheduler": "nope"}, "unknown scheduler"),
    ],
)
def test_encounter_and_generate_share_option_limits(tmp_path, change, message):
    """The same bad option gets the same one line from both commands."""
    from fakestudio.encounter import EncounterConfig, Person
    from fakestudio.encounter import check_config as check_encounter
    from fakestudio.generate import GenerateConfig
    from fakestudio.generate import check_config as check_generate

    lora = tmp_path / "a.safetensors"
    lora.write_bytes(b"x")
    people = [Person(lora), Person(lora)]
    enc = EncounterConfig(people, "a street", tmp_path, **change)
    gen = GenerateConfig("a street", tmp_path, **change)
    for check, cfg in ((check_encounter, enc), (check_generate, gen)):
        with pytest.raises(UserError, match=re.escape(message)):
            check(cfg)
