"""The registry's HTTP API (Starlette), after the C2PA Soft Binding Resolution API.

    GET  /matches/byBinding?alg=A&value=V[&maxResults=N]   manifest ids filed under (A, V)
    POST /matches/byBinding {"alg": A, "value": V}          the same, value in the body
    POST /matches/byContent (body: the image)               the server reads the watermark and
                                                            the perceptual hash itself
    GET  /manifests/{manifestId}                            the manifest store, application/c2pa
    GET  /services/supportedAlgorithms                      {"watermarks": [...], "fingerprints": [...]}
    POST /manifests  (Authorization: Bearer TOKEN)          publish (fakestudio's addition)
    GET  /health

Reads are public; publishing needs a token. Bodies are bounded (`max_body`), every client is
rate limited (a token bucket per client address), and every error is one line of JSON,
`{"error": ..., "code": ..., "status": ...}`, never a stack trace. docs/registry.md has the
shapes and where they differ from the C2PA API.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import threading
import time
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from detectors.fingerprint import SAME_PICTURE_BITS
from fakestudio.registry.publication import (
    MAX_PIXELS,
    Refused,
    check_publication,
    decoders,
    normalise_value,
)
from fakestudio.registry.storage import MAX_RESULTS, SqlStorage
from fakestudio.registry.tokens import hash_token

log = logging.getLogger("fakestudio.registry")

PHASH_ALG = "org.fakestudio.phash.dct64.v1"  # the server's own fingerprint for byContent
CONTENT_ALG = "org.fakestudio.content.orb.v1"  # keypoint look-up keys (detectors.content.ALG)
C2PA_MIME = "application/c2pa"


@dataclass
class RegistryConfig:
    max_body: int = 32 * 1024 * 1024  # bytes of any request body (publish or byContent)
    rate: float = 20.0  # requests per second per client (0: no limit)
    burst: int = 60
    # byContent: candidates within this many bits of the picture's pHash: the same picture, and
    # one bit more, which costs nothing: the index (4 bands of 16 bits) finds any hash within 7
    # bits by probing each band's value and its 16 one-bit neighbours
    phash_radius: int = SAME_PICTURE_BITS + 1
    trust_anchors: list[bytes] | None = None


class RateLimiter:
    """A token bucket per client key; thread-safe, bounded memory."""

    def __init__(self, rate: float, burst: int, max_clients: int = 100_000):
        self.rate = float(rate)
        self.burst = max(1, int(burst))
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> tuple[bool, float]:
        """(allowed, seconds to wait before the next request would be)."""
        if self.rate <= 0:
            return True, 0.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                ok, wait = True, 0.0
            else:
                self._buckets[key] = (tokens, now)
                ok, wait = False, (1.0 - tokens) / self.rate
            if len(self._buckets) > self.max_clients:  # forget the fullest (idle) buckets
                for k in [k for k, (t, _) in self._buckets.items() if t >= self.burst - 1][:1000]:
                    self._buckets.pop(k, None)
        return ok, wait


def error(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": " ".join(str(message).split())[:500], "code": code, "status": status},
        status_code=status,
        headers=headers,
    )


def create_app(storage: SqlStorage, config: RegistryConfig | None = None) -> Starlette:
    cfg = config or RegistryConfig()
    limiter = RateLimiter(cfg.rate, cfg.burst)

    async def guarded(request: Request, handler):
        # per address: a header the client chooses (a made-up token) must not buy a new bucket;
        # behind a reverse proxy on this host uvicorn takes the address from X-Forwarded-For
        key = request.client.host if request.client else "?"
        ok, wait = limiter.allow(key)
        if not ok:
            return error(
                429,
                "rate-limited",
                "too many requests; slow down",
                {"Retry-After": str(max(1, round(wait)))},
            )
        try:
            return await handler(request)
        except Refused as e:
            return error(e.status, e.code, e.message)

    def route(path, handler, methods):
        async def endpoint(request: Request):
            return await guarded(request, handler)

        return Route(path, endpoint, methods=methods)

    async def read_body(request: Request) -> bytes:
        length = request.headers.get("content-length")
        if length is not None:
            try:
                if int(length) > cfg.max_body:
                    raise Refused(413, "too-large", f"request body over {cfg.max_body} bytes")
            except ValueError:
                raise Refused(400, "bad-request", "bad Content-Length") from None
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > cfg.max_body:
                raise Refused(413, "too-large", f"request body over {cfg.max_body} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def read_json(request: Request) -> dict:
        body = await read_body(request)
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise Refused(400, "bad-json", "the body is not JSON") from None
        if not isinstance(doc, dict):
            raise Refused(400, "bad-json", "the body must be a JSON object")
        return doc

    def max_results(request: Request) -> int:
        raw = request.query_params.get("maxResults", "10")
        try:
            n = int(raw)
        except ValueError:
            raise Refused(400, "bad-request", "maxResults must be an integer") from None
        if n < 1:
            raise Refused(400, "bad-request", "maxResults must be at least 1")
        return min(n, MAX_RESULTS)

    async def by_binding(request: Request):
        if request.method == "POST":
            doc = await read_json(request)
            alg, value = doc.get("alg"), doc.get("value")
        else:
            alg, value = request.query_params.get("alg"), request.query_params.get("value")
        if not alg or not value:
            raise Refused(400, "bad-request", "give both alg and value")
        value = normalise_value(alg, value)
        limit = max_results(request)
        rows = await run_in_threadpool(storage.by_binding, alg, value, limit)
        return JSONResponse(
            {"matches": [{"manifestId": r.manifest_id, "similarityScore": 100} for r in rows]}
        )

    async def by_content(request: Request):
        limit = max_results(request)
        alg = request.query_params.get("alg")
        known = set(decoders()) | {PHASH_ALG, CONTENT_ALG}
        if alg and alg not in known:
            raise Refused(400, "unsupported-alg", f"alg {alg!r} is not supported here")
        body = await read_body(request)
        if not body:
            raise Refused(400, "bad-request", "send the image as the request body")
        matches = await run_in_threadpool(match_content, storage, body, alg, limit, cfg)
        return JSONResponse({"matches": matches})

    async def manifest(request: Request):
        manifest_id = request.path_params["manifest_id"]
        if not manifest_id or len(manifest_id) > 512:
            raise Refused(400, "bad-request", "invalid manifest id")
        found = await run_in_threadpool(storage.get_store, manifest_id)
        if found is None:
            raise Refused(404, "not-found", f"no manifest {manifest_id!r} here")
        store, _row = found
        return Response(
            store,
            media_type=C2PA_MIME,
            headers={"Cache-Control": "public, max-age=86400, immutable"},
        )

    async def publish(request: Request):
        auth = request.headers.get("authorization", "")
        if not auth.lower().startswith("bearer ") or not auth[7:].strip():
            raise Refused(
                401,
                "unauthorized",
                "publishing needs a publisher token (Authorization: Bearer ...)",
            )
        token_id = await run_in_threadpool(storage.token_id, hash_token(auth[7:].strip()))
        if token_id is None:
            raise Refused(401, "unauthorized", "unknown or revoked publisher token")
        doc = await read_json(request)
        try:
            asset = base64.b64decode(str(doc.get("asset") or ""), validate=True)
        except (binascii.Error, ValueError):
            raise Refused(400, "bad-request", "asset must be base64") from None
        if not asset:
            raise Refused(400, "bad-request", "asset: the signed file, base64-encoded")
        raw = doc.get("softBindings")
        if not isinstance(raw, list) or not all(isinstance(b, dict) for b in raw):
            raise Refused(400, "bad-request", "softBindings: a list of {alg, value}")
        requested = [(b.get("alg"), b.get("value")) for b in raw]
        fmt = doc.get("format")
        if fmt is not None and not isinstance(fmt, str):
            raise Refused(400, "bad-request", "format: a MIME type")
        pub = await run_in_threadpool(
            check_publication,
            asset,
            requested,
            mime=fmt,
            publisher=token_id,
            trust_anchors=cfg.trust_anchors,
        )
        pk, created = await run_in_threadpool(storage.put, pub)
        return JSONResponse(
            {
                "manifestId": pub.manifest_id,
                "created": created,
                "softBindings": [{"alg": a, "value": v} for a, v in pub.bindings],
                "signer": pub.signer,
            },
            status_code=201 if created else 200,
        )

    async def algorithms(request: Request):
        return JSONResponse(
            {
                "watermarks": [{"alg": a} for a in sorted(decoders())],
                "fingerprints": [{"alg": PHASH_ALG}, {"alg": CONTENT_ALG}],
            }
        )

    async def health(request: Request):
        return JSONResponse({"status": "ok", "service": "fakestudio registry"})

    async def http_error(request: Request, exc: HTTPException):
        words = {404: "not-found", 405: "method-not-allowed"}
        return error(exc.status_code, words.get(exc.status_code, "http-error"), exc.detail)

    async def server_error(request: Request, exc: Exception):
        log.error("registry: %s: %s", type(exc).__name__, exc)
        return error(500, "server-error", "the registry failed to answer; try again later")

    routes = [
        route("/matches/byBinding", by_binding, ["GET", "POST"]),
        route("/matches/byContent", by_content, ["POST"]),
        route("/manifests/{manifest_id:path}", manifest, ["GET"]),
        route("/manifests", publish, ["POST"]),
        route("/services/supportedAlgorithms", algorithms, ["GET"]),
        route("/health", health, ["GET"]),
    ]
    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )


def match_content(storage: SqlStorage, body: bytes, alg: str | None, limit: int, cfg) -> list[dict]:
    """Ranked candidates for an image: its watermark payloads looked up exactly (score 100),
    then perceptual-hash neighbours, each confirmed (or not) by its known watermark payload."""
    import numpy as np
    from PIL import Image

    from detectors.fingerprint import phash_hex
    from detectors.watermarks import ours

    try:
        with Image.open(io.BytesIO(body)) as im:
            if im.width * im.height > MAX_PIXELS:
                raise Refused(413, "too-large", f"the image has more than {MAX_PIXELS} pixels")
            rgb = np.asarray(im.convert("RGB"))
    except Refused:
        raise
    except Exception:  # noqa: BLE001 - hostile input: any Pillow error
        raise Refused(
            415, "unsupported-format", "the body is not an image this server can read"
        ) from None

    found: dict[str, dict] = {}  # manifest id -> match

    def add(row, score: int, evidence: dict) -> None:
        cur = found.get(row.manifest_id)
        if cur is None or cur["similarityScore"] < score:
            found[row.manifest_id] = {
                "manifestId": row.manifest_id,
                "similarityScore": score,
                "evidence": evidence,
            }

    for walg, payload in content_payloads(rgb, alg):
        # both of fakestudio's marks carry the same output identifier: a payload read by one
        # finds manifests filed under either
        for filed in [walg, *sorted(set(decoders()) - {walg})]:
            rows = storage.by_binding(filed, payload, limit)
            for row in rows:
                add(
                    row, 100, {"watermark": {"alg": walg, "payload": payload}, "filed_under": filed}
                )
            if rows:
                break

    ours_algs = set(decoders())  # fakestudio's marks: the known-payload test reads them all
    if alg in (None, PHASH_ALG) or alg in ours_algs:
        try:
            phash = phash_hex(rgb)
        except (OSError, ValueError, TypeError):
            phash = None
        if phash is not None:
            for dist, row in storage.by_phash(phash, cfg.phash_radius, limit):
                if row.manifest_id in found:
                    found[row.manifest_id]["evidence"]["phash_distance"] = dist
                    continue
                evidence: dict = {"phash_distance": dist, "watermark_confirmed": False}
                score = max(0, 60 - 5 * dist)
                payloads = [v for a, v in storage.bindings_of(row.pk) if a in ours_algs]
                if payloads and alg != PHASH_ALG:
                    res = ours.match_copy(
                        rgb, payloads[0], (row.width, row.height), ours.LEDGER_TRIES
                    )
                    evidence.update(
                        watermark_confirmed=bool(res.found),
                        payload=payloads[0],
                        p_value=res.details.get("p_value"),
                        agreeing_bits=res.details.get("agreeing_bits"),
                    )
                    if res.found:
                        score = 95
                add(row, score, evidence)
    if alg in (None, CONTENT_ALG):
        from detectors import content

        for votes, row in storage.by_content(content.query_keys(rgb), content.MIN_VOTES, limit):
            # a candidate only: the client confirms it with the manifest's signed descriptor.
            # Ranked above a perceptual-hash neighbour (60 at most), and a neighbour that the
            # keys point to as well takes their score: many similar outputs (a world base's
            # portraits) must not crowd the right one out of the client's few checks
            score = min(94, 70 + 4 * votes)
            if row.manifest_id in found:
                match = found[row.manifest_id]
                match["evidence"]["content_votes"] = votes
                match["similarityScore"] = max(match["similarityScore"], score)
                continue
            add(row, score, {"content_votes": votes})
    ranked = sorted(found.values(), key=lambda m: -m["similarityScore"])
    return ranked[:limit]


def content_payloads(rgb, alg: str | None) -> list[tuple[str, str]]:
    """(alg, payload) of fakestudio's watermarks read blind from the pixels, by the detection
    `fakestudio verify` runs (detectors.watermarks.shared: the first mark, and the durable one
    when the first is gone)."""
    from detectors.watermarks import durable, ours
    from detectors.watermarks.shared import detect_watermarks

    algs = {ours.SCHEME: ours.ALG, durable.SCHEME: durable.ALG}
    out: list[tuple[str, str]] = []
    for res in detect_watermarks(rgb):
        walg = (res.details or {}).get("alg") or algs.get(res.scheme)
        if walg and res.found and res.payload and alg in (None, walg):
            out.append((walg, res.payload))
    return list(dict.fromkeys(out))
