"""Talking to a fakestudio soft-binding registry (docs/registry.md): publish, look up, recover.

Used only when asked (`--publish URL`, `--registry URL`): nothing here runs by default and no
image leaves the machine unless the user named a registry. Imports neither fakestudio nor
torch; HTTP through httpx.

`recover()` is what `verify --registry` does when an image's manifest is gone:

1. fakestudio's watermark read blind: `/matches/byBinding` with its payload (only the
   40-bit identifier leaves the machine);
2. otherwise the image itself goes to `/matches/byContent` (the server reads the watermark
   and the perceptual hash);
3. the best match's manifest store is fetched from `/manifests/{id}` and checked here like an
   embedded one: the signature must validate, the manifest's own soft binding must name the
   payload of this copy, and (for a content match) the copy must carry that payload (the
   known-payload watermark test, checked here, not taken from the server's word). The hard
   binding cannot match: the copy's bytes are not the signed file's.
"""

from __future__ import annotations

import base64
from typing import Any

from detectors.c2pa import SOFT_BINDING_LABEL, read_c2pa, sniff_mime
from detectors.verdict import shallow_dict

#: fakestudio's marks (scheme -> soft-binding algorithm), both carrying the output identifier.
ALGS = {
    "fakestudio": "org.fakestudio.wm.dwtdctsvd.v1",
    "fakestudio-durable": "org.fakestudio.wm.durable.v2",
}
#: every name a manifest may give fakestudio's marks (the durable mark's first format too)
KNOWN_ALGS = (*ALGS.values(), "org.fakestudio.wm.durable.v1")
TIMEOUT = 15.0
MAX_STORE_BYTES = 16 * 1024 * 1024
CONFIRMED_SCORE = 95  # byContent scores at or above this carry watermark evidence
MAX_CHECKED = 5  # candidates whose manifest is fetched and checked against this picture

#: Failure codes a detached manifest store may show without its signature being in doubt: the
#: hard binding cannot match bytes it is not attached to, and trust is the reader's business.
DETACHED_OK = frozenset(
    {
        "assertion.dataHash.mismatch",
        "assertion.boxesHash.mismatch",
        "assertion.bmffHash.mismatch",
        "signingCredential.untrusted",
        "timeStamp.untrusted",
        "signingCredential.ocsp.skipped",
    }
)

PROVES = (
    "The registry returned a manifest store signed by {signer}; its signature validates here, "
    "and this picture matches the content the manifest was signed for. That ties the copy to "
    "a signed claim about an output, made by whoever holds that signing key. It does not prove "
    "that this copy is unaltered (its bytes differ from the signed file), that the signer is who "
    "they say (unless you trust their certificate), or anything about what the picture shows."
)


class RegistryError(Exception):
    """The registry could not be reached or refused: one line naming it."""


def soft_bindings(active_manifest: dict | None) -> list[tuple[str, str]]:
    """(alg, value) of every block of every soft-binding assertion of a manifest (c2pa JSON)."""
    out: list[tuple[str, str]] = []
    for a in (active_manifest or {}).get("assertions") or []:
        if not isinstance(a, dict):
            continue
        label = str(a.get("label", ""))
        if not (label == SOFT_BINDING_LABEL or label.startswith(SOFT_BINDING_LABEL + "__")):
            continue
        data = a.get("data") if isinstance(a.get("data"), dict) else {}
        alg = data.get("alg")
        if not isinstance(alg, str):
            continue
        for block in data.get("blocks") or []:
            value = block.get("value") if isinstance(block, dict) else None
            if isinstance(value, str) and value:
                out.append((alg, value))
    return list(dict.fromkeys(out))


def _our_mark(watermarks: list[dict] | None) -> dict | None:
    """fakestudio's first mark read with its identifier, else the durable one."""
    for scheme in ALGS:
        for w in watermarks or []:
            if w.get("scheme") == scheme and w.get("found") and w.get("payload"):
                return w
    return None


def store_signature_ok(codes: list[str] | None) -> bool:
    """A manifest store read on its own: is everything but the (detached) hard binding valid?"""
    return all(c in DETACHED_OK for c in codes or [])


class RegistryClient:
    def __init__(self, url: str, token: str | None = None, timeout: float = TIMEOUT):
        import httpx

        if not url.startswith(("http://", "https://")):
            raise RegistryError(f"registry {url}: give an http:// or https:// URL")
        self.url = url.rstrip("/")
        self.token = token
        self._http = httpx.Client(base_url=self.url, timeout=timeout, follow_redirects=False)

    def close(self) -> None:
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, method: str, path: str, **kw):
        import httpx

        try:
            resp = self._http.request(method, path, **kw)
        except httpx.HTTPError as e:
            raise RegistryError(f"registry {self.url}: {type(e).__name__}: {e}") from None
        if resp.status_code >= 400:
            try:
                why = resp.json().get("error")
            except ValueError:
                why = None
            raise RegistryError(
                f"registry {self.url}: {resp.status_code} {why or resp.reason_phrase}"
            )
        return resp

    def publish(self, data: bytes, bindings: list[tuple[str, str]] | None = None) -> dict:
        """Publish one signed file under the bindings its manifest declares (or `bindings`)."""
        if not self.token:
            raise RegistryError("publishing needs a token: --token or FAKESTUDIO_REGISTRY_TOKEN")
        mime = sniff_mime(data[:32])
        if bindings is None:
            c2pa = read_c2pa(data, mime=mime)
            bindings = soft_bindings(c2pa.active_manifest)
            if not bindings:
                raise RegistryError("the file's manifest declares no soft binding to publish under")
        body = {
            "format": mime,
            "asset": base64.b64encode(data).decode("ascii"),
            "softBindings": [{"alg": a, "value": v} for a, v in bindings],
        }
        return self._call(
            "POST", "/manifests", json=body, headers={"Authorization": f"Bearer {self.token}"}
        ).json()

    def by_binding(self, alg: str, value: str, max_results: int = 10) -> list[dict]:
        resp = self._call(
            "GET",
            "/matches/byBinding",
            params={"alg": alg, "value": value, "maxResults": max_results},
        )
        return list(resp.json().get("matches") or [])

    def by_content(self, data: bytes, mime: str | None = None, max_results: int = 10) -> list[dict]:
        resp = self._call(
            "POST",
            "/matches/byContent",
            content=data,
            params={"maxResults": max_results},
            headers={"Content-Type": mime or sniff_mime(data[:32]) or "application/octet-stream"},
        )
        return list(resp.json().get("matches") or [])

    def manifest(self, manifest_id: str) -> bytes:
        from urllib.parse import quote

        resp = self._call("GET", f"/manifests/{quote(manifest_id, safe=':')}")
        if len(resp.content) > MAX_STORE_BYTES:
            raise RegistryError(f"registry {self.url}: manifest store too large")
        return resp.content


def empty_result(url: str | None = None) -> dict[str, Any]:
    return {
        "checked": False,
        "url": url,
        "matched": False,
        "how": None,
        "manifest_id": None,
        "candidates": [],
        "c2pa": None,
        "signature_valid": None,
        "binding_confirmed": None,
        "record_found": False,
        "content": None,
        "proves": None,
        "note": None,
    }


def recover(
    url: str,
    data: bytes,
    *,
    mime: str | None,
    rgb=None,
    watermarks: list[dict] | None = None,
    trust_anchors: list[bytes] | None = None,
) -> dict[str, Any]:
    """Ask the registry at `url` for this image's manifest; verify what comes back. Never
    raises: a registry that cannot be reached gives a note."""

    out = empty_result(url)
    try:
        with RegistryClient(url) as client:
            out["checked"] = True
            mark = _our_mark(watermarks)
            if mark:
                alg = (mark.get("details") or {}).get("alg") or ALGS[mark["scheme"]]
                matches = client.by_binding(alg, mark["payload"])
                for other in KNOWN_ALGS:  # every mark carries the same identifier
                    if matches:
                        break
                    if other != alg:
                        matches = client.by_binding(other, mark["payload"])
                how = "watermark-payload"
                for m in matches:
                    m.setdefault(
                        "evidence", {"watermark": {"alg": alg, "payload": mark["payload"]}}
                    )
            else:
                matches = client.by_content(data, mime)
                how = "content"
            out["candidates"] = matches[:5]
            pointer = None
            for m in matches[:MAX_CHECKED]:
                res = _check_match(client, m, how, mark, rgb, trust_anchors)
                if res is None:
                    continue
                if res["matched"]:
                    out.update(res)
                    return out
                pointer = pointer or res
            if pointer is not None:
                out.update(pointer)
            elif matches:
                out["note"] = (
                    "the registry returned candidates, none confirmed by this copy's watermark"
                )
            else:
                out["note"] = "the registry holds no manifest for this image"
    except RegistryError as e:
        out["note"] = str(e)[:300]
    except Exception as e:  # noqa: BLE001 - a registry problem must not stop a verify
        out["note"] = f"registry {url}: {type(e).__name__}: {e}"[:300]
    return out


def _check_match(client, match: dict, how: str, mark, rgb, trust_anchors) -> dict | None:
    """Fetch a candidate's manifest store and check it here: its signature, that its soft
    binding names this copy's identifier (found by watermark) or that this picture is the
    content it was signed for (``detectors.content``: found by content, and always once a
    signed descriptor is there). None when the candidate does not concern this picture."""
    from detectors import content
    from detectors.watermarks import ours

    manifest_id = str(match.get("manifestId") or "")
    store = client.manifest(manifest_id)
    c2pa = read_c2pa(store, mime="application/c2pa", trust_anchors=trust_anchors)
    if how == "content" and "composite" in str(c2pa.digital_source_type or "").lower():
        # a composite holds other pictures (real photos too): a picture that is part of it is
        # not it, so a composite is only ever found by its own identifier
        return None
    sig_ok = c2pa.manifest_label == manifest_id and store_signature_ok(c2pa.status_codes)
    declared = [v.lower() for a, v in soft_bindings(c2pa.active_manifest) if a in KNOWN_ALGS]
    check = None
    if rgb is not None:
        try:
            desc = content.from_manifest(c2pa.active_manifest)
            details = (mark or {}).get("details") or {}
            check = (
                content.check(
                    rgb, desc, details.get("mirrored"), content.mark_scale(details, desc)
                ).to_dict()
                if desc
                else None
            )
        except content.DescriptorError as e:
            check = {"outcome": "inconclusive", "method": "features", "reason": str(e)}
    content_ok = bool(check and check["outcome"] == "match")
    if mark:
        payload = mark["payload"]
        bound = payload in declared
        detail = {
            "payload": payload,
            "method": f"{mark['scheme']} watermark read blind from this copy",
        }
    else:
        bound, detail = False, {"payload": declared[0] if declared else None}
        gen = c2pa.generation or {}
        if declared and rgb is not None and not content_ok:
            size = (int(gen.get("width") or rgb.shape[1]), int(gen.get("height") or rgb.shape[0]))
            res = ours.match_copy(rgb, declared[0].lower(), size, ours.LEDGER_TRIES)
            bound = bool(res.found)
            detail.update(
                method="known-payload watermark test on this copy",
                p_value=res.details.get("p_value"),
                agreeing_bits=res.details.get("agreeing_bits"),
            )
        if content_ok:
            detail["method"] = "content: this picture is what the manifest was signed for"
        if check is None and bound:  # a manifest made before content binding
            content_ok = False
    if not (bound or content_ok):
        return None
    summary = shallow_dict(c2pa)
    trusted = "signingCredential.untrusted" not in (c2pa.status_codes or [])
    summary["state"] = (
        ("trusted" if trusted else "valid-untrusted") if sig_ok else "invalid-signature"
    )
    summary["hard_binding"] = "not applicable: this copy's bytes are not the signed file's"
    signer = c2pa.signer or c2pa.issuer or "an unnamed signer"
    if not sig_ok:
        note = "the registry's manifest store does not validate: ignored"
    elif not content_ok:
        note = "the registry's signed manifest does not describe this picture (see content)"
    else:
        note = None
    return {
        "matched": sig_ok and content_ok,
        "record_found": sig_ok,
        "how": how,
        "manifest_id": manifest_id,
        "similarity": match.get("similarityScore"),
        "evidence": match.get("evidence"),
        "c2pa": summary,
        "signature_valid": sig_ok,
        "binding_confirmed": detail,
        "content": check,
        "proves": PROVES.format(signer=signer) if sig_ok and content_ok else None,
        "note": note,
    }
