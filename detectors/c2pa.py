"""Reading and validating C2PA manifests (Content Credentials), offline.

`read_c2pa()` never raises for a bad file: every outcome is one `C2paResult` whose `state` is
one of `STATES`. Remote manifests are never fetched (`verify.remote_manifest_fetch` false and
an empty `core.allowed_network_hosts`, so c2pa-rs may not open any connection), so a file
that only points at a cloud manifest reads "remote-not-fetched".

Mapping (c2pa-python 0.38 / c2pa-rs 0.91):
- `ManifestNotFound`                          -> "absent" (no credentials; proves nothing)
- validation_state "Trusted"                  -> "trusted" (only with trust anchors)
- failures only `signingCredential.untrusted` -> "valid-untrusted"
- `claimSignature.*`, `signingCredential.*` (other than untrusted), `timeStamp.*mismatch`,
  `algorithm.*`                               -> "invalid-signature"
- `assertion.*` failures (`assertion.dataHash.mismatch`: pixels or metadata changed after
  signing; `assertion.hashedURI.mismatch`: an assertion edited) -> "tampered"
- other failures (`claim.malformed`, `manifest.*`): the manifest cannot be relied on
                                              -> "invalid-signature"
- "Remote: ..." errors                        -> "remote-not-fetched"
- `NotSupported`, files too large             -> "unsupported"
- anything else from the library              -> "error" (with the message)
- a store that ``detectors.containers`` finds in the file while the library reports none
  or fails on it (junk, zeroed, cut short, a length field past the end of the file)
                                              -> "damaged" (``reconcile_store``): a broken
  credential is never "no credential"

Imports neither fakestudio nor torch; the c2pa library itself is loaded on first use.
"""

from __future__ import annotations

import io
import json
import mimetypes
import os
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

STATES = (
    "absent",
    "valid-untrusted",
    "trusted",
    "invalid-signature",
    "tampered",
    "remote-not-fetched",
    "unsupported",
    "error",
    "damaged",
)

GENERATION_LABEL = "org.fakestudio.generation"
SOFT_BINDING_LABEL = "c2pa.soft-binding"
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"

MAX_INPUT_BYTES = 512 * 1024 * 1024  # larger files are not checked
MAX_MANIFEST_JSON = 256 * 1024  # active_manifest kept whole up to this size (serialised)
MAX_TEXT = 2000  # any single string kept in a summary field

# EKUs the C2PA specification allows on a claim-signing certificate (one OID per line). With
# no trust_config c2pa-rs 0.91 accepts emailProtection only and calls documentSigning or the
# C2PA OID "signingCredential.invalid"; timeStamping and OCSPSigning are for TSA/OCSP certs.
EKU_TRUST_CONFIG = "\n".join(
    [
        "1.3.6.1.5.5.7.3.4",  # id-kp-emailProtection
        "1.3.6.1.5.5.7.3.36",  # id-kp-documentSigning
        "1.3.6.1.4.1.62558.2.1",  # c2pa-kp-claimSigning
        "1.3.6.1.5.5.7.3.8",  # id-kp-timeStamping
        "1.3.6.1.5.5.7.3.9",  # id-kp-OCSPSigning
        "1.3.6.1.4.1.311.76.59.1.9",  # Microsoft C2PA signing
    ]
)

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"%PDF", "application/pdf"),
)
# Failures that only say "not on a trust list": the signature itself is fine.
_UNTRUSTED_ONLY = frozenset(
    {"signingCredential.untrusted", "timeStamp.untrusted", "signingCredential.ocsp.skipped"}
)
_URL = re.compile(r"https?://[^\s\"'<>]+")


@dataclass
class C2paResult:
    state: str
    message: str = ""
    validation_state: str | None = None  # c2pa's own word: Invalid, Valid, Trusted
    status_codes: list[str] = field(default_factory=list)  # failure codes, in order
    signer: str | None = None  # certificate common name
    issuer: str | None = None  # certificate organisation as c2pa reports it
    signature_alg: str | None = None
    signed_time: str | None = None  # only with a time-stamp
    actions: list[str] = field(default_factory=list)
    digital_source_type: str | None = None
    generator: dict | None = None  # first claim_generator_info entry
    claim_generator: str | None = None  # v1 claims' free-text generator
    title: str | None = None
    format: str | None = None
    ingredients: list[str] = field(default_factory=list)  # titles
    generation: dict | None = None  # our org.fakestudio.generation assertion
    soft_binding: dict | None = None  # {"alg", "value", "name"} of the first soft binding
    manifest_label: str | None = None
    manifest_count: int = 0
    remote_url: str | None = None
    embedded: bool | None = None
    active_manifest: dict | None = None  # bounded: see MAX_MANIFEST_JSON

    @property
    def present(self) -> bool:
        """A manifest was found (whatever its validity)."""
        return self.state not in ("absent", "unsupported", "error")

    @property
    def valid(self) -> bool:
        return self.state in ("valid-untrusted", "trusted")

    def to_dict(self) -> dict:
        return asdict(self)


def reader_settings(trust_anchors: list[bytes] | list[str] | None = None) -> dict:
    """c2pa settings for reading offline: no remote manifests, no OCSP, no network at all."""
    settings: dict[str, Any] = {
        "verify": {
            "remote_manifest_fetch": False,
            "ocsp_fetch": False,
            "verify_after_reading": True,
            "verify_trust": True,
        },
        "core": {"allowed_network_hosts": []},
        "trust": {"trust_config": EKU_TRUST_CONFIG},
    }
    pem = _anchors_pem(trust_anchors)
    if pem:
        settings["trust"]["user_anchors"] = pem
    return settings


def read_c2pa(
    path_or_bytes: str | os.PathLike | bytes | bytearray | memoryview | BinaryIO,
    mime: str | None = None,
    trust_anchors: list[bytes] | list[str] | None = None,
) -> C2paResult:
    """Read and validate the C2PA manifest of a file, bytes or an open binary file.

    `trust_anchors`: PEM root certificates to trust (e.g. the local CA from `keys show`); without
    them a good signature reads "valid-untrusted". Never raises for a bad input.
    """
    try:
        return _read(path_or_bytes, mime, trust_anchors)
    except Exception as e:  # last resort: a verifier must not crash on a hostile file
        return C2paResult("error", message=_one_line(f"{type(e).__name__}: {e}"))


def reconcile_store(result: C2paResult, stores: list) -> C2paResult:
    """The reader's answer checked against the stores found in the container
    (``detectors.containers.Store``): a store that is there but read as absent, or that made
    the reader fail, gives the state "damaged", naming what was found where."""
    if not stores or result.state not in ("absent", "error", "unsupported"):
        return result
    if result.state == "unsupported" and "too large" in result.message:
        return result
    found = "; ".join(s.describe() for s in stores[:3])
    why = "the reader found no manifest in it" if result.state == "absent" else result.message
    return C2paResult(
        "damaged",
        message=_one_line(f"a C2PA manifest store is present but cannot be read ({why}): {found}"),
        embedded=True,
    )


# --- internals ------------------------------------------------------------------------------


def _read(source, mime, trust_anchors) -> C2paResult:
    if hasattr(source, "read") and hasattr(source, "seek"):  # an open binary file, read whole
        size = source.seek(0, io.SEEK_END)
        source.seek(0)
        if size > MAX_INPUT_BYTES:
            return _too_large(size)
        if mime is None:
            mime = sniff_mime(source.read(32))
            source.seek(0)
        return _read_stream(source, mime, trust_anchors)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) > MAX_INPUT_BYTES:
            return _too_large(len(data))
        return _read_stream(io.BytesIO(data), mime or sniff_mime(data[:32]), trust_anchors)
    path = Path(source)
    try:
        size = path.stat().st_size
    except OSError as e:
        return C2paResult("error", message=_one_line(f"{path.name}: {e.strerror or e}"))
    if not path.is_file():
        return C2paResult("error", message=f"{path.name}: not a regular file")
    if size > MAX_INPUT_BYTES:
        return _too_large(size)
    try:
        fh = open(path, "rb")
    except OSError as e:
        return C2paResult("error", message=_one_line(f"{path.name}: {e.strerror or e}"))
    with fh:
        if mime is None:
            mime = sniff_mime(fh.read(32)) or mimetypes.guess_type(path.name)[0]
            fh.seek(0)
        return _read_stream(fh, mime, trust_anchors)


def _read_stream(stream, mime: str | None, trust_anchors) -> C2paResult:
    import c2pa  # loaded here: `import detectors.c2pa` stays cheap

    context = _context(os.getpid(), _anchors_pem(trust_anchors))
    try:
        with c2pa.Reader(_normal_mime(mime), stream, context=context) as reader:
            store_json = reader.json()
            embedded = _safe(reader.is_embedded)
            remote_url = _safe(reader.get_remote_url)
    except c2pa.C2paError.ManifestNotFound:
        return C2paResult("absent", message="no C2PA manifest (no credentials)")
    except c2pa.C2paError.NotSupported as e:
        return C2paResult("unsupported", message=_one_line(str(e)))
    except c2pa.C2paError as e:
        msg = _one_line(str(e) or type(e).__name__)
        if isinstance(e, c2pa.C2paError.RemoteManifest) or msg.startswith("Remote"):
            url = _URL.search(msg)
            return C2paResult(
                "remote-not-fetched",
                message="the manifest is stored remotely; remote fetching is off (offline)",
                remote_url=url.group(0) if url else None,
                embedded=False,
            )
        return C2paResult("error", message=msg)
    result = _summarise(json.loads(store_json))
    result.embedded = embedded
    result.remote_url = remote_url
    return result


def _summarise(store: dict) -> C2paResult:
    manifests = store.get("manifests") or {}
    label = store.get("active_manifest")
    active = manifests.get(label) if isinstance(manifests, dict) else None
    vstate = store.get("validation_state")
    codes = _failure_codes(store)
    state, message = _classify(vstate, codes, active is not None)
    res = C2paResult(
        state,
        message=message,
        validation_state=vstate,
        status_codes=codes,
        manifest_label=_clip(label),
        manifest_count=len(manifests) if isinstance(manifests, dict) else 0,
    )
    if not isinstance(active, dict):
        return res
    sig = active.get("signature_info") or {}
    res.signer = _clip(sig.get("common_name"))
    res.issuer = _clip(sig.get("issuer"))
    res.signature_alg = _clip(sig.get("alg"))
    res.signed_time = _clip(sig.get("time"))
    res.title = _clip(active.get("title"))
    res.format = _clip(active.get("format"))
    res.claim_generator = _clip(active.get("claim_generator"))
    gen = active.get("claim_generator_info")
    if isinstance(gen, list) and gen and isinstance(gen[0], dict):
        res.generator = {k: _clip(v) for k, v in gen[0].items() if isinstance(v, (str, int, float))}
    for ing in active.get("ingredients") or []:
        if isinstance(ing, dict):
            res.ingredients.append(_clip(ing.get("title")) or "(untitled)")
    for assertion in active.get("assertions") or []:
        if not isinstance(assertion, dict):
            continue
        alabel, data = str(assertion.get("label", "")), assertion.get("data")
        if alabel.startswith("c2pa.actions") and isinstance(data, dict):
            for action in data.get("actions") or []:
                if not isinstance(action, dict):
                    continue
                res.actions.append(_clip(str(action.get("action", ""))))
                dst = action.get("digitalSourceType")
                if dst and (
                    res.digital_source_type is None or action.get("action") == "c2pa.created"
                ):
                    res.digital_source_type = _clip(str(dst))
        elif _label_is(alabel, GENERATION_LABEL) and isinstance(data, dict):
            res.generation = res.generation or data
        elif _label_is(alabel, SOFT_BINDING_LABEL) and isinstance(data, dict):
            if res.soft_binding is None:
                blocks = data.get("blocks") or []
                value = blocks[0].get("value") if blocks and isinstance(blocks[0], dict) else None
                res.soft_binding = {
                    "alg": _clip(data.get("alg")),
                    "value": _clip(value),
                    "name": _clip(data.get("name")),
                }
    res.active_manifest = _bounded(active)
    if res.generation is not None and len(json.dumps(res.generation)) > MAX_MANIFEST_JSON:
        res.generation = {"truncated": True}
    return res


def _classify(vstate: str | None, codes: list[str], has_active: bool) -> tuple[str, str]:
    if not has_active:
        return "error", "manifest store without an active manifest"
    if vstate == "Trusted" and not codes:
        return "trusted", "valid signature from a trusted certificate"
    bad_sig = [c for c in codes if _is_signature_failure(c)]
    if bad_sig:
        return "invalid-signature", "the manifest signature does not verify: " + ", ".join(bad_sig)
    changed = [c for c in codes if c.startswith("assertion.")]
    if changed:
        return "tampered", "the file no longer matches its manifest: " + ", ".join(changed)
    others = [c for c in codes if c not in _UNTRUSTED_ONLY]
    if others:  # structural failures (claim.malformed, manifest.*, ...): not to be relied on
        return "invalid-signature", "the manifest is invalid: " + ", ".join(others)
    if vstate in ("Valid", "Trusted"):
        return "valid-untrusted", "valid signature; the certificate is not on a trust list"
    return "error", f"validation state {vstate!r} without a failure code"


def _is_signature_failure(code: str) -> bool:
    if code in _UNTRUSTED_ONLY:
        return False
    return code.startswith(("claimSignature.", "signingCredential.", "algorithm.")) or (
        code.startswith("timeStamp.") and code.endswith(("mismatch", "malformed"))
    )


def _failure_codes(store: dict) -> list[str]:
    results = store.get("validation_results")
    entries: list = []
    if isinstance(results, dict) and isinstance(results.get("activeManifest"), dict):
        entries = results["activeManifest"].get("failure") or []
    elif isinstance(store.get("validation_status"), list):
        entries = store["validation_status"]
    codes: list[str] = []
    for entry in entries:
        code = entry.get("code") if isinstance(entry, dict) else None
        if isinstance(code, str) and code not in codes:
            codes.append(_clip(code))
    return codes[:100]


@lru_cache(maxsize=8)
def _context(pid: int, anchors_pem: str | None):
    """One c2pa Context per trust setting (and per process: never reuse one across fork)."""
    import c2pa

    settings = c2pa.Settings.from_dict(reader_settings([anchors_pem] if anchors_pem else None))
    try:
        return c2pa.Context(settings=settings)
    finally:
        settings.close()


def _anchors_pem(anchors) -> str | None:
    if not anchors:
        return None
    if isinstance(anchors, (bytes, str)):
        anchors = [anchors]
    parts = [
        a.decode("ascii", "replace") if isinstance(a, (bytes, bytearray)) else str(a)
        for a in anchors
    ]
    pem = "\n".join(p.strip() for p in parts if p and p.strip())
    return pem + "\n" if pem else None


def sniff_mime(head: bytes) -> str | None:
    """The MIME type from a file's first bytes, for the formats fakestudio meets most."""
    for magic, mime in _MAGIC:
        if head.startswith(magic):
            return mime
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "image/avif"
        if brand in (b"heic", b"heix", b"mif1", b"msf1"):
            return "image/heic"
        return "video/mp4"
    return None


def _normal_mime(mime: str | None) -> str | None:
    if not mime:
        return None
    mime = mime.strip().lower()
    return {
        "image/jpg": "image/jpeg",
        "png": "image/png",
        "jpg": "image/jpeg",
        "jpeg": "image/jpeg",
        "webp": "image/webp",
    }.get(mime, mime)


def _label_is(label: str, base: str) -> bool:
    """`c2pa.soft-binding`, `c2pa.soft-binding__1`, `c2pa.soft-binding.v2` all match their base."""
    return label == base or label.startswith((base + "__", base + ".v"))


def _bounded(manifest: dict) -> dict:
    text = json.dumps(manifest)
    if len(text) <= MAX_MANIFEST_JSON:
        return manifest
    return {
        "truncated": True,
        "size": len(text),
        "label": _clip(manifest.get("label")),
        "title": _clip(manifest.get("title")),
        "assertion_labels": [
            _clip(a.get("label"))
            for a in (manifest.get("assertions") or [])[:200]
            if isinstance(a, dict)
        ],
    }


def _too_large(size: int) -> C2paResult:
    return C2paResult(
        "unsupported",
        message=f"file too large to check ({size // (1024 * 1024)} MB > {MAX_INPUT_BYTES // (1024 * 1024)} MB)",
    )


def _safe(fn):
    try:
        return fn()
    except Exception:
        return None


def _clip(value, limit: int = MAX_TEXT):
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "..."
    return value


def _one_line(text: str) -> str:
    return _clip(" ".join(str(text).split()), 500)
