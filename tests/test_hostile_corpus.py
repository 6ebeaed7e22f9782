"""The hostile corpus (``tests/hostile_corpus.py``): `verify` gives every file its expected
exit code in one report, never a traceback; `audit` of the whole folder loses no file."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from fakestudio.cli import cli
from tests.hostile_corpus import build, special_files


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from tests.test_verify import write_labelled

    base = tmp_path_factory.mktemp("hostile")
    ledger = base / "ledger.sqlite"
    labelled = {
        fmt: write_labelled(base / "signed", ledger, seed=60 + i, fmt=fmt, size=(256, 256)).path
        for i, fmt in enumerate(("png", "jpeg", "webp"))
    }
    root = base / "corpus"
    cases = build(root, labelled, signed_media())
    return root, cases, special_files(base / "special"), base / "special"


MEDIA = ("mp4", "heic", "mov", "m4a", "wav", "avi", "mp3", "flac", "pdf", "dng", "gif", "svg")


def signed_media() -> dict[str, bytes]:
    """Signed files of every other container (local identity), for the corpus to corrupt;
    none when the [formats]/[video] extras that make them are missing."""
    try:
        from fakestudio.label.identity import ensure_identity
        from tests.media_builders import FORMATS, make, sign

        ident = ensure_identity()
        return {n: sign(make(n), FORMATS[n][1], ident) for n in MEDIA}
    except ImportError:
        return {}


def _verify(path, *extra):
    return CliRunner().invoke(
        cli, ["verify", str(path), "--no-ledger", *extra], catch_exceptions=False
    )


def test_every_file_gets_its_exit_code(corpus):
    root, cases, _, _ = corpus
    assert len(cases) >= 45
    wrong = []
    for case in cases:
        res = _verify(os.path.join(root, case.name), "--json")
        assert "Traceback" not in res.output, (case.name, res.output[-2000:])
        if res.exit_code != case.expect:
            wrong.append((case.name, case.why, case.expect, res.exit_code))
            continue
        rep = json.loads(res.stdout)
        assert rep["verdict"]["exit_code"] == case.expect
        if case.expect == 3 and case.name.startswith("c2pa-"):  # never "absent"
            assert rep["c2pa"]["state"] in ("damaged", "tampered", "invalid-signature"), rep["c2pa"]
    assert not wrong, wrong


def test_special_files(corpus):
    _, _, specials, folder = corpus
    for case in specials:
        res = _verify(folder / case.name)
        assert res.exit_code == case.expect, (case.name, res.output)
        if case.expect == 2:
            line = res.stderr.strip()
            assert "\n" not in line and "Traceback" not in line, line


def test_audit_of_the_corpus_loses_no_file(corpus, tmp_path):
    import csv

    root, cases, _, _ = corpus
    res = CliRunner().invoke(
        cli,
        ["audit", str(root), "--json", "--csv", str(tmp_path / "a.csv"), "--no-ledger"]
        + ["--workers", "2", "--html", str(tmp_path / "a.html")],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output[-3000:]
    doc = json.loads(res.stdout)
    imageish = [c for c in cases if os.path.splitext(c.name)[1].lower() != ""]
    assert doc["summary"]["total"] == len(imageish) and doc["summary"]["complete"]
    codes = {os.path.basename(r["file"]): r["verdict"]["exit_code"] for r in doc["files"]}
    assert {c.name: c.expect for c in imageish} == codes
    rows = list(csv.DictReader((tmp_path / "a.csv").open(encoding="utf-8")))
    assert len(rows) == len(imageish)
