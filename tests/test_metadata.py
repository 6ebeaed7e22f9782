"""Metadata claims: generators' chunks, IPTC XMP, camera EXIF; malformed and oversized input."""

from __future__ import annotations

import io
import json
import struct
import zlib

import pytest
from PIL import Image, PngImagePlugin

from detectors.metadata import (
    decode_user_comment,
    is_ai_source_type,
    parse_a1111,
    read_metadata,
    read_metadata_file,
)
from detectors.verify import verify_image

# file -> (AI tools claimed, camera make or None)
EXPECTED = {
    "c2pa/C.jpg": ([], None),
    "c2pa/CA.jpg": ([], None),
    "c2pa/E-sig-CA.jpg": ([], None),
    "c2pa/XCA.jpg": ([], None),
    "c2pa/cloud.jpg": ([], None),
    "c2pa/no_manifest.jpg": ([], None),
    "c2pa/libpng-test.png": ([], None),
    "generated/sdxl_sdxl_simple_example.png": (["ComfyUI"], None),
    "generated/hypernetworks_hypernetwork_example_output.png": (["ComfyUI"], None),
    "generated/lora_lora.png": (["ComfyUI"], None),
    "generated/flux_flux_kontext_example_comic.webp": (["ComfyUI"], None),
    "generated/meta_a1111_parameters_1x1.png": (["Automatic1111"], None),
    "generated/meta_a1111_usercomment_1x1.jpg": (["Automatic1111"], None),
    "generated/meta_invokeai_v3_1x1.png": (["InvokeAI"], None),
    "generated/meta_novelai_1x1.png": (["NovelAI"], None),
    "real/DSCN0010.jpg": ([], "NIKON"),
    "real/canon-ixus.jpg": ([], "Canon"),
    "real/nikon-e950.jpg": ([], "NIKON"),
    "real/landscape_6.jpg": ([], None),
    "real/image01088.jpg": ([], None),
    "real/corrupted.jpg": ([], "OLYMPUS IMAGING CORP."),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_fixture(fixtures_dir, name):
    tools, make = EXPECTED[name]
    rep = read_metadata_file(fixtures_dir / name)
    assert rep.ai_tools == tools
    assert rep.ai_claimed is bool(tools)
    if make:
        assert rep.camera["make"] == make
        assert any(c["kind"] == "camera" and not c["ai"] for c in rep.claims)
    else:
        assert not any(c["kind"] == "camera" for c in rep.claims)
    d = rep.to_dict()
    json.dumps(d)
    for c in d["claims"]:  # bounded
        assert len(c["summary"]) <= 503
        assert len(json.dumps(c["fields"])) < 100_000


def test_comfyui_model_names(fixtures_dir):
    g = fixtures_dir / "generated"
    sdxl = _claim(read_metadata_file(g / "sdxl_sdxl_simple_example.png"), "ComfyUI")
    assert sdxl["fields"]["models"]["checkpoints"] == [
        "sd_xl_base_1.0.safetensors",
        "sd_xl_refiner_1.0.safetensors",
    ]
    assert "galaxy" in sdxl["fields"]["prompt"]
    lora = _claim(read_metadata_file(g / "lora_lora.png"), "ComfyUI")
    assert lora["fields"]["models"]["loras"] == ["epiNoiseoffset_v2.safetensors"]
    assert "epiNoiseoffset_v2" in lora["summary"]
    hyper = _claim(
        read_metadata_file(g / "hypernetworks_hypernetwork_example_output.png"), "ComfyUI"
    )
    assert "dantionMarbleStatues_10.pt" in hyper["fields"]["models"]["others"]
    flux = read_metadata_file(g / "flux_flux_kontext_example_comic.webp")
    c = _claim(flux, "ComfyUI")
    assert "EXIF" in c["where"]  # stored in EXIF Make/Model of a WebP
    assert c["fields"]["models"]["checkpoints"] == ["flux1-kontext-dev.safetensors"]
    assert flux.camera is None  # "workflow:{...}" in Make is not a camera


def test_a1111_png_and_usercomment(fixtures_dir):
    g = fixtures_dir / "generated"
    for name, where in (
        ("meta_a1111_parameters_1x1.png", "text chunk 'parameters'"),
        ("meta_a1111_usercomment_1x1.jpg", "EXIF UserComment"),
    ):
        c = _claim(read_metadata_file(g / name), "Automatic1111")
        assert where in c["where"]
        f = c["fields"]
        assert f["prompt"] == "photo of a duck" and f["negative_prompt"] == "monochrome"
        assert f["model"] == "realistic_realisticVisionV20_v20" and f["steps"] == "15"
        assert f["seed"] == "235284042" and f["sampler"] == "UniPC"


def test_invokeai_and_novelai_fields(fixtures_dir):
    g = fixtures_dir / "generated"
    inv = _claim(read_metadata_file(g / "meta_invokeai_v3_1x1.png"), "InvokeAI")
    assert inv["fields"]["model"] == "juggernautXL" and inv["fields"]["seed"] == 3293022630
    nai = _claim(read_metadata_file(g / "meta_novelai_1x1.png"), "NovelAI")
    assert nai["fields"]["steps"] == 50 and "cat" in nai["fields"]["prompt"]
    assert "Stable Diffusion 1D44365E" in nai["summary"]


def test_camera_exif(fixtures_dir):
    r = read_metadata_file(fixtures_dir / "real" / "DSCN0010.jpg")
    assert r.camera["model"] == "COOLPIX P6000" and r.camera["gps"] is True
    assert r.camera["datetime_original"] == "2008:10:22 16:28:39"
    assert "GPS" in _claim(r, "camera EXIF")["summary"]
    assert read_metadata_file(fixtures_dir / "real" / "canon-ixus.jpg").camera["gps"] is False
    assert read_metadata_file(fixtures_dir / "real" / "landscape_6.jpg").camera["orientation"] == 6


def test_malformed_exif_is_reported_not_raised(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 20, 30)).save(buf, "JPEG")
    jpg = buf.getvalue()
    for seg in (
        b"Exif\x00\x00II*\x00\x08\x00\x00\x00\xff\x00\x0e\x01\x02\x00\x20\x00\x00\x00\xff\xff\xff\x7f",
        b"Exif\x00\x00XX*\x00garbage-garbage-garbage",
    ):
        p = tmp_path / "bad_exif.jpg"
        p.write_bytes(jpg[:2] + b"\xff\xe1" + struct.pack(">H", len(seg) + 2) + seg + jpg[2:])
        rep = read_metadata_file(p)
        assert any("EXIF" in x for x in rep.problems), rep
        assert not rep.ai_claimed
        rep = verify_image(p, use_ledger=False).to_dict()
        assert rep["image"]["readable"] and rep["metadata"]["problems"]
        assert "metadata-malformed" in {s["finding"] for s in rep["signals"]}


def test_oversized_and_hostile_chunks_are_bounded(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", "[" * 100_000 + "]" * 100_000)  # JSON nesting bomb
    info.add_text("workflow", "{not json")
    p = tmp_path / "hostile.png"
    Image.new("RGB", (32, 32)).save(p, pnginfo=info)
    rep = read_metadata_file(p)
    c = _claim(rep, "ComfyUI")
    assert any("not valid JSON" in n for n in c["fields"]["notes"])
    # a zTXt chunk inflating past Pillow's 1 MB limit: the file still opens, the chunk is noted
    buf = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buf, "PNG")
    png = buf.getvalue()
    body = b"parameters\0\0" + zlib.compress(b"x" * (3 * 2**20))
    big = (
        struct.pack(">I", len(body))
        + b"zTXt"
        + body
        + struct.pack(">I", zlib.crc32(b"zTXt" + body))
    )
    (tmp_path / "big.png").write_bytes(png[:33] + big + png[33:])
    assert read_metadata_file(tmp_path / "big.png").claims == []
    # a long A1111 text: every kept string is clipped
    info = PngImagePlugin.PngInfo()
    info.add_text(
        "parameters", "p" * 50_000 + "\nSteps: 20, Sampler: Euler, Seed: 1, Model: " + "m" * 5000
    )
    Image.new("RGB", (32, 32)).save(tmp_path / "long.png", pnginfo=info)
    f = _claim(read_metadata_file(tmp_path / "long.png"), "Automatic1111")["fields"]
    assert len(f["prompt"]) <= 503 and len(f["model"]) <= 503


def test_xmp_digital_source_type_forms():
    url = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
    for xmp in (
        f'<rdf:Description Iptc4xmpExt:DigitalSourceType="{url}"/>',
        f"<Iptc4xmpExt:DigitalSourceType>{url}</Iptc4xmpExt:DigitalSourceType>",
        f'<Iptc4xmpExt:DigitalSourceType rdf:resource="{url}"/>',
    ):
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", f"<x:xmpmeta>{xmp}</x:xmpmeta>")
        buf = io.BytesIO()
        Image.new("RGB", (8, 8)).save(buf, "PNG", pnginfo=info)
        rep = read_metadata(Image.open(io.BytesIO(buf.getvalue())))
        assert rep.xmp["digital_source_type"] == url, xmp
        assert rep.ai_tools == ["IPTC XMP"]
    assert is_ai_source_type("compositeWithTrainedAlgorithmicMedia")
    assert not is_ai_source_type("http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture")


def test_our_labelled_outputs_in_every_format(tmp_path):
    from tests.test_verify import write_labelled

    for i, fmt in enumerate(("png", "jpeg", "webp")):
        w = write_labelled(
            tmp_path / fmt, tmp_path / "ledger.sqlite", seed=40 + i, fmt=fmt, size=(256, 256)
        )
        rep = read_metadata_file(w.path)
        assert set(rep.ai_tools) == {"fakestudio", "IPTC XMP"}, (fmt, rep.claims)
        c = _claim(rep, "fakestudio")
        assert c["fields"]["model"] == "tiny" and "prompt" not in c["fields"]  # not recorded
        assert rep.xmp["digital_source_type"].endswith("trainedAlgorithmicMedia")


def test_helpers():
    be = b"UNICODE\0" + "Steps: 1".encode("utf-16-be")
    le = b"UNICODE\0" + "Steps: 1".encode("utf-16-le")
    assert decode_user_comment(be) == decode_user_comment(le) == "Steps: 1"
    assert decode_user_comment(b"ASCII\0\0\0hello") == "hello"
    assert decode_user_comment(b"short") is None
    p = parse_a1111('a cat\nNegative prompt: dog\nSteps: 5, Lora hashes: "a: 1, b: 2", Seed: 3')
    assert p["prompt"] == "a cat" and p["negative_prompt"] == "dog"
    assert p["settings"]["Lora hashes"] == "a: 1, b: 2" and p["settings"]["Seed"] == "3"


def _claim(rep, tool: str) -> dict:
    return next(c for c in rep.claims if c["tool"] == tool)
