"""Routes of the audit page (admin, loopback-only unless --allow-remote-admin): a folder on
this machine checked by `detectors.audit.audit`, the function behind `fakestudio audit`, each
file's row streamed to the page as it is done; CSV and JSON as the CLI writes them."""

from __future__ import annotations

import asyncio
import itertools
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from fakestudio.web.events import KEEPALIVE
from fakestudio.web.pages import page
from fakestudio.web.security import error


@dataclass
class AuditJob:
    id: int
    folder: str
    state: str = "running"  # running, done, failed
    total: int | None = None
    rows: list[dict] = field(default_factory=list)
    result: object = None
    error: str | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def poke(self) -> None:
        ev, self.changed = self.changed, asyncio.Event()
        ev.set()


def row(rep: dict, root: Path) -> dict:
    """What the table shows of one report (the CSV has every column); the file relative to
    the audited folder."""
    v = rep.get("verdict") or {}
    name = str(rep.get("file") or "")
    try:
        name = str(Path(name).relative_to(root))
    except ValueError:
        pass
    c2pa = rep.get("c2pa") or {}
    marks = [w.get("scheme") for w in rep.get("watermarks") or [] if w.get("found")]
    return {
        "file": name,
        "outcome": v.get("outcome"),
        "tier": v.get("tier"),
        "category": v.get("category"),
        "headline": v.get("headline"),
        "format": rep.get("format"),
        "c2pa": c2pa.get("state"),
        "watermarks": marks,
        "ledger": (rep.get("ledger") or {}).get("matched"),
    }


def audit_routes(web) -> list[Route]:
    cfg = web.cfg
    jobs: dict[int, AuditJob] = {}
    ids = itertools.count(1)

    async def audit_page(request: Request):
        return page("audit.html", active="audit", data={})

    async def run(request: Request):
        from detectors.audit import audit

        try:
            doc = await request.json()
            folder = str(doc.get("folder") or "").strip()
        except (ValueError, AttributeError):
            return error(400, "bad-json", 'send {"folder": "/path/on/this/machine"}')
        path = Path(folder).expanduser()
        if not folder or not path.is_dir():
            return error(400, "no-folder", f"{folder or '(empty)'}: no such folder on this machine")
        job = AuditJob(next(ids), folder)
        jobs[job.id] = job
        loop = asyncio.get_running_loop()

        def on_start(total: int) -> None:
            job.total = total
            loop.call_soon_threadsafe(job.poke)

        def on_progress(done: int, total: int, rep: dict) -> None:
            job.rows.append(row(rep, path))
            loop.call_soon_threadsafe(job.poke)

        def work():
            return audit(
                path,
                trust_anchors=cfg.trust_anchors,
                use_ledger=cfg.use_ledger,
                registry=cfg.registry,
                on_start=on_start,
                on_progress=on_progress,
            )

        async def background():
            try:
                job.result = await web.run(work)
                job.state = "done"
            except Exception as e:  # noqa: BLE001 - reported on the page
                job.state, job.error = "failed", f"{type(e).__name__}: {e}"
            job.poke()

        web.tasks.add(asyncio.create_task(background()))
        return JSONResponse({"job": job.id}, status_code=202)

    def find(request: Request) -> AuditJob | None:
        return jobs.get(int(request.path_params["job"]))

    async def events(request: Request):
        job = find(request)
        if job is None:
            return error(404, "not-found", "no such audit")

        async def stream():
            sent = 0
            while True:
                waiter = job.changed
                new = job.rows[sent:]
                sent += len(new)
                msg = {"state": job.state, "total": job.total, "done": sent, "rows": new}
                if job.state != "running":
                    msg["summary"] = job.result.summary if job.result is not None else None
                    msg["error"] = job.error
                    yield f"data: {json.dumps(msg, default=str)}\n\n"
                    return
                if new or sent == 0:
                    yield f"data: {json.dumps(msg, default=str)}\n\n"
                try:
                    await asyncio.wait_for(waiter.wait(), KEEPALIVE)
                except asyncio.TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield ": keep-alive\n\n"
                await asyncio.sleep(0.05)  # a burst of files arrives as one message

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )

    async def download(request: Request):
        job = find(request)
        if job is None or job.result is None:
            return error(404, "not-found", "no finished audit with that number")
        kind = request.path_params["kind"]
        if kind == "json":
            body = json.dumps(job.result.to_dict(), indent=2, default=str).encode()
            return Response(
                body,
                media_type="application/json",
                headers={"Content-Disposition": 'attachment; filename="audit.json"'},
            )
        if kind == "csv":

            def csv_bytes() -> bytes:
                with tempfile.TemporaryDirectory(prefix="fakestudio-web-") as d:
                    out = Path(d) / "audit.csv"
                    job.result.write_csv(out)
                    return out.read_bytes()

            return Response(
                await asyncio.to_thread(csv_bytes),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
            )
        return error(404, "not-found", "csv or json")

    return [
        Route("/audit", audit_page),
        Route("/api/audit/run", run, methods=["POST"]),
        Route("/api/audit/{job:int}/events", events),
        Route("/api/audit/{job:int}/report.{kind:str}", download),
    ]
