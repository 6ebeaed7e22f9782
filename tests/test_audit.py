"""`audit`: a folder walked once (symlink loops end), verified in parallel, counted; bad files
are verdicts, a crashing worker is survived; --fail-on makes it a CI gate."""

from __future__ import annotations

import csv
import io
import json
import os

import pytest
from click.testing import CliRunner
from rich.console import Console

from detectors import audit as audit_mod
from detectors.audit import audit, fail_exit_code, find_images
from detectors.report.terminal import render_report, render_summary
from detectors.verify import verify_image
from fakestudio.cli import cli
from tests.test_verify import bad_files, edit_one_pixel_keep_manifest, photo_like, write_labelled


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A folder: labelled, stripped, unlabelled, tampered, bad files, a loop, a non-image."""
    root = tmp_path_factory.mktemp("audit")
    ledger = root.parent / f"{root.name}-ledger.sqlite"
    w = write_labelled(root / "labelled", ledger, seed=11)
    photo_like(300, 300, 5).save(root / "labelled" / "plain.jpg", quality=90)
    (root / "tampered").mkdir()
    edit_one_pixel_keep_manifest(w.path, root / "tampered" / "edited.png")
    bad_files(root / "bad")
    os.symlink("..", root / "bad" / "loop")  # a symbolic-link loop
    os.symlink(root / "labelled", root / "alias")  # the same folder twice
    os.symlink(root / "missing.png", root / "bad" / "dangling.png")
    (root / "notes.txt").write_text("not an image")
    return {"root": root, "ledger": ledger, "written": w}


def test_find_images_follows_each_folder_once(mixed):
    files, skipped, notes = find_images(mixed["root"])
    names = [f.name for f in files]
    assert names.count("out11.png") == 1  # "alias" points at a folder already walked
    assert "dangling.png" in names and skipped == 1
    assert any("loop" in n and "already visited" in n for n in notes)
    assert any(("alias" in n or "labelled" in n) and "already visited" in n for n in notes)


def test_audit_counts_every_case_and_never_crashes(mixed):
    seen = []
    started = []
    res = audit(
        mixed["root"],
        workers=2,
        ledger_path=mixed["ledger"],
        on_start=started.append,
        on_progress=lambda done, total, rep: seen.append((done, total)),
    )
    by_name = {os.path.basename(r["file"]): r["verdict"]["outcome"] for r in res.reports}
    assert by_name["out11.png"] == "labelled-ai"
    assert by_name["plain.jpg"] == "no-provenance"
    assert by_name["edited.png"] == "tampered"
    unreadable = (
        "zero.png",
        "truncated.png",
        "truncated.jpg",
        "text.png",
        "bomb.png",
        "bomb100mp.png",
    )
    for name in (*unreadable, "dangling.png"):
        assert by_name[name] == "unreadable", name
    assert by_name["huge_manifest.png"] == "tampered"
    assert by_name["animated.gif"] == "no-provenance" and by_name["wide.png"] == "no-provenance"
    cats = res.summary["categories"]
    assert res.summary["total"] == len(res.reports) == len(by_name)
    assert cats == {
        "labelled": 1,
        "unlabelled": 4,
        "tampered": 2,
        "mismatch": 0,
        "ai-metadata": 0,
        "unreadable": 7,
    }
    assert started == [res.summary["total"]]
    assert len(seen) == res.summary["total"] and seen[-1] == (res.summary["total"],) * 2
    assert res.exit_code({"unlabelled"}) == 1 and res.exit_code({"tampered", "unreadable"}) == 3
    assert res.exit_code(()) == 0
    d = res.to_dict()
    assert d["schema"] == "fakestudio.audit/1" and d["files"][0]["schema"] == "fakestudio.verify/1"
    assert all(f["c2pa"].get("active_manifest") is None for f in d["files"])  # compact per file
    json.dumps(d)
    rows = list(csv.DictReader(io.StringIO(res.csv_text())))
    assert len(rows) == res.summary["total"]
    assert {r["outcome"] for r in rows} >= {"labelled-ai", "tampered", "unreadable"}


def test_audit_of_the_shared_fixtures(fixtures_dir):
    res = audit(fixtures_dir, workers=1, use_ledger=False)
    assert res.summary["total"] == 21 and res.summary["skipped_not_images"] == 2
    assert res.summary["categories"] == {
        "labelled": 1,  # C.jpg: algorithmicMedia, valid (untrusted without the test anchors)
        "unlabelled": 10,
        "tampered": 2,
        "mismatch": 0,
        "ai-metadata": 8,
        "unreadable": 0,
    }


def test_a_crashing_worker_does_not_end_the_audit(tmp_path, monkeypatch):
    for i in range(4):
        photo_like(256, 256, i).save(tmp_path / f"ok{i}.png")
    photo_like(256, 256, 9).save(tmp_path / "crash.png")
    import detectors.verify

    real = detectors.verify.verify_image

    def flaky(path, **kw):
        if str(path).endswith("crash.png"):
            os._exit(7)  # as a segfault in a native library would
        return real(path, **kw)

    monkeypatch.setattr(detectors.verify, "verify_image", flaky)
    if audit_mod._mp_context().get_start_method() != "fork":
        pytest.skip("the patched function reaches the workers only when they are forked")
    res = audit(tmp_path, workers=2, use_ledger=False)
    by_name = {os.path.basename(r["file"]): r for r in res.reports}
    assert len(by_name) == 5
    assert by_name["crash.png"]["verdict"]["outcome"] == "unreadable"
    assert "crashed" in by_name["crash.png"]["image"]["reason"]
    assert all(by_name[f"ok{i}.png"]["verdict"]["outcome"] == "no-provenance" for i in range(4))
    assert any("worker process died" in n for n in res.notes)


def test_fail_on_codes():
    summary = {
        "categories": {
            "labelled": 1,
            "unlabelled": 2,
            "tampered": 1,
            "ai-metadata": 1,
            "unreadable": 1,
        }
    }
    assert fail_exit_code(summary, []) == 0
    assert fail_exit_code(summary, ["unlabelled"]) == 1
    assert fail_exit_code(summary, ["ai-metadata"]) == 1
    assert fail_exit_code(summary, ["unreadable", "unlabelled"]) == 4
    assert fail_exit_code(summary, ["unlabelled", "tampered"]) == 3
    with pytest.raises(ValueError):
        fail_exit_code(summary, ["bogus"])


def test_cli_audit(mixed, tmp_path):
    runner = CliRunner()
    root = str(mixed["root"] / "labelled")
    res = runner.invoke(cli, ["audit", root, "--workers", "1"])
    assert res.exit_code == 0, res.output  # no --fail-on: always 0
    assert "unlabelled" in res.output and "Do not trust your eyes" in res.output
    res = runner.invoke(cli, ["audit", root, "--fail-on", "unlabelled,tampered", "--workers", "1"])
    assert res.exit_code == 1  # plain.jpg carries no label
    out_csv = tmp_path / "audit.csv"
    res = runner.invoke(
        cli,
        [
            "audit",
            str(mixed["root"] / "tampered"),
            "--json",
            "--csv",
            str(out_csv),
            "--fail-on",
            "tampered",
        ],
    )
    assert res.exit_code == 3
    doc = json.loads(res.stdout)
    assert doc["schema"] == "fakestudio.audit/1" and doc["summary"]["categories"]["tampered"] == 1
    assert out_csv.read_text().startswith("file,outcome,category,exit_code")
    for args, needle in (
        (["audit", str(tmp_path / "nowhere")], "no such folder"),
        (["audit", root, "--fail-on", "sometimes"], "unknown sometimes"),
        (["audit", root, "--workers", "0"], "at least 1"),
    ):
        res = runner.invoke(cli, args)
        assert res.exit_code == 2 and needle in res.output, res.output
    assert "Exit codes" in runner.invoke(cli, ["audit", "--help"]).output


def test_terminal_rendering(mixed, fixtures_dir):
    rep = verify_image(mixed["written"].path, ledger_path=mixed["ledger"]).to_dict()
    rep["metadata"]["claims"].append(
        {
            "tool": "x",
            "kind": "generator",
            "where": "[bold red]w[/]",
            "ai": True,
            "summary": "[link=http://x]s[/link]",
            "fields": {},
        }
    )
    console = Console(record=True, width=110, color_system=None)
    render_report(rep, console)
    text = console.export_text()
    assert (
        text.index("Labelled AI-generated")
        < text.index("Watermarks")
        < text.index("Do not trust your eyes")
    )
    assert "[bold red]w[/]" in text and "[link=http://x]s[/link]" in text  # literal, not markup
    assert "base model tiny" in text
    console = Console(record=True, width=110, color_system=None)
    render_summary({"total": 3, "categories": {"labelled": 1, "unlabelled": 2}}, console)
    text = console.export_text()
    for cat in ("labelled", "unlabelled", "tampered", "ai-metadata", "unreadable", "total"):
        assert cat in text


def test_an_os_error_during_an_audit_says_what_failed(tmp_path):
    """Not "--csv None: cannot write" for a folder that went away or a cluster out of reach."""
    from fakestudio.commands.verify import audit_os_error

    gone = FileNotFoundError(2, "No such file or directory", str(tmp_path / "uploads" / "a"))
    line = audit_os_error(gone, tmp_path / "uploads", "local", None)
    assert line == f"{tmp_path / 'uploads' / 'a'}: No such file or directory"
    refused = ConnectionError("could not connect to the GCS")
    line = audit_os_error(refused, tmp_path, "ray", "ray://head:10001")
    assert (
        line
        == "--engine ray: cannot reach the Ray cluster at ray://head:10001 (could not connect to the GCS)"
    )
    assert "--csv" not in audit_os_error(OSError(5, "Input/output error"), tmp_path, "local", None)
