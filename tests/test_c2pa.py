"""C2PA: the local signing identity, the manifest we sign, and the offline reader.

Reader states are checked against the c2pa-rs test fixtures in shared/fixtures/c2pa (see
SOURCES.tsv); our own signing is checked end to end on PNG, JPEG and WebP.
"""

from __future__ import annotations

import getpass
import hashlib
import io
import json
import os
import socket
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from PIL import Image

from detectors import c2pa as reader
from detectors.c2pa import TRAINED_ALGORITHMIC_MEDIA, read_c2pa
from fakestudio.label.identity import (
    IdentityError,
    ca_pem,
    ensure_identity,
    identity_info,
    install_identity,
    load_identity,
)
from fakestudio.label.manifest import SigningError, build_manifest, sign_bytes
from fakestudio.record import GenerationRecord, LoraRef
from tests.conftest import FIXTURES as SHARED_FIXTURES

FIXTURES = SHARED_FIXTURES / "c2pa"
needs_fixtures = pytest.mark.skipif(
    not (FIXTURES / "C.jpg").is_file(), reason=f"C2PA fixtures not found at {FIXTURES}"
)
MIMES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
PAYLOAD = "a1b2c3d4e5f60718"
PROMPT = "a portrait of zq7person on a red bicycle"


# --- helpers --------------------------------------------------------------------------------


def _hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _record(record_prompt: bool = False) -> GenerationRecord:
    return GenerationRecord(
        prompt=PROMPT,
        negative_prompt="blurry, lowres",
        seed=1234,
        steps=20,
        guidance=7.5,
        width=512,
        height=512,
        scheduler="euler",
        base_model="tiny",
        base_sha256=_hex("base"),
        loras=[
            LoraRef("me.safetensors", _hex("me"), 0.8, "zq7person"),
            LoraRef("celeb.safetensors", _hex("celeb"), 0.6, None),
        ],
        record_prompt=record_prompt,
    )


def _image_bytes(fmt: str) -> bytes:
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:512, 0:512]
    base = np.stack([x // 2, y // 2, (x + y) // 4], axis=-1).astype(np.int16)
    pixels = np.clip(base + rng.integers(-12, 12, base.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(
        buf, {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}[fmt], quality=90
    )
    return buf.getvalue()


def _png_chunks(data: bytes):
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        yield pos, data[pos + 4 : pos + 8], length
        pos += 12 + length


def _flip_png_pixel_byte(data: bytes) -> bytes:
    """Change one byte inside IDAT and fix the chunk CRC: a well-formed PNG, other pixels."""
    for pos, ctype, length in _png_chunks(data):
        if ctype == b"IDAT":
            body = bytearray(data[pos + 8 : pos + 8 + length])
            body[length // 2] ^= 0x01
            crc = struct.pack(">I", zlib.crc32(b"IDAT" + bytes(body)) & 0xFFFFFFFF)
            return data[: pos + 8] + bytes(body) + crc + data[pos + 12 + length :]
    raise AssertionError("no IDAT chunk")


def _add_png_text_chunk(data: bytes) -> bytes:
    """Insert a tEXt chunk before IEND (what a careless metadata tool does)."""
    body = b"Comment\x00added after signing"
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body
    chunk += struct.pack(">I", zlib.crc32(b"tEXt" + body) & 0xFFFFFFFF)
    iend = data.rindex(b"IEND") - 4
    return data[:iend] + chunk + data[iend:]


def _flip_jpeg_scan_byte(data: bytes) -> bytes:
    """Change one byte of entropy-coded data (never creating or breaking a 0xFF marker)."""
    pos = 2
    while True:
        assert data[pos] == 0xFF, "lost in JPEG segments"
        marker = data[pos + 1]
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker == 0xDA:  # start of scan
            start = pos + 2 + length
            break
        pos += 2 + length
    end = data.rindex(b"\xff\xd9")
    i = start + (end - start) // 2
    while data[i] in (0xFE, 0xFF) or data[i - 1] == 0xFF:
        i += 1
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]


def _flip_webp_image_byte(data: bytes) -> bytes:
    pos = 12
    while pos < len(data):
        fourcc = data[pos : pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        if fourcc in (b"VP8 ", b"VP8L"):
            i = pos + 8 + size // 2
            return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]
        pos += 8 + size + (size & 1)
    raise AssertionError("no VP8/VP8L chunk")


TAMPER = {"png": _flip_png_pixel_byte, "jpeg": _flip_jpeg_scan_byte, "webp": _flip_webp_image_byte}


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKESTUDIO_HOME", str(tmp_path / "fshome"))
    return tmp_path / "fshome"


@pytest.fixture
def identity(home):
    return ensure_identity()


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """One identity and one signed file per format, shared by the read-back tests."""
    fshome = tmp_path_factory.mktemp("signed") / "fshome"
    mp = pytest.MonkeyPatch()
    mp.setenv("FAKESTUDIO_HOME", str(fshome))
    try:
        ident = ensure_identity()
        manifest = build_manifest(
            _record(), {"alg": "org.fakestudio.wm.dwtdctsvd.v1", "payload": PAYLOAD}
        )
        files = {
            fmt: sign_bytes(_image_bytes(fmt), mime, manifest, ident) for fmt, mime in MIMES.items()
        }
    finally:
        mp.undo()
    return {"identity": ident, "manifest": manifest, "files": files, "home": fshome}


# --- the c2pa-rs fixtures -------------------------------------------------------------------


@needs_fixtures
@pytest.mark.parametrize(
    "name, state, code",
    [
        ("C.jpg", "valid-untrusted", "signingCredential.untrusted"),
        ("CA.jpg", "valid-untrusted", "signingCredential.untrusted"),
        ("E-sig-CA.jpg", "invalid-signature", "claimSignature.mismatch"),
        ("XCA.jpg", "tampered", "assertion.dataHash.mismatch"),
        ("no_manifest.jpg", "absent", None),
        ("libpng-test.png", "absent", None),
        ("cloud.jpg", "remote-not-fetched", None),
    ],
)
def test_fixture_states(name, state, code):
    path = FIXTURES / name
    result = read_c2pa(path)
    assert result.state == state, result.message
    assert result.state in reader.STATES
    if code:
        assert code in result.status_codes
    # bytes in, same answer
    assert read_c2pa(path.read_bytes()).state == state


@needs_fixtures
@pytest.mark.parametrize("name", ["C.jpg", "CA.jpg"])
def test_fixture_trusted_with_test_anchors(name):
    anchors = [(FIXTURES / "test_cert_root_bundle.pem").read_bytes()]
    result = read_c2pa(FIXTURES / name, trust_anchors=anchors)
    assert result.state == "trusted", result.message
    assert result.validation_state == "Trusted"
    assert result.status_codes == []


@needs_fixtures
def test_fixture_broken_stays_broken_with_anchors():
    anchors = [(FIXTURES / "test_cert_root_bundle.pem").read_bytes()]
    assert read_c2pa(FIXTURES / "E-sig-CA.jpg", trust_anchors=anchors).state == "invalid-signature"
    assert read_c2pa(FIXTURES / "XCA.jpg", trust_anchors=anchors).state == "tampered"


@needs_fixtures
def test_fixture_details():
    c = read_c2pa(FIXTURES / "C.jpg")
    assert c.signer == "C2PA Signer"
    assert c.issuer == "C2PA Test Signing Cert"
    assert c.signed_time and c.signed_time.startswith("2024-")
    assert "c2pa.created" in c.actions
    assert c.generator and c.generator["name"] == "make_test_images"
    assert c.embedded is True
    assert c.active_manifest and c.active_manifest["title"] == "C.jpg"
    ca = read_c2pa(FIXTURES / "CA.jpg")
    assert ca.ingredients == ["A.jpg"]
    assert "c2pa.opened" in ca.actions


@needs_fixtures
def test_remote_manifest_is_not_fetched():
    result = read_c2pa(FIXTURES / "cloud.jpg")
    assert result.state == "remote-not-fetched"
    assert result.remote_url and result.remote_url.startswith("https://")
    assert "remote" in result.message


def test_bad_inputs_never_raise(tmp_path):
    assert read_c2pa(b"").state in ("unsupported", "error")
    assert read_c2pa(b"not an image at all" * 10).state in ("unsupported", "error")
    assert read_c2pa(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64).state in ("absent", "error")
    assert read_c2pa(b"\xff\xd8\xff" + b"\x00" * 64).state in ("absent", "error")
    missing = read_c2pa(tmp_path / "missing.png")
    assert missing.state == "error" and "missing.png" in missing.message
    assert read_c2pa(tmp_path).state == "error"


def test_huge_input_is_not_read(tmp_path, monkeypatch):
    monkeypatch.setattr(reader, "MAX_INPUT_BYTES", 1000)
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 2000)
    assert read_c2pa(big).state == "unsupported"
    assert read_c2pa(big.read_bytes()).state == "unsupported"


def test_reader_imports_no_generation_code():
    code = (
        "import sys, detectors.c2pa as c; c.read_c2pa(b'x' * 64);"
        "bad = [m for m in ('fakestudio', 'torch', 'diffusers') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1]
    )


# --- our own signing, read back -------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(MIMES))
def test_signed_reads_valid_untrusted_then_trusted(signed, fmt):
    data = signed["files"][fmt]
    plain = read_c2pa(data, MIMES[fmt])
    assert plain.state == "valid-untrusted", plain.message
    assert plain.status_codes == ["signingCredential.untrusted"]
    trusted = read_c2pa(data, trust_anchors=[ca_pem(signed["identity"])])
    assert trusted.state == "trusted", trusted.message
    # the CA file on disk is the same anchor
    assert (
        read_c2pa(data, trust_anchors=[signed["identity"].ca_path.read_bytes()]).state == "trusted"
    )


@pytest.mark.parametrize("fmt", list(MIMES))
def test_signed_manifest_content(signed, fmt):
    r = read_c2pa(signed["files"][fmt])
    assert r.actions[0] == "c2pa.created"
    assert "c2pa.watermarked.bound" in r.actions
    assert r.digital_source_type == TRAINED_ALGORITHMIC_MEDIA
    assert r.generator["name"] == "fakestudio"
    assert r.title == "fakestudio-1234"  # v2 claims carry no format field
    assert r.signer.startswith("fakestudio local signer ")
    assert r.signed_time is None  # no time-stamp authority offline
    gen = r.generation
    assert gen["base_model"] == {"name": "tiny", "sha256": _hex("base")}
    assert [(lo["name"], lo["sha256"], lo["weight"], lo["trigger"]) for lo in gen["loras"]] == [
        ("me.safetensors", _hex("me"), 0.8, "zq7person"),
        ("celeb.safetensors", _hex("celeb"), 0.6, None),
    ]
    assert (gen["seed"], gen["steps"], gen["guidance"], gen["scheduler"]) == (
        1234,
        20,
        7.5,
        "euler",
    )
    assert (gen["width"], gen["height"]) == (512, 512)
    assert gen["prompt_recorded"] is False
    assert "prompt" not in gen and "negative_prompt" not in gen
    assert r.soft_binding == {
        "alg": "org.fakestudio.wm.dwtdctsvd.v1",
        "value": PAYLOAD,
        "name": "fakestudio invisible watermark",
    }
    text = json.dumps(r.active_manifest)
    assert PROMPT not in text and "zq7person on a red" not in text
    assert "c2pa.thumbnail" not in text  # thumbnails are off


def test_prompt_only_when_allowed(identity):
    data = _image_bytes("png")
    hidden = read_c2pa(
        sign_bytes(
            data, "image/png", build_manifest(_record(False), {"payload": PAYLOAD}), identity
        )
    )
    shown = read_c2pa(
        sign_bytes(data, "image/png", build_manifest(_record(True), {"payload": PAYLOAD}), identity)
    )
    assert "prompt" not in hidden.generation
    assert shown.generation["prompt"] == PROMPT
    assert shown.generation["negative_prompt"] == "blurry, lowres"
    assert shown.generation["prompt_recorded"] is True


def test_no_private_strings_anywhere(signed):
    needles = {str(signed["home"]), str(signed["home"].parent), str(Path.home())}
    user = getpass.getuser()
    if len(user) >= 3:
        needles.add(user)
    host = socket.gethostname()
    if len(host) >= 3:
        needles.add(host)
    docs = [json.dumps(signed["manifest"])]
    for data in signed["files"].values():
        docs.append(json.dumps(read_c2pa(data).active_manifest))
        docs.append(data.decode("latin-1"))  # the whole file, certificates included
    for doc in docs:
        for needle in needles:
            assert needle not in doc, f"{needle!r} leaked"
    for s in _strings(signed["manifest"]):
        assert not s.startswith(("/", "~")) and ":\\" not in s, s
    info = identity_info(signed["identity"])
    for needle in (user, host):
        if len(needle) >= 3:
            assert needle not in info["subject"] and needle not in info["issuer"]


def test_paths_in_record_are_reduced_to_names():
    rec = _record()
    rec.base_model = "/home/someone/models/sd15.safetensors"
    rec.loras = [LoraRef("C:\\Users\\someone\\me.safetensors", _hex("me"), 1.0)]
    manifest = build_manifest(rec, {"payload": PAYLOAD}, title="/home/someone/out/img.png")
    text = json.dumps(manifest)
    assert "someone" not in text
    gen = manifest["assertions"][1]["data"]
    assert gen["base_model"]["name"] == "sd15.safetensors"
    assert gen["loras"][0]["name"] == "me.safetensors"
    assert manifest["title"] == "img.png"


def test_without_watermark_no_soft_binding(identity):
    r = read_c2pa(
        sign_bytes(_image_bytes("png"), "image/png", build_manifest(_record(), None), identity)
    )
    assert r.state == "valid-untrusted"
    assert r.soft_binding is None
    assert r.actions == ["c2pa.created"]


@pytest.mark.parametrize("fmt", list(MIMES))
def test_pixel_change_after_signing_reads_tampered(signed, fmt):
    changed = TAMPER[fmt](signed["files"][fmt])
    assert changed != signed["files"][fmt]
    r = read_c2pa(changed, MIMES[fmt])
    assert r.state == "tampered", (r.state, r.message)
    assert "assertion.dataHash.mismatch" in r.status_codes


@pytest.mark.parametrize("fmt", list(MIMES))
def test_edited_assertion_reads_tampered(signed, fmt):
    data = signed["files"][fmt]
    i = data.index(b"zq7person")  # the trigger word inside our generation assertion (CBOR)
    r = read_c2pa(data[:i] + b"Z" + data[i + 1 :])
    assert r.state == "tampered", (r.state, r.message)
    assert "assertion.hashedURI.mismatch" in r.status_codes


def test_png_text_chunk_after_signing_reads_tampered(signed):
    r = read_c2pa(_add_png_text_chunk(signed["files"]["png"]))
    assert r.state == "tampered"


def test_truncated_signed_file_does_not_raise(signed):
    data = signed["files"]["jpeg"]
    assert read_c2pa(data[: len(data) // 3]).state in reader.STATES


def test_sign_refuses_other_formats(identity):
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "GIF")
    with pytest.raises(SigningError, match="image/gif"):
        sign_bytes(buf.getvalue(), "image/gif", build_manifest(_record(), None), identity)


# --- the identity ---------------------------------------------------------------------------


@pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")
def test_key_file_and_dir_modes(identity, home):
    keys = home / "config" / "keys"
    assert identity.key_path == keys / "signer.key"
    assert keys.stat().st_mode & 0o777 == 0o700
    assert identity.key_path.stat().st_mode & 0o777 == 0o600
    assert not [p for p in keys.iterdir() if p.name.endswith(".tmp")]
    assert identity_info(identity)["key_private"] is True


def test_ensure_identity_is_stable(identity, home):
    again = ensure_identity()
    assert again.cert_chain_pem == identity.cert_chain_pem
    assert again.private_key_pem == identity.private_key_pem
    assert ensure_identity(home / "config").cert_chain_pem == identity.cert_chain_pem


def test_local_certificates_meet_c2pa_rules(identity):
    leaf, ca = x509.load_pem_x509_certificates(identity.cert_chain_pem)
    assert identity.alg == "es256"
    assert leaf.version == x509.Version.v3 and ca.version == x509.Version.v3
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_cert_sign
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in eku
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    years = (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days / 365
    assert 9 < years < 11
    assert ca_pem(identity) == identity.ca_path.read_bytes()
    info = identity_info(identity)
    assert len(info["fingerprint_sha256"]) == 64 and info["source"] == "local"
    assert "PRIVATE" not in json.dumps(info)


def test_load_identity_own_chain(identity):
    mine = load_identity(identity.cert_path, identity.key_path)
    assert mine.cert_chain_pem == identity.cert_chain_pem and mine.alg == "es256"
    data = sign_bytes(_image_bytes("jpeg"), "image/jpeg", build_manifest(_record(), None), mine)
    assert read_c2pa(data).state == "valid-untrusted"


def test_load_identity_errors_name_the_file(identity, tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(IdentityError, match="junk.pem") as err:
        load_identity(junk, identity.key_path)
    assert "\n" not in str(err.value)
    with pytest.raises(IdentityError, match="junk.pem"):
        load_identity(identity.cert_path, junk)
    with pytest.raises(IdentityError, match="nothere.key"):
        load_identity(identity.cert_path, tmp_path / "nothere.key")
    # the CA certificate with the signer's key: not a pair
    with pytest.raises(IdentityError, match="signer.key"):
        load_identity(identity.ca_path, identity.key_path)


def test_half_an_identity_is_an_error(home):
    ident = ensure_identity()
    ident.key_path.unlink()
    with pytest.raises(IdentityError, match="signer.pem"):
        ensure_identity()


def test_concurrent_first_use_makes_one_identity(tmp_path):
    code = (
        "import hashlib; from fakestudio.label.identity import ensure_identity;"
        "i = ensure_identity(); print(hashlib.sha256(i.cert_chain_pem + i.private_key_pem).hexdigest())"
    )
    env = dict(os.environ, FAKESTUDIO_HOME=str(tmp_path / "race"))
    root = Path(__file__).resolve().parents[1]
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, cwd=root, stdout=subprocess.PIPE)
        for _ in range(4)
    ]
    outs = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(outs) == 1


def test_install_own_chain_replaces_and_keeps_previous(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKESTUDIO_HOME", str(tmp_path / "other"))
    other = ensure_identity()
    monkeypatch.setenv("FAKESTUDIO_HOME", str(tmp_path / "mine"))
    first = ensure_identity()
    installed = install_identity(other.cert_path, other.key_path)
    assert installed.cert_chain_pem == other.cert_chain_pem
    assert ensure_identity().cert_chain_pem == other.cert_chain_pem
    keys = tmp_path / "mine" / "config" / "keys"
    previous = [p for p in keys.iterdir() if p.name.startswith("previous-")]
    assert len(previous) == 1
    assert (previous[0] / "signer.pem").read_bytes() == first.cert_chain_pem
    if os.name != "nt":
        assert installed.key_path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(IdentityError, match="nope.pem"):
        install_identity(tmp_path / "nope.pem", other.key_path)
    assert ensure_identity().cert_chain_pem == other.cert_chain_pem  # unchanged by the failure
