"""Where to crop: the largest face (OpenCV's haar cascade) or the centre, to an aspect bucket."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from fakestudio.dataset.schema import nearest_bucket

HAAR_CASCADE = "haarcascade_frontalface_default.xml"
DETECT_MAX_SIDE = 640  # faces are searched on a copy at most this large (faces >= 1/12 of it)


FaceBox = tuple[int, int, int, int]  # x, y, width, height in image pixels
FaceDetector = Callable[[object], list[FaceBox]]  # an RGB PIL image -> face boxes


def haar_face_detector() -> tuple[FaceDetector | None, str | None]:
    """OpenCV's bundled frontal-face haar cascade, or (None, why it is unavailable)."""
    try:
        import cv2
    except ImportError:
        return None, "OpenCV (cv2) is not installed"
    version = getattr(cv2, "__version__", "?")
    if not hasattr(cv2, "CascadeClassifier"):
        return None, (
            f"OpenCV {version} has no haar cascade detector (CascadeClassifier left OpenCV's "
            "main package in 5.0); install opencv-python<5 for face crops"
        )
    folder = getattr(getattr(cv2, "data", None), "haarcascades", "") or ""
    xml = Path(folder) / HAAR_CASCADE
    if not xml.is_file():
        return None, f"OpenCV {version} ships no {HAAR_CASCADE}"
    clf = cv2.CascadeClassifier(str(xml))
    if clf.empty():
        return None, f"OpenCV {version} could not load {HAAR_CASCADE}"

    def detect(im) -> list[FaceBox]:
        import numpy as np

        w, h = im.size
        scale = min(1.0, DETECT_MAX_SIDE / max(w, h))
        small = im if scale == 1.0 else im.resize((round(w * scale), round(h * scale)))
        gray = np.asarray(small.convert("L"))
        side = max(24, min(gray.shape) // 12)  # ignore faces under 1/12 of the short side
        # minNeighbors 10: real faces gather 20-60 overlapping hits, the false positives seen on
        # foliage, ribbons and smooth noise 4-9 (histogram equalisation only added more of those)
        found = clf.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=10, minSize=(side, side))
        return [tuple(round(float(v) / scale) for v in box) for box in found]

    return detect, None


def head_and_shoulders(face: FaceBox) -> tuple[float, float, float, float]:
    """The face box grown to head and shoulders: 2.6 face-widths wide, 3.2 face-heights tall
    (0.6 above the box for hair, 1.6 below it for neck and shoulders)."""
    fx, fy, fw, fh = (float(v) for v in face)
    return fx - 0.8 * fw, fy - 0.6 * fh, fx + 1.8 * fw, fy + 2.6 * fh


def choose_bucket(
    width: int, height: int, buckets: list[tuple[int, int]], face: FaceBox | None = None
) -> tuple[int, int]:
    """The bucket nearest the aspect of what will be kept: the head-and-shoulders box (clipped
    to the photo) when there is a face, else the whole photo."""
    if face is None:
        return nearest_bucket(width, height, buckets)
    x0, y0, x1, y1 = head_and_shoulders(face)
    x0, y0, x1, y1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height))
    if x1 - x0 < 1 or y1 - y0 < 1:
        return nearest_bucket(width, height, buckets)
    return nearest_bucket(x1 - x0, y1 - y0, buckets)


def crop_box(
    width: int, height: int, bucket: tuple[int, int], face: FaceBox | None = None
) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of the region with the bucket's aspect that becomes the image.

    Without a face: the largest centred region. With one: the head-and-shoulders box, grown to
    the bucket's aspect and to at least the bucket's pixel size, shrunk to fit the photo, then
    shifted inside the photo; the top of the head is kept when the region must shrink."""
    bw, bh = bucket
    aspect = bw / bh
    max_w = min(float(width), height * aspect)
    max_h = max_w / aspect
    if face is None:
        return _inside((width - max_w) / 2, (height - max_h) / 2, max_w, max_h, width, height)
    fx, fy, fw, fh = (float(v) for v in face)
    ex0, ey0, ex1, ey1 = head_and_shoulders(face)
    cw = max(ex1 - ex0, (ey1 - ey0) * aspect)
    cw = max(cw, float(bw))
    cw = min(cw, max_w)
    ch = cw / aspect
    left = (ex0 + ex1) / 2 - cw / 2
    top = (ey0 + ey1) / 2 - ch / 2
    top = min(top, fy - 0.3 * fh)  # never cut the top of the head to show more chest
    return _inside(left, top, cw, ch, width, height)


def _inside(left, top, w, h, width, height) -> tuple[float, float, float, float]:
    """The box shifted into the image, rounding errors clamped (Pillow refuses -1e-14)."""
    left = min(max(left, 0.0), max(width - w, 0.0))
    top = min(max(top, 0.0), max(height - h, 0.0))
    return left, top, min(left + w, float(width)), min(top + h, float(height))


def render(im, bucket: tuple[int, int], face: FaceBox | None):
    """Crop and Lanczos-resize an RGB image to the bucket; a fresh image with no metadata."""
    from PIL import Image

    box = crop_box(im.width, im.height, bucket, face)
    out = im.resize(bucket, Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
    out.info = {}
    return out


def png_bytes(im) -> bytes:
    """PNG with no EXIF, ICC profile or text chunks."""
    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=6)
    return buf.getvalue()
