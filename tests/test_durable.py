"""The durable watermark: read blind (no ledger) after the edits a picture meets in the wild,
never read where it is not, and cheap enough to run on every image."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from bench import edits
from bench.watermark_robustness import synthetic
from detectors.watermarks import detect_all, durable, ours, psnr

PHOTOS = ["real/DSCN0010.jpg", "real/canon-ixus.jpg", "real/nikon-e950.jpg", "c2pa/CA.jpg"]


def payload_for(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:10]


def square512(path) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        s = min(w, h)
        box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
        return np.asarray(im.crop(box).resize((512, 512), Image.LANCZOS))


@pytest.fixture(scope="module")
def marked(fixtures_dir):
    """Four camera photos at 512 px, each with its own identifier."""
    out = []
    for name in PHOTOS:
        a = square512(fixtures_dir / name)
        out.append((name, a, durable.embed(a, payload_for(name))))
    return out


# One or two edits of every class the issue lists; each must give the exact identifier on at
# least 3 of the 4 photos (deterministic: fixed pictures, payloads and edits).
EDIT_CLASSES = {
    "compression": ["jpeg50", "webp80"],
    "resize": ["resize0.5+jpeg85", "resize0.75+jpeg85", "longest1080+jpeg85", "screenshot"],
    "crop": ["crop80", "window60", "crop80+resize_back"],
    "colour": ["brightness-20", "contrast+20", "gamma0.8"],
    "filter": ["blur1", "noise5%"],
    "rotation": ["rotate+2", "rotate-5"],
    "flip": ["hflip"],
    "chain": ["crop90+resize0.75+jpeg75"],
}


@pytest.mark.parametrize("klass", list(EDIT_CLASSES))
def test_identifier_survives_each_edit_class(marked, klass):
    for edit in EDIT_CLASSES[klass]:
        got = [durable.decode(edits.EDITS[edit](m)).payload for _, _, m in marked]
        want = [payload_for(name) for name, _, _ in marked]
        hits = sum(g == w for g, w in zip(got, want, strict=True))
        assert hits >= 3, f"{edit}: {hits}/4 identifiers read blind ({got})"
        # a wrong identifier is never reported
        assert all(g in (None, w) for g, w in zip(got, want, strict=True))


def test_quality_and_only_luma_changes(marked):
    for _, a, m in marked:
        assert psnr(a, m) >= 40.0
        d = m.astype(np.int16) - a
        # R, G and B move together (luma only) except where a channel saturates
        inside = (a > 16).all(axis=2) & (a < 239).all(axis=2)
        assert np.abs(d[..., 0] - d[..., 1])[inside].max() <= 1
        assert np.abs(d[..., 1] - d[..., 2])[inside].max() <= 1


def test_both_marks_coexist(marked):
    """The first mark lives in chroma, the durable one in luma: each reads through the other."""
    _, a, _ = marked[0]
    both = durable.embed(ours.embed(a, "c0ffee1234"), "c0ffee1234")
    assert ours.decode(both).payload == "c0ffee1234"
    assert durable.decode(both).payload == "c0ffee1234"
    cropped = edits.EDITS["crop80+resize_back"](both)
    assert not ours.decode(cropped).found  # the fixed grid is gone...
    assert durable.decode(cropped).payload == "c0ffee1234"  # ...the durable mark is not


def test_the_tiling_alone_gives_the_period(marked):
    """The autocorrelation of a resized or rotated copy finds its period vector to 0.5% (the
    polish takes it from there) with no help from the template, on most photos. (PIL turns
    a picture counter-clockwise: its grid turns by -5 degrees in array coordinates.)"""
    for edit, period, turn in (("resize0.75+jpeg85", 48.0, 0.0), ("rotate+5", 64.0, -5.0)):
        hits = []
        for _, _, m in marked:
            y = durable._luma(edits.EDITS[edit](m))
            errors = []
            for lat in durable._autocorr_lattices(durable._residual(y)):
                size = float(np.sqrt(abs(np.linalg.det(lat))))
                angle = np.degrees(np.arctan2(lat[1, 0], lat[0, 0]))
                # the angle of a square lattice is known up to quarter turns
                angle_err = abs((angle - turn + 45.0) % 90.0 - 45.0)
                errors.append((abs(size / period - 1.0), angle_err))
            hits.append(any(e < 0.005 and a < 0.3 for e, a in errors))
        assert sum(hits) >= 3, (edit, dict(zip(PHOTOS, hits, strict=True)))


HALVED = PHOTOS + [
    "real/landscape_6.jpg",
    "real/image01088.jpg",
    "real/corrupted.jpg",
    "generated/lora_lora.png",
    "generated/flux_flux_kontext_example_comic.webp",
    "generated/sdxl_sdxl_simple_example.png",
    "generated/hypernetworks_hypernetwork_example_output.png",
]


def test_halving_is_read_through_the_whitened_fold(fixtures_dir):
    """A 512 px output halved and saved as JPEG 85 keeps the mark in one-pixel chips under
    the picture's own texture; the fold is whitened by its own power, the period is guessed
    from the picture's size (an eighth of the short side), and format 2's code reads what
    format 1's repetition could not. 11 fixtures x 3 identifiers: 33 of 33 read (format 1:
    26; before the whitening 21)."""
    hits = {1: 0, 2: 0}
    for name in HALVED:
        a = square512(fixtures_dir / name)
        for salt in ("", "x", "y"):
            want = payload_for(name + salt)
            for fmt in (1, 2):
                marked = durable.embed(a, want, fmt)
                got = durable.decode(edits.EDITS["resize0.5+jpeg85"](marked))
                assert got.payload in (None, want)
                hits[fmt] += got.payload == want
                if got.payload:
                    assert got.details["format"] == fmt  # old labels still read, as old
                    assert got.details["alg"] == durable.ALGS[fmt]
    assert hits[2] >= 32, f"{hits[2]} of {3 * len(HALVED)} halved copies identified"
    assert hits[1] >= 22 and hits[2] >= hits[1] + 4, hits


def test_texture_at_a_fraction_of_the_period_does_not_win(fixtures_dir):
    """Stripes repeating at a third and a half of the (enlarged) period put peaks in the
    autocorrelation that a third or a half of the period explains; scored over all the
    lattice points it predicts, the true period still comes first (a photo of blinds or
    bricks lost its mark to this after a crop and resize)."""
    a = square512(fixtures_dir / "real/DSCN0010.jpg").astype(float)
    period = 64 * 1.25  # the tile after crop80+resize_back
    xx = np.arange(512)[None, :, None]
    for k in (2, 3):
        a = a + 3 * np.sign(np.sin(2 * np.pi * xx * k * 1.25 / period))
    m = durable.embed(np.clip(a, 0, 255).astype(np.uint8), "5ab1a77ce5")
    x = edits.EDITS["crop80+resize_back"](m)
    first = durable._autocorr_lattices(durable._residual(durable._luma(x)))[0]
    assert abs(np.sqrt(abs(np.linalg.det(first))) / period - 1) < 0.006
    assert durable.decode(x).payload == "5ab1a77ce5"


def test_a_smooth_picture_fills_its_budget():
    """On a smooth picture the perceptual mask alone would leave the mark far below the PSNR
    budget (and JPEG would erase it): the chips grow, up to FILL_MAX, the template does not."""
    yy, xx = np.mgrid[0:512, 0:512]
    a = np.stack([60 + xx / 8, 90 + yy / 8, 120 + (xx + yy) / 16], axis=2).astype(np.uint8)
    m = durable.embed(a, "00c0ffee11")
    assert durable.PSNR_TARGET - 0.3 <= psnr(a, m) <= durable.PSNR_TARGET + 1.5
    assert durable.decode(edits.EDITS["jpeg50"](m)).payload == "00c0ffee11"


def test_scales_with_the_picture(fixtures_dir):
    """A 1024 px output carries the mark at twice the size, so its halved copy still reads."""
    with Image.open(fixtures_dir / "generated/sdxl_sdxl_simple_example.png") as im:
        a = np.asarray(im.convert("RGB"))
    assert durable.unit(*a.shape[:2]) == 2
    m = durable.embed(a, "0a1b2c3d4e")
    assert durable.decode(edits.EDITS["resize0.5+jpeg85"](m)).payload == "0a1b2c3d4e"
    assert durable.decode(edits.EDITS["rotate+5"](m)).payload == "0a1b2c3d4e"


def test_no_false_positives_on_a_sample(fixtures_dir):
    """Unmarked pictures: synthetic kinds (the bench runs 10,000) and real photos with edits."""
    hits = []
    for i in range(40):
        kind = ["noise", "flat", "gradient", "stripes", "text"][i % 5]
        r = durable.decode(synthetic(kind, i, (256, 384, 512)[i % 3]))
        if r.found:
            hits.append((kind, i, r.details))
    for name in PHOTOS:
        a = square512(fixtures_dir / name)
        for edit in ("none", "jpeg75", "resize0.75+jpeg85", "rotate+2", "hflip"):
            r = durable.decode(edits.EDITS[edit](a))
            if r.found:
                hits.append((name, edit, r.details))
            assert r.details.get("pilot_z") is None or r.details["pilot_z"] < durable.Z_PRESENCE
    assert not hits
    assert durable.false_positive_bound() <= 1e-6


def test_another_identifier_or_no_mark_is_not_confused(marked):
    _, a, _ = marked[1]
    one = durable.embed(a, "1111111111")
    two = durable.embed(a, "2222222222")
    assert durable.decode(one).payload == "1111111111"
    assert durable.decode(two).payload == "2222222222"
    assert not durable.decode(a).found


def test_bad_input_never_raises():
    for a in (
        np.zeros((100, 100, 3), np.uint8),
        np.zeros((1, 1, 3), np.uint8),
        np.zeros((300, 300), np.uint8),
        np.full((300, 300, 4), 255, np.uint8),
        np.zeros((5,), np.uint8),
        np.random.default_rng(0).normal(0, 1, (300, 300, 3)),
    ):
        r = durable.decode(a)
        assert not r.found
    with pytest.raises(ValueError, match="10 hex digits"):
        durable.embed(np.zeros((256, 256, 3), np.uint8), "xyz")
    with pytest.raises(ValueError, match="at least"):
        durable.embed(np.zeros((100, 256, 3), np.uint8), "0123456789")


def test_detect_all_reports_it(marked):
    _, _, m = marked[0]
    results = {r.scheme: r for r in detect_all(edits.EDITS["crop80"](m))}
    assert results["fakestudio-durable"].payload == payload_for(PHOTOS[0])
    assert not results["fakestudio"].found


def test_decoding_needs_neither_torch_nor_diffusers():
    code = (
        "import sys, numpy as np\n"
        "from detectors.watermarks import durable\n"
        "rng = np.random.default_rng(1)\n"
        "a = np.kron(rng.integers(40, 216, (16, 16, 3)), np.ones((32, 32, 1)))\n"
        "a = np.clip(a + rng.normal(0, 6, a.shape), 0, 255).astype(np.uint8)\n"
        "assert durable.decode(durable.embed(a, '0123456789')).payload == '0123456789'\n"
        "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_a_crop_of_a_1024_px_output_is_tried_at_its_own_period(fixtures_dir):
    """An 80% crop of an SDXL-sized output is 819 px: its unit is 1 but its mark's period is
    still 128 px. That period is tried before any search (on a finely textured photo the
    template's peaks are lost and the search alone missed it)."""
    for name in PHOTOS[:2]:
        a = square512(fixtures_dir / name)
        big = np.asarray(Image.fromarray(a).resize((1024, 1024), Image.Resampling.BICUBIC))
        want = payload_for(name + "1024")
        got = durable.decode(edits.EDITS["crop80"](durable.embed(big, want)))
        assert got.payload == want
        assert got.details["period_px"] == 128.0, got.details["attempts"]
