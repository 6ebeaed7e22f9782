"""The registry over real HTTP on 127.0.0.1: publish, look up, recover; forgeries refused."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from detectors.c2pa import read_c2pa
from detectors.registry_client import RegistryClient, RegistryError, recover, store_signature_ok
from detectors.watermarks import durable, ours
from fakestudio.cli import cli
from fakestudio.registry import tokens
from fakestudio.registry.storage import open_storage
from tests.conftest_registry import pg_server_fixture, storage_fixture  # noqa: F401
from tests.registry_support import running_registry
from tests.test_verify import photo_like, write_labelled


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """Two labelled outputs (signed PNGs) and a stripped JPEG copy of the first."""
    d = tmp_path_factory.mktemp("reg-out")
    a = write_labelled(d, d / "ledger.sqlite", seed=3)
    b = write_labelled(d, d / "ledger.sqlite", seed=4)
    copy = d / "copy.jpg"
    with Image.open(a.path) as im:
        im.convert("RGB").save(copy, "JPEG", quality=85)  # metadata gone, pixels re-encoded
    return {"a": a, "b": b, "copy": copy}


def test_publish_look_up_and_fetch_on_both_backends(storage, outputs):
    _, secret = tokens.create(storage)
    a = outputs["a"]
    with running_registry(storage) as url, RegistryClient(url, secret) as client:
        res = client.publish(a.path.read_bytes())
        assert res["created"] is True
        # the label's mark is declared (since issue 24 the durable one alone), and the file
        # is filed under it
        assert res["softBindings"] == [{"alg": durable.ALG, "value": a.payload}]
        assert client.publish(a.path.read_bytes())["created"] is False  # idempotent
        mid = res["manifestId"]
        assert mid.startswith("urn:c2pa:")
        assert client.by_binding(durable.ALG, a.payload) == [
            {"manifestId": mid, "similarityScore": 100}
        ]
        # the API's own encoding of a value: base64; and the POST form
        b64 = base64.b64encode(bytes.fromhex(a.payload)).decode()
        assert client.by_binding(durable.ALG, b64)[0]["manifestId"] == mid
        post = httpx.post(f"{url}/matches/byBinding", json={"alg": durable.ALG, "value": a.payload})
        assert post.json()["matches"][0]["manifestId"] == mid
        assert client.by_binding(durable.ALG, outputs["b"].payload) == []
        assert client.by_binding(ours.ALG, a.payload) == []  # not declared: not carried
        # the manifest store, as bytes a C2PA reader accepts on its own
        resp = httpx.get(f"{url}/manifests/{mid}")
        assert resp.headers["content-type"] == "application/c2pa"
        alone = read_c2pa(resp.content, mime="application/c2pa")
        assert alone.manifest_label == mid and store_signature_ok(alone.status_codes)
        assert alone.soft_binding["value"] == a.payload
        # by content: the stripped, re-encoded copy
        matches = client.by_content(outputs["copy"].read_bytes(), "image/jpeg")
        assert matches[0]["manifestId"] == mid and matches[0]["similarityScore"] >= 95
        assert matches[0]["evidence"]
        algs = httpx.get(f"{url}/services/supportedAlgorithms").json()
        assert {"alg": ours.ALG} in algs["watermarks"]
        # the client's recovery, by payload (a watermark read blind) and by content (none read)
        copy = outputs["copy"].read_bytes()
        rgb = np.asarray(Image.open(io.BytesIO(copy)).convert("RGB"))
        mark = {"scheme": durable.SCHEME, "found": True, "payload": a.payload}
        for how, marks in (("watermark-payload", [mark]), ("content", [])):
            got = recover(url, copy, mime="image/jpeg", rgb=rgb, watermarks=marks)
            assert got["matched"] and got["how"] == how and got["manifest_id"] == mid, got
            assert got["binding_confirmed"]["payload"] == a.payload
        # a payload the registry does not hold, and an unrelated picture: no match
        other = {"scheme": durable.SCHEME, "found": True, "payload": outputs["b"].payload}
        assert not recover(url, copy, mime="image/jpeg", rgb=rgb, watermarks=[other])["matched"]
        buf = io.BytesIO()
        photo_like(512, 384, seed=21).save(buf, "PNG")
        miss = recover(url, buf.getvalue(), mime="image/png", rgb=None, watermarks=[])
        assert not miss["matched"] and miss["note"]


@pytest.fixture
def sqlite_registry(tmp_path):
    st = open_storage(f"sqlite:///{tmp_path / 'r.sqlite'}")
    _, secret = tokens.create(st)
    yield st, secret
    st.close()


def _publish_raw(url, data: bytes, bindings, token: str | None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {
        "format": "image/png",
        "asset": base64.b64encode(data).decode(),
        "softBindings": [{"alg": a, "value": v} for a, v in bindings],
    }
    return httpx.post(f"{url}/manifests", json=body, headers=headers)


def _one_line_json_error(resp, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    assert "\n" not in resp.text and "Traceback" not in resp.text
    doc = resp.json()
    assert doc["code"] == code and doc["status"] == status and doc["error"]


def test_forged_publications_are_refused(sqlite_registry, outputs, tmp_path):
    st, secret = sqlite_registry
    a, b = outputs["a"], outputs["b"]
    data = a.path.read_bytes()
    with running_registry(st, max_body=2 * 1024 * 1024) as url:
        # no token, a wrong token
        _one_line_json_error(
            _publish_raw(url, data, [(durable.ALG, a.payload)], None), 401, "unauthorized"
        )
        _one_line_json_error(
            _publish_raw(url, data, [(durable.ALG, a.payload)], "fsr_not-a-token"),
            401,
            "unauthorized",
        )
        # someone else's payload: the manifest does not declare it
        _one_line_json_error(
            _publish_raw(url, data, [(durable.ALG, b.payload)], secret), 422, "binding-mismatch"
        )
        # a pixel changed after signing: the signature no longer covers the file
        im = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).copy()
        im[0, 0] ^= 1
        buf = io.BytesIO()
        Image.fromarray(im).save(buf, "PNG")
        tampered = _splice_manifest(data, buf.getvalue())
        _one_line_json_error(
            _publish_raw(url, tampered, [(durable.ALG, a.payload)], secret),
            422,
            "invalid-manifest",
        )
        # a validly signed manifest that claims a watermark its pixels do not carry
        liar = _signed_claiming(b.payload, seed=9)
        _one_line_json_error(
            _publish_raw(url, liar, [(ours.ALG, b.payload)], secret), 422, "watermark-mismatch"
        )
        # oversize body
        _one_line_json_error(
            _publish_raw(url, data + b"\0" * (3 * 1024 * 1024), [(durable.ALG, a.payload)], secret),
            413,
            "too-large",
        )
        # not JSON, not an image
        r = httpx.post(
            f"{url}/manifests", content=b"{", headers={"Authorization": f"Bearer {secret}"}
        )
        _one_line_json_error(r, 400, "bad-json")
        _one_line_json_error(
            httpx.post(f"{url}/matches/byContent", content=b"not an image"),
            415,
            "unsupported-format",
        )
        _one_line_json_error(httpx.get(f"{url}/nowhere"), 404, "not-found")
        _one_line_json_error(httpx.get(f"{url}/manifests/urn:c2pa:nothing"), 404, "not-found")
        _one_line_json_error(
            httpx.get(f"{url}/matches/byBinding", params={"alg": ours.ALG, "value": "zz"}),
            400,
            "bad-value",
        )
        assert st.counts() == {"manifests": 0, "bindings": 0}  # nothing was stored
        assert _publish_raw(url, data, [(durable.ALG, a.payload)], secret).status_code == 201


def test_rate_limit_answers_429(sqlite_registry):
    st, _ = sqlite_registry
    with running_registry(st, rate=1.0, burst=3) as url:
        codes = [httpx.get(f"{url}/health").status_code for _ in range(6)]
        # a made-up token per request does not buy a fresh bucket
        forged = [
            httpx.get(f"{url}/health", headers={"Authorization": f"Bearer fsr_{i}"}).status_code
            for i in range(4)
        ]
    assert codes[:3] == [200, 200, 200] and 429 in codes[3:]
    assert 429 in forged


def test_generate_publish_then_verify_stripped_copy_on_a_fresh_machine(
    tmp_path, tiny_folder, sqlite_registry, monkeypatch
):
    st, secret = sqlite_registry
    with running_registry(st) as url:
        monkeypatch.setenv(tokens.ENV, secret)
        res = CliRunner().invoke(
            cli,
            [
                "generate",
                "a photo of ben0a",
                "--out",
                str(tmp_path / "out"),
                "--seed",
                "3",
                "--steps",
                "2",
                "--width",
                "256",
                "--height",
                "256",
                "--publish",
                url,
                "--json",
            ],
            catch_exceptions=False,
        )
        assert res.exit_code == 0, res.output
        written = json.loads(res.stdout)[0]
        assert written["published"]["registry"] == url
        mid = written["published"]["manifestId"]
        # the platform strips metadata and re-encodes
        copy = tmp_path / "copy.jpg"
        with Image.open(written["path"]) as im:
            im.convert("RGB").save(copy, "JPEG", quality=85)
        # a journalist's machine: an empty fakestudio home, no ledger, no local CA
        monkeypatch.setenv("FAKESTUDIO_HOME", str(tmp_path / "journalist"))
        monkeypatch.delenv(tokens.ENV)
        plain = CliRunner().invoke(cli, ["verify", str(copy), "--json"])
        assert json.loads(plain.stdout)["registry"] == {"checked": False}  # never by default
        res = CliRunner().invoke(cli, ["verify", str(copy), "--registry", url, "--json"])
        rep = json.loads(res.stdout)
    assert res.exit_code == 0, res.output
    assert rep["ledger"]["checked"] is False  # nothing on this machine
    assert rep["verdict"]["outcome"] == "recovered"
    assert url in rep["verdict"]["headline"]
    reg = rep["registry"]
    assert reg["matched"] and reg["manifest_id"] == mid and reg["url"] == url
    assert reg["signature_valid"] and reg["c2pa"]["state"] == "valid-untrusted"
    assert reg["c2pa"]["digital_source_type"].endswith("trainedAlgorithmicMedia")
    assert reg["binding_confirmed"]["payload"] == written["watermark"]
    assert "does not prove" in reg["proves"]
    assert any(
        s["source"] == "registry" and s["finding"] == "registry-match" for s in rep["signals"]
    )


def test_verify_registry_unreachable_is_a_note_not_a_crash(outputs, monkeypatch, tmp_path):
    monkeypatch.setenv("FAKESTUDIO_HOME", str(tmp_path / "home"))
    from tests.registry_support import free_port

    url = f"http://127.0.0.1:{free_port()}"
    res = CliRunner().invoke(cli, ["verify", str(outputs["copy"]), "--registry", url, "--json"])
    rep = json.loads(res.stdout)
    assert rep["registry"]["checked"] and not rep["registry"]["matched"]
    assert url in rep["registry"]["note"]
    bad = CliRunner().invoke(cli, ["verify", str(outputs["copy"]), "--registry", "ftp://x"])
    assert bad.exit_code == 2 and "--registry" in bad.output


def test_cli_token_create_and_serve(tmp_path):
    db = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    res = CliRunner().invoke(cli, ["registry", "token", "create", "--db", db, "--name", "ci"])
    assert res.exit_code == 0
    secret = res.stdout.strip()
    assert res.stdout == secret + "\n" and secret.startswith("fsr_")
    st = open_storage(db)
    assert st.token_id(tokens.hash_token(secret)) is not None
    st.close()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "fakestudio", "registry", "serve", "--db", db, "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stderr.readline()
        assert "serving on http://127.0.0.1:" in line, line
        url = line.strip().rsplit(" ", 1)[-1]
        deadline = time.monotonic() + 30
        while True:
            try:
                assert httpx.get(f"{url}/health").json()["status"] == "ok"
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        with RegistryClient(url) as client, pytest.raises(RegistryError, match="token"):
            client.publish(b"\x89PNG\r\n\x1a\n")
    finally:
        proc.terminate()
        proc.wait(10)
    bad = CliRunner().invoke(cli, ["registry", "serve", "--db", "mysql://x/y"])
    assert bad.exit_code == 2 and "unknown database" in bad.output
    down = CliRunner().invoke(
        cli, ["registry", "token", "create", "--db", "postgresql://u:secret@127.0.0.1:1/db"]
    )
    assert down.exit_code == 2 and "PostgreSQL" in down.output and "secret" not in down.output


# --- helpers ------------------------------------------------------------------------------------


def _splice_manifest(signed_png: bytes, other_png: bytes) -> bytes:
    """other_png's pixels with signed_png's manifest chunk: a signature over different bytes."""
    from fakestudio.registry.jumbf import extract_store

    store = extract_store(signed_png, "image/png")
    import struct
    import zlib

    chunk = struct.pack(">I", len(store)) + b"caBX" + store
    chunk += struct.pack(">I", zlib.crc32(b"caBX" + store) & 0xFFFFFFFF)
    return other_png[:33] + chunk + other_png[33:]


def _signed_claiming(payload: str, seed: int) -> bytes:
    """A correctly signed PNG whose manifest declares `payload` over pixels marked otherwise."""
    from fakestudio.label.identity import ensure_identity
    from fakestudio.label.manifest import build_manifest, sign_bytes
    from fakestudio.record import GenerationRecord

    rec = GenerationRecord("x", "", seed, 2, 7.0, 512, 384, "euler", "tiny", "ab" * 32)
    marked = ours.embed(np.asarray(photo_like(512, 384, seed)), "0123456789")
    buf = io.BytesIO()
    Image.fromarray(marked).save(buf, "PNG")
    manifest = build_manifest(rec, {"alg": ours.ALG, "payload": payload})
    return sign_bytes(buf.getvalue(), "image/png", manifest, ensure_identity())


def test_audit_registry_recovers_stripped_copies(sqlite_registry, outputs, tmp_path, monkeypatch):
    st, secret = sqlite_registry
    folder = tmp_path / "uploads"
    folder.mkdir()
    (folder / "copy.jpg").write_bytes(outputs["copy"].read_bytes())
    photo_like(512, 384, seed=11).save(folder / "photo.png")
    monkeypatch.setenv("FAKESTUDIO_HOME", str(tmp_path / "auditor"))
    with running_registry(st) as url:
        with RegistryClient(url, secret) as client:
            client.publish(outputs["a"].path.read_bytes())
        res = CliRunner().invoke(cli, ["audit", str(folder), "--registry", url, "--json"])
        plain = CliRunner().invoke(cli, ["audit", str(folder), "--json"])
    by_name = {os.path.basename(r["file"]): r for r in json.loads(res.stdout)["files"]}
    assert by_name["copy.jpg"]["verdict"]["outcome"] == "recovered"
    assert by_name["copy.jpg"]["registry"]["matched"]
    assert by_name["photo.png"]["verdict"]["outcome"] == "no-provenance"
    assert not by_name["photo.png"]["registry"]["matched"]
    plain_names = {os.path.basename(r["file"]): r for r in json.loads(plain.stdout)["files"]}
    assert plain_names["copy.jpg"]["registry"] == {"checked": False}


def _signed_with_both_marks(payload: str, seed: int, fmt: int = 2) -> bytes:
    """A signed PNG carrying both of fakestudio's marks and declaring both soft bindings."""
    from detectors.watermarks import durable
    from fakestudio.label.identity import ensure_identity
    from fakestudio.label.manifest import build_manifest, sign_bytes
    from fakestudio.record import GenerationRecord

    rgb = np.asarray(photo_like(512, 512, seed))
    marked = durable.embed(ours.embed(rgb, payload), payload, fmt)
    rec = GenerationRecord("x", "", seed, 2, 7.0, 512, 512, "euler", "tiny", "ab" * 32)
    manifest = build_manifest(rec, {"alg": ours.ALG, "payload": payload})
    manifest["assertions"].append(
        {
            "label": "c2pa.soft-binding",
            "data": {
                "alg": durable.ALGS[fmt],
                "blocks": [{"scope": {}, "value": payload}],
                "name": "d",
            },
        }
    )
    from detectors import content

    manifest["assertions"].append(content.assertion(content.describe(marked)))
    buf = io.BytesIO()
    Image.fromarray(marked).save(buf, "PNG")
    return sign_bytes(buf.getvalue(), "image/png", manifest, ensure_identity())


@pytest.mark.parametrize("fmt", [2, 1])  # 1: a label written before the mark's second format
def test_durable_mark_recovers_a_cropped_rescaled_copy(sqlite_registry, tmp_path, monkeypatch, fmt):
    from detectors.watermarks import durable

    st, secret = sqlite_registry
    payload = "a1b2c3d4e5"
    alg = durable.ALGS[fmt]
    signed = _signed_with_both_marks(payload, seed=3, fmt=fmt)
    im = Image.open(io.BytesIO(signed)).convert("RGB")
    crop = im.crop((40, 30, 40 + 410, 30 + 410)).resize((300, 300), Image.Resampling.BICUBIC)
    copy = tmp_path / "cropped.jpg"
    crop.save(copy, "JPEG", quality=85)
    monkeypatch.setenv("FAKESTUDIO_HOME", str(tmp_path / "journalist"))
    with running_registry(st) as url:
        with RegistryClient(url, secret) as client:
            res = client.publish(signed)
            assert {"alg": alg, "value": payload} in res["softBindings"]
            assert client.by_binding(alg, payload)[0]["manifestId"] == res["manifestId"]
            found = client.by_content(copy.read_bytes(), "image/jpeg")
            assert found[0]["manifestId"] == res["manifestId"]
            assert found[0]["evidence"]["watermark"] == {"alg": alg, "payload": payload}
        out = CliRunner().invoke(cli, ["verify", str(copy), "--registry", url, "--json"])
    rep = json.loads(out.stdout)
    assert rep["verdict"]["outcome"] == "recovered", rep["verdict"]
    assert rep["registry"]["manifest_id"] == res["manifestId"]
    assert rep["registry"]["how"] == "watermark-payload"
    assert "fakestudio-durable" in rep["registry"]["binding_confirmed"]["method"]


def test_label_publish(sqlite_registry, tmp_path):
    st, secret = sqlite_registry
    src = tmp_path / "render.png"
    photo_like(512, 384, seed=31).save(src)
    with running_registry(st) as url:
        res = CliRunner().invoke(
            cli,
            [
                "label",
                str(src),
                "--out",
                str(tmp_path / "labelled"),
                "--generator",
                "Midjourney",
                "--publish",
                url,
                "--token",
                secret,
                "--json",
            ],
            catch_exceptions=False,
        )
        assert res.exit_code == 0, res.output
        rec = json.loads(res.stdout)[0]
        mid = rec["published"]["manifestId"]
        assert read_c2pa(rec["path"]).manifest_label == mid
        with RegistryClient(url) as client:
            assert client.by_binding(durable.ALG, rec["watermark"])[0]["manifestId"] == mid
    nothing = CliRunner().invoke(
        cli,
        [
            "label",
            str(src),
            "--out",
            str(tmp_path / "l2"),
            "--generator",
            "x",
            "--publish",
            "http://127.0.0.1:9",
        ],
    )
    assert nothing.exit_code == 2 and "token" in nothing.output
    assert not (tmp_path / "l2").exists() or not any((tmp_path / "l2").iterdir())
