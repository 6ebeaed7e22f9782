"""What the registry checks before it stores anything, and the binding values it accepts.

A publication is the signed file itself (PNG, JPEG or WebP, exactly as the labeller wrote it)
and the soft bindings to file it under. It is refused unless:

1. its embedded C2PA manifest validates (signature and hard binding: `valid-untrusted` or
   `trusted`; the signer is recorded, trust is the reader's business);
2. every requested binding is one that the manifest's own soft-binding assertion(s) declare
   (`c2pa.soft-binding`, with its `alg` and block values): no one can file their manifest under
   someone else's watermark payload;
3. for an algorithm this server can decode (fakestudio's watermarks), the file's pixels carry
   that very payload: a manifest cannot claim a watermark its picture does not have;
4. the manifest store can be taken out of the file and reads back on its own.

The server then computes the perceptual hash itself (for `/matches/byContent`) and keeps only
the manifest store, the hash and the image size: never the pixels.
"""

from __future__ import annotations

import base64
import binascii
import io
import re

import numpy as np

from detectors.c2pa import read_c2pa, sniff_mime
from detectors.fingerprint import sha256_bytes
from detectors.registry_client import soft_bindings, store_signature_ok
from fakestudio.registry.jumbf import extract_store
from fakestudio.registry.storage import Publication

FORMATS = ("image/png", "image/jpeg", "image/webp")
MAX_PIXELS = 40_000_000
MAX_BINDINGS = 16
MAX_VALUE = 1024
MAX_ALG = 200
_HEX10 = re.compile(r"^[0-9a-fA-F]{10}$")


class Refused(Exception):
    """A request the registry will not honour: HTTP status, a stable code, one line."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def decoders() -> dict:
    """alg -> decode(rgb) -> WatermarkResult, for the watermarks this server can read."""
    from detectors.watermarks import ours

    out = {ours.ALG: ours.decode}
    try:  # the durable mark, where this installation has it
        from detectors.watermarks import durable  # type: ignore[attr-defined]

        for alg in durable.ALGS.values():  # the decoder reads every format
            out[alg] = durable.decode
    except ImportError:
        pass
    return out


def payload_algs() -> set[str]:
    """Algorithms whose value is fakestudio's 40-bit output identifier (10 hex digits)."""
    return set(decoders())


def normalise_value(alg: str, value: str) -> str:
    """The canonical form of a binding value. For fakestudio's watermarks: 10 lower-case hex
    digits, given as such or as the base64 of the 5 bytes (the API's own encoding). Other
    algorithms' values are kept verbatim."""
    if not isinstance(alg, str) or not alg or len(alg) > MAX_ALG:
        raise Refused(400, "bad-alg", "alg must be a non-empty string of at most 200 characters")
    if not isinstance(value, str) or not value or len(value) > MAX_VALUE:
        raise Refused(
            400, "bad-value", "value must be a non-empty string of at most 1024 characters"
        )
    if alg not in payload_algs():
        return value
    if _HEX10.match(value):
        return value.lower()
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) == 5:
        return raw.hex()
    raise Refused(400, "bad-value", f"{alg}: value must be 10 hex digits or the base64 of 5 bytes")


def declared_bindings(active_manifest: dict | None) -> list[tuple[str, str]]:
    """(alg, canonical value) of every soft binding a manifest (c2pa JSON) declares."""
    out = []
    for alg, value in soft_bindings(active_manifest):
        try:
            out.append((alg, normalise_value(alg, value)))
        except Refused:
            continue
    return list(dict.fromkeys(out))


def check_publication(
    asset: bytes,
    requested: list[tuple[str, str]],
    *,
    mime: str | None = None,
    publisher: int | None = None,
    trust_anchors: list[bytes] | None = None,
) -> Publication:
    """The publication to store, or `Refused` saying why not."""
    sniffed = sniff_mime(asset[:32])
    if sniffed not in FORMATS:
        raise Refused(415, "unsupported-format", "the asset must be a PNG, JPEG or WebP file")
    if mime and mime != sniffed:
        raise Refused(400, "format-mismatch", f"format says {mime} but the asset is {sniffed}")
    if not requested:
        raise Refused(400, "no-bindings", "softBindings: give at least one {alg, value}")
    if len(requested) > MAX_BINDINGS:
        raise Refused(400, "too-many-bindings", f"softBindings: at most {MAX_BINDINGS}")
    wanted = [(alg, normalise_value(alg, value)) for alg, value in requested]

    c2pa = read_c2pa(asset, mime=sniffed, trust_anchors=trust_anchors)
    if c2pa.state not in ("valid-untrusted", "trusted"):
        codes = ", ".join(c2pa.status_codes) or c2pa.message or c2pa.state
        raise Refused(
            422,
            "invalid-manifest",
            f"the asset's C2PA manifest does not validate ({c2pa.state}: {codes})",
        )
    declared = declared_bindings(c2pa.active_manifest)
    undeclared = [b for b in wanted if b not in declared]
    if undeclared:
        alg, value = undeclared[0]
        raise Refused(
            422,
            "binding-mismatch",
            f"the manifest's soft-binding assertion does not declare {alg} = {value}",
        )
    manifest_id = c2pa.manifest_label
    if not isinstance(manifest_id, str) or not manifest_id or len(manifest_id) > 512:
        raise Refused(422, "invalid-manifest", "the active manifest has no usable label")

    rgb = _pixels(asset)
    readers = decoders()
    for alg, value in wanted:
        decode = readers.get(alg)
        if decode is None:
            continue
        res = decode(rgb)
        if not (res.found and res.payload == value):
            raise Refused(
                422,
                "watermark-mismatch",
                f"the asset's pixels do not carry the {alg} payload {value} its manifest declares",
            )

    store = extract_store(asset, sniffed)
    if store is None:
        raise Refused(422, "invalid-manifest", "no manifest store could be taken out of the asset")
    alone = read_c2pa(store, mime="application/c2pa", trust_anchors=trust_anchors)
    if alone.manifest_label != manifest_id or not store_signature_ok(alone.status_codes):
        raise Refused(422, "invalid-manifest", "the manifest store does not read back on its own")

    from detectors.fingerprint import phash_hex

    try:
        phash = phash_hex(rgb)
    except (OSError, ValueError, TypeError):
        raise Refused(422, "unreadable-asset", "the asset's pixels cannot be hashed") from None
    return Publication(
        content_keys=_content_keys(c2pa.active_manifest, rgb),
        manifest_id=manifest_id,
        store=store,
        format=sniffed,
        width=int(rgb.shape[1]),
        height=int(rgb.shape[0]),
        phash=phash,
        bindings=wanted,
        signer=c2pa.signer or c2pa.issuer,
        title=c2pa.title,
        asset_sha256=sha256_bytes(asset),
        publisher=publisher,
    )


def _content_keys(active_manifest: dict | None, rgb: np.ndarray) -> list[tuple[int, int]]:
    """The look-up keys of the manifest's signed content descriptor, filed only when that
    descriptor describes the asset published with it (a descriptor of some other picture would
    let a publisher's manifest answer for that picture)."""
    from detectors import content

    try:
        desc = content.from_manifest(active_manifest)
    except content.DescriptorError as e:
        raise Refused(422, "invalid-content", f"the manifest's content descriptor: {e}") from None
    if desc is None:
        return []
    if content.check(rgb, desc).outcome != "match":
        raise Refused(
            422,
            "content-mismatch",
            "the manifest's content descriptor does not describe the asset's pixels",
        )
    return content.index_keys(desc)


def _pixels(asset: bytes) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(asset)) as im:
            if im.width * im.height > MAX_PIXELS:
                raise Refused(413, "too-large", f"the asset has more than {MAX_PIXELS} pixels")
            return np.asarray(im.convert("RGB"))
    except Refused:
        raise
    except Exception as e:  # noqa: BLE001 - Pillow raises many kinds for hostile input
        raise Refused(
            422, "unreadable-asset", f"the asset's pixels cannot be decoded ({type(e).__name__})"
        ) from None
