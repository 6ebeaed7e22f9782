"""Bad input: one clear line naming the problem, exit 2, nothing left in the output folder."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from detectors.files import atomic_write
from fakestudio.cli import cli


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def assert_user_error(res, *needles):
    assert res.exit_code == 2, res.output
    line = res.stderr.strip()
    assert "\n" not in line and "Traceback" not in line, line
    for n in needles:
        assert n in line, line


@pytest.fixture
def out(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    return d


def test_unknown_scheduler(out):
    assert_user_error(
        invoke("generate", "x", "--scheduler", "warp9", "--out", out), "unknown scheduler", "euler"
    )
    assert list(out.iterdir()) == []


def test_size_not_divisible_by_8(out):
    assert_user_error(
        invoke("generate", "x", "--width", 260, "--out", out), "--width 260", "divisible by 8"
    )
    assert_user_error(invoke("generate", "x", "--height", 128, "--out", out), "at least 256")
    assert list(out.iterdir()) == []


def test_missing_lora(out):
    assert_user_error(
        invoke("generate", "x", "--lora", out / "ghost.safetensors:0.5", "--out", out),
        "ghost.safetensors",
        "not found",
    )
    assert list(out.iterdir()) == []


def test_corrupt_lora(out, tmp_path, tiny_folder):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(os.urandom(300))
    assert_user_error(
        invoke("generate", "x", "--lora", bad, "--out", out, "--steps", 1),
        "broken.safetensors",
        "not a valid safetensors",
    )
    assert list(out.iterdir()) == []


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("I am a file")
    assert_user_error(invoke("generate", "x", "--out", blocker / "sub"), "not writable")
    assert blocker.read_text() == "I am a file"


def test_missing_base_folder(out, tmp_path):
    assert_user_error(
        invoke("generate", "x", "--base", tmp_path / "no-such-model", "--out", out, "--steps", 1),
        "no-such-model",
        "not found",
    )
    assert list(out.iterdir()) == []


def test_interrupted_run_leaves_only_whole_images(out, tiny_folder, monkeypatch):
    import fakestudio.label.labeller as labeller

    real_sign, calls = labeller.sign_bytes, []

    def sign_then_interrupt(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_sign(*a, **kw)

    monkeypatch.setattr(labeller, "sign_bytes", sign_then_interrupt)
    res = invoke("generate", "x", "-n", 3, "--steps", 1, "--seed", 1, "--out", out)
    assert res.exit_code == 130
    files = list(out.iterdir())
    assert len(files) == 1 and files[0].suffix == ".png"  # image 1 complete, image 2 never written


def test_atomic_write_leaves_nothing_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "img.png"
    target.write_bytes(b"old")

    def boom(*a):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, b"new" * 1000)
    assert [p.name for p in tmp_path.iterdir()] == ["img.png"]
    assert target.read_bytes() == b"old"
