"""One pass for every watermark detector: ``detect_all``'s results, computed 2-3x faster.

``detect_all`` runs each decoder on its own (each builds its U-channel band from the pixels);
``detect_watermarks`` shares that work and pre-screens the expensive searches. A test checks
that ``prescreen=False`` gives exactly ``detect_all``'s results and that the pre-screens keep
every mark they should. `detectors.verify` calls this for every image.
"""

from __future__ import annotations

import numpy as np

#: Blocks per bit in each of the two bands the half-grid pre-screen reads.
PRESCREEN_BLOCKS_PER_BIT = 32
#: The whole half-size grid is searched when the two bands decode to the same bits at least
#: this often (or their check bits match). A mark gives agreement ~1.0 (0.8 at worst measured on
#: 70 half-size copies, JPEG 90 included); two bands of an unmarked photo decode independent
#: bits (0.33-0.69 on the fixtures and 40 synthetic photos), flat images ~1.0 (searched fully).
PRESCREEN_AGREEMENT = 0.70


#: The SD v1 / SDXL marks: below this bit accuracy on eight bands of block rows (a quarter of
#: the image) the whole image is not decoded. Measured on 51 photos and synthetic pictures
#: (up to 1536 px), marked with imwatermark's layout: marked images read 0.71-1.0 on the bands
#: (the scheme fails in smooth chroma), unmarked ones 0.36-0.65; "found" needs 0.85 / 0.875 on
#: the whole image.
SD_PRESCREEN_ACCURACY = 0.62
#: Below this many blocks (a 512 x 512 image) the whole-image decode is as cheap as the bands.
#: Checked at 512 px too: 476 crops, marked and not, same decisions as the whole-image decode.
SD_PRESCREEN_MIN_BLOCKS = 4096


def _sd_bands(nbr: int, nbc: int) -> list[tuple[int, int]] | None:
    """Eight bands of block rows spread down the image, a quarter of it in all."""
    if nbr * nbc < SD_PRESCREEN_MIN_BLOCKS or nbr < 32:
        return None
    h = max(1, nbr // 32)
    return [(nbr * k // 8, min(nbr * k // 8 + h, nbr)) for k in range(8)]


def detect_watermarks(rgb: np.ndarray, *, prescreen: bool = True) -> list:
    """The results of ``detectors.watermarks.detect_all`` (fakestudio's mark, SD v1, SDXL),
    computed 2-3x faster. Returns ``WatermarkResult`` objects.

    1. ``detect_all`` builds each decoder's U-channel LL band from the RGB pixels (~3.5 ms at
       512 px, five times); here the 2x2 channel sums are computed once and each full-grid band
       is derived from them with the very same arithmetic, so the scores are bit-identical.
    2. fakestudio's decoder then searches the half-size grid (copies downscaled by 0.5), which
       has 4x the blocks. With ``prescreen`` it first decodes two bands of block rows at the
       top (``PRESCREEN_BLOCKS_PER_BIT`` blocks per bit each) and searches the whole grid only
       when they agree (>= ``PRESCREEN_AGREEMENT`` of the 64 bits, or matching check bits):
       a mark repeats the same 64 bits everywhere, an unmarked picture does not. The attempt
       records ``"prescreen"`` either way.
    3. On images of 512 x 512 pixels and more the Stable Diffusion v1 / SDXL detectors first
       decode eight bands of block rows (a quarter of the image); when their bit accuracy there
       is below ``SD_PRESCREEN_ACCURACY`` (0.62, against thresholds of 0.85 / 0.875) that
       estimate is reported (``details["estimated"]``) instead of decoding the whole image.

    ``prescreen=False`` gives exactly ``detect_all``'s results (a test checks both; others
    check the pre-screens keep every half-size find and every SD / SDXL mark).

    Builds on the codecs' public block-level API (``dwt.ll_band``, ``to_blocks``,
    ``top_singular``, ``votes``, ...; ``ours.grids_for``, ``stable_diffusion.make_result``).
    """
    return _detect_shared(rgb, prescreen)


def _prescreen(a: np.ndarray, band_s0) -> dict | None:
    """Decode two bands of the half-size grid; None when the grid is too small to bother."""
    from detectors.watermarks import dwt, ours

    nbc = (a.shape[1] // 2 * 2) // dwt.BLOCK  # blocks per row of the half-size grid
    if nbc == 0:
        return None
    rows = -(-ours.NBITS * PRESCREEN_BLOCKS_PER_BIT // nbc) * dwt.BLOCK
    if 4 * rows > a.shape[0]:  # the two bands would be half the grid or more
        return None
    first = band_s0(dwt.ll_band(a[:rows], False, 128.0, 2))
    second = band_s0(dwt.ll_band(a[rows : 2 * rows], False, 128.0, 2))
    # block k carries bit k % 64: the second band starts at block (rows / 4) * nbc
    shift = (rows // 4 * nbc) % ours.NBITS
    agreement, check_ok = 0.0, False
    for scale in ours.SCALES:
        one = ours.scores_at(first, scale)
        two = np.roll(ours.scores_at(second, scale), shift)
        same = float(np.mean(dwt.bits_from_scores(one) == dwt.bits_from_scores(two)))
        agreement = max(agreement, same)
        check_ok |= ours.read_attempt((one + two) / 2.0, 2, scale)["check_ok"]
    return {
        "rows": 2 * rows,
        "agreement": round(agreement, 4),
        "check_ok": bool(check_ok),
        "search": bool(agreement >= PRESCREEN_AGREEMENT or check_ok),
    }


def _detect_shared(rgb: np.ndarray, prescreen: bool) -> list:
    from detectors.watermarks import detect_all, dwt, ours
    from detectors.watermarks import stable_diffusion as sd

    a = np.asarray(rgb)
    try:
        a = dwt.as_rgb(a)
    except ValueError:
        return detect_all(rgb)  # too small or odd: its per-scheme error results
    if a.dtype != np.uint8:
        return detect_all(rgb)
    rows, cols = a.shape[0] // 4 * 4, a.shape[1] // 4 * 4
    x = a[:rows, :cols]
    h = x[0::2].astype(np.uint16)
    h += x[1::2]
    # 2x2 channel sums as dwt.ll_band computes them, as exact float64 planes
    planes = np.moveaxis(h[:, 0::2] + h[:, 1::2], 2, 0).astype(np.float64)

    def weighted(swap_rb: bool) -> np.ndarray:
        w = dwt.u_weights(swap_rb)
        ll = planes[0] * (0.5 * w[0])
        ll += planes[1] * (0.5 * w[1])
        ll += planes[2] * (0.5 * w[2])
        return ll

    def ll_band(base: np.ndarray, u_offset: float) -> np.ndarray:
        return base + 2.0 * u_offset  # the offset is added last, as in dwt.ll_band

    def band_s0(ll: np.ndarray) -> np.ndarray:
        blocks, _, _ = dwt.to_blocks(ll)
        return dwt.top_singular(blocks, vectors=False)

    def dct_score(ll: np.ndarray, bits: np.ndarray) -> tuple[float, float]:
        blocks, _, _ = dwt.to_blocks(ll)
        _, val = dwt.max_coefficient(blocks)
        scores = dwt.mean_per_bit(dwt.votes(np.abs(val), dwt.DEFAULT_SCALE, True), bits.size)
        acc = float(np.mean(dwt.bits_from_scores(scores) == bits))
        return acc, float(np.mean(np.abs(2.0 * scores - 1.0)))

    u_bgr = weighted(False)
    ll_u8 = ll_band(u_bgr, 128.0)  # fakestudio's mark and SD v1 share this band

    # fakestudio's mark: ours.decode's decision, grid by grid, strength by strength
    grids = ours.grids_for(a.shape)
    tried = len(grids) * len(ours.SCALES)
    attempts: list[dict] = []
    for up in grids:
        screen = None
        if up == 2 and prescreen:
            screen = _prescreen(a, band_s0)
            if screen is not None and not screen["search"]:
                attempts.append({"grid": "half-size", "skipped": True, "prescreen": screen})
                continue
        s0 = band_s0(ll_u8 if up == 1 else dwt.ll_band(a, False, 128.0, 2))
        for scale in ours.SCALES:
            attempt = ours.read_attempt(ours.scores_at(s0, scale), up, scale)
            if screen is not None:
                attempt["prescreen"] = screen
            attempts.append(attempt)
            if attempt["found"]:
                break
        if attempts[-1].get("found"):
            break
    mine = ours.result_from_attempts(attempts, tried)

    # Stable Diffusion marks (dwtDct, known messages): with the pre-screen, a band estimate
    # far below the threshold is reported as is, otherwise the whole image is decoded.
    nbr, nbc = ll_u8.shape[0] // dwt.BLOCK, ll_u8.shape[1] // dwt.BLOCK
    bands = _sd_bands(nbr, nbc) if prescreen else None

    def weighted_rows(swap_rb: bool, r0: int, r1: int) -> np.ndarray:
        w = dwt.u_weights(swap_rb)  # weighted()'s arithmetic on a range of rows
        p = planes[:, r0:r1]
        ll = p[0] * (0.5 * w[0])
        ll += p[1] * (0.5 * w[1])
        ll += p[2] * (0.5 * w[2])
        return ll

    def band_score(ll_rows, bits: np.ndarray):
        votes, index = [], []
        for b0, b1 in bands:
            blocks, _, _ = dwt.to_blocks(ll_rows(b0 * dwt.BLOCK, b1 * dwt.BLOCK))
            _, val = dwt.max_coefficient(blocks)
            votes.append(dwt.votes(np.abs(val), dwt.DEFAULT_SCALE, True))
            # block k of the whole grid carries bit k % nbits
            index.append((b0 * nbc + np.arange(blocks.shape[2])) % bits.size)
        v, i = np.concatenate(votes), np.concatenate(index)
        counts = np.bincount(i, minlength=bits.size)
        if counts.min() < 2:
            return None
        scores = np.bincount(i, weights=v, minlength=bits.size) / counts
        acc = float(np.mean(dwt.bits_from_scores(scores) == bits))
        return acc, float(np.mean(np.abs(2.0 * scores - 1.0))), int(v.size)

    def sd_score(full_ll, ll_rows, bits: np.ndarray):
        """(accuracy, margin, None) from the whole image, or (..., blocks) from the bands."""
        if bands:
            est = band_score(ll_rows, bits)
            if est is not None and est[0] < SD_PRESCREEN_ACCURACY:
                return est
        return (*dct_score(full_ll(), bits), None)

    def estimated(blocks) -> dict:
        return {
            "bands": len(bands),
            "blocks": blocks,
            "note": "accuracy estimated on bands of block rows: no sign of the mark there",
        }

    acc, margin, est = sd_score(lambda: ll_u8, lambda r0, r1: ll_u8[r0:r1], sd.SD_V1_BITS)
    details = {"nbits": 136}
    if est:
        details["estimated"] = estimated(est)
    v1 = sd.make_result("sd-v1", sd.SD_V1_MESSAGE.hex(), sd.SD_V1_THRESHOLD, acc, margin, details)

    bgr = sd_score(
        lambda: ll_band(u_bgr, 0.5), lambda r0, r1: ll_band(u_bgr[r0:r1], 0.5), sd.SDXL_BITS
    )
    rgb_as_bgr = sd_score(
        lambda: ll_band(weighted(True), 0.5),
        lambda r0, r1: ll_band(weighted_rows(True, r0, r1), 0.5),
        sd.SDXL_BITS,
    )
    order, (acc, margin, _) = max(
        (("bgr", bgr), ("rgb-as-bgr", rgb_as_bgr)), key=lambda t: (t[1][0], t[1][1])
    )
    details = {
        "nbits": 48,
        "channel_order": order,
        "accuracy_bgr": bgr[0],
        "accuracy_rgb_as_bgr": rgb_as_bgr[0],
    }
    if bgr[2] or rgb_as_bgr[2]:
        details["estimated"] = estimated(max(bgr[2] or 0, rgb_as_bgr[2] or 0))
        details["estimated"]["orders"] = [
            o for o, r in (("bgr", bgr), ("rgb-as-bgr", rgb_as_bgr)) if r[2]
        ]
    xl = sd.make_result("sdxl", f"{sd.SDXL_MESSAGE:012x}", sd.SDXL_THRESHOLD, acc, margin, details)
    from detectors.watermarks import durable

    return [mine, v1, xl, durable.decode_unless(mine, a)]
