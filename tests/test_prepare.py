"""`fakestudio prepare`: photos -> dataset.json + images/NNNN.png, and `load_dataset`."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from fakestudio import dataset as dsmod
from fakestudio.cli import cli
from fakestudio.dataset import (
    FORMAT,
    buckets_for,
    choose_bucket,
    compute_fingerprint,
    crop_box,
    load_dataset,
    nearest_bucket,
    prepare_dataset,
)
from fakestudio.dataset import prepare as prepmod
from fakestudio.errors import UserError

CONSENT = "I am the person in these photos"


# -- helpers ------------------------------------------------------------------------------------


def pattern(seed: int, size=(600, 450)) -> Image.Image:
    """A smooth random picture: distinct low frequencies, so distinct perceptual hashes."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), "RGB")
    return small.resize(size, Image.Resampling.BICUBIC)


def save(im: Image.Image, path: Path, fmt: str | None = None, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, fmt, **kw)
    return path


def photo_set(folder: Path, n: int = 3, size=(600, 450), start: int = 0) -> list[Path]:
    return [save(pattern(start + i, size), folder / f"p{i}.jpg", quality=92) for i in range(n)]


def run(*args):
    return CliRunner().invoke(cli, ["prepare", *[str(a) for a in args]], catch_exceptions=False)


def prep(photos: Path, out: Path, **kw):
    kw.setdefault("token", "ben0a")
    kw.setdefault("class_word", "man")
    kw.setdefault("consent", CONSENT)
    kw.setdefault("face_detector", None)
    return prepare_dataset(photos, out, **kw)


def one_line_error(res, *needles):
    assert res.exit_code == 2, res.output
    line = res.stderr.strip()
    assert "\n" not in line and "Traceback" not in line, line
    for n in needles:
        assert n in line, line


# -- buckets and crops --------------------------------------------------------------------------


def test_buckets():
    assert buckets_for(512) == [(384, 640), (448, 576), (512, 512), (576, 448), (640, 384)]
    assert buckets_for(256) == [(192, 320), (256, 256), (320, 192)]
    for w, h in buckets_for(1024):
        assert w % 64 == 0 and h % 64 == 0 and w * h <= 1024 * 1024 and max(w / h, h / w) <= 2
    b = buckets_for(512)
    assert nearest_bucket(1000, 1000, b) == (512, 512)
    assert nearest_bucket(4000, 3000, b) == (576, 448)  # 4:3 photo
    assert nearest_bucket(3000, 4000, b) == (448, 576)
    assert nearest_bucket(1920, 1080, b) == (640, 384)  # 16:9
    assert nearest_bucket(1000, 3000, b) == (384, 640)  # beyond 2:1 clamps to the tallest
    # a face picks the bucket of its head-and-shoulders box, not of the whole photo
    assert choose_bucket(1600, 1000, b, face=(400, 300, 100, 100)) == (448, 576)
    assert choose_bucket(1600, 1000, b, face=None) == (640, 384)


def test_crop_box_geometry():
    # no face: largest centred region of the bucket's aspect
    assert crop_box(800, 600, (512, 512)) == (100.0, 0.0, 700.0, 600.0)
    # a face near the left edge: the crop keeps the face, stays inside, has the bucket's aspect
    face = (30, 200, 200, 200)
    left, top, right, bottom = crop_box(1600, 1000, (448, 576), face)
    assert left == 0 and 0 <= top and right <= 1600 and bottom <= 1000
    assert abs((right - left) / (bottom - top) - 448 / 576) < 1e-6
    assert left <= face[0] and face[0] + face[2] <= right
    assert top <= face[1] - 0.3 * face[2] and face[1] + face[3] <= bottom
    # head and shoulders: the crop is ~3.2 face heights tall, not the whole photo
    assert 3.2 * 200 <= bottom - top < 3.5 * 200
    # a face filling the photo: the crop is the photo's largest region, the head not cut off
    left, top, right, bottom = crop_box(600, 800, (448, 576), (100, 50, 400, 400))
    assert top == 0 and right - left == 600 and bottom <= 800
    # a small face in a small photo: never smaller than the bucket (no needless upscaling)
    left, top, right, bottom = crop_box(2000, 2000, (448, 576), (900, 900, 40, 40))
    assert right - left >= 448 and bottom - top >= 576


# -- reading photos -----------------------------------------------------------------------------


def test_exif_rotation_comes_out_upright(tmp_path, fixtures_dir):
    src = fixtures_dir / "real" / "landscape_6.jpg"
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(src, photos / "landscape_6.jpg")
    res = prep(photos, tmp_path / "ds", person=False, consent=None, resolution=256, min_side=64)
    [img] = res.dataset.images
    stored = Image.open(src)
    assert stored.size == (450, 600)  # stored sideways, EXIF orientation 6
    assert img.bucket == (320, 192)  # upright: landscape
    out = np.asarray(Image.open(tmp_path / "ds" / img.file).convert("L"), dtype=float)
    upright = Image.open(src)
    from PIL import ImageOps

    upright = ImageOps.exif_transpose(upright).convert("L")
    box = crop_box(upright.width, upright.height, img.bucket)
    want = np.asarray(upright.resize(img.bucket, box=box), dtype=float)
    wrong = np.asarray(upright.rotate(180).resize(img.bucket, box=box), dtype=float)  # upside down
    # its ICC profile (Apple Generic RGB) is converted to sRGB, so compare shapes, not levels
    assert np.corrcoef(out.ravel(), want.ravel())[0, 1] > 0.97
    assert np.corrcoef(out.ravel(), wrong.ravel())[0, 1] < 0.5


def test_mode_conversions(tmp_path):
    photos = tmp_path / "photos"
    base = pattern(1)
    save(base.convert("CMYK"), photos / "cmyk.jpg", quality=95)
    ramp = (np.tile(np.linspace(0, 65535, 600), (450, 1))).astype(np.uint16)
    save(Image.fromarray(ramp), photos / "sixteen.png")  # I;16
    assert Image.open(photos / "sixteen.png").mode == "I;16"
    rgba = pattern(2).convert("RGBA")
    a = np.asarray(rgba).copy()
    a[:, :300, 3] = 0  # left half fully transparent
    save(Image.fromarray(a, "RGBA"), photos / "alpha.png")
    save(pattern(3).convert("P", palette=Image.Palette.ADAPTIVE), photos / "palette.png")
    save(pattern(4).convert("LA"), photos / "graya.png")
    save(pattern(5), photos / "photo.webp", quality=90)
    res = prep(photos, tmp_path / "ds", dedupe_bits=0)
    by_src = {p.source: p for p in res.photos}
    assert all(p.status == "kept" for p in res.photos), [(p.source, p.reason) for p in res.photos]
    for p in res.photos:
        im = Image.open(tmp_path / "ds" / p.file)
        assert im.mode == "RGB" and im.size == p.bucket
    alpha = np.asarray(Image.open(tmp_path / "ds" / by_src["alpha.png"].file))
    assert alpha[:, :100].min() >= 250  # transparent composited on white
    sixteen = np.asarray(Image.open(tmp_path / "ds" / by_src["sixteen.png"].file).convert("L"))
    row = sixteen[sixteen.shape[0] // 2].astype(int)
    assert row[0] < 40 and row[-1] > 215 and np.all(np.diff(row) >= -2)  # scaled, not clipped
    cmyk = np.asarray(Image.open(tmp_path / "ds" / by_src["cmyk.jpg"].file), dtype=float)
    ref = np.asarray(
        base.resize(by_src["cmyk.jpg"].bucket, box=crop_box(600, 450, by_src["cmyk.jpg"].bucket)),
        dtype=float,
    )
    assert np.abs(cmyk - ref).mean() < 12


def test_recursive_hidden_and_other_files(tmp_path):
    photos = tmp_path / "photos"
    photo_set(photos, 2)
    save(pattern(7), photos / "trip" / "day1" / "x.png")
    save(pattern(8), photos / ".hidden" / "y.png")
    (photos / "._p0.jpg").write_bytes(b"\0\5\26\7AppleDouble")
    (photos / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (photos / "notes.docx").write_bytes(b"PK\3\4")
    res = prep(photos, tmp_path / "ds")
    assert [p.source for p in res.photos] == ["p0.jpg", "p1.jpg", "trip/day1/x.png"]
    assert [i.file for i in res.dataset.images] == [
        "images/0001.png",
        "images/0002.png",
        "images/0003.png",
    ]


# -- captions and the token ---------------------------------------------------------------------


def test_captions_kept_written_and_token_inserted(tmp_path):
    photos = tmp_path / "photos"
    photo_set(photos, 3)
    (photos / "p0.txt").write_text("portrait of BEN0A man\nsmiling, outdoors\n")
    (photos / "p1.txt").write_text("a man in a red jacket")
    res = prep(photos, tmp_path / "ds")
    caps = [i.caption for i in res.dataset.images]
    assert caps == [
        "portrait of BEN0A man smiling, outdoors",  # kept: the token matches case-insensitively
        "ben0a man, a man in a red jacket",  # inserted
        "photo of ben0a man",  # default
    ]
    assert [p.caption_from for p in res.photos] == ["txt", "txt", "default"]
    assert [p.token_inserted for p in res.photos] == [False, True, False]
    assert any("inserted" in w and "0002" in w for w in res.dataset.warnings)
    for img in res.dataset.images:  # kohya-style caption files beside the images
        side = (tmp_path / "ds" / img.file).with_suffix(".txt")
        assert side.read_text().strip() == img.caption
    res = prep(photos, tmp_path / "ds2", class_word="", person=False, consent=None)
    assert res.dataset.images[2].caption == "photo of ben0a"
    assert res.dataset.images[1].caption == "ben0a, a man in a red jacket"


def test_token_warnings_and_bad_tokens(tmp_path):
    photos = tmp_path / "photos"
    photo_set(photos, 1)
    res = prep(photos, tmp_path / "ds", token="ben0a")
    assert not any("token" in w and "common" in w for w in res.dataset.warnings)
    res = prep(photos, tmp_path / "ds2", token="dog", class_word="dog")
    assert any("common word" in w for w in res.dataset.warnings)
    assert any("equals the class word" in w for w in res.dataset.warnings)
    for bad, why in [("ben 0a", "one word"), ("", "empty"), ("ben(0a)", "prompt syntax")]:
        with pytest.raises(UserError, match=why):
            prep(photos, tmp_path / "ds3", token=bad)
    assert not (tmp_path / "ds3").exists()


def _tokenizer_folder(folder: Path) -> Path:
    """A small CLIP-format tokenizer whose vocabulary knows the whole word 'zorp'."""
    from transformers import CLIPTokenizer

    from fakestudio.tiny import byte_vocab

    vocab, _ = byte_vocab()
    merges = [("z", "o"), ("zo", "r"), ("zor", "p</w>")]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    tok = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
    tok.save_pretrained(str(folder))
    return folder


def test_whole_token_warning_uses_the_tokenizer(tmp_path):
    from fakestudio.dataset import is_whole_token, load_check_tokenizer

    photos = tmp_path / "photos"
    photo_set(photos, 1)
    tiny, name, _ = load_check_tokenizer("tiny")
    assert name == "tiny" and not is_whole_token(tiny, "zorp")  # byte-level: no whole words
    folder = _tokenizer_folder(tmp_path / "tok")
    tok, _, _ = load_check_tokenizer("tiny", tokenizer=folder)
    assert is_whole_token(tok, "zorp") and not is_whole_token(tok, "ben0a")
    res = prep(photos, tmp_path / "ds", token="zorp", tokenizer=folder)
    assert any("whole token" in w for w in res.dataset.warnings)
    # a diffusers-style base folder: its tokenizer/ subfolder is used
    base = tmp_path / "base"
    shutil.copytree(folder, base / "tokenizer")
    res = prep(photos, tmp_path / "ds2", token="zorp", base=str(base))
    assert any("whole token" in w for w in res.dataset.warnings)
    with pytest.raises(UserError, match="not found"):
        prep(photos, tmp_path / "ds3", base=str(tmp_path / "nope"))


# -- duplicates and bad files -------------------------------------------------------------------


def test_near_duplicates_removed_and_reported(tmp_path):
    photos = tmp_path / "photos"
    photo_set(photos, 3)
    im = Image.open(photos / "p1.jpg")
    save(im, photos / "p1_copy.jpg", quality=60)  # a re-encode
    save(im.resize((900, 675)), photos / "p1_big.png")  # an upscaled copy: more pixels, kept
    res = prep(photos, tmp_path / "ds")
    srcs = {p.index: p.source for p in res.photos}
    status = {p.source: p for p in res.photos}
    assert status["p1_big.png"].status == "kept"
    assert status["p1.jpg"].status == "duplicate" and status["p1_copy.jpg"].status == "duplicate"
    assert {srcs[d.duplicate_of] for d in res.dataset.duplicates} == {"p1_big.png"}
    assert all(0 <= d.bits <= 6 for d in res.dataset.duplicates)
    assert len(res.dataset.images) == 3
    out = run(
        photos,
        "--token",
        "ben0a",
        "--out",
        tmp_path / "ds2",
        "--consent",
        CONSENT,
        "--crop",
        "center",
    )
    assert out.exit_code == 0, out.output
    assert "duplicate p1.jpg of p1_big.png" in out.output
    # --dedupe-bits 0 keeps the re-encode (its hash moved a little), not byte-identical copies
    shutil.copy(photos / "p0.jpg", photos / "p0_same.jpg")
    res = prep(photos, tmp_path / "ds3", dedupe_bits=0)
    assert {p.source for p in res.photos if p.status == "duplicate"} >= {"p0_same.jpg"}


def test_bad_files_skipped_with_reasons(tmp_path):
    photos = tmp_path / "photos"
    photo_set(photos, 2)
    (photos / "zero.jpg").write_bytes(b"")
    good = (photos / "p0.jpg").read_bytes()
    (photos / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (photos / "notes.jpg").write_text("shopping list: milk, eggs\n")
    (photos / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    save(pattern(9, (200, 150)), photos / "tiny.jpg")
    save(pattern(10), photos / "photo.heic", "PNG")  # a name Pillow cannot trust: still read
    (photos / "real.heic").write_bytes(b"\0\0\0\x18ftypheic" + bytes(64))
    res = prep(photos, tmp_path / "ds")
    why = {p.source: p.reason for p in res.photos if p.status == "skipped"}
    assert why["zero.jpg"].startswith("empty file")
    assert why["truncated.jpg"].startswith("corrupt")
    assert why["notes.jpg"] == "unreadable: a text file, not an image"
    assert why["garbage.png"].startswith(("unreadable", "corrupt"))
    assert why["tiny.jpg"].startswith("too small: 200x150")
    assert "pillow-heif" in why["real.heic"]
    assert len(res.dataset.images) == 3
    assert len(res.dataset.skipped) == 6
    out = run(
        photos,
        "--token",
        "ben0a",
        "--out",
        tmp_path / "ds2",
        "--consent",
        CONSENT,
        "--crop",
        "center",
    )
    assert out.exit_code == 0, out.output
    for name in why:
        assert f"skipped {name}: " in out.output
    # the decompression-bomb guard is a skip too
    res = prep(photos, tmp_path / "ds3", max_pixels=100_000, min_side=10)
    assert all(
        "decompression-bomb" in p.reason
        for p in res.photos
        if p.status == "skipped" and p.source.startswith("p")
    )


def test_no_usable_photos_empty_and_missing(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    out = tmp_path / "ds"
    args = ["--token", "ben0a", "--out", out, "--consent", CONSENT]
    one_line_error(run(photos, *args), "no photos found")
    (photos / "readme.md").write_text("hi")
    one_line_error(run(photos, *args), "no photos found", "1 other files ignored")
    (photos / "a.jpg").write_bytes(b"")
    save(pattern(1, (100, 80)), photos / "b.png")
    one_line_error(run(photos, *args), "no usable photos", "a.jpg: empty file", "b.png: too small")
    one_line_error(run(tmp_path / "nowhere", *args), "nowhere: no such folder")
    one_line_error(run(photos / "b.png", *args), "not a folder")
    assert not out.exists()


# -- consent, privacy, the format ---------------------------------------------------------------


def test_consent_required_for_a_person(tmp_path):
    photos = tmp_path / "photos"
    photo_set(photos, 2)
    out = tmp_path / "ds"
    res = run(photos, "--token", "ben0a", "--class-word", "man", "--out", out)
    one_line_error(res, "--consent is required", "--no-person")
    one_line_error(run(photos, "--token", "ben0a", "--out", out, "--consent", "  "), "--consent")
    assert not out.exists()
    res = run(photos, "--token", "ben0a", "--class-word", "teapot", "--out", out, "--no-person")
    assert res.exit_code == 0, res.output
    ds = load_dataset(out)
    assert ds.person is False and ds.consent is None
    assert json.loads((out / "dataset.json").read_text())["consent"] is None


def test_dataset_json_private_and_loadable(tmp_path, fixtures_dir):
    photos = tmp_path / "Ben Smith private photos"
    photos.mkdir()
    shutil.copy(fixtures_dir / "real" / "DSCN0010.jpg", photos / "IMG_secret_holiday.jpg")  # GPS
    photo_set(photos / "barcelona-2025", 2)
    from datetime import datetime, timezone

    when = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)
    prep(photos, tmp_path / "ds", now=when)
    text = (tmp_path / "ds" / "dataset.json").read_text()
    for leak in (
        "secret",
        "holiday",
        "IMG_",
        "barcelona",
        "Ben Smith",
        str(tmp_path),
        "p0",
        ".jpg",
    ):
        assert leak not in text, leak
    data = json.loads(text)
    assert data["format"] == FORMAT and data["token"] == "ben0a" and data["class_word"] == "man"
    assert data["consent"] == {"statement": CONSENT, "recorded": "2026-11-25T10:00:00+00:00"}
    assert data["created_by"].startswith("fakestudio ")
    assert list(data) == [
        "format", "token", "class_word", "resolution", "person", "consent", "created_by",
        "images", "skipped", "duplicates", "warnings", "fingerprint",
    ]  # fmt: skip
    assert list(data["images"][0]) == [
        "file", "caption", "width", "height", "bucket", "sha256", "source_sha256", "face",
    ]  # fmt: skip
    import hashlib

    src = hashlib.sha256((photos / "IMG_secret_holiday.jpg").read_bytes()).hexdigest()
    assert src in {i["source_sha256"] for i in data["images"]}
    for img in data["images"]:
        raw = (tmp_path / "ds" / img["file"]).read_bytes()
        assert hashlib.sha256(raw).hexdigest() == img["sha256"]
        for marker in (b"eXIf", b"Exif", b"iCCP", b"tEXt", b"iTXt", b"zTXt", b"NIKON", b"GPS"):
            assert marker not in raw, marker
        im = Image.open(io.BytesIO(raw))
        assert not im.getexif() and im.info.get("icc_profile") is None
    ds = load_dataset(tmp_path / "ds")
    assert ds.fingerprint == data["fingerprint"] == compute_fingerprint(ds.images)
    assert ds.consent.statement == CONSENT and ds.resolution == 512 and ds.person
    assert ds.images[0].bucket == tuple(data["images"][0]["bucket"])
    assert load_dataset(tmp_path / "ds" / "dataset.json").token == "ben0a"
    assert sum(ds.buckets().values()) == len(ds.images) == 3


def test_load_dataset_rejects_bad_datasets(tmp_path):
    photos = tmp_path / "photos"
    photo_set(photos, 2)
    good = tmp_path / "good"
    prep(photos, good)
    meta = json.loads((good / "dataset.json").read_text())

    def variant(name, mutate=None, text=None):
        d = tmp_path / name
        shutil.copytree(good, d)
        if text is not None:
            (d / "dataset.json").write_text(text)
        elif mutate is not None:
            m = json.loads(json.dumps(meta))
            mutate(m, d)
            (d / "dataset.json").write_text(json.dumps(m))
        return d

    with pytest.raises(UserError, match="no such dataset folder"):
        load_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no dataset.json"):
        load_dataset(tmp_path / "empty")
    with pytest.raises(UserError, match="not valid JSON"):
        load_dataset(variant("garbled", text='{"format": "fakestudio.dataset/1", '))
    with pytest.raises(UserError, match="does not contain the token"):
        load_dataset(variant("notoken", lambda m, d: m["images"][0].update(caption="a man")))
    with pytest.raises(UserError, match="0002.png is missing"):
        load_dataset(variant("noimage", lambda m, d: (d / "images" / "0002.png").unlink()))
    with pytest.raises(UserError, match="reads 'fakestudio.dataset/1'"):
        load_dataset(variant("newer", lambda m, d: m.update(format="fakestudio.dataset/2")))
    with pytest.raises(UserError, match="not a fakestudio dataset"):
        load_dataset(variant("other", lambda m, d: m.update(format="kohya")))
    with pytest.raises(UserError, match="'resolution'"):
        load_dataset(variant("nores", lambda m, d: m.pop("resolution")))
    with pytest.raises(UserError, match="without a consent"):
        load_dataset(variant("noconsent", lambda m, d: m.update(consent=None)))
    with pytest.raises(UserError, match="inside the dataset"):
        load_dataset(variant("escape", lambda m, d: m["images"][0].update(file="../x.png")))

    def retouch(m, d):
        p = d / "images" / "0001.png"
        Image.open(p).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(p)

    with pytest.raises(UserError, match="changed since it was prepared"):
        load_dataset(variant("retouched", retouch))
    assert load_dataset(variant("retouched2", retouch), verify=False).images
    edited = load_dataset(
        variant("edited", lambda m, d: m["images"][0].update(caption="ben0a man, smiling"))
    )
    assert edited.fingerprint != meta["fingerprint"]
    assert any("fingerprint was recomputed" in w for w in edited.warnings)
    assert any("differs from the caption" in w for w in edited.warnings)


# -- faces --------------------------------------------------------------------------------------


def _face_photo(size=(1600, 1000), at=(300, 300), side=120) -> Image.Image:
    """A grey photo with a red square where the (injected) detector says the face is."""
    im = Image.new("RGB", size, (128, 128, 128))
    im.paste((220, 30, 30), (at[0], at[1], at[0] + side, at[1] + side))
    return im


def test_face_crop_with_an_injected_detector(tmp_path):
    photos = tmp_path / "photos"
    save(_face_photo(), photos / "face.png")
    save(pattern(3, (1600, 1000)).convert("L").convert("RGB"), photos / "noface.png")
    calls = []

    def detector(im):
        calls.append(im.size)
        a = np.asarray(im)
        red = np.argwhere((a[..., 0] > 200) & (a[..., 1] < 60))
        if not len(red):
            return []
        (y0, x0), (y1, x1) = red.min(0), red.max(0)
        return [(int(x0), int(y0), int(x1 - x0 + 1), int(y1 - y0 + 1)), (0, 0, 5, 5)]

    res = prep(photos, tmp_path / "ds", face_detector=detector)
    face, noface = res.dataset.images
    assert calls == [(1600, 1000), (1600, 1000)]
    assert face.face and face.bucket == (448, 576)  # head and shoulders: portrait
    assert not noface.face and noface.bucket == (640, 384)  # centre crop of a 16:10 photo
    a = np.asarray(Image.open(tmp_path / "ds" / face.file))
    red = np.argwhere((a[..., 0] > 180) & (a[..., 1] < 90))
    (y0, x0), (y1, x1) = red.min(0), red.max(0)
    # the face is in the upper-middle of the crop, about a third of its height
    assert 0.3 < (x0 + x1) / 2 / 448 < 0.7
    assert 0.1 < (y0 + y1) / 2 / 576 < 0.45
    assert 0.2 < (y1 - y0) / 576 < 0.45
    # --crop center turns it off
    res = prep(photos, tmp_path / "ds2", face_detector=detector, crop="center")
    assert not any(i.face for i in res.dataset.images) and len(calls) == 2


def test_real_haar_cascade(tmp_path, fixtures_dir):
    """OpenCV's bundled cascade on a real face (a generated marble bust, 512x512) and on
    photos without one."""
    detector, why = dsmod.haar_face_detector()
    if detector is None:
        pytest.skip(f"no haar cascade in this OpenCV: {why}")
    bust = fixtures_dir / "generated" / "hypernetworks_hypernetwork_example_output.png"
    [(x, y, w, h)] = detector(Image.open(bust).convert("RGB"))
    assert 230 < x + w / 2 < 300 and 250 < y + h / 2 < 320 and 150 < w < 260
    for name in ("DSCN0010.jpg", "landscape_6.jpg", "corrupted.jpg"):
        im = dsmod.open_photo((fixtures_dir / "real" / name).read_bytes())
        assert detector(im) == [], name
    assert detector(pattern(24, (800, 600))) == []
    photos = tmp_path / "photos"
    save(Image.open(bust).resize((768, 768)), photos / "bust.png")
    shutil.copy(fixtures_dir / "real" / "DSCN0010.jpg", photos / "street.jpg")
    res = prep(photos, tmp_path / "ds", face_detector="auto")
    assert res.face_detection == "haar"
    bust_img, street = res.dataset.images
    assert bust_img.face and bust_img.bucket == (512, 512)  # head and shoulders fill a square
    assert not street.face and street.bucket == (576, 448)


def test_opencv_without_cascade_is_reported(monkeypatch):
    cv2 = pytest.importorskip("cv2")
    monkeypatch.delattr(cv2, "CascadeClassifier", raising=False)  # as in OpenCV 5
    detector, why = dsmod.haar_face_detector()
    assert detector is None and "no haar cascade" in why and "opencv-python<5" in why


def test_face_detection_unavailable_is_said(tmp_path, monkeypatch):
    photos = tmp_path / "photos"
    photo_set(photos, 1)
    monkeypatch.setattr(prepmod, "haar_face_detector", lambda: (None, "OpenCV 9 has none"))
    res = prep(photos, tmp_path / "ds", face_detector="auto")
    assert res.face_detection == "unavailable: OpenCV 9 has none"
    assert any("face detection unavailable (OpenCV 9 has none)" in w for w in res.dataset.warnings)


# -- atomic output ------------------------------------------------------------------------------


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("error", [KeyboardInterrupt, OSError(28, "No space left on device")])
def test_atomic_nothing_half_written(tmp_path, monkeypatch, error):
    photos = tmp_path / "photos"
    photo_set(photos, 3)
    out = tmp_path / "new" / "deeper" / "ds"
    real_write = prepmod._write
    count = {"n": 0}

    def failing_write(path, data):
        count["n"] += 1
        if count["n"] == 3:
            raise error
        real_write(path, data)

    monkeypatch.setattr(prepmod, "_write", failing_write)
    expect = KeyboardInterrupt if error is KeyboardInterrupt else UserError
    with pytest.raises(expect) as exc:
        prep(photos, out)
    if expect is UserError:
        assert "No space left on device" in str(exc.value)
    assert not (tmp_path / "new").exists()  # the folders it made are gone too
    assert _leftovers(tmp_path) == []


def test_ctrl_c_exits_130_and_leaves_nothing(tmp_path, monkeypatch):
    photos = tmp_path / "photos"
    photo_set(photos, 2)
    monkeypatch.setattr(prepmod, "_write", lambda p, d: (_ for _ in ()).throw(KeyboardInterrupt()))
    res = run(photos, "--token", "ben0a", "--out", tmp_path / "ds", "--consent", CONSENT)
    assert res.exit_code == 130 and "interrupted" in res.stderr
    assert not (tmp_path / "ds").exists() and _leftovers(tmp_path) == []


def test_existing_output_force_and_guards(tmp_path, monkeypatch):
    photos = tmp_path / "photos"
    photo_set(photos, 2)
    out = tmp_path / "ds"
    prep(photos, out)
    first = load_dataset(out)
    photo_set(photos, 1, start=50)  # p0.jpg replaced by another picture
    args = ["--token", "ben0a", "--out", out, "--consent", CONSENT, "--crop", "center"]
    one_line_error(run(photos, *args), "already there", "--force")
    # an interrupted --force run leaves the old dataset intact
    monkeypatch.setattr(prepmod, "_write", lambda p, d: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        prep(photos, out, force=True)
    assert load_dataset(out).fingerprint == first.fingerprint
    monkeypatch.undo()
    res = run(photos, *args, "--force")
    assert res.exit_code == 0, res.output
    assert load_dataset(out).fingerprint != first.fingerprint
    assert _leftovers(tmp_path) == []
    # never replace a folder that is not a dataset, nor one holding the photos
    other = tmp_path / "Documents"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    one_line_error(run(photos, *args[:2], "--out", other, *args[4:], "--force"), "not a fakestudio")
    assert (other / "thesis.tex").read_text() == "precious"
    one_line_error(
        run(photos, *args[:2], "--out", tmp_path, *args[4:], "--force"), "contains the photos"
    )
    # an empty existing folder is fine; an output inside the photos folder is not read as photos
    (tmp_path / "empty").mkdir()
    assert prep(photos, tmp_path / "empty").dataset.images
    inside = prep(photos, photos / "dataset")
    again = prep(photos, photos / "dataset", force=True)
    assert [p.source for p in again.photos] == [p.source for p in inside.photos]


def test_unwritable_output(tmp_path):
    photos = tmp_path / "photos"
    photo_set(photos, 1)
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    args = ["--token", "ben0a", "--consent", CONSENT]
    one_line_error(run(photos, *args, "--out", blocker / "ds"), "cannot write")
    one_line_error(run(photos, *args, "--out", blocker), "not a folder")
    assert blocker.read_text() == "x"


# -- the command --------------------------------------------------------------------------------


def test_cli_json_and_summary(tmp_path):
    photos = tmp_path / "photos"
    photo_set(photos, 3)
    (photos / "bad.jpg").write_bytes(b"")
    out = tmp_path / "ds"
    res = run(
        photos, "--token", "ben0a", "--class-word", "man", "--out", out, "--consent", CONSENT,
        "--resolution", "256", "--json",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["kept"] == 3 and data["token"] == "ben0a"
    assert data["buckets"] == {"320x192": 3}
    assert data["skipped"] == [{"index": 1, "source": "bad.jpg", "reason": "empty file (0 bytes)"}]
    assert [i["file"] for i in data["images"]] == [f"images/000{i}.png" for i in (2, 3, 4)]
    assert data["fingerprint"] == load_dataset(out).fingerprint
    assert load_dataset(out).resolution == 256
    res = run(
        photos,
        "--token",
        "ben0a",
        "--out",
        tmp_path / "ds2",
        "--consent",
        CONSENT,
        "--crop",
        "center",
    )
    assert res.exit_code == 0, res.output
    for word in ("kept", "duplicates", "skipped", "faces found", "buckets", "576x448: 3"):
        assert word in res.output
    one_line_error(
        run(photos, "--token", "x", "--out", out, "--resolution", "500"), "multiple of 64"
    )
    one_line_error(
        run(photos, "--token", "x", "--out", out, "--dedupe-bits", "99"), "--dedupe-bits"
    )


def test_progress_is_reported(tmp_path):
    photos = tmp_path / "photos"
    photo_set(photos, 3, size=(300, 260))
    seen = []
    prep(photos, tmp_path / "ds", resolution=256, on_progress=lambda *a: seen.append(a))
    assert ("reading", 3, 3) in seen and ("cropping", 3, 3) in seen
