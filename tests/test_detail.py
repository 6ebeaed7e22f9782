"""The encounter's detail pass (fakestudio/detail.py): each person's square redrawn with their
own LoRA, nothing outside the squares touched, the pass recorded in the manifest."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from detectors.c2pa import read_c2pa
from fakestudio.detail import person_squares
from fakestudio.encounter import region_masks
from tests.test_encounter import SCENE, invoke, people  # noqa: F401  (people: a fixture)
from tests.test_hostile_cli import one_line_error


def test_each_person_gets_a_square_from_the_top_of_their_region():
    masks = region_masks("left-right", 256, 256, 0.04, 2, 8)
    (a, b) = person_squares(masks, 256, 256)
    assert (a.x0, a.side, b.x0, b.side) == (0, 128, 128, 128)
    assert 16 <= a.y0 <= 24 and a.y0 == b.y0  # the regions start under the 8% background strip
    tall = region_masks("0.1,0.5,0.3,1;0.6,0,1,0.2", 256, 256, 0.0, 2, 8)
    (c, d) = person_squares(tall, 256, 256)
    assert (c.x0, c.y0, c.side) == (int(0.1 * 256) // 8 * 8, 128, 56)
    assert d.side == 104 and d.y0 == 0 and d.x0 + d.side <= 256  # kept inside the picture
    # a base that knows where its heads are (world: squares from 0.16 of the height), never
    # above a region that starts lower
    (e, f) = person_squares(masks, 256, 256, top=0.16)
    assert (e.y0, f.y0, e.side) == (41, 41, 128)
    (g, h) = person_squares(tall, 256, 256, top=0.16)
    assert (g.y0, h.y0) == (128, 41)


def _encounter(tmp_path, people, detail):  # noqa: F811
    out = tmp_path / f"detail-{detail}"
    res = invoke("encounter", "--person", people[0], "--person", people[1], "--scene", SCENE,
                 "--out", out, "--steps", 4, "--seed", 5, "--detail", detail, "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    (o,) = json.loads(res.stdout)
    return o["path"]


def test_the_detail_pass_redraws_the_squares_and_nothing_else(tmp_path, people):  # noqa: F811
    plain = _encounter(tmp_path, people, 0)
    detailed = _encounter(tmp_path, people, 0.5)
    gen = read_c2pa(detailed).generation
    assert gen["composition"]["detail"]["strength"] == 0.5
    squares = gen["composition"]["detail"]["squares"]
    assert len(squares) == 2 and "detail" not in read_c2pa(plain).generation["composition"]
    a = np.asarray(Image.open(plain).convert("RGB"), np.float32)
    b = np.asarray(Image.open(detailed).convert("RGB"), np.float32)
    inside = np.zeros(a.shape[:2], bool)
    for x0, y0, x1, y1 in squares:
        inside[y0:y1, x0:x1] = True
    diff = np.abs(a - b).mean(-1)
    # outside the squares only the two invisible watermarks differ (a few levels a pixel)
    assert (diff[~inside] > 16).mean() < 0.01
    assert (diff[inside] > 16).mean() > 0.3


def test_a_bad_strength_is_one_line(tmp_path, people):  # noqa: F811
    res = invoke("encounter", "--person", people[0], "--person", people[1], "--scene", SCENE,
                 "--out", tmp_path, "--detail", 1.5)  # fmt: skip
    assert res.exit_code == 2
    one_line_error(res, "--detail 1.5", "from 0 to below 1")
