"""HTML reports (verify, compare, audit) and the poster PNG: self-contained, honest, visible."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from markupsafe import escape
from PIL import Image

from detectors.compare import compare_images
from detectors.report import html
from detectors.verify import verify_image
from fakestudio.cli import cli

CHROMIUM = shutil.which("chromium")
PAGE_BG = (246, 246, 248)  # --paper in base.html.j2
URL = re.compile(r"(?i)\b(?:https?|ftp)://")


class _Refs(HTMLParser):
    """Every tag and every attribute value that could make a browser load something."""

    def __init__(self):
        super().__init__()
        self.tags: set[str] = set()
        self.refs: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "action", "poster", "data", "background"):
                self.refs.append(value or "")
            if name == "style" and value and "url(" in value:
                self.refs.append(value)


@pytest.fixture(scope="module")
def fake_png(tiny_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("html-gen")
    res = CliRunner().invoke(
        cli,
        ["generate", "portrait of ben0a", "--out", str(out), "--seed", "9", "--steps", "2"],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    (png,) = out.glob("*.png")
    return png


@pytest.fixture(scope="module")
def comparison(fake_png, camera_photo):
    return compare_images(fake_png, camera_photo)


def assert_self_contained(page: str, images: bool = True) -> None:
    assert not URL.search(page), URL.search(page).group(0)
    parser = _Refs()
    parser.feed(page)
    assert parser.refs or not images, "no image at all"
    for ref in parser.refs:
        assert ref.startswith(("data:image/", "#")), ref[:100]
    assert not parser.tags & {"script", "link", "iframe", "object", "embed", "base"}
    style = page[page.index("<style>") : page.index("</style>")]
    assert "url(" not in style and "@import" not in style


def assert_ends_with_trust_section(page: str, message: str) -> None:
    i = page.index('id="do-not-trust-your-eyes"')
    assert "<section" not in page[i:]  # the last section of the page
    assert "Do not trust your eyes" in page[i:]
    assert str(escape(message)) in page[i:]


def test_compare_page(comparison, tmp_path):
    c = comparison
    path = html.write_compare(c, tmp_path / "compare.html")
    page = path.read_text()
    assert_self_contained(page)
    for s in c.sides:
        assert str(escape(s.verdict["headline"])) in page
        assert s.name in page
    assert c.a.verdict["outcome"] != c.b.verdict["outcome"]
    assert "pHash" in page and str(c.hashes["phash"]["distance"]) in page
    assert "different shapes" in page  # why there is no SSIM here
    assert page.count('src="data:image/') == 4  # two images, two spectra
    assert_ends_with_trust_section(page, c.message)
    assert list(tmp_path.iterdir()) == [path]  # written atomically, no temp file left


def test_compare_page_with_heat_map(fake_png, tmp_path):
    copy = tmp_path / "copy.jpg"
    Image.open(fake_png).convert("RGB").save(copy, quality=75)
    c = compare_images(fake_png, copy)
    page = html.render_compare(c)
    assert_self_contained(page)
    assert f"SSIM {c.ssim:.3f}" in page
    assert page.count('src="data:image/') == 5  # + the heat map
    assert "linear-gradient" in page  # its legend


def test_verify_page(fake_png, camera_photo, tmp_path):
    for path in (fake_png, camera_photo):
        rep = verify_image(path).to_dict()
        page = html.write_verify(rep, tmp_path / f"{path.stem}.html").read_text()
        assert_self_contained(page)
        assert str(escape(rep["verdict"]["headline"])) in page
        assert 'src="data:image/' in page  # the image itself
        for section in ("c2pa", "watermarks", "metadata"):
            assert f'id="{section}"' in page
        assert_ends_with_trust_section(page, rep["verdict"]["message"])
    # the labelled image's page shows its watermark payload and signer
    rep = verify_image(fake_png).to_dict()
    page = html.render_verify(rep)
    payload = next(w["payload"] for w in rep["watermarks"] if w["found"])
    assert payload in page and "trainedAlgorithmicMedia" in page


def test_hostile_report_text_is_escaped_and_not_linked():
    rep = {
        "file": "/nowhere/x.png",
        "verdict": {
            "outcome": "ai-metadata",
            "headline": "<script>alert(1)</script> claims",
            "message": "",
        },
        "signals": [
            {
                "source": "metadata",
                "finding": "x",
                "confidence": 0.3,
                "details": {"img": '<img src="https://evil.example/p.png">'},
            }
        ],
        "c2pa": {"state": "remote-not-fetched", "remote_url": "https://evil.example/m.c2pa"},
        "metadata": {"claims": [{"tool": "ComfyUI", "summary": "url(https://x.example/a)"}]},
    }
    page = html.render_verify(rep)
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert_self_contained(page, images=False)
    assert "No preview" in page  # the file does not exist: said, not crashed
    assert "evil.example/m.c2pa" in page  # shown as text
    assert "Do not trust your eyes" in page  # added when the verdict's message lacks it


def test_audit_page(fake_png, camera_photo):
    reps = [verify_image(p).to_dict(full=False) for p in (fake_png, camera_photo, camera_photo)]
    reps.append(
        {
            "file": "gone.png",
            "verdict": {"outcome": "unreadable", "headline": "Could not analyse"},
            "signals": [],
        }
    )
    page = html.render_audit(reps, title="Audit of out/")
    assert_self_contained(page, images=False)
    assert "Audit of out/" in page and "4 files checked" in page
    assert "No provenance found" in page and "Labelled AI-generated" in page
    assert "2 of 4 files say nothing about being generated" in page
    assert_ends_with_trust_section(page, html._audit_trust_message(_counts(reps), 4))


def _counts(reps):
    from collections import Counter

    from detectors.compare import verdict_of

    return Counter(verdict_of(r)["kind"] for r in reps)


def screenshot(page: Path, png: Path, size: tuple[int, int] = (1280, 2000)) -> np.ndarray:
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--screenshot={png}",
            f"--window-size={size[0]},{size[1]}",
            page.resolve().as_uri(),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert png.is_file(), out.stderr[-2000:]
    return np.asarray(Image.open(png).convert("RGB"))


@pytest.mark.skipif(CHROMIUM is None, reason="Debian `chromium` is not installed")
def test_pages_render_in_headless_chromium(comparison, fake_png, tmp_path):
    pages = {
        "compare": html.write_compare(comparison, tmp_path / "compare.html"),
        "verify": html.write_verify(verify_image(fake_png).to_dict(), tmp_path / "verify.html"),
    }
    for name, page in pages.items():
        shot = screenshot(page, tmp_path / f"{name}.png")
        assert shot.shape[:2] == (2000, 1280), shot.shape
        assert shot.std() > 30, name  # not blank
        colours = {tuple(c) for c in (shot[::4, ::4] // 16).reshape(-1, 3)}
        assert len(colours) > 50, (name, len(colours))
        # the image area: the upper half holds many pixels unlike the page and white
        upper = shot[: shot.shape[0] // 2].astype(int)
        far = np.abs(upper - np.array(PAGE_BG)).sum(axis=2) > 60
        far &= np.abs(upper - 255).sum(axis=2) > 60
        assert far.mean() > 0.15, (name, far.mean())
        # and the picture itself (not only dark frames): a varied block in the upper left
        block = shot[150:500, 60:600].astype(float)
        assert block.std() > 25, (name, block.std())


def test_poster_png(comparison, tmp_path):
    path = tmp_path / "poster.png"
    layout = html.poster_png(comparison, path)
    im = Image.open(path)
    assert im.size == (1920, 1080) and im.format == "PNG"
    arr = np.asarray(im.convert("RGB")).astype(int)
    assert arr.std() > 30
    assert len({tuple(c) for c in (arr[::6, ::6] // 16).reshape(-1, 3)}) > 50
    bg = np.array(layout["background"])
    assert layout["boxes"]["a"][2] <= layout["boxes"]["b"][0]  # side by side
    for x0, y0, x1, y1 in (layout["boxes"]["a"], layout["boxes"]["b"]):
        assert (x1 - x0) * (y1 - y0) > 200_000
        region = arr[y0:y1, x0:x1]
        assert np.abs(region - bg).sum(axis=2).mean() > 60  # the image, not the background
        assert region.std() > 15
    # the message band at the bottom: the warning yellow is there
    band = arr[900:1080]
    assert (np.abs(band - np.array(html._BAND_BG)).sum(axis=2) < 10).mean() > 0.5
    assert list(tmp_path.iterdir()) == [path]
    json.dumps({k: v for k, v in layout.items()})  # plain data
