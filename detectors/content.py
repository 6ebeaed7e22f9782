"""Content binding: is this picture the output a label points to?

A watermark is public: anyone can read its identifier and write it into another picture (a
copy attack), so an identifier that leads to a record (a ledger row, a registry manifest) says
nothing until the picture itself is compared with what was recorded. At labelling time
``describe`` keeps a compact description of the output's content, signed into its manifest
(assertion ``LABEL``) and kept in the ledger; at verify time ``check`` compares a copy with it:

* **local features** (OpenCV's ORB, on the luma scaled to ``SIDE`` px on its long side):
  ``POINTS`` keypoints chosen round-robin over a ``GRID`` x ``GRID`` grid (strongest first in
  each cell), so a crop keeps a share of them; each a position and a 256-bit descriptor. A copy
  matches when at least ``MATCH_INLIERS`` of them map onto the copy's own keypoints under one
  similarity transform (RANSAC: scale, rotation, shift; the mirror image is tried too). That
  survives every edit of the durable mark's list: crops, 0.5-1.3x, rotation, flips,
  brightness/contrast/gamma, JPEG 50, screenshots, and a VAE round trip.
* **a 32 x 32 luma thumbnail** of the whole picture, for pictures with too few corners for
  features (a smooth gradient): their copies are compared by correlation.

Outcomes (``ContentCheck.outcome``): ``match``; ``mismatch`` only on affirmative evidence (the
copy has plenty of keypoints of its own, at most ``MISMATCH_INLIERS`` agree, and the thumbnails
do not correlate either); otherwise ``inconclusive`` (a tiny or featureless copy, a picture
that is part of the output and part something else). Measured on the 28 benchmark pictures
(bench-images and fixtures at 512 px, both marks embedded) under the 27 edits of
``bench/edits.py``: every true copy of a textured picture kept at least 18 inliers (median
38 for a random 60% window, 60-110 otherwise), while 2,268 pairs of different pictures under
the same edits had at most 5 (mean 0.3). ``bench/attacks.py`` measures the copy attacks.

Look-up by content (``index_keys``, ``query_keys``): the first ``INDEX_POINTS`` descriptors
(the strongest, spread over the grid) are hashed by bit sampling (``KEY_BITS`` bits in each of
``KEY_TABLES`` tables, after Indyk-Motwani LSH for Hamming space). A stored record is a
candidate when its keys meet the copy's keys at ``MIN_VOTES`` or more of its points; candidates
are then confirmed by ``check``. See docs/attacks.md for recall and cost.

numpy and OpenCV only (imported on first use); never torch.
"""

from __future__ import annotations

import base64
import binascii
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

ALG = "org.fakestudio.content.orb.v1"  # the descriptor's "alg"
LABEL = "org.fakestudio.content"  # the manifest assertion that carries it
SIDE = 512  # the long side the luma is scaled to before describing or checking
POINTS = 160  # keypoints kept per output
GRID = 4  # cells per side over which they are spread
THUMB = 32  # side of the luma thumbnail
DETECT = 3000  # keypoints detected before the spread selection
QUERY_POINTS = 800  # keypoints a copy is described by for a check
# for a look-up: 400 measured 95.4% recall (800: 96.0%), 42% fewer postings, ~15% less time
LOOKUP_POINTS = 800
FAST_THRESHOLD = 7
EDGE = 15  # ORB's border (and patch margin), pixels at SIDE
MAX_HAMMING = 64  # descriptor pairs further apart are not matched
RATIO = 0.85  # Lowe's ratio test
RANSAC_PX = 4.0  # reprojection error of an inlier, pixels at SIDE
SCALE_RANGE = (0.25, 4.0)  # plausible scale of a copy relative to the output
MATCH_INLIERS = 12
MISMATCH_INLIERS = 8
MIN_RECORD_POINTS = 40  # fewer: the record is "featureless", the thumbnail decides
MIN_QUERY_POINTS = 200  # a copy with fewer keypoints cannot be called a mismatch by features
THUMB_MATCH = 0.85  # thumbnail correlation of a copy of a featureless output
THUMB_MISMATCH = 0.5  # below this the thumbnails do not agree
THUMB_STRICT = 0.95  # a copy with little detail, its thumbnail alone, at the same aspect ratio
LOW_DETAIL_INLIERS = 6  # inliers that confirm a copy with little detail whose thumbnail agrees
ASPECT_TOLERANCE = 0.1  # |log| of the ratio of aspect ratios still "the same framing"
# a copy showing less than half of the output and fewer than 256^2 of its pixels (a small crop of
# a small output: a 60% window of a 256 px world output kept 2-3 inliers) is never a keypoint
# mismatch; a 60% window of a 512 px picture keeps 18 or more
MIN_COVER = 0.5
MIN_COVER_PIXELS = 256 * 256
INDEX_POINTS = 64
KEY_BITS = 32
KEY_TABLES = 8
MIN_VOTES = 2
_KEY_SEED = 20261208

OUTCOMES = ("match", "mismatch", "inconclusive")


class DescriptorError(ValueError):
    """A stored descriptor that cannot be read (wrong alg, bad base64, wrong sizes)."""


@dataclass(frozen=True)
class ContentDescriptor:
    """What is kept of an output's content: ``points`` (N x 2, float32, pixels at ``SIDE``),
    ``descriptors`` (N x 32 uint8, ORB), ``thumb`` (``THUMB`` x ``THUMB`` uint8 luma) and the
    output's size."""

    width: int
    height: int
    points: np.ndarray
    descriptors: np.ndarray
    thumb: np.ndarray

    @property
    def featureless(self) -> bool:
        return len(self.points) < MIN_RECORD_POINTS

    def to_json(self) -> dict[str, Any]:
        """The JSON form (~9 KB): what the manifest assertion and the ledger row hold."""
        pts = np.clip(np.rint(self.points * 8.0), 0, 65535).astype("<u2")
        return {
            "alg": ALG,
            # scalars: c2pa-rs stores a JSON array of small integers as CBOR bytes
            "width": int(self.width),
            "height": int(self.height),
            "side": SIDE,
            "points": _b64(pts.tobytes()),
            "orb": _b64(np.ascontiguousarray(self.descriptors, np.uint8).tobytes()),
            "thumb": _b64(np.ascontiguousarray(self.thumb, np.uint8).tobytes()),
        }

    @classmethod
    def from_json(cls, data: Any) -> ContentDescriptor:
        if not isinstance(data, dict) or data.get("alg") != ALG:
            raise DescriptorError(f"not a {ALG} content descriptor")
        try:
            w, h = int(data["width"]), int(data["height"])
            pts = np.frombuffer(_unb64(data["points"]), "<u2").astype(np.float32) / 8.0
            orb = np.frombuffer(_unb64(data["orb"]), np.uint8)
            thumb = np.frombuffer(_unb64(data["thumb"]), np.uint8)
        except (KeyError, TypeError, ValueError, binascii.Error) as e:
            raise DescriptorError(f"unreadable content descriptor ({e})") from None
        n = len(pts) // 2
        if len(pts) % 2 or len(orb) != 32 * n or thumb.size != THUMB * THUMB or n > 4 * POINTS:
            raise DescriptorError("content descriptor has inconsistent sizes")
        if not (0 < w <= 1 << 20 and 0 < h <= 1 << 20):
            raise DescriptorError("content descriptor has an impossible size")
        return cls(w, h, pts.reshape(n, 2), orb.reshape(n, 32), thumb.reshape(THUMB, THUMB))


@dataclass
class ContentCheck:
    """The comparison of a copy with a recorded output."""

    outcome: str  # one of OUTCOMES
    method: str  # "features" or "thumbnail"
    inliers: int = 0  # record keypoints mapped onto the copy by one similarity transform
    points: int = 0  # record keypoints
    query_points: int = 0  # the copy's keypoints
    thumb_correlation: float | None = None
    transform: dict | None = None  # scale, angle_deg, mirrored (copy relative to the output)
    reason: str = ""
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "method": self.method,
            "inliers": self.inliers,
            "points": self.points,
            "query_points": self.query_points,
            "thumb_correlation": self.thumb_correlation,
            "transform": self.transform,
            "reason": self.reason,
        }


# --- describing ---------------------------------------------------------------------------------


def describe(rgb: np.ndarray) -> ContentDescriptor:
    """The content descriptor of an output's final pixels (RGB or grey, uint8)."""
    import cv2

    grey = _luma(rgb)
    h, w = grey.shape
    g = _scaled(grey)
    kps, des = _detector().detectAndCompute(g, None)
    chosen = _spread(kps, g.shape) if des is not None else []
    if chosen:
        pts = np.array([kps[i].pt for i in chosen], np.float32)
        des = des[chosen]
    else:
        pts, des = np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8)
    thumb = cv2.resize(grey, (THUMB, THUMB), interpolation=cv2.INTER_AREA)
    return ContentDescriptor(w, h, pts, des, thumb)


def _spread(kps, shape) -> list[int]:
    """Up to POINTS keypoint indices, round-robin over the grid cells, strongest first."""
    h, w = shape
    cells: dict[tuple[int, int], list[int]] = {}
    for i, k in enumerate(kps):
        x, y = k.pt
        cells.setdefault(
            (min(GRID - 1, int(y * GRID / h)), min(GRID - 1, int(x * GRID / w))), []
        ).append(i)
    queues = [sorted(v, key=lambda i: -kps[i].response) for _, v in sorted(cells.items())]
    chosen: list[int] = []
    depth = 0
    while len(chosen) < POINTS and any(len(q) > depth for q in queues):
        for q in queues:
            if len(q) > depth and len(chosen) < POINTS:
                chosen.append(q[depth])
        depth += 1
    return chosen


# --- checking -----------------------------------------------------------------------------------


def check(
    rgb: np.ndarray,
    desc: ContentDescriptor,
    mirrored: bool | None = None,
    scale: float | None = None,
) -> ContentCheck:
    """Compare a picture with a recorded output. ``mirrored``: a hint from the durable mark's
    decoder (the copy is a mirror image); both orientations are tried either way. ``scale``:
    the copy's pixels per output pixel as the durable mark's lattice gives it; a copy that would
    then show less than ``MIN_COVER`` of the output (a small crop, which may share few keypoints
    with the whole) is never called a mismatch by its keypoints."""
    grey = _luma(rgb)
    corr = _thumb_correlation(grey, desc.thumb)
    if desc.featureless:
        return _by_thumbnail(desc, corr)
    g = _scaled(grey)
    best: tuple[int, Any, bool] = (0, None, False)
    query_points = 0
    views = _Views(g)
    for flip in (True, False) if mirrored else (False, True):
        kps, qd = views.features(flip)
        query_points = max(query_points, len(kps))
        inliers, m = _ransac(desc, kps, qd)
        if inliers > best[0]:
            best = (inliers, m, flip)
        if inliers >= MATCH_INLIERS:
            break
    inliers, m, flip = best
    res = ContentCheck(
        "inconclusive",
        "features",
        inliers=inliers,
        points=len(desc.points),
        query_points=query_points,
        thumb_correlation=corr,
        transform=_transform(m, flip, max(grey.shape) / max(desc.width, desc.height))
        if m is not None
        else None,
    )
    if inliers >= MATCH_INLIERS:
        res.outcome = "match"
        res.reason = f"{inliers} of the output's {len(desc.points)} keypoints map onto this picture"
    elif query_points >= MIN_QUERY_POINTS:
        cover = _cover(grey.shape, desc, scale)
        if cover is not None and cover[0] < MIN_COVER and cover[1] < MIN_COVER_PIXELS:
            res.reason = (
                f"{inliers} of the output's {len(desc.points)} keypoints map onto this picture, "
                f"which would show {100 * cover[0]:.0f}% of the output ({cover[1]:,.0f} of its "
                "pixels) at its watermark's scale: too small a part to rule it out"
            )
        elif inliers <= MISMATCH_INLIERS and (corr is None or corr < THUMB_MATCH):
            res.outcome = "mismatch"
            res.reason = (
                f"only {inliers} of the output's {len(desc.points)} keypoints map onto this "
                f"picture, which has {query_points} of its own (a copy of the output keeps "
                f"{MATCH_INLIERS} or more)"
            )
        else:
            res.reason = (
                f"{inliers} of the output's {len(desc.points)} keypoints map onto this picture: "
                "too few to confirm it, too many to rule it out"
            )
    elif (
        corr is not None
        and corr >= THUMB_MATCH
        and (inliers >= LOW_DETAIL_INLIERS or (corr >= THUMB_STRICT and _same_aspect(grey, desc)))
    ):
        # a copy with little detail (small, blurred, smooth): its few keypoints and its layout
        res.outcome = "match"
        res.method = "features+thumbnail" if inliers >= LOW_DETAIL_INLIERS else "thumbnail"
        res.reason = (
            f"this picture has little detail ({query_points} keypoints), {inliers} of them map "
            f"onto the output's, and its thumbnail correlates with the output's ({_fmt(corr)})"
        )
    elif corr is not None and corr < THUMB_MISMATCH:
        res.outcome = "mismatch"
        res.reason = (
            f"this picture has too little detail to compare keypoints ({query_points}), and its "
            f"thumbnail does not correlate with the output's ({_fmt(corr)})"
        )
    else:
        res.reason = (
            f"this picture has too little detail to compare keypoints ({query_points}); "
            f"thumbnail correlation {_fmt(corr)}"
        )
    return res


def mark_scale(mark_details: dict | None, desc: ContentDescriptor) -> float | None:
    """A copy's pixels per output pixel from the durable mark's lattice as the decoder read it
    (its period in the copy over the period the labeller used for the output's size)."""
    from detectors.watermarks import durable

    period = (mark_details or {}).get("period_px")
    if not period:
        return None
    return float(period) / (durable.TILE * durable.unit(desc.height, desc.width))


def _cover(shape, desc: ContentDescriptor, scale: float | None) -> tuple[float, float] | None:
    """(share of the output's area, output pixels) a copy of ``shape`` shows at ``scale`` (copy
    pixels per output pixel); None without a scale."""
    if not scale or scale <= 0:
        return None
    h, w = shape
    px = min((w / scale) * (h / scale), desc.width * desc.height)
    return px / (desc.width * desc.height), px


def _same_aspect(grey: np.ndarray, desc: ContentDescriptor) -> bool:
    h, w = grey.shape
    return abs(np.log((w / h) / (desc.width / desc.height))) <= ASPECT_TOLERANCE


def _by_thumbnail(desc: ContentDescriptor, corr: float | None) -> ContentCheck:
    res = ContentCheck("inconclusive", "thumbnail", points=len(desc.points), thumb_correlation=corr)
    if corr is None:
        res.reason = "the picture is too flat to compare"
    elif corr >= THUMB_MATCH:
        res.outcome = "match"
        res.reason = f"the thumbnails correlate ({_fmt(corr)}; the output has few keypoints)"
    elif corr < THUMB_MISMATCH:
        res.outcome = "mismatch"
        res.reason = f"the thumbnails do not correlate ({_fmt(corr)})"
    else:
        res.reason = f"the thumbnails correlate weakly ({_fmt(corr)})"
    return res


def _ransac(desc: ContentDescriptor, kps, qd) -> tuple[int, np.ndarray | None]:
    import cv2

    if qd is None or len(kps) < 4 or len(desc.descriptors) < 4:
        return 0, None
    pairs = _matcher().knnMatch(desc.descriptors, qd, k=2)
    good = [
        p[0]
        for p in pairs
        if len(p) == 2 and p[0].distance < RATIO * p[1].distance and p[0].distance < MAX_HAMMING
    ]
    if len(good) < 4:
        return 0, None
    src = desc.points[[g.queryIdx for g in good]]
    dst = np.array([kps[g.trainIdx].pt for g in good], np.float32)
    m, inl = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX, maxIters=2000
    )
    if m is None or inl is None:
        return 0, None
    scale = float(np.hypot(m[0, 0], m[1, 0]))
    if not SCALE_RANGE[0] <= scale <= SCALE_RANGE[1]:
        return 0, None
    return int(inl.sum()), m


def _transform(m: np.ndarray, flip: bool, sides: float) -> dict:
    """The copy relative to the output: its scale (copy pixels per output pixel), rotation and
    mirror. ``m`` maps the output's keypoints onto the copy's, both scaled to SIDE; ``sides``
    is the copy's long side over the output's."""
    return {
        "scale": round(float(np.hypot(m[0, 0], m[1, 0])) * sides, 3),
        "angle_deg": round(float(np.degrees(np.arctan2(m[1, 0], m[0, 0]))), 2),
        "mirrored": bool(flip),
    }


def _thumb_correlation(grey: np.ndarray, thumb: np.ndarray) -> float | None:
    """Pearson correlation of the two thumbnails, the better of as-is and mirrored; None when
    either is flat."""
    import cv2

    q = cv2.resize(grey, (THUMB, THUMB), interpolation=cv2.INTER_AREA).astype(np.float64)
    t = thumb.astype(np.float64)
    t = t - t.mean()
    best = None
    for view in (q, q[:, ::-1]):
        v = view - view.mean()
        den = float(np.sqrt((v * v).sum() * (t * t).sum()))
        if den < 1e-6 * THUMB * THUMB:
            continue
        c = float((v * t).sum() / den)
        best = c if best is None else max(best, c)
    return None if best is None else round(best, 4)


# --- look-up keys -------------------------------------------------------------------------------


def index_keys(desc: ContentDescriptor) -> list[tuple[int, int]]:
    """(point number, key) pairs under which a record is filed: INDEX_POINTS x KEY_TABLES keys,
    each a signed 64-bit integer (table number in the high bits)."""
    des = desc.descriptors[:INDEX_POINTS]
    keys = _keys(des)
    return [(i, int(k)) for i in range(len(des)) for k in keys[i]]


def query_keys(rgb: np.ndarray) -> list[int]:
    """The distinct keys of a copy's keypoints, as is and mirrored."""
    views = _Views(_scaled(_luma(rgb)), LOOKUP_POINTS)
    parts = [
        _keys(qd).ravel() for flip in (False, True) if (qd := views.features(flip)[1]) is not None
    ]
    return np.unique(np.concatenate(parts)).tolist() if parts else []


class _Views:
    """A copy's keypoints as is and mirrored. The mirror image's are the same corners, mirrored
    (FAST and the Harris score are symmetric): detected once, only their descriptors are
    computed again on the mirrored picture (a quarter of the cost of a second detection)."""

    def __init__(self, g: np.ndarray, n: int = QUERY_POINTS):
        self.g = g
        self.n = n
        self._plain = None

    def features(self, flip: bool):
        import cv2

        if self._plain is None:
            self._plain = _query_detector(self.n).detectAndCompute(self.g, None)
        kps, des = self._plain
        if not flip:
            return kps, des
        w = self.g.shape[1]
        mirrored = [
            cv2.KeyPoint(
                w - 1 - k.pt[0],
                k.pt[1],
                k.size,
                (180.0 - k.angle) % 360.0,
                k.response,
                k.octave,
                k.class_id,
            )
            for k in kps
        ]
        if not mirrored:
            return [], None
        return _query_detector(self.n).compute(np.ascontiguousarray(self.g[:, ::-1]), mirrored)


def _keys(des: np.ndarray) -> np.ndarray:
    """n x KEY_TABLES keys: KEY_BITS sampled bits of each descriptor, per table."""
    if len(des) == 0:
        return np.zeros((0, KEY_TABLES), np.int64)
    bits = np.unpackbits(np.asarray(des, np.uint8), axis=1).astype(np.int64)
    positions, weights = _key_layout()
    keys = np.stack([bits[:, p] @ weights for p in positions], axis=1)
    tables = np.arange(KEY_TABLES, dtype=np.int64) << KEY_BITS
    return keys + tables


@lru_cache(maxsize=1)
def _key_layout() -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(_KEY_SEED)
    positions = [rng.choice(256, KEY_BITS, replace=False) for _ in range(KEY_TABLES)]
    weights = (1 << np.arange(KEY_BITS - 1, -1, -1, dtype=np.int64)).astype(np.int64)
    return positions, weights


# --- internals ----------------------------------------------------------------------------------


def _luma(rgb: np.ndarray) -> np.ndarray:
    import cv2

    a = np.asarray(rgb)
    if a.dtype != np.uint8:
        a = np.clip(np.rint(a.astype(np.float64)), 0, 255).astype(np.uint8)
    if a.ndim == 2:
        return np.ascontiguousarray(a)
    if a.ndim != 3 or a.shape[2] < 3:
        raise ValueError(f"expected an image array, got shape {a.shape}")
    return cv2.cvtColor(np.ascontiguousarray(a[..., :3]), cv2.COLOR_RGB2GRAY)


def _scaled(grey: np.ndarray) -> np.ndarray:
    """The luma with its long side at SIDE (area-averaged down, linear up)."""
    import cv2

    h, w = grey.shape
    f = SIDE / max(h, w)
    if abs(f - 1.0) < 1e-3:
        return grey
    size = (max(1, round(w * f)), max(1, round(h * f)))
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)


_local = threading.local()  # OpenCV's detectors and matchers are not shared across threads


def _detector():
    return _cv_object("detector", DETECT)


def _query_detector(n: int = QUERY_POINTS):
    return _cv_object(f"query{n}", n)


def _matcher():
    return _cv_object("matcher", 0)


def _cv_object(name: str, n: int):
    obj = getattr(_local, name, None)
    if obj is None:
        import cv2

        if name == "matcher":
            obj = cv2.BFMatcher(cv2.NORM_HAMMING)
        else:
            obj = cv2.ORB_create(
                nfeatures=n, edgeThreshold=EDGE, patchSize=31, fastThreshold=FAST_THRESHOLD
            )
        setattr(_local, name, obj)
    return obj


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str) or len(text) > 64 * 1024:
        raise ValueError("not a base64 string of a sensible length")
    return base64.b64decode(text, validate=True)


def _fmt(corr: float | None) -> str:
    return "flat" if corr is None else f"r = {corr:.2f}"


def from_manifest(manifest: dict | None) -> ContentDescriptor | None:
    """The content descriptor signed into a manifest (the manifest definition a ledger row keeps,
    or a C2PA reader's active manifest), or None when it has none. A descriptor that cannot be
    read raises ``DescriptorError``."""
    for a in (manifest or {}).get("assertions") or []:
        if not isinstance(a, dict):
            continue
        label = str(a.get("label", "")).split("__")[0]
        if label == LABEL or label.startswith(LABEL + ".v"):
            return ContentDescriptor.from_json(a.get("data"))
    return None


def assertion(desc: ContentDescriptor) -> dict:
    """The manifest assertion that carries a descriptor."""
    return {"label": LABEL, "data": desc.to_json()}
