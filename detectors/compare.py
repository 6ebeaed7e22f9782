"""Two images side by side: what their provenance says, and how alike their pixels are.

    from detectors.compare import compare_images
    cmp = compare_images("fake.png", "photo.jpg")
    cmp.a.verdict["headline"], cmp.hashes["phash"]["distance"], cmp.ssim, cmp.observations

What is measured, and what it means:

- **Verdicts**: each image's verify report (``detectors.verify.verify_image``; pass
  ``reports=`` to supply them yourself). These, not the pixels, say where an image came from.
- **Perceptual hashes** (pHash, dHash, aHash; 64 bits each, as ``imagehash`` computes them):
  the number of differing bits. Re-encoded, resized or brightened copies stay within 6 bits;
  different pictures start around 18 (``detectors.fingerprint``: what was measured); crops and
  mirrors break the hashes.
- **SSIM** (structural similarity, Wang et al. 2004: Gaussian window sigma 1.5, K1 0.01,
  K2 0.03, L 255) on luminance, after resizing the larger image to the smaller one. Only when
  both have the same aspect ratio (a crop or another framing cannot be aligned pixel by pixel).
  1.0 identical; JPEG 75 of the same picture stays above about 0.9; unrelated pictures are near 0.
- **Difference heat map**: the per-pixel SSIM dissimilarity (1 - SSIM, clipped to 0..1), dark
  where the structure agrees, bright where it differs.
- **Frequency spectra**: the centred log-magnitude 2D FFT of each image's luminance (Hann
  windowed) of the central 512x512 crop at native resolution. Periodic patterns (JPEG's 8x8 blocks, a generator's upsampling grid, resampling)
  show as bright off-centre points; smoothing removes the outer ring. A hint, never a verdict.

None of these says whether a picture shows something that happened. An image with no label is
"no provenance found", never "real": labels are stripped by a screenshot, and most generators
add none. Never imports torch or fakestudio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from detectors.fingerprint import DIFFERENT_PICTURE_BITS, HASH_BITS, SAME_PICTURE_BITS
from detectors.verdict import OUTCOMES

# --- thresholds -------------------------------------------------------------------------------

# <= SAME_MAX_BITS: very likely the same picture; >= DIFFERENT_MIN_BITS: different pictures
SAME_MAX_BITS = SAME_PICTURE_BITS
DIFFERENT_MIN_BITS = DIFFERENT_PICTURE_BITS
WORK_MAX_SIDE = 2048  # images are analysed at most this large
SSIM_MAX_SIDE = 1024  # SSIM and the heat map are computed at most this large
SPECTRUM_SIDE = 512  # spectra: FFT of the central crop at most this large (not resized)
ASPECT_TOLERANCE = 0.02  # relative aspect-ratio difference still called "the same framing"
MIN_SSIM_SIDE = 16  # below this the 11x11 SSIM window has nothing to slide over
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2, SSIM_L = 0.01, 0.03, 255.0
MIN_SPECTRUM_SIDE = 32  # smaller images get no spectral statistics
PEAK_Z = 5.0  # spectrum peak: robust z-score above its neighbourhood
CHANGED_LEVEL = 0.25  # 1 - SSIM above this counts as a visibly changed pixel
TRUST_TITLE = "Do not trust your eyes"

# Verdict outcomes (detectors.verdict.OUTCOMES), plus "unknown" for a missing report. Pages and
# the poster colour by these; other outcome names are mapped onto them by ``verdict_kind``.
KINDS = (*OUTCOMES, "unknown")
AI_KINDS = frozenset({"labelled-ai", "ai-watermark", "recovered", "ai-metadata"})
NO_AI_LABEL = frozenset({"no-provenance", "credentials-not-ai"})


class ImageError(ValueError):
    """An input that cannot be read as an image; the message names the file."""


# --- results ----------------------------------------------------------------------------------


@dataclass
class Side:
    """One of the two images: its file, its verdict, its working pixels and spectrum."""

    path: str
    name: str
    format: str | None
    width: int  # upright (EXIF orientation applied), original resolution
    height: int
    frames: int
    report: dict | None  # verify report (Report.to_dict()), or None when unavailable
    verdict: dict  # {"outcome", "headline", "message", "kind", "reasons"}
    image: Image.Image = field(repr=False)  # RGB, upright, at most WORK_MAX_SIDE
    spectrum: Image.Image = field(repr=False)  # colour-mapped log-magnitude spectrum
    spectrum_stats: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "name": self.name,
            "format": self.format,
            "width": self.width,
            "height": self.height,
            "frames": self.frames,
            "verdict": self.verdict,
            "spectrum": self.spectrum_stats,
            "report": self.report,
        }


@dataclass
class Comparison:
    a: Side
    b: Side
    hashes: dict[str, dict]  # name -> {"a": hex, "b": hex, "distance": bits, "bits": 64}
    hash_reading: str  # "same" | "related" | "different"
    hash_explanation: str
    ssim: float | None
    ssim_size: tuple[int, int] | None  # (width, height) both were compared at
    ssim_note: str  # what SSIM means here, or why it was not computed
    heatmap: Image.Image | None = field(repr=False)
    diff_map: np.ndarray | None = field(repr=False)  # 1 - SSIM per pixel, 0..1, ssim_size
    hotspot: dict | None  # {"x", "y" (0..1 of the width/height), "changed_fraction"}
    observations: list[str]
    message: str  # the "do not trust your eyes" text, worded for this pair
    message_title: str = TRUST_TITLE
    notes: list[str] = field(default_factory=list)  # problems met (verify unavailable, ...)

    @property
    def sides(self) -> tuple[Side, Side]:
        return (self.a, self.b)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (no pixels)."""
        return {
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
            "hashes": self.hashes,
            "hash_reading": self.hash_reading,
            "hash_explanation": self.hash_explanation,
            "hash_thresholds": {"same_max": SAME_MAX_BITS, "different_min": DIFFERENT_MIN_BITS},
            "ssim": self.ssim,
            "ssim_size": list(self.ssim_size) if self.ssim_size else None,
            "ssim_note": self.ssim_note,
            "hotspot": self.hotspot,
            "observations": self.observations,
            "message_title": self.message_title,
            "message": self.message,
            "notes": self.notes,
        }


# --- entry point ------------------------------------------------------------------------------


def compare_images(
    a_path: str | Path,
    b_path: str | Path,
    *,
    reports: tuple[dict | None, dict | None] | None = None,
    trust_anchors: list[bytes] | list[str] | None = None,
) -> Comparison:
    """Compare two image files. Raises ``ImageError`` (naming the file) for one that cannot
    be read as an image. ``reports``: both verify reports as dicts (``Report.to_dict()``);
    by default ``detectors.verify.verify_image`` is run on each file (with ``trust_anchors``)."""
    la, lb = load_image(a_path), load_image(b_path)
    notes: list[str] = []
    if reports is None:
        reports = (_verify(a_path, trust_anchors, notes), _verify(b_path, trust_anchors, notes))
    sa = _side(la, reports[0])
    sb = _side(lb, reports[1])

    hashes = perceptual_hashes(la.image, lb.image)
    ph = hashes["phash"]["distance"]
    reading, explanation = hash_reading(ph)

    ssim_value = None
    ssim_size = None
    heat = None
    dmap = None
    hotspot = None
    why_not = alignment_problem(la.size, lb.size)
    if why_not:
        ssim_note = why_not
    else:
        x, y, ssim_size = aligned_luminance(la.image, lb.image)
        smap = ssim_map(x, y)
        ssim_value = mean_ssim(smap)
        dmap = np.clip(1.0 - smap, 0.0, 1.0)
        heat = heatmap_image(dmap)
        hotspot = find_hotspot(dmap)
        ssim_note = ssim_reading(ssim_value)

    cmp = Comparison(
        a=sa,
        b=sb,
        hashes=hashes,
        hash_reading=reading,
        hash_explanation=explanation,
        ssim=ssim_value,
        ssim_size=ssim_size,
        ssim_note=ssim_note,
        heatmap=heat,
        diff_map=dmap,
        hotspot=hotspot,
        observations=[],
        message="",
        notes=notes,
    )
    cmp.observations = observations(cmp)
    cmp.message = trust_message(cmp)
    return cmp


# --- loading ----------------------------------------------------------------------------------


@dataclass
class LoadedImage:
    path: str
    format: str | None
    size: tuple[int, int]  # upright original (width, height)
    frames: int
    image: Image.Image  # RGB, upright, at most WORK_MAX_SIDE


def load_image(path: str | Path, *, max_side: int = WORK_MAX_SIDE) -> LoadedImage:
    """Read an image upright (EXIF orientation), first frame, alpha over white, as RGB at most
    ``max_side`` (through ``detectors.image_io``, with its decompression-bomb and corrupt-file
    guards). Raises ``ImageError`` with one line naming the file."""
    from detectors import image_io

    shown = str(path)
    rgb, info = image_io.load_image(path)
    if rgb is None:
        reason = str(info.get("reason") or "unreadable")
        raise ImageError(f"{shown}: {reason}")
    w, h = int(info.get("width") or rgb.shape[1]), int(info.get("height") or rgb.shape[0])
    if info.get("orientation") in (5, 6, 7, 8):
        w, h = h, w
    im = Image.fromarray(rgb, "RGB")
    if max(im.size) > max_side:
        im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return LoadedImage(shown, info.get("format"), (w, h), int(info.get("frames") or 1), im)


def _verify(path, trust_anchors, notes: list[str]) -> dict | None:
    try:
        from detectors.verify import verify_image
    except ImportError:
        if "verification unavailable" not in " ".join(notes):
            notes.append(
                "verification unavailable (detectors.verify is not installed): "
                "no verdicts, only pixel statistics"
            )
        return None
    try:
        rep = verify_image(path, trust_anchors=trust_anchors)
    except Exception as e:  # a verifier must not take the comparison down with it
        notes.append(f"{Path(path).name}: verification failed ({type(e).__name__}: {e})")
        return None
    if not hasattr(rep, "to_dict"):
        return dict(rep)
    try:
        return rep.to_dict(full=False)  # without the bulky raw manifest
    except TypeError:
        return rep.to_dict()


# --- verdicts ---------------------------------------------------------------------------------


def verdict_of(report: dict | None) -> dict[str, str]:
    """The verdict block of a report, with a ``kind`` (one of ``KINDS``) for colouring."""
    if not report:
        return {
            "outcome": "not-verified",
            "headline": "Not verified",
            "message": "No verify report for this image: nothing is known about its provenance.",
            "kind": "unknown",
            "reasons": [],
            "tier": "",
        }
    v = report.get("verdict") or {}
    outcome = str(v.get("outcome") or "unknown")
    reasons = v.get("reasons") if isinstance(v.get("reasons"), list) else []
    return {
        "outcome": outcome,
        "headline": str(v.get("headline") or outcome.replace("-", " ").replace("_", " ")),
        "message": str(v.get("message") or ""),
        "kind": verdict_kind(outcome),
        "reasons": [str(r) for r in reasons[:12]],
        "tier": str(v.get("tier") or ""),
    }


def verdict_kind(outcome: str) -> str:
    """The outcome itself when it is one of ``KINDS``, else the nearest of them."""
    o = (outcome or "").lower().replace("_", "-")
    if o in KINDS:
        return o
    if not o or o == "not-verified":
        return "unknown"
    if "unreadable" in o or o in ("error", "bad-input"):
        return "unreadable"
    if "tamper" in o or "invalid" in o:
        return "tampered"
    if "not-ai" in o:
        return "credentials-not-ai"
    if o.startswith("no-") or "none" in o or "unlabel" in o:
        return "no-provenance"
    if "ledger" in o or "recover" in o:
        return "recovered"
    if "metadata" in o or "claim" in o:
        return "ai-metadata"
    if "watermark" in o:
        return "ai-watermark"
    if "label" in o or "generat" in o or "manifest" in o:
        return "labelled-ai"
    return "unknown"


def _side(li: LoadedImage, report: dict | None) -> Side:
    spec, stats = spectrum(li.image)
    return Side(
        path=li.path,
        name=Path(li.path).name,
        format=li.format,
        width=li.size[0],
        height=li.size[1],
        frames=li.frames,
        report=report,
        verdict=verdict_of(report),
        image=li.image,
        spectrum=spec,
        spectrum_stats=stats,
    )


# --- perceptual hashes ------------------------------------------------------------------------


def perceptual_hashes(a: Image.Image, b: Image.Image) -> dict[str, dict]:
    from detectors.fingerprint import ahash_hex, dhash_hex, hamming, phash_hex

    out = {}
    for name, fn in (
        ("phash", phash_hex),  # the pHash the ledger and verify use
        ("dhash", dhash_hex),
        ("ahash", ahash_hex),
    ):
        ha, hb = fn(a), fn(b)
        out[name] = {"a": ha, "b": hb, "distance": hamming(ha, hb), "bits": HASH_BITS}
    return out


def hash_reading(phash_distance: int) -> tuple[str, str]:
    d = phash_distance
    if d <= SAME_MAX_BITS:
        return (
            "same",
            f"pHash differs in {d} of {HASH_BITS} bits (<= {SAME_MAX_BITS}): very likely the "
            "same picture, re-encoded, resized or brightened.",
        )
    if d >= DIFFERENT_MIN_BITS:
        return (
            "different",
            f"pHash differs in {d} of {HASH_BITS} bits (>= {DIFFERENT_MIN_BITS}): different "
            "pictures (or a crop, mirror or rotation of one, which these hashes do not survive).",
        )
    return (
        "related",
        f"pHash differs in {d} of {HASH_BITS} bits (between {SAME_MAX_BITS} and "
        f"{DIFFERENT_MIN_BITS}): related pictures: an edited copy, a crop, or a very similar "
        "scene. Look at the heat map.",
    )


# --- SSIM and the heat map --------------------------------------------------------------------


def luminance(rgb: Image.Image | np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma, float64 0..255."""
    arr = np.asarray(rgb, dtype=np.float64)
    if arr.ndim == 2:
        return arr
    return arr[..., 0] * 0.299 + arr[..., 1] * 0.587 + arr[..., 2] * 0.114


def alignment_problem(size_a: tuple[int, int], size_b: tuple[int, int]) -> str | None:
    """Why the two cannot be compared pixel by pixel, or None when they can."""
    (wa, ha), (wb, hb) = size_a, size_b
    if min(wa, ha, wb, hb) < MIN_SSIM_SIDE:
        small = "A" if min(wa, ha) < MIN_SSIM_SIDE else "B"
        return (
            f"No SSIM or heat map: image {small} is smaller than {MIN_SSIM_SIDE} pixels on a "
            "side, too small for the 11x11 comparison window."
        )
    ra, rb = wa / ha, wb / hb
    if abs(ra - rb) / min(ra, rb) > ASPECT_TOLERANCE:
        return (
            f"No SSIM or heat map: the images have different shapes (A {wa}x{ha}, "
            f"{_ratio(wa, ha)}; B {wb}x{hb}, {_ratio(wb, hb)}). A crop or another framing cannot "
            "be lined up pixel by pixel; the perceptual hashes above still apply."
        )
    return None


def _ratio(w: int, h: int) -> str:
    g = math.gcd(w, h)
    rw, rh = w // g, h // g
    if rw <= 32 and rh <= 32:
        return f"{rw}:{rh}"
    return f"{w / h:.2f}:1"


def aligned_luminance(
    a: Image.Image, b: Image.Image, max_side: int = SSIM_MAX_SIDE
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Both luminances at one size: the smaller image's, capped at ``max_side``."""
    small = a if a.width * a.height <= b.width * b.height else b
    w, h = small.size
    scale = min(1.0, max_side / max(w, h))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))

    def at(im: Image.Image) -> np.ndarray:
        if im.size != size:
            im = im.resize(size, Image.Resampling.LANCZOS)
        return luminance(im)

    return at(a), at(b), size


def ssim_map(x: np.ndarray, y: np.ndarray, *, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Per-pixel SSIM of two same-shape luminance arrays (0..255), Gaussian window."""
    from detectors.filters import gaussian

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"ssim_map needs equal shapes, got {x.shape} and {y.shape}")

    def blur(a):
        return gaussian(a, sigma, truncate=3.5, mode="reflect")

    c1 = (SSIM_K1 * SSIM_L) ** 2
    c2 = (SSIM_K2 * SSIM_L) ** 2
    mx, my = blur(x), blur(y)
    mxx, myy, mxy = mx * mx, my * my, mx * my
    sxx = blur(x * x) - mxx
    syy = blur(y * y) - myy
    sxy = blur(x * y) - mxy
    num = (2.0 * mxy + c1) * (2.0 * sxy + c2)
    den = (mxx + myy + c1) * (sxx + syy + c2)
    return num / den


def mean_ssim(smap: np.ndarray) -> float:
    """Mean SSIM, ignoring the border where the window hangs over the edge."""
    pad = int(3.5 * SSIM_SIGMA + 0.5)
    inner = smap[pad:-pad, pad:-pad] if min(smap.shape) > 2 * pad + 1 else smap
    return float(inner.mean())


def ssim(a: np.ndarray | Image.Image, b: np.ndarray | Image.Image) -> float:
    """Mean SSIM of two same-size images (RGB or luminance)."""
    return mean_ssim(ssim_map(luminance(a), luminance(b)))


def ssim_reading(value: float) -> str:
    if value >= 0.95:
        what = (
            "nearly identical overall (a small local edit barely moves this number: "
            "the heat map shows where the pictures differ)"
        )
    elif value >= 0.8:
        what = "the same picture with visible changes (compression, resizing or a local edit)"
    elif value >= 0.5:
        what = "similar structure with substantial differences"
    else:
        what = "little shared structure: different pictures, or heavily changed"
    return f"SSIM {value:.3f} on luminance (1 = identical, ~0 = unrelated): {what}."


# inferno-like colour map: dark = no difference, bright yellow = strong difference
CMAP_POS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
CMAP_RGB = np.array(
    [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float64
)


def colormap(values: np.ndarray) -> np.ndarray:
    """Map 0..1 floats to an RGB uint8 array (inferno-like)."""
    v = np.clip(np.nan_to_num(values, nan=0.0), 0.0, 1.0)
    out = np.empty(v.shape + (3,), dtype=np.uint8)
    for c in range(3):
        out[..., c] = np.interp(v, CMAP_POS, CMAP_RGB[:, c]).round().astype(np.uint8)
    return out


def heatmap_image(dmap: np.ndarray) -> Image.Image:
    """The dissimilarity map (0..1) as a colour image; square root so faint changes show."""
    return Image.fromarray(colormap(np.sqrt(np.clip(dmap, 0.0, 1.0))), "RGB")


def find_hotspot(dmap: np.ndarray) -> dict:
    """Where the strongest difference is (fractions of width/height) and how much changed."""
    from detectors.filters import gaussian

    h, w = dmap.shape
    smooth = gaussian(dmap, max(1.0, min(h, w) / 100.0), mode="nearest")
    iy, ix = np.unravel_index(int(np.argmax(smooth)), smooth.shape)
    return {
        "x": round(float((ix + 0.5) / w), 4),
        "y": round(float((iy + 0.5) / h), 4),
        "peak": round(float(dmap.max()), 4),
        "changed_fraction": round(float((dmap > CHANGED_LEVEL).mean()), 5),
    }


# --- spectra ----------------------------------------------------------------------------------


def log_spectrum(rgb: Image.Image, side: int = SPECTRUM_SIDE) -> np.ndarray:
    """Centred log-magnitude 2D FFT of the luminance of the central ``side`` x ``side`` crop
    (pixels as they are, not resized: resizing would filter out the very patterns looked for),
    mean removed, Hann windowed so the picture's borders do not draw a bright cross."""
    w, h = rgb.size
    cw, ch = min(w, side), min(h, side)
    left, top = (w - cw) // 2, (h - ch) // 2
    y = luminance(rgb.crop((left, top, left + cw, top + ch)))
    y = y - y.mean()
    win = np.outer(np.hanning(y.shape[0]), np.hanning(y.shape[1]))
    f = np.fft.fftshift(np.fft.fft2(y * win))
    return np.log1p(np.abs(f))


def spectrum_stats(logmag: np.ndarray) -> dict:
    """Two plain numbers: the share of energy at high frequencies (beyond half the Nyquist
    frequency), and the count of isolated bright peaks (points standing more than
    ``PEAK_Z`` robust standard deviations above their neighbourhood, outside the centre)."""
    from detectors.filters import gaussian, maximum

    h, w = logmag.shape
    fy = (np.arange(h) - h // 2) / (h / 2)
    fx = (np.arange(w) - w // 2) / (w / 2)
    r = np.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)  # 1 = Nyquist along an axis
    power = np.expm1(logmag) ** 2
    power[h // 2, w // 2] = 0.0
    total = float(power.sum()) or 1.0
    high = float(power[r > 0.5].sum()) / total
    resid = logmag - gaussian(logmag, 4.0, mode="wrap")
    outer = r > 0.1
    if h < 16 or w < 16 or not outer.any():
        return {"high_frequency_share": round(high, 5), "periodic_peaks": 0}
    vals = resid[outer]
    spread = 1.4826 * float(np.median(np.abs(vals - np.median(vals)))) or 1e-9
    is_peak = (resid / spread > PEAK_Z) & (resid == maximum(resid, 5, mode="wrap"))
    peaks = int((is_peak & outer).sum())
    return {"high_frequency_share": round(high, 5), "periodic_peaks": peaks}


def spectrum_image(logmag: np.ndarray) -> Image.Image:
    lo, hi = np.percentile(logmag, [1.0, 99.95])
    v = (logmag - lo) / max(hi - lo, 1e-9)
    return Image.fromarray(colormap(v), "RGB")


def spectrum(rgb: Image.Image) -> tuple[Image.Image, dict]:
    """The spectrum image and its statistics. Flat (one-colour) or tiny images have no
    meaningful spectrum: their statistics are zero and ``"analysable"`` is False."""
    lm = log_spectrum(rgb)
    if min(lm.shape) < MIN_SPECTRUM_SIDE or float(np.expm1(lm.max())) < 1.0:
        return spectrum_image(lm), {
            "high_frequency_share": 0.0,
            "periodic_peaks": 0,
            "analysable": False,
        }
    return spectrum_image(lm), {**spectrum_stats(lm), "analysable": True}


# --- words ------------------------------------------------------------------------------------


def _where(x: float, y: float) -> str:
    vert = "top" if y < 1 / 3 else ("bottom" if y > 2 / 3 else "middle")
    horiz = "left" if x < 1 / 3 else ("right" if x > 2 / 3 else "centre")
    if vert == "middle" and horiz == "centre":
        return "the centre"
    if vert == "middle":
        return f"the middle {horiz}"
    return f"the {vert} {horiz}" if horiz != "centre" else f"the {vert} centre"


def _kind_phrase(kind: str) -> str:
    return {
        "labelled-ai": "a signed label saying it is AI-generated",
        "ai-watermark": "an AI generator's invisible watermark",
        "recovered": "a watermark tying it to a recorded AI output",
        "ai-metadata": "unsigned metadata claiming an AI tool",
        "credentials-not-ai": "Content Credentials that do not declare AI",
        "no-provenance": "no provenance at all",
        "tampered": "credentials that no longer match its pixels",
        "unreadable": "nothing readable",
        "unknown": "no verify report",
    }.get(kind, "no verify report")


def observations(c: Comparison) -> list[str]:
    """A short list of plain-language observations about the pair."""
    out: list[str] = []
    va, vb = c.a.verdict, c.b.verdict
    out.append(f"A ({c.a.name}): {va['headline']}. B ({c.b.name}): {vb['headline']}.")
    ka, kb = va["kind"], vb["kind"]
    if ka != kb and "unknown" not in (ka, kb):
        out.append(
            f"A carries {_kind_phrase(ka)}; B carries {_kind_phrase(kb)}. That is a difference "
            "in what the files say, not in what the pictures show."
        )
    unlabelled = [lb for lb, k in (("A", ka), ("B", kb)) if k in NO_AI_LABEL]
    if unlabelled:
        who = "Neither image has" if len(unlabelled) == 2 else f"{unlabelled[0]} has"
        it = "either" if len(unlabelled) == 2 else "it"
        out.append(
            f"{who} an AI label, which does not make {it} a photograph: labels vanish with a "
            "screenshot or a re-upload, and most generators never add one."
        )
    if "tampered" in (ka, kb):
        which = " and ".join(s for s, k in (("A", ka), ("B", kb)) if k == "tampered")
        out.append(f"{which}: the credentials no longer match the file (changed after signing).")
    out.append(c.hash_explanation)
    if c.ssim is None:
        out.append(c.ssim_note)
    else:
        out.append(c.ssim_note)
        hs = c.hotspot or {}
        frac = hs.get("changed_fraction", 0.0)
        if c.ssim >= 0.8 and 0 < frac < 0.1 and hs.get("peak", 0) > 0.5:
            out.append(
                f"The differences are concentrated in one place, around {_where(hs['x'], hs['y'])} "
                f"({frac:.1%} of the picture): this is what a local edit looks like."
            )
        elif c.hash_reading == "same" and c.ssim >= 0.8:
            out.append(
                "The differences are spread thinly over the whole picture, as re-compression "
                "or resizing leaves them."
            )
    if c.a.format != c.b.format or (c.a.width, c.a.height) != (c.b.width, c.b.height):
        out.append(
            f"A is {c.a.width}x{c.a.height} {c.a.format or '?'}, "
            f"B is {c.b.width}x{c.b.height} {c.b.format or '?'}."
        )
    ha = c.a.spectrum_stats.get("high_frequency_share", 0.0)
    hb = c.b.spectrum_stats.get("high_frequency_share", 0.0)
    both = all(s.spectrum_stats.get("analysable", True) for s in c.sides)
    if both and max(ha, hb) > 0 and max(ha, hb) >= 3 * max(min(ha, hb), 1e-6):
        finer = "A" if ha > hb else "B"
        out.append(
            f"{finer} holds much more fine detail and noise (outer ring of its spectrum): a "
            "sensor's noise, sharpening, or a generator's texture; the other was smoothed, "
            "resized or compressed. Neither is evidence of origin."
        )
    for s, label in ((c.a, "A"), (c.b, "B")):
        n = s.spectrum_stats.get("periodic_peaks", 0)
        if n >= 2:
            out.append(
                f"{label}'s spectrum has {n} sharp off-centre peaks: a repeating pattern, as "
                "JPEG's 8x8 blocks, resampling or a generator's upsampling leave. A hint, not "
                "a verdict."
            )
    if c.a.frames > 1 or c.b.frames > 1:
        out.append("An animated image was compared by its first frame only.")
    return out


def trust_message(c: Comparison) -> str:
    """The closing "do not trust your eyes" text, worded for this pair."""
    ka, kb = c.a.verdict["kind"], c.b.verdict["kind"]
    tail = (
        "Side by side, neither your eyes nor these pixel statistics can tell a generated "
        "picture from a photograph: only provenance can, and only when it is there."
    )
    same = c.hash_reading == "same"
    if "unknown" in (ka, kb) or "unreadable" in (ka, kb):
        return (
            "At least one image could not be verified, so nothing here says where it came "
            "from. " + tail
        )
    if "tampered" in (ka, kb):
        which = "Both images were" if ka == kb else f"{'A' if ka == 'tampered' else 'B'} was"
        return (
            f"{which} changed after signing: the credentials no longer describe the file, so "
            "what it shows now is not what was signed. " + tail
        )
    a_ai, b_ai = ka in AI_KINDS, kb in AI_KINDS
    if a_ai and b_ai:
        return (
            "Both images carry evidence of being generated, and either could pass for a "
            "photograph. A label says who made a file, not that what it shows happened; "
            "metadata claims can be forged. " + tail
        )
    if a_ai != b_ai:
        only, other = ("A", "B") if a_ai else ("B", "A")
        lost = (
            f" These look like the same picture: {other} may be a copy of {only} that lost "
            "its label on the way."
            if same
            else ""
        )
        return (
            f"Only {only} says it was generated. {other} says nothing of the kind, and a missing "
            "label proves nothing: most generators add none, and a screenshot strips any. "
            f"{other} could be a photograph or a generated image with its label removed."
            + lost
            + " "
            + tail
        )
    return (
        "Neither image says it was generated. That proves nothing about either: a missing "
        "label is the normal state of a generated image that has been shared once. " + tail
    )
