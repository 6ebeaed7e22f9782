"""Routes of the studio (admin, loopback-only unless --allow-remote-admin)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Route

from fakestudio.extras import problem
from fakestudio.web.events import sse_response
from fakestudio.web.pages import page
from fakestudio.web.security import error
from fakestudio.web.studio import Studio, StudioError, verify_upload_copy

GALLERY_MAX = 24


def studio_routes(web) -> list[Route]:
    cfg = web.cfg
    studio = Studio(cfg, lambda: web.loop)
    web.studio = studio
    labels: dict[tuple[str, int], dict] = {}  # (name, mtime_ns) -> verify report

    async def label_of(name: str) -> dict:
        path = studio.file(name)
        key = (name, path.stat().st_mtime_ns)
        if key not in labels:
            from fakestudio.web.reports import verify_path

            labels[key] = await web.run(verify_path, path, cfg)
        return labels[key]

    async def studio_page(request: Request):
        no_studio = problem("studio", "the studio")  # fakestudio[web] alone: verify, compare, ...
        if no_studio:
            return page("error.html", status=501, message=no_studio, active="studio")
        from fakestudio.models import default_base
        from fakestudio.schedulers import SCHEDULERS

        return page(
            "studio.html",
            active="studio",
            samplers=list(SCHEDULERS),
            default_base=cfg.base or default_base(),
            loras=studio.loras(),
            data={"loras": studio.loras()},
        )

    async def generate(request: Request):
        no_studio = problem("studio", "the studio")
        if no_studio:
            return error(501, "missing-extra", no_studio)
        try:
            form = await request.json()
        except ValueError:
            return error(400, "bad-json", "send the form as JSON")
        if not isinstance(form, dict):
            return error(400, "bad-json", "send the form as a JSON object")
        try:
            job = await asyncio.to_thread(studio.submit, form)
        except StudioError as e:
            return error(e.status, e.code, e.message)
        return JSONResponse({"job": job.id}, status_code=202)

    async def events(request: Request):
        return sse_response(studio.hub, request)

    async def gallery(request: Request):
        names = await asyncio.to_thread(studio.gallery)
        return JSONResponse({"images": names[:GALLERY_MAX]})

    async def label(request: Request):
        try:
            rep = await label_of(request.path_params["name"])
        except StudioError as e:
            return error(e.status, e.code, e.message)
        return JSONResponse(rep)

    async def picture(request: Request):
        try:
            path = studio.file(request.path_params["name"])
        except StudioError as e:
            return error(e.status, e.code, e.message)
        return FileResponse(path, headers={"Cache-Control": "no-store"})

    async def upload(request: Request):
        try:
            doc = await request.json()
            path = studio.file(str(doc.get("name")))
            quality = int(doc.get("quality", 85))
            scale = doc.get("scale")
        except StudioError as e:
            return error(e.status, e.code, e.message)
        except (ValueError, TypeError, AttributeError):
            return error(400, "bad-json", 'send {"name": ..., "quality": 85, "scale": 0.5}')
        if scale is None:  # as platforms do: at most 1080 px on the long side
            from PIL import Image

            with Image.open(path) as im:
                scale = min(1.0, 1080 / max(im.size))
        try:
            scale = float(scale)
        except (TypeError, ValueError):
            return error(400, "bad-value", "scale: a number")
        if not (30 <= quality <= 100 and 0.25 <= scale <= 1.0):
            return error(400, "bad-value", "quality 30..100, scale 0.25..1")
        original = await label_of(path.name)
        copy = await web.run(verify_upload_copy, path, quality, scale, cfg)
        return JSONResponse({"original": original, "copy": copy})

    return [
        Route("/studio", studio_page),
        Route("/studio/file/{name:str}", picture),
        Route("/api/studio/generate", generate, methods=["POST"]),
        Route("/api/studio/events", events),
        Route("/api/studio/gallery", gallery),
        Route("/api/studio/label/{name:str}", label),
        Route("/api/studio/upload", upload, methods=["POST"]),
    ]
