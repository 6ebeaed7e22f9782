"""`--tsa URL`: RFC 3161 time-stamps on signatures, against a responder on 127.0.0.1.

The responder (tests/tsa_responder.py) is real: its own CA and a certificate with the
timeStamping extended key usage, CMS SignedData over a TSTInfo, answered over HTTP. c2pa-rs
asks it, checks the answer and embeds it; the reader gives the signed time back.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner
from PIL import Image

from detectors.c2pa import read_c2pa
from detectors.ledger import Ledger
from fakestudio.cli import cli
from fakestudio.label.identity import ensure_identity
from fakestudio.label.manifest import SigningError, build_manifest, sign_bytes, time_stamping
from tests.test_c2pa import _image_bytes, _record
from tests.tsa_responder import TimeStampAuthority


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKESTUDIO_HOME", str(tmp_path / "fshome"))
    return tmp_path / "fshome"


@pytest.fixture
def tsa():
    with TimeStampAuthority() as authority:
        yield authority


def _signed_at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def test_signature_carries_the_authority_time(home, tsa):
    ident = ensure_identity()
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    data = sign_bytes(
        _image_bytes("png"), "image/png", build_manifest(_record(), None), ident, tsa_url=tsa.url
    )
    assert tsa.requests == 1
    r = read_c2pa(data)
    assert r.state == "valid-untrusted"
    assert (
        before - dt.timedelta(seconds=2)
        <= _signed_at(r.signed_time)
        <= before + dt.timedelta(seconds=30)
    )
    assert r.timestamp["authority"] == "fakestudio test TSA"
    assert r.timestamp["trusted"] is False and r.timestamp["codes"] == ["timeStamp.untrusted"]
    # the authority's CA as an anchor: the time-stamp is vouched for, by the user's anchors
    trusted = read_c2pa(data, trust_anchors=[tsa.ca_pem])
    assert trusted.timestamp["trusted"] is True and trusted.timestamp["trust_list"] == "user"
    assert trusted.state == "valid-untrusted"  # the signer itself is still nobody's


def test_time_stamping_applies_to_every_signature_inside(home, tsa):
    ident = ensure_identity()
    manifest = build_manifest(_record(), None)
    with time_stamping(tsa.url, ident):
        assert tsa.requests == 1  # the check
        inside = sign_bytes(_image_bytes("jpeg"), "image/jpeg", manifest, ident)
    outside = sign_bytes(_image_bytes("jpeg"), "image/jpeg", manifest, ident)
    assert tsa.requests == 2
    assert read_c2pa(inside).signed_time is not None
    assert read_c2pa(outside).signed_time is None


def _picture(path):
    rng = __import__("numpy").random.default_rng(11)
    pixels = rng.integers(0, 256, (320, 320, 3), dtype="uint8")
    info = {"parameters": "a cat\nSteps: 20, Sampler: Euler a, Seed: 1, Model: sd15"}
    from PIL import PngImagePlugin

    meta = PngImagePlugin.PngInfo()
    for k, v in info.items():
        meta.add_text(k, v)
    Image.fromarray(pixels).save(path, pnginfo=meta)
    return path


def test_label_with_tsa(home, tsa, tmp_path):
    src = _picture(tmp_path / "render.png")
    out = tmp_path / "out"
    res = CliRunner().invoke(
        cli, ["label", str(src), "--out", str(out), "--tsa", tsa.url, "--json"]
    )
    assert res.exit_code == 0, res.output
    (written,) = json.loads(res.output)
    r = read_c2pa(written["path"])
    assert r.signed_time is not None and r.timestamp["authority"] == "fakestudio test TSA"
    assert tsa.requests == 2  # the check, then the file


def _closed_port_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/tsa"


@pytest.mark.parametrize("mode", ["unreachable", "error", "junk", "rejection", "not-a-url"])
def test_bad_tsa_is_one_line_exit_2_nothing_written(home, tmp_path, mode):
    src = _picture(tmp_path / "render.png")
    out = tmp_path / "out"
    ledger = home / "data" / "ledger.sqlite"
    with TimeStampAuthority(mode if mode in ("error", "junk", "rejection") else "ok") as tsa:
        url = {"unreachable": _closed_port_url(), "not-a-url": "ftp://example.org/tsa"}.get(
            mode, tsa.url
        )
        res = CliRunner().invoke(cli, ["label", str(src), "--out", str(out), "--tsa", url])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and f"--tsa {url}" in lines[0], res.output
    assert "Traceback" not in res.output
    assert not out.exists() or not any(out.iterdir())
    if ledger.exists():
        with Ledger(ledger, readonly=True) as led:
            assert led.db.execute("SELECT COUNT(*) FROM outputs").fetchone()[0] == 0


def test_sign_bytes_error_names_the_authority(home):
    with pytest.raises(SigningError, match=r"^--tsa http://127\.0\.0\.1:\d+/tsa: signing"):
        sign_bytes(
            _image_bytes("png"),
            "image/png",
            build_manifest(_record(), None),
            ensure_identity(),
            tsa_url=_closed_port_url(),
        )


def test_compare_poster_with_tsa(home, tsa, tmp_path):
    a = _picture(tmp_path / "a.png")
    buf = io.BytesIO()
    Image.new("RGB", (300, 300), (40, 90, 160)).save(buf, "JPEG")
    b = tmp_path / "b.jpg"
    b.write_bytes(buf.getvalue())
    poster = tmp_path / "poster.png"
    res = CliRunner().invoke(
        cli, ["compare", str(a), str(b), "--png", str(poster), "--tsa", tsa.url, "--json"]
    )
    assert res.exit_code == 0, res.output
    assert read_c2pa(poster).signed_time is not None
    alone = CliRunner().invoke(cli, ["compare", str(a), str(b), "--tsa", tsa.url])
    assert alone.exit_code == 2 and "give --png too" in alone.output


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")
def test_signing_without_tsa_touches_no_network(tmp_path):
    """`fakestudio label` without --tsa, native c2pa included, connects nowhere."""
    from tests.test_c2pa_online import ROOT, _inet_connects, _strace_works

    if not _strace_works(tmp_path):
        pytest.skip("strace cannot trace here (no ptrace permission)")
    src = _picture(tmp_path / "render.png")
    trace = tmp_path / "label.trace"
    env = dict(os.environ, FAKESTUDIO_HOME=str(tmp_path / "fshome"), PYTHONPATH=str(ROOT))
    code = "from fakestudio.cli import main; main()"
    args = ["label", str(src), "--out", str(tmp_path / "out")]
    cmd = ["strace", "-f", "-qq", "-e", "trace=connect", "-o", str(trace), sys.executable]
    run = subprocess.run([*cmd, "-c", code, *args], env=env, cwd=ROOT, capture_output=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert len(list((tmp_path / "out").iterdir())) == 1
    assert _inet_connects(trace) == []


def test_generate_with_tsa(tmp_path, tiny_folder, tsa):
    args = ["generate", "a photo of ben0a", "--out", str(tmp_path / "out"), "--steps", "2"]
    res = CliRunner().invoke(cli, [*args, "--json", "--tsa", tsa.url], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    (written,) = json.loads(res.stdout)
    r = read_c2pa(written["path"])
    assert r.signed_time is not None and r.timestamp["authority"] == "fakestudio test TSA"
    bad = CliRunner().invoke(cli, [*args, "--tsa", _closed_port_url()], catch_exceptions=False)
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1
    assert len(list((tmp_path / "out").iterdir())) == 1  # only the first run's file
