"""Hostile input (issue 10): no hang, no crash, no escape; broken credentials never read absent.

The bounds asserted here are generous (seconds for work that takes milliseconds): they catch a
hang or a quadratic parser (10 s and more before the fix), not a slow machine.
"""

from __future__ import annotations

import io
import struct
import time

from PIL import Image, PngImagePlugin

from detectors.metadata import MetadataReport, a1111_settings, parse_a1111
from detectors.verify import verify_image

URL = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def _timed(fn, *a, **kw):
    t0 = time.perf_counter()
    out = fn(*a, **kw)
    return out, time.perf_counter() - t0


def _xmp_report(xmp: bytes | str) -> MetadataReport:
    from detectors.metadata import _xmp

    rep = MetadataReport()
    _xmp(rep, xmp)
    return rep


def test_xmp_that_made_the_regex_backtrack_reads_in_linear_time(tmp_path):
    # 40k repeated characters in a JPEG's XMP took 10.7 s with the old regex
    body = b"<x:xmpmeta><rdf:Description Iptc4xmpExt:DigitalSourceType='" + b"a" * 40_000
    buf = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buf, "JPEG", xmp=body)
    path = tmp_path / "x.jpg"
    path.write_bytes(buf.getvalue())
    rep, dt = _timed(verify_image, path, use_ledger=False)
    assert dt < 5
    assert any("XMP" in p and "not well-formed" in p for p in rep.metadata["problems"])
    # the same run of characters as element text, and many unclosed tags
    for text in ("<x>" + "DigitalSourceType>" * 50_000, "<a>" + "<DigitalSourceType " * 50_000):
        rep, dt = _timed(_xmp_report, text)
        assert dt < 2 and rep.xmp["digital_source_type"] is None


def test_huge_xmp_is_not_parsed_and_says_so(tmp_path):
    big = b"<x:xmpmeta>" + b" " * (6 * 1024 * 1024) + b"</x:xmpmeta>"
    buf = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buf, "WEBP", xmp=big)
    path = tmp_path / "big.webp"
    path.write_bytes(buf.getvalue())
    rep, dt = _timed(verify_image, path, use_ledger=False)
    assert dt < 10
    assert any("not parsed" in p for p in rep.metadata["problems"])


def test_xmp_entities_and_dtd_are_refused():
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        f'<x:xmpmeta><rdf:Description Iptc4xmpExt:DigitalSourceType="{URL}&b;"/></x:xmpmeta>'
    )
    rep = _xmp_report(laughs)
    assert rep.xmp["digital_source_type"] is None
    assert rep.problems and "not well-formed" in rep.problems[0]
    external = (
        '<!DOCTYPE x SYSTEM "http://127.0.0.1:9/x.dtd"><x:xmpmeta '
        f'Iptc4xmpExt:DigitalSourceType="{URL}"/>'
    )
    assert _xmp_report(external).xmp["digital_source_type"] is None


def test_xmp_forms_still_read():
    creator = (
        f'<rdf:Description xmp:CreatorTool="fakestudio 0.1" Iptc4xmpExt:DigitalSourceType="{URL}"/>'
    )
    packet = f'<?xpacket begin="\ufeff" id="W5M0"?>\n<x:xmpmeta>{creator}</x:xmpmeta>\n<?xpacket end="r"?>\0\0'
    rep = _xmp_report(packet.encode())
    assert rep.xmp == {"digital_source_type": URL, "creator_tool": "fakestudio 0.1"}
    assert rep.ai_tools == ["IPTC XMP"]


def test_a1111_settings_parse_in_linear_time():
    line = "Steps: 1, Sampler: x, " + "a b" * 300_000
    _, dt = _timed(parse_a1111, "prompt\n" + line)
    assert dt < 2  # the old regex took over a minute
    got = dict(
        a1111_settings(
            'Steps: 20, Sampler: Euler a, Lora hashes: "a: 1, b: 2", (x) Model hash: abc, Size: 512x512'
        )
    )
    assert got == {
        "Steps": "20",
        "Sampler": "Euler a",
        "Lora hashes": "a: 1, b: 2",
        "Model hash": "abc",
        "Size": "512x512",
    }


def test_a1111_parameters_with_invalid_utf8_are_shown_with_replacement(tmp_path):
    # an iTXt chunk must be UTF-8; Pillow drops one that is not, silently
    text = b"a portrait \xff\xfe of someone\nSteps: 20, Sampler: Euler, Seed: 7, Model: m1"
    info = PngImagePlugin.PngInfo()
    info.add(b"iTXt", b"parameters\0\0\0\0\0" + text)
    path = tmp_path / "bad-utf8.png"
    Image.new("RGB", (32, 32)).save(path, pnginfo=info)
    rep = verify_image(path, use_ledger=False).to_dict()
    claim = next(c for c in rep["metadata"]["claims"] if c["tool"] == "Automatic1111")
    assert "\ufffd" in claim["fields"]["prompt"] and claim["fields"]["model"] == "m1"
    assert any("not valid UTF-8" in p for p in rep["metadata"]["problems"])
    assert rep["verdict"]["outcome"] == "ai-metadata"


# --- broken credentials never read as absent ------------------------------------------------


def _jpeg_app11(data: bytes) -> tuple[int, int]:
    """(offset of the first APP11 segment, offset just past it)."""
    pos = 2
    while data[pos + 1] != 0xEB:
        pos += 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
    return pos, pos + 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]


def _verdict(path) -> dict:
    return verify_image(path, use_ledger=False).to_dict()


def test_a_broken_jpeg_store_reads_damaged_not_absent(fixtures_dir, tmp_path):
    signed = (fixtures_dir / "c2pa" / "C.jpg").read_bytes()
    start, end = _jpeg_app11(signed)
    body = start + 4
    cases = {
        "junk.jpg": signed[:body]
        + bytes((i * 37 + 11) % 256 for i in range(end - body))
        + signed[end:],
        "zeroed.jpg": signed[:body] + bytes(end - body) + signed[end:],
        "cut16.jpg": signed[:start] + b"\xff\xeb\x00\x12" + signed[body : body + 16] + signed[end:],
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        rep = _verdict(tmp_path / name)
        assert rep["c2pa"]["state"] == "damaged", (name, rep["c2pa"])
        assert rep["verdict"]["outcome"] == "tampered" and rep["verdict"]["exit_code"] == 3
        assert "JPEG APP11" in rep["c2pa"]["message"] and "at byte 20" in rep["c2pa"]["message"]
        assert "Damaged Content Credentials" in rep["verdict"]["headline"]
    # the reader itself still says "no manifest" for these: the container walk is what tells
    from detectors.c2pa import read_c2pa

    assert read_c2pa(cases["zeroed.jpg"]).state == "absent"
    # a JPEG that never had a store is still "no provenance"
    rep = _verdict(fixtures_dir / "c2pa" / "no_manifest.jpg")
    assert rep["c2pa"]["state"] == "absent" and rep["verdict"]["exit_code"] == 1


def _labelled(tmp_path, fmt):
    from tests.test_verify import write_labelled

    return write_labelled(tmp_path / fmt, tmp_path / "ledger.sqlite", fmt=fmt, size=(256, 256)).path


def _png_chunk(data: bytes, ctype: bytes) -> tuple[int, int]:
    pos = 8
    while True:
        length, t = struct.unpack(">I4s", data[pos : pos + 8])
        if t == ctype:
            return pos, length
        pos += 12 + length


def test_length_fields_of_two_to_the_31(tmp_path):
    """The decision documented in docs/verify.md: a store's own JUMBF length field set to
    2^31 while every signed byte is intact reads as the signature says (valid), with a note;
    a container length field (PNG chunk length, RIFF chunk size) set to 2^31 makes the store
    unlocatable: damaged, exit 3, naming the chunk."""
    png = _labelled(tmp_path, "png").read_bytes()
    pos, _ = _png_chunk(png, b"caBX")
    bad = bytearray(png)
    bad[pos : pos + 4] = struct.pack(">I", 2**31)
    (tmp_path / "len.png").write_bytes(bad)
    rep = _verdict(tmp_path / "len.png")
    assert rep["c2pa"]["state"] == "damaged" and rep["verdict"]["exit_code"] == 3
    assert "PNG caBX chunk at byte 33" in rep["c2pa"]["message"]
    assert "past the end of the file" in rep["c2pa"]["message"]

    webp = _labelled(tmp_path, "webp").read_bytes()
    pos = webp.index(b"C2PA")
    bad = bytearray(webp)
    bad[pos + 4 : pos + 8] = struct.pack("<I", 2**31)
    (tmp_path / "len.webp").write_bytes(bad)
    rep = _verdict(tmp_path / "len.webp")
    assert rep["c2pa"]["state"] == "damaged" and rep["verdict"]["exit_code"] == 3
    assert "RIFF C2PA chunk" in rep["c2pa"]["message"]

    inner = bytearray(webp)
    inner[pos + 8 : pos + 12] = struct.pack(">I", 2**31)  # the JUMBF superbox's LBox
    (tmp_path / "lbox.webp").write_bytes(inner)
    rep = _verdict(tmp_path / "lbox.webp")
    assert rep["c2pa"]["state"] in ("valid-untrusted", "trusted"), rep["c2pa"]
    assert rep["verdict"]["outcome"] == "labelled-ai"
    assert any("declares 2147483648 bytes" in n for n in rep["notes"])


def test_damaged_png_store_and_bad_idat_crc(tmp_path):
    png = _labelled(tmp_path, "png").read_bytes()
    pos, length = _png_chunk(png, b"caBX")
    zeroed = png[: pos + 8] + bytes(length) + png[pos + 8 + length :]
    (tmp_path / "zero.png").write_bytes(zeroed)
    rep = _verdict(tmp_path / "zero.png")
    assert rep["c2pa"]["state"] == "damaged" and rep["verdict"]["exit_code"] == 3
    # renamed so that no reader looks at it: still found, still damaged
    renamed = png[: pos + 4] + b"xaBX" + png[pos + 8 :]
    (tmp_path / "renamed.png").write_bytes(renamed)
    rep = _verdict(tmp_path / "renamed.png")
    assert rep["c2pa"]["state"] == "damaged", rep["c2pa"]
    assert "outside any container" in rep["c2pa"]["message"]

    # an IDAT with a bad CRC (an unsigned PNG: Pillow does not check it) is in the evidence
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ipos, _ = _png_chunk(bytes(data), b"IDAT")
    data[ipos + 10] ^= 0x01
    (tmp_path / "crc.png").write_bytes(bytes(data))
    rep = _verdict(tmp_path / "crc.png")
    assert any("'IDAT'" in n and "bad CRC" in n for n in rep["notes"]), rep["notes"]
