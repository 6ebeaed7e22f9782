"""The talk demo: the whole story, from photos to a labelled fake and back, in one command.

    prepare two datasets -> train two LoRAs -> generate their encounter (labelled)
    -> verify it -> simulate a social-media upload (metadata stripped, JPEG re-encode, resize)
    -> verify again (provenance recovered through watermark and ledger, where it survives)
    -> compare with a photo of the person -> write a self-contained HTML talk page

On the embedded tiny base it runs from nothing in a few minutes on a laptop CPU; `--base`
tells the same story on real weights. Every image still leaves through the labeller.
"""

from __future__ import annotations

import io
import time
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fakestudio.errors import UserError

SCENE = "shaking hands at a tech conference, photo"
DEMO_CONSENT = (
    "Fictional person drawn by fakestudio for its demo (samples/make_samples.py); "
    "no real person is depicted."
)


@dataclass
class Upload:
    """One simulated social-media upload: what the platform does to the file."""

    name: str
    quality: int = 85  # JPEG re-encode
    scale: float = 1.0  # resize factor
    strip: bool = True  # metadata removed (the platform writes a fresh JPEG from pixels)

    def describe(self) -> str:
        parts = ["metadata stripped"] if self.strip else []
        parts.append(f"JPEG {self.quality}")
        if self.scale != 1.0:
            parts.append(f"resized to {self.scale:g}x")
        return ", ".join(parts)


UPLOADS = (
    Upload("re-encoded", quality=85),
    Upload("re-encoded and resized", quality=85, scale=0.5),
)


@dataclass
class DemoConfig:
    out: Path = Path("demo-out")
    samples: Path | None = None  # a folder with one sub-folder of photos per person
    people: tuple[str, str] = ("ad4x", "b0bz")  # sub-folder names = trigger words
    class_word: str = "person"
    consent: str = DEMO_CONSENT
    base: str | None = None  # None: default_base() ($FAKESTUDIO_BASE, else "world")
    train_steps: int | None = None  # None: 80 on tiny (it draws noise anyway), else 300
    rank: int | None = None  # None: 4 on tiny, else the base's or fakestudio's default
    lr: float = 6e-4  # short runs: 6x fakestudio's default (world: 300 steps draw both people)
    gen_steps: int = 20
    size: int | None = None  # None: 512 on tiny, the base's native size otherwise
    seed: int = 7
    scene: str = SCENE
    uploads: tuple[Upload, ...] = UPLOADS
    open: bool = False
    device: str | None = None


@dataclass
class DemoResult:
    talk_page: Path
    encounter: Path
    loras: list[Path]
    verdicts: dict[str, str] = field(default_factory=dict)  # stage -> outcome
    timings: dict[str, float] = field(default_factory=dict)  # stage -> seconds


def default_samples() -> Path | None:
    here = Path(__file__).resolve().parents[1] / "samples"
    return here if here.is_dir() else None


def run_demo(cfg: DemoConfig, say: Callable[[str], None] = print) -> DemoResult:
    from PIL import Image

    from detectors.compare import compare_images
    from detectors.files import clean_stale_parts
    from detectors.report.html import write_talk
    from detectors.verify import verify_image
    from fakestudio.dataset import prepare_dataset
    from fakestudio.encounter import EncounterConfig, Person, encounter
    from fakestudio.label.derived import labelled_preview, write_poster
    from fakestudio.label.labeller import check_writable
    from fakestudio.models import default_base, light_base
    from fakestudio.train import prior
    from fakestudio.train.config import make_config
    from fakestudio.train.loop import train

    samples = cfg.samples or default_samples()
    if samples is None or not samples.is_dir():
        raise UserError(
            "no samples folder found; pass --samples DIR (one sub-folder of photos per person)"
        )
    for person in cfg.people:
        if not (samples / person).is_dir():
            raise UserError(f"{samples / person}: missing photo folder for {person!r}")
    out = check_writable(cfg.out)
    for folder in (out, out / "images", out / "loras"):
        clean_stale_parts(folder)  # temp files a killed run left (our own naming only)
    base = cfg.base or default_base()
    # tiny draws noise at any size: 512 gives the talk page a bigger picture; the others draw
    # at their native size (world: 256)
    size = cfg.size or (512 if base == "tiny" else None)
    steps = cfg.train_steps or (80 if base == "tiny" else 300)
    timings: dict[str, float] = {}
    verdicts: dict[str, str] = {}

    def stage(name: str):
        start = time.perf_counter()

        def done():
            timings[name] = time.perf_counter() - start

        return done

    # 1. two datasets -------------------------------------------------------------------------
    datasets = []
    for person in cfg.people:
        done = stage(f"prepare {person}")
        res = prepare_dataset(
            samples / person,
            out / "datasets" / person,
            token=person,
            class_word=cfg.class_word,
            resolution=256 if light_base(base) else 512,
            base=base,
            consent=cfg.consent,
            person=True,
            force=True,
        )
        done()
        datasets.append(res.dataset)
        say(f"prepared {person}: {len(res.dataset.images)} photos, consent recorded")

    # 2. two LoRAs ----------------------------------------------------------------------------
    loras = []
    class_images = None  # both people share the class word: the base draws its pictures once
    for person, ds in zip(cfg.people, datasets, strict=True):
        done = stage(f"train {person}")
        lora = out / "loras" / f"{person}.safetensors"
        lora.parent.mkdir(parents=True, exist_ok=True)
        _clear_run(lora)
        # the base's own training settings apply (world: the text encoder, prior images)
        tcfg = make_config(
            ds.root,
            lora,
            base=base,
            max_steps=steps,
            rank=cfg.rank or (4 if base == "tiny" else None),
            lr=cfg.lr,
            seed=cfg.seed,
            device=cfg.device,
            class_images=class_images,
        )
        train(tcfg)
        drawn = tcfg.run_folder() / prior.FOLDER
        if tcfg.prior_images and class_images is None and drawn.is_dir():
            class_images = drawn
        done()
        loras.append(lora)
        say(f"trained {lora.name} in {timings[f'train {person}']:.0f} s ({steps} steps)")

    # 3. the encounter ------------------------------------------------------------------------
    done = stage("encounter")
    ecfg = EncounterConfig(
        persons=[Person(p) for p in loras],
        scene=cfg.scene,
        out=out / "images",
        seed=cfg.seed,
        steps=cfg.gen_steps,
        width=size,
        height=size,
        base=base,
        device=cfg.device,
    )
    (fake,) = encounter(ecfg)
    done()
    say(f"generated {fake.path.name} (watermark {fake.payload}, signed C2PA manifest)")

    # 4. verify, upload, verify again -----------------------------------------------------------
    reports = {"generated": verify_image(fake.path)}
    copies = {}
    for up in cfg.uploads:
        copy = out / "images" / f"uploaded-{up.name.replace(' ', '-')}.jpg"
        simulate_upload(fake.path, copy, up)
        copies[up.name] = copy
        reports[up.name] = verify_image(copy)
    for stage_name, rep in reports.items():
        verdicts[stage_name] = rep.verdict.outcome
        say(f"verify {stage_name}: {rep.verdict.headline}")

    # 5. compare with a photo of the person -----------------------------------------------------
    photo = datasets[0].path(datasets[0].images[0])
    comparison = compare_images(photo, fake.path)
    poster = out / "poster.png"
    write_poster(comparison, poster)

    # 6. the talk page: its previews of the fake (and of its uploaded copies) are generated
    # pixels too, so they are labelled like any output --------------------------------------
    page_path = out / "talk.html"

    def preview(path: Path, side: int) -> bytes:
        with Image.open(path) as im:
            return labelled_preview(path, im, side, where=page_path.name)

    page = write_talk(
        page_path,
        story=_story(cfg, datasets, loras, timings, steps),
        comparison=comparison,
        previews={"B": preview(fake.path, 900)},
        stages=[
            {
                "name": "as generated",
                "describe": "straight out of fakestudio",
                "report": reports["generated"].to_dict(full=False),
                "image": fake.path,
                "preview": preview(fake.path, 512),
            },
            *[
                {
                    "name": f"after upload ({up.name})",
                    "describe": up.describe(),
                    "report": reports[up.name].to_dict(full=False),
                    "image": copies[up.name],
                    "preview": preview(copies[up.name], 512),
                }
                for up in cfg.uploads
            ],
        ],
    )
    say(f"talk page: {page}; in the browser, with a live quiz: fakestudio web --talk {out}")
    if cfg.open:
        webbrowser.open(page.resolve().as_uri())
    return DemoResult(page, fake.path, loras, verdicts, timings)


def simulate_upload(src: Path, dst: Path, up: Upload) -> Path:
    """What a platform does: decode, maybe resize, write a fresh JPEG (no metadata kept)."""
    from PIL import Image

    from detectors.files import atomic_write

    with Image.open(src) as im:
        rgb = im.convert("RGB")
    if up.scale != 1.0:
        rgb = rgb.resize((round(rgb.width * up.scale), round(rgb.height * up.scale)), Image.LANCZOS)
    buf = io.BytesIO()
    rgb.save(buf, "JPEG", quality=up.quality)  # Pillow's defaults: 4:2:0, no EXIF/XMP/C2PA
    atomic_write(dst, buf.getvalue())
    return dst


def _clear_run(lora: Path) -> None:
    """A demo re-run starts its training afresh."""
    import shutil

    shutil.rmtree(lora.with_name(lora.stem + "-training"), ignore_errors=True)


def _story(cfg: DemoConfig, datasets, loras, timings, steps: int) -> dict:
    from fakestudio.models import default_base

    train_s = sum(v for k, v in timings.items() if k.startswith("train"))
    return {
        "people": [
            {
                "token": ds.token,
                "photos": len(ds.images),
                "lora": lora.name,
                "lora_kb": round(lora.stat().st_size / 1024),
            }
            for ds, lora in zip(datasets, loras, strict=True)
        ],
        "base": cfg.base or default_base(),
        "train_steps": steps,
        "train_seconds": round(train_s, 1),
        "encounter_seconds": round(timings.get("encounter", 0.0), 1),
        "scene": cfg.scene,
        "consent": cfg.consent,
    }
