"""The parsers that read untrusted bytes, as fuzz targets: one check function and one
Hypothesis strategy per target, shared by ``tests/test_fuzz.py`` (a few hundred examples in
CI) and ``bench/fuzz.py`` (minutes, keeping failing inputs in ``tests/fuzz-regressions/``).

A check returns normally for any input whose handling keeps the contract: no exception other
than our own error type (``UserError`` / ``XmpError``), no catch-all fallback taken ("could not
be walked", "metadata could not be read"), an unreadable image always with a reason. It raises
``AssertionError`` (or lets the stray exception through) otherwise. Time per input is bounded
by the caller (Hypothesis' deadline; an alarm in ``bench/fuzz.py``).
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from hypothesis import strategies as st

C2PA_UUID = bytes.fromhex("6332706100110010800000aa00389b71")
EXTREMES = (0, 1, 7, 8, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


# --- seed files: small real images carrying every kind of metadata we parse --------------------


def fake_jumbf(extra: bytes = b"\xa1ajunk") -> bytes:
    """A JUMBF superbox shaped like a C2PA manifest store (not signed: the reader fails on it)."""
    label = b"c2pa\0"
    jumd = struct.pack(">I4s", 8 + 16 + 1 + len(label), b"jumd") + C2PA_UUID + b"\x03" + label
    cbor = struct.pack(">I4s", 8 + len(extra), b"cbor") + extra
    return struct.pack(">I4s", 8 + len(jumd) + len(cbor), b"jumb") + jumd + cbor


def _png_chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


XMP = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
    '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
    'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
    'Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/'
    'trainedAlgorithmicMedia" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="x 1"/>'
    '</rdf:RDF></x:xmpmeta><?xpacket end="r"?>'
)
A1111 = 'a portrait\nNegative prompt: blur\nSteps: 20, Sampler: Euler a, Seed: 7, Model: m, Lora hashes: "a: 1"'
COMFY = '{"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "m.safetensors"}}, "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat"}}}'


@cache
def seeds() -> tuple[bytes, ...]:
    from PIL import Image, PngImagePlugin

    im = Image.new("RGB", (24, 24), (120, 30, 200))
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "Canon EOS"
    exif[0x0131] = "fakestudio 0.1"
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + A1111.encode("utf-16-be")
    out = []
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111)
    info.add_text("prompt", COMFY, zip=True)
    info.add_itxt("XML:com.adobe.xmp", XMP)
    buf = io.BytesIO()
    im.save(buf, "PNG", pnginfo=info, exif=exif)
    png = buf.getvalue()
    out.append(png[:33] + _png_chunk(b"caBX", fake_jumbf()) + png[33:])
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif, xmp=XMP.encode(), comment=A1111.encode())
    jpg = buf.getvalue()
    app11 = b"JP\x00\x01\x00\x00\x00\x01" + fake_jumbf()
    out.append(jpg[:2] + b"\xff\xeb" + struct.pack(">H", 2 + len(app11)) + app11 + jpg[2:])
    buf = io.BytesIO()
    im.save(buf, "WEBP", exif=exif, xmp=XMP.encode())
    webp = buf.getvalue()
    store = fake_jumbf()
    body = webp[12:] + b"C2PA" + struct.pack("<I", len(store)) + store + b"\0" * (len(store) & 1)
    out.append(b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body)
    for fmt in ("GIF", "TIFF", "BMP"):
        buf = io.BytesIO()
        im.save(buf, fmt)
        out.append(buf.getvalue())
    return tuple(out)


# --- mutations --------------------------------------------------------------------------------

_op = st.sampled_from(("overwrite", "insert", "delete", "length", "truncate", "zero"))


@st.composite
def mutated(draw, max_ops: int = 6) -> bytes:
    """A seed file with a few structural mutations (bytes overwritten, inserted, deleted,
    4-byte fields set to extremes such as 2^31, truncation, zeroed runs)."""
    data = bytearray(draw(st.sampled_from(seeds())))
    for _ in range(draw(st.integers(0, max_ops))):
        op = draw(_op)
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[pos : pos + len(chunk)] = chunk
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 64))]
        elif op == "length":
            value = draw(st.sampled_from(EXTREMES))
            order = draw(st.sampled_from((">I", "<I")))
            data[pos : pos + 4] = struct.pack(order, value)
        elif op == "truncate":
            del data[pos:]
        else:
            data[pos : pos + draw(st.integers(1, 256))] = bytes(min(256, len(data) - pos))
    return bytes(data)


any_bytes = st.one_of(mutated(), st.binary(max_size=2048))

_xmp_atoms = st.sampled_from(
    (
        "<",
        ">",
        "</",
        "/>",
        "=",
        '"',
        "'",
        " ",
        "x:xmpmeta",
        "rdf:Description",
        "rdf:resource",
        "Iptc4xmpExt:DigitalSourceType",
        "DigitalSourceType",
        "xmp:CreatorTool",
        "CreatorTool",
        "<!DOCTYPE x [",
        '<!ENTITY a "aaaa">',
        "]>",
        "&a;",
        "&amp;",
        "<?xpacket ?>",
        "\0",
        "\ufeff",
        "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia",
        "<![CDATA[",
        "]]>",
    )
)
xmp_text = st.one_of(st.lists(_xmp_atoms, max_size=60).map("".join), st.text(max_size=500))
_a1111_atoms = st.sampled_from(
    (
        "Steps:",
        " 20",
        ",",
        " Sampler:",
        " Euler a",
        '"',
        "\\",
        ":",
        "\n",
        "Negative prompt:",
        "a b",
        "Seed: 1",
        " ",
    )
)
a1111_text = st.one_of(st.lists(_a1111_atoms, max_size=80).map("".join), st.text(max_size=500))
json_text = st.one_of(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
        ),
        max_leaves=30,
    ).map(lambda v: __import__("json").dumps(v)),
    st.text(max_size=300),
    st.just("[" * 5000),
)


# --- checks -------------------------------------------------------------------------------------


def check_container(data: bytes) -> None:
    from detectors.containers import scan_container

    scan = scan_container(data)
    assert not any(p.startswith("container could not be walked") for p in scan.problems), (
        scan.problems
    )
    for s in scan.stores:
        assert 0 <= s.offset <= len(data) and s.size >= 0


def check_image(data: bytes) -> None:
    """Pillow behind our guards, then every metadata reader: never raises, never falls back."""
    from detectors.image_io import load_image, open_image
    from detectors.metadata import read_metadata

    im, info = open_image(None, data=data)
    if im is None:
        assert info["reason"].startswith("unreadable: ")
        return
    rgb, info = load_image(None, transpose=False, info=info, image=im, close=False)
    try:
        rep = read_metadata(im, info.get("warnings"))
    finally:
        im.close()
    assert rgb is not None or info["reason"].startswith("unreadable: ")
    assert not any(p.startswith("metadata could not be read") for p in rep.problems), rep.problems


def check_verify(data: bytes) -> None:
    """The whole verify on a file of these bytes: a verdict from the closed set, always."""
    from detectors.verdict import OUTCOMES
    from detectors.verify import verify_image

    fd, name = tempfile.mkstemp(suffix=".img")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        rep = verify_image(name, use_ledger=False).to_dict()
    finally:
        os.unlink(name)
    assert rep["verdict"]["outcome"] in OUTCOMES
    if rep["c2pa"]["state"] == "error":  # the reader failed: the file must not have held a store
        from detectors.containers import scan_container

        assert not scan_container(data).stores


def check_xmp(text: str) -> None:
    from detectors.metadata import MetadataReport, XmpError, _xmp, parse_xmp

    try:
        parse_xmp(text)
    except XmpError:
        pass
    rep = MetadataReport()
    _xmp(rep, text)
    assert rep.xmp is not None


def check_a1111(text: str) -> None:
    from detectors.metadata import a1111_settings, parse_a1111

    parsed = parse_a1111(text)
    assert set(parsed) == {"prompt", "negative_prompt", "settings"}
    for key, _value in a1111_settings(text):
        assert key and ":" not in key


def check_user_comment(data: bytes) -> None:
    from detectors.metadata import decode_user_comment

    for prefix in (b"", b"UNICODE\0", b"ASCII\0\0\0", b"JIS\0\0\0\0\0", b"\0" * 8):
        out = decode_user_comment(prefix + data)
        assert out is None or isinstance(out, str)


def check_comfy(text: str) -> None:
    from detectors.metadata import MetadataReport, _comfy, _invoke

    rep = MetadataReport()
    _comfy(rep, text, text, "fuzz")
    _invoke(rep, "invokeai_metadata", text)
    _invoke(rep, "sd-metadata", text)
    assert len(rep.claims) == 3


def check_safetensors(data: bytes) -> None:
    from fakestudio.errors import UserError
    from fakestudio.lora import read_header

    fd, name = tempfile.mkstemp(suffix=".safetensors")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        try:
            read_header(Path(name))
        except UserError:
            pass
    finally:
        os.unlink(name)


@st.composite
def safetensors_bytes(draw) -> bytes:
    header = draw(
        st.one_of(
            json_text,
            st.just(
                '{"__metadata__": {"fakestudio": "{\\"trigger\\": 1}"}, "lora_unet_x.lora_down.weight": {"dtype": "F32", "shape": [1, 1], "data_offsets": [0, 4]}}'
            ),
        )
    ).encode("utf-8", "surrogatepass")
    declared = draw(
        st.one_of(st.just(len(header)), st.sampled_from(EXTREMES), st.integers(0, 2**64 - 1))
    )
    return struct.pack("<Q", declared) + header + draw(st.binary(max_size=64))


def check_ledger(data: bytes) -> None:
    from fakestudio.commands.verify import ledger_choice
    from fakestudio.errors import UserError

    fd, name = tempfile.mkstemp(suffix=".sqlite")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        try:
            ledger_choice(Path(name), False)
        except UserError:
            pass
    finally:
        os.unlink(name)


@st.composite
def sqlite_bytes(draw) -> bytes:
    head = b"SQLite format 3\0"
    page = draw(st.sampled_from((512, 1024, 4096, 65536)))
    body = draw(st.binary(max_size=1024))
    return draw(st.sampled_from((head, b""))) + struct.pack(">H", page & 0xFFFF) + body


@dataclass(frozen=True)
class Target:
    check: Callable
    strategy: st.SearchStrategy
    text: bool = False  # inputs are str (stored UTF-8 with surrogatepass in regression files)
    warm: object = None  # one input run before timing starts (imports, caches)

    def warm_up(self) -> None:
        self.check(self.warm if self.warm is not None else ("" if self.text else b""))


TARGETS: dict[str, Target] = {
    "container": Target(check_container, any_bytes),
    "image": Target(check_image, any_bytes),
    "verify": Target(check_verify, mutated(), warm=b"\x89PNG\r\n\x1a\n"),
    "xmp": Target(check_xmp, xmp_text, text=True),
    "a1111": Target(check_a1111, a1111_text, text=True),
    "user-comment": Target(check_user_comment, st.binary(max_size=512)),
    "comfy-json": Target(check_comfy, json_text, text=True),
    "safetensors": Target(
        check_safetensors, safetensors_bytes(), warm=struct.pack("<Q", 2) + b"{}"
    ),
    "ledger": Target(check_ledger, sqlite_bytes()),
}

REGRESSIONS = Path(__file__).resolve().parent / "fuzz-regressions"


def encode_input(target: Target, value) -> bytes:
    return value.encode("utf-8", "surrogatepass") if target.text else bytes(value)


def decode_input(target: Target, raw: bytes):
    return raw.decode("utf-8", "surrogatepass") if target.text else raw
