"""Verify one image: every check, the signals they give, and the verdict.

    from detectors.verify import verify_image
    report = verify_image("photo.jpg")
    print(report.verdict.outcome, report.verdict.headline)
    json.dumps(report.to_dict())          # schema "fakestudio.verify/1", see docs/verify.md

Checks, each bounded and none able to crash the whole run:

1. the file: size, sha256, format (``detectors.image_io`` guards: size limit, decompression
   bombs, truncated data, animations);
2. C2PA (``detectors.c2pa.read_c2pa``), offline, with the local signing identity's CA (when
   present) and any ``trust_anchors`` as trust anchors;
3. invisible watermarks on the pixels as stored (``detectors.watermarks.shared``: the results of
   ``detectors.watermarks.detect_all``, computed faster, see there);
4. metadata claims (``detectors.metadata``);
5. the local output ledger: exact sha256, else the watermark payload, else a perceptual-hash
   candidate confirmed by its known watermark payload (``ours.match``: agreeing bits counted on
   the copy as it is and resized back to the candidate's size, with an exact p-value; it
   survives uploads that blind decoding does not);
6. the verdict (``detectors.verdict.decide``).

Imports neither fakestudio nor torch.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detectors import containers, content, image_io, media
from detectors.c2pa import C2paResult, read_c2pa, reconcile_store
from detectors.evidence import Signal, collect, our_payload
from detectors.fingerprint import CANDIDATE_BITS, hamming, phash_hex
from detectors.metadata import MetadataReport, read_metadata
from detectors.paths import local_ca_path
from detectors.verdict import Verdict, decide_from, shallow_dict
from detectors.watermarks.shared import detect_watermarks

SCHEMA = "fakestudio.verify/1"
IN_MEMORY_MAX = 64 * 1024 * 1024  # files up to this size are read once and analysed from memory
MAX_CANDIDATES = 3  # perceptual-hash candidates confirmed by watermark, nearest first
PRESCREEN = True  # the watermark pre-screens of detect_watermarks (False: detect_all exactly)


@dataclass
class Report:
    """Everything ``verify_image`` found about one file; ``to_dict()`` is the JSON schema."""

    file: str
    size: int | None
    sha256: str | None
    format: str | None
    image: dict
    c2pa: dict
    watermarks: list[dict]
    metadata: dict
    ledger: dict
    phash: str | None
    signals: list[Signal]
    verdict: Verdict
    trust: dict = field(default_factory=dict)
    registry: dict = field(default_factory=dict)  # filled only with verify --registry URL
    # which checks ran on this file, and why the others did not (docs/formats.md)
    checks: dict = field(default_factory=dict)
    media: dict | None = None  # kind, mime, name (+ video: duration, sampled frame times)

    def to_dict(self, full: bool = True) -> dict[str, Any]:
        """The stable JSON form (``schema`` "fakestudio.verify/1"). ``full=False`` drops the
        bulky parts (the C2PA ``active_manifest``, per-grid watermark attempts) for audits."""
        c2pa = dict(self.c2pa)
        watermarks = [dict(w) for w in self.watermarks]
        if not full:
            c2pa["active_manifest"] = None
            for w in watermarks:
                w["details"] = {
                    k: v for k, v in (w.get("details") or {}).items() if k != "attempts"
                }
        return {
            "schema": SCHEMA,
            "file": self.file,
            "size": self.size,
            "sha256": self.sha256,
            "format": self.format,
            "image": self.image,
            "verdict": self.verdict.to_dict(),
            "c2pa": c2pa,
            "watermarks": watermarks,
            "metadata": self.metadata,
            "ledger": self.ledger,
            "phash": self.phash,
            "signals": [s.to_dict() for s in self.signals],
            "trust": self.trust,
            "registry": self.registry or {"checked": False},
            "checks": self.checks,
            "media": self.media,
            "notes": self.notes(),
        }

    def notes(self) -> list[str]:
        """Caveats worth showing beside the verdict (analysis size, skipped chunks, ledger)."""
        out = list(self.image.get("notes") or [])
        if self.ledger.get("note"):
            out.append(self.ledger["note"])
        if (self.registry or {}).get("note"):
            out.append(self.registry["note"])
        return out


def verify_image(
    path: str | os.PathLike,
    *,
    trust_anchors: list[bytes] | None = None,
    ledger_path: str | os.PathLike | None = None,
    use_ledger: bool = True,
    registry: str | None = None,
    online: bool = False,
) -> Report:
    """Run every check on one image file and decide. Never raises for a bad file: an image that
    cannot be read gets the verdict "unreadable" with the reason.

    ``registry``: a soft-binding registry's URL, asked only when the file carries no manifest
    (``detectors.registry_client.recover``); never by default. ``online``: let C2PA fetch
    remote manifests and OCSP answers (``verify --online``); offline by default."""
    name = str(path)
    p = Path(path)
    info = image_io.new_info()
    size, sha, data = _read_file(p, info)

    anchors, trust = _anchors(trust_anchors)
    mt = _media_type(p, data) if sha is not None else None
    skipped = media.skipped_pixels(mt)
    im = None
    if info["reason"] is None and (mt is None or mt.kind == "image"):
        im, info = image_io.open_image(p, info, data=data)

    # C2PA works on the bytes even when Pillow cannot decode the pixels.
    scan = containers.Scan()
    if sha is None:  # missing, not a file, too large or not readable
        c2pa = C2paResult("error", message=info["reason"] or "cannot read the file")
    else:
        mime = mt.mime if mt is not None else info.get("mime")
        c2pa = read_c2pa(
            data if data is not None else p,
            mime=mime,
            trust_anchors=anchors,
            local_anchor=_local_ca(),
            online=online,
        )
        scan = containers.scan_container(data) if data is not None else containers.scan_file(p)
        c2pa = reconcile_store(c2pa, scan.stores)
        _container_notes(scan, c2pa, info)

    meta = MetadataReport()
    rgb = None
    if im is not None:
        rgb, info = image_io.load_image(p, transpose=False, info=info, image=im, close=False)
        try:
            dropped = {k: v for k, v in scan.texts.items() if k not in (im.info or {})}
            meta = read_metadata(im, info.get("warnings"), extra_texts=dropped)
        finally:
            im.close()

    watermarks: list[dict] = []
    phash = None
    sampled = None
    if rgb is not None:
        watermarks = _watermarks(rgb)
        try:
            phash = phash_hex(rgb)
        except Exception:  # noqa: BLE001  (a hash is a hint; the verdict goes on without it)
            phash = None
    elif mt is not None and mt.kind == "video" and skipped is None:
        sampled, watermarks = _video(p, data, mt)

    ledger = {
        "checked": False,
        "entries": 0,
        "matched": False,
        "how": None,
        "entry": None,
        "candidates": [],
    }
    if use_ledger and sha is not None:
        # a file whose own valid manifest describes it is not looked up by content: its
        # signature says what it is (a registry is asked only when there is no manifest)
        ledger = _ledger(ledger_path, sha, watermarks, rgb, phash, by_content=not c2pa.valid)

    reg: dict = {}
    if registry and rgb is not None and c2pa.state == "absent":
        reg = _registry(registry, p, data, info.get("mime"), rgb, watermarks, anchors)

    c2pa_d = shallow_dict(c2pa)
    meta_d = meta.to_dict()
    readable = rgb is not None or bool(sampled and sampled.frames)
    checks = _checks(mt, skipped, info, sha, c2pa, im_read=im is not None)
    checks["pixels"], reason = _pixels_check(mt, skipped, info, rgb, sampled)
    if not readable and reason is None:
        reason = _credentials_only(mt, c2pa, scan)
        readable = reason is None  # nothing to decode here: the verdict rests on the credentials
    checks["watermarks"] = media.watermark_status(
        checks["pixels"], watermarks, [f.time_s for f in sampled.frames] if sampled else None
    )
    checks["ledger"] = _ran_or(ledger.get("checked"), ledger.get("note") or "--no-ledger")
    if not registry:
        not_asked = "not asked (--registry URL)"
    elif c2pa.state != "absent":
        not_asked = "the file carries a manifest"
    else:
        not_asked = "no decoded picture to look it up by"
    checks["registry"] = _ran_or(reg.get("checked"), not_asked)
    signals = collect(
        readable=readable,
        unreadable_reason=reason or info.get("reason"),
        c2pa=c2pa_d,
        watermarks=watermarks,
        metadata=meta_d,
        ledger=ledger,
        registry=reg,
        checks=checks,
    )
    verdict = decide_from(signals)
    image = {
        k: info.get(k)
        for k in (
            "width",
            "height",
            "mode",
            "frames",
            "orientation",
            "scale",
            "analysed_width",
            "analysed_height",
            "notes",
            "reason",
        )
    }
    image["readable"] = readable
    return Report(
        file=name,
        size=size,
        sha256=sha,
        format=info.get("format") or (mt.name if mt is not None else None),
        image=image,
        c2pa=c2pa_d,
        watermarks=watermarks,
        metadata=meta_d,
        ledger=ledger,
        phash=phash,
        signals=signals,
        verdict=verdict,
        trust=trust,
        registry=reg,
        checks=checks,
        media=_media_dict(mt, sampled),
    )


def _registry(url: str, p: Path, data: bytes | None, mime, rgb, watermarks, anchors) -> dict:
    from detectors.registry_client import recover

    if data is None:
        try:
            data = p.read_bytes()
        except OSError as e:
            return {"checked": False, "url": url, "note": f"registry not asked: {e.strerror or e}"}
    return recover(url, data, mime=mime, rgb=rgb, watermarks=watermarks, trust_anchors=anchors)


def _container_notes(scan, c2pa: C2paResult, info: dict) -> None:
    """What the container walk found wrong (bad CRCs, lengths past the end, a store whose own
    length field disagrees with its container while the signed content verifies)."""
    for problem in scan.problems:
        info["notes"].append(f"container: {problem}")
    if c2pa.state != "damaged":
        for store in scan.stores:
            if store.note:
                info["notes"].append(f"C2PA store {store.describe()}")


# --- internals ------------------------------------------------------------------------------


def _media_type(p: Path, data: bytes | None):
    if data is not None:
        return media.identify(data, p.name)
    return media.identify_file(p)


def _video(p: Path, data: bytes | None, mt):
    """A few frames of a video (PyAV) and the watermark detectors on each, merged."""
    from detectors.video import merge_watermarks, sample_frames

    sampled = sample_frames(data if data is not None else p, mt.name)
    per_frame = [(f.time_s, _watermarks(f.rgb)) for f in sampled.frames]
    for f in sampled.frames:
        f.rgb = None  # the pixels are not kept in the report
    return sampled, merge_watermarks(per_frame) if per_frame else []


def _checks(mt, skipped, info: dict, sha, c2pa, im_read: bool) -> dict:
    c2pa_ran = sha is not None and c2pa.state not in ("error", "unsupported")
    checks = {
        "c2pa": media.status(media.RAN)
        if c2pa_ran
        else media.status(media.NOT_RUN, c2pa.message or "the file could not be read"),
    }
    if im_read:
        checks["metadata"] = media.RAN
    elif mt is not None and mt.kind != "image":
        checks["metadata"] = media.status(media.NOT_RUN, f"no metadata reader for {mt.name}")
    else:
        checks["metadata"] = media.status(
            media.NOT_RUN, _skipped_why(skipped) or _strip(info.get("reason"))
        )
    return checks


def _skipped_why(skipped: str | None) -> str | None:
    """The reason part of a ``not run: ...`` status."""
    return skipped.split(": ", 1)[1] if skipped and ": " in skipped else skipped


def _pixels_check(mt, skipped, info: dict, rgb, sampled) -> tuple[str, str | None]:
    """(the pixels check, the unreadable reason when pixels that should decode did not: such
    a file is "unreadable" unless its credentials decide; None otherwise)."""
    if rgb is not None:
        by = _decoder_name(info)
        return media.status(media.RAN, by), None
    if sampled is not None and sampled.frames:
        return media.status(media.RAN, f"{len(sampled.frames)} frame(s) decoded by PyAV"), None
    if skipped:
        return skipped, None
    if sampled is not None:  # PyAV is there, and decoded nothing
        if sampled.reason == "no video track":
            return media.status(media.NOT_APPLICABLE, "no video track"), None
        return media.status(media.NOT_RUN, sampled.reason), "unreadable: " + str(sampled.reason)
    why = _strip(info.get("reason")) or "not decoded"
    if info.get("format") == "SVG" and "not rendered:" in why and "well-formed" not in why:
        return media.status(media.NOT_RUN, why), None  # unsafe to render: credentials only
    return media.status(media.NOT_RUN, why), info.get("reason") or "unreadable: not decoded"


def _credentials_only(mt, c2pa, scan) -> str | None:
    """A file whose pixels are not decoded here (audio, a document, a format without its
    decoder, an SVG not rendered) is still analysed for its credentials when the C2PA reader
    read it and the container is whole: None then, else the unreadable reason."""
    if mt is None:
        return "unreadable: not a format the verifier reads"
    if c2pa.state in ("error", "unsupported"):
        return "unreadable: " + (c2pa.message or c2pa.state)
    cut = [p for p in scan.problems if "past the end" in p]
    if cut:
        return f"unreadable: truncated or damaged {mt.name} ({cut[0]})"
    return None


def _decoder_name(info: dict) -> str:
    if info.get("decoder"):
        return str(info["decoder"])
    return "decoded by pillow-heif" if info.get("format") == "HEIF" else "decoded by Pillow"


def _media_dict(mt, sampled) -> dict | None:
    if mt is None:
        return None
    d = mt.to_dict()
    if sampled is not None:
        d.update(sampled.describe())
        if sampled.notes:
            d["notes"] = list(sampled.notes)
    return d


def _ran_or(ran, why: str) -> str:
    return media.RAN if ran else media.status(media.NOT_RUN, why)


def _strip(reason: str | None) -> str | None:
    return reason[len("unreadable: ") :] if reason and reason.startswith("unreadable: ") else reason


def _read_file(p: Path, info: dict) -> tuple[int | None, str | None, bytes | None]:
    """(size, sha256, the bytes when small enough to keep) or reasons in info."""
    try:
        st = p.stat()
    except OSError as e:
        if p.is_symlink():
            info["reason"] = "unreadable: broken symbolic link"
        else:
            info["reason"] = f"unreadable: {e.strerror or e}"
        return None, None, None
    if not p.is_file():
        info["reason"] = "unreadable: not a regular file"
        return None, None, None
    if st.st_size > image_io.MAX_FILE_BYTES:
        info["reason"] = (
            f"unreadable: file too large ({st.st_size // 2**20} MB > "
            f"{image_io.MAX_FILE_BYTES // 2**20} MB)"
        )
        return st.st_size, None, None
    h = hashlib.sha256()
    chunks: list[bytes] = []
    keep = st.st_size <= IN_MEMORY_MAX
    try:
        with open(p, "rb") as fh:
            while True:
                block = fh.read(1 << 20)
                if not block:
                    break
                h.update(block)
                if keep:
                    chunks.append(block)
    except OSError as e:
        info["reason"] = f"unreadable: {e.strerror or e}"
        return st.st_size, None, None
    data = b"".join(chunks) if keep else None
    return (len(data) if data is not None else st.st_size), h.hexdigest(), data


_anchor_cache: dict[tuple, bytes | None] = {}


def _local_ca() -> bytes | None:
    p = local_ca_path()
    try:
        st = p.stat()
    except OSError:
        return None
    key = (str(p), st.st_mtime_ns, st.st_size)
    if key not in _anchor_cache:
        try:
            _anchor_cache.clear()
            _anchor_cache[key] = p.read_bytes()
        except OSError:
            return None
    return _anchor_cache[key]


def _anchors(user: list[bytes] | None) -> tuple[list[bytes], dict]:
    anchors = [a for a in (user or []) if a]
    local = _local_ca()
    if local:
        anchors.append(local)
    return anchors, {"user_anchors": len(user or []), "local_ca": local is not None}


def _watermarks(rgb: np.ndarray) -> list[dict]:
    try:
        return [shallow_dict(r) for r in detect_watermarks(rgb, prescreen=PRESCREEN)]
    except Exception as e:  # noqa: BLE001 - detectors promise not to raise; belt and braces
        return [
            {
                "scheme": "all",
                "found": False,
                "payload": None,
                "confidence": 0.0,
                "bit_accuracy": None,
                "margin": None,
                "details": {"error": f"{type(e).__name__}: {e}"},
            }
        ]


# One read-only connection per ledger file, process and thread (an sqlite3 connection belongs
# to the thread that opened it), and one phash index per ledger file and process.
_ledger_lock = threading.Lock()
_ledgers: dict[tuple, Any] = {}
_phash_index: dict[tuple, list[tuple[int, str]]] = {}


def _open_ledger(ledger_path):
    from detectors.ledger import Ledger, default_path

    path = Path(ledger_path) if ledger_path else default_path()
    try:
        ino = path.stat().st_ino
    except OSError:
        return None
    # a ledger deleted and made anew is reopened; each thread gets its own connection
    key = (os.getpid(), threading.get_ident(), str(path), ino)
    with _ledger_lock:
        led = _ledgers.get(key)
        if led is None:
            led = Ledger(path, readonly=True)
            if led.db is None:
                return None
            if len(_ledgers) >= 64:  # threads come and go (a web server's pool): bounded
                old = _ledgers.pop(next(iter(_ledgers)))
                try:
                    old.close()
                except sqlite3.ProgrammingError:  # opened by another thread: dropped instead
                    pass
            _ledgers[key] = led
        return led


def _ledger(ledger_path, sha: str, watermarks: list[dict], rgb, phash, by_content=True) -> dict:
    """Your ledger's record of this picture, looked up by sha256, by the watermark's
    identifier, by perceptual hash confirmed by the first mark's known payload, then by content
    (a copy whose marks were removed or destroyed). Every record an identifier leads to is
    compared with the picture (``detectors.content``): ``matched`` only when the picture is that
    output; ``record_found`` with ``content`` saying why not otherwise."""
    out: dict[str, Any] = {
        "checked": False,
        "entries": 0,
        "matched": False,
        "record_found": False,
        "how": None,
        "entry": None,
        "content": None,
        "candidates": [],
    }
    try:
        led = _open_ledger(ledger_path)
        if led is None:
            out["note"] = "no ledger on this machine"
            return out
        count, max_id = led.db.execute("SELECT COUNT(*), MAX(id) FROM outputs").fetchone()
        out["checked"], out["entries"] = True, int(count)
        if not count:
            return out
        entry = led.by_sha256(sha)
        if entry is not None:
            same = {"outcome": "match", "method": "sha256", "reason": "the very bytes recorded"}
            return _found(out, entry, "sha256", same)
        ours = our_payload(watermarks)
        if ours:
            entries = led.by_payload(ours["payload"])
            if entries:
                out["same_payload"] = len(entries)
                checked = [(e, _content_check(rgb, e, phash, ours)) for e in reversed(entries)]
                entry, check = next(
                    ((e, c) for e, c in checked if c and c["outcome"] == "match"), checked[0]
                )
                return _found(out, entry, "watermark-payload", check)
            out["note"] = "fakestudio watermark found, but its payload is not in this ledger"
            return out
        if phash is None or rgb is None:
            return out
        index = _phash_rows(led, count, max_id)
        near = sorted(
            (derived, d, newest, s)
            for s, ph, derived, newest in index
            if (d := hamming(phash, ph)) <= CANDIDATE_BITS
        )
        near = [(d, s) for _, d, _, s in near][:MAX_CANDIDATES]
        for dist, cand_sha in near:
            cand = led.by_sha256(cand_sha)
            if cand is None:
                continue
            confirmed, detail = _confirm(rgb, cand)
            out["candidates"].append(
                {
                    "ledger_id": cand.id,
                    "file_name": cand.file_name,
                    "phash_distance": dist,
                    "confirmed": confirmed,
                    **detail,
                }
            )
            if confirmed:
                res = _found(out, cand, "phash+watermark", _content_check(rgb, cand, phash))
                res["phash_distance"] = dist
                return res
        return _by_content(out, led, rgb) if by_content else out
    except Exception as e:  # noqa: BLE001 - a broken ledger must not stop a verify
        out["note"] = f"ledger not readable: {type(e).__name__}: {e}"[:300]
        return out


def _by_content(out: dict, led, rgb) -> dict:
    """No identifier read: look the picture up by its content (its keypoints' keys), and keep
    the first candidate the content check confirms."""
    has_keys = led.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'content_keys'").fetchone()
    if not has_keys or not led.db.execute("SELECT 1 FROM content_keys LIMIT 1").fetchone():
        return out
    for votes, row in led.by_content(content.query_keys(rgb)):
        cand = led.by_id(row)
        if cand is None:
            continue
        check = _content_check(rgb, cand, None)
        out["candidates"].append(
            {
                "ledger_id": cand.id,
                "file_name": cand.file_name,
                "content_votes": votes,
                "confirmed": bool(check and check["outcome"] == "match"),
            }
        )
        if check and check["outcome"] == "match":
            res = _found(out, cand, "content", check)
            res["content_votes"] = votes
            return res
    return out


def _content_check(rgb, entry, phash, mark: dict | None = None) -> dict | None:
    """Compare the picture with a ledger row: its content descriptor (signed into the
    manifest it keeps), else (rows made before content binding) its perceptual hash, which can
    confirm an uncropped copy but never rule one out; None when nothing can be compared."""
    if rgb is None:
        return None
    try:
        desc = content.from_manifest(entry.manifest)
    except content.DescriptorError as e:
        return {"outcome": "inconclusive", "method": "features", "reason": str(e)}
    if desc is not None:
        details = (mark or {}).get("details") or {}
        scale = content.mark_scale(details, desc)
        return content.check(rgb, desc, details.get("mirrored"), scale).to_dict()
    if phash and entry.phash and hamming(phash, entry.phash) <= CANDIDATE_BITS:
        d = hamming(phash, entry.phash)
        return {
            "outcome": "match",
            "method": "phash",
            "phash_distance": d,
            "reason": f"perceptual hashes {d} bits apart (a re-encoded or resized copy)",
        }
    return None


def _phash_rows(led, count: int, max_id) -> list[tuple[str, str, int, int]]:
    """(sha256, pHash, derived, -id) of every ledger row. Candidates are taken from the outputs
    first and only then from what was made from them (rows whose record has a "kind": a talk
    page's previews have their source's very pHash and must not crowd it out of the few
    candidates), nearest first, newest first among equals."""
    key = (os.getpid(), str(led.path), count, max_id)
    rows = _phash_index.get(key)
    if rows is None:
        sql = (
            "SELECT sha256, phash, id, json_extract(record_json, '$.kind') IS NOT NULL FROM outputs"
        )
        rows = [(s, ph, int(derived), -i) for s, ph, i, derived in led.db.execute(sql)]
        _phash_index.clear()
        _phash_index[key] = rows
    return rows


def _confirm(rgb: np.ndarray, entry) -> tuple[bool, dict]:
    """Does the copy carry this ledger entry's watermark payload? (``ours.match_copy``: the copy
    as it is and resized back to the entry's size; the p-value counts every candidate's two
    copies, ``ours.LEDGER_TRIES`` = 2 x MAX_CANDIDATES, whatever the number of candidates.)"""
    from detectors.watermarks import ours

    if not entry.payload:
        return False, {"note": "the ledger entry has no watermark payload"}
    res = ours.match_copy(rgb, entry.payload, (entry.width, entry.height), ours.LEDGER_TRIES)
    return res.found, {
        "mark": res.details.get("mark"),
        "copy": res.details.get("copy"),
        "agreeing_bits": res.details.get("agreeing_bits"),
        "z": res.details.get("z"),
        "strength": res.details.get("strength"),
        "p_value": res.details.get("p_value"),
    }


def _found(out: dict, entry, how: str, check: dict | None) -> dict:
    matched = bool(check and check.get("outcome") == "match")
    out.update(matched=matched, record_found=True, how=how, entry=_entry_dict(entry), content=check)
    return out


def _entry_dict(e) -> dict:
    manifest = e.manifest if isinstance(e.manifest, dict) else {}
    record = e.record if isinstance(e.record, dict) else {}
    generation = {}
    for a in manifest.get("assertions") or []:
        if (
            isinstance(a, dict)
            and a.get("label") == "org.fakestudio.generation"
            and isinstance(a.get("data"), dict)
        ):
            generation = a["data"]
    gen_info = (manifest.get("claim_generator_info") or [{}])[0]
    claimed = " ".join(str(x) for x in (gen_info.get("name"), gen_info.get("version")) if x)
    labelled_by = None
    if generation.get("generator_from") and generation.get("software"):
        # a labelled copy of another generator's picture: fakestudio signed the claim, the
        # picture was made by what the original's metadata (or the user) named
        generator = str(generation["software"])
        labelled_by = generation.get("labelled_by") or claimed or None
    else:
        generator = claimed or record.get("software")
    base = generation.get("base_model") or {
        "name": record.get("base_model"),
        "sha256": record.get("base_sha256"),
    }
    loras = generation.get("loras") if "loras" in generation else record.get("loras") or []
    return {
        "ledger_id": e.id,
        "payload": e.payload,
        "sha256": e.sha256,
        "created": e.created,
        "file_name": e.file_name,
        "format": e.format,
        "width": e.width,
        "height": e.height,
        "provenance": {
            "generator": generator,
            "labelled_by": labelled_by,
            "base_model": base,
            "loras": loras,
            "seed": generation.get("seed", record.get("seed")),
            "steps": generation.get("steps", record.get("steps")),
            "scheduler": generation.get("scheduler", record.get("scheduler")),
            "prompt_recorded": bool(record.get("record_prompt")),
            "prompt": record.get("prompt") if record.get("record_prompt") else None,
            "digital_source_type": _manifest_dst(manifest),
        },
    }


def _manifest_dst(manifest: dict) -> str | None:
    for a in manifest.get("assertions") or []:
        if isinstance(a, dict) and str(a.get("label", "")).startswith("c2pa.actions"):
            for act in (a.get("data") or {}).get("actions") or []:
                if isinstance(act, dict) and act.get("digitalSourceType"):
                    return act["digitalSourceType"]
    return None
