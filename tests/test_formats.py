"""Every format Content Credentials live in (issue 27): pictures, video, audio and PDF, made
here (tests/media_builders.py), signed with c2pa-python by the local identity and by a test
chain, tampered with, and verified; the report says which checks ran.

The truth each verdict is held to is c2pa-python's own validation state of the same bytes with
the same trust anchors: "Trusted" reads `trusted`, "Valid" `valid-untrusted`, "Invalid"
`tampered`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from detectors import media
from detectors.audit import audit
from detectors.containers import JUMD_C2PA
from detectors.verify import verify_image
from fakestudio.cli import cli
from fakestudio.label.identity import ensure_identity
from tests.media_builders import FORMATS, c2pa_state, make, picture, sign, video

pytest.importorskip("av", reason="the [video] extra (PyAV) makes the test videos and audio")
pytest.importorskip("pillow_heif", reason="the [formats] extra makes HEIC")

PICTURES = ("jpeg", "png", "webp", "gif", "tiff", "heic", "avif", "dng", "svg")
VIDEOS = ("mp4", "mov", "avi")
AUDIO = ("wav", "mp3", "flac", "m4a")
ROOT = Path(__file__).resolve().parent.parent


def _flip(data: bytes, pos: int) -> bytes:
    b = bytearray(data)
    b[pos] ^= 0x55
    return bytes(b)


def tamper_media(name: str, signed: bytes) -> bytes:
    """One byte of the media changed, outside the manifest store."""
    if name == "svg":
        assert b"#fd3" in signed
        return signed.replace(b"#fd3", b"#fd4", 1)
    j = signed.find(JUMD_C2PA)
    lo = j - 12
    hi = lo + int.from_bytes(signed[lo : lo + 4], "big") * 105 // 100
    for pos in (len(signed) * 3 // 4, len(signed) // 2, len(signed) // 4, len(signed) - 20):
        if not lo - 64 <= pos <= hi + 64:
            return _flip(signed, pos)
    raise AssertionError(f"{name}: no media byte outside the store")


def tamper_manifest(name: str, signed: bytes) -> bytes:
    """One byte of the manifest changed: inside the actions assertion's data (SVG: a base64
    character of the embedded store)."""
    if name == "svg":
        k = signed.index(b"<c2pa:manifest") + 600
        b = bytearray(signed)
        b[k] = ord("A") if b[k] != ord("A") else ord("B")
        return bytes(b)
    return _flip(signed, signed.index(b"digitalSourceType", signed.find(JUMD_C2PA)) + 20)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Every format: unsigned, signed by the local identity, by a test chain (its own CA,
    not this machine's), and the local-identity file tampered in the media and the manifest."""
    root = tmp_path_factory.mktemp("formats")
    local = ensure_identity()
    chain = ensure_identity(tmp_path_factory.mktemp("test-chain"))
    files: dict[str, dict[str, Path]] = {}
    for name, (ext, mime) in FORMATS.items():
        raw = make(name, seed=len(files))
        signed = sign(raw, mime, local, title=f"local{ext}")
        variants = {
            "unsigned": raw,
            "local": signed,
            "chain": sign(raw, mime, chain, title=f"chain{ext}"),
            "tampered-media": tamper_media(name, signed),
            "tampered-manifest": tamper_manifest(name, signed),
        }
        files[name] = {}
        for variant, data in variants.items():
            path = root / variant / f"{name}{ext}"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(data)
            files[name][variant] = path
    return {
        "root": root,
        "files": files,
        "local_ca": local.ca_path.read_bytes(),
        "chain_ca": chain.ca_path.read_bytes(),
    }


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_unsigned_is_no_provenance_with_what_was_checked(made, name):
    """A well-formed file of every format: never "unreadable"; the checks say what ran."""
    rep = verify_image(made["files"][name]["unsigned"], use_ledger=False).to_dict()
    assert rep["verdict"]["outcome"] == "no-provenance", rep["verdict"]
    assert rep["verdict"]["exit_code"] == 1
    checks = rep["checks"]
    assert set(checks) == set(media.CHECKS) and checks["c2pa"] == "ran"
    assert rep["media"]["kind"] == media.identify(made["files"][name]["unsigned"].read_bytes()).kind
    if name in PICTURES:
        assert checks["pixels"].startswith("ran"), checks
        assert checks["watermarks"] == "ran" and checks["metadata"] == "ran"
        assert any(s["finding"] == "no-watermark" for s in rep["signals"])
    elif name in VIDEOS:
        assert checks["pixels"].startswith("ran: ") and "PyAV" in checks["pixels"]
        assert checks["watermarks"].startswith("ran: on "), checks
        times = rep["media"]["frames_sampled"]
        assert (
            len(times) >= 3 and times == sorted(times) and times[-1] <= rep["media"]["duration_s"]
        )
        assert all(f"{t:g}" in checks["watermarks"] for t in times)
    else:
        assert checks["pixels"].startswith("not applicable: "), checks
        assert checks["watermarks"] == checks["pixels"]
        assert any(s["finding"] == "watermark-not-applicable" for s in rep["signals"])
        assert "not applicable" in rep["verdict"]["headline"]
    assert checks["ledger"] == "not run: --no-ledger"
    assert checks["registry"].startswith("not run: not asked")


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_signed_reads_as_c2pa_python_reads_it(made, name):
    """Local identity: "Trusted" with its CA (what verify uses), "Valid" without; the test
    chain: "Valid" (untrusted), "Trusted" once its CA is a --trust-anchors."""
    ext, mime = FORMATS[name]
    local = made["files"][name]["local"]
    assert c2pa_state(local.read_bytes(), mime, [made["local_ca"]]) == "Trusted"
    rep = verify_image(local, use_ledger=False)
    assert (rep.c2pa["state"], rep.c2pa["trust_list"]) == ("trusted", "local-identity")
    assert rep.verdict.outcome == "labelled-ai" and rep.verdict.tier == "confirmed"
    assert rep.checks["c2pa"] == "ran"

    chain = made["files"][name]["chain"]
    assert c2pa_state(chain.read_bytes(), mime) == "Valid"
    rep = verify_image(chain, use_ledger=False)
    assert rep.c2pa["state"] == "valid-untrusted" and rep.verdict.outcome == "labelled-ai"
    anchored = verify_image(chain, use_ledger=False, trust_anchors=[made["chain_ca"]])
    assert c2pa_state(chain.read_bytes(), mime, [made["chain_ca"]]) == "Trusted"
    assert (anchored.c2pa["state"], anchored.c2pa["trust_list"]) == ("trusted", "user")


@pytest.mark.parametrize("variant", ["tampered-media", "tampered-manifest"])
@pytest.mark.parametrize("name", sorted(FORMATS))
def test_tampered_is_tampered(made, name, variant):
    ext, mime = FORMATS[name]
    path = made["files"][name][variant]
    assert c2pa_state(path.read_bytes(), mime, [made["local_ca"]]) == "Invalid"
    rep = verify_image(path, use_ledger=False)
    assert rep.c2pa["state"] == "tampered", rep.c2pa["message"]
    expected = "assertion.hashedURI.mismatch" if variant == "tampered-manifest" else "Hash.mismatch"
    assert any(expected in c for c in rep.c2pa["status_codes"]), rep.c2pa["status_codes"]
    assert rep.verdict.outcome == "tampered" and rep.verdict.exit_code == 3


def test_signed_svg_valid_is_not_tampered(made):
    """The issue's false accusation: a signed SVG that c2pa-python reads as Valid was called
    "damaged: NotSupported" (no MIME type was given to the reader)."""
    path = made["files"]["svg"]["chain"]
    rep = verify_image(path, use_ledger=False)
    assert rep.c2pa["state"] == "valid-untrusted" and rep.verdict.outcome == "labelled-ai"
    assert rep.checks["pixels"] == "ran: rendered by resvg"


def test_cli_json_and_exit_codes(made):
    f = made["files"]
    args = [f["wav"]["unsigned"], f["mp4"]["local"], f["pdf"]["tampered-media"]]
    res = CliRunner().invoke(
        cli, ["verify", *map(str, args), "--no-ledger", "--json"], catch_exceptions=False
    )
    assert res.exit_code == 3, res.output  # the most urgent of 1, 0 and 3
    docs = json.loads(res.stdout)
    assert [d["verdict"]["exit_code"] for d in docs] == [1, 0, 3]
    assert docs[0]["checks"]["watermarks"] == "not applicable: audio (WAV) has no pixels"
    assert docs[1]["media"]["kind"] == "video" and docs[1]["media"]["frames_sampled"]
    res = CliRunner().invoke(cli, ["verify", str(f["heic"]["local"]), "--no-ledger"])
    assert res.exit_code == 0 and "Traceback" not in res.output


def test_audit_counts_every_format(made, tmp_path):
    """A folder of every format, signed, unsigned and tampered: every file counted, none
    skipped, none unreadable; a file named without its extension is found by content."""
    root = made["root"]
    (root / "extra").mkdir(exist_ok=True)
    (root / "extra" / "clip-without-extension").write_bytes(
        made["files"]["mp4"]["local"].read_bytes()
    )
    (root / "extra" / "notes.txt").write_text("not media\n")
    res = audit(root, workers=2, use_ledger=False)
    n = len(FORMATS)
    assert res.summary["total"] == 5 * n + 1, res.summary
    assert res.summary["skipped_not_images"] == 1
    cats = res.summary["categories"]
    assert cats["unreadable"] == 0, [
        r["file"] for r in res.reports if r["verdict"]["exit_code"] == 4
    ]
    assert cats["labelled"] == 2 * n + 1 and cats["unlabelled"] == n and cats["tampered"] == 2 * n
    assert res.summary["kinds"] == {
        "audio": 5 * len(AUDIO),
        "document": 5,
        "image": 5 * len(PICTURES),
        "video": 5 * len(VIDEOS) + 1,
    }
    rows = res.csv_text().splitlines()
    assert len(rows) == 5 * n + 2 and rows[0].endswith(",kind")


def test_video_frames_carry_our_mark_and_sds(tmp_path):
    """Our first mark and the Stable Diffusion v1 mark, read on the sampled frames of an
    H.264 video, with the frame times in the report."""
    from detectors.watermarks import ours
    from tests.test_watermarks import sd_v1_mark

    payload = ours.payload_from_fingerprint(b"video-frames-test".ljust(32, b"."))
    marked = [ours.embed(picture(512, 512, seed=3 + i % 2), payload) for i in range(10)]
    path = tmp_path / "ours.mp4"
    path.write_bytes(video("mp4", (512, 512), frames=marked, crf=18))
    rep = verify_image(path, use_ledger=False)
    mark = next(w for w in rep.watermarks if w["scheme"] == "fakestudio")
    assert mark["found"] and mark["payload"] == payload
    assert mark["details"]["frames_found"] >= 3 and mark["details"]["frames_checked"] == 5
    assert mark["details"]["frame_time_s"] in rep.media["frames_sampled"]
    assert rep.verdict.outcome == "ai-watermark" and rep.verdict.tier == "claimed"

    sd = [sd_v1_mark(picture(512, 512, seed=5 + i % 2)) for i in range(10)]
    path = tmp_path / "sd.mov"
    path.write_bytes(video("mov", (512, 512), frames=sd, crf=12))
    rep = verify_image(path, use_ledger=False)
    assert next(w for w in rep.watermarks if w["scheme"] == "sd-v1")["found"]
    assert rep.verdict.outcome == "ai-watermark"


def test_multipage_tiff_first_page_said(tmp_path):
    path = tmp_path / "pages.tif"
    path.write_bytes(make("tiff", pages=3))
    rep = verify_image(path, use_ledger=False).to_dict()
    assert "multi-page TIFF (3 pages): the first page is analysed" in rep["notes"]
    assert rep["verdict"]["outcome"] == "no-provenance"


def test_metadata_of_heic_avif_dng(tmp_path):
    """Camera make and model, and the IPTC digital source type, through the same readers."""
    import io

    from PIL import Image

    from tests.media_builders import dng

    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
        b'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        b'Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/'
        b'trainedAlgorithmicMedia"/></rdf:RDF></x:xmpmeta>'
    )
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "EOS R5"
    made = {}
    for fmt, ext in (("HEIF", ".heic"), ("AVIF", ".avif")):
        buf = io.BytesIO()
        Image.fromarray(picture(320, 256)).save(buf, fmt, exif=exif.tobytes(), xmp=xmp)
        made[ext] = buf.getvalue()
    made[".dng"] = dng(make_="Leica", model="M11", xmp=xmp)
    for ext, data in made.items():
        path = tmp_path / f"m{ext}"
        path.write_bytes(data)
        rep = verify_image(path, use_ledger=False).to_dict()
        cam = rep["metadata"]["camera"]
        assert (cam["make"], cam["model"]) == (
            ("Leica", "M11") if ext == ".dng" else ("Canon", "EOS R5")
        ), ext
        assert rep["metadata"]["xmp"]["digital_source_type"].endswith("trainedAlgorithmicMedia")
        assert rep["verdict"]["outcome"] == "ai-metadata", (ext, rep["verdict"])


def test_svg_with_external_reference_is_not_rendered(tmp_path):
    """An SVG that points at a file on this machine is never rendered (resvg would read it):
    its credentials are still read, and the report says why the pixels were not."""
    path = tmp_path / "outside.svg"
    path.write_bytes(make("svg", external="/etc/hostname"))
    rep = verify_image(path, use_ledger=False).to_dict()
    assert rep["verdict"]["outcome"] == "no-provenance"
    assert rep["checks"]["pixels"].startswith("not run: SVG not rendered: <image> refers outside")
    assert rep["checks"]["c2pa"] == "ran"


def test_without_the_optional_decoders(made):
    """Without pillow-heif, rawpy, resvg and PyAV, `detectors` imports and verifies: the
    credentials are read, and the report names the extra to install."""
    files = {
        f"{n}-{v}": str(made["files"][n][v])
        for n in ("heic", "mp4", "dng", "svg")
        for v in ("local", "unsigned")
    }
    code = (
        "import json, sys\n"
        "for m in ('pillow_heif', 'av', 'rawpy', 'resvg_py'): sys.modules[m] = None\n"
        "from detectors.verify import verify_image\n"
        f"files = {files!r}\n"
        "print(json.dumps({n: verify_image(p, use_ledger=False).to_dict() for n, p in files.items()}))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    docs = json.loads(out.stdout)
    for name, rep in docs.items():
        signed = name.endswith("-local")
        assert rep["verdict"]["outcome"] == ("labelled-ai" if signed else "no-provenance"), (
            name,
            rep["verdict"],
        )
        assert rep["c2pa"]["state"] == ("trusted" if signed else "absent")
        assert rep["checks"]["c2pa"] == "ran"
    for v in ("local", "unsigned"):
        assert docs[f"heic-{v}"]["checks"]["pixels"] == (
            "not run: HEIC pixels need pillow-heif: pip install 'fakestudio[formats]' "
            "(or pillow-heif)"
        )
        assert docs[f"mp4-{v}"]["checks"]["watermarks"] == (
            "not run: video frames need PyAV: pip install 'fakestudio[video]' (or av)"
        )
        assert "rawpy" in docs[f"dng-{v}"]["checks"]["pixels"]
        assert "[formats]" in docs[f"svg-{v}"]["checks"]["pixels"]
    assert "headline" in docs["heic-unsigned"]["verdict"]
    assert "not run" in docs["heic-unsigned"]["verdict"]["headline"]


def test_label_accepts_heic_avif_dng_tiff(made, tmp_path):
    """`fakestudio label` on HEIC, AVIF, DNG and multi-page TIFF originals: PNG copies (JPEG
    when asked) that verify as labelled; a signed original becomes the copy's ingredient."""
    src = tmp_path / "in"
    src.mkdir()
    originals = {
        "signed.heic": made["files"]["heic"]["local"].read_bytes(),
        "plain.avif": make("avif", seed=7),
        "raw.dng": make("dng", seed=8),
        "pages.tif": make("tiff", pages=2, seed=9),
    }
    for name, data in originals.items():
        (src / name).write_bytes(data)
    res = CliRunner().invoke(
        cli,
        ["label", *[str(src / n) for n in originals], "--out", str(tmp_path / "out")]
        + ["--generator", "Example Diffusion", "--json"],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    copies = {Path(c["source"]).name: c for c in json.loads(res.stdout)}
    assert set(copies) == set(originals)
    for name, c in copies.items():
        path = Path(c["path"])
        assert path.suffix == ".png" and path.stem == Path(name).stem
        rep = verify_image(path).to_dict()
        assert rep["verdict"]["outcome"] == "labelled-ai", (name, rep["verdict"])
        assert rep["c2pa"]["soft_binding"]["value"] == c["watermark"]
        assert (rep["image"]["width"], rep["image"]["height"]) == (320, 256), name
        assert c["ingredient"] == (name == "signed.heic")
    heic = verify_image(copies["signed.heic"]["path"]).to_dict()
    assert heic["c2pa"]["ingredients"] == ["signed.heic"]
    assert heic["c2pa"]["actions"][0] == "c2pa.opened"
    res = CliRunner().invoke(
        cli,
        ["label", str(src / "raw.dng"), "--out", str(tmp_path / "jpeg"), "--format", "jpeg"]
        + ["--generator", "Example Diffusion"],
        catch_exceptions=False,
    )
    assert res.exit_code == 0 and (tmp_path / "jpeg" / "raw.jpg").is_file()


def test_a_pdf_read_here_leaves_forked_workers_working(made, tmp_path):
    """c2pa-rs parses PDFs with a thread pool that a forked process inherits without its
    threads: a PDF read in the parent made a forked audit worker's next PDF read hang. PDFs
    are read in a child process, so the parent stays safe to fork."""
    from detectors import audit as audit_mod
    from detectors.c2pa import fork_safe

    pdf = made["files"]["pdf"]["local"]
    assert verify_image(pdf, use_ledger=False).verdict.outcome == "labelled-ai"
    assert fork_safe() and audit_mod._mp_context().get_start_method() == "fork"
    for i in range(3):
        (tmp_path / f"doc{i}.pdf").write_bytes(pdf.read_bytes())
    res = audit(tmp_path, workers=2, use_ledger=False, time_limit=20)
    assert res.summary["outcomes"] == {"labelled-ai": 3}, res.notes
