"""`fakestudio keys init|show`: the local signing identity."""

from __future__ import annotations

import json
import stat

from click.testing import CliRunner

from fakestudio.cli import cli


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_keys_init_and_show(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKESTUDIO_HOME", str(tmp_path))
    res = invoke("keys", "init")
    assert res.exit_code == 0, res.output
    keys = tmp_path / "config" / "keys"
    key_files = [
        p
        for p in keys.iterdir()
        if p.name.endswith(".key") or "key" in p.name and p.suffix == ".pem"
    ]
    assert key_files, list(keys.iterdir())
    for k in key_files:
        assert stat.S_IMODE(k.stat().st_mode) == 0o600
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    shown = json.loads(invoke("keys", "show", "--json").stdout)
    again = json.loads(invoke("keys", "show", "--json").stdout)
    assert shown == again  # created once, then reused
    assert "fakestudio" in json.dumps(shown)
    assert str(tmp_path) not in json.dumps(shown).replace(str(tmp_path / "config"), "")


def test_keys_init_with_own_chain(tmp_path, monkeypatch):
    # a chain made by another fakestudio home stands in for a user's own certificate
    monkeypatch.setenv("FAKESTUDIO_HOME", str(tmp_path / "other"))
    from fakestudio.label.identity import ensure_identity

    other = ensure_identity()
    monkeypatch.setenv("FAKESTUDIO_HOME", str(tmp_path / "mine"))
    res = invoke("keys", "init", "--cert", other.cert_path, "--key", other.key_path)
    assert res.exit_code == 0, res.output
    shown = json.loads(invoke("keys", "show", "--json").stdout)
    assert (
        shown["fingerprint_sha256"]
        == json.loads(
            json.dumps(
                __import__("fakestudio.label.identity", fromlist=["identity_info"]).identity_info(
                    other
                ),
                default=str,
            )
        )["fingerprint_sha256"]
    )


def test_keys_init_bad_files(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKESTUDIO_HOME", str(tmp_path))
    bogus = tmp_path / "cert.pem"
    bogus.write_text("not a certificate")
    res = invoke("keys", "init", "--cert", bogus, "--key", bogus)
    assert res.exit_code == 2 and "cert.pem" in res.stderr and "Traceback" not in res.stderr


def test_one_place_knows_the_local_ca():
    """The labeller writes the CA where verify looks for it (detectors.paths says where)."""
    from detectors import paths
    from detectors.verify import local_ca_path
    from fakestudio.label.identity import ensure_identity

    ensure_identity()
    assert paths.local_ca_path().is_file()
    assert local_ca_path() == paths.local_ca_path()
