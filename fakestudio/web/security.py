"""Who may do what: the guard in front of every request (docs/web.md, "Security").

* Loopback by default. On loopback the Host header must name loopback too (a web page cannot
  reach this server by pointing a DNS name of its own at 127.0.0.1: DNS rebinding).
* Beyond loopback (`--host`), every page and API needs the admin token (printed once at start,
  as a link that sets an HttpOnly cookie; scripts send `Authorization: Bearer TOKEN`), except
  the audience's quiz, which needs the join code (the short URL and QR code on the talk screen).
  Studio, audit and anything that names a path on this machine stay loopback-only unless
  `--allow-remote-admin`.
* POST, PUT, PATCH and DELETE with an Origin other than this server's are refused (403), so
  another site open in the same browser cannot submit to it.
* Every response carries a content security policy that runs only this server's own script
  files (no inline script, nothing from elsewhere) and connects only back to this server.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse, RedirectResponse, Response

from fakestudio.web.config import WebConfig, is_loopback

ADMIN_COOKIE = "fs_admin"
JOIN_COOKIE = "fs_join"

CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]

UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
PUBLIC_PREFIXES = ("/static/", "/j/", "/health")
AUDIENCE_PREFIXES = ("/quiz", "/api/quiz/")
LOCAL_PREFIXES = ("/studio", "/api/studio/", "/audit", "/api/audit/")


def access_class(path: str) -> str:
    """'public', 'audience', 'local' (admin + this machine) or 'admin'."""
    if path.startswith(PUBLIC_PREFIXES) or path == "/favicon.ico":
        return "public"
    if path.startswith(AUDIENCE_PREFIXES):
        return "audience"
    if path.startswith(LOCAL_PREFIXES):
        return "local"
    return "admin"


def refusal(path: str, status: int, code: str, message: str) -> Response:
    """A one-line JSON error for the API, a short plain page otherwise."""
    if path.startswith("/api/"):
        return error(status, code, message)
    return Response(
        f"{status}: {message}\n", status_code=status, media_type="text/plain; charset=utf-8"
    )


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": " ".join(str(message).split())[:500], "code": code, "status": status},
        status_code=status,
    )


class TryLimiter:
    """Wrong join codes / tokens per client address: `limit` per `window` seconds."""

    def __init__(self, limit: int = 30, window: float = 60.0):
        self.limit, self.window = limit, window
        self._tries: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def blocked(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._tries.get(key, []) if now - t < self.window]
            self._tries[key] = recent
            if len(self._tries) > 10_000:
                self._tries = {k: v for k, v in self._tries.items() if v}
            return len(recent) >= self.limit

    def failed(self, key: str) -> None:
        with self._lock:
            self._tries.setdefault(key, []).append(time.monotonic())


class Guard:
    """ASGI middleware: host, origin and access checks, then security headers on the answer."""

    def __init__(self, app, config: WebConfig):
        self.app = app
        self.cfg = config
        self.tries = TryLimiter()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for k, v in SECURITY_HEADERS:
                    if k.decode() not in headers:
                        headers.append(k.decode(), v.decode())
            await send(message)

        denial = self.check(scope)
        if denial is not None:
            await denial(scope, receive, send_secured)
            return
        await self.app(scope, receive, send_secured)

    # --- the checks -----------------------------------------------------------------------

    def check(self, scope) -> Response | None:
        headers = Headers(scope=scope)
        path = scope["path"]
        host = headers.get("host", "")
        if not self.cfg.remote and not is_loopback(_hostname(host)):
            return refusal(path, 403, "bad-host", f"this server answers to localhost, not {host!r}")
        if scope["method"] in UNSAFE_METHODS:
            origin = headers.get("origin")
            scheme = scope.get("scheme", "http")
            if origin is not None and origin != f"{scheme}://{host}":
                return refusal(path, 403, "foreign-origin", "request from another site refused")
            if headers.get("sec-fetch-site") == "cross-site":
                return refusal(path, 403, "foreign-origin", "request from another site refused")
        kind = access_class(path)
        if kind == "public":
            return None
        client = (scope.get("client") or ("", 0))[0]
        local_client = is_loopback(client)
        if kind == "local" and not (local_client or self.cfg.allow_remote_admin):
            return refusal(
                path,
                403,
                "loopback-only",
                "the studio and the audit answer only on this machine (--allow-remote-admin)",
            )
        if not self.cfg.remote:
            return None
        admin, redirect = self._admin(scope, headers, client)
        if redirect is not None:
            return redirect
        if admin:
            return None
        if kind == "audience" and self._joined(headers):
            return None
        if kind == "audience":
            return refusal(path, 401, "join-code", "join with the code on the presenter's screen")
        return refusal(path, 401, "admin-token", "this page needs the admin token")

    def _admin(self, scope, headers: Headers, client: str) -> tuple[bool, Response | None]:
        token = self.cfg.admin_token
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer ") and secrets.compare_digest(
            auth[7:].strip().encode(), token.encode()
        ):
            return True, None
        cookie = _cookies(headers).get(ADMIN_COOKIE)
        if cookie and secrets.compare_digest(cookie.encode(), token.encode()):
            return True, None
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        given = query.pop("token", None)
        if given is not None and scope["method"] == "GET":
            if self.tries.blocked(client):
                return False, refusal(scope["path"], 429, "too-many-tries", "too many tries")
            if secrets.compare_digest(given.encode(), token.encode()):
                # the token leaves the address bar at once; the cookie carries it from now on
                target = scope["path"] + (f"?{urlencode(query)}" if query else "")
                resp = RedirectResponse(target, status_code=303)
                resp.set_cookie(ADMIN_COOKIE, token, httponly=True, samesite="strict")
                return True, resp
            self.tries.failed(client)
        return False, None

    def _joined(self, headers: Headers) -> bool:
        code = _cookies(headers).get(JOIN_COOKIE)
        return bool(code) and secrets.compare_digest(code.encode(), self.cfg.join_code.encode())


def _hostname(host_header: str) -> str:
    """The host part of a Host header ("[::1]:7860" -> "::1", "localhost:80" -> "localhost")."""
    h = host_header.strip()
    if h.startswith("["):
        return h[1 : h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def _cookies(headers: Headers) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in headers.get("cookie", "").split(";"):
        k, _, v = part.strip().partition("=")
        if k:
            out[k] = v
    return out


def json_script(data) -> str:
    """Data for a page's script, as the text of a <script type="application/json"> element:
    not run (so the CSP allows it), and `<` escaped so no string can close the element."""
    return (
        json.dumps(data, default=str)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )
