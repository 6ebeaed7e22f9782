"""`fakestudio web`'s JSON API and its guard, over real HTTP on 127.0.0.1 (no browser):
the reports are exactly the CLI's, uploads are bounded, foreign origins and hosts refused,
and beyond loopback the admin token and the join code are required."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import httpx
import pytest

from tests.web_support import labelled_png, plain_photo, stripped_copy, web_server


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    d = tmp_path_factory.mktemp("web-api")
    fake = labelled_png(d, seed=21)
    copy = stripped_copy(fake, d / "copy of fake.jpg")
    photo = plain_photo(d / "photo.png")
    return {"folder": d, "fake": fake, "copy": copy, "photo": photo}


@pytest.fixture(scope="module")
def server():
    with web_server() as (url, cfg):
        yield url, cfg


def cli_json(args, folder) -> tuple[int, dict]:
    """The CLI's own JSON, run as a user runs it (its own process, in the pictures' folder,
    so the file names it prints are the bare names the browser uploads)."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    res = subprocess.run(
        [sys.executable, "-m", "fakestudio", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return res.returncode, json.loads(res.stdout)


@pytest.mark.parametrize("which", ["fake", "copy", "photo"])
def test_api_verify_is_the_cli_report(server, pictures, which):
    url, _ = server
    path = pictures[which]
    r = httpx.post(f"{url}/api/verify", files={"file": (path.name, path.read_bytes())}, timeout=60)
    assert r.status_code == 200, r.text
    code, expected = cli_json(["verify", path.name, "--json"], pictures["folder"])
    got = r.json()
    assert got == expected
    assert got["verdict"]["exit_code"] == code
    assert got["file"] == path.name and "fakestudio-web-" not in r.text  # no temporary path
    outcome = got["verdict"]["outcome"]
    assert outcome == {"fake": "labelled-ai", "photo": "no-provenance"}.get(
        which, outcome if outcome in ("ai-watermark", "recovered") else "?"
    )


def test_api_compare_is_the_cli_comparison(server, pictures):
    url, _ = server
    a, b = pictures["fake"], pictures["copy"]
    r = httpx.post(
        f"{url}/api/compare",
        files={"a": (a.name, a.read_bytes()), "b": (b.name, b.read_bytes())},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    _, expected = cli_json(["compare", a.name, b.name, "--json"], pictures["folder"])
    assert r.json() == expected
    assert r.json()["hash_reading"] == "same"


def test_api_compare_names_a_file_that_is_not_an_image(server, pictures):
    url, _ = server
    a = pictures["fake"]
    r = httpx.post(
        f"{url}/api/compare",
        files={"a": (a.name, a.read_bytes()), "b": ("notes.png", b"hello, not a picture")},
        timeout=60,
    )
    assert r.status_code == 422
    err = r.json()
    assert err["code"] == "not-an-image" and "notes.png" in err["error"]
    assert "fakestudio-web-" not in err["error"]


def test_missing_field_and_not_multipart(server):
    url, _ = server
    r = httpx.post(f"{url}/api/verify", files={"other": ("x.png", b"abc")})
    assert r.status_code == 400 and r.json()["code"] == "missing-file"
    r = httpx.post(f"{url}/api/verify", content=b"raw", headers={"content-type": "image/png"})
    assert r.status_code == 415


def _bomb_png(w: int, h: int) -> bytes:
    def chunk(kind, body):
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def test_uploads_are_bounded(pictures):
    with web_server(max_upload=100_000) as (url, _):
        big = pictures["fake"].read_bytes()
        assert len(big) > 100_000
        r = httpx.post(f"{url}/api/verify", files={"file": ("big.png", big)})
        assert r.status_code == 413
        assert r.json()["code"] == "too-large" and "\n" not in r.text
        # a header claiming 70,000 x 70,000 pixels: refused before any pixel is decoded
        r = httpx.post(f"{url}/api/verify", files={"file": ("bomb.png", _bomb_png(70000, 70000))})
        assert r.status_code == 413
        assert "decompression-bomb" in r.json()["error"] and "bomb.png" in r.json()["error"]


def test_origin_and_host_checks(server, pictures):
    url, _ = server
    data = {"file": ("photo.png", pictures["photo"].read_bytes())}
    r = httpx.post(f"{url}/api/verify", files=data, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and r.json()["code"] == "foreign-origin"
    r = httpx.post(f"{url}/api/verify", files=data, headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    r = httpx.post(f"{url}/api/verify", files=data, headers={"Origin": url}, timeout=60)
    assert r.status_code == 200
    # DNS rebinding: a page whose own host name resolves to 127.0.0.1 is refused
    r = httpx.get(f"{url}/", headers={"Host": "attacker.example:7860"})
    assert r.status_code == 403 and r.text.startswith("403")


def test_pages_carry_a_strict_csp(server):
    url, _ = server
    r = httpx.get(f"{url}/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    # no inline script and no address of another host in the page
    assert "<script>" not in r.text and "http" not in r.text.replace(url, "")
    js = httpx.get(f"{url}/static/verify.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]


def test_beyond_loopback_the_token_and_the_join_code_are_required():
    with web_server(host="0.0.0.0") as (url, cfg):
        url = url.replace("0.0.0.0", "127.0.0.1")
        assert httpx.get(f"{url}/").status_code == 401
        r = httpx.post(f"{url}/api/verify", files={"file": ("x.png", b"x")})
        assert r.status_code == 401 and r.json()["code"] == "admin-token"
        assert httpx.get(f"{url}/static/app.css").status_code == 200
        # the token in the link becomes an HttpOnly cookie and leaves the address bar
        r = httpx.get(f"{url}/?token={cfg.admin_token}")
        assert r.status_code == 303 and r.headers["location"] == "/"
        assert (
            "HttpOnly" in r.headers["set-cookie"] and "SameSite=strict" in r.headers["set-cookie"]
        )
        with httpx.Client(base_url=url, cookies=r.cookies) as admin:
            assert admin.get("/").status_code == 200
        bearer = {"Authorization": f"Bearer {cfg.admin_token}"}
        assert httpx.get(f"{url}/", headers=bearer).status_code == 200
        assert httpx.get(f"{url}/?token=wrong").status_code == 401


def test_guard_keeps_studio_and_audit_on_this_machine():
    from fakestudio.web.config import WebConfig
    from fakestudio.web.security import Guard

    def scope(path, client, cfg_kw, headers=()):
        cfg = WebConfig(host="0.0.0.0", **cfg_kw)
        hdrs = [(b"host", b"192.168.1.20:7860"), *headers]
        hdrs.append((b"authorization", f"Bearer {cfg.admin_token}".encode()))
        s = {
            "type": "http",
            "method": "GET",
            "path": path,
            "query_string": b"",
            "headers": hdrs,
            "client": (client, 5000),
            "scheme": "http",
        }
        return Guard(None, cfg).check(s)

    assert scope("/studio", "192.168.1.30", {}).status_code == 403
    assert scope("/api/audit/run", "192.168.1.30", {}).status_code == 403
    assert scope("/studio", "127.0.0.1", {}) is None
    assert scope("/studio", "192.168.1.30", {"allow_remote_admin": True}) is None
    assert scope("/compare", "192.168.1.30", {}) is None  # with the token


def test_the_command_serves_and_refuses_bad_options(tmp_path):
    from click.testing import CliRunner

    from fakestudio.cli import cli

    for args, words in (
        (["web", "--port", "70000"], "--port 70000"),
        (["web", "--talk", str(tmp_path / "missing")], "no such folder"),
        (["web", "--max-upload", "0"], "--max-upload"),
    ):
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 2 and words in res.output, res.output
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "fakestudio", "web", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stderr.readline()
        assert line.startswith("fakestudio web: http://127.0.0.1:"), line
        url = line.split()[2]
        r = httpx.get(url, timeout=30)
        assert r.status_code == 200 and "Drop, pick or paste" in r.text
    finally:
        proc.terminate()
        proc.wait(20)


def test_quiz_audience_can_only_vote(tmp_path):
    from tests.web_support import demo_like_talk

    folder = demo_like_talk(tmp_path / "talk")
    with web_server(host="0.0.0.0", talk_dir=folder) as (url, cfg):
        url = url.replace("0.0.0.0", "127.0.0.1")
        admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {cfg.admin_token}"})
        phone = httpx.Client(base_url=url)
        assert phone.get("/quiz").status_code == 401
        assert phone.get("/j/WRONG1").status_code == 404
        r = phone.get(f"/j/{cfg.join_code.lower()}")
        assert r.status_code == 303 and r.headers["location"] == "/quiz"
        assert phone.get("/quiz").status_code == 200
        # a phone with the join code reaches nothing else
        for path in ("/", "/talk", "/talk/image/0", "/talk/qr.svg", "/compare"):
            assert phone.get(path).status_code == 401, path
        assert phone.post("/api/talk/round", json={"action": "open", "round": 0}).status_code == 401
        assert phone.post("/api/verify", files={"file": ("x.png", b"x")}).status_code == 401
        # nothing to vote on before the presenter opens a round
        assert phone.post("/api/quiz/vote", json={"round": 0, "choice": "a"}).status_code == 409
        assert phone.get("/quiz/image/0/a").status_code == 404
        state = admin.post("/api/talk/round", json={"action": "open", "round": 0}).json()
        assert state["phase"] == "voting" and "answer" not in state
        assert phone.get("/quiz/image/0/a").status_code == 200
        assert phone.get("/quiz/image/1/a").status_code == 404  # no peeking ahead
        r = phone.post("/api/quiz/vote", json={"round": 0, "choice": "b"})
        assert r.status_code == 200 and r.json()["tally"] == {"a": 0, "b": 1, "total": 1}
        r = phone.post("/api/quiz/vote", json={"round": 0, "choice": "a"})  # changed its mind
        assert r.json()["tally"] == {"a": 1, "b": 0, "total": 1}
        assert phone.post("/api/quiz/vote", json={"round": 0, "choice": "c"}).status_code == 400
        # the reveal names the fake, with the verdicts as evidence
        state = admin.post("/api/talk/round", json={"action": "reveal", "round": 0}).json()
        fake = state["answer"]["fake"]
        outcome = state["answer"]["evidence"][fake]["outcome"]
        assert outcome in ("labelled-ai", "ai-watermark", "recovered")
        assert phone.post("/api/quiz/vote", json={"round": 0, "choice": "a"}).status_code == 409
        assert phone.get("/api/quiz/state").json()["answer"]["fake"] == fake
        # the stream: one event with the state as it is
        with phone.stream("GET", "/api/quiz/events") as events:
            assert events.headers["content-type"].startswith("text/event-stream")
            first = next(events.iter_lines())
            assert first.startswith("data: ") and json.loads(first[6:])["phase"] == "revealed"
        admin.close()
        phone.close()


def test_studio_refuses_bad_forms_in_one_line(tmp_path):
    with web_server(studio_out=tmp_path / "studio") as (url, _):
        for form, words in (
            ({"prompt": "  "}, "prompt is empty"),
            ({"prompt": "x", "steps": 0}, "steps"),
            ({"prompt": "x", "n": 99}, "n: between"),
            ({"prompt": "x", "sampler": "warp-drive"}, "warp-drive"),
            ({"prompt": "x", "loras": [{"name": "nobody"}]}, "no LoRA named"),
            ({"prompt": "x", "seed": "NaN"}, "seed"),
        ):
            r = httpx.post(f"{url}/api/studio/generate", json=form)
            assert r.status_code == 400, (form, r.text)
            assert words in r.json()["error"] and "\n" not in r.json()["error"]
        # studio files are served by bare name only
        assert httpx.get(f"{url}/studio/file/..%2F..%2Fetc%2Fpasswd").status_code == 404
        assert httpx.get(f"{url}/api/studio/label/nothing.png").status_code == 404
        assert not (tmp_path / "studio").exists() or not any((tmp_path / "studio").iterdir())


def test_ingredient_thumbnails_only_for_a_trusted_signer(fixtures_dir):
    photo = fixtures_dir / "c2pa" / "CA.jpg"
    roots = fixtures_dir / "c2pa" / "test_cert_root_bundle.pem"
    if not (photo.is_file() and roots.is_file()):
        pytest.skip("the C2PA sample CA.jpg and its test roots are not in the fixtures")
    files = {"file": (photo.name, photo.read_bytes())}
    with web_server() as (url, _):
        res = httpx.post(f"{url}/api/inspect", files=files, timeout=60).json()
        assert res["report"]["c2pa"]["state"] == "valid-untrusted"
        thumbs = res["thumbnails"]
        assert not thumbs["shown"] and thumbs["ingredients"] == [] and thumbs["claim"] is None
        assert "not one you trust" in thumbs["note"]
    with web_server(trust_anchors=[roots.read_bytes()]) as (url, _):
        res = httpx.post(f"{url}/api/inspect", files=files, timeout=60).json()
        assert res["report"]["c2pa"]["state"] == "trusted"
        thumbs = res["thumbnails"]
        assert thumbs["shown"] and thumbs["claim"].startswith("data:image/jpeg;base64,")
        (ing,) = thumbs["ingredients"]
        assert ing["title"] == "A.jpg" and ing["thumbnail"].startswith("data:image/jpeg;base64,")
