"""Hostile input (issue 10): no hang, no crash, no escape; broken credentials never read absent.

The bounds asserted here are generous (seconds for work that takes milliseconds): they catch a
hang or a quadratic parser (10 s and more before the fix), not a slow machine.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import time

import pytest
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


# --- audit and verify on hostile names and files ----------------------------------------------


def _cli(*args, **kw):
    from click.testing import CliRunner

    from fakestudio.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False, **kw)


def _small_png(path, colour=(30, 60, 90), size=(64, 64)):
    Image.new("RGB", size, colour).save(path)
    return path


def test_non_utf8_file_names_in_csv_and_html(tmp_path):
    import csv

    root = tmp_path / "in"
    root.mkdir()
    bad = os.fsdecode(b"caf\xe9-\xff.png")  # Latin-1 bytes: not UTF-8
    _small_png(root / bad)
    _small_png(root / "plain.png")
    res = _cli(
        "audit", root, "--csv", tmp_path / "a.csv", "--html", tmp_path / "a.html", "--workers", 1
    )
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader((tmp_path / "a.csv").open(encoding="utf-8")))
    assert [r["file"].rsplit("/", 1)[-1] for r in rows] == ["caf\\xe9-\\xff.png", "plain.png"]
    assert "caf\\xe9-\\xff.png" in (tmp_path / "a.html").read_text(encoding="utf-8")
    res = _cli("verify", root / bad, "--html", tmp_path / "v.html")
    assert res.exit_code == 1, res.output
    assert "caf\\xe9-\\xff.png" in (tmp_path / "v.html").read_text(encoding="utf-8")


def test_audit_counts_ico_and_jpeg2000_as_images(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    Image.new("RGB", (64, 64), (9, 9, 9)).save(root / "icon.ico")
    Image.new("RGB", (64, 64), (9, 90, 9)).save(root / "photo.jp2")
    from detectors.audit import audit

    result = audit(root, workers=1, use_ledger=False)
    assert result.summary["skipped_not_images"] == 0
    assert sorted(r["format"] for r in result.reports) == ["ICO", "JPEG2000"]
    assert result.summary["categories"]["unreadable"] == 0


def test_one_slow_file_never_loses_the_others(tmp_path):
    """A per-file time limit: the big file is stopped and reported, the others are kept."""
    from detectors.audit import audit

    root = tmp_path / "in"
    root.mkdir()
    # a 4096 x 4096 JPEG: its watermark checks take seconds, far over a 0.3 s limit
    big = Image.linear_gradient("L").resize((4096, 4096)).convert("RGB")
    big.save(root / "b-big.jpg", quality=80)
    for i in range(3):
        _small_png(root / f"s{i}.png", (10 * i, 40, 90))
    for workers in (1, 2):
        result = audit(root, workers=workers, use_ledger=False, time_limit=0.3)
        by_name = {os.path.basename(r["file"]): r for r in result.reports}
        assert len(by_name) == 4 and result.complete
        reason = by_name["b-big.jpg"]["image"]["reason"]
        assert reason and "time limit of 0.3 s" in reason, reason
        assert by_name["b-big.jpg"]["verdict"]["outcome"] == "unreadable"
        for i in range(3):
            assert by_name[f"s{i}.png"]["verdict"]["outcome"] == "no-provenance"


def test_ctrl_c_keeps_valid_json_and_csv(tmp_path):
    """SIGINT in the middle of an audit: exit 130, the JSON on stdout and the CSV are valid and
    hold the files done so far; no temp file is left."""
    import csv
    import json
    import signal
    import subprocess
    import sys

    root = tmp_path / "in"
    root.mkdir()
    for i in range(40):
        _small_png(root / f"f{i:02d}.png", (i * 5, 9, 9), (320, 320))
    out_csv = tmp_path / "a.csv"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "fakestudio", "audit", str(root), "--json", "--workers", "1"]
        + ["--csv", str(out_csv), "--no-ledger"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until some rows are streamed to the temp file
        parts = list(tmp_path.glob(".a.csv.*.part"))
        if parts and parts[0].read_text().count("\n") >= 4:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr.decode()
    doc = json.loads(stdout)
    assert doc["summary"]["complete"] is False and doc["summary"]["found"] == 40
    assert 3 <= doc["summary"]["total"] < 40
    assert any(n.startswith("interrupted:") for n in doc["notes"])
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == doc["summary"]["total"]
    assert not list(tmp_path.glob(".a.csv.*.part"))


def test_postscript_is_never_opened(tmp_path):
    """An EPS named .png: never handed to Pillow's EPS plugin (which runs Ghostscript); a
    fake `gs` on the PATH proves no program ran."""
    import subprocess
    import sys

    marker = tmp_path / "gs-ran"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    gs = bindir / "gs"
    gs.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    gs.chmod(0o755)
    eps = tmp_path / "doc.png"
    eps.write_bytes(
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 300 300\n"
        b"newpath 0 0 moveto 300 300 lineto stroke\nshowpage\n%%EOF\n"
    )
    env = dict(
        os.environ,
        PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
        PYTHONPATH=os.pathsep.join(sys.path),
    )
    res = subprocess.run(
        [sys.executable, "-m", "fakestudio", "verify", str(eps), "--json", "--no-ledger"],
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert res.returncode == 4, res.stderr.decode()
    assert "PostScript/EPS is never opened" in res.stdout.decode()
    assert not marker.exists()


def test_dangling_symlink_is_a_usage_error(tmp_path):
    link = tmp_path / "gone.png"
    os.symlink(tmp_path / "missing.png", link)
    res = _cli("verify", link)
    assert res.exit_code == 2
    assert "broken symbolic link" in res.stderr and "\n" not in res.stderr.strip()


def test_ledger_is_private(tmp_path):
    from detectors.ledger import Ledger

    path = tmp_path / "ledger.sqlite"
    with Ledger(path):
        pass
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    old = tmp_path / "old.sqlite"
    old.touch(mode=0o644)
    os.chmod(old, 0o644)
    with Ledger(old):
        pass
    assert stat.S_IMODE(old.stat().st_mode) == 0o600
    # a read-only --ledger path with URI characters in its name still opens
    odd = tmp_path / "a?b#c%20.sqlite"
    with Ledger(odd):
        pass
    with Ledger(odd, readonly=True) as led:
        assert led.db.execute("SELECT COUNT(*) FROM outputs").fetchone() == (0,)


def test_stale_temp_files_of_ours_are_cleaned_and_nothing_else(tmp_path):
    from detectors.files import STALE_PART_SECONDS, clean_stale_parts

    old = time.time() - STALE_PART_SECONDS - 10
    ours = tmp_path / ".img_0001.png.k2j4h_x9.part"
    fresh = tmp_path / ".img_0002.png.abcdefgh.part"
    theirs = [tmp_path / "notes.part", tmp_path / ".img.png.part", tmp_path / "img.png"]
    for p in [ours, fresh, *theirs]:
        p.write_bytes(b"x")
    link = tmp_path / ".link.png.abcdefgh.part"
    os.symlink(tmp_path / "img.png", link)
    for p in [ours, *theirs]:
        os.utime(p, (old, old))
    os.utime(link, (old, old), follow_symlinks=False)
    assert clean_stale_parts(tmp_path) == [ours.name]
    assert fresh.exists() and link.is_symlink() and all(p.exists() for p in theirs)


def test_verify_time_limit(tmp_path):
    import json

    big = tmp_path / "big.jpg"
    Image.linear_gradient("L").resize((4096, 4096)).convert("RGB").save(big, quality=80)
    res = _cli("verify", big, "--json", "--no-ledger", "--time-limit", "0.2")
    assert res.exit_code == 4, res.output
    rep = json.loads(res.stdout)
    assert "time limit of 0.2 s" in rep["image"]["reason"]
    assert _cli("verify", big, "--time-limit", "nan").exit_code == 2


def _hang_in_native_code(path, *args):
    """Stands in for a decoder stuck in native code: the alarm cannot interrupt it."""
    import signal

    from detectors import audit as audit_mod

    if path.endswith("hang.png"):
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(120)
    return audit_mod._real_verify(path, *args)


def test_workers_stuck_in_native_code_are_killed(tmp_path, monkeypatch):
    """The parent's safety net: no file finished for time_limit + STALL_GRACE, so the workers
    are killed, the files they held retried one per process, the stuck one reported."""
    import multiprocessing

    from detectors import audit as audit_mod

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("needs fork (the stand-in is patched into the parent)")
    root = tmp_path / "in"
    root.mkdir()
    for name in ("a.png", "hang.png", "z.png"):
        _small_png(root / name)
    monkeypatch.setattr(audit_mod, "_real_verify", audit_mod.verify_one, raising=False)
    monkeypatch.setattr(audit_mod, "verify_one", _hang_in_native_code)
    monkeypatch.setattr(audit_mod, "STALL_GRACE", 1.0)
    t0 = time.monotonic()
    result = audit_mod.audit(root, workers=2, use_ledger=False, time_limit=0.5)
    assert time.monotonic() - t0 < 60
    by_name = {os.path.basename(r["file"]): r for r in result.reports}
    assert sorted(by_name) == ["a.png", "hang.png", "z.png"]
    assert "time limit" in by_name["hang.png"]["image"]["reason"]
    assert by_name["a.png"]["verdict"]["outcome"] == "no-provenance"
    assert by_name["z.png"]["verdict"]["outcome"] == "no-provenance"
    assert any("workers were killed" in n for n in result.notes)
