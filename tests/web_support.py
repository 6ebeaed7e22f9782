"""Helpers for the web tests: a real `fakestudio web` app on 127.0.0.1 (uvicorn in a thread),
headless Chromium driven by Playwright for Python (Debian's /usr/bin/chromium, never a
downloaded browser), labelled test pictures, and console-error collection.

Imported by tests/test_web*.py and bench/web.py; kept out of conftest.py so that other tests
neither import Playwright nor start servers.
"""

from __future__ import annotations

import io
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def playwright_available() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return CHROMIUM is not None


def forget_ledger_connections() -> None:
    """detectors.verify keeps one ledger connection per process, usable only by the thread
    that opened it: the web server's verifier thread here, the main thread in other tests.
    Each side starts afresh so that neither reads "ledger not readable" after the other."""
    from detectors import verify

    with verify._ledger_lock:
        verify._ledgers.clear()


@contextmanager
def web_server(**cfg):
    """A running web app (fakestudio.web.WebConfig fields as keywords); yields (url, config)."""
    from fakestudio.serving import running
    from fakestudio.web import WebConfig, create_app

    config = WebConfig(**cfg)
    forget_ledger_connections()
    try:
        with running(create_app(config), timeout_graceful_shutdown=1) as url:
            config.port = int(url.rsplit(":", 1)[1])
            yield url, config
    finally:
        forget_ledger_connections()


@contextmanager
def chromium():
    """One headless Chromium for a whole test session (it costs ~1 s of CPU to start)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Console:
    """Console errors and uncaught exceptions of a page (a test asserts there are none)."""

    def __init__(self, page):
        self.errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))


def shots_dir(default: Path) -> Path:
    """Where page screenshots go: $FAKESTUDIO_WEB_SHOTS (docs/ uses it), else `default`."""
    d = Path(os.environ.get("FAKESTUDIO_WEB_SHOTS") or default)
    d.mkdir(parents=True, exist_ok=True)
    return d


def photo_like(w: int, h: int, seed: int):
    """A smooth, textured picture (enough detail for the watermarks; not a flat test card)."""
    import numpy as np
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, h // 48), max(2, w // 48), 3), dtype=np.uint8)
    base = Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC)
    noise = rng.normal(0, 12, (h, w, 3))
    arr = np.clip(np.asarray(base, dtype=float) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(arr).filter(ImageFilter.SMOOTH)


def labelled_png(folder: Path, seed: int = 5, size=(512, 384), name: str | None = None) -> Path:
    """A labelled output (both watermarks, XMP, signed manifest, a row in the ledger of
    $FAKESTUDIO_HOME) written as the CLI writes them."""
    from fakestudio.label.labeller import LabelOptions, write_labelled
    from fakestudio.record import GenerationRecord

    w, h = size
    rec = GenerationRecord(
        prompt="a photo of zq7person",
        negative_prompt="",
        seed=seed,
        steps=2,
        guidance=7.0,
        width=w,
        height=h,
        scheduler="euler",
        base_model="tiny",
        base_sha256="ab" * 32,
    )
    folder.mkdir(parents=True, exist_ok=True)
    written = write_labelled(
        photo_like(w, h, seed), rec, folder, name or f"fake{seed}", LabelOptions()
    )
    return Path(written.path)


def stripped_copy(src: Path, dst: Path, quality: int = 85, scale: float = 1.0) -> Path:
    """What an upload does: pixels only (no metadata, no manifest), re-encoded as JPEG."""
    from PIL import Image

    with Image.open(src) as im:
        rgb = im.convert("RGB")
    if scale != 1.0:
        rgb = rgb.resize((round(rgb.width * scale), round(rgb.height * scale)), Image.LANCZOS)
    buf = io.BytesIO()
    rgb.save(buf, "JPEG", quality=quality)
    dst.write_bytes(buf.getvalue())
    return dst


def plain_photo(path: Path, seed: int = 11, size=(512, 384)) -> Path:
    """An unlabelled picture (no provenance at all)."""
    photo_like(*size, seed).save(path, "PNG")
    return path


def demo_like_talk(folder: Path) -> Path:
    """A folder laid out as `fakestudio demo` leaves it (two people's prepared photos, the
    labelled encounter and its uploaded copy), made in a second instead of minutes."""
    for person, seed in (("ad4x", 41), ("b0bz", 42)):
        imgs = folder / "datasets" / person / "images"
        imgs.mkdir(parents=True, exist_ok=True)
        for i in range(3):
            plain_photo(imgs / f"{i:03d}.png", seed=seed * 10 + i, size=(256, 256))
        (folder / "datasets" / person / "dataset.json").write_text(
            '{"consent": {"statement": "drawn for the demo", "recorded": "2026-01-01"}}'
        )
    fake = labelled_png(folder / "images", seed=43, size=(512, 512), name="encounter-7")
    stripped_copy(fake, folder / "images" / "uploaded-re-encoded.jpg")
    return folder
