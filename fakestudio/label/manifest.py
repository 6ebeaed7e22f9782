"""The C2PA manifest for a generated image, and signing it with c2pa-python.

The manifest says, in C2PA's words: this was created (`c2pa.created`) by a trained algorithm
(IPTC `trainedAlgorithmicMedia`) using fakestudio, with this base model and these LoRAs
(by sha256), and it carries an invisible watermark whose payload is recorded in a soft
binding (`c2pa.soft-binding` + `c2pa.watermarked.bound`), so a copy stripped of its
metadata can be tied back to this manifest. The prompt is recorded only when the user
allowed it (`record.record_prompt`). No path, user name or host name goes in.

Signing uses a c2pa `Context` with thumbnails off (measured on a 512x512, 520 KB PNG: with
the default thumbnail ~70 ms and +170 KB; without, ~3.5 ms and +4 KB, of which ~1.3 ms is
c2pa re-reading what it wrote) and no network at all, unless a time-stamp authority is given.

Time-stamps (`--tsa URL` on the signing commands): c2pa-rs sends an RFC 3161 request for the
signature to the URL and embeds the authority's signed time, so a reader knows the manifest
existed then (``C2paResult.signed_time``), even after the signer's certificate expires. One
HTTP round trip per signed file. `time_stamping(url)` makes every signature inside it use
the URL, after `check_tsa(url)` proved the authority answers (one request): a bad URL is a
one-line usage error before anything is generated or written.
"""

from __future__ import annotations

import io
import os
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from detectors.c2pa import (
    EKU_TRUST_CONFIG,
    GENERATION_LABEL,
    SOFT_BINDING_LABEL,
    TRAINED_ALGORITHMIC_MEDIA,
)
from fakestudio import __version__
from fakestudio.errors import UserError
from fakestudio.label.identity import Identity
from fakestudio.record import GENERATOR_NAME, GenerationRecord

DEFAULT_WATERMARK_ALG = "org.fakestudio.wm.dwtdctsvd.v1"
#: IPTC digital source types for a picture made of several (composite: none of them AI)
COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA = (
    "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
)
COMPOSITE = "http://cv.iptc.org/newscodes/digitalsourcetype/composite"
GENERATION_VERSION = 1
SIGNABLE = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
_MIME_ALIASES = {
    "image/jpg": "image/jpeg",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
}


class SigningError(UserError):
    """c2pa refused to sign (most often: a certificate it does not accept); one line."""


#: the RFC 3161 time-stamp authority every signature in this context uses (None: none)
_TSA_URL: ContextVar[str | None] = ContextVar("fakestudio_tsa_url", default=None)


@dataclass(frozen=True)
class Ingredient:
    """A file this one was made from, added to the manifest (its own credentials included)."""

    title: str  # reduced to a file name when signed
    data: bytes
    mime: str
    relationship: str = "parentOf"  # parentOf (derived from it) | componentOf (placed in it)
    label: str = "original"  # what the actions' ingredientIds refer to

    def definition(self) -> dict:
        return {
            "title": _file_name(self.title) or "ingredient",
            "relationship": self.relationship,
            "label": self.label,
        }


def build_manifest(
    record: GenerationRecord,
    watermark: dict | list[dict] | None,
    *,
    title: str | None = None,
    mime: str = "image/png",
) -> dict:
    """The manifest definition (c2pa Builder JSON) for one generated image.

    `watermark`: {"alg": str (default DEFAULT_WATERMARK_ALG), "payload": hex str or bytes}, or
    a list of them (one soft-binding assertion each, in order). Without a payload no soft
    binding is written. `title` is reduced to a file name.
    """
    agent = {"name": GENERATOR_NAME, "version": __version__}
    created: dict[str, Any] = {
        "action": "c2pa.created",
        "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
        "softwareAgent": agent,
    }
    if record.created:
        created["when"] = record.created
    actions = [created]
    assertions: list[dict] = []

    soft = _soft_bindings(watermark)
    if soft:
        actions.append({"action": "c2pa.watermarked.bound", "softwareAgent": agent})

    assertions.append({"label": "c2pa.actions.v2", "data": {"actions": actions}})
    assertions.append({"label": GENERATION_LABEL, "data": generation_assertion(record)})
    assertions += [{"label": SOFT_BINDING_LABEL, "data": sb} for sb in soft]

    return {
        "claim_generator_info": [agent],
        "title": _file_name(title) if title else f"{GENERATOR_NAME}-{record.seed}",
        "format": _normal_mime(mime),
        "assertions": assertions,
    }


def build_derived_manifest(
    watermark: dict | list[dict] | None,
    *,
    title: str,
    mime: str = "image/png",
    source_type: str = TRAINED_ALGORITHMIC_MEDIA,
    parent: str | None = None,
    components: Sequence[str] = (),
    edits: Sequence[str] = (),
    creator: dict | None = None,
    generation: dict | None = None,
) -> dict:
    """The manifest for a picture fakestudio labels but did not generate itself: another
    generator's output (`fakestudio label`), a poster or a preview made of shown images.

    `parent`: the label of a parentOf ingredient (the file this one is a labelled copy of): the
    first action is then `c2pa.opened` of it, else `c2pa.created` (by `creator`, a C2PA
    softwareAgent such as {"name": "ComfyUI"}; default fakestudio). Both carry `source_type`.
    `components`: labels of componentOf ingredients, each `c2pa.placed`. `edits`: further
    action names (e.g. "c2pa.resized"). `generation`: an `org.fakestudio.generation` body (what
    made the pixels, as far as known). Ingredients themselves go to `sign_bytes`.
    """
    agent = {"name": GENERATOR_NAME, "version": __version__}
    first: dict[str, Any] = {"action": "c2pa.opened" if parent else "c2pa.created"}
    first["digitalSourceType"] = source_type
    first["softwareAgent"] = agent if parent or not creator else _agent(creator)
    if parent:
        first["parameters"] = {"ingredientIds": [parent]}
    actions = [first]
    actions += [
        {"action": "c2pa.placed", "softwareAgent": agent, "parameters": {"ingredientIds": [c]}}
        for c in components
    ]
    actions += [{"action": e, "softwareAgent": agent} for e in edits]
    soft = _soft_bindings(watermark)
    if soft:
        actions.append({"action": "c2pa.watermarked.bound", "softwareAgent": agent})
    assertions: list[dict] = [{"label": "c2pa.actions.v2", "data": {"actions": actions}}]
    if generation:
        assertions.append({"label": GENERATION_LABEL, "data": generation})
    assertions += [{"label": SOFT_BINDING_LABEL, "data": sb} for sb in soft]
    return {
        "claim_generator_info": [agent],
        "title": _file_name(title) or GENERATOR_NAME,
        "format": _normal_mime(mime),
        "assertions": assertions,
    }


def _agent(creator: dict) -> dict:
    """A softwareAgent from untrusted text: name and version only, one short line each."""
    out = {"name": " ".join(str(creator.get("name") or "unknown").split())[:100]}
    if creator.get("version"):
        out["version"] = " ".join(str(creator["version"]).split())[:50]
    return out


def generation_assertion(record: GenerationRecord) -> dict:
    """`org.fakestudio.generation`: what made the pixels; the prompt only when allowed."""
    pub = record.public()
    data: dict[str, Any] = {
        "version": GENERATION_VERSION,
        "software": pub["software"],
        "base_model": {"name": _file_name(pub["base_model"]), "sha256": pub["base_sha256"]},
        "loras": [
            {
                "name": _file_name(lora["name"]),
                "sha256": lora["sha256"],
                "weight": lora["weight"],
                "trigger": lora.get("trigger"),
            }
            for lora in pub["loras"]
        ],
        # c2pa's JSON-to-CBOR stops at 2^63-1: larger seeds (up to 2^64-1) go as text
        "seed": pub["seed"] if pub["seed"] < 2**63 else str(pub["seed"]),
        "steps": pub["steps"],
        "guidance": pub["guidance"],
        "width": pub["width"],
        "height": pub["height"],
        "scheduler": pub["scheduler"],
        "prompt_recorded": bool(record.record_prompt),
    }
    if record.composition:
        data["composition"] = record.composition
    if record.record_prompt:
        data["prompt"] = pub["prompt"]
        data["negative_prompt"] = pub["negative_prompt"]
    return data


def sign_bytes(
    data: bytes,
    mime: str,
    manifest: dict,
    identity: Identity,
    ingredients: Sequence[Ingredient] = (),
    tsa_url: str | None = None,
) -> bytes:
    """Embed and sign `manifest` in the image `data` (PNG, JPEG or WebP); return the new file.

    `ingredients`: files this one was made from; each is recorded with its hash, and with its
    own manifest store when it has one (c2pa copies it in). `tsa_url`: an RFC 3161
    time-stamp authority (default: the one `time_stamping` set, else none)."""
    import c2pa

    mime = _normal_mime(mime)
    if mime not in SIGNABLE:
        raise SigningError(f"cannot sign {mime}: fakestudio signs {', '.join(SIGNABLE)}")
    tsa_url = tsa_url or _TSA_URL.get()
    definition = dict(manifest, format=mime)
    out = io.BytesIO()
    try:
        signer = c2pa.Signer.from_info(
            c2pa.C2paSignerInfo(
                identity.alg, identity.cert_chain_pem, identity.private_key_pem, tsa_url
            )
        )
        with signer, c2pa.Builder(definition, context=_signing_context()) as builder:
            for ing in ingredients:
                builder.add_ingredient(
                    ing.definition(), _normal_mime(ing.mime), io.BytesIO(ing.data)
                )
            builder.sign(signer, mime, io.BytesIO(data), out)
    except c2pa.C2paError as e:
        why = _one_line(str(e) or type(e).__name__)
        if tsa_url:
            raise SigningError(f"--tsa {tsa_url}: signing with a time-stamp failed ({why})") from e
        raise SigningError(why) from e
    return out.getvalue()


def check_tsa(url: str, identity: Identity) -> None:
    """Prove `url` is an RFC 3161 time-stamp authority that answers: sign a tiny picture
    with it (one request). A bad URL or answer is a one-line `UserError`."""
    if not re.match(r"https?://[^\s/]+", url or ""):
        raise UserError(f"--tsa {url}: give the time-stamp authority's http:// or https:// URL")
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (128, 128, 128)).save(buf, "PNG")
    created = {"action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA}
    probe = {
        "claim_generator_info": [{"name": GENERATOR_NAME}],
        "title": "tsa-check",
        "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": [created]}}],
    }
    try:
        sign_bytes(buf.getvalue(), "image/png", probe, identity, tsa_url=url)
    except SigningError as e:
        why = str(e).removeprefix(f"--tsa {url}: signing with a time-stamp failed ")
        raise SigningError(
            f"--tsa {url}: the time-stamp authority gave no usable time-stamp {why}"
        ) from None


@contextmanager
def time_stamping(url: str | None, identity: Identity | None = None) -> Iterator[None]:
    """Every signature made inside gets an RFC 3161 time-stamp from `url` (checked first with
    `check_tsa`); with None, nothing changes and nothing touches the network."""
    if not url:
        yield
        return
    if identity is None:
        from fakestudio.label.identity import ensure_identity

        identity = ensure_identity()
    check_tsa(url, identity)
    token = _TSA_URL.set(url)
    try:
        yield
    finally:
        _TSA_URL.reset(token)


def signing_settings() -> dict:
    return {
        "builder": {"thumbnail": {"enabled": False}},
        "verify": {
            "remote_manifest_fetch": False,
            "ocsp_fetch": False,
            "verify_after_sign": True,  # c2pa re-reads what it wrote: a bad chain fails here
        },
        "core": {"allowed_network_hosts": []},
        "trust": {"trust_config": EKU_TRUST_CONFIG},  # accept every EKU the spec allows
    }


_context_lock = threading.Lock()
_context_cache: dict[int, Any] = {}  # pid -> Context: never reuse one across fork


def _signing_context():
    with _context_lock:
        pid = os.getpid()
        if pid not in _context_cache:
            import c2pa

            settings = c2pa.Settings.from_dict(signing_settings())
            try:
                _context_cache[pid] = c2pa.Context(settings=settings)
            finally:
                settings.close()
        return _context_cache[pid]


def _soft_bindings(watermark: dict | list[dict] | None) -> list[dict]:
    marks = watermark if isinstance(watermark, list) else [watermark]
    return [sb for sb in (_soft_binding(w) for w in marks) if sb is not None]


def _soft_binding(watermark: dict | None) -> dict | None:
    if not watermark:
        return None
    payload = watermark.get("payload", watermark.get("value"))
    if payload is None or payload == "" or payload == b"":
        return None
    value = (
        bytes(payload).hex()
        if isinstance(payload, (bytes, bytearray, memoryview))
        else str(payload)
    )
    return {
        "alg": str(watermark.get("alg") or DEFAULT_WATERMARK_ALG),
        "blocks": [{"scope": {}, "value": value}],
        "name": "fakestudio invisible watermark",
    }


def _file_name(name: str | None) -> str | None:
    """The last path component only, whichever separator was used."""
    if not name:
        return name
    return PureWindowsPath(PurePosixPath(str(name)).name).name or str(name)


def _normal_mime(mime: str) -> str:
    mime = (mime or "").strip().lower()
    return _MIME_ALIASES.get(mime, mime)


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()[:500]
