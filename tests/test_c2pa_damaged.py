"""A C2PA store that cannot be parsed is damaged credentials, not "no credentials".

Each case starts from a file signed with the local identity (PNG, JPEG, WebP), then overwrites
its manifest store the way a careless tool or an attacker would: random bytes, zeros, cut
short. ``read_c2pa`` alone answers "absent" or an error for most of them; the container walk
(``detectors.containers``) finds the store and ``verify_image`` reports "damaged", naming
where, with the tampered verdict (exit 3). A well-formed JUMBF box of another kind (JPEG 360
metadata) stays "no credentials".
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from detectors import containers
from detectors.c2pa import read_c2pa, reconcile_store
from detectors.verify import verify_image
from fakestudio.label.identity import ensure_identity
from fakestudio.label.manifest import build_manifest, sign_bytes
from tests.test_c2pa import MIMES, PAYLOAD, _image_bytes, _record

JSON_UUID = bytes.fromhex("6a736f6e00110010800000aa00389b71")  # JUMBF "json" content type


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    home = tmp_path_factory.mktemp("damaged") / "fshome"
    mp = pytest.MonkeyPatch()
    mp.setenv("FAKESTUDIO_HOME", str(home))
    try:
        ident = ensure_identity()
        manifest = build_manifest(_record(), {"payload": PAYLOAD})
        files = {f: sign_bytes(_image_bytes(f), m, manifest, ident) for f, m in MIMES.items()}
    finally:
        mp.undo()
    return files


# --- ways to break a store -------------------------------------------------------------------


def _app11_jumbf(data: bytes) -> tuple[int, int]:
    """(start, end) of the JUMBF body of the first APP11 "JP" segment (after JP, En, Z)."""
    pos = 2
    while pos + 4 <= len(data):
        marker = data[pos + 1]
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker == 0xEB and data[pos + 4 : pos + 6] == b"JP":
            return pos + 4 + 8, pos + 2 + length
        if marker == 0xDA:
            break
        pos += 2 + length
    raise AssertionError("no APP11 JUMBF segment")


def _fill(n: int, how: str) -> bytes:
    if how == "zeros":
        return bytes(n)
    return np.random.default_rng(5).integers(0, 256, n, dtype=np.uint8).tobytes()


def jpeg_store_overwritten(data: bytes, how: str) -> bytes:
    start, end = _app11_jumbf(data)
    return data[:start] + _fill(end - start, how) + data[end:]


def _chunk(ctype: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(ctype + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", crc)


def png_store_broken(data: bytes, how: str) -> bytes:
    """The caBX chunk's body random, zeroed or cut to half, with a correct CRC (a well-formed
    PNG chunk whose content is no longer a manifest store)."""
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        ctype = data[pos + 4 : pos + 8]
        if ctype == b"caBX":
            body = data[pos + 8 : pos + 8 + length]
            new = body[: length // 2] if how == "cut" else _fill(length, how)
            return data[:pos] + _chunk(b"caBX", new) + data[pos + 12 + length :]
        pos += 12 + length
    raise AssertionError("no caBX chunk")


def webp_store_overwritten(data: bytes, how: str) -> bytes:
    pos = 12
    while pos + 8 <= len(data):
        fourcc = data[pos : pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        if fourcc == b"C2PA":
            return data[: pos + 8] + _fill(size, how) + data[pos + 8 + size :]
        pos += 8 + size + (size & 1)
    raise AssertionError("no C2PA chunk")


def plain_jpeg_with_app11(body: bytes) -> bytes:
    """A camera-style JPEG (no credentials) with one APP11 "JP" segment carrying `body`."""
    buf = io.BytesIO()
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (300, 300, 3), dtype=np.uint8)).save(buf, "JPEG")
    data = buf.getvalue()
    payload = b"JP" + struct.pack(">HI", 1, 1) + body
    segment = b"\xff\xeb" + struct.pack(">H", len(payload) + 2) + payload
    return data[:2] + segment + data[2:]


def jpeg360_box() -> bytes:
    """A well-formed JUMBF superbox of another kind: a JSON content box labelled "jpeg360"."""
    label = b"jpeg360\x00"
    jumd = struct.pack(">I", 8 + 16 + 1 + len(label)) + b"jumd" + JSON_UUID + b"\x03" + label
    content = b'{"projection": "equirectangular"}'
    json_box = struct.pack(">I", 8 + len(content)) + b"json" + content
    return struct.pack(">I", 8 + len(jumd) + len(json_box)) + b"jumb" + jumd + json_box


# --- the cases ---------------------------------------------------------------------------------

CASES = {
    "jpeg-random": ("jpeg", lambda d: jpeg_store_overwritten(d, "random"), "JPEG APP11 JUMBF"),
    "jpeg-zeros": ("jpeg", lambda d: jpeg_store_overwritten(d, "zeros"), "JPEG APP11 JUMBF"),
    "png-random": ("png", lambda d: png_store_broken(d, "random"), "PNG caBX chunk"),
    "png-zeros": ("png", lambda d: png_store_broken(d, "zeros"), "PNG caBX chunk"),
    "png-cut": ("png", lambda d: png_store_broken(d, "cut"), "PNG caBX chunk"),
    "webp-random": ("webp", lambda d: webp_store_overwritten(d, "random"), "RIFF C2PA chunk"),
    "webp-zeros": ("webp", lambda d: webp_store_overwritten(d, "zeros"), "RIFF C2PA chunk"),
}
EXT = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}


@pytest.mark.parametrize("case", list(CASES))
def test_broken_store_reads_damaged_naming_where(signed, case, tmp_path):
    fmt, breaker, where = CASES[case]
    data = breaker(signed[fmt])
    assert data != signed[fmt] and len(data) > 1000
    alone = read_c2pa(data)  # the reader alone never calls it valid
    assert not alone.valid, alone.state
    scan = containers.scan_container(data)
    assert [s.where for s in scan.stores] == [where], scan.stores
    assert reconcile_store(alone, scan.stores).state == "damaged"
    path = tmp_path / f"{case}{EXT[fmt]}"
    path.write_bytes(data)
    report = verify_image(path, use_ledger=False).to_dict()
    c2pa = report["c2pa"]
    assert c2pa["state"] == "damaged", c2pa
    assert f"{where} at byte" in c2pa["message"], c2pa["message"]
    assert report["verdict"]["exit_code"] == 3, report["verdict"]


@pytest.mark.parametrize("how", ["random", "zeros"])
def test_labelled_jpeg_with_overwritten_store_is_damaged_not_absent(signed, how, tmp_path):
    """The issue's case: before, the reader said "no manifest" and the verdict recovered the
    picture from its watermark as if it had never had credentials."""
    data = jpeg_store_overwritten(signed["jpeg"], how)
    assert read_c2pa(data).state == "absent"  # what c2pa-python alone says
    path = tmp_path / "x.jpg"
    path.write_bytes(data)
    report = verify_image(path, use_ledger=False).to_dict()
    assert report["c2pa"]["state"] == "damaged"
    assert "JPEG APP11 JUMBF at byte" in report["c2pa"]["message"]
    assert "not a readable JUMBF box" in report["c2pa"]["message"]
    assert report["verdict"]["exit_code"] == 3


@pytest.mark.parametrize(
    "body", [b"\x00" * 600, b"junk" * 150, b"\x00\x00\x02\x58jumb" + b"x" * 592]
)
def test_plain_jpeg_with_junk_jumbf_segment_is_damaged(body, tmp_path):
    data = plain_jpeg_with_app11(body)
    path = tmp_path / "camera.jpg"
    path.write_bytes(data)
    report = verify_image(path, use_ledger=False).to_dict()
    assert report["c2pa"]["state"] == "damaged", report["c2pa"]
    assert "JPEG APP11 JUMBF at byte 2 " in report["c2pa"]["message"]
    assert report["verdict"]["exit_code"] == 3


def test_well_formed_non_c2pa_jumbf_is_not_credentials(tmp_path):
    data = plain_jpeg_with_app11(jpeg360_box())
    assert containers.scan_container(data).stores == []
    path = tmp_path / "pano.jpg"
    path.write_bytes(data)
    report = verify_image(path, use_ledger=False).to_dict()
    assert report["c2pa"]["state"] == "absent"
    assert report["verdict"]["exit_code"] == 1  # no provenance, as for any plain photo


def test_intact_signed_files_have_one_clean_store(signed):
    for fmt, data in signed.items():
        stores = containers.scan_container(data).stores
        assert len(stores) == 1 and stores[0].note is None, (fmt, stores)
        assert read_c2pa(data).state == "valid-untrusted"
