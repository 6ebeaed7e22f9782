"""Which watermark survives what: the durable mark against our first mark and imwatermark's.

    python bench/watermark_robustness.py                 # the table (a few minutes on 2 cores)
    python bench/watermark_robustness.py --quick         # 6 images, fewer edits
    python bench/watermark_robustness.py --fp 10000      # false-positive sweep on synthetic images
    python bench/watermark_robustness.py --fp-match 1000 # the same for the known-payload match
    python bench/watermark_robustness.py --out DIR       # also write flat-area crops (1x, 10x)

Pictures: every photo and generator output in ../shared/bench-images and ../shared/fixtures
of at least 400 px a side, centre-cropped to a square and resized to 512 px (metadata gone);
graphics (a white page of text, a flat gradient: see ``graphic``) are counted apart from the
photo-like pictures the bar is set for. Each gets its own random 40-bit identifier. For each edit in
``bench.edits.EDITS``: the durable mark's presence and exact identifier (blind, no ledger),
the durable mark's known-payload match (``durable.match_copy``, what verify's ledger and the
registry ask of a candidate record; the copy as it is and resized back to 512 px, over all
pictures), the first mark's exact identifier (blind; labels written before issue 24 carry
it, new ones do not), and imwatermark's dwtDct / dwtDctSvd mean bit
accuracy (and rivaGan with ``--rivagan``, which needs onnxruntime and ~5 s per picture and
edit on 2 cores). PSNR and per-image times in the same run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.edits import EDITS  # noqa: E402
from detectors.watermarks import durable, ours, psnr  # noqa: E402

SHARED = ROOT.parent / "shared"
QUICK_EDITS = ["none", "jpeg50", "resize0.75+jpeg85", "crop80", "rotate+2", "hflip", "screenshot"]


def pictures(limit: int | None) -> list[tuple[str, np.ndarray]]:
    """The benchmark's pictures; near-duplicates (the c2pa-rs fixtures are one photo signed
    several ways) are kept once, by perceptual hash."""
    import imagehash

    out, seen = [], []
    for folder in (
        "bench-images/photos",
        "bench-images/generated",
        "fixtures/real",
        "fixtures/generated",
        "fixtures/c2pa",
    ):
        for p in sorted((SHARED / folder).glob("*")):
            if p.suffix.lower() not in {".jpg", ".jpeg", ".png", ".webp"}:
                continue
            try:
                with Image.open(p) as im:
                    im = im.convert("RGB")
                    w, h = im.size
                    if min(w, h) < 400:  # small camera photos are upscaled a little
                        continue
                    s = min(w, h)
                    box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
                    pic = im.crop(box).resize((512, 512), Image.LANCZOS)
                    ph = imagehash.phash(pic)
                    if any(ph - other <= 8 for other in seen):
                        continue
                    seen.append(ph)
                    out.append((p.name, np.asarray(pic)))
            except (OSError, ValueError):
                continue  # a deliberately corrupt fixture
    return out[:limit] if limit else out


def graphic(a: np.ndarray) -> bool:
    """A graphic, not a photo: at least 80% of its pixels saturated (a channel at <= 5 or
    >= 250) or still (local spread under one grey level), such as a white page of text or a
    flat gradient. A mark has almost nowhere to live there; the table counts them apart."""
    import cv2

    y = a.astype(np.float32).mean(axis=2)
    mean = cv2.blur(y, (5, 5))
    spread = np.sqrt(np.maximum(cv2.blur(y * y, (5, 5)) - mean * mean, 0.0))
    saturated = (a.max(axis=2) >= 250) | (a.min(axis=2) <= 5)
    return float(np.mean(saturated | (spread < 1.0))) >= 0.8


def imwatermark_codecs(rivagan: bool):
    try:
        from imwatermark import WatermarkDecoder, WatermarkEncoder
    except ImportError:
        return {}
    methods = ["dwtDct", "dwtDctSvd"]
    if rivagan:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            sys.exit("--rivagan needs onnxruntime (pip install onnxruntime)")
        methods.append("rivaGan")
    codecs = {}
    for method in methods:
        nbits = 32 if method == "rivaGan" else 64

        def embed(rgb, bits, method=method):
            enc = WatermarkEncoder()
            enc.set_watermark("bits", bits.tolist())
            if method == "rivaGan":
                WatermarkEncoder.loadModel()
            return enc.encode(rgb[..., ::-1].copy(), method)[..., ::-1].copy()

        def decode(rgb, nbits=nbits, method=method):
            if method == "rivaGan":
                WatermarkDecoder.loadModel()
            dec = WatermarkDecoder("bits", nbits)
            return np.array(dec.decode(rgb[..., ::-1].copy(), method), dtype=np.uint8)

        codecs[method] = (nbits, embed, decode)
    return codecs


def table(args) -> None:
    pics = pictures(6 if args.quick else None)
    edits = QUICK_EDITS if args.quick else list(EDITS)
    rng = np.random.default_rng(0)
    rows = []
    marked, first, psnrs, t_embed, t_decode = [], [], [], [], []
    for _, a in pics:
        payload = rng.bytes(5).hex()
        t = time.perf_counter()
        m = durable.embed(a, payload)
        t_embed.append(time.perf_counter() - t)
        psnrs.append(psnr(a, m))
        marked.append((m, payload))
        first.append((ours.embed(a, payload), payload))
    others = imwatermark_codecs(args.rivagan)
    other_marked = {}
    for name, (nbits, embed, _) in others.items():
        other_marked[name] = []
        for _, a in pics:
            bits = rng.integers(0, 2, nbits).astype(np.uint8)
            other_marked[name].append((embed(a, bits), bits))
    print(
        f"{len(pics)} pictures at 512 px; durable mark PSNR mean {np.mean(psnrs):.2f} dB, "
        f"worst {np.min(psnrs):.2f} dB; embed {1000 * np.median(t_embed):.1f} ms median"
    )
    kinds = [graphic(a) for _, a in pics]
    n_photo, n_graphic = kinds.count(False), kinds.count(True)
    print(
        f"{n_photo} photo-like, {n_graphic} graphics "
        f"({', '.join(name for (name, _), g in zip(pics, kinds, strict=True) if g) or 'none'}); "
        "the bar (presence >= 98%, identifier >= 95%) is for photo-like content"
    )
    head = [
        "edit",
        "durable present",
        "durable id",
        "bar",
        "graphics id",
        "durable known payload",
        "first mark id",
    ] + [f"{n} bit acc." for n in others]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    n = len(pics)
    for edit in edits:
        e = EDITS[edit]
        present = ident = drawn = old = known = 0
        for (m, payload), (f, fp), g in zip(marked, first, kinds, strict=True):
            x = e(m)
            t = time.perf_counter()
            r = durable.decode(x)
            t_decode.append(time.perf_counter() - t)
            if g:
                drawn += r.payload == payload
            else:
                present += r.found
                ident += r.payload == payload
            size = (m.shape[1], m.shape[0])
            known += durable.match_copy(x, payload, size, ours.LEDGER_TRIES).found
            old += ours.decode(e(f)).payload == fp
        met = present >= 0.98 * n_photo and ident >= 0.95 * n_photo
        cells = [
            edit,
            f"{present}/{n_photo}",
            f"{ident}/{n_photo}",
            "met" if met else "**no**",
            f"{drawn}/{n_graphic}",
            f"{known}/{n}",
            f"{old}/{n}",
        ]
        for name, (_, _, decode) in others.items():
            accs = []
            for m, bits in other_marked[name]:
                try:
                    accs.append(float(np.mean(decode(e(m)) == bits)))
                except Exception:  # imwatermark refuses small or odd pictures
                    accs.append(0.5)
            cells.append(f"{np.mean(accs):.2f}")
        rows.append(cells)
        print("| " + " | ".join(cells) + " |", flush=True)
    print(
        f"durable decode: median {1000 * np.median(t_decode):.1f} ms, "
        f"p95 {1000 * np.percentile(t_decode, 95):.1f} ms per picture (after the edit)"
    )
    big = np.asarray(Image.fromarray(pics[0][1]).resize((4000, 3000), Image.BICUBIC))
    t = time.perf_counter()
    durable.decode(big)
    t_plain = time.perf_counter() - t
    big = durable.embed(big, "0123456789")
    t = time.perf_counter()
    r = durable.decode(big)
    print(
        f"4000x3000 decode: {1000 * (time.perf_counter() - t):.0f} ms marked (found {r.payload}), "
        f"{1000 * t_plain:.0f} ms unmarked"
    )
    if args.out:
        flat_crops(args.out, pics, marked)


def flat_crops(out: Path, pics, marked) -> None:
    """The flattest 128 px region of each picture, marked, at 1x and with the mark x10."""
    out.mkdir(parents=True, exist_ok=True)
    for (name, a), (m, _) in zip(pics, marked, strict=True):
        y = a.astype(np.float32).mean(axis=2)
        best, where = None, (0, 0)
        for i in range(0, 512 - 128, 32):
            for j in range(0, 512 - 128, 32):
                s = float(y[i : i + 128, j : j + 128].std())
                if best is None or s < best:
                    best, where = s, (i, j)
        i, j = where
        crop = m[i : i + 128, j : j + 128]
        diff = m[i : i + 128, j : j + 128].astype(np.float32) - a[i : i + 128, j : j + 128]
        amp = np.clip(128 + 10 * diff, 0, 255).astype(np.uint8)
        Image.fromarray(crop).resize((384, 384), Image.NEAREST).save(
            out / f"{Path(name).stem}-flat-1x.png"
        )
        Image.fromarray(amp).resize((384, 384), Image.NEAREST).save(
            out / f"{Path(name).stem}-flat-x10.png"
        )
    print(f"flat-area crops in {out}")


def synthetic(kind: str, seed: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "noise":
        return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    if kind == "flat":
        return np.broadcast_to(rng.integers(0, 256, 3, dtype=np.uint8), (size, size, 3)).copy()
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if kind == "gradient":
        c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        t = (xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1))[..., None]
        t = (t - t.min()) / (np.ptp(t) + 1e-6)
        return np.clip(c0 + (c1 - c0) * t, 0, 255).astype(np.uint8)
    if kind == "stripes":
        period = rng.uniform(2, 80)
        ang = rng.uniform(0, np.pi)
        v = np.sin(2 * np.pi * (xx * np.cos(ang) + yy * np.sin(ang)) * size / period)
        v = (v > 0) if rng.random() < 0.5 else (v + 1) / 2
        c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        return np.clip(c0 + (c1 - c0) * v[..., None], 0, 255).astype(np.uint8)
    from PIL import ImageDraw

    im = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(180, 256, 3)))
    d = ImageDraw.Draw(im)
    words = ["fakestudio", "provenance", "label", "0123456789", "The quick brown fox", "AI?"]
    for row in range(0, size, int(rng.integers(10, 24))):
        d.text((int(rng.integers(0, 20)), row), " ".join(rng.choice(words, 8)), fill=(0, 0, 0))
    return np.asarray(im)


def fp_sweep(n: int) -> None:
    kinds = ["noise", "flat", "gradient", "stripes", "text"]
    hits, t0 = 0, time.perf_counter()
    worst = 0.0
    for i in range(n):
        kind = kinds[i % len(kinds)]
        a = synthetic(kind, i, int((256, 384, 512)[i % 3]))
        r = durable.decode(a)
        hits += r.found
        worst = max(worst, r.details.get("pilot_z") or 0.0)
        if r.found:
            print(f"FALSE POSITIVE: {kind} seed {i}: {r.details}")
    pics = pictures(None)
    for name, a in pics:
        for edit, e in EDITS.items():
            r = durable.decode(e(a))
            hits += r.found
            worst = max(worst, r.details.get("pilot_z") or 0.0)
            if r.found:
                print(f"FALSE POSITIVE: {name} {edit}")
    total = n + len(pics) * len(EDITS)
    print(
        f"{total} unmarked pictures ({n} synthetic, {len(pics)} fixtures x {len(EDITS)} edits): "
        f"{hits} detections, highest pilot z {worst:.2f} (threshold {durable.Z_PRESENCE}); "
        f"bound per image {durable.false_positive_bound():.1e}; {time.perf_counter() - t0:.0f} s"
    )


def fp_match(n: int) -> None:
    """False positives of the known-payload match (``durable.match``, what verify's ledger and
    the registry ask of a candidate): unmarked pictures (synthetic, the fixtures and their
    edits) against random payloads, and labelled pictures (each edit) against payloads other
    than theirs. Prints how many matched and the largest correlation z (threshold
    ``durable.MATCH_Z_MIN``) and p-value seen."""
    rng = np.random.default_rng(7)
    kinds = ["noise", "flat", "gradient", "stripes", "text"]
    t0 = time.perf_counter()
    unmarked = [synthetic(kinds[i % len(kinds)], 10_000 + i, 512) for i in range(n)]
    pics = pictures(None)
    unmarked += [e(a) for _, a in pics for e in EDITS.values()]
    hits, zmax = 0, -np.inf
    for a in unmarked:
        r = durable.match(a, rng.bytes(5).hex(), ours.LEDGER_TRIES)
        hits += r.found
        zmax = max(zmax, r.details.get("z") or -np.inf)
    print(
        f"known-payload match, {len(unmarked)} unmarked pictures ({n} synthetic, {len(pics)} "
        f"fixtures x {len(EDITS)} edits), a random payload each: {hits} matches, largest z "
        f"{zmax:.2f} (threshold {durable.MATCH_Z_MIN}); {time.perf_counter() - t0:.0f} s"
    )
    t0 = time.perf_counter()
    hits = vetoed = 0
    zmax = -np.inf
    for _, a in pics:
        marked = durable.embed(a, rng.bytes(5).hex())
        for e in EDITS.values():
            r = durable.match(e(marked), rng.bytes(5).hex(), ours.LEDGER_TRIES)
            hits += r.found
            vetoed += bool(r.details.get("other_payload"))
            zmax = max(zmax, r.details.get("z") or -np.inf)
    print(
        f"known-payload match, {len(pics)} labelled fixtures x {len(EDITS)} edits against "
        f"another payload: {hits} matches, largest z {zmax:.2f}, another label named "
        f"{vetoed} times; {time.perf_counter() - t0:.0f} s"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--fp", type=int, default=0, metavar="N", help="false-positive sweep only")
    ap.add_argument(
        "--fp-match",
        type=int,
        default=0,
        metavar="N",
        help="false-positive sweep of the known-payload match (N synthetic pictures + fixtures)",
    )
    ap.add_argument("--out", type=Path, help="write flat-area crops (1x and x10) here")
    ap.add_argument(
        "--rivagan",
        action="store_true",
        help="add imwatermark's rivaGan column (needs onnxruntime; ~5 s per picture and edit "
        "on 2 cores: use with --quick)",
    )
    args = ap.parse_args()
    if args.fp_match:
        fp_match(args.fp_match)
    elif args.fp:
        fp_sweep(args.fp)
    else:
        table(args)


if __name__ == "__main__":
    main()
