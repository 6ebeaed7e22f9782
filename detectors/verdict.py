"""The verdict: what can honestly be said about where an image came from, and how firmly.

The verdict is computed from the evidence (``detectors.evidence.collect``: one list of
``Signal`` findings, the only place raw check results are interpreted) by one rule table,
``RULES``: the first rule whose findings are present decides the outcome and its **tier**. The
signals a report shows and the verdict it gives therefore cannot disagree.

Tiers (how firmly the outcome stands):

| tier        | meaning                                                                          |
| ----------- | -------------------------------------------------------------------------------- |
| `confirmed` | a signed manifest (embedded, or returned by a registry) validates, and this     |
|             | picture is what it was signed for (its hard binding, or the content check)      |
| `recorded`  | your own ledger holds the output, and this picture matches it (not a signature: |
|             | only you can check it)                                                           |
| `claimed`   | a watermark or metadata says so, with nothing signed behind it that matches     |
|             | this picture: watermarks can be copied or forged with public code               |
| `mismatch`  | a label points to a record of another picture: it says nothing about this one   |
| `broken`    | credentials are present but do not hold (tampered, invalid, damaged)            |
| `none`      | nothing was found, or the file could not be analysed                            |

Outcomes (a small closed set; none says an image is real):

| outcome              | tier                 | meaning                                       | exit |
| -------------------- | -------------------- | --------------------------------------------- | ---- |
| `labelled-ai`        | confirmed            | a valid C2PA manifest declares AI media       | 0    |
| `recovered`          | confirmed / recorded | the label was stripped; a registry's signed   | 0    |
|                      |                      | manifest or your ledger holds the output, and |      |
|                      |                      | this picture matches it                       |      |
| `ai-watermark`       | claimed              | an AI watermark, nothing signed that matches  | 0    |
| `ai-metadata`        | claimed              | only unsigned metadata claims an AI tool      | 0    |
| `credentials-not-ai` | confirmed            | valid credentials that do not declare AI      | 1    |
| `no-provenance`      | none                 | nothing found: which proves nothing           | 1    |
| `label-mismatch`     | mismatch             | the label was copied from another picture     | 3    |
| `tampered`           | broken               | a manifest is present but invalid or damaged  | 3    |
| `unreadable`         | none                 | the file could not be analysed                | 4    |

Exit code 2 is reserved for usage errors. With several images the CLI exits with the most
urgent code among them: 3, then 4, then 1, then 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields

from detectors.evidence import (
    OUR_SCHEMES,
    SOURCES,
    Findings,
    Signal,
    credentials_broken,
    manifest_declares_ai,
)
from detectors.metadata import AI_SOURCE_TYPES, is_ai_source_type

OUTCOMES = (
    "labelled-ai",
    "ai-watermark",
    "recovered",
    "ai-metadata",
    "credentials-not-ai",
    "no-provenance",
    "label-mismatch",
    "tampered",
    "unreadable",
)
TIERS = ("confirmed", "recorded", "claimed", "mismatch", "broken", "none")

EXIT_CODES = {
    "labelled-ai": 0,
    "ai-watermark": 0,
    "recovered": 0,
    "ai-metadata": 0,
    "credentials-not-ai": 1,
    "no-provenance": 1,
    "label-mismatch": 3,
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
    "label-mismatch": "mismatch",
    "tampered": "tampered",
    "unreadable": "unreadable",
}
CATEGORY_ORDER = ("labelled", "unlabelled", "tampered", "mismatch", "ai-metadata", "unreadable")

EYES = "Do not trust your eyes: a convincing picture is no evidence, generated images look like photographs."
COPYABLE = (
    "An invisible watermark is a claim, not a signature: anyone can read it, and with public "
    "code copy it onto another picture, forge one, or remove it."
)

MESSAGES = {
    "labelled-ai": (
        "A label says who made this file, not whether what it shows happened. Check the signer: "
        "anyone can sign with a certificate of their own, and an untrusted signer proves only "
        "that the file is unchanged since it was signed. " + EYES
    ),
    "ai-watermark": (
        "An invisible watermark says an AI generator made these pixels, but nothing signed "
        "confirms that it belongs to this picture. " + COPYABLE + " Watermarks are also "
        "destroyed by heavy edits, so their absence elsewhere proves nothing. " + EYES
    ),
    "recovered": (
        "This copy lost its label (re-encoded, resized or screenshotted), but a record of the "
        "original output was found and this picture matches it; the recovered details are that "
        "record, not a signature on this copy's bytes. " + EYES
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
    "label-mismatch": (
        "This picture carries a label copied from another picture: the label says nothing about "
        "this one. Watermarks are public, so anyone can copy one onto any picture, for instance "
        "to make a photograph look AI-generated. Whether this picture is AI-generated is not "
        "known from its label. " + EYES
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

REGISTRY_MESSAGE = (
    "This copy lost its label, but a soft-binding registry returned a signed manifest whose "
    "signature checks out, and this picture matches the content it was signed for. That ties "
    "the copy to a signed claim by whoever holds the signing key; it does not show that this "
    "copy is unchanged (its bytes are not the signed file's) nor who the signer really is, "
    "unless you trust their certificate. " + EYES
)
LEDGER_MESSAGE = (
    "This copy lost its label (re-encoded, resized or screenshotted), but your local ledger "
    "holds the original output and this picture matches it; the recovered details are your own "
    "record, not a signature anyone else can check. " + EYES
)


@dataclass
class Verdict:
    outcome: str
    headline: str
    message: str
    exit_code: int
    category: str
    reasons: list[str] = field(default_factory=list)
    tier: str = "none"
    rule: str = ""  # the name of the rule that decided

    def __post_init__(self):
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r}")
        if self.tier not in TIERS:
            raise ValueError(f"unknown tier {self.tier!r}")

    def to_dict(self) -> dict:
        return shallow_dict(self)


def shallow_dict(obj) -> dict:
    """A dataclass as a dict, without ``asdict``'s deep copy (reports are snapshots; the copy
    cost ~1 ms per verified image)."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def make_verdict(
    outcome: str, headline: str, reasons: Iterable[str] = (), tier: str | None = None
) -> Verdict:
    return Verdict(
        outcome=outcome,
        headline=headline,
        message=MESSAGES[outcome],
        exit_code=EXIT_CODES[outcome],
        category=CATEGORIES[outcome],
        reasons=list(reasons),
        tier=tier or DEFAULT_TIERS[outcome],
    )


DEFAULT_TIERS = {
    "labelled-ai": "confirmed",
    "ai-watermark": "claimed",
    "recovered": "recorded",
    "ai-metadata": "claimed",
    "credentials-not-ai": "confirmed",
    "no-provenance": "none",
    "label-mismatch": "mismatch",
    "tampered": "broken",
    "unreadable": "none",
}


def combined_exit_code(codes: Iterable[int]) -> int:
    """The exit code of a run over several images: the most urgent one (3, 4, 1, then 0)."""
    seen = set(codes)
    for code in EXIT_PRIORITY:
        if code in seen:
            return code
    return 0


# --- the rule table -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One row of the table: when ``applies`` holds for the findings, the verdict is
    ``outcome`` at ``tier``, worded by ``headline`` and ``reasons``."""

    name: str
    outcome: str
    tier: str
    applies: Callable[[Findings], bool]
    headline: Callable[[Findings], str]
    reasons: Callable[[Findings], list[str]] = lambda f: []
    message: str | None = None


def decide_from(signals: list[Signal]) -> Verdict:
    """The verdict of a list of findings: the first rule of ``RULES`` that applies."""
    f = Findings(signals)
    for rule in RULES:
        if rule.applies(f):
            v = make_verdict(rule.outcome, rule.headline(f), rule.reasons(f), rule.tier)
            v.rule = rule.name
            if rule.message:
                v.message = rule.message
            return v
    raise AssertionError("the last rule always applies")  # pragma: no cover


def _who(d: dict) -> str:
    return d.get("signer") or d.get("issuer") or "an unnamed signer"


def _code(dst: str | None) -> str | None:
    return str(dst).rstrip("/").rsplit("/", 1)[-1] if dst else None


def _trust_word(d: dict) -> str:
    return "trusted" if d.get("state") == "trusted" else "valid but untrusted"


def _broken_headline(f: Findings) -> str:
    s = f.first("manifest-damaged", "manifest-tampered", "manifest-invalid")
    if s.finding == "manifest-tampered":
        return "Tampered: the file no longer matches its signed Content Credentials"
    if s.finding == "manifest-damaged":
        return "Damaged Content Credentials: a C2PA store is present but cannot be read"
    return "Invalid Content Credentials: the manifest cannot be relied on"


def _broken_reasons(f: Findings) -> list[str]:
    s = f.first("manifest-damaged", "manifest-tampered", "manifest-invalid")
    codes = ", ".join(s.details.get("codes") or []) or s.summary or "invalid"
    out = [f"C2PA: {codes}"]
    if f.has("ledger-match"):
        out.append("the watermark still ties it to an output in your ledger")
    elif f.our_mark():
        out.append("fakestudio's invisible watermark is still present (a claim: copyable)")
    elif f.marks():
        out.append(f"{_marks(f.marks())} watermark present (a claim: copyable)")
    return out


def _ai_manifest_headline(f: Findings) -> str:
    d = f.first("manifest-ai").details
    return f"Labelled AI-generated: Content Credentials ({_trust_word(d)}) signed by {_who(d)}"


def _ai_manifest_reasons(f: Findings) -> list[str]:
    d = f.first("manifest-ai").details
    dst = _code(d.get("digital_source_type")) or "AI"
    out = [f"C2PA {_trust_word(d)}, digitalSourceType {dst}, signed by {_who(d)}"]
    if d.get("trust_note"):
        out.append(f"who vouches: {d['trust_note']}")
    for ident in d.get("identities") or []:
        trusted = {True: "trusted", False: "not trusted"}.get(ident.get("trusted"), "unchecked")
        out.append(f"identity: {ident.get('who') or '?'} ({ident.get('credential')}, {trusted})")
    return out


def _mismatch_headline(f: Findings) -> str:
    s = f.first("content-mismatch")
    where = "your ledger" if s.details.get("record") == "ledger" else "the registry"
    return (
        "Label mismatch: this picture carries a label copied from another picture "
        f"(it points to {s.details.get('record_name') or 'an output'} in {where}): "
        "the label says nothing about this one"
    )


def _mismatch_reasons(f: Findings) -> list[str]:
    out = [s.summary for s in f.all("content-mismatch")]
    for w in f.marks():
        if w.details.get("payload"):
            out.append(f"{w.details.get('scheme')} watermark payload {w.details['payload']}")
    return out


def _registry_ok(f: Findings) -> bool:
    return f.has("registry-match")


def _registry_ai(f: Findings) -> bool:
    return _registry_ok(f) and f.first("registry-match").details.get("declares_ai", False)


def _registry_headline(f: Findings) -> str:
    d = f.first("registry-match").details
    dst = _code(d.get("digital_source_type")) or "AI"
    return (
        f"AI-generated: signed provenance recovered from the registry {d.get('url')} "
        f"({dst}, signed by {_who(d)}); this picture matches it"
    )


def _registry_not_ai_headline(f: Findings) -> str:
    d = f.first("registry-match").details
    return (
        f"Content Credentials recovered from the registry {d.get('url')}, signed by "
        f"{_who(d)}, that do not declare AI"
    )


def _registry_reasons(f: Findings) -> list[str]:
    s = f.first("registry-match")
    out = [s.summary]
    out += [c.summary for c in f.all("content-match") if c.details.get("record") == "registry"]
    return out


def _ledger_ok(f: Findings) -> bool:
    return f.has("ledger-match")


def _ledger_headline(f: Findings) -> str:
    d = f.first("ledger-match").details
    gen = d.get("generator") or "fakestudio"
    if d.get("labelled_by"):
        gen = f"{gen}, labelled by {d['labelled_by']}"
    if d.get("digital_source_type") and not d.get("declares_ai"):
        return (
            f"Provenance recovered from your ledger ({gen}, created {d.get('created', '?')}): "
            f"an output of fakestudio's that does not declare AI "
            f"({_code(d.get('digital_source_type'))})"
        )
    return (
        f"AI-generated: provenance recovered from your ledger ({gen}, created "
        f"{d.get('created', '?')})"
    )


def _ledger_reasons(f: Findings) -> list[str]:
    out = [f"ledger match by {f.first('ledger-match').details.get('how')}"]
    out += [c.summary for c in f.all("content-match") if c.details.get("record") == "ledger"]
    return out


def _claimed(f: Findings) -> bool:
    return bool(f.marks()) or f.has("ledger-pointer", "registry-pointer")


def _claimed_headline(f: Findings) -> str:
    names = _marks(f.marks()) or "fakestudio"
    extra = " (its Content Credentials do not say so)" if f.has("manifest-not-ai") else ""
    rec = f.first("ledger-pointer", "registry-pointer")
    if rec is not None:
        where = "your ledger" if rec.source == "ledger" else "a registry"
        return (
            f"AI-generated per invisible watermark: {names}{extra}; unconfirmed: it points to "
            f"an output in {where}, but this picture could not be compared with it"
        )
    return f"AI-generated per invisible watermark: {names}{extra}; unconfirmed (a watermark alone is a claim)"


def _claimed_reasons(f: Findings) -> list[str]:
    out = []
    if f.has("manifest-not-ai"):
        out.append("valid Content Credentials that do not declare AI")
    out += [
        f"{w.details.get('scheme')} watermark, confidence {w.confidence:.2f}" for w in f.marks()
    ]
    out += [c.summary for c in f.all("content-inconclusive", "content-unchecked")]
    out.append("no signed record confirms that the watermark belongs to this picture")
    return out


def _not_ai_headline(f: Findings) -> str:
    d = f.first("manifest-not-ai").details
    acts = ", ".join(d.get("actions") or []) or "no actions recorded"
    return f"Content Credentials signed by {_who(d)} that do not declare AI (actions: {acts})"


def _not_ai_reasons(f: Findings) -> list[str]:
    d = f.first("manifest-not-ai").details
    return [f"actions: {', '.join(d.get('actions') or []) or 'no actions recorded'}"]


def _metadata_headline(f: Findings) -> str:
    tools = []
    for s in f.all("metadata-ai-claim"):
        tool = s.details.get("tool")
        if tool and tool not in tools:
            tools.append(tool)
    return (
        f"Metadata claims AI generation ({', '.join(tools) or 'an AI tool'}); unsigned, not proof"
    )


def _nothing_headline(f: Findings) -> str:
    if f.has("manifest-remote"):
        d = f.first("manifest-remote").details
        url = d.get("url") or "a remote address"
        why = "could not be fetched" if d.get("online") else "were not fetched (offline)"
        return (
            f"No provenance checked: the Content Credentials are stored remotely ({url}) and {why}"
        )
    if f.has("ledger-candidate"):
        return "No provenance found (a similar image in your ledger could not be confirmed)"
    if f.has("manifest-unchecked"):
        why = f.first("manifest-unchecked").summary
        return f"No provenance found; the Content Credentials could not be checked ({why})"
    unchecked = _watermarks_not_checked(f)
    if unchecked:
        return f"No provenance found: no Content Credentials (invisible watermarks {unchecked})"
    return "No provenance found: no credentials, no known watermark, no generator metadata"


def _watermarks_not_checked(f: Findings) -> str | None:
    """Why the watermarks were not looked for (audio, a document, a decoder not installed),
    from the report's checks; None when they were, or the picture was too small."""
    s = f.first("watermark-not-applicable", "watermark-unchecked")
    return s.details.get("check") if s is not None else None


def _nothing_reasons(f: Findings) -> list[str]:
    out = []
    if f.has("manifest-remote"):
        out.append(f.first("manifest-remote").summary)
    elif f.has("ledger-candidate"):
        out.append("perceptual-hash candidate without a matching watermark")
    if f.has("camera-claim"):
        out.append("camera EXIF present (a claim, easily written or removed)")
    return out


def _unreadable_headline(f: Findings) -> str:
    reason = f.first("file-unreadable").summary
    if reason.startswith("unreadable: "):
        reason = reason[len("unreadable: ") :]
    return f"Could not analyse this file ({reason or 'unreadable'})"


RULES: tuple[Rule, ...] = (
    Rule(
        "credentials-broken",
        "tampered",
        "broken",
        lambda f: f.has("manifest-tampered", "manifest-invalid", "manifest-damaged"),
        _broken_headline,
        _broken_reasons,
    ),
    Rule(
        "signed-ai-manifest",
        "labelled-ai",
        "confirmed",
        lambda f: f.has("manifest-ai"),
        _ai_manifest_headline,
        _ai_manifest_reasons,
    ),
    Rule(
        "unreadable",
        "unreadable",
        "none",
        lambda f: f.has("file-unreadable"),
        _unreadable_headline,
        lambda f: [f.first("file-unreadable").summary],
    ),
    Rule(
        "label-copied",
        "label-mismatch",
        "mismatch",
        lambda f: f.has("content-mismatch") and not f.has("content-match"),
        _mismatch_headline,
        _mismatch_reasons,
    ),
    Rule(
        "registry-signed-ai",
        "recovered",
        "confirmed",
        _registry_ai,
        _registry_headline,
        _registry_reasons,
        REGISTRY_MESSAGE,
    ),
    Rule(
        "registry-signed-not-ai",
        "credentials-not-ai",
        "confirmed",
        lambda f: _registry_ok(f) and not _registry_ai(f) and not f.has("ledger-match"),
        _registry_not_ai_headline,
        _registry_reasons,
    ),
    Rule(
        "ledger-recorded",
        "recovered",
        "recorded",
        _ledger_ok,
        _ledger_headline,
        _ledger_reasons,
        LEDGER_MESSAGE,
    ),
    Rule(
        "watermark-claim",
        "ai-watermark",
        "claimed",
        _claimed,
        _claimed_headline,
        _claimed_reasons,
    ),
    Rule(
        "signed-not-ai",
        "credentials-not-ai",
        "confirmed",
        lambda f: f.has("manifest-not-ai"),
        _not_ai_headline,
        _not_ai_reasons,
    ),
    Rule(
        "metadata-claim",
        "ai-metadata",
        "claimed",
        lambda f: f.has("metadata-ai-claim"),
        _metadata_headline,
        lambda f: [s.summary for s in f.all("metadata-ai-claim")],
    ),
    Rule(
        "nothing",
        "no-provenance",
        "none",
        lambda f: True,
        _nothing_headline,
        _nothing_reasons,
    ),
)


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
    """The verdict from raw check results (plain dicts, as in a report): ``collect`` them into
    findings, then apply ``RULES``."""
    from detectors.evidence import collect

    return decide_from(
        collect(
            readable=readable,
            unreadable_reason=unreadable_reason,
            c2pa=c2pa or {},
            watermarks=watermarks or [],
            metadata=metadata or {},
            ledger=ledger or {},
            registry=registry or {},
        )
    )


def _marks(found: list[Signal]) -> str:
    names = {
        "fakestudio": "fakestudio",
        "fakestudio-durable": "fakestudio (durable mark)",
        "sd-v1": "Stable Diffusion v1",
        "sdxl": "SDXL",
    }
    schemes = [s.details.get("scheme") for s in found]
    return ", ".join(dict.fromkeys(names.get(x, str(x)) for x in schemes))


__all__ = [
    "AI_SOURCE_TYPES",
    "CATEGORIES",
    "CATEGORY_ORDER",
    "EXIT_CODES",
    "EXIT_PRIORITY",
    "EXIT_USAGE",
    "MESSAGES",
    "OUR_SCHEMES",
    "OUTCOMES",
    "RULES",
    "SOURCES",
    "Signal",
    "TIERS",
    "Verdict",
    "combined_exit_code",
    "credentials_broken",
    "decide",
    "decide_from",
    "is_ai_source_type",
    "make_verdict",
    "shallow_dict",
    "manifest_declares_ai",
]
