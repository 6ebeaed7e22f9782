"""Verify beyond PNG and JPEG: a 20 MP HEIC against the same picture as a JPEG, and a 1 min
1080p MP4's credentials and sampled frames. The inputs are made here (nothing is downloaded).

Targets (issue 27), measured in the same run:
* a 20 MP HEIC verified within 2x of the same picture as JPEG (``verify_image``, no ledger);
* a signed 1 min 1080p H.264 MP4: its credentials (sha256 of the file, the C2PA read and the
  container walk) in under 1 s, its sampled frames (decoded by PyAV and checked by the
  watermark detectors) in under 5 s.

    .venv/bin/python bench/formats.py [--repeat 3] [--seconds 60] [--megapixels 20]

Needs the [formats] and [video] extras (pillow-heif, PyAV). Making the inputs takes a minute
or two on 2 cores (x265 and x264 encodes); each timing is the best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def photo_like(w: int, h: int, seed: int = 0) -> np.ndarray:
    """Smooth shapes plus sensor-like noise, made in bands (20 MP at once is 480 MB in float)."""
    rng = np.random.default_rng(seed)
    out = np.empty((h, w, 3), np.uint8)
    xs = np.arange(w, dtype=np.float32) / w
    for top in range(0, h, 512):
        y = (np.arange(top, min(h, top + 512), dtype=np.float32) / h)[:, None]
        x = xs[None, :]
        band = np.stack(
            [
                128 + 90 * np.sin(6 * x + 2 * y),
                128 + 80 * np.cos(5 * y - 3 * x * y),
                128 + 70 * np.sin(9 * x * y + 1),
            ],
            axis=-1,
        )
        band += rng.normal(0, 4, band.shape).astype(np.float32)
        out[top : top + band.shape[0]] = np.clip(band, 0, 255).astype(np.uint8)
    return out


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def make_video(path: Path, seconds: int, crf: int = 18, fps: int = 30, size=(1920, 1080)):
    """A 1080p H.264 MP4 (x264 "veryfast", key frame every 250 frames: x264's default) of a
    slowly panning picture."""
    import av

    w, h = size
    canvas = photo_like(w + seconds * fps * 2, h, seed=5)
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": str(crf)}
        for i in range(seconds * fps):
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(canvas[:, 2 * i : 2 * i + w]), format="rgb24"
            )
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--megapixels", type=float, default=20.0)
    ap.add_argument("--crf", type=int, default=18, help="x264 quality of the MP4 (lower: larger)")
    ap.add_argument(
        "--size-mb",
        type=int,
        default=120,
        help="pad the MP4 to this size with a top-level 'free' box (hashed by C2PA like the "
        "media): a phone's 1 min 1080p at 16 Mb/s is ~120 MB, the synthetic pan compresses far "
        "better",
    )
    args = ap.parse_args()
    os.environ.setdefault("FAKESTUDIO_HOME", tempfile.mkdtemp(prefix="fs-bench-"))

    import pillow_heif
    from PIL import Image

    from detectors import containers
    from detectors.c2pa import read_c2pa
    from detectors.verify import _local_ca, verify_image
    from detectors.video import sample_frames
    from detectors.watermarks.shared import detect_watermarks
    from fakestudio.label.identity import ensure_identity
    from tests.media_builders import sign

    work = Path(tempfile.mkdtemp(prefix="fs-bench-formats-"))
    ident = ensure_identity()

    # --- 20 MP HEIC vs JPEG -------------------------------------------------------------------
    w = int(round((args.megapixels * 1e6 * 3 / 2) ** 0.5))
    h = int(round(w * 2 / 3))
    t = time.perf_counter()
    pixels = Image.fromarray(photo_like(w, h))
    pillow_heif.register_heif_opener()
    heic, jpeg = work / "photo.heic", work / "photo.jpg"
    # as phones write them: 512 px grid tiles, ~2.4 MB for 20 MP at quality 50
    pillow_heif.options.GRID_TILE_SIZE = 512
    pixels.save(heic, "HEIF", quality=50)
    pixels.save(jpeg, "JPEG", quality=90)
    del pixels
    print(
        f"made {w}x{h} ({w * h / 1e6:.1f} MP): HEIC {heic.stat().st_size / 1e6:.1f} MB, "
        f"JPEG {jpeg.stat().st_size / 1e6:.1f} MB in {time.perf_counter() - t:.1f} s"
    )
    verify_image(jpeg, use_ledger=False)  # warm-up: imports, contexts
    verify_image(heic, use_ledger=False)
    tj = best(lambda: verify_image(jpeg, use_ledger=False), args.repeat)
    th = best(lambda: verify_image(heic, use_ledger=False), args.repeat)

    def decode_heic():
        with Image.open(heic) as im:
            im.load()

    tdec = best(decode_heic, args.repeat)
    rep = verify_image(heic, use_ledger=False)
    print(
        f"verify JPEG {tj:.2f} s, HEIC {th:.2f} s: HEIC / JPEG = {th / tj:.2f}x (target <= 2x); "
        f"of which HEVC decoding {tdec:.2f} s (HEIC without it / JPEG = {(th - tdec) / tj:.2f}x); "
        f"checks: {rep.checks['pixels']}, watermarks {rep.checks['watermarks']}"
    )

    # --- 1 min 1080p MP4 ----------------------------------------------------------------------
    raw = work / "raw.mp4"
    t = time.perf_counter()
    make_video(raw, args.seconds, args.crf)
    clip = work / "clip.mp4"
    data = raw.read_bytes()
    pad = max(0, args.size_mb * 1_000_000 - len(data))
    if pad >= 8:
        data += struct.pack(">I", pad) + b"free" + bytes(pad - 8)
    clip.write_bytes(sign(data, "video/mp4", ident, title="clip.mp4"))
    del data
    print(
        f"made a {args.seconds} s 1080p MP4, signed: {clip.stat().st_size / 1e6:.1f} MB in "
        f"{time.perf_counter() - t:.1f} s"
    )
    ca = _local_ca()

    def credentials():
        import hashlib

        h = hashlib.sha256()  # as verify does for a file over 64 MB: streamed, not held
        with open(clip, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
        res = read_c2pa(clip, mime="video/mp4", local_anchor=ca)
        containers.scan_file(clip)
        assert res.state == "trusted", res.message

    def frames():
        sampled = sample_frames(clip, "MP4")
        for f in sampled.frames:
            detect_watermarks(f.rgb)
        return sampled

    credentials()
    tc = best(credentials, args.repeat)
    tf = best(frames, args.repeat)
    td = best(lambda: sample_frames(clip, "MP4"), args.repeat)
    sampled = frames()
    tv = best(lambda: verify_image(clip, use_ledger=False), args.repeat)
    rep = verify_image(clip, use_ledger=False)
    times = ", ".join(f"{f.time_s:g}" for f in sampled.frames)
    print(f"MP4 credentials (sha256 + C2PA + container walk) {tc:.2f} s (target < 1 s)")
    print(
        f"MP4 sampled frames {tf:.2f} s (target < 5 s): {len(sampled.frames)} frames at "
        f"{times} s, of which decoding {td:.2f} s"
    )
    print(f"MP4 whole verify {tv:.2f} s: {rep.verdict.outcome}, {rep.checks['watermarks']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
