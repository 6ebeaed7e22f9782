"""Labelled generation on the embedded tiny base, end to end through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from detectors.c2pa import read_c2pa
from detectors.ledger import Ledger
from detectors.watermarks import durable
from fakestudio.cli import cli

PROMPT = "a photo of ben0a at a conference"


def run(*args, ok=True):
    res = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert res.exit_code == 0, res.output
    return res


def gen(out, *extra, seed=7, n=1, steps=2):
    res = run(
        "generate",
        PROMPT,
        "--out",
        out,
        "--seed",
        seed,
        "-n",
        n,
        "--steps",
        steps,
        "--json",
        *extra,
    )
    return json.loads(res.stdout)


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def local_ca() -> bytes:
    from fakestudio.label.identity import ca_pem, ensure_identity

    return ca_pem(ensure_identity())


def test_generate_four_labelled_pngs(tmp_path, tiny_folder):
    outs = gen(tmp_path / "out", n=4)
    assert len(outs) == 4
    files = sorted((tmp_path / "out").iterdir())
    assert [f.suffix for f in files] == [".png"] * 4  # nothing else left behind
    payloads = set()
    for o in outs:
        path = Path(o["path"])
        im = Image.open(path)
        assert im.size == (256, 256)
        # invisible watermark (the durable mark): decodes to this output's payload
        wm = durable.decode(pixels(path))
        assert wm.found and wm.payload == o["watermark"]
        payloads.add(wm.payload)
        # C2PA: signed, AI-generated, generator, base hash; no prompt by default
        c = read_c2pa(path, trust_anchors=[local_ca()])
        assert c.state == "trusted", c
        assert "c2pa.created" in c.actions
        assert c.digital_source_type.endswith("trainedAlgorithmicMedia")
        assert "fakestudio" in json.dumps(c.generator)
        assert c.generation["base_model"]["name"] == "tiny"
        assert len(c.generation["base_model"]["sha256"]) == 64
        assert PROMPT not in json.dumps(c.active_manifest)
        assert c.soft_binding["value"] == o["watermark"]
        # PNG text: A1111 parameters without the prompt, XMP with the IPTC source type
        params = im.text["parameters"]
        assert "Steps: 2" in params and "Seed:" in params and PROMPT not in params
        assert "trainedAlgorithmicMedia" in im.text["XML:com.adobe.xmp"]
    assert len(payloads) == 4  # each output has its own payload
    with Ledger() as ledger:
        for o in outs:
            (row,) = ledger.by_payload(o["watermark"])
            assert row.sha256 == o["sha256"] and row.file_name == Path(o["path"]).name
            assert PROMPT not in json.dumps(row.record)


def test_same_seed_same_pixels_different_seed_differs(tmp_path, tiny_folder):
    a = gen(tmp_path / "a", seed=11)[0]
    b = gen(tmp_path / "b", seed=11)[0]
    c = gen(tmp_path / "c", seed=12)[0]
    assert a["watermark"] == b["watermark"] != c["watermark"]
    assert np.array_equal(pixels(a["path"]), pixels(b["path"]))
    assert not np.array_equal(pixels(a["path"]), pixels(c["path"]))
    # image i of a batch is the image of seed+i
    batch = gen(tmp_path / "d", seed=11, n=2)
    assert np.array_equal(pixels(batch[1]["path"]), pixels(c["path"]))


@pytest.mark.parametrize("fmt,suffix", [("jpeg", ".jpg"), ("webp", ".webp")])
def test_other_formats_carry_every_label(tmp_path, tiny_folder, fmt, suffix):
    (o,) = gen(tmp_path, "--format", fmt)
    path = Path(o["path"])
    assert path.suffix == suffix
    assert durable.decode(pixels(path)).payload == o["watermark"]
    c = read_c2pa(path)
    assert c.state == "valid-untrusted", c
    raw = path.read_bytes()
    assert b"trainedAlgorithmicMedia" in raw  # XMP (and the manifest)
    exif = Image.open(path).getexif().get_ifd(0x8769)
    assert exif[0x9286].startswith(b"UNICODE\0")  # A1111 parameters in UserComment


def test_record_prompt_puts_prompt_in_manifest_and_parameters(tmp_path, tiny_folder):
    (o,) = gen(tmp_path, "--record-prompt", "--negative", "blurry")
    c = read_c2pa(o["path"])
    assert c.generation["prompt"] == PROMPT
    params = Image.open(o["path"]).text["parameters"]
    assert params.startswith(PROMPT) and "Negative prompt: blurry" in params


def test_badge_is_visible_and_labels_survive(tmp_path, tiny_folder):
    plain = gen(tmp_path / "plain", seed=3)[0]
    badged = gen(tmp_path / "badge", "--badge", seed=3)[0]
    a, b = pixels(plain["path"]).astype(int), pixels(badged["path"]).astype(int)
    corner = np.abs(a[-40:, -120:] - b[-40:, -120:]).mean()
    elsewhere = np.abs(a[:100, :100] - b[:100, :100]).mean()
    # elsewhere only the invisible marks differ (a few grey levels): the badged file is its own
    # file, with its own identifier
    assert corner > 20 and elsewhere < 5 and corner > 5 * elsewhere
    assert badged["watermark"] != plain["watermark"]
    assert durable.decode(pixels(badged["path"])).payload == badged["watermark"]


@pytest.mark.parametrize("sched", ["ddim", "Euler a", "dpm++2m_karras", "unipc"])
def test_schedulers(tmp_path, tiny_folder, sched):
    (o,) = gen(tmp_path, "--scheduler", sched, "--guidance", 5, "--width", 320, "--height", 256)
    assert Image.open(o["path"]).size == (320, 256)


def test_python_m_entry_point_and_no_traceback_on_bad_input(tmp_path):
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "fakestudio",
            "generate",
            "x",
            "--width",
            "300",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert res.stderr.strip().count("\n") == 0 and "divisible by 8" in res.stderr
    assert list(tmp_path.iterdir()) == []
