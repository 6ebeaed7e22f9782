"""`fakestudio label`: labelled copies of other generators' pictures, and each written file its
own identifier. Third-party fixtures are read in place from ../shared/fixtures."""

from __future__ import annotations

import getpass
import hashlib
import io
import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image, PngImagePlugin

from detectors.c2pa import read_c2pa
from detectors.ledger import Ledger
from detectors.verify import verify_image
from detectors.watermarks import durable, ours
from fakestudio.cli import cli

TAM = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
A1111_TEXT = (
    "a castle on a hill at dusk\nNegative prompt: blurry\n"
    "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 320x288, "
    "Model hash: 6ce0161689, Model: models/Stable-diffusion/v1-5-pruned-emaonly, "
    "Version: v1.6.0"
)


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def run_label(*args) -> list[dict]:
    res = invoke("label", *args, "--json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def assert_one_line_exit_2(res, *needles):
    assert res.exit_code == 2, res.output
    line = res.stderr.strip()
    assert "\n" not in line and "Traceback" not in line, line
    for n in needles:
        assert str(n) in line, line


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def photo_like(w: int = 320, h: int = 288, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 200 / w, y * 180 / h, (x + y) * 90 / (w + h) + 60], -1)
    noisy = base + rng.normal(0, 10, (h, w, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def manifest_text(path: Path) -> str:
    c = read_c2pa(path)
    return json.dumps(c.active_manifest)


def soft_bindings(path: Path) -> list[tuple[str, str]]:
    """(alg, value) of every soft-binding assertion in the active manifest, in order."""
    out = []
    for a in read_c2pa(path).active_manifest["assertions"]:
        if a["label"].startswith("c2pa.soft-binding"):
            out.append((a["data"]["alg"], a["data"]["blocks"][0]["value"]))
    return out


def assert_private(path: Path, *private: str):
    """No absolute path or user name in the manifest of the copy."""
    text = manifest_text(path)
    for p in private:
        assert p not in text, p
    assert getpass.getuser() not in text.replace("fakestudio", "")  # e.g. "root"


# --- third-party generator outputs ----------------------------------------------------------


def test_comfyui_outputs_labelled_generator_from_metadata(fixtures_dir, tmp_path):
    gen = fixtures_dir / "generated"
    srcs = [
        gen / "hypernetworks_hypernetwork_example_output.png",
        gen / "sdxl_sdxl_simple_example.png",
    ]
    before = [sha(p) for p in srcs]
    out = tmp_path / "labelled"
    copies = run_label(*srcs, "--out", out, "--generator", "ignored: metadata names one")
    assert [sha(p) for p in srcs] == before  # originals untouched
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in srcs)
    models = {"v1-5-pruned-emaonly.ckpt", "sd_xl_base_1.0.safetensors"}
    for c in copies:
        path = Path(c["path"])
        assert c["generator"] == "ComfyUI" and c["generator_from"] == "metadata"
        assert not c["ingredient"]
        rep = verify_image(path)
        assert rep.verdict.outcome == "labelled-ai", rep.verdict.headline
        d = rep.to_dict()
        assert d["c2pa"]["digital_source_type"] == TAM
        gen_assertion = d["c2pa"]["generation"]
        assert gen_assertion["software"] == "ComfyUI"
        assert gen_assertion["generator_from"] == "metadata"
        assert gen_assertion["base_model"]["name"] in models
        assert "prompt" not in gen_assertion  # the workflow's prompt stays in the original
        created = d["c2pa"]["active_manifest"]["assertions"]
        actions = next(a for a in created if a["label"].startswith("c2pa.actions"))
        first = actions["data"]["actions"][0]
        assert first["action"] == "c2pa.created" and first["softwareAgent"]["name"] == "ComfyUI"
        # the mark in the pixels is the one the manifest and the ledger name (the durable
        # mark: since issue 24 the first mark is no longer embedded)
        assert d["c2pa"]["soft_binding"]["value"] == c["watermark"]
        assert soft_bindings(path) == [(durable.ALG, c["watermark"])]
        assert durable.decode(np.asarray(Image.open(path).convert("RGB"))).payload == c["watermark"]
        assert b"trainedAlgorithmicMedia" in path.read_bytes()  # XMP
        with Ledger() as led:
            (row,) = [r for r in led.by_payload(c["watermark"]) if r.sha256 == c["sha256"]]
        assert row.record["software"] == "ComfyUI" and row.file_name == path.name
        assert_private(path, str(fixtures_dir), str(tmp_path), "/home/")
    # deterministic: the same original labelled again is the same copy, same identifier
    again = run_label(srcs[0], "--out", tmp_path / "again")
    assert again[0]["watermark"] == copies[0]["watermark"]


def test_webp_in_webp_out(fixtures_dir, tmp_path):
    src = fixtures_dir / "generated" / "flux_flux_kontext_example_comic.webp"
    (c,) = run_label(src, "--out", tmp_path)  # the workflow is in the WebP's EXIF
    assert c["path"].endswith(".webp") and c["generator"] == "ComfyUI"
    assert verify_image(c["path"]).verdict.outcome == "labelled-ai"


def test_original_with_credentials_becomes_an_ingredient(fixtures_dir, tmp_path):
    src = fixtures_dir / "c2pa" / "CA.jpg"
    before = sha(src)
    (c,) = run_label(src, "--out", tmp_path / "out", "--generator", "Example Diffusion 2")
    assert sha(src) == before
    assert c["ingredient"] and c["original_credentials"] in ("valid-untrusted", "trusted")
    assert c["generator"] == "Example Diffusion 2" and c["generator_from"] == "declared"
    path = Path(c["path"])
    assert path.suffix == ".jpg"
    rep = verify_image(path).to_dict()
    assert rep["verdict"]["outcome"] == "labelled-ai"
    assert rep["c2pa"]["ingredients"] == ["CA.jpg"]
    assert rep["c2pa"]["actions"][0] == "c2pa.opened"
    assert rep["c2pa"]["digital_source_type"] == TAM
    assert rep["c2pa"]["generation"]["software"] == "Example Diffusion 2"
    assert rep["c2pa"]["generation"]["generator_from"] == "declared"
    assert_private(path, str(fixtures_dir), str(tmp_path))


def test_automatic1111_named_from_parameters(tmp_path):
    src = tmp_path / "in" / "00012-1234.png"
    src.parent.mkdir()
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111_TEXT)
    photo_like().save(src, pnginfo=info)
    (c,) = run_label(src, "--out", tmp_path / "out", "--format", "jpeg")
    assert c["generator"] == "Automatic1111" and c["path"].endswith("00012-1234.jpg")
    rep = verify_image(c["path"]).to_dict()
    assert rep["verdict"]["outcome"] == "labelled-ai"
    gen = rep["c2pa"]["generation"]
    assert gen["software"] == "Automatic1111"
    assert gen["base_model"] == {"name": "v1-5-pruned-emaonly"}  # no sub-folder
    copy = Path(c["path"]).read_bytes()
    assert b"castle" not in copy and b"blurry" not in copy  # the prompt is not copied


def test_generator_named_by_a_software_tag(tmp_path):
    src = tmp_path / "in" / "render.jpg"
    src.parent.mkdir()
    exif = Image.Exif()
    exif[0x0131] = "Midjourney"  # Software
    photo_like().save(src, "JPEG", exif=exif.tobytes())
    (c,) = run_label(src, "--out", tmp_path / "out")
    assert c["generator"] == "Midjourney" and c["generator_from"] == "metadata"


def test_no_generator_known_needs_generator(tmp_path):
    src = tmp_path / "in" / "render.png"
    src.parent.mkdir()
    photo_like().save(src)
    out = tmp_path / "out"
    assert_one_line_exit_2(invoke("label", src, "--out", out), src, "--generator")
    assert not out.exists()
    (c,) = run_label(src, "--out", out, "--generator", "Midjourney v6")
    assert c["generator"] == "Midjourney v6" and c["generator_from"] == "declared"
    rep = verify_image(c["path"]).to_dict()
    assert rep["verdict"]["outcome"] == "labelled-ai"
    assert rep["c2pa"]["generation"]["software"] == "Midjourney v6"


def test_cropped_resized_copy_read_blind(fixtures_dir, tmp_path):
    """The public path: a labelled third-party picture, cropped, resized and re-encoded by a
    platform, still reads as fakestudio-labelled with no ledger (the durable mark)."""
    src = fixtures_dir / "generated" / "hypernetworks_hypernetwork_example_output.png"
    (c,) = run_label(src, "--out", tmp_path / "out")
    im = Image.open(c["path"]).convert("RGB")
    w, h = im.size
    edited = im.crop((w // 10, h // 10, w - w // 10, h - h // 10))
    edited = edited.resize((round(edited.width * 0.75), round(edited.height * 0.75)))
    copy = tmp_path / "upload.jpg"
    edited.save(copy, "JPEG", quality=75)
    rep = verify_image(copy, use_ledger=False).to_dict()
    assert rep["verdict"]["outcome"] != "no-provenance", rep["verdict"]
    marks = {w["scheme"]: w for w in rep["watermarks"]}
    assert marks["fakestudio-durable"]["found"]
    assert marks["fakestudio-durable"]["payload"] == c["watermark"]


def test_stripped_labelled_copy_is_traced(tmp_path):
    src = tmp_path / "in" / "render.png"
    src.parent.mkdir()
    photo_like(384, 384, seed=5).save(src)
    (c,) = run_label(src, "--out", tmp_path / "out", "--generator", "Some Generator")
    # a platform strips the metadata and re-encodes
    stripped = tmp_path / "stripped.jpg"
    Image.open(c["path"]).convert("RGB").save(stripped, "JPEG", quality=90)
    rep = verify_image(stripped).to_dict()
    assert rep["ledger"]["matched"], rep["ledger"]
    assert rep["ledger"]["entry"]["file_name"] == "render.png"
    assert rep["ledger"]["entry"]["payload"] == c["watermark"]
    # the picture's maker is the generator named at labelling; fakestudio only labelled it
    prov = rep["ledger"]["entry"]["provenance"]
    assert prov["generator"] == "Some Generator"
    assert prov["labelled_by"].startswith("fakestudio")
    assert "Some Generator" in rep["verdict"]["headline"]
    assert "labelled by fakestudio" in rep["verdict"]["headline"]


# --- bad input: one line, exit 2, nothing written ---------------------------------------------


def test_bad_inputs(fixtures_dir, tmp_path):
    good = tmp_path / "in" / "good.png"
    good.parent.mkdir()
    photo_like().save(good)
    text = tmp_path / "in" / "notes.png"
    text.write_text("not an image\n")
    tiny = fixtures_dir / "generated" / "meta_a1111_parameters_1x1.png"
    out = tmp_path / "out"
    cases = [
        ((tmp_path / "missing.png",), "not found"),
        ((text,), "not an image"),
        ((tiny,), "1x1"),
        ((good, text), "notes.png"),  # one bad input: nothing written for the good one either
        ((good, good), "given twice"),
    ]
    for paths, needle in cases:
        res = invoke("label", *paths, "--out", out, "--generator", "X")
        assert_one_line_exit_2(res, needle)
        assert not out.exists(), paths
    # the output folder is the originals' folder
    res = invoke("label", good, "--out", good.parent, "--generator", "X")
    assert_one_line_exit_2(res, good, "folder")
    assert sorted(p.name for p in good.parent.iterdir()) == ["good.png", "notes.png"]
    # two inputs with one output name
    other = tmp_path / "in2" / "good.jpg"
    other.parent.mkdir()
    photo_like().save(other)
    res = invoke("label", good, other, "--out", out, "--format", "png", "--generator", "X")
    assert_one_line_exit_2(res, "good.png")
    assert not out.exists()
    # an output folder that cannot be created
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    res = invoke("label", good, "--out", blocker / "sub", "--generator", "X")
    assert_one_line_exit_2(res, "not writable")
    assert blocker.read_text() == "x"


def test_help_lists_label():
    res = invoke("--help")
    assert "label" in res.output
    res = invoke("label", "--help")
    assert res.exit_code == 0 and "--generator" in res.output and "ingredient" in res.output


# --- each written file its own identifier -----------------------------------------------------


def _record(seed=21):
    from fakestudio.record import GenerationRecord

    return GenerationRecord(
        prompt="p",
        negative_prompt="",
        seed=seed,
        steps=2,
        guidance=7.0,
        width=320,
        height=288,
        scheduler="euler",
        base_model="tiny",
        base_sha256="0" * 64,
    )


def test_each_format_its_own_identifier_and_stripped_copies_traced(tmp_path):
    from fakestudio.label.labeller import LabelOptions, file_payload, write_labelled

    ledger = tmp_path / "ledger.sqlite"
    rec, image = _record(), photo_like(seed=2)
    written = {
        fmt: write_labelled(
            image, rec, tmp_path, "seed21", LabelOptions(fmt=fmt, ledger_path=ledger)
        )
        for fmt in ("png", "jpeg", "webp")
    }
    payloads = {w.payload for w in written.values()}
    assert len(payloads) == 3
    for fmt, w in written.items():
        assert w.payload == file_payload(rec, fmt)  # deterministic
        rgb = np.asarray(Image.open(w.path).convert("RGB"))
        assert durable.decode(rgb).payload == w.payload
        assert not ours.decode(rgb).found  # one mark since issue 24
    # a badged copy is another file too; the same settings give the same identifier again
    assert file_payload(rec, "png", badge=True) != written["png"].payload
    assert file_payload(_record(), "png") == written["png"].payload
    # a stripped copy of the JPEG is traced to the JPEG, not to the PNG of the same seed
    for fmt in ("jpeg", "webp", "png"):
        stripped = tmp_path / f"stripped-{fmt}.png"
        Image.open(written[fmt].path).convert("RGB").save(stripped)
        rep = verify_image(stripped, ledger_path=ledger).to_dict()
        assert rep["ledger"]["how"] == "watermark-payload"
        assert rep["ledger"]["entry"]["file_name"] == written[fmt].path.name
    with Ledger(ledger) as led:
        assert all(len(led.by_payload(p)) == 1 for p in payloads)


def test_old_labels_and_ledger_rows_still_verify(tmp_path):
    """A file labelled before per-file identifiers (payload = the record fingerprint's first
    5 bytes, shared by every format) and its ledger row still verify and trace."""
    from fakestudio.label.labeller import (
        Description,
        LabelOptions,
        label_pixels,
        write_output,
    )
    from fakestudio.label.manifest import build_manifest

    ledger = tmp_path / "old-ledger.sqlite"
    rec = _record(seed=99)
    old_payload = ours.payload_from_fingerprint(rec.fingerprint())
    opts = LabelOptions(ledger_path=ledger)
    out = label_pixels(
        photo_like(seed=9),
        old_payload,
        opts,
        Description(rec.software, rec.a1111_parameters()),
        lambda marks: build_manifest(rec, {"alg": ours.ALG, "payload": old_payload}),
    )
    w = write_output(out, tmp_path / "old.png", opts, created=rec.created, record=rec.public())
    rep = verify_image(w.path, ledger_path=ledger).to_dict()
    assert rep["verdict"]["outcome"] == "labelled-ai"
    buf = io.BytesIO()
    Image.open(w.path).convert("RGB").save(buf, "JPEG", quality=90)
    stripped = tmp_path / "old-stripped.jpg"
    stripped.write_bytes(buf.getvalue())
    rep = verify_image(stripped, ledger_path=ledger).to_dict()
    assert rep["ledger"]["matched"] and rep["ledger"]["entry"]["payload"] == old_payload


# --- the poster and previews: generated pixels, so labelled ------------------------------------


def _labelled_fake(folder: Path) -> Path:
    from fakestudio.label.labeller import LabelOptions, write_labelled

    return write_labelled(photo_like(seed=7), _record(seed=7), folder, "fake", LabelOptions()).path


def test_compare_poster_is_labelled_with_both_images_as_ingredients(fixtures_dir, tmp_path):
    fake = _labelled_fake(tmp_path)
    photo = fixtures_dir / "real" / "canon-ixus.jpg"
    poster = tmp_path / "poster.png"
    res = invoke("compare", photo, fake, "--png", poster, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["written"]["png"] == str(poster)
    rep = verify_image(poster).to_dict()
    assert rep["verdict"]["outcome"] == "labelled-ai", rep["verdict"]
    assert rep["c2pa"]["ingredients"] == ["canon-ixus.jpg", "fake.png"]
    assert rep["c2pa"]["digital_source_type"].endswith("/compositeWithTrainedAlgorithmicMedia")
    assert rep["c2pa"]["actions"][:3] == ["c2pa.created", "c2pa.placed", "c2pa.placed"]
    pixels = np.asarray(Image.open(poster).convert("RGB"))
    mark = durable.decode(pixels)
    assert mark.found and mark.payload == rep["c2pa"]["soft_binding"]["value"]
    assert [alg for alg, _ in soft_bindings(poster)] == [durable.ALG]
    assert rep["ledger"]["matched"] and rep["ledger"]["entry"]["file_name"] == "poster.png"
    assert_private(poster, str(tmp_path), str(fixtures_dir))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.png", "poster.png"]


def test_poster_of_two_unlabelled_photos_is_signed_not_watermarked(fixtures_dir, tmp_path):
    real = fixtures_dir / "real"
    poster = tmp_path / "poster.png"
    res = invoke("compare", real / "canon-ixus.jpg", real / "nikon-e950.jpg", "--png", poster)
    assert res.exit_code == 0, res.output
    rep = verify_image(poster).to_dict()
    # nothing shown is known to be generated: a composite, never an AI claim
    assert rep["verdict"]["outcome"] == "credentials-not-ai", rep["verdict"]
    assert rep["c2pa"]["digital_source_type"].endswith("/composite")
    assert not any(w["found"] for w in rep["watermarks"] if w["scheme"] == "fakestudio")


def test_talk_page_previews_are_embedded_labelled(tmp_path):
    import base64
    import re

    from detectors.compare import compare_images
    from detectors.report.html import render_talk
    from fakestudio.label.derived import labelled_preview

    fake = _labelled_fake(tmp_path)
    photo = tmp_path / "photo.png"
    photo_like(seed=8).save(photo)
    with Image.open(fake) as im:
        preview = labelled_preview(fake, im, 900, where="talk.html")
    page = render_talk(
        story={
            "people": [],
            "base": "tiny",
            "train_steps": 0,
            "train_seconds": 0,
            "encounter_seconds": 0,
            "scene": "s",
            "consent": "c",
        },
        comparison=compare_images(photo, fake),
        stages=[],
        previews={"B": preview},
    )
    uris = re.findall(r'src="data:(image/[a-z]+);base64,([^"]+)"', page)
    embedded = [base64.b64decode(data) for _, data in uris]
    assert preview in embedded  # byte for byte, labels included
    path = tmp_path / "preview.png"
    path.write_bytes(preview)
    rep = verify_image(path).to_dict()
    assert rep["verdict"]["outcome"] == "labelled-ai"
    assert rep["c2pa"]["ingredients"] == ["fake.png"]
    assert rep["c2pa"]["actions"][:2] == ["c2pa.opened", "c2pa.resized"]


def test_a_preview_of_a_small_copy_is_enlarged_to_carry_the_watermark(tmp_path):
    from fakestudio.label.derived import labelled_preview

    fake = _labelled_fake(tmp_path)
    small = tmp_path / "uploaded-half.jpg"  # a 256 px picture's upload at half size
    with Image.open(fake) as im:
        im.convert("RGB").resize((128, 96)).save(small, quality=85)
    with Image.open(small) as im:
        preview = labelled_preview(small, im, 900, where="talk.html")
    path = tmp_path / "preview.png"
    path.write_bytes(preview)
    with Image.open(path) as shown:
        assert shown.size == (341, 256)
    assert verify_image(path).to_dict()["verdict"]["outcome"] == "labelled-ai"


def test_label_does_not_import_torch(fixtures_dir, tmp_path):
    import subprocess
    import sys

    src = fixtures_dir / "generated" / "hypernetworks_hypernetwork_example_output.png"
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from fakestudio.cli import cli\n"
        f"r = CliRunner().invoke(cli, ['label', {str(src)!r}, '--out', {str(tmp_path)!r}])\n"
        "assert r.exit_code == 0, r.output\n"
        "bad = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
