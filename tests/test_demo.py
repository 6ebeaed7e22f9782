"""`fakestudio demo` end to end with small step counts, and its talk page in headless Chromium."""

from __future__ import annotations

import re

import numpy as np
import pytest
from click.testing import CliRunner

from fakestudio.cli import cli
from tests.test_html_report import CHROMIUM, screenshot

FIGURE_BG = np.array([32, 32, 38])  # .figure background in the report CSS
WARN = np.array([250, 204, 21])  # the yellow of the "do not trust your eyes" section


@pytest.fixture(scope="module")
def demo(tmp_path_factory, fs_home):
    out = tmp_path_factory.mktemp("demo")
    res = CliRunner().invoke(
        cli,
        ["demo", "--out", str(out), "--train-steps", "3", "--steps", "2", "--size", "512"],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    return out, res


def test_demo_tells_the_whole_story(demo):
    out, res = demo
    page = out / "talk.html"
    assert res.stdout.strip() == str(page)
    assert sorted(p.name for p in (out / "loras").glob("*.safetensors")) == [
        "ad4x.safetensors",
        "b0bz.safetensors",
    ]
    log = res.stderr
    assert "prepared ad4x" in log and "trained b0bz.safetensors" in log
    assert "verify generated: Labelled AI-generated" in log
    assert "verify re-encoded: AI-generated: provenance recovered" in log
    # metadata stripped, JPEG 85, resized to half: the watermark still ties it to the ledger
    assert "verify re-encoded and resized: AI-generated: provenance recovered" in log
    html = page.read_text()
    assert "Do not trust your eyes" in html and "do not trust your eyes" in html
    assert html.count("data:image/") >= 4  # photo, fake, and the uploaded copies
    assert "http://" not in html and "https://" not in html
    text = re.sub(r"data:image/[^\"']+", "", html).lower().replace("real person", "")
    assert "real" not in text  # the page never calls an image real
    assert (out / "poster.png").is_file()


def test_poster_and_previews_of_the_fake_are_labelled(demo, tmp_path):
    import base64

    from detectors.verify import verify_image

    out, _ = demo
    poster = verify_image(out / "poster.png").to_dict()
    assert poster["verdict"]["outcome"] == "labelled-ai", poster["verdict"]
    assert len(poster["c2pa"]["ingredients"]) == 2  # the photo and the fake
    html = (out / "talk.html").read_text()
    outcomes = []
    for i, data in enumerate(re.findall(r'src="data:image/[a-z]+;base64,([^"]+)"', html)):
        path = tmp_path / f"preview-{i}"
        path.write_bytes(base64.b64decode(data))
        outcomes.append(verify_image(path).verdict.outcome)
    # the fake side by side, as generated, and both uploaded copies; the photo is not labelled
    assert outcomes.count("labelled-ai") == 4, outcomes


@pytest.mark.skipif(CHROMIUM is None, reason="Debian `chromium` is not installed")
def test_talk_page_shows_both_images_and_the_message(demo, tmp_path):
    out, _ = demo
    shot = screenshot(out / "talk.html", tmp_path / "talk.png", size=(1280, 7000))
    frame = np.abs(shot.astype(int) - FIGURE_BG).sum(axis=2) < 12
    rows = np.where(frame[:, :640].sum(1) > 40)[0]
    assert rows.size, "no image frame found"
    top = rows[0]
    left_cols = np.where(frame[top + 5, :640])[0]
    right_cols = np.where(frame[top + 5, 640:])[0] + 640
    assert left_cols.size and right_cols.size, "photo and fake should stand side by side"
    for cols in (left_cols, right_cols):
        inside = shot[top + 20 : top + 300, cols.min() + 40 : cols.max() - 40].astype(float)
        assert inside.std() > 20  # a picture, not an empty frame
    yellow = (np.abs(shot.astype(int) - WARN).sum(axis=2) < 40).sum()
    assert yellow > 200  # the closing message's heading
