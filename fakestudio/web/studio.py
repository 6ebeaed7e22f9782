"""The studio: generate on a base (with LoRAs, or the two-person encounter), watch the
progress, see every picture with its label, simulate an upload and verify the copy.

Pictures are made by `fakestudio.generate.generate` and `fakestudio.encounter.encounter`,
the same functions as the CLI, so each one leaves through the same labeller (both
watermarks, a signed manifest, XMP, a ledger row) into the studio folder; the page only
shows files from there. Jobs run one at a time on their own thread; torch is imported by the
first one.
"""

from __future__ import annotations

import io
import itertools
import math
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from fakestudio.errors import UserError
from fakestudio.web.events import Hub

OUTPUT_EXTS = {".png", ".jpg", ".jpeg", ".webp"}
MAX_N = 8
MAX_STEPS = 150
MAX_JOBS_KEPT = 50


class StudioError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Job:
    id: int
    kind: str  # "generate" or "encounter"
    state: str = "queued"  # queued, running, done, failed
    done: int = 0
    total: int = 0
    images: list[str] = field(default_factory=list)  # file names in the studio folder
    error: str | None = None
    started: float | None = None
    seconds: float | None = None

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "done": self.done,
            "total": self.total,
            "images": list(self.images),
            "error": self.error,
            "seconds": self.seconds,
        }


def default_out() -> Path:
    from detectors.paths import data_dir

    return data_dir() / "web-studio"


class Studio:
    def __init__(self, cfg, loop_getter):
        self.cfg = cfg
        self.out = Path(cfg.studio_out) if cfg.studio_out else default_out()
        self.jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="fakestudio-generate")
        self._lock = threading.Lock()
        self.hub = Hub(self.snapshot, min_interval=0.1)
        self._loop = loop_getter

    # --- what the page offers ------------------------------------------------------------

    def loras(self) -> list[dict]:
        folder = self.cfg.lora_dir
        if folder is None or not Path(folder).is_dir():
            return []
        return [
            {"name": p.stem, "file": p.name, "kb": round(p.stat().st_size / 1024)}
            for p in sorted(Path(folder).glob("*.safetensors"))
        ]

    def lora_path(self, name: str) -> Path:
        for item in self.loras():
            if item["name"] == name or item["file"] == name:
                return Path(self.cfg.lora_dir) / item["file"]
        raise StudioError(400, "unknown-lora", f"no LoRA named {name!r} in the LoRA folder")

    def gallery(self) -> list[str]:
        if not self.out.is_dir():
            return []
        files = [p for p in self.out.iterdir() if p.suffix.lower() in OUTPUT_EXTS and p.is_file()]
        files.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        return [p.name for p in files if not p.name.startswith(".")]

    def file(self, name: str) -> Path:
        """A studio output by its bare name (nothing outside the studio folder)."""
        if "/" in name or "\\" in name or name.startswith(".") or name not in self.gallery():
            raise StudioError(404, "not-found", "no such picture in the studio")
        return self.out / name

    def snapshot(self) -> dict:
        with self._lock:
            jobs = sorted(self.jobs.values(), key=lambda j: j.id, reverse=True)[:10]
            return {"jobs": [j.to_dict() for j in jobs]}

    # --- jobs ----------------------------------------------------------------------------

    def submit(self, form: dict) -> Job:
        run, kind, total = self._plan(form)
        job = Job(next(self._ids), kind, total=total)
        with self._lock:
            self.jobs[job.id] = job
            for old in sorted(self.jobs)[:-MAX_JOBS_KEPT]:
                self.jobs.pop(old, None)
        self._changed()
        self._worker.submit(self._run, job, run)
        return job

    def _changed(self) -> None:
        loop = self._loop()
        if loop is not None:
            self.hub.publish_threadsafe(loop)

    def _run(self, job: Job, run) -> None:
        job.state, job.started = "running", time.perf_counter()
        self._changed()
        before = set(self.gallery())
        last_scan = 0.0

        def on_step(done: int, total: int) -> None:
            nonlocal last_scan
            job.done, job.total = done, total
            now = time.perf_counter()
            if now - last_scan > 0.25:  # pictures written so far (each renamed into place)
                last_scan = now
                job.images = [n for n in self.gallery() if n not in before][::-1]
            self._changed()

        try:
            written = run(on_step)
            job.images = [Path(w.path).name for w in written]
            job.done = job.total
            job.state = "done"
        except UserError as e:
            job.state, job.error = "failed", str(e)
        except Exception as e:  # noqa: BLE001 - a failed job is reported, the server goes on
            job.state, job.error = "failed", f"{type(e).__name__}: {e}"
        job.seconds = round(time.perf_counter() - job.started, 2)
        self._changed()

    def _plan(self, form: dict):
        """Check the form (one line per problem, as the CLI says it) and return the job."""
        from fakestudio.lora import LoraSpec

        def number(key, default, lo, hi, kind=int):
            raw = form.get(key, default)
            if raw in (None, ""):
                raw = default
            try:
                v = kind(raw)
            except (TypeError, ValueError):
                raise StudioError(400, "bad-value", f"{key}: not a number") from None
            if isinstance(v, float) and not math.isfinite(v):
                raise StudioError(400, "bad-value", f"{key}: must be a finite number")
            if not lo <= v <= hi:
                raise StudioError(400, "bad-value", f"{key}: between {lo} and {hi}")
            return v

        prompt = str(form.get("prompt") or "").strip()
        negative = str(form.get("negative") or "")
        seed = number("seed", -1, -1, 2**63 - 1)
        steps = number("steps", 20, 1, MAX_STEPS)
        n = number("n", 1, 1, MAX_N)
        scheduler = str(form.get("sampler") or "euler")
        base = str(form.get("base") or "") or self.cfg.base
        size = form.get("size")
        side = number("size", 0, 0, 1024) if size not in (None, "", 0, "0") else None
        loras = []
        for item in form.get("loras") or []:
            if not isinstance(item, dict):
                raise StudioError(400, "bad-value", "loras: a list of {name, weight}")
            loras.append(
                LoraSpec(
                    self.lora_path(str(item.get("name"))),
                    float(number("weight", item.get("weight", 1.0), -2.0, 2.0, float)),
                )
            )
        common = dict(
            out=self.out,
            negative=negative,
            n=n,
            seed=None if seed < 0 else seed,
            steps=steps,
            scheduler=scheduler,
            base=base or None,
            width=side,
            height=side,
        )
        if form.get("encounter"):
            from fakestudio.encounter import EncounterConfig, Person, encounter

            names = form.get("persons") or []
            if not isinstance(names, list) or len(names) != 2:
                raise StudioError(400, "bad-value", "the encounter needs two LoRAs (persons)")
            scene = prompt or "two people meeting, photo"
            cfg = EncounterConfig(
                persons=[Person(self.lora_path(str(p))) for p in names], scene=scene, **common
            )
            self._check(lambda: _check_encounter(cfg))
            return (lambda on_step: encounter(cfg, on_step=on_step)), "encounter", n * steps
        if not prompt:
            raise StudioError(400, "bad-value", "the prompt is empty")
        from fakestudio.generate import GenerateConfig, check_config, generate

        cfg = GenerateConfig(prompt=prompt, loras=loras, lora_dir=self.cfg.lora_dir, **common)
        self._check(lambda: check_config(cfg))
        return (lambda on_step: generate(cfg, on_step=on_step)), "generate", n * steps

    @staticmethod
    def _check(fn) -> None:
        try:
            fn()
        except UserError as e:
            raise StudioError(400, "bad-value", str(e)) from None


def _check_encounter(cfg) -> None:
    from fakestudio.encounter import check_config

    check_config(cfg)


def simulate_upload(src: Path, quality: int, scale: float) -> bytes:
    """What a platform does to an upload (as `fakestudio demo`): decode, maybe resize, a fresh
    JPEG without metadata. Returned as bytes; never written into the studio folder."""
    from PIL import Image

    with Image.open(src) as im:
        rgb = im.convert("RGB")
    if scale != 1.0:
        rgb = rgb.resize(
            (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))),
            Image.Resampling.LANCZOS,
        )
    buf = io.BytesIO()
    rgb.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def verify_upload_copy(src: Path, quality: int, scale: float, cfg) -> dict:
    """verify --json of the simulated upload of a studio picture (analysed from a private
    temporary file, deleted at once)."""
    from fakestudio.web.reports import verify_path

    data = simulate_upload(src, quality, scale)
    with tempfile.TemporaryDirectory(prefix="fakestudio-web-") as d:
        copy = Path(d) / f"upload of {src.stem}.jpg"
        copy.write_bytes(data)
        rep = verify_path(copy, cfg)
    rep["simulated_upload"] = {
        "of": src.name,
        "quality": quality,
        "scale": scale,
        "bytes": len(data),
        "metadata": "stripped",
    }
    return rep
