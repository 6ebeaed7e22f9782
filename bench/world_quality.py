"""The world base model's quality, measured by the attribute probe (issue 12).

Prints, in one run, for the world's own renders (the ceiling), the candidate base and the
random `tiny` base (the floor):
  1. prompt adherence: share of attributes read back right on N random attribute prompts
     (bar: >= 90%), and the same on two-person prompts;
  2. identity learning (--identity): `fakestudio prepare` + `train` on one sample person's 8
     pictures with default settings, then 20 seeds with the trigger word and 20 with the class
     word alone: share showing that person's attributes, held-out feature included
     (bar: >= 90% with the trigger, <= 10% without);
  3. the encounter (--encounter): two trained people, 20 seeds, each side's own attributes
     vs the other's (bar: >= 90% / <= 10%), and the same with --merge;
  4. the demo (--demo): `fakestudio demo` on the base; the probe on each half of its fake
     (left ad4x, right b0bz) says whether both sample people are recognisable: on the file,
     and on the fake as the talk page shows it in headless Chromium (found in the screenshot
     by OpenCV template matching; skipped without Debian `chromium`).

    .venv/bin/python bench/world_quality.py                          # floor + ceiling only
    .venv/bin/python bench/world_quality.py --run-dir ~/.cache/fakestudio/world-train-3
    .venv/bin/python bench/world_quality.py --base path/to/exported-world-folder --identity
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENE = "shaking hands at a conference"
sys.path.insert(0, str(ROOT))


def _fmt(res: dict) -> str:
    worst = sorted(res["per_attribute"].items(), key=lambda kv: kv[1])[:3]
    return (
        f"{res['adherence']:6.1%} of attributes, {res['all_right']:6.1%} of people entirely right"
        f"  (weakest: {', '.join(f'{a} {v:.0%}' for a, v in worst)})"
    )


def _cli(*args: str) -> None:
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    subprocess.run(
        [sys.executable, "-m", "fakestudio", *args], check=True, env=env, stdout=subprocess.DEVNULL
    )


def train_person(base: str, person: str, tmp: Path) -> tuple[Path, float]:
    """`fakestudio prepare` + `train` (default settings) on a sample person's 8 pictures."""
    data, lora = tmp / f"{person}-data", tmp / f"{person}.safetensors"
    _cli(
        "prepare",
        str(ROOT / "samples" / person),
        "--token",
        person,
        "--class-word",
        "person",
        "--out",
        str(data),
        "--resolution",
        "256",
        "--consent",
        "drawn by fakestudio",
        "--base",
        base,
    )
    t0 = time.monotonic()
    _cli("train", str(data), "--out", str(lora), "--base", base)
    return lora, time.monotonic() - t0


def _pngs(folder: Path) -> list:
    from PIL import Image

    return [Image.open(p).convert("RGB") for p in sorted(folder.glob("*.png"))]


def identity(base: str, person: str, lora: Path, probe, seeds: int, tmp: Path) -> dict:
    """How often pictures show the person, with the trigger word and with the class word."""
    from fakestudio.world.quality import person_measures
    from fakestudio.world.samples import SAMPLE_PEOPLE

    result = {}
    for label, prompt in (
        ("trigger", f"a photo of {person} person"),
        ("class", "a photo of a person"),
    ):
        out = tmp / f"{person}-{label}"
        _cli(
            "generate", prompt, "--base", base, "--lora", str(lora), "--seed", "0",
            "-n", str(seeds), "--out", str(out),
        )  # fmt: skip
        reads = [probe.read(im)[0] for im in _pngs(out)]
        result[label] = person_measures(reads, SAMPLE_PEOPLE[person])
    return result


def encounter(base: str, loras: dict[str, Path], probe, seeds: int, tmp: Path) -> dict:
    """Two trained people, regional and --merge: each half's reading against both people."""
    from fakestudio.world.quality import person_measures
    from fakestudio.world.samples import SAMPLE_PEOPLE

    (a, la), (b, lb) = loras.items()
    result = {}
    for mode in ("regional", "merge"):
        out = tmp / f"encounter-{mode}"
        _cli(
            "encounter", "--person", str(la), "--person", str(lb), "--scene", SCENE,
            "--base", base, "--seed", "0", "-n", str(seeds), "--out", str(out),
            *(["--merge"] if mode == "merge" else []),
        )  # fmt: skip
        reads = [probe.read(im, people=2) for im in _pngs(out)]
        result[mode] = {
            side: {
                "own": person_measures([r[i] for r in reads], SAMPLE_PEOPLE[own]),
                "other": person_measures([r[i] for r in reads], SAMPLE_PEOPLE[other]),
            }
            for i, (side, own, other) in enumerate((("left", a, b), ("right", b, a)))
        }
    return result


def demo(base: str, probe, tmp: Path) -> dict:
    """`fakestudio demo` on this base: does its fake show both sample people (left ad4x, right
    b0bz, as the demo lays them out), and what the compare page puts beside it."""
    from PIL import Image

    from fakestudio.demo import DemoConfig, run_demo
    from fakestudio.world.quality import person_measures
    from fakestudio.world.samples import SAMPLE_PEOPLE

    t0 = time.monotonic()
    res = run_demo(DemoConfig(out=tmp / "demo", base=base), say=lambda m: None)
    seconds = time.monotonic() - t0
    fake = Image.open(res.encounter).convert("RGB")
    out = {"seconds": round(seconds, 1)}
    shown = {"file": fake}
    shot = talk_screenshot(res.talk_page, tmp / "talk.png")
    if shot is not None:
        shown["screenshot"], out["screenshot_match"] = find_in_shot(shot, fake)
    for where, image in shown.items():
        left, right = probe.read(image, people=2)
        out[where] = {
            "left ad4x": person_measures([left], SAMPLE_PEOPLE["ad4x"]),
            "right b0bz": person_measures([right], SAMPLE_PEOPLE["b0bz"]),
        }
    return out


def talk_screenshot(page: Path, png: Path):
    """The talk page as headless Chromium draws it (None without Debian `chromium`)."""
    import shutil

    from PIL import Image

    chromium = shutil.which("chromium")
    if chromium is None:
        return None
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update",
             f"--user-data-dir={profile}", f"--screenshot={png}", "--window-size=1280,3000",
             page.resolve().as_uri()],
            capture_output=True, timeout=120, check=False,
        )  # fmt: skip
    return Image.open(png).convert("RGB") if png.is_file() else None


def find_in_shot(shot, image):
    """The region of a screenshot that shows `image` (scaled by the page), cut out: OpenCV's
    normalised cross-correlation over a range of display widths. Returns (crop, match score)."""
    import cv2
    import numpy as np

    page = cv2.cvtColor(np.asarray(shot), cv2.COLOR_RGB2GRAY)
    small = cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2GRAY)
    k = 4  # search at a quarter of the size, then refine around the best match
    coarse = cv2.resize(
        page, (page.shape[1] // k, page.shape[0] // k), interpolation=cv2.INTER_AREA
    )
    best = (-1.0, 0, (0, 0))
    for width in range(64, min(page.shape[1], 1200), 8):
        t = cv2.resize(small, (width // k, round(width * image.height / image.width) // k),
                       interpolation=cv2.INTER_AREA)  # fmt: skip
        if t.shape[0] >= coarse.shape[0] or t.shape[1] >= coarse.shape[1]:
            break
        _, score, _, at = cv2.minMaxLoc(cv2.matchTemplate(coarse, t, cv2.TM_CCOEFF_NORMED))
        if score > best[0]:
            best = (score, width, (at[0] * k, at[1] * k))
    score, width, (x, y) = best
    height = round(width * image.height / image.width)
    t = cv2.resize(small, (width, height), interpolation=cv2.INTER_AREA)
    x0, y0 = max(0, x - 2 * k), max(0, y - 2 * k)
    window = page[y0 : y + height + 2 * k, x0 : x + width + 2 * k]
    _, score, _, at = cv2.minMaxLoc(cv2.matchTemplate(window, t, cv2.TM_CCOEFF_NORMED))
    x, y = x0 + at[0], y0 + at[1]
    return shot.crop((x, y, x + width, y + height)), round(float(score), 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", help="a diffusers folder (an exported world base) to measure")
    ap.add_argument(
        "--run-dir", type=Path, help="a world-train run: measure its current EMA weights"
    )
    ap.add_argument("--n", type=int, default=100, help="random attribute prompts [100]")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument(
        "--guidance", type=float, default=None, help="[each base's own: world 3, tiny 7]"
    )
    ap.add_argument("--identity", action="store_true", help="also measure identity learning")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--demo", action="store_true", help="also run the demo and probe its fake")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("FAKESTUDIO_HOME", tempfile.mkdtemp(prefix="fs-bench-"))

    from fakestudio.models import load_base
    from fakestudio.quiet import quiet_libraries
    from fakestudio.world.probe import load_probe
    from fakestudio.world.quality import prompt_adherence, render_adherence

    quiet_libraries()
    from fakestudio.world import random_scene, render

    rng = __import__("numpy").random.default_rng(0)
    scenes = [random_scene(rng, two=0.3) for _ in range(200)]
    t0 = time.perf_counter()
    for s in scenes:
        render(s, 256)
    render_ms = (time.perf_counter() - t0) / len(scenes) * 1000
    probe = load_probe()

    def with_guidance(model):
        return model.pipe, args.guidance if args.guidance is not None else model.settings.guidance

    bases = {"tiny (floor)": lambda: with_guidance(load_base("tiny"))}
    if args.base:
        bases[f"base {Path(args.base).name}"] = lambda: with_guidance(load_base(args.base))
    if args.run_dir:
        from fakestudio.world.trainer import WorldTrainer

        def from_run():
            tr = WorldTrainer(args.run_dir)
            print(f"run {args.run_dir}: {tr.status()['stage']} step {tr.status()['step']}")
            return tr.pipeline(), args.guidance if args.guidance is not None else 5.0

        bases["world run (EMA)"] = from_run
    results: dict = {
        "renders (ceiling)": {
            "one": render_adherence(args.n, probe=probe),
            "two": render_adherence(args.n // 2, two=1.0, probe=probe),
        },
    }
    for name, load in bases.items():
        pipe, guidance = load()
        t0 = time.monotonic()
        one = prompt_adherence(pipe, args.n, steps=args.steps, guidance=guidance, probe=probe)
        per_image = (time.monotonic() - t0) / args.n
        two = prompt_adherence(
            pipe, args.n // 2, steps=args.steps, guidance=guidance, two=1.0, probe=probe
        )
        results[name] = {
            "one": one, "two": two, "s_per_image": round(per_image, 2), "guidance": guidance
        }  # fmt: skip
    if args.identity:
        pairs = [("tiny (floor)", "tiny")]
        if args.base:
            pairs.append((f"base {Path(args.base).name}", args.base))
        for name, base in pairs:
            with tempfile.TemporaryDirectory() as tmp:
                loras, ident = {}, {}
                for p in ("ad4x", "b0bz"):
                    loras[p], train_s = train_person(base, p, Path(tmp))
                    ident[p] = identity(base, p, loras[p], probe, args.seeds, Path(tmp))
                    ident[p]["train_s"] = round(train_s, 1)
                results[name]["identity"] = ident
                results[name]["encounter"] = encounter(base, loras, probe, args.seeds, Path(tmp))
    if args.demo:
        for name, base in [("tiny (floor)", "tiny")] + (
            [(f"base {Path(args.base).name}", args.base)] if args.base else []
        ):
            with tempfile.TemporaryDirectory() as tmp:
                results[name]["demo"] = demo(base, probe, Path(tmp))
    if args.json:
        print(json.dumps({"render_ms": round(render_ms, 2)} | results, indent=1))
        return
    print(f"world render: {render_ms:.1f} ms per 256 px picture")
    print(f"prompt adherence, {args.n} one-person prompts (bar >= 90%), {args.steps} steps:")
    for name, r in results.items():
        extra = f"  {r['s_per_image']} s/image, guidance {r['guidance']}" if "guidance" in r else ""
        print(f"  {name:22s} {_fmt(r['one'])}{extra}")
    print(f"two-person prompts ({args.n // 2}):")
    for name, r in results.items():
        print(f"  {name:22s} {_fmt(r['two'])}")
    print(
        "identity learning (shows the person = held-out feature + >= 7 of 9 attributes; "
        "bar: >= 90% with trigger, <= 10% with the class word):"
    )
    for name, r in results.items():
        for p, m in r.get("identity", {}).items():
            print(
                f"  {name:22s} {p}: trigger {m['trigger']['shows']:.0%} (held-out "
                f"{m['trigger']['held_out']:.0%}, attributes {m['trigger']['attributes']:.0%}), "
                f"class word {m['class']['shows']:.0%} (held-out {m['class']['held_out']:.0%}), "
                f"trained in {m['train_s']} s"
            )
    print("the encounter (each side: own person >= 90%, the other <= 10%):")
    for name, r in results.items():
        for mode, sides in r.get("encounter", {}).items():
            print(
                f"  {name:22s} {mode:8s} "
                + "; ".join(
                    f"{side}: own {m['own']['shows']:.0%} (held-out {m['own']['held_out']:.0%}, "
                    f"attr {m['own']['attributes']:.0%}), other {m['other']['shows']:.0%} "
                    f"(held-out {m['other']['held_out']:.0%})"
                    for side, m in sides.items()
                )
            )
    if not args.identity:
        print("  identity and encounter not measured (pass --identity)")
    print("the demo's fake (the probe on each half; bar: both people recognisable):")
    for name, r in results.items():
        if "demo" in r:
            d = r["demo"]
            for where in ("file", "screenshot"):
                if where not in d:
                    continue
                match = f", match {d['screenshot_match']}" if where == "screenshot" else ""
                print(
                    f"  {name:22s} {where + match:20s} "
                    + "; ".join(
                        f"{k}: {'shown' if m['shows'] else 'not shown'} (attributes "
                        f"{m['attributes']:.0%})"
                        for k, m in d[where].items()
                    )
                )
            print(f"  {name:22s} ({d['seconds']} s for the whole demo)")
    if not args.demo:
        print("  not measured (pass --demo)")


if __name__ == "__main__":
    main()
