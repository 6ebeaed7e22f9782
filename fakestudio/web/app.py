"""The web app: routes, the guard in front of them, the pages and the JSON API.

    GET  /                      Verify page              POST /api/verify    verify --json
    GET  /compare               Compare page             POST /api/compare   compare --json
    GET  /talk                  presenter view           POST /api/inspect   report + thumbnails
    GET  /quiz, /j/CODE         the audience's quiz      (docs/web.md lists every route)
    GET  /studio, /audit        loopback-only tools

Heavy work (verification, comparison, generation) runs in worker threads, at most one per
CPU at a time, so the event loop keeps answering the quiz and the progress streams.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from fakestudio.web.config import WebConfig
from fakestudio.web.pages import STATIC, page, warm_templates
from fakestudio.web.security import Guard, TryLimiter, error
from fakestudio.web.uploads import UploadFolder, UploadRefused, bomb_check, read_images

log = logging.getLogger("fakestudio.web")


_verifier: ThreadPoolExecutor | None = None
_verifier_lock = threading.Lock()


def verifier() -> ThreadPoolExecutor:
    """The process's one verification thread.

    Every check that reads the ledger (verify, compare, the studio's labels) runs on it:
    `detectors.verify` keeps one read-only SQLite connection to the ledger per process, and
    SQLite refuses a connection used from another thread than the one that opened it (a
    second thread's reports would say "ledger not readable"). One verification at a time also
    leaves the other core to the event loop, the quiz and a generation."""
    global _verifier
    with _verifier_lock:
        if _verifier is None:
            _verifier = ThreadPoolExecutor(1, thread_name_prefix="fakestudio-verify")
        return _verifier


class Web:
    """The state one server holds: its configuration, quiz and studio."""

    def __init__(self, cfg: WebConfig):
        self.cfg = cfg
        self.join_tries = TryLimiter()
        self.quiz = None
        self.studio = None
        self.tasks: set = set()  # background tasks (kept referenced until they finish)
        self.loop: asyncio.AbstractEventLoop | None = None

    def close_streams(self) -> None:
        """End the event streams (thread-safe): the server is stopping."""
        hubs = [
            h for h in (getattr(self.quiz, "hub", None), getattr(self.studio, "hub", None)) if h
        ]
        loop = self.loop
        for hub in hubs:
            if loop is not None and loop.is_running():
                loop.call_soon_threadsafe(hub.close)
            else:
                hub.closing = True

    async def run(self, fn, *args):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(verifier(), functools.partial(fn, *args))

    async def uploads(self, request: Request, fields: tuple[str, ...], folder: UploadFolder):
        """The request's images, saved; the image-bomb rules are applied by `checked`."""
        return await read_images(request, fields, self.cfg.max_upload, folder)

    async def checked(self, fn, files: dict, *args, timing: dict | None = None):
        """fn(*uploads, *args) on the verifier thread, after the CLI's image-bomb rules (413)
        on each upload: one hop to that thread for the whole request. `timing` gets the
        seconds the work itself took (the Server-Timing header)."""

        def work():
            t = time.perf_counter()
            for up in files.values():
                bomb_check(up)
            out = fn(*files.values(), *args)
            if timing is not None:
                timing["verify"] = time.perf_counter() - t
            return out

        return await self.run(work)


def server_timing(timing: dict, start: float) -> dict:
    """A Server-Timing header: where a request's time went on the server (milliseconds)."""
    timing = {**timing, "total": time.perf_counter() - start}
    return {"Server-Timing": ", ".join(f"{k};dur={1000 * v:.1f}" for k, v in timing.items())}


def create_app(cfg: WebConfig) -> Starlette:
    from fakestudio.web import reports

    web = Web(cfg)

    async def verify_page(request: Request):
        return page(
            "verify.html",
            active="verify",
            data={"registry": cfg.registry, "max_upload": cfg.max_upload},
        )

    async def api_verify(request: Request):
        start, timing = time.perf_counter(), {}
        with UploadFolder() as folder:
            files = await web.uploads(request, ("file",), folder)
            timing["upload"] = time.perf_counter() - start
            rep = await web.checked(reports.verify_report, files, cfg, timing=timing)
        return JSONResponse(rep, headers=server_timing(timing, start))

    async def api_inspect(request: Request):
        """The verify page's call: the report and, for a trusted signer, the thumbnails."""
        with UploadFolder() as folder:
            files = await web.uploads(request, ("file",), folder)

            def work(up, cfg):
                rep = reports.verify_report(up, cfg)
                return {"report": rep, "thumbnails": reports.ingredient_thumbnails(up, rep)}

            out = await web.checked(work, files, cfg)
        return JSONResponse(out)

    async def api_compare(request: Request):
        from detectors.compare import ImageError

        with UploadFolder() as folder:
            files = await web.uploads(request, ("a", "b"), folder)
            try:
                _cmp, d = await web.checked(reports.compare_report, files, cfg)
            except ImageError as e:
                msg = reports.scrub(str(e), {str(u.path): u.name for u in files.values()})
                return error(422, "not-an-image", msg)
        return JSONResponse(d)

    async def compare_page(request: Request):
        return page("compare.html", active="compare", data={"max_upload": cfg.max_upload})

    async def api_compare_view(request: Request):
        """The compare page's call: the comparison and its maps (PNG data URLs)."""
        from detectors.compare import ImageError

        def work(a, b):
            cmp, d = reports.compare_report(a, b, cfg)
            return {"comparison": d, "maps": reports.compare_maps(cmp)}

        with UploadFolder() as folder:
            files = await web.uploads(request, ("a", "b"), folder)
            try:
                out = await web.checked(work, files)
            except ImageError as e:
                msg = reports.scrub(str(e), {str(u.path): u.name for u in files.values()})
                return error(422, "not-an-image", msg)
        return JSONResponse(out)

    async def api_compare_poster(request: Request):
        """The `compare --png` poster of two images, labelled, as a download."""
        from detectors.compare import ImageError

        def work(a, b):
            cmp, _ = reports.compare_report(a, b, cfg)
            return reports.poster_bytes(cmp)

        with UploadFolder() as folder:
            files = await web.uploads(request, ("a", "b"), folder)
            try:
                data, info = await web.checked(work, files)
            except ImageError as e:
                msg = reports.scrub(str(e), {str(u.path): u.name for u in files.values()})
                return error(422, "not-an-image", msg)
        return Response(
            data,
            media_type="image/png",
            headers={
                "Content-Disposition": 'attachment; filename="poster.png"',
                "X-Fakestudio-Labelled": "true" if info.get("labelled") else "false",
                "Cache-Control": "no-store",
            },
        )

    async def health(request: Request):
        return JSONResponse({"status": "ok", "service": "fakestudio web"})

    async def favicon(request: Request):
        return Response(status_code=204)

    async def refused(request: Request, exc: UploadRefused):
        return error(exc.status, exc.code, exc.message)

    async def http_error(request: Request, exc: HTTPException):
        words = {404: "not-found", 405: "method-not-allowed"}
        code = words.get(exc.status_code, "http-error")
        if request.url.path.startswith("/api/"):
            return error(exc.status_code, code, exc.detail)
        return page("error.html", status=exc.status_code, message=exc.detail, active=None)

    async def server_error(request: Request, exc: Exception):
        log.error("web: %s: %s", type(exc).__name__, exc)
        return error(500, "server-error", "the server failed to answer this request")

    from fakestudio.web.audit_routes import audit_routes
    from fakestudio.web.studio_routes import studio_routes
    from fakestudio.web.talk_routes import talk_routes

    routes = [
        *talk_routes(web),
        *studio_routes(web),
        *audit_routes(web),
        Route("/", verify_page),
        Route("/api/verify", api_verify, methods=["POST"]),
        Route("/api/inspect", api_inspect, methods=["POST"]),
        Route("/api/compare", api_compare, methods=["POST"]),
        Route("/compare", compare_page),
        Route("/api/compare/view", api_compare_view, methods=["POST"]),
        Route("/api/compare/poster", api_compare_poster, methods=["POST"]),
        Route("/health", health),
        Route("/favicon.ico", favicon),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
    ]

    @asynccontextmanager
    async def lifespan(app):
        web.loop = asyncio.get_running_loop()  # where threads post their events
        warm_templates()  # compiled now, not on the first visit (~20 ms each)
        yield

    app = Starlette(
        lifespan=lifespan,
        routes=routes,
        exception_handlers={
            UploadRefused: refused,
            HTTPException: http_error,
            Exception: server_error,
        },
    )
    app.state.web = web
    guarded = Guard(app, cfg)
    guarded.close_streams = web.close_streams
    return guarded
