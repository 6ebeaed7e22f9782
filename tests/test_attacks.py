"""A label turned against a picture on purpose: copied, forged, removed. What verify says.

An adversary reads our code: the durable mark's decoder and encoder are public, so a label can
be copied onto a camera photo or subtracted from an output with ten lines of our own
functions. These tests make those attacks with exactly those functions and check that verify
never calls the photo AI-generated with a confirmation it does not have (``label-mismatch``
with a record, ``claimed`` without one), that true copies of an output still recover, and that a
removed mark is still found by content.
"""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from detectors import content
from detectors.evidence import FINDINGS, Findings, finding
from detectors.verdict import RULES, TIERS, decide_from
from detectors.watermarks import durable, ours
from fakestudio.cli import cli
from tests.registry_support import running_registry

GENERATED = "generated/sdxl_sdxl_simple_example.png"  # 1024 px, ComfyUI metadata
PHOTO = "real/DSCN0010.jpg"  # a camera photo, 640 x 480


def embed_both(rgb: np.ndarray, payload: str) -> np.ndarray:
    """What an adversary does with our public functions: write an identifier, both marks."""
    marked, _ = ours.embed_for_upload(rgb, payload)
    return durable.embed(marked, payload)


def run(*args) -> tuple[int, dict | str]:
    res = CliRunner().invoke(cli, [str(a) for a in args])
    if "--json" in args and res.stdout.strip().startswith(("{", "[")):
        return res.exit_code, json.loads(res.stdout)
    return res.exit_code, res.output


@pytest.fixture(scope="module")
def scene(fixtures_dir, tmp_path_factory):
    """One output labelled by `fakestudio label` (into the session's ledger), and the attacks."""
    from detectors.ledger import default_path

    d = tmp_path_factory.mktemp("attacks")
    ledger = default_path()  # the session's private FAKESTUDIO_HOME (conftest)
    src = d / "src"
    src.mkdir()
    shutil.copy(fixtures_dir / GENERATED, src / "portrait.png")
    code, out = run("label", src / "portrait.png", "--out", d / "out", "--json")
    assert code == 0, out
    labelled = d / "out" / "portrait.png"
    lab = np.asarray(Image.open(labelled).convert("RGB"))
    payload = durable.decode(lab).payload or ours.decode(lab).payload
    assert payload

    photo = np.asarray(Image.open(fixtures_dir / PHOTO).convert("RGB"))
    copied = d / "copied.jpg"  # the camera photo, with the output's identifier written into it
    Image.fromarray(embed_both(photo, payload)).save(copied, quality=90)

    # a true copy, edited the way platforms and people do: cropped, turned, shrunk, re-encoded
    im = Image.fromarray(lab)
    w, h = im.size
    edited = im.crop((80, 60, w - 60, h - 100)).rotate(3, resample=Image.BICUBIC)
    edited = edited.crop((30, 30, edited.width - 30, edited.height - 30))
    true_copy = d / "true_copy.jpg"
    edited.resize((edited.width * 6 // 10, edited.height * 6 // 10), Image.LANCZOS).save(
        true_copy, quality=80
    )

    # informed removal: re-embed the identifier and subtract the difference, then 3 px off
    again = embed_both(lab, payload).astype(np.float64)
    removed = np.clip(np.rint(2.0 * lab - again), 0, 255).astype(np.uint8)[3:, 3:]
    stripped = d / "removed.png"
    Image.fromarray(removed).save(stripped)
    return {
        "dir": d,
        "ledger": ledger,
        "labelled": labelled,
        "payload": payload,
        "copied": copied,
        "true_copy": true_copy,
        "removed": stripped,
    }


def test_the_attacks_do_what_an_adversary_wants(scene):
    """The premise: the copy carries the identifier, the removal leaves no mark to read."""
    copied = np.asarray(Image.open(scene["copied"]).convert("RGB"))
    assert ours.decode(copied).payload == scene["payload"]
    removed = np.asarray(Image.open(scene["removed"]).convert("RGB"))
    assert not durable.decode(removed).found and not ours.decode(removed).found


def test_a_copied_label_is_a_mismatch_with_the_ledger(scene):
    code, rep = run("verify", scene["copied"], "--ledger", scene["ledger"], "--json")
    assert code == 3
    v = rep["verdict"]
    assert (
        v["outcome"] == "label-mismatch" and v["tier"] == "mismatch" and v["category"] == "mismatch"
    )
    assert "copied from another picture" in v["headline"] and "says nothing" in v["message"]
    # the JSON names the record it pointed to and the measured distance
    assert rep["ledger"]["record_found"] and not rep["ledger"]["matched"]
    assert rep["ledger"]["entry"]["file_name"] == "portrait.png"
    assert rep["ledger"]["entry"]["payload"] == scene["payload"]
    check = rep["ledger"]["content"]
    assert check["outcome"] == "mismatch" and check["inliers"] <= content.MISMATCH_INLIERS
    assert check["query_points"] >= content.MIN_QUERY_POINTS and check["points"] > 100
    mism = [s for s in rep["signals"] if s["finding"] == "content-mismatch"]
    assert mism and mism[0]["details"]["record"] == "ledger" and mism[0]["weight"] == "measured"
    # and the terminal says it in words
    code, text = run("verify", scene["copied"], "--ledger", scene["ledger"])
    assert code == 3 and "tier: mismatch" in text and "NOT that output" in text


def test_without_a_record_a_copied_label_is_only_a_claim(scene):
    code, rep = run("verify", scene["copied"], "--no-ledger", "--json")
    v = rep["verdict"]
    assert code == 0 and v["outcome"] == "ai-watermark" and v["tier"] == "claimed"
    assert "unconfirmed" in v["headline"]
    assert "copy it onto another picture" in v["message"]
    assert all(s["weight"] == "claim" for s in rep["signals"] if s["finding"] == "watermark-found")


def test_a_true_edited_copy_still_recovers(scene):
    code, rep = run("verify", scene["true_copy"], "--ledger", scene["ledger"], "--json")
    v = rep["verdict"]
    assert code == 0 and v["outcome"] == "recovered" and v["tier"] == "recorded", v
    assert rep["ledger"]["matched"] and rep["ledger"]["content"]["outcome"] == "match"
    t = rep["ledger"]["content"]["transform"]
    assert 0.4 < t["scale"] < 0.8 and 1 < abs(t["angle_deg"]) < 5


def test_a_removed_mark_is_found_by_content_in_the_ledger(scene):
    code, rep = run("verify", scene["removed"], "--ledger", scene["ledger"], "--json")
    assert code == 0 and rep["verdict"]["outcome"] == "recovered"
    # by content, or by the perceptual hash and what is left of the first mark's known payload
    # (a blind read finds nothing: below); either way the content check confirms it
    assert rep["ledger"]["how"] in ("content", "phash+watermark")
    assert rep["ledger"]["entry"]["file_name"] == "portrait.png"
    assert rep["ledger"]["content"]["outcome"] == "match"
    code, rep = run("verify", scene["removed"], "--no-ledger", "--json")
    assert code == 1 and rep["verdict"]["outcome"] == "no-provenance"  # blind: nothing to read


def test_registry_confirms_true_copies_catches_copies_and_finds_removed_marks(scene, tmp_path):
    from detectors.registry_client import RegistryClient
    from fakestudio.registry import tokens
    from fakestudio.registry.storage import open_storage

    st = open_storage(f"sqlite:///{tmp_path / 'r.sqlite'}")
    st.migrate()
    _, secret = tokens.create(st)
    with running_registry(st) as url:
        with RegistryClient(url, secret) as client:
            client.publish(scene["labelled"].read_bytes())
        code, rep = run("verify", scene["copied"], "--no-ledger", "--registry", url, "--json")
        assert code == 3 and rep["verdict"]["outcome"] == "label-mismatch"
        assert rep["registry"]["record_found"] and not rep["registry"]["matched"]
        assert rep["registry"]["content"]["outcome"] == "mismatch"
        assert "registry" in rep["verdict"]["headline"]

        code, rep = run("verify", scene["true_copy"], "--no-ledger", "--registry", url, "--json")
        v = rep["verdict"]
        assert code == 0 and v["outcome"] == "recovered" and v["tier"] == "confirmed"
        assert rep["registry"]["how"] == "watermark-payload"

        # the marks are gone: the registry finds the output by its content alone
        code, rep = run("verify", scene["removed"], "--no-ledger", "--registry", url, "--json")
        v = rep["verdict"]
        assert code == 0 and v["outcome"] == "recovered" and v["tier"] == "confirmed", v
        assert rep["registry"]["how"] == "content"
        assert rep["registry"]["content"]["outcome"] == "match"
    st.close()


def test_a_registry_refuses_a_descriptor_of_another_picture(scene, tmp_path, fixtures_dir):
    """A manifest whose signed content descriptor describes some other picture than its asset
    would let the publisher's manifest answer for that picture: refused."""
    from detectors.registry_client import RegistryClient, RegistryError
    from fakestudio.label.identity import ensure_identity
    from fakestudio.label.manifest import build_derived_manifest, sign_bytes
    from fakestudio.registry import tokens
    from fakestudio.registry.storage import open_storage

    photo = np.asarray(Image.open(fixtures_dir / PHOTO).convert("RGB"))
    lab = np.asarray(Image.open(scene["labelled"]).convert("RGB"))
    marks = [{"alg": ours.ALG, "payload": "0badc0ffee"}]
    manifest = build_derived_manifest(marks, title="x.png")
    manifest["assertions"].append(content.assertion(content.describe(photo)))
    import io

    buf = io.BytesIO()
    Image.fromarray(ours.embed(lab, "0badc0ffee")).save(buf, "PNG")  # noqa: F821
    signed = sign_bytes(buf.getvalue(), "image/png", manifest, ensure_identity())
    st = open_storage(f"sqlite:///{tmp_path / 'r.sqlite'}")
    st.migrate()
    _, secret = tokens.create(st)
    with running_registry(st) as url, RegistryClient(url, secret) as client:
        with pytest.raises(RegistryError, match="content descriptor does not describe"):
            client.publish(signed)
    st.close()


def test_a_label_made_before_content_binding_is_unconfirmed(scene, tmp_path):
    """A ledger row whose manifest has no content descriptor: a cropped copy cannot be compared
    with it, so the watermark stays a claim (the row is named, nothing is 'recovered')."""
    from detectors.ledger import Ledger

    with Ledger(scene["ledger"]) as led:
        entry = led.by_payload(scene["payload"])[-1]
    entry.manifest["assertions"] = [
        a for a in entry.manifest["assertions"] if a.get("label") != content.LABEL
    ]
    entry.id = None
    old = tmp_path / "old-ledger.sqlite"
    with Ledger(old) as led:
        led.add(entry)
    code, rep = run("verify", scene["true_copy"], "--ledger", old, "--json")
    v = rep["verdict"]
    assert code == 0 and v["outcome"] == "ai-watermark" and v["tier"] == "claimed"
    assert rep["ledger"]["record_found"] and rep["ledger"]["content"] is None
    assert any(s["finding"] == "content-unchecked" for s in rep["signals"])


def test_html_report_shows_the_tier_and_the_content_check(scene, tmp_path):
    page = tmp_path / "r.html"
    code, _ = run("verify", scene["copied"], "--ledger", scene["ledger"], "--html", page)
    html = page.read_text()
    assert code == 3 and "label-mismatch" in html and re.search(r"tier <code[^>]*>mismatch", html)
    assert "Content check" in html and "mismatch" in html


# --- the content descriptor on its own ----------------------------------------------------------


def test_descriptor_round_trip_and_bad_descriptors(fixtures_dir):
    photo = np.asarray(Image.open(fixtures_dir / PHOTO).convert("RGB"))
    desc = content.describe(photo)
    data = desc.to_json()
    assert len(json.dumps(data)) < 12_000 and len(desc.points) == content.POINTS
    back = content.ContentDescriptor.from_json(json.loads(json.dumps(data)))
    assert np.array_equal(back.descriptors, desc.descriptors)
    assert np.allclose(back.points, desc.points, atol=0.07)
    assert content.check(photo, back).outcome == "match"
    for bad in (
        {},
        {**data, "alg": "other"},
        {**data, "orb": "!!!"},
        {**data, "orb": data["orb"][:40]},
        {**data, "width": -1},
        {**data, "points": 5},
    ):
        with pytest.raises(content.DescriptorError):
            content.ContentDescriptor.from_json(bad)


def test_a_featureless_output_is_compared_by_its_thumbnail():
    y, x = np.mgrid[0:384, 0:512]
    gradient = np.stack([x / 2, y / 1.5, 255 - x / 2], axis=2).astype(np.uint8)
    desc = content.describe(gradient)
    assert desc.featureless
    assert content.check(gradient[20:-20, 30:-10], desc).outcome == "match"
    noise = np.random.default_rng(0).integers(0, 256, (384, 512, 3), dtype=np.uint8)
    assert content.check(noise, desc).outcome == "mismatch"


def test_a_picture_with_too_little_detail_is_never_called_a_mismatch_by_keypoints(fixtures_dir):
    """A tiny, blurred copy has few keypoints of its own: a mismatch then needs its thumbnail
    to disagree too."""
    photo = Image.open(fixtures_dir / PHOTO).convert("RGB")
    desc = content.describe(np.asarray(photo))
    from PIL import ImageFilter

    tiny = photo.resize((160, 120), Image.LANCZOS).filter(ImageFilter.GaussianBlur(6))
    res = content.check(np.asarray(tiny), desc)
    assert res.query_points < content.MIN_QUERY_POINTS and res.outcome != "mismatch", res
    assert res.thumb_correlation > 0.8


# --- the rule table ------------------------------------------------------------------------------


def test_every_rule_is_reachable_and_its_tier_is_known():
    assert {r.tier for r in RULES} <= set(TIERS)
    cases = {
        "credentials-broken": ["manifest-tampered", "manifest-ai"],
        "signed-ai-manifest": ["manifest-ai", "watermark-found", "content-mismatch"],
        "unreadable": ["file-unreadable"],
        "label-copied": ["watermark-found", "ledger-pointer", "content-mismatch"],
        "registry-signed-ai": ["watermark-found", "registry-match", "content-match"],
        "registry-signed-not-ai": ["registry-match", "content-match"],
        "ledger-recorded": ["watermark-found", "ledger-match", "content-match"],
        "watermark-claim": ["watermark-found", "ledger-pointer", "content-inconclusive"],
        "signed-not-ai": ["manifest-not-ai"],
        "metadata-claim": ["metadata-ai-claim", "camera-claim"],
        "nothing": ["no-manifest", "no-watermark"],
    }
    assert set(cases) == {r.name for r in RULES}
    for name, findings in cases.items():
        sigs = [
            finding(f, f, {"declares_ai": name == "registry-signed-ai", "scheme": "fakestudio"})
            for f in findings
        ]
        v = decide_from(sigs)
        assert v.rule == name, (name, v.rule)
        assert v.tier == next(r.tier for r in RULES if r.name == name)
        assert "Do not trust your eyes" in v.message
    assert set(FINDINGS) >= {f for fs in cases.values() for f in fs}
    assert Findings([]).first("x") is None


def test_a_picture_shown_in_a_labelled_poster_is_not_that_poster(scene, fixtures_dir, tmp_path):
    """`compare --png` labels a poster of a real photo beside a fake: a poster holds other
    pictures, and its layout is the same for every poster. Another poster of the same photo
    beside another real photo, or that photo alone, must not be recovered as the AI-labelled
    poster by the look-up by content."""
    real = fixtures_dir / "real"
    ai_poster = tmp_path / "ai-poster.png"
    code, out = run("compare", real / "canon-ixus.jpg", scene["labelled"], "--png", ai_poster)
    assert code == 0 and ai_poster.exists(), out
    poster = tmp_path / "poster.png"
    code, out = run("compare", real / "canon-ixus.jpg", real / "nikon-e950.jpg", "--png", poster)
    assert code == 0, out
    code, rep = run("verify", poster, "--json")
    assert rep["verdict"]["outcome"] == "credentials-not-ai", rep["verdict"]
    stripped = tmp_path / "stripped.png"  # its pixels only (a poster of real photos is signed,
    Image.open(poster).convert("RGB").save(stripped)  # not watermarked)
    code, rep = run("verify", stripped, "--json")
    assert rep["verdict"]["outcome"] == "no-provenance", rep["verdict"]
    code, rep = run("verify", real / "canon-ixus.jpg", "--json")
    assert rep["verdict"]["outcome"] == "no-provenance" and not rep["ledger"]["record_found"]


def test_tiers_and_trust_on_the_c2pa_fixtures(fixtures_dir):
    """A valid signature confirms what it signed whoever the signer is; who vouches for the
    signer is said beside it (trust is not integrity)."""
    c2pa_dir = fixtures_dir / "c2pa"
    code, rep = run("verify", c2pa_dir / "C.jpg", "--no-ledger", "--json")
    assert rep["verdict"]["outcome"] == "labelled-ai" and rep["verdict"]["tier"] == "confirmed"
    assert rep["c2pa"]["state"] == "valid-untrusted" and not rep["c2pa"]["trust_list"]
    roots = c2pa_dir / "test_cert_root_bundle.pem"
    code, rep = run("verify", c2pa_dir / "C.jpg", "--no-ledger", "--trust-anchors", roots, "--json")
    assert rep["c2pa"]["state"] == "trusted" and rep["c2pa"]["trust_list"] == "user"
    assert rep["verdict"]["tier"] == "confirmed"
    assert any("who vouches" in r for r in rep["verdict"]["reasons"])
    for name, tier in (("XCA.jpg", "broken"), ("no_manifest.jpg", "none")):
        code, rep = run("verify", c2pa_dir / name, "--no-ledger", "--json")
        assert rep["verdict"]["tier"] == tier, (name, rep["verdict"])
