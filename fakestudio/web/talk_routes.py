"""Routes of the talk (presenter, admin) and the quiz (audience, join code)."""

from __future__ import annotations

import asyncio
import io
import secrets
import socket

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from fakestudio.web.events import sse_response
from fakestudio.web.pages import page
from fakestudio.web.quiz import Quiz, QuizError
from fakestudio.web.security import JOIN_COOKIE, error
from fakestudio.web.talk import BASELINE_NOTE, BASELINES, load_talk

VOTER_COOKIE = "fs_voter"
PHOTO_SIDE = 1600  # photos are shown re-encoded at most this large, without their metadata


def join_base(cfg) -> str:
    """The address phones use: --public-url, else this machine's address on its LAN."""
    if cfg.public_url:
        return cfg.public_url.rstrip("/")
    host = cfg.host
    if host in ("0.0.0.0", "::", ""):
        host = _lan_address() or "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{cfg.port}"


def _lan_address() -> str | None:
    # a UDP "connection" sends nothing; it only asks the kernel which interface would be used
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))
            return s.getsockname()[0]
    except OSError:
        return None


def talk_routes(web) -> list[Route]:
    cfg = web.cfg
    talk = load_talk(cfg.talk_dir)
    quiz = Quiz(talk)
    web.quiz = quiz
    cache: dict[int, dict] = {}  # picture id -> verify report
    lock = asyncio.Lock()

    def join_url() -> str:
        return f"{join_base(cfg)}/j/{cfg.join_code}"

    async def report_of(pid: int) -> dict:
        async with lock:
            if pid not in cache:
                from fakestudio.web.reports import verify_path

                pic = talk.picture(pid)
                cache[pid] = await web.run(verify_path, pic.path, cfg)
                v = cache[pid]["verdict"]
                quiz.evidence[pid] = {
                    "outcome": v["outcome"],
                    "headline": v["headline"],
                    "tier": v.get("tier"),
                }
            return cache[pid]

    async def presenter(request: Request):
        quiz.join_url = join_url()
        slides = build_slides(talk)
        return page(
            "talk.html",
            active="talk",
            talk=talk,
            slides=slides,
            join_url=quiz.join_url,
            join_code=cfg.join_code,
            baselines=BASELINES,
            baseline_note=BASELINE_NOTE,
            data={"slides": slides, "join_url": quiz.join_url},
        )

    async def picture(request: Request):
        pic = talk.picture(int(request.path_params["pid"]))
        if pic is None:
            return error(404, "not-found", "no such picture")
        return await _serve_picture(web, pic)

    async def talk_report(request: Request):
        pid = int(request.path_params["pid"])
        if talk.picture(pid) is None:
            return error(404, "not-found", "no such picture")
        return JSONResponse(await report_of(pid))

    async def qr(request: Request):
        import segno

        svg = io.BytesIO()
        segno.make(join_url(), error="m").save(svg, kind="svg", scale=8, border=2, xmldecl=False)
        return Response(
            svg.getvalue(), media_type="image/svg+xml", headers={"Cache-Control": "no-store"}
        )

    async def control(request: Request):
        try:
            doc = await request.json()
        except ValueError:
            return error(400, "bad-json", "send JSON: {round, action}")
        action = doc.get("action") if isinstance(doc, dict) else None
        rnd = doc.get("round") if isinstance(doc, dict) else None
        try:
            if action == "open":
                if not isinstance(rnd, int):
                    raise QuizError(400, "bad-round", "round: an integer")
                pair = talk.pairs[rnd] if 0 <= rnd < len(talk.pairs) else None
                if pair is not None:  # the evidence shown at the reveal, checked now
                    await report_of(pair.a.id)
                    await report_of(pair.b.id)
                quiz.open_round(rnd)
            elif action == "reveal":
                quiz.reveal(rnd)
            elif action == "close":
                quiz.close()
            elif action == "reset":
                quiz.reset()
            else:
                raise QuizError(400, "bad-action", "action: open, reveal, close or reset")
        except QuizError as e:
            return error(e.status, e.code, e.message)
        return JSONResponse(quiz.snapshot())

    # --- the audience ------------------------------------------------------------------------

    async def join(request: Request):
        client = request.client.host if request.client else "?"
        guard_tries = web.join_tries
        if guard_tries.blocked(client):
            return error(429, "too-many-tries", "too many wrong codes; wait a minute")
        code = request.path_params["code"].upper()
        if not secrets.compare_digest(code.encode(), cfg.join_code.encode()):
            guard_tries.failed(client)
            return page(
                "error.html", status=404, message="No quiz with that code here", active=None
            )
        resp = RedirectResponse("/quiz", status_code=303)
        resp.set_cookie(JOIN_COOKIE, cfg.join_code, httponly=True, samesite="lax")
        if VOTER_COOKIE not in request.cookies:
            resp.set_cookie(VOTER_COOKIE, secrets.token_urlsafe(12), httponly=True, samesite="lax")
        return resp

    async def audience(request: Request):
        quiz.join_url = quiz.join_url or join_url()
        resp = page("quiz.html", active=None, data={"state": quiz.snapshot()})
        if VOTER_COOKIE not in request.cookies:
            resp.set_cookie(VOTER_COOKIE, secrets.token_urlsafe(12), httponly=True, samesite="lax")
        return resp

    async def quiz_image(request: Request):
        rnd, side = int(request.path_params["round"]), request.path_params["side"]
        if rnd != quiz.round or side not in ("a", "b"):
            return error(404, "not-found", "that round is not open")
        pair = talk.pairs[rnd]
        return await _serve_picture(web, pair.a if side == "a" else pair.b)

    async def vote(request: Request):
        try:
            doc = await request.json()
        except ValueError:
            return error(400, "bad-json", 'send JSON: {"round": N, "choice": "a"}')
        if not isinstance(doc, dict) or not isinstance(doc.get("round"), int):
            return error(400, "bad-round", "round: an integer")
        voter = request.cookies.get(VOTER_COOKIE)
        new = voter is None or not 8 <= len(voter) <= 32
        if new:
            voter = secrets.token_urlsafe(12)
        try:
            tally = quiz.vote(voter, doc["round"], str(doc.get("choice")))
        except QuizError as e:
            return error(e.status, e.code, e.message)
        resp = JSONResponse({"ok": True, "choice": doc.get("choice"), "tally": tally})
        if new:
            resp.set_cookie(VOTER_COOKIE, voter, httponly=True, samesite="lax")
        return resp

    async def state(request: Request):
        return JSONResponse(quiz.snapshot(), headers={"Cache-Control": "no-store"})

    async def events(request: Request):
        return sse_response(quiz.hub, request)

    return [
        Route("/talk", presenter),
        Route("/talk/image/{pid:int}", picture),
        Route("/talk/qr.svg", qr),
        Route("/api/talk/report/{pid:int}", talk_report),
        Route("/api/talk/round", control, methods=["POST"]),
        Route("/j/{code:str}", join),
        Route("/quiz", audience),
        Route("/quiz/image/{round:int}/{side:str}", quiz_image),
        Route("/api/quiz/vote", vote, methods=["POST"]),
        Route("/api/quiz/state", state),
        Route("/api/quiz/events", events),
    ]


async def _serve_picture(web, pic) -> Response:
    """A generated picture as its labelled file; a photo re-encoded without its metadata
    (camera EXIF can hold a place and a time the audience need not see)."""
    if pic.role in ("fake", "copy"):
        data = await asyncio.to_thread(pic.path.read_bytes)
        from detectors.c2pa import sniff_mime

        mime = sniff_mime(data[:32]) or "application/octet-stream"
        return Response(data, media_type=mime, headers={"Cache-Control": "no-store"})
    data = await asyncio.to_thread(_photo_jpeg, pic.path)
    if data is None:
        return error(415, "unreadable", f"{pic.path.name}: cannot be shown")
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


def _photo_jpeg(path) -> bytes | None:
    from PIL import Image

    from detectors import image_io

    rgb, _info = image_io.load_image(path)
    if rgb is None:
        return None
    im = Image.fromarray(rgb)
    im.thumbnail((PHOTO_SIDE, PHOTO_SIDE), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def build_slides(talk) -> list[dict]:
    """The presenter's slides, in order (plain data: the template and talk.js read it)."""
    slides: list[dict] = [{"kind": "title"}]
    story = talk.story
    if talk.kind == "demo":
        for person in story["people"]:
            slides.append({"kind": "photos", "person": person})
        slides.append({"kind": "lora", "people": story["people"]})
        slides.append({"kind": "fake", "picture": story["fake"]})
        slides.append({"kind": "label", "picture": story["fake"]})
        for cid in story["copies"][:1]:
            slides.append({"kind": "copy", "picture": cid})
            slides.append({"kind": "verify-again", "picture": cid})
    for pair in talk.pairs:
        slides.append({"kind": "quiz", "round": pair.round, "a": pair.a.id, "b": pair.b.id})
    slides.append({"kind": "closing"})
    return slides
