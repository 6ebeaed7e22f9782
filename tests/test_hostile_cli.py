"""Hostile invocations (issue 10): every bad option is one line and exit 2, before any work;
prompt tags never leave --lora-dir."""

from __future__ import annotations

import os

import click
import pytest
from click.testing import CliRunner

from fakestudio.cli import LAZY_COMMANDS, cli
from fakestudio.errors import UserError


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def one_line_error(res, *needles):
    assert res.exit_code == 2, (res.exit_code, res.output)
    line = res.stderr.strip()
    assert line and "\n" not in line and "Traceback" not in line, res.stderr
    for n in needles:
        assert n in line, line
    return line


def _float_options():
    ctx = click.Context(cli)
    for name in sorted(LAZY_COMMANDS):
        cmd = cli.get_command(ctx, name)
        for p in cmd.params:
            if isinstance(p, click.Option) and p.type.name == "float":
                yield name, p.opts[0]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_every_float_option_refuses_nan_and_inf(value):
    options = list(_float_options())
    assert ("generate", "--guidance") in options and len(options) >= 5
    for command, opt in options:
        one_line_error(invoke(command, opt, value), opt, "finite")


def test_lora_weight_nan(tmp_path):
    out = tmp_path / "out"
    one_line_error(invoke("generate", "x", "--lora", "x.safetensors:nan", "--out", out), "--lora")
    assert not out.exists() or list(out.iterdir()) == []


def test_seed_range_is_checked_up_front(tmp_path):
    out = tmp_path / "out"
    for seed in (2**70, 2**64, -2, "12abc"):
        one_line_error(invoke("generate", "x", "--seed", seed, "--out", out), "--seed")
    # the last seeds of the range, with -n running past 2^64-1
    one_line_error(invoke("generate", "x", "--seed", 2**64 - 1, "-n", 2, "--out", out), "2^64-1")
    assert not out.exists() or list(out.iterdir()) == []
    from fakestudio.commands.options import SeedType

    assert SeedType().convert("-1", None, None) is None  # random, as in Automatic1111
    assert SeedType().convert(str(2**64 - 1), None, None) == 2**64 - 1
    assert "-1" in invoke("generate", "--help").output


def test_prompt_that_is_not_utf8(tmp_path):
    bad = os.fsdecode(b"a photo of caf\xe9")  # what Python makes of such argv bytes
    line = one_line_error(invoke("generate", bad, "--out", tmp_path), "not valid UTF-8")
    assert "0xe9" in line
    one_line_error(invoke("generate", "ok", "--negative", bad, "--out", tmp_path), "--negative")


def test_device_that_this_torch_cannot_use(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    one_line_error(invoke("generate", "x", "--device", "cuda", "--out", tmp_path), "--device cuda")
    one_line_error(invoke("generate", "x", "--device", "banana", "--out", tmp_path), "--device")
    assert list(tmp_path.iterdir()) == []


def test_prompt_tags_stay_inside_lora_dir(tmp_path):
    from fakestudio.lora import extract_prompt_loras

    loras = tmp_path / "loras"
    (loras / "sub").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "lora.safetensors").write_bytes(b"x")
    (loras / "sub" / "ben.safetensors").write_bytes(b"x")
    os.symlink(elsewhere / "lora.safetensors", loras / "evil.safetensors")
    os.symlink(elsewhere, loras / "linkdir")
    os.symlink(loras / "sub" / "ben.safetensors", loras / "alias.safetensors")

    for tag in (
        "<lora:../elsewhere/lora:1>",
        "<lora:../../elsewhere/lora>",
        f"<lora:{elsewhere}/lora:1>",
        "<lora:sub/../../elsewhere/lora>",
        "<lora:..\\elsewhere\\lora>",
    ):
        with pytest.raises(UserError, match="must stay inside --lora-dir"):
            extract_prompt_loras(f"x {tag}", loras)
    with pytest.raises(UserError, match="outside it; refused"):
        extract_prompt_loras("x <lora:evil:1>", loras)
    with pytest.raises(UserError, match="no lora.safetensors"):
        extract_prompt_loras("x <lora:lora:1>", loras)  # not found through linkdir/
    with pytest.raises(UserError, match="no \\*.safetensors"):
        extract_prompt_loras("x <lora:*:1>", loras)  # no glob patterns
    # inside the folder: found, also in a subfolder and through a link that stays inside
    _, specs = extract_prompt_loras("x <lora:ben:0.5> <lora:sub/ben> <lora:alias>", loras)
    assert [s.path.resolve() for s in specs] == [(loras / "sub" / "ben.safetensors").resolve()] * 3
    assert [s.weight for s in specs] == [0.5, 1.0, 1.0]
    with pytest.raises(UserError, match="finite"):
        extract_prompt_loras("x <lora:ben:nan>", loras)


def test_lora_with_wrong_target_modules_is_one_line(tmp_path, tiny_folder):
    import torch
    from safetensors.torch import save_file

    key = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_zz"
    path = tmp_path / "wrong.safetensors"
    save_file(
        {f"{key}.lora_A.weight": torch.ones(4, 32), f"{key}.lora_B.weight": torch.ones(32, 4)}, path
    )
    out = tmp_path / "out"
    res = invoke("generate", "x", "--lora", path, "--steps", 1, "--out", out)
    one_line_error(res, "wrong.safetensors", "target modules")
    assert not out.exists() or list(out.iterdir()) == []


def test_largest_seed_generates_and_stale_parts_are_cleaned(tmp_path, tiny_folder):
    import json
    import time

    from detectors.files import STALE_PART_SECONDS
    from detectors.verify import verify_image

    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".18446744073709551615-00-abc.png.x1y2z3w4.part"
    stale.write_bytes(b"\x89PNG half an image")
    old = time.time() - STALE_PART_SECONDS - 5
    os.utime(stale, (old, old))
    keep = out / "notes.part"
    keep.write_text("mine")
    os.utime(keep, (old, old))
    res = invoke("generate", "x", "--seed", 2**64 - 1, "--steps", 1, "--out", out, "--json")
    assert res.exit_code == 0, res.output
    written = json.loads(res.stdout)
    assert not stale.exists() and keep.exists()
    path = written[0]["path"] if isinstance(written, list) else written["files"][0]["path"]
    rep = verify_image(path, use_ledger=False)
    assert rep.verdict.outcome == "labelled-ai"
    assert str(rep.c2pa["generation"]["seed"]) == str(2**64 - 1)


def test_a_lora_written_again_cleans_what_a_killed_write_left(tmp_path, tiny_pipe):
    import time

    from detectors.files import STALE_PART_SECONDS
    from fakestudio.lora import read_header
    from tests.builders import make_lora

    stale = tmp_path / ".ben0a.safetensors.k1l2m3n4.part"
    stale.write_bytes(b"half a LoRA")
    old = time.time() - STALE_PART_SECONDS - 5
    os.utime(stale, (old, old))
    other = tmp_path / ".other.safetensors.k1l2m3n4.part"  # another output's: not ours to judge
    other.write_bytes(b"half another")
    os.utime(other, (old, old))
    lora = make_lora(tiny_pipe, tmp_path / "ben0a.safetensors")
    assert read_header(lora) is not None
    assert not stale.exists() and other.exists()
