"""`fakestudio compare`: verdicts side by side, perceptual hashes, SSIM, heat map, spectra."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from detectors.compare import (
    DIFFERENT_MIN_BITS,
    SAME_MAX_BITS,
    compare_images,
    ssim,
    verdict_kind,
)
from fakestudio.cli import cli

REAL_WORD = re.compile(r"\breal\b", re.IGNORECASE)
BLOCK = (40, 176, 48, 184)  # x0, y0, x1, y1 of the 8x8 edit


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def fake_png(tiny_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp-gen")
    res = invoke("generate", "a photo of ben0a", "--out", out, "--seed", 5, "--steps", 2, "--json")
    assert res.exit_code == 0, res.output
    return Path(json.loads(res.stdout)[0]["path"])


@pytest.fixture(scope="module")
def jpeg75(fake_png, tmp_path_factory):
    p = tmp_path_factory.mktemp("cmp-jpeg") / "copy75.jpg"
    Image.open(fake_png).convert("RGB").save(p, "JPEG", quality=75)
    return p


def report(outcome: str, headline: str) -> dict:
    return {
        "file": "x",
        "verdict": {"outcome": outcome, "headline": headline, "message": "m"},
        "signals": [],
    }


NONE = report("no-provenance", "No provenance found")


def no_real_word(c):
    for text in [*c.observations, c.message]:
        assert not REAL_WORD.search(text), text


def test_labelled_fake_vs_camera_photo(fake_png, camera_photo):
    c = compare_images(fake_png, camera_photo)
    # provenance: the verifier's verdicts, and they differ
    assert c.a.report is not None and c.b.report is not None, c.notes
    assert c.a.verdict["outcome"] == "labelled-ai", c.a.verdict
    assert c.b.verdict["outcome"] == "no-provenance", c.b.verdict
    # pixels: different pictures by every hash
    assert c.hashes["phash"]["distance"] >= DIFFERENT_MIN_BITS
    assert c.hashes["dhash"]["distance"] >= DIFFERENT_MIN_BITS
    assert c.hash_reading == "different"
    # 1:1 against 4:3: no SSIM, and the reason is given
    assert c.ssim is None and c.heatmap is None
    assert "different shapes" in c.ssim_note and "256x256" in c.ssim_note
    # spectra exist for both, as images
    for s in c.sides:
        assert s.spectrum.mode == "RGB" and min(s.spectrum.size) >= 64
        assert np.asarray(s.spectrum).std() > 10
        assert s.spectrum_stats["analysable"] is True
        assert set(s.spectrum_stats) == {"high_frequency_share", "periodic_peaks", "analysable"}
    # words: B is "no provenance", never "real"; the message says why eyes cannot tell
    assert any("does not make it a photograph" in o for o in c.observations)
    assert "Only A says it was generated" in c.message and "proves nothing" in c.message
    assert "your eyes" in c.message
    no_real_word(c)
    json.dumps(c.to_dict())  # JSON-ready


def test_jpeg75_copy_is_the_same_picture(fake_png, jpeg75):
    c = compare_images(fake_png, jpeg75, reports=(None, NONE))
    assert c.hashes["phash"]["distance"] <= SAME_MAX_BITS
    assert c.hash_reading == "same"
    assert c.ssim is not None and c.ssim > 0.85
    assert c.heatmap is not None and c.heatmap.size == c.ssim_size == (256, 256)
    assert c.diff_map.shape == (256, 256)
    assert "not verified" in c.message.lower() or "could not be verified" in c.message
    no_real_word(c)


def test_heat_map_points_at_a_one_block_edit(fake_png, tmp_path):
    im = Image.open(fake_png).convert("RGB")
    edited = im.copy()
    x0, y0, x1, y1 = BLOCK
    mean = np.asarray(im.crop(BLOCK)).mean(axis=(0, 1))
    edited.paste(tuple(int(255 - v) for v in mean), BLOCK)  # the inverse colour, 8x8 pixels
    path = tmp_path / "edited.png"
    edited.save(path)
    c = compare_images(fake_png, path, reports=(NONE, NONE))
    assert c.hash_reading == "same" and c.ssim > 0.95
    d = c.diff_map
    iy, ix = np.unravel_index(np.argmax(d), d.shape)
    assert x0 - 6 <= ix < x1 + 6 and y0 - 6 <= iy < y1 + 6, (ix, iy)
    hs = c.hotspot
    assert abs(hs["x"] * 256 - (x0 + x1) / 2) < 10 and abs(hs["y"] * 256 - (y0 + y1) / 2) < 10
    # the heat map image itself is bright there and dark elsewhere
    heat = np.asarray(c.heatmap.convert("L"), dtype=float)
    inside = heat[y0:y1, x0:x1].mean()
    outside = np.delete(heat, np.s_[y0 - 12 : y1 + 12], axis=0).mean()
    assert inside > 150 and outside < 40, (inside, outside)
    assert any("concentrated in one place" in o and "bottom left" in o for o in c.observations)
    assert "Neither image says it was generated" in c.message


def test_flat_and_tiny_images_say_why(tmp_path):
    flat, tiny = tmp_path / "flat.png", tmp_path / "tiny.png"
    Image.new("RGB", (300, 300), (200, 30, 30)).save(flat)
    Image.new("RGB", (8, 8), (10, 200, 30)).save(tiny)
    c = compare_images(flat, tiny, reports=(NONE, NONE))
    assert c.ssim is None and "smaller than 16 pixels" in c.ssim_note
    for s in c.sides:  # no spectral claims about a picture with no texture
        assert s.spectrum_stats == {
            "high_frequency_share": 0.0,
            "periodic_peaks": 0,
            "analysable": False,
        }
    assert not any("spectrum" in o for o in c.observations)
    assert any(o.startswith("Neither image has an AI label") for o in c.observations)
    no_real_word(c)


def test_ssim_basics():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (64, 80)).astype(np.float64)
    assert ssim(img, img) == pytest.approx(1.0)
    noisy = np.clip(img + rng.normal(0, 25, img.shape), 0, 255)
    other = rng.integers(0, 256, (64, 80)).astype(np.float64)
    s_noisy, s_other = ssim(img, noisy), ssim(img, other)
    assert s_noisy == pytest.approx(ssim(noisy, img))  # symmetric
    assert 0.3 < s_noisy < 0.99 and abs(s_other) < 0.1


def test_verdict_kinds():
    for outcome in ("labelled-ai", "no-provenance", "tampered", "recovered", "unreadable"):
        assert verdict_kind(outcome) == outcome
    assert verdict_kind("") == "unknown"
    assert verdict_kind("no_provenance") == "no-provenance"


def test_cli_summary_json_and_outputs(fake_png, jpeg75, tmp_path):
    res = invoke("compare", fake_png, jpeg75)
    assert res.exit_code == 0, res.output
    assert "Do not trust your eyes" in res.output and "pHash" in res.output
    assert "labelled-ai" in res.output
    html, png = tmp_path / "r.html", tmp_path / "p.png"
    res = invoke("compare", fake_png, jpeg75, "--json", "--html", html, "--png", png)
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["hashes"]["phash"]["distance"] <= SAME_MAX_BITS and d["ssim"] > 0.85
    assert d["a"]["verdict"]["outcome"] == "labelled-ai"
    assert d["written"] == {"html": str(html), "png": str(png)}
    assert html.stat().st_size > 10_000 and Image.open(png).size == (1920, 1080)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png", "r.html"]  # no temp files


@pytest.mark.parametrize("content", [b"", b"hello, not an image\n", b"\x89PNG\r\n\x1a\n\0\0"])
def test_cli_bad_image_is_one_line_exit_2(fake_png, tmp_path, content):
    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    res = invoke("compare", fake_png, bad)
    assert res.exit_code == 2, res.output
    line = res.stderr.strip()
    assert "\n" not in line and "Traceback" not in line and str(bad) in line, line
    res = invoke("compare", tmp_path / "missing.jpg", fake_png)
    assert res.exit_code == 2 and "missing.jpg" in res.stderr


def test_cli_does_not_import_torch(fake_png, jpeg75):
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from fakestudio.cli import cli\n"
        f"r = CliRunner().invoke(cli, ['compare', {str(fake_png)!r}, {str(jpeg75)!r}, '--json'])\n"
        "assert r.exit_code == 0, r.output\n"
        "bad = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_cli_trust_anchors(fixtures_dir, tmp_path):
    c2pa = fixtures_dir / "c2pa"
    if not (c2pa / "C.jpg").is_file():
        pytest.skip(f"C2PA fixtures not found in {c2pa}")
    args = ("compare", c2pa / "C.jpg", c2pa / "XCA.jpg", "--json")
    plain = json.loads(invoke(*args).stdout)
    assert plain["a"]["report"]["c2pa"]["state"] == "valid-untrusted"
    res = invoke(*args, "--trust-anchors", c2pa / "test_cert_root_bundle.pem")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["a"]["report"]["c2pa"]["state"] == "trusted"
    assert d["b"]["verdict"]["outcome"] == "tampered"
    assert "changed after signing" in d["message"]
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    res = invoke(*args, "--trust-anchors", junk)
    assert res.exit_code == 2 and "junk.pem" in res.stderr
