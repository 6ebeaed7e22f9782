"""How visible is the whole label (every invisible mark together), before and after issue 24.

    python bench/label_visibility.py                  # the table (~1 min on 2 cores)
    python bench/label_visibility.py --out vis/       # + crops of each picture's most visible area
    python bench/label_visibility.py --quick          # 6 pictures
    python bench/label_visibility.py --ledger         # what the ledger confirms of uploads
    python bench/label_visibility.py --first-mark     # could a weaker first mark fit?

Pictures: every photo and generator output in ../shared/bench-images and
../shared/fixtures/{real,generated} whose short side is at least 256 px, at their own size
(as ``fakestudio label`` labels them), plus four synthetic stress pictures (a smooth dark-blue
underwater scene, flat saturated patches, a light sky gradient, a dark night gradient) that are
reported apart: the targets are set for the real pictures. Each picture gets its own random
40-bit identifier and is labelled in one process by

* ``before``: the labeller as it was (the first mark, ``ours.embed_for_upload``: chroma,
  strong on textured pictures; then the durable mark on top), kept here as ``two_marks``;
* ``after``: ``fakestudio.label.labeller.watermark``, what the labeller embeds now.

Per picture and scheme: RGB PSNR (all three channels together), the PSNR and mean absolute
error of each channel, SSIM of the luma (Gaussian window, sigma 1.5), and ``blotch``: the
largest mean over a 32 x 32 window of the colour difference that a viewer can see as a patch,
that is the CIELAB difference low-passed at sigma 2 px (8 px blocks survive it, the durable
mark's 2 px grain mostly does not) and weighted down by the picture's own texture
(1 / (1 + local spread of L / 2)); in CIE76 Delta E units (about 1 is a just noticeable
difference for a patch on a flat area). ``--out`` writes, for every picture, its most visible
192 px area (the window with the largest blotch value under either scheme): original,
before and after side by side at 1x, the same enlarged 3x (nearest neighbour), and the two
differences x10 (grey = no change).
Targets (issue 24): RGB PSNR >= 40 dB mean and >= 38 dB worst over the real pictures, and no
block or blotch visible at 1x on flat or saturated areas.
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

from detectors.watermarks import durable, ours  # noqa: E402
from fakestudio.label.labeller import watermark  # noqa: E402

SHARED = ROOT.parent / "shared"
FOLDERS = ("bench-images/photos", "bench-images/generated", "fixtures/real", "fixtures/generated")
CROP = 192


def two_marks(rgb: np.ndarray, payload: str) -> np.ndarray:
    """The label as it was before issue 24: the first mark (strong where texture needs it),
    then the durable mark on top. Old labels carry this; the decoders still read it."""
    first, _ = ours.embed_for_upload(rgb, payload)
    return durable.embed(first, payload)


SCHEMES = {"before": two_marks, "after": lambda rgb, payload: watermark(rgb, payload)[0]}


def real_pictures() -> list[tuple[str, np.ndarray]]:
    out = []
    for folder in FOLDERS:
        for p in sorted((SHARED / folder).glob("*")):
            if p.suffix.lower() not in {".jpg", ".jpeg", ".png", ".webp"}:
                continue
            try:
                with Image.open(p) as im:
                    a = np.asarray(im.convert("RGB"))
            except (OSError, ValueError):
                continue
            if min(a.shape[:2]) >= 256:
                out.append((p.name, a))
    return out


def synthetic_pictures(size: int = 768) -> list[tuple[str, np.ndarray]]:
    """Stress pictures: where a colour mark shows first (smooth, dark, saturated, flat)."""
    import cv2

    rng = np.random.default_rng(24)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    noise = rng.normal(0, 0.8, (size, size, 3)).astype(np.float32)  # a camera's faint grain

    # underwater: deep blue water darkening with depth, a pale diver's body, light shafts
    water = np.stack([4 + 10 * (1 - yy), 40 + 45 * (1 - yy), 90 + 60 * (1 - yy)], -1)
    body = np.exp(-(((xx - 0.55) / 0.12) ** 2 + ((yy - 0.55) / 0.25) ** 2))[..., None]
    skin = np.array([120, 110, 150], np.float32)  # a pale body seen through blue water
    shafts = 12 * np.clip(np.sin(18 * (xx + 0.3 * yy)), 0, 1) ** 8 * (1 - yy)
    under = water * (1 - body) + skin * body + shafts[..., None] * np.array([0.3, 0.8, 1.0])
    # saturated: flat pure colours, white and black, softly edged
    patches = np.zeros((size, size, 3), np.float32)
    colours = [(255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 255, 255), (0, 0, 0), (255, 0, 255)]
    for k, c in enumerate(colours):
        patches[:, k * size // 6 : (k + 1) * size // 6] = c
    patches = cv2.GaussianBlur(patches, (0, 0), 3.0)
    sky = np.stack([110 + 60 * yy, 160 + 50 * yy, 230 + 20 * yy], -1)
    night = np.stack([8 + 20 * xx * yy, 10 + 16 * yy, 25 + 30 * yy], -1)
    out = []
    for name, a in (("underwater", under), ("saturated", patches), ("sky", sky), ("night", night)):
        out.append((f"synthetic:{name}", np.clip(np.rint(a + noise), 0, 255).astype(np.uint8)))
    return out


# --------------------------------------------------------------------------- measures


def channel_psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = a.astype(np.float64) - b
    mse = np.mean(d * d, axis=(0, 1))
    return 10 * np.log10(255.0**2 / np.maximum(mse, 1e-12))


def rgb_psnr(a: np.ndarray, b: np.ndarray) -> float:
    d = a.astype(np.float64) - b
    return float(10 * np.log10(255.0**2 / max(float(np.mean(d * d)), 1e-12)))


def _luma(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of the luma (Wang et al. 2004: Gaussian window sigma 1.5, K1 0.01, K2 0.03)."""
    import cv2

    x, y = _luma(a).astype(np.float64), _luma(b).astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def g(v):
        return cv2.GaussianBlur(v, (11, 11), 1.5)

    mx, my = g(x), g(y)
    sxx, syy, sxy = g(x * x) - mx * mx, g(y * y) - my * my, g(x * y) - mx * my
    m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(m[5:-5, 5:-5].mean())


def _lab(a: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(a.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def visibility(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pixel: the low-passed CIELAB difference (Delta E76, sigma 2 px), weighted down by
    the picture's own texture (1 / (1 + local spread of L / 2))."""
    import cv2

    la = _lab(a)
    d = _lab(b) - la
    low = cv2.GaussianBlur(d, (0, 0), 2.0)
    de = np.sqrt(np.sum(low * low, axis=2))
    L = la[..., 0]
    mean = cv2.GaussianBlur(L, (0, 0), 3.0)
    spread = np.sqrt(np.maximum(cv2.GaussianBlur(L * L, (0, 0), 3.0) - mean * mean, 0.0))
    return de / (1.0 + spread / 2.0)


def worst_window(v: np.ndarray, side: int) -> tuple[float, tuple[int, int]]:
    """The largest mean of ``v`` over a side x side window, and its top-left corner."""
    import cv2

    side = min(side, *v.shape)
    m = cv2.blur(v, (side, side), borderType=cv2.BORDER_CONSTANT)
    h = side // 2
    inner = m[h : v.shape[0] - (side - h) + 1, h : v.shape[1] - (side - h) + 1]
    i, j = np.unravel_index(int(np.argmax(inner)), inner.shape)
    return float(inner[i, j]), (int(i), int(j))


# --------------------------------------------------------------------------- run


def measure(a: np.ndarray, payload: str) -> dict:
    out = {}
    for name, label in SCHEMES.items():
        t = time.perf_counter()
        m = label(a, payload)
        dt = time.perf_counter() - t
        v = visibility(a, m)
        blotch, _ = worst_window(v, 32)
        out[name] = {
            "pixels": m,
            "vis": v,
            "psnr": rgb_psnr(a, m),
            "channels": channel_psnr(a, m),
            "mae": np.abs(m.astype(np.float64) - a).mean(axis=(0, 1)),
            "ssim": ssim(a, m),
            "blotch": blotch,
            "ms": 1000 * dt,
        }
    return out


def write_crops(out: Path, name: str, a: np.ndarray, res: dict) -> None:
    """For each scheme, its most visible CROP px area: original | each scheme at 1x, the
    same 3x (nearest neighbour), and each scheme's difference x10 (grey: no change)."""
    stem = name.replace("synthetic:", "synthetic-").rsplit(".", 1)[0]
    c = min(CROP, *a.shape[:2])
    gap = np.full((c, 4, 3), 255, np.uint8)
    for worst_of, r0 in res.items():
        _, (i, j) = worst_window(r0["vis"], c)
        sl = np.s_[i : i + c, j : j + c]
        tiles, diffs = [a[sl]], []
        for r in res.values():
            tiles += [gap, r["pixels"][sl]]
            d = r["pixels"][sl].astype(np.float32) - a[sl]
            diffs += [np.clip(128 + 10 * d, 0, 255).astype(np.uint8), gap]
        row = np.concatenate(tiles, axis=1)
        base = out / f"{stem}-worst-{worst_of}"
        Image.fromarray(row).save(f"{base}-1x.png")
        big = Image.fromarray(row).resize((row.shape[1] * 3, row.shape[0] * 3), Image.NEAREST)
        big.save(f"{base}-3x.png")
        Image.fromarray(np.concatenate(diffs[:-1], axis=1)).save(f"{base}-diff-x10.png")


def noise_like(seed: int, size: int = 512) -> np.ndarray:
    """Fine colour texture (grey +- 30 at a 2 px scale): the untrained tiny base's pictures,
    foliage and crowds in photos, where a mark is hardest to keep through an upload."""
    rng = np.random.default_rng(seed)
    low = rng.normal(0, 30, (3, size // 2, size // 2)).astype(np.float32)
    up = [np.asarray(Image.fromarray(c).resize((size, size), Image.BICUBIC)) for c in low]
    return np.clip(128 + np.stack(up, -1), 0, 255).astype(np.uint8)


def _jpeg(a: np.ndarray, quality: int) -> np.ndarray:
    import io

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=quality)  # Pillow's 4:2:0 chroma
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        return np.asarray(im.convert("RGB"))


def _resize(a: np.ndarray, fw: float, fh: float) -> np.ndarray:
    h, w = a.shape[:2]
    return np.asarray(Image.fromarray(a).resize((round(w * fw), round(h * fh)), Image.LANCZOS))


UPLOADS = {
    "0.5x + JPEG 85": lambda a: _jpeg(_resize(a, 0.5, 0.5), 85),
    "0.5x + JPEG 75": lambda a: _jpeg(_resize(a, 0.5, 0.5), 75),
    "squeezed 0.47 x 0.5 + JPEG 90": lambda a: _jpeg(_resize(a, 0.47, 0.5), 90),
    "squeezed 0.47 x 0.5 + JPEG 75": lambda a: _jpeg(_resize(a, 0.47, 0.5), 75),
}


def ledger_table() -> None:
    """What verify's ledger (and the registry) confirm of a stripped upload once a candidate
    record is found by perceptual hash: the known-payload test ``ours.match_copy`` (the copy as
    is and resized back to the record's size; 6 tries, as verify's 3 candidates x 2 copies).
    Before: the label as it was, confirmed by the first mark's bits alone
    (``ours.match_first_copy``); after: the label now, whose durable mark ``match_copy``
    tests. Also the durable mark read blind (no ledger). The watermark bench's 28 pictures at
    512 px (2 of them graphics) and 6 noise-like pictures."""
    from bench.watermark_robustness import pictures

    pics = pictures(None) + [(f"noise-like {s}", noise_like(s)) for s in range(6)]
    names, arrays = [n for n, _ in pics], [a for _, a in pics]
    rng = np.random.default_rng(3)
    print(
        "| upload | before: first mark, known payload | after: durable, known payload | "
        "after: durable, blind | after: missed |"
    )
    print("|---|---|---|---|---|")
    for up_name, upload in UPLOADS.items():
        before = after = blind = 0
        missed = []
        t0 = time.perf_counter()
        for name, a in zip(names, arrays, strict=True):
            payload = rng.bytes(5).hex()
            size = (a.shape[1], a.shape[0])
            old = upload(two_marks(a, payload))
            before += ours.match_first_copy(old, payload, size, 2 * ours.LEDGER_TRIES).found
            new = upload(SCHEMES["after"](a, payload))
            r = ours.match_copy(new, payload, size, ours.LEDGER_TRIES)
            after += r.found
            blind += durable.decode(new).payload == payload
            if not r.found:
                missed.append(name)
        n = len(names)
        print(
            f"| {up_name} | {before}/{n} | {after}/{n} | {blind}/{n} | "
            f"{', '.join(missed) or '-'} |",
            flush=True,
        )
        print(f"  ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)


def first_mark_variant(a: np.ndarray, payload: str, nearest: bool, cap: float | None):
    """The first mark with the same decoder (imwatermark's step 36 on each 4x4 LL block's top
    singular value), embedded with the floor quantiser it had (``nearest=False``) or at the
    nearest quantisation point of the right bit, each block's change capped at ``cap``."""
    from detectors.watermarks import dwt

    bits = ours.message_bits(payload).astype(np.float64)
    blocks, nbr, nbc = dwt.to_blocks(dwt.ll_band(a, False, 128.0))
    s0, u0, v0 = dwt.top_singular(blocks, vectors=True)
    b = bits[np.arange(blocks.shape[2]) % bits.size]
    step = ours.SCALE
    if nearest:
        centre = (0.25 + 0.5 * b) * step
        target = np.round((s0 - centre) / step) * step + centre
    else:
        target = (np.floor(s0 / step) + 0.25 + 0.5 * b) * step
    delta = target - s0
    if cap is not None:
        delta = np.clip(delta, -cap, cap)
    return dwt._apply_ll_delta(a, u0[:, None, :] * v0[None, :, :] * delta, nbr, nbc, False)


def first_mark_table() -> None:
    """Could a weaker first mark fit the budget? On the watermark bench's 28 pictures at 512 px:
    the first mark's PSNR alone, the whole label's (with the durable mark on top), its blind
    read of the unedited label, and the ledger's known-payload test (the first mark's bits)
    after 0.5x + JPEG 85 with 4:2:0 chroma."""
    from bench.watermark_robustness import pictures

    pics = pictures(None)
    variants = {
        "as it was (floor quantiser)": (False, None),
        "nearest quantisation point": (True, None),
        "... change capped at 6": (True, 6.0),
        "... change capped at 4": (True, 4.0),
    }
    print("| first mark | its PSNR | whole label mean / worst | blind read | upload matched |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for name, (nearest, cap) in variants.items():
        alone, whole = [], []
        blind = matched = 0
        for _, a in pics:
            payload = rng.bytes(5).hex()
            first = first_mark_variant(a, payload, nearest, cap)
            label = durable.embed(first, payload)
            alone.append(rgb_psnr(a, first))
            whole.append(rgb_psnr(a, label))
            blind += ours.decode(label).payload == payload
            up = ours.simulated_upload(label)
            matched += ours.match_first_copy(up, payload, (512, 512), ours.LEDGER_TRIES).found
        n = len(pics)
        print(
            f"| {name} | {np.mean(alone):.1f} dB | {np.mean(whole):.1f} / {np.min(whole):.1f} dB "
            f"| {blind}/{n} | {matched}/{n} |",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="6 real pictures and the synthetic ones")
    ap.add_argument("--out", type=Path, help="write crops of the most visible areas here")
    ap.add_argument(
        "--ledger",
        action="store_true",
        help="instead: the ledger's known-payload test on stripped uploads, before vs after",
    )
    ap.add_argument(
        "--first-mark",
        action="store_true",
        help="instead: could a weaker first mark fit the budget (PSNR, blind read, upload)?",
    )
    args = ap.parse_args()
    if args.ledger:
        ledger_table()
        return
    if args.first_mark:
        first_mark_table()
        return
    real = real_pictures()
    if args.quick:
        real = real[:: max(1, len(real) // 6)][:6]
    pics = [(n, a, True) for n, a in real] + [(n, a, False) for n, a in synthetic_pictures()]
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = list(SCHEMES)
    head = ["picture", "size"]
    for s in names:
        head += [f"{s} PSNR", f"{s} R/G/B PSNR", f"{s} R/G/B MAE", f"{s} SSIM", f"{s} blotch"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    stats: dict[str, dict[str, list[float]]] = {s: {} for s in names}
    for name, a, counted in pics:
        res = measure(a, rng.bytes(5).hex())
        cells = [name if counted else f"*{name}*", f"{a.shape[1]}x{a.shape[0]}"]
        for s in names:
            r = res[s]
            cells += [
                f"{r['psnr']:.2f}",
                "/".join(f"{v:.1f}" for v in r["channels"]),
                "/".join(f"{v:.2f}" for v in r["mae"]),
                f"{r['ssim']:.4f}",
                f"{r['blotch']:.2f}",
            ]
            if counted:
                for k in ("psnr", "ssim", "blotch", "ms"):
                    stats[s].setdefault(k, []).append(r[k])
                for c, v in zip("RGB", r["channels"], strict=True):
                    stats[s].setdefault(f"psnr_{c}", []).append(v)
        print("| " + " | ".join(cells) + " |", flush=True)
        if args.out:
            write_crops(args.out, name, a, res)
    n = len(real)
    print(f"\n{n} real pictures (synthetic stress pictures in italics, not counted):")
    for s in names:
        st = stats[s]
        chans = ", ".join(f"{c} {np.mean(st[f'psnr_{c}']):.1f}" for c in "RGB")
        met = np.mean(st["psnr"]) >= 40.0 and np.min(st["psnr"]) >= 38.0
        print(
            f"{s:6s}: RGB PSNR mean {np.mean(st['psnr']):.2f} dB, worst {np.min(st['psnr']):.2f} "
            f"dB ({'met' if met else 'NOT met'}: >= 40 mean, >= 38 worst); per channel mean "
            f"{chans} dB; SSIM mean {np.mean(st['ssim']):.4f}, worst {np.min(st['ssim']):.4f}; "
            f"blotch mean {np.mean(st['blotch']):.2f}, worst {np.max(st['blotch']):.2f} dE; "
            f"embed median {np.median(st['ms']):.0f} ms"
        )
    if args.out:
        print(f"crops in {args.out} (original | before | after at 1x and 3x; diffs x10)")


if __name__ == "__main__":
    main()
