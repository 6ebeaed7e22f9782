"""Offline by default: no remote manifest fetch, no OCSP, no connection at all without --online.

A JPEG whose manifest is stored remotely (c2pa's ``set_no_embed`` + ``set_remote_url``) points
at a real HTTP server the test starts on 127.0.0.1, serving the manifest store. Without
``--online`` no request reaches it; with ``--online`` c2pa-rs fetches it and the verdict
reads the fetched manifest. A subprocess then runs a default ``fakestudio verify`` with a
Python audit hook on every socket call (and, where strace exists, under strace for the
native c2pa library): nothing opens a network connection.
"""

from __future__ import annotations

import http.server
import io
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from detectors.c2pa import read_c2pa
from fakestudio.cli import cli
from fakestudio.label.identity import ensure_identity
from fakestudio.label.manifest import build_manifest, signing_settings
from tests.test_c2pa import FIXTURES, _image_bytes, _record

ROOT = Path(__file__).resolve().parents[1]


class ManifestServer:
    """Serves manifest stores at /<name>.c2pa and counts every request."""

    def __init__(self):
        self.stores: dict[str, bytes] = {}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                server.requests.append(self.path)
                body = server.stores.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/c2pa")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}.c2pa"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server():
    s = ManifestServer()
    yield s
    s.close()


@pytest.fixture(scope="module")
def remote_jpeg(server, tmp_path_factory):
    """A fakestudio-signed JPEG (AI-generated per its manifest) whose manifest lives only on
    the server; the file itself carries the URL and no store."""
    import c2pa

    folder = tmp_path_factory.mktemp("remote")
    mp = pytest.MonkeyPatch()
    mp.setenv("FAKESTUDIO_HOME", str(folder / "fshome"))
    try:
        ident = ensure_identity()
    finally:
        mp.undo()
    url = server.url("remote")
    definition = dict(build_manifest(_record(), None), format="image/jpeg")
    context = c2pa.Context(settings=c2pa.Settings.from_dict(signing_settings()))
    signer = c2pa.Signer.from_info(
        c2pa.C2paSignerInfo(ident.alg, ident.cert_chain_pem, ident.private_key_pem, None)
    )
    out = io.BytesIO()
    with signer, c2pa.Builder(definition, context=context) as builder:
        builder.set_no_embed()
        builder.set_remote_url(url)
        store = builder.sign(signer, "image/jpeg", io.BytesIO(_image_bytes("jpeg")), out)
    server.stores["/remote.c2pa"] = store
    path = folder / "remote.jpg"
    path.write_bytes(out.getvalue())
    assert url.encode() in path.read_bytes() and len(store) > 1000
    return path


def _verify(*args) -> tuple[int, dict]:
    res = CliRunner().invoke(cli, ["verify", "--no-ledger", "--json", *map(str, args)])
    return res.exit_code, json.loads(res.output)


def test_remote_manifest_not_fetched_by_default(server, remote_jpeg, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKESTUDIO_HOME", str(tmp_path / "home"))
    server.requests.clear()
    code, rep = _verify(remote_jpeg)
    assert server.requests == []
    assert rep["c2pa"]["state"] == "remote-not-fetched"
    assert rep["c2pa"]["remote_url"] == server.url("remote")
    assert "--online" in rep["c2pa"]["message"]
    assert rep["verdict"]["outcome"] != "labelled-ai" and code == 1
    assert read_c2pa(remote_jpeg).state == "remote-not-fetched" and server.requests == []


def test_online_fetches_the_remote_manifest(server, remote_jpeg, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKESTUDIO_HOME", str(tmp_path / "home"))
    server.requests.clear()
    code, rep = _verify(remote_jpeg, "--online")
    assert server.requests == ["/remote.c2pa"]
    assert rep["c2pa"]["state"] == "valid-untrusted" and rep["c2pa"]["online"] is True
    assert rep["c2pa"]["embedded"] is False
    assert rep["c2pa"]["generator"]["name"] == "fakestudio"
    assert rep["verdict"]["outcome"] == "labelled-ai" and code == 0


def test_online_with_the_manifest_gone(server, remote_jpeg, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKESTUDIO_HOME", str(tmp_path / "home"))
    gone = tmp_path / "gone.jpg"
    gone.write_bytes(remote_jpeg.read_bytes().replace(b"/remote.c2pa", b"/absent.c2pa"))
    server.requests.clear()
    _, rep = _verify(gone, "--online")
    assert server.requests == ["/absent.c2pa"]
    assert rep["c2pa"]["state"] == "remote-not-fetched"
    assert "could not be fetched" in rep["c2pa"]["message"]


def test_audit_is_offline_unless_online(server, remote_jpeg, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKESTUDIO_HOME", str(tmp_path / "home"))
    folder = tmp_path / "folder"
    folder.mkdir()
    shutil.copy(remote_jpeg, folder / "remote.jpg")
    server.requests.clear()
    runner = CliRunner()
    offline = runner.invoke(cli, ["audit", str(folder), "--no-ledger", "--json"])
    assert server.requests == []
    (rep,) = json.loads(offline.output)["files"]
    assert rep["c2pa"]["state"] == "remote-not-fetched"
    online = runner.invoke(cli, ["audit", str(folder), "--no-ledger", "--json", "--online"])
    assert server.requests == ["/remote.c2pa"]
    (rep,) = json.loads(online.output)["files"]
    assert rep["c2pa"]["state"] == "valid-untrusted"


# --- nothing else connects ---------------------------------------------------------------------

# Runs `fakestudio verify ARGS` with an audit hook that records every socket event Python sees
# (connect, getaddrinfo, sendto ...) and prints them as the last line.
HOOKED = """
import json, sys
seen = []
def hook(event, args):
    if event.startswith("socket.") and event not in ("socket.__new__", "socket.bind"):
        seen.append(event)
sys.addaudithook(hook)
from fakestudio.cli import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    code = e.code
print(json.dumps({"code": code, "seen": sorted(set(seen))}))
"""


def _hooked(args: list[str], home: Path, strace: Path | None = None) -> dict:
    env = dict(os.environ, FAKESTUDIO_HOME=str(home), PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-c", HOOKED, "verify", "--json", *args]
    if strace is not None:
        cmd = ["strace", "-f", "-qq", "-e", "trace=connect", "-o", str(strace), *cmd]
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _inet_connects(trace: Path) -> list[str]:
    return [line for line in trace.read_text().splitlines() if "AF_INET" in line]


def _targets(remote_jpeg) -> list[str]:
    files = [str(remote_jpeg)]
    if (FIXTURES / "cloud.jpg").is_file():  # points at a real https:// manifest
        files += [str(FIXTURES / "cloud.jpg"), str(FIXTURES / "C.jpg")]
    return files


def test_default_verify_opens_no_connection(server, remote_jpeg, tmp_path):
    server.requests.clear()
    res = _hooked(_targets(remote_jpeg), tmp_path / "home")
    assert res["seen"] == [] and res["code"] in (0, 1)
    assert server.requests == []
    # the hook is not blind: a registry look-up (Python's own HTTP client) for a picture
    # without credentials is seen
    plain = tmp_path / "plain.png"
    plain.write_bytes(_image_bytes("png"))
    asked = _hooked([str(plain), "--registry", server.url("registry")], tmp_path / "home")
    assert "socket.connect" in asked["seen"]


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")
def test_default_verify_native_code_connects_nowhere(server, remote_jpeg, tmp_path):
    """c2pa-rs is native code, out of the audit hook's sight: strace sees its connect()s."""
    if not _strace_works(tmp_path):
        pytest.skip("strace cannot trace here (no ptrace permission)")
    trace = tmp_path / "offline.trace"
    _hooked(_targets(remote_jpeg), tmp_path / "home", strace=trace)
    assert _inet_connects(trace) == []
    online = tmp_path / "online.trace"
    server.requests.clear()
    _hooked([str(remote_jpeg), "--online"], tmp_path / "home", strace=online)
    assert server.requests == ["/remote.c2pa"]
    assert any("127.0.0.1" in line for line in _inet_connects(online))


def _strace_works(tmp_path: Path) -> bool:
    probe = tmp_path / "probe.trace"
    subprocess.run(
        [
            "strace",
            "-f",
            "-qq",
            "-e",
            "trace=connect",
            "-o",
            str(probe),
            sys.executable,
            "-c",
            "import socket; s = socket.socket(); s.settimeout(0.2)\n"
            "try: s.connect(('127.0.0.1', 9))\nexcept OSError: pass",
        ],
        capture_output=True,
        timeout=60,
    )
    return probe.exists() and "connect(" in probe.read_text()
