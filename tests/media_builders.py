"""Small media files that tests (and bench/formats.py) make for themselves, in every format
C2PA embeds credentials in, signed with c2pa-python like a camera or an AI service would.

Nothing is downloaded: pictures are synthetic (gradients and noise), the 1 s MP4/MOV/AVI and
the audio (WAV, MP3, FLAC, M4A) are encoded here with PyAV (its FFmpeg build ships in the
wheel), the DNG is a LinearRaw TIFF written byte by byte, the PDF is a one-page document
written by hand. ``sign(data, mime, ident)`` embeds a manifest with c2pa-python's Builder.
"""

from __future__ import annotations

import io
import struct
import wave

import numpy as np
from PIL import Image

TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
CAPTURE = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"

#: name -> (file extension, MIME c2pa signs it as)
FORMATS = {
    "jpeg": (".jpg", "image/jpeg"),
    "png": (".png", "image/png"),
    "webp": (".webp", "image/webp"),
    "gif": (".gif", "image/gif"),
    "tiff": (".tif", "image/tiff"),
    "heic": (".heic", "image/heic"),
    "avif": (".avif", "image/avif"),
    "dng": (".dng", "image/x-adobe-dng"),
    "svg": (".svg", "image/svg+xml"),
    "mp4": (".mp4", "video/mp4"),
    "mov": (".mov", "video/quicktime"),
    "avi": (".avi", "video/avi"),
    "wav": (".wav", "audio/wav"),
    "mp3": (".mp3", "audio/mpeg"),
    "flac": (".flac", "audio/flac"),
    "m4a": (".m4a", "audio/mp4"),
    "pdf": (".pdf", "application/pdf"),
}


def picture(width: int = 320, height: int = 256, seed: int = 0) -> np.ndarray:
    """A smooth gradient with some texture: (H, W, 3) uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 128 + 100 * np.sin(x / 37.0 + seed)
    g = 128 + 100 * np.cos(y / 29.0)
    b = 128 + 80 * np.sin((x + y) / 53.0)
    rgb = np.stack([r, g, b], -1) + rng.normal(0, 6, (height, width, 3))
    return np.clip(rgb, 0, 255).astype(np.uint8)


def make(name: str, *, size: tuple[int, int] = (320, 256), seed: int = 0, **kw) -> bytes:
    """An unsigned file of format ``name`` (a key of ``FORMATS``)."""
    return _MAKERS[name](size=size, seed=seed, **kw)


def _pillow(fmt: str, **save):
    def build(size, seed, **kw):
        buf = io.BytesIO()
        Image.fromarray(picture(*size, seed=seed)).save(buf, fmt, **save, **kw)
        return buf.getvalue()

    return build


def _tiff(size, seed, pages: int = 1, **kw) -> bytes:
    frames = [Image.fromarray(picture(*size, seed=seed + i)) for i in range(pages)]
    buf = io.BytesIO()
    frames[0].save(buf, "TIFF", save_all=pages > 1, append_images=frames[1:], **kw)
    return buf.getvalue()


def _heic(size, seed, **kw) -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    buf = io.BytesIO()
    Image.fromarray(picture(*size, seed=seed)).save(buf, "HEIF", quality=90, **kw)
    return buf.getvalue()


def dng(size=(320, 256), seed: int = 0, make_: str = "Fakestudio", model: str = "Synth 1", xmp=b""):
    """A LinearRaw DNG (16-bit RGB, uncompressed) with Make, Model and optional XMP: what
    LibRaw reads as a DNG; no vendor tool needed."""
    w, h = size
    rgb16 = picture(w, h, seed=seed).astype(np.uint16) * 257
    pixels = rgb16.astype("<u2").tobytes()
    entries: list[tuple[int, int, int, bytes]] = []  # tag, type, count, value bytes

    def add(tag, typ, values):
        fmt = {1: "B", 2: "s", 3: "H", 4: "I", 5: "II", 10: "ii"}[typ]
        if typ == 2:
            data = values.encode() + b"\0"
            entries.append((tag, typ, len(data), data))
            return
        if typ in (5, 10):
            data = b"".join(struct.pack("<" + fmt, *v) for v in values)
        else:
            data = struct.pack("<" + fmt * len(values), *values)
        entries.append((tag, typ, len(values), data))

    add(254, 4, [0])
    add(256, 4, [w])
    add(257, 4, [h])
    add(258, 3, [16, 16, 16])
    add(259, 3, [1])
    add(262, 3, [34892])  # LinearRaw
    add(271, 2, make_)
    add(272, 2, model)
    add(273, 4, [0])  # patched below
    add(277, 3, [3])
    add(278, 4, [h])
    add(279, 4, [len(pixels)])
    add(284, 3, [1])
    if xmp:
        entries.append((700, 1, len(xmp), bytes(xmp)))
    add(50706, 1, [1, 4, 0, 0])
    add(50707, 1, [1, 1, 0, 0])
    add(50708, 2, f"{make_} {model}")
    add(50721, 10, [(1, 1), (0, 1), (0, 1), (0, 1), (1, 1), (0, 1), (0, 1), (0, 1), (1, 1)])
    add(50728, 5, [(1, 1), (1, 1), (1, 1)])
    add(50778, 3, [21])
    entries.sort()
    ifd_size = 2 + 12 * len(entries) + 4
    extra_at = 8 + ifd_size
    extra = b""
    out_entries = []
    for tag, typ, count, data in entries:
        if len(data) <= 4:
            out_entries.append((tag, typ, count, data.ljust(4, b"\0"), None))
        else:
            out_entries.append((tag, typ, count, None, extra_at + len(extra)))
            extra += data + (b"\0" if len(data) % 2 else b"")
    strip_at = extra_at + len(extra)
    ifd = struct.pack("<H", len(out_entries))
    for tag, typ, count, inline, offset in out_entries:
        if tag == 273:
            inline = struct.pack("<I", strip_at)
        ifd += struct.pack("<HHI", tag, typ, count)
        ifd += inline if inline is not None else struct.pack("<I", offset)
    ifd += struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + extra + pixels


def _dng(size, seed, **kw):
    return dng(size, seed, **kw)


def _svg(size, seed, external: str | None = None, **kw) -> bytes:
    w, h = size
    href = f'<image href="{external}" width="10" height="10"/>' if external else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}">\n'
        f'<defs><linearGradient id="g"><stop offset="0" stop-color="#3a6"/>'
        f'<stop offset="1" stop-color="#c{seed % 10}4"/></linearGradient></defs>\n'
        f'<rect width="{w}" height="{h}" fill="url(#g)"/>\n'
        f'<circle cx="{w // 2}" cy="{h // 2}" r="{min(w, h) // 3}" fill="#fd3"/>{href}\n'
        f"</svg>\n"
    ).encode()


def video(
    fmt: str = "mp4",
    size=(320, 256),
    seed: int = 0,
    seconds: float = 1.0,
    fps: int = 10,
    frames: list[np.ndarray] | None = None,
    codec: str | None = None,
    gop: int | None = None,
    crf: int | None = None,
) -> bytes:
    """A short H.264 (MP4, MOV) or MPEG-4 (AVI) video of moving synthetic frames, with a
    silent AAC/PCM-free audio track left out (one video track)."""
    import av

    w, h = size
    buf = io.BytesIO()
    container_fmt = {"mp4": "mp4", "mov": "mov", "avi": "avi"}[fmt]
    with av.open(buf, "w", format=container_fmt) as out:
        stream = out.add_stream(codec or ("mpeg4" if fmt == "avi" else "libx264"), rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        opts = {}
        if gop:
            stream.codec_context.gop_size = gop
        if crf is not None and stream.codec_context.name == "libx264":
            opts["crf"] = str(crf)
        if opts:
            stream.options = opts
        n = len(frames) if frames is not None else max(1, int(seconds * fps))
        base = picture(w + n * 2, h, seed=seed) if frames is None else None
        for i in range(n):
            arr = (
                frames[i]
                if frames is not None
                else np.ascontiguousarray(base[:, 2 * i : 2 * i + w])
            )
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def _video(fmt):
    def build(size, seed, **kw):
        return video(fmt, size, seed, **kw)

    return build


def tone(seconds: float = 1.0, rate: int = 16000, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype(np.int16)


def _wav(size, seed, seconds: float = 1.0, **kw) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(2)
        wf.setframerate(16000)
        wf.writeframes(tone(seconds, freq=440 + seed).tobytes())
    return buf.getvalue()


def _audio(fmt: str, codec: str):
    def build(size, seed, seconds: float = 1.0, **kw):
        import av

        rate = 44100 if codec != "aac" else 48000
        buf = io.BytesIO()
        samples = tone(seconds, rate, 440 + seed)
        with av.open(buf, "w", format=fmt) as out:
            stream = out.add_stream(codec, rate=rate)
            stream.layout = "mono"
            fmt_name = {"libmp3lame": "s16p", "flac": "s16", "aac": "fltp"}[codec]
            data = samples if fmt_name.startswith("s16") else (samples / 32768).astype(np.float32)
            chunk = 1024
            for i in range(0, len(data), chunk):
                part = np.ascontiguousarray(data[i : i + chunk].reshape(1, -1))
                frame = av.AudioFrame.from_ndarray(part, format=fmt_name, layout="mono")
                frame.sample_rate = rate
                frame.pts = i
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        return buf.getvalue()

    return build


def _pdf(size, seed, **kw) -> bytes:
    """A one-page PDF with a line of text, cross-reference table and all."""
    text = f"fakestudio test document {seed}".encode()
    content = b"BT /F1 18 Tf 40 700 Td (" + text + b") Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return out


_MAKERS = {
    "jpeg": _pillow("JPEG", quality=92),
    "png": _pillow("PNG"),
    "webp": _pillow("WEBP", quality=90),
    "gif": _pillow("GIF"),
    "tiff": _tiff,
    "heic": _heic,
    "avif": _pillow("AVIF", quality=90),
    "dng": _dng,
    "svg": _svg,
    "mp4": _video("mp4"),
    "mov": _video("mov"),
    "avi": _video("avi"),
    "wav": _wav,
    "mp3": _audio("mp3", "libmp3lame"),
    "flac": _audio("flac", "flac"),
    "m4a": _audio("ipod", "aac"),
    "pdf": _pdf,
}


def manifest(title: str, source_type: str = TRAINED) -> dict:
    return {
        "claim_generator_info": [{"name": "fakestudio-tests", "version": "1"}],
        "title": title,
        "assertions": [
            {
                "label": "c2pa.actions.v2",
                "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": source_type}]},
            }
        ],
    }


def sign(data: bytes, mime: str, ident, title: str = "media", source_type: str = TRAINED) -> bytes:
    """``data`` with a C2PA manifest signed by ``ident`` (a fakestudio ``Identity``: the local
    one, or a test chain), as c2pa-python's Builder embeds it for ``mime``."""
    import c2pa

    from fakestudio.label.manifest import _signing_context

    definition = dict(manifest(title, source_type), format=mime)
    out = io.BytesIO()
    signer = c2pa.Signer.from_info(
        c2pa.C2paSignerInfo(ident.alg, ident.cert_chain_pem, ident.private_key_pem, None)
    )
    with signer, c2pa.Builder(definition, context=_signing_context()) as builder:
        builder.sign(signer, mime, io.BytesIO(data), out)
    return out.getvalue()


def c2pa_state(data: bytes, mime: str, anchors: list[bytes] | None = None) -> str | None:
    """c2pa-python's own validation state of ``data`` ("Valid", "Trusted", "Invalid"), or None
    without a manifest: what our reading must agree with."""
    import json

    import c2pa

    from detectors.c2pa import reader_settings

    settings = c2pa.Settings.from_dict(reader_settings(anchors))
    context = c2pa.Context(settings=settings)
    try:
        with c2pa.Reader(mime, io.BytesIO(data), context=context) as reader:
            return json.loads(reader.json()).get("validation_state")
    except c2pa.C2paError.ManifestNotFound:
        return None
