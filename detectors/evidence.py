"""The evidence: every check's raw result, read once into a list of typed findings.

``collect`` is the only place that interprets what the checks returned (the C2PA summary, the
watermark detectors, metadata claims, the ledger and registry look-ups and their content
checks). It gives one ``Signal`` per finding; ``detectors.verdict`` decides from those signals
alone, by its rule table, so a report's evidence and its verdict cannot disagree.

Each finding has a **weight**, named instead of a bare number (``WEIGHTS``):

| weight      | what the finding rests on                                                     |
| ----------- | ----------------------------------------------------------------------------- |
| `signed`    | a C2PA signature that validates                                               |
| `recorded`  | your own ledger (not a signature: only you can check it)                      |
| `measured`  | a measurement on the pixels with a known error rate (a content check, a       |
|             | malformed-metadata check)                                                     |
| `claim`     | something anyone can write or copy: a watermark, metadata text               |
| `broken`    | credentials that are present but do not hold                                  |
| `absence`   | nothing found (which proves nothing)                                          |
| `unchecked` | the check could not run                                                       |

``confidence`` (0..1, kept in the JSON for compatibility) says how far the finding itself can
be relied on, never the probability that the picture is AI-generated; it comes from the same
table (``FINDINGS``) or, for a watermark, from its detector's false-positive bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from detectors.metadata import is_ai_source_type

SOURCES = ("file", "c2pa", "watermark", "metadata", "ledger", "registry", "content", "forensics")
WEIGHTS = ("signed", "recorded", "measured", "claim", "broken", "absence", "unchecked")
#: fakestudio's own marks: the first (exact, fixed grid) and the durable one (survives edits).
OUR_SCHEMES = ("fakestudio", "fakestudio-durable")

#: finding -> (source, weight, default confidence). Every finding a report can hold.
FINDINGS: dict[str, tuple[str, str, float]] = {
    "file-unreadable": ("file", "unchecked", 1.0),
    "manifest-ai": ("c2pa", "signed", 0.9),
    "manifest-not-ai": ("c2pa", "signed", 0.9),
    "manifest-tampered": ("c2pa", "broken", 1.0),
    "manifest-invalid": ("c2pa", "broken", 1.0),
    "manifest-damaged": ("c2pa", "broken", 1.0),
    "manifest-remote": ("c2pa", "unchecked", 0.5),
    "manifest-unchecked": ("c2pa", "unchecked", 0.0),
    "no-manifest": ("c2pa", "absence", 1.0),
    "soft-binding-matches": ("c2pa", "signed", 1.0),
    "soft-binding-mismatch": ("c2pa", "signed", 1.0),
    "watermark-found": ("watermark", "claim", 0.0),
    "no-watermark": ("watermark", "absence", 0.9),
    "watermark-unchecked": ("watermark", "unchecked", 0.0),
    # no pixels to look at in this kind of file (audio, a document): checks["watermarks"]
    "watermark-not-applicable": ("watermark", "unchecked", 0.0),
    "metadata-ai-claim": ("metadata", "claim", 0.3),
    "metadata-claim": ("metadata", "claim", 0.3),
    "camera-claim": ("metadata", "claim", 0.3),
    "metadata-malformed": ("metadata", "measured", 1.0),
    "ledger-match": ("ledger", "recorded", 0.99),
    "ledger-pointer": ("ledger", "recorded", 0.5),
    "ledger-candidate": ("ledger", "recorded", 0.3),
    "registry-match": ("registry", "signed", 0.99),
    "registry-pointer": ("registry", "signed", 0.5),
    "registry-no-match": ("registry", "absence", 0.5),
    "content-match": ("content", "measured", 0.99),
    "content-mismatch": ("content", "measured", 0.99),
    "content-inconclusive": ("content", "measured", 0.5),
    "content-unchecked": ("content", "unchecked", 0.0),
}


@dataclass
class Signal:
    """One finding: ``source`` and ``weight`` from ``FINDINGS``, a one-line ``summary``,
    ``details`` (what a machine needs), ``confidence`` (see the module docstring)."""

    source: str
    finding: str
    confidence: float
    details: dict[str, Any] = field(default_factory=dict)
    summary: str = ""
    weight: str = ""

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"unknown signal source {self.source!r}")
        if self.finding in FINDINGS and not self.weight:
            self.weight = FINDINGS[self.finding][1]
        if self.weight and self.weight not in WEIGHTS:
            raise ValueError(f"unknown weight {self.weight!r}")
        self.confidence = round(max(0.0, min(1.0, float(self.confidence))), 6)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def finding(
    name: str, summary: str, details: dict | None = None, confidence: float | None = None
) -> Signal:
    """A signal for a finding of the table, with its source, weight and default confidence."""
    source, weight, default = FINDINGS[name]
    return Signal(
        source,
        name,
        default if confidence is None else confidence,
        details or {},
        summary,
        weight,
    )


class Findings:
    """The signals of one report, asked about by finding name (what the rules read)."""

    def __init__(self, signals: list[Signal]):
        self.signals = list(signals)

    def has(self, *names: str) -> bool:
        return any(s.finding in names for s in self.signals)

    def first(self, *names: str) -> Signal | None:
        for name in names:  # in the order asked
            for s in self.signals:
                if s.finding == name:
                    return s
        return None

    def all(self, *names: str) -> list[Signal]:
        return [s for s in self.signals if s.finding in names]

    def marks(self) -> list[Signal]:
        return self.all("watermark-found")

    def our_mark(self) -> Signal | None:
        for s in self.marks():
            if s.details.get("scheme") in OUR_SCHEMES:
                return s
        return None


# --- collecting -----------------------------------------------------------------------------------


def collect(
    *,
    readable: bool,
    unreadable_reason: str | None = None,
    c2pa: dict,
    watermarks: list[dict],
    metadata: dict,
    ledger: dict,
    registry: dict,
    checks: dict | None = None,
) -> list[Signal]:
    """Every finding of one report, in a stable order: file, C2PA, watermarks, metadata,
    ledger, registry, content checks. ``readable``: the file could be analysed (its pixels,
    or for media whose pixels are not decoded, its credentials); ``checks``: the report's
    ``checks`` object (``detectors.media``), which says why the watermarks were not looked for."""
    out: list[Signal] = []
    if not readable:
        out.append(finding("file-unreadable", unreadable_reason or "unreadable"))
    out += _c2pa(c2pa, watermarks)
    out += _watermarks(watermarks, readable, (checks or {}).get("watermarks"))
    out += _metadata(metadata)
    out += _ledger(ledger)
    out += _registry(registry)
    return out


def _c2pa(c2pa: dict, watermarks: list[dict]) -> list[Signal]:
    state = c2pa.get("state")
    who = c2pa.get("signer") or c2pa.get("issuer")
    if state in ("valid-untrusted", "trusted"):
        ai = manifest_declares_ai(c2pa)
        dst = c2pa.get("digital_source_type")
        details = {
            "state": state,
            "signer": who,
            "issuer": c2pa.get("issuer"),
            "digital_source_type": dst,
            "actions": c2pa.get("actions"),
            "trust_list": c2pa.get("trust_list"),
            "trust_note": c2pa.get("trust_note"),
            "identities": [
                {k: i.get(k) for k in ("who", "credential", "trusted")}
                for i in c2pa.get("identities") or []
            ],
        }
        trust = "trusted" if state == "trusted" else "valid, untrusted"
        out = [
            finding(
                "manifest-ai" if ai else "manifest-not-ai",
                f"{trust} manifest signed by {who or '?'}"
                + (
                    f", digitalSourceType {str(dst).rsplit('/', 1)[-1]}"
                    if dst
                    else ", no digitalSourceType"
                ),
                details,
                1.0 if state == "trusted" else 0.9,
            )
        ]
        sb = c2pa.get("soft_binding") or {}
        ours = our_payload(watermarks)
        if sb.get("value") and ours:
            same = sb["value"] == ours.get("payload")
            out.append(
                finding(
                    "soft-binding-matches" if same else "soft-binding-mismatch",
                    "the manifest's soft binding names the watermark found"
                    if same
                    else "the manifest's soft binding names another watermark payload",
                    {"manifest": sb.get("value"), "watermark": ours.get("payload")},
                )
            )
        return out
    codes = {"codes": c2pa.get("status_codes")}
    if state == "tampered":
        return [finding("manifest-tampered", c2pa.get("message") or "tampered", codes)]
    if state == "invalid-signature":
        return [finding("manifest-invalid", c2pa.get("message") or "invalid", codes)]
    if state == "damaged":
        return [finding("manifest-damaged", c2pa.get("message") or "damaged", codes)]
    if state == "remote-not-fetched":
        fetched = "could not be fetched" if c2pa.get("online") else "not fetched (offline)"
        return [
            finding(
                "manifest-remote",
                f"manifest stored remotely, {fetched}",
                {"url": c2pa.get("remote_url"), "online": bool(c2pa.get("online"))},
            )
        ]
    if state == "absent":
        return [finding("no-manifest", "no C2PA manifest")]
    if credentials_broken(c2pa):
        return [
            finding("manifest-invalid", c2pa.get("message") or state or "invalid", {"state": state})
        ]
    return [
        finding(
            "manifest-unchecked", c2pa.get("message") or state or "not checked", {"state": state}
        )
    ]


def _watermarks(watermarks: list[dict], readable: bool, check: str | None = None) -> list[Signal]:
    found = [w for w in watermarks if w.get("found")]
    out = []
    for w in found:
        scheme = w.get("scheme")
        details = w.get("details") or {}
        text = f"{scheme} watermark found"
        if w.get("payload") and scheme in OUR_SCHEMES:
            text += f" (payload {w['payload']})"
        if scheme == "fakestudio-durable" and not w.get("payload"):
            text += " (present; its identifier could not be read)"
        out.append(
            finding(
                "watermark-found",
                text + ": a claim, anyone can copy a watermark",
                {
                    "scheme": scheme,
                    "payload": w.get("payload"),
                    "bit_accuracy": w.get("bit_accuracy"),
                    "mirrored": details.get("mirrored"),
                },
                w.get("confidence") or 0.0,
            )
        )
    if readable and not watermarks and check and not check.startswith("ran"):
        name = "watermark-not-applicable" if check.startswith("not applicable") else None
        out.append(
            finding(
                name or "watermark-unchecked", f"invisible watermarks {check}", {"check": check}
            )
        )
    elif readable and not found:
        usable = any(not (w.get("details") or {}).get("error") for w in watermarks)
        if usable:
            out.append(
                finding(
                    "no-watermark",
                    "no known invisible watermark (fakestudio's two marks, SD v1, SDXL)",
                )
            )
        else:
            out.append(
                finding("watermark-unchecked", "image too small for the invisible watermarks")
            )
    return out


def _metadata(meta: dict) -> list[Signal]:
    out = []
    for c in meta.get("claims") or []:
        if c.get("ai"):
            name = "metadata-ai-claim"
        elif c.get("kind") == "camera":
            name = "camera-claim"
        else:
            name = "metadata-claim"
        out.append(
            finding(name, c.get("summary", ""), {"tool": c.get("tool"), "where": c.get("where")})
        )
    for problem in meta.get("problems") or []:
        out.append(finding("metadata-malformed", problem))
    return out


def _ledger(ledger: dict) -> list[Signal]:
    entry = ledger.get("entry") or {}
    prov = entry.get("provenance") or {}
    details = {
        "how": ledger.get("how"),
        "ledger_id": entry.get("ledger_id"),
        "file_name": entry.get("file_name"),
        "created": entry.get("created"),
        "generator": prov.get("generator"),
        "labelled_by": prov.get("labelled_by"),
        "digital_source_type": prov.get("digital_source_type"),
        "declares_ai": is_ai_source_type(prov.get("digital_source_type")),
    }
    if ledger.get("matched"):
        out = [
            finding(
                "ledger-match",
                f"your ledger holds this output ({entry.get('file_name')}, created "
                f"{entry.get('created')}), matched by {ledger.get('how')}",
                details,
                1.0 if ledger.get("how") == "sha256" else 0.99,
            )
        ]
    elif ledger.get("record_found"):
        out = [
            finding(
                "ledger-pointer",
                f"the watermark points to an output in your ledger ({entry.get('file_name')}, "
                f"{entry.get('width')}x{entry.get('height')}, created {entry.get('created')})",
                details,
            )
        ]
    elif ledger.get("candidates"):
        return [
            finding(
                "ledger-candidate",
                "a similar image is in your ledger, not confirmed by its watermark",
                {"candidates": len(ledger["candidates"])},
            )
        ]
    else:
        return []
    out += _content(ledger.get("content"), "ledger", entry.get("file_name"), entry.get("ledger_id"))
    return out


def _registry(reg: dict) -> list[Signal]:
    if not reg.get("checked"):
        return []
    c2pa = reg.get("c2pa") or {}
    details = {
        "url": reg.get("url"),
        "manifest_id": reg.get("manifest_id"),
        "how": reg.get("how"),
        "signer": c2pa.get("signer"),
        "issuer": c2pa.get("issuer"),
        "state": c2pa.get("state"),
        "digital_source_type": c2pa.get("digital_source_type"),
        "declares_ai": manifest_declares_ai(c2pa) if c2pa else False,
        "trust_list": c2pa.get("trust_list"),
    }
    who = c2pa.get("signer") or c2pa.get("issuer") or "?"
    trust = "trusted" if c2pa.get("state") == "trusted" else "valid but untrusted"
    if reg.get("matched"):
        out = [
            finding(
                "registry-match",
                f"the registry {reg.get('url')} holds this output's signed manifest "
                f"({reg.get('manifest_id')}, {trust} signature by {who}), found by {reg.get('how')}",
                details,
            )
        ]
    elif reg.get("record_found"):
        out = [
            finding(
                "registry-pointer",
                f"the registry {reg.get('url')} holds a signed manifest ({reg.get('manifest_id')}, "
                f"{trust} signature by {who}) that this picture's watermark points to",
                details,
            )
        ]
    else:
        return [
            finding(
                "registry-no-match",
                reg.get("note") or f"the registry {reg.get('url')} has no manifest for this image",
                {"url": reg.get("url")},
            )
        ]
    out += _content(reg.get("content"), "registry", reg.get("manifest_id"), reg.get("manifest_id"))
    return out


def _content(check: dict | None, record: str, name, ident) -> list[Signal]:
    """The content check of a record a label pointed to."""
    where = "your ledger's" if record == "ledger" else "the registry's"
    base = {"record": record, "record_name": name, "record_id": ident}
    if not check:
        return [
            finding(
                "content-unchecked",
                f"{where} record holds no description of its content (labelled before content "
                "binding): this picture could not be compared with it",
                base,
            )
        ]
    details = {**base, **{k: v for k, v in check.items() if k != "reason"}}
    outcome = check.get("outcome")
    reason = check.get("reason") or ""
    if outcome == "match":
        return [finding("content-match", f"this picture is {where} output: {reason}", details)]
    if outcome == "mismatch":
        return [
            finding(
                "content-mismatch",
                f"this picture is not {where} output ({name}): {reason}",
                details,
            )
        ]
    return [
        finding("content-inconclusive", f"compared with {where} output ({name}): {reason}", details)
    ]


# --- helpers shared with the verdict and the report ----------------------------------------------


def our_payload(watermarks: list[dict]) -> dict | None:
    """The first of fakestudio's marks that was read with its identifier: the exact first
    mark, else the durable one (after crops, resizes, rotations or flips)."""
    for scheme in OUR_SCHEMES:
        for w in watermarks:
            if w.get("scheme") == scheme and w.get("found") and w.get("payload"):
                return w
    return None


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
