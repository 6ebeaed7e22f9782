"""Signals and the verdict: what can honestly be said about where an image came from.

A verdict is one of a small closed set of ``OUTCOMES``; it never says an image is real or
authentic (no check can show that), and it always carries the "do not trust your eyes"
message, worded for the case.

| outcome              | meaning                                                              | exit |
| -------------------- | -------------------------------------------------------------------- | ---- |
| `labelled-ai`        | a valid (or trusted) C2PA manifest declares AI-generated media       | 0    |
| `ai-watermark`       | an AI watermark (fakestudio's, SD v1's, SDXL's), no valid AI manifest | 0    |
| `recovered`          | the label was stripped; the local ledger holds the original output  | 0    |
| `ai-metadata`        | only metadata claims an AI tool (unsigned text, easily forged)       | 0    |
| `credentials-not-ai` | valid credentials that do not declare AI                             | 1    |
| `no-provenance`      | nothing found: which proves nothing                                  | 1    |
| `tampered`           | a manifest is present but invalid: pixels or credentials changed     | 3    |
| `unreadable`         | the file could not be analysed                                       | 4    |

Exit code 2 is reserved for usage errors. With several images the CLI exits with the most
urgent code among them: 3, then 4, then 1, then 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from detectors.metadata import AI_SOURCE_TYPES, is_ai_source_type

SOURCES = ("c2pa", "watermark", "metadata", "ledger", "forensics", "registry")
#: fakestudio's own marks: the first (exact, fixed grid) and the durable one (survives edits).
OUR_SCHEMES = ("fakestudio", "fakestudio-durable")

OUTCOMES = (
    "labelled-ai",
    "ai-watermark",
    "recovered",
    "ai-metadata",
    "credentials-not-ai",
    "no-provenance",
    "tampered",
    "unreadable",
)

EXIT_CODES = {
    "labelled-ai": 0,
    "ai-watermark": 0,
    "recovered": 0,
    "ai-metadata": 0,
    "credentials-not-ai": 1,
    "no-provenance": 1,
    "tampered": 3,
    "unreadable": 4,
}
EXIT_USAGE = 2
#: Most urgent first: the exit code of a run over several images.
EXIT_PRIORITY = (3, 4, 1, 0)

#: Audit summary categories.
CATEGORIES = {
    "labelled-ai": "labelled",
    "ai-watermark": "labelled",
    "recovered": "labelled",
    "ai-metadata": "ai-metadata",
    "credentials-not-ai": "unlabelled",
    "no-provenance": "unlabelled",
    "tampered": "tampered",
    "unreadable": "unreadable",
}
CATEGORY_ORDER = ("labelled", "unlabelled", "tampered", "ai-metadata", "unreadable")

EYES = "Do not trust your eyes: a convincing picture is no evidence, generated images look like photographs."

MESSAGES = {
    "labelled-ai": (
        "A label says who made this file, not whether what it shows happened. Check the signer: "
        "anyone can sign with a certificate of their own, and an untrusted signer proves only "
        "that the file is unchanged since it was signed. " + EYES
    ),
    "ai-watermark": (
        "An invisible watermark says an AI generator made these pixels. Watermarks can be "
        "destroyed by cropping, rotation or heavy compression, so their absence elsewhere proves "
        "nothing. " + EYES
    ),
    "recovered": (
        "This copy lost its label (re-encoded, resized or screenshotted), but its invisible "
        "watermark ties it to an output recorded in your local ledger; the recovered details "
        "are your own record, not a signature anyone else can check. " + EYES
    ),
    "ai-metadata": (
        "Only unsigned metadata says an AI tool made this image. Such text is a claim anyone "
        "can write, copy or remove; it proves nothing either way. " + EYES
    ),
    "credentials-not-ai": (
        "These Content Credentials do not declare AI, and they only describe what the signer "
        "chose to record: tools that leave no record may still have been used. Check the signer "
        "and the listed actions. " + EYES
    ),
    "no-provenance": (
        "A missing label proves nothing: most AI images carry none, and every upload to a "
        "platform strips metadata and credentials. Nothing here says this image is or is not "
        "AI-generated. " + EYES
    ),
    "tampered": (
        "The file changed after it was signed (its pixels, its metadata or the credentials "
        "themselves), so the manifest no longer describes these bytes and cannot be relied on. "
        "Look for the original. " + EYES
    ),
    "unreadable": (
        "This file could not be analysed, so nothing can be said about where it came from. "
        "Try the original file. " + EYES
    ),
}


@dataclass
class Signal:
    """One piece of evidence: ``source`` one of ``SOURCES``, a short ``finding`` (a stable
    machine word such as ``manifest-ai`` or ``watermark-found``), ``confidence`` in 0..1 (how
    much the finding can be relied on, not the probability the image is AI), ``details``."""

    source: str
    finding: str
    confidence: float
    details: dict[str, Any] = field(default_factory=dict)
    summary: str = ""  # one human line

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"unknown signal source {self.source!r}")
        self.confidence = round(max(0.0, min(1.0, float(self.confidence))), 6)

    def to_dict(self) -> dict:
        return shallow_dict(self)


@dataclass
class Verdict:
    outcome: str
    headline: str
    message: str
    exit_code: int
    category: str
    reasons: list[str] = field(default_factory=list)

    def __post_init__(self):
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r}")

    def to_dict(self) -> dict:
        return shallow_dict(self)


def shallow_dict(obj) -> dict:
    """A dataclass as a dict, without ``asdict``'s deep copy (reports are snapshots; the copy
    cost ~1 ms per verified image)."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def make_verdict(outcome: str, headline: str, reasons: Iterable[str] = ()) -> Verdict:
    return Verdict(
        outcome=outcome,
        headline=headline,
        message=MESSAGES[outcome],
        exit_code=EXIT_CODES[outcome],
        category=CATEGORIES[outcome],
        reasons=list(reasons),
    )


def combined_exit_code(codes: Iterable[int]) -> int:
    """The exit code of a run over several images: the most urgent one (3, 4, 1, then 0)."""
    seen = set(codes)
    for code in EXIT_PRIORITY:
        if code in seen:
            return code
    return 0


def decide(
    *,
    readable: bool,
    unreadable_reason: str | None = None,
    c2pa: dict | None = None,
    watermarks: list[dict] | None = None,
    metadata: dict | None = None,
    ledger: dict | None = None,
    registry: dict | None = None,
) -> Verdict:
    """The verdict from the evidence (plain dicts, as in a report).

    Precedence: an invalid manifest (tampered) > a valid manifest declaring AI > unreadable
    pixels > AI watermark / ledger recovery > valid credentials without AI > metadata claims >
    nothing.
    """
    c2pa = c2pa or {}
    watermarks = watermarks or []
    metadata = metadata or {}
    state = c2pa.get("state")
    found = [w for w in watermarks if w.get("found")]
    ours = next((w for w in found if w.get("scheme") in OUR_SCHEMES), None)
    sd = [w for w in found if w.get("scheme") not in OUR_SCHEMES]
    matched = bool(ledger and ledger.get("matched"))
    reasons: list[str] = []

    if state in ("tampered", "invalid-signature") or credentials_broken(c2pa):
        codes = ", ".join(c2pa.get("status_codes") or []) or c2pa.get("message") or state
        if state == "tampered":
            head = "Tampered: the file no longer matches its signed Content Credentials"
        elif state == "damaged":
            head = "Damaged Content Credentials: a C2PA store is present but cannot be read"
        else:
            head = "Invalid Content Credentials: the manifest cannot be relied on"
        reasons.append(f"C2PA: {codes}")
        if ours and matched:
            reasons.append("the watermark still ties it to an output in your ledger")
        elif ours:
            reasons.append("fakestudio's invisible watermark is still present")
        elif sd:
            reasons.append(f"{_marks(sd)} watermark present")
        return make_verdict("tampered", head, reasons)

    valid = state in ("valid-untrusted", "trusted")
    ai_manifest = valid and manifest_declares_ai(c2pa)
    if ai_manifest:
        who = c2pa.get("signer") or c2pa.get("issuer") or "an unnamed signer"
        trust = "trusted" if state == "trusted" else "valid but untrusted"
        dst = _code(c2pa.get("digital_source_type")) or "AI"
        reasons.append(f"C2PA {trust}, digitalSourceType {dst}, signed by {who}")
        return make_verdict(
            "labelled-ai",
            f"Labelled AI-generated: Content Credentials ({trust}) signed by {who}",
            reasons,
        )

    if not readable:
        return make_verdict(
            "unreadable",
            f"Could not analyse this file ({_strip(unreadable_reason) or 'unreadable'})",
            [unreadable_reason or "unreadable"],
        )

    if registry and registry.get("matched"):
        return _registry_verdict(registry)

    if matched:
        how = ledger.get("how")
        entry = ledger.get("entry") or {}
        prov = entry.get("provenance") or {}
        gen = prov.get("generator") or "fakestudio"
        if prov.get("labelled_by"):
            gen = f"{gen}, labelled by {prov['labelled_by']}"
        reasons.append(f"ledger match by {how}")
        return make_verdict(
            "recovered",
            f"AI-generated: provenance recovered from your ledger ({gen}, created {entry.get('created', '?')})",
            reasons,
        )

    if ours or sd:
        names = _marks(found)
        if valid:
            reasons.append("valid Content Credentials that do not declare AI")
        reasons += [
            f"{w['scheme']} watermark, confidence {w.get('confidence', 0):.2f}" for w in found
        ]
        extra = " (its Content Credentials do not say so)" if valid else ""
        return make_verdict(
            "ai-watermark", f"AI-generated per invisible watermark: {names}{extra}", reasons
        )

    if valid:
        acts = ", ".join(c2pa.get("actions") or []) or "no actions recorded"
        who = c2pa.get("signer") or c2pa.get("issuer") or "an unnamed signer"
        reasons.append(f"actions: {acts}")
        return make_verdict(
            "credentials-not-ai",
            f"Content Credentials signed by {who} that do not declare AI (actions: {acts})",
            reasons,
        )

    if metadata.get("ai_claimed"):
        tools = ", ".join(metadata.get("ai_tools") or []) or "an AI tool"
        reasons += [c["summary"] for c in metadata.get("claims", []) if c.get("ai")]
        return make_verdict(
            "ai-metadata", f"Metadata claims AI generation ({tools}); unsigned, not proof", reasons
        )

    if state == "remote-not-fetched":
        url = c2pa.get("remote_url") or "a remote address"
        head = f"No provenance checked: the Content Credentials are stored remotely ({url}) and were not fetched"
        reasons.append("remote manifest not fetched (offline)")
    elif ledger and ledger.get("candidates"):
        head = "No provenance found (a similar image in your ledger could not be confirmed)"
        reasons.append("perceptual-hash candidate without a matching watermark")
    else:
        head = "No provenance found: no credentials, no known watermark, no generator metadata"
    if metadata.get("camera"):
        reasons.append("camera EXIF present (a claim, easily written or removed)")
    return make_verdict("no-provenance", head, reasons)


REGISTRY_MESSAGE = (
    "This copy lost its label, but a soft-binding registry returned the signed manifest that "
    "its invisible watermark points to, and the signature checks out. That ties the copy to a "
    "signed claim by whoever holds the signing key; it does not show that this copy is "
    "unchanged (its bytes are not the signed file's) nor who the signer really is, unless you "
    "trust their certificate. " + EYES
)


def _registry_verdict(registry: dict) -> Verdict:
    c2pa = registry.get("c2pa") or {}
    who = c2pa.get("signer") or c2pa.get("issuer") or "an unnamed signer"
    trust = "trusted" if c2pa.get("state") == "trusted" else "valid but untrusted"
    reasons = [
        f"registry {registry.get('url')}: manifest {registry.get('manifest_id')} "
        f"({trust} signature, signed by {who}), matched by {registry.get('how')}"
    ]
    if manifest_declares_ai(c2pa):
        dst = _code(c2pa.get("digital_source_type")) or "AI"
        v = make_verdict(
            "recovered",
            f"AI-generated: signed provenance recovered from the registry {registry.get('url')} "
            f"({dst}, signed by {who})",
            reasons,
        )
        v.message = REGISTRY_MESSAGE
        return v
    return make_verdict(
        "credentials-not-ai",
        f"Content Credentials recovered from the registry {registry.get('url')}, signed by "
        f"{who}, that do not declare AI",
        reasons,
    )


def manifest_declares_ai(c2pa: dict) -> bool:
    """Whether any action of the active manifest carries an AI digitalSourceType."""
    if is_ai_source_type(c2pa.get("digital_source_type")):
        return True
    active = c2pa.get("active_manifest") or {}
    for assertion in active.get("assertions") or []:
        if not isinstance(assertion, dict) or not str(assertion.get("label", "")).startswith(
            "c2pa.actions"
        ):
            continue
        data = assertion.get("data") if isinstance(assertion.get("data"), dict) else {}
        for action in data.get("actions") or []:
            if isinstance(action, dict) and is_ai_source_type(action.get("digitalSourceType")):
                return True
    return False


def credentials_broken(c2pa: dict) -> bool:
    """A c2pa "error" that comes from a manifest it found but could not parse (junk JUMBF,
    a malformed claim), as opposed to a file it could not read at all; or a store found in the
    container that the reader could not read ("damaged")."""
    if c2pa.get("state") == "damaged":
        return True
    if c2pa.get("state") != "error":
        return False
    msg = str(c2pa.get("message") or "").lower()
    return any(
        w in msg for w in ("jumbf", "jumd", "manifest", "claim", "cbor", "assertion", "verify:")
    )


def _marks(found: list[dict]) -> str:
    names = {
        "fakestudio": "fakestudio",
        "fakestudio-durable": "fakestudio (durable mark)",
        "sd-v1": "Stable Diffusion v1",
        "sdxl": "SDXL",
    }
    return ", ".join(dict.fromkeys(names.get(w.get("scheme"), str(w.get("scheme"))) for w in found))


def _code(dst: str | None) -> str | None:
    return str(dst).rstrip("/").rsplit("/", 1)[-1] if dst else None


def _strip(reason: str | None) -> str | None:
    if reason and reason.startswith("unreadable: "):
        return reason[len("unreadable: ") :]
    return reason


__all__ = [
    "AI_SOURCE_TYPES",
    "CATEGORIES",
    "CATEGORY_ORDER",
    "EXIT_CODES",
    "EXIT_PRIORITY",
    "EXIT_USAGE",
    "MESSAGES",
    "OUTCOMES",
    "SOURCES",
    "Signal",
    "Verdict",
    "combined_exit_code",
    "credentials_broken",
    "decide",
    "is_ai_source_type",
    "make_verdict",
    "shallow_dict",
    "manifest_declares_ai",
]
