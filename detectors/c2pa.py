"""Reading and validating C2PA manifests (Content Credentials), offline by default.

`read_c2pa()` never raises for a bad file: every outcome is one `C2paResult` whose `state` is
one of `STATES`. Offline by default: remote manifests are not fetched, OCSP is not asked and
c2pa-rs may open no connection (`verify.remote_manifest_fetch` and `verify.ocsp_fetch` false,
an empty `core.allowed_network_hosts`), so a file that only points at a cloud manifest reads
"remote-not-fetched". `online=True` (`verify --online`) lets c2pa-rs fetch both.

Who vouches for the signer (``trust_list``), in one read: the C2PA trust list and TSA trust
list shipped in ``detectors/trust/`` are c2pa-rs's "system" anchors, the user's own
(``trust_anchors``, and ``local_anchor``: this machine's fakestudio CA) its "user" anchors;
c2pa-rs says which set a trusted chain ended in. Measured on C.jpg (c2pa-python 0.38.1, 2
shared cores, median of 60): 2.95 ms with no anchors, 4.06 ms with both shipped lists, 5.33 ms
with the lists and a user anchor (c2pa-rs parses the anchors on every read); a second read to
tell anchors apart would cost as much again, so it happens only when both ``trust_anchors``
and ``local_anchor`` are given and the user set vouched.

State (c2pa-python 0.38 / c2pa-rs 0.91), from the failure codes of the active manifest, each
sorted by ``detectors.c2pa_codes`` into integrity, trust or information:
- `ManifestNotFound`                          -> "absent" (no credentials; proves nothing)
- an integrity failure: the claim signature (`claimSignature.mismatch`, `algorithm.*`)
                                              -> "invalid-signature"
- an integrity failure of an assertion (`assertion.dataHash.mismatch`: pixels or metadata
  changed after signing; `assertion.hashedURI.mismatch`: an assertion edited) -> "tampered"
- any other integrity failure (`claim.*`, `manifest.*`, an unknown code) -> "invalid-signature"
- only trust or information codes, the claim signature verified:
  `signingCredential.trusted` and no failure about the signer -> "trusted"
  else (untrusted, expired, revoked, a CAWG identity not vouched for) -> "valid-untrusted":
  trust is not integrity, such a file is not called tampered
- only trust codes and no proof the signature verified -> "invalid-signature"
- "Remote: ..." errors, `assertion.inaccessible` -> "remote-not-fetched"
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

from detectors import c2pa_codes
from detectors.trust import LISTS, c2pa_anchors_pem

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
TRUST_LISTS = tuple(LISTS)  # "c2pa", "user", "local-identity"

GENERATION_LABEL = "org.fakestudio.generation"
SOFT_BINDING_LABEL = "c2pa.soft-binding"
IDENTITY_LABEL = "cawg.identity"  # CAWG identity assertions (cawg.identity, cawg.identity__1)
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"

MAX_INPUT_BYTES = 512 * 1024 * 1024  # larger files are not checked
MAX_MANIFEST_JSON = 256 * 1024  # active_manifest kept whole up to this size (serialised)
MAX_TEXT = 2000  # any single string kept in a summary field
MAX_STATUSES = 500  # validation statuses looked at
MAX_IDENTITIES = 20  # CAWG identity assertions summarised

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

_URL = re.compile(r"https?://[^\s\"'<>]+")
# c2pa-rs's words for the anchor set a trusted chain ended in ("found in [user_anchors] trust
# anchors", "trust list: system_anchors"): system = the shipped C2PA lists
_ANCHOR_SET = re.compile(r"\[?(system|user)_anchors\]?")
_IDENTITY_BROKEN = frozenset(
    {
        "cawg.x509.signature.mismatch",
        "cawg.ica.signature_mismatch",
        "cawg.ica.signer_payload.mismatch",
        "cawg.identity.cbor.invalid",
        "cawg.identity.assertion.mismatch",
        "cawg.identity.hard_binding_missing",
    }
)
_REMOTE_PARTS = frozenset({"assertion.inaccessible", "manifest.inaccessible"})
# trust failures about the C2PA claim signer (the others concern a time-stamp or a CAWG
# identity): any of them means the signer is not vouched for, whatever else succeeded
_SIGNER_TRUST_PREFIXES = ("signingCredential.", "claimSignature.", "algorithm.", "com.adobe.")


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
    # who vouches for the signer: "c2pa" (the C2PA trust list), "user" (--trust-anchors),
    # "local-identity" (this machine's fakestudio CA), None (nobody in use; see trust_note)
    trust_list: str | None = None
    trust_note: str | None = None  # one line: who vouches, or why nobody does
    # every failure and informational code of the active manifest (and its ingredients):
    # {"code", "kind" (integrity | trust | information), "explanation", "failure" (bool),
    #  "detail" (c2pa's own words), "scope" ("manifest" | "ingredient" | "identity")}
    codes: list[dict] = field(default_factory=list)
    # CAWG identity assertions: {"label", "credential", "sig_type", "who", "issuer", "roles",
    # "signature_valid", "trusted", "codes", "note"}
    identities: list[dict] = field(default_factory=list)
    # the RFC 3161 time-stamp: {"time", "authority", "trusted" (None: not checked),
    # "trust_list", "codes" (its trust problems)}; None without one
    timestamp: dict | None = None
    online: bool = False  # read with --online (remote manifests and OCSP allowed)

    @property
    def present(self) -> bool:
        """A manifest was found (whatever its validity)."""
        return self.state not in ("absent", "unsupported", "error")

    @property
    def valid(self) -> bool:
        return self.state in ("valid-untrusted", "trusted")

    def to_dict(self) -> dict:
        return asdict(self)


def reader_settings(
    trust_anchors: list[bytes] | list[str] | None = None,
    *,
    online: bool = False,
    trust_lists: bool = False,
) -> dict:
    """c2pa settings for reading. Offline (default): no remote manifests, no OCSP, no network
    at all. `trust_lists`: the shipped C2PA trust lists as c2pa-rs's system anchors (what
    `read_c2pa` uses; off here so the bare settings stay a floor for benchmarks);
    `trust_anchors`: the user's own roots (c2pa-rs's user anchors)."""
    settings: dict[str, Any] = {
        "verify": {
            "remote_manifest_fetch": online,
            "ocsp_fetch": online,
            "verify_after_reading": True,
            "verify_trust": True,
        },
        "core": {} if online else {"allowed_network_hosts": []},
        "trust": {"trust_config": EKU_TRUST_CONFIG},
    }
    if trust_lists:
        settings["trust"]["trust_anchors"] = c2pa_anchors_pem()
    pem = _anchors_pem(trust_anchors)
    if pem:
        settings["trust"]["user_anchors"] = pem
    return settings


def read_c2pa(
    path_or_bytes: str | os.PathLike | bytes | bytearray | memoryview | BinaryIO,
    mime: str | None = None,
    trust_anchors: list[bytes] | list[str] | None = None,
    *,
    local_anchor: bytes | str | None = None,
    online: bool = False,
    trust_lists: bool = True,
) -> C2paResult:
    """Read and validate the C2PA manifest of a file, bytes or an open binary file.

    `trust_anchors`: PEM root certificates the user trusts (`--trust-anchors`);
    `local_anchor`: this machine's fakestudio CA (reported as "local-identity"; it may also
    be among `trust_anchors`); `trust_lists`: also trust the shipped C2PA trust lists.
    Without any of them a good signature reads "valid-untrusted". `online`: fetch remote
    manifests and OCSP answers (never by default). Never raises for a bad input.
    """
    try:
        anchors = _Anchors.of(trust_anchors, local_anchor, trust_lists)
        return _read(path_or_bytes, mime, anchors, online)
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
        online=result.online,
    )


# --- internals ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Anchors:
    """The anchor sets of one read, as PEM text (hashable: contexts are cached by them)."""

    user: str | None  # --trust-anchors, without the local CA
    local: str | None  # the local identity's CA
    lists: bool  # the shipped C2PA trust lists

    @classmethod
    def of(cls, trust_anchors, local_anchor, lists: bool) -> _Anchors:
        local = _anchors_pem(local_anchor)
        user = _anchors_pem(trust_anchors)
        if user and local:  # the local CA given among the user's anchors counts as local
            mine = {_squeeze(c) for c in _PEM_CERT.findall(local)}
            certs = [c for c in _PEM_CERT.findall(user) if _squeeze(c) not in mine]
            user = "\n".join(certs) + "\n" if certs else None
        return cls(user, local, bool(lists))

    @property
    def user_pem(self) -> str | None:
        """c2pa-rs's user anchors: the user's and the local CA together."""
        pem = "".join(p for p in (self.user, self.local) if p)
        return pem or None

    def in_use(self) -> str:
        names = ["the C2PA trust list"] if self.lists else []
        names += ["your --trust-anchors"] if self.user else []
        names += ["your local identity's CA"] if self.local else []
        return ", ".join(names) if names else "no trust list (none configured)"


def _read(source, mime, anchors: _Anchors, online: bool) -> C2paResult:
    if hasattr(source, "read") and hasattr(source, "seek"):  # an open binary file, read whole
        size = source.seek(0, io.SEEK_END)
        source.seek(0)
        if size > MAX_INPUT_BYTES:
            return _too_large(size)
        if mime is None:
            mime = sniff_mime(source.read(_SNIFF_BYTES))
            source.seek(0)
        return _read_stream(source, mime, anchors, online)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) > MAX_INPUT_BYTES:
            return _too_large(len(data))
        return _read_stream(io.BytesIO(data), mime or sniff_mime(data), anchors, online)
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
            mime = (
                sniff_mime(fh.read(_SNIFF_BYTES), path.name) or mimetypes.guess_type(path.name)[0]
            )
            fh.seek(0)
        return _read_stream(fh, mime, anchors, online)


#: formats whose reading starts c2pa-rs's worker-thread pool (lopdf's rayon pool, for PDF): a
#: process forked after that inherits a pool without threads, and its next read of that format
#: never returns (measured with c2pa-python 0.38.1: a PDF read in the parent, then in a forked
#: child). So they are read in a child process of their own (``ISOLATE``; ~0.2 s more a PDF),
#: which also puts a time limit (``ISOLATED_SECONDS``) on the PDF parser.
_POOL_FORMATS = frozenset({"application/pdf"})
ISOLATE = True
ISOLATED_SECONDS = 120.0
_pool_started = False

_CHILD = r"""
import io, json, sys
sys.path.insert(0, sys.argv[1])
from detectors import c2pa as r
r.ISOLATE = False
head = json.loads(sys.stdin.buffer.readline())
data = sys.stdin.buffer.read()
anchors = r._Anchors(head["user"], head["local"], head["lists"])
res = r._read_stream(io.BytesIO(data), head["mime"], anchors, head["online"])
sys.stdout.write(json.dumps(res.to_dict()))
"""


def fork_safe() -> bool:
    """Whether a process forked from this one can still read every format (see
    ``_POOL_FORMATS``); ``detectors.audit`` starts its workers another way when not."""
    return not _pool_started


def _read_isolated(stream, mime: str, anchors: _Anchors, online: bool) -> C2paResult:
    import subprocess
    import sys

    root = str(Path(__file__).resolve().parent.parent)
    head = {"mime": mime, "user": anchors.user, "local": anchors.local, "lists": anchors.lists}
    head["online"] = online
    data = json.dumps(head).encode() + b"\n" + stream.read()
    try:
        proc = subprocess.run(
            [sys.executable, "-I", "-c", _CHILD, root],
            input=data,
            capture_output=True,
            timeout=ISOLATED_SECONDS,
            cwd="/",
        )
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            return C2paResult("error", message=_one_line(err[-1] if err else "reader failed"))
        return C2paResult(**json.loads(proc.stdout))
    except subprocess.TimeoutExpired:
        return C2paResult(
            "error", message=f"the C2PA reader took longer than {ISOLATED_SECONDS:g} s"
        )
    except (OSError, ValueError, TypeError) as e:
        return C2paResult("error", message=_one_line(f"{type(e).__name__}: {e}"))


def _read_stream(stream, mime: str | None, anchors: _Anchors, online: bool) -> C2paResult:
    import c2pa  # loaded here: `import detectors.c2pa` stays cheap

    global _pool_started
    mime = _normal_mime(mime)
    if mime in _POOL_FORMATS:
        if ISOLATE:
            return _read_isolated(stream, mime, anchors, online)
        _pool_started = True
    start = stream.tell()
    try:
        store_json, embedded, remote_url = _reader_json(stream, mime, anchors, online)
    except c2pa.C2paError.ManifestNotFound:
        return C2paResult("absent", message="no C2PA manifest (no credentials)", online=online)
    except c2pa.C2paError.NotSupported as e:
        return C2paResult("unsupported", message=_one_line(str(e)), online=online)
    except c2pa.C2paError as e:
        msg = _one_line(str(e) or type(e).__name__)
        if isinstance(e, c2pa.C2paError.RemoteManifest) or msg.startswith("Remote"):
            url = _URL.search(msg)
            why = (
                f"the manifest is stored remotely and could not be fetched ({msg})"
                if online
                else "the manifest is stored remotely; remote fetching is off (offline; "
                "--online fetches it)"
            )
            return C2paResult(
                "remote-not-fetched",
                message=_one_line(why),
                remote_url=url.group(0) if url else None,
                embedded=False,
                online=online,
            )
        return C2paResult("error", message=msg, online=online)
    result = _summarise(json.loads(store_json), anchors)
    result.embedded = embedded
    result.remote_url = remote_url
    result.online = online
    if result.trust_list and result.trust_list.startswith("?"):  # ask again, one set at a time

        def vouches(only: _Anchors) -> bool:
            stream.seek(start)
            return _signer_trusted(json.loads(_reader_json(stream, mime, only, online)[0]))

        result.trust_list = _which_list(anchors, vouches, result.trust_list)
        result.trust_note = _trust_note(result, anchors)
    return result


def _reader_json(stream, mime, anchors: _Anchors, online: bool):
    import c2pa

    context = _context(os.getpid(), anchors.user_pem, anchors.lists, online)
    with c2pa.Reader(mime, stream, context=context) as reader:
        return reader.json(), _safe(reader.is_embedded), _safe(reader.get_remote_url)


def _which_list(anchors: _Anchors, vouches, hint: str) -> str | None:
    """Which anchor set vouches, by reading again with one set at a time: when c2pa-rs said
    "user anchors" while both --trust-anchors and the local CA were given ("?user"), or did
    not say at all ("?")."""
    if hint == "?user":
        return "local-identity" if vouches(_Anchors(None, anchors.local, False)) else "user"
    if anchors.lists and vouches(_Anchors(None, None, True)):
        return "c2pa"
    if anchors.local and vouches(_Anchors(None, anchors.local, False)):
        return "local-identity"
    if anchors.user and vouches(_Anchors(anchors.user, None, False)):
        return "user"
    return None


def _summarise(store: dict, anchors: _Anchors | None = None) -> C2paResult:
    anchors = anchors or _Anchors(None, None, True)
    manifests = store.get("manifests") or {}
    label = store.get("active_manifest")
    active = manifests.get(label) if isinstance(manifests, dict) else None
    vstate = store.get("validation_state")
    statuses = _statuses(store)
    failures = [
        s["code"] for s in statuses if s["status"] == "failure" and s["scope"] == "manifest"
    ]
    res = C2paResult(
        "error",
        validation_state=vstate,
        status_codes=_unique(failures)[:100],
        manifest_label=_clip(label),
        manifest_count=len(manifests) if isinstance(manifests, dict) else 0,
        codes=_code_entries(statuses),
    )
    res.state, res.message = _classify(vstate, statuses, active is not None)
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
        elif _label_is(alabel, IDENTITY_LABEL) and len(res.identities) < MAX_IDENTITIES:
            res.identities.append(_identity(alabel, data, statuses))
    res.active_manifest = _bounded(active)
    if res.generation is not None and len(json.dumps(res.generation)) > MAX_MANIFEST_JSON:
        res.generation = {"truncated": True}
    if res.state == "trusted":
        res.trust_list = _anchor_set(_explanation(statuses, "signingCredential.trusted"), anchors)
    res.timestamp = _timestamp(res.signed_time, statuses, anchors)
    if not (res.trust_list or "").startswith("?"):
        res.trust_note = _trust_note(res, anchors)
    return res


def _classify(vstate: str | None, statuses: list[dict], has_active: bool) -> tuple[str, str]:
    if not has_active:
        return "error", "manifest store without an active manifest"
    mine = [s for s in statuses if s["scope"] == "manifest"]
    failed = _unique([s["code"] for s in mine if s["status"] == "failure"])
    succeeded = {s["code"] for s in mine if s["status"] == "success"}
    integrity = [c for c in failed if c2pa_codes.kind_of(c) == c2pa_codes.INTEGRITY]
    if integrity:
        signature = [c for c in integrity if c.startswith(("claimSignature.", "algorithm."))]
        changed = [c for c in integrity if c2pa_codes.tampering(c)]
        if signature:
            return "invalid-signature", "the manifest signature does not verify: " + _codes(
                signature
            )
        if changed:
            return "tampered", "the file no longer matches its manifest: " + _codes(changed)
        return "invalid-signature", "the manifest is invalid: " + _codes(integrity)
    remote = [c for c in failed if c in _REMOTE_PARTS]
    if remote:
        return "remote-not-fetched", (
            "part of the manifest is stored remotely and was not fetched: " + _codes(remote)
        )
    verified = vstate in ("Valid", "Trusted") or "claimSignature.validated" in succeeded
    if not verified:
        why = _codes(failed) if failed else f"validation state {vstate!r}"
        return "invalid-signature", f"the signature could not be verified ({why})"
    signer_problems = [c for c in failed if c.startswith(_SIGNER_TRUST_PREFIXES)]
    others = [
        s["code"] for s in statuses if s["status"] == "failure" and s["scope"] == "ingredient"
    ]
    if "signingCredential.trusted" in succeeded and not signer_problems and not others:
        return "trusted", "valid signature from a trusted certificate"
    if signer_problems:
        return "valid-untrusted", "valid signature, signer not vouched for: " + _codes(
            signer_problems
        )
    if others:
        return "valid-untrusted", "valid signature; an ingredient's own credentials fail: " + (
            _codes(others)
        )
    return "valid-untrusted", "valid signature; the certificate is not on a trust list"


def _statuses(store: dict) -> list[dict]:
    """Every status c2pa reported: {"code", "status" (success | informational | failure),
    "scope" (manifest | ingredient), "url", "detail"}, bounded."""
    out: list[dict] = []
    results = store.get("validation_results")

    def add(entries, status: str, scope: str) -> None:
        for entry in entries or []:
            if len(out) >= MAX_STATUSES:
                return
            code = entry.get("code") if isinstance(entry, dict) else None
            if isinstance(code, str) and code:
                out.append(
                    {
                        "code": _clip(code, 200),
                        "status": status,
                        "scope": scope,
                        "url": _clip(str(entry.get("url") or ""), 500),
                        "detail": _clip(str(entry.get("explanation") or ""), 300),
                    }
                )

    if isinstance(results, dict):
        active = results.get("activeManifest")
        if isinstance(active, dict):
            for status in ("failure", "informational", "success"):
                add(active.get(status), status, "manifest")
        for delta in results.get("ingredientDeltas") or []:
            deltas = delta.get("validationDeltas") if isinstance(delta, dict) else None
            if isinstance(deltas, dict):
                for status in ("failure", "informational"):
                    add(deltas.get(status), status, "ingredient")
    if not out and isinstance(store.get("validation_status"), list):  # older readers
        add(store["validation_status"], "failure", "manifest")
    return out


def _code_entries(statuses: list[dict]) -> list[dict]:
    """Failures and notes (not successes) with their kind and meaning, each code once."""
    seen, out = set(), []
    for s in statuses:
        if s["status"] == "success" or (s["code"], s["scope"]) in seen:
            continue
        seen.add((s["code"], s["scope"]))
        scope = s["scope"]
        if scope == "manifest" and "/c2pa.assertions/cawg.identity" in s["url"]:
            scope = "identity"
        out.append(
            {
                "code": s["code"],
                "kind": c2pa_codes.kind_of(s["code"]),
                "explanation": c2pa_codes.explain(s["code"]),
                "failure": s["status"] == "failure",
                "detail": s["detail"],
                "scope": scope,
            }
        )
    return out


def _identity(label: str, data, statuses: list[dict]) -> dict:
    """One CAWG identity assertion: who it names, with which credential, vouched for or not."""
    data = data if isinstance(data, dict) else {}
    mine = [s for s in statuses if s["url"].endswith("/c2pa.assertions/" + label)]
    codes = {s["code"] for s in mine}
    payload = data.get("signer_payload") or data.get("c2paAsset") or {}
    sig_type = _clip(str(payload.get("sig_type") or "")) or None
    who, issuer = None, None
    if sig_type == "cawg.x509.cose":
        credential = "X.509 certificate"
        info = data.get("signature_info") or {}
        who, issuer = _clip(info.get("common_name")), _clip(info.get("issuer"))
    elif sig_type == "cawg.identity_claims_aggregation":
        credential = "identity claims aggregation (verifiable credential)"
        issuer = _clip(str(data.get("issuer") or "")) or None
        names = []
        for ident in (data.get("verifiedIdentities") or [])[:10]:
            if isinstance(ident, dict):
                name = ident.get("name") or ident.get("username") or ident.get("uri") or "?"
                provider = (ident.get("provider") or {}).get("name")
                kind = str(ident.get("type") or "").removeprefix("cawg.")
                extra = ", ".join(x for x in (provider, kind) if x)
                names.append(f"{name} ({extra})" if extra else str(name))
        who = _clip("; ".join(names)) or None
    else:
        credential = sig_type or "unknown"
    failures = [s["code"] for s in mine if s["status"] == "failure"]
    untrusted = [
        s["code"]
        for s in mine
        if s["status"] != "success" and c2pa_codes.kind_of(s["code"]) == c2pa_codes.TRUST
    ]
    valid: bool | None = None  # not checked
    if codes & _IDENTITY_BROKEN:
        valid = False
    elif codes & {"cawg.identity.well-formed", "cawg.x509.signature.validated"}:
        valid = True
    trusted: bool | None
    if codes & {
        "cawg.x509.credential.trusted",
        "cawg.ica.credential_valid",
        "cawg.identity.trusted",
    }:
        trusted = not untrusted
    elif untrusted or failures:
        trusted = False
    else:
        trusted = None
    problems = _unique(failures + untrusted)
    if problems:
        note = c2pa_codes.explain(problems[0])
    elif trusted:
        note = "the identity's credential is vouched for"
    else:
        note = "the identity's credential was not checked"
    return {
        "label": _clip(label),
        "credential": credential,
        "sig_type": sig_type,
        "who": who,
        "issuer": issuer,
        "roles": [_clip(str(r)) for r in (payload.get("roles") or [])[:10]],
        "signature_valid": valid,
        "trusted": trusted,
        "codes": problems[:20],
        "note": note,
    }


def _timestamp(signed_time, statuses: list[dict], anchors: _Anchors) -> dict | None:
    mine = [s for s in statuses if s["code"].startswith("timeStamp.") and s["scope"] == "manifest"]
    if not signed_time and not mine:
        return None
    codes = {s["code"] for s in mine}
    authority = None
    for s in mine:
        if ": " in s["detail"]:
            authority = _clip(s["detail"].split(": ", 1)[1].split(", trust list")[0], 200)
            break
    problems = codes - {"timeStamp.validated", "timeStamp.trusted"}
    trusted = None  # not checked
    if "timeStamp.trusted" in codes and not problems:
        trusted = True
    elif problems:
        trusted = False
    where = (
        _anchor_set(_explanation(statuses, "timeStamp.trusted"), anchors, guess=False)
        if trusted
        else None
    )
    return {
        "time": signed_time,
        "authority": authority,
        "trusted": trusted,
        "trust_list": None if where is None or where.startswith("?") else where,
        "codes": sorted(problems),
    }


def _signer_trusted(store: dict) -> bool:
    statuses = _statuses(store)
    return _classify(store.get("validation_state"), statuses, True)[0] == "trusted"


def _anchor_set(explanation: str | None, anchors: _Anchors, guess: bool = True) -> str | None:
    """ "c2pa", "user" or "local-identity" from c2pa-rs's words ("found in [user_anchors]",
    "trust list: system_anchors"); "?user" when they say user anchors but both the user's and
    the local CA are configured; when they name no set: the one set configured (`guess`),
    else "?" (unknown). Legacy time-stamps name none: c2pa-rs does not check them against a
    list, so they get None."""
    found = _ANCHOR_SET.search(explanation or "")
    if found and found.group(1) == "system":
        return "c2pa" if anchors.lists else "?"
    if found and found.group(1) == "user":
        if anchors.local and anchors.user:
            return "?user"
        return "local-identity" if anchors.local else ("user" if anchors.user else "?")
    if not guess:
        return None
    configured = [
        name
        for name, on in (
            ("c2pa", anchors.lists),
            ("user", anchors.user),
            ("local-identity", anchors.local),
        )
        if on
    ]
    return configured[0] if len(configured) == 1 else "?"


def _explanation(statuses: list[dict], code: str) -> str | None:
    for s in statuses:
        if s["code"] == code and s["scope"] == "manifest":
            return s["detail"]
    return None


def _trust_note(res: C2paResult, anchors: _Anchors) -> str | None:
    if res.state == "trusted":
        if res.trust_list in LISTS:
            return f"vouched for by {LISTS[res.trust_list]}"
        return "vouched for by a trust anchor in use"
    if res.state != "valid-untrusted":
        return None
    signer = [c for c in res.status_codes if c.startswith(_SIGNER_TRUST_PREFIXES)]
    if signer and signer != ["signingCredential.untrusted"]:
        other = next(c for c in signer if c != "signingCredential.untrusted")
        return f"not vouched for: {c2pa_codes.explain(other)}"
    return f"not vouched for: the signer's certificate chains to none of {anchors.in_use()}"


@lru_cache(maxsize=16)
def _context(pid: int, anchors_pem: str | None, trust_lists: bool = False, online: bool = False):
    """One c2pa Context per trust and network setting (and per process: never reuse one
    across fork)."""
    import c2pa

    config = reader_settings(
        [anchors_pem] if anchors_pem else None, online=online, trust_lists=trust_lists
    )
    settings = c2pa.Settings.from_dict(config)
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


_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)


def _squeeze(pem: str) -> str:
    return "".join(pem.split())


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _codes(codes: list[str]) -> str:
    return ", ".join(_unique(codes)[:10])


_SNIFF_BYTES = 4096  # detectors.media.HEAD_BYTES


def sniff_mime(head: bytes, name: str | None = None) -> str | None:
    """The MIME type C2PA is asked with, from a file's first bytes (up to 4 KB are looked
    at; fewer tell most formats): every format c2pa-python reads, by ``detectors.media``."""
    from detectors.media import identify

    mt = identify(head, name)
    return mt.mime if mt is not None else None


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
