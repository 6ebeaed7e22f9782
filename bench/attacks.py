"""The attack suite: what a person does to a label on purpose, and what `verify` then says.

    .venv/bin/python bench/attacks.py                    # every attack, the short edit list
    .venv/bin/python bench/attacks.py --edits all        # every edit of bench/edits.py after each
    .venv/bin/python bench/attacks.py --limit 8 --no-regen --edits none   # a quick look
    .venv/bin/python bench/attacks.py --base ~/models/sd15   # regeneration through that base too
    .venv/bin/python bench/attacks.py --pictures world       # outputs of the world base (256 px)

The pictures are the watermark bench's (bench-images and fixtures, square, 512 px), or with
`--pictures world` outputs of the embedded world base (256 px, drawn people: what the issue's
regeneration figures were measured on). Each is
labelled by the real labeller (both marks, a signed manifest with its content descriptor, a
ledger row) in a private FAKESTUDIO_HOME, and published to a registry on 127.0.0.1 (SQLite).
Then each attack runs with nothing but the project's public functions, as an adversary who has
read the code would, and each result is passed through each edit of the list and verified
three ways: blind (`--no-ledger`, no registry), with the ledger, with the registry.

Attacks:

* `none`: the labelled picture itself (true copies: the edits alone);
* `copy`: a real photo nobody labelled (scikit-image's sample photos, never indexed) carrying
  this output's identifier (both marks written with `ours.embed_for_upload` and
  `durable.embed`): the picture is not the output the label names;
* `forge`: such a photo with a random identifier (no record anywhere);
* `removal`: informed removal, `2 * labelled - embed(labelled, payload)` (both marks), and
  `removal+crop3`: the same and a 3-pixel crop (which the exact first mark does not survive);
* `average10`, `average100`: the part of the durable mark common to every output (pilot and
  template) estimated as the mean high-pass residual of N other labelled outputs and
  subtracted, at the smallest gain that stops our decoder from reading it (the adversary has
  the decoder), then a 3-pixel crop;
* `median3`, `nlmeans`, `bilateral`: denoising;
* `vae`: a round trip through the world base's VAE (encode, decode), `img2img0.1/0.2/0.3`:
  img2img through the world base at that strength (an empty prompt), and through `--base`.

Per attack: PSNR and SSIM against the labelled picture, how often our identifier is read
blind, how often the ledger finds the output by content (no identifier), and each verdict's
outcome and tier. Prints one table per mode; `--json FILE` keeps every row.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

SHORT_EDITS = (
    "none",
    "jpeg75",
    "resize0.5+jpeg85",
    "crop80",
    "window60",
    "rotate+5",
    "hflip",
    "gamma0.8",
    "crop90+resize0.75+jpeg75",
)
MODES = ("blind", "ledger", "registry")


# --- attacks ------------------------------------------------------------------------------------


def embed_both(rgb: np.ndarray, payload: str) -> np.ndarray:
    from detectors.watermarks import durable, ours

    marked, _ = ours.embed_for_upload(rgb, payload)
    return durable.embed(marked, payload)


def informed_removal(labelled: np.ndarray, payload: str) -> np.ndarray:
    again = embed_both(labelled, payload).astype(np.float64)
    return np.clip(np.rint(2.0 * labelled - again), 0, 255).astype(np.uint8)


def crop3(a: np.ndarray) -> np.ndarray:
    return a[3:, 3:].copy()


def highpass(a: np.ndarray) -> np.ndarray:
    import cv2

    y = a.astype(np.float32).mean(axis=2)
    return y - cv2.GaussianBlur(y, (0, 0), 1.5)


def average_estimate(others: list[np.ndarray]) -> np.ndarray:
    """The mean high-pass luma residual of labelled outputs of one size: what every output
    shares (the durable mark's pilot and template) adds up, pictures and payloads average out."""
    return np.mean([highpass(o) for o in others], axis=0)


def subtract_estimate(labelled: np.ndarray, est: np.ndarray) -> np.ndarray:
    """Subtract the estimate at the smallest gain (1, 2, 4, 8) that stops the durable mark
    from being read, as an adversary holding the decoder would tune it."""
    from detectors.watermarks import durable

    unit = est / (np.sqrt((est**2).mean()) + 1e-9)
    mark_rms = 1.5  # grey levels: about the durable mark's strength at 40 dB
    out = labelled
    for gain in (1.0, 2.0, 4.0, 8.0):
        out = np.clip(np.rint(labelled - gain * mark_rms * unit[..., None]), 0, 255).astype(
            np.uint8
        )
        if not durable.decode(out).found:
            break
    return crop3(out)


def denoise(kind: str, a: np.ndarray) -> np.ndarray:
    import cv2

    if kind == "median3":
        return cv2.medianBlur(a, 3)
    if kind == "nlmeans":
        return cv2.fastNlMeansDenoisingColored(np.ascontiguousarray(a), None, 5, 5, 7, 21)
    return cv2.bilateralFilter(np.ascontiguousarray(a), 7, 30, 5)


class Regenerator:
    """The world base (or --base) for the VAE round trip and img2img, loaded once."""

    def __init__(self, base: str):
        from fakestudio.models import load_base

        self.base = base
        self.pipe = load_base(base).pipe
        self._i2i = None

    def vae(self, a: np.ndarray) -> np.ndarray:
        import torch

        vae = self.pipe.vae
        x = torch.from_numpy(a).permute(2, 0, 1)[None].float() / 127.5 - 1.0
        with torch.no_grad():
            z = vae.encode(x).latent_dist.mean
            y = vae.decode(z).sample
        y = ((y[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().byte().numpy()
        return y

    def img2img(self, a: np.ndarray, strength: float, seed: int) -> np.ndarray:
        import torch
        from diffusers import AutoPipelineForImage2Image

        if self._i2i is None:
            self._i2i = AutoPipelineForImage2Image.from_pipe(self.pipe)
            self._i2i.set_progress_bar_config(disable=True)
        out = self._i2i(
            prompt="",
            image=Image.fromarray(a),
            strength=strength,
            guidance_scale=1.0,
            num_inference_steps=20,
            generator=torch.Generator("cpu").manual_seed(seed),
        ).images[0]
        return np.asarray(out.convert("RGB").resize((a.shape[1], a.shape[0]), Image.LANCZOS))


# --- set-up -------------------------------------------------------------------------------------


def world_pictures(n: int, regen: Regenerator) -> list[tuple[str, np.ndarray]]:
    """Outputs of the world base: drawn people of random attributes (pixels only: labelled
    below like every other picture)."""
    import torch

    rng = np.random.default_rng(3)
    words = {
        "who": ["man", "woman"],
        "hair": ["blond", "black", "red", "pink", "brown"],
        "shirt": ["yellow", "blue", "green", "red", "white"],
        "extra": ["with glasses", "with a beard", "smiling", ""],
    }
    out = []
    for i in range(n):
        w = {k: v[int(rng.integers(len(v)))] for k, v in words.items()}
        prompt = f"photo of a {w['who']} with {w['hair']} hair {w['extra']}, {w['shirt']} shirt"
        image = regen.pipe(
            prompt=prompt,
            guidance_scale=3.0,
            num_inference_steps=20,
            generator=torch.Generator("cpu").manual_seed(i),
        ).images[0]
        out.append((f"world-{i:02d}.png", np.asarray(image.convert("RGB"))))
    return out


def copy_targets(n: int, side: int) -> list[np.ndarray]:
    """Real photos nobody labelled (scikit-image's samples, never indexed), square, `side` px."""
    from skimage import data

    names = [
        "astronaut",
        "chelsea",
        "coffee",
        "rocket",
        "motorcycle_left",
        "hubble_deep_field",
        "retina",
        "immunohistochemistry",
        "grass",
        "gravel",
        "brick",
        "camera",
        "moon",
        "coins",
        "horse",
        "page",
        "text",
        "cat",
    ]
    out = []
    for name in names:
        try:
            a = np.asarray(getattr(data, name)())
        except Exception:  # noqa: BLE001 - a sample the installed version lacks or must download
            continue
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=2)
        a = a[..., :3].astype(np.uint8)
        h, w = a.shape[:2]
        m = min(h, w)
        a = a[(h - m) // 2 : (h - m) // 2 + m, (w - m) // 2 : (w - m) // 2 + m]
        out.append(np.asarray(Image.fromarray(a).resize((side, side), Image.LANCZOS)))
    return [out[i % len(out)] for i in range(n)]


def label_all(pics, out: Path, ledger: Path) -> list[dict]:
    """Label each picture as the labeller does; the signed bytes, pixels and identifier."""
    from fakestudio.label.labeller import Description, LabelOptions, label_pixels, write_output
    from fakestudio.label.manifest import build_derived_manifest

    out.mkdir(parents=True, exist_ok=True)
    done = []
    for i, (name, rgb) in enumerate(pics):
        payload = f"{(i * 2654435761 + 977) % (1 << 40):010x}"
        opts = LabelOptions(fmt="png", ledger_path=ledger)

        def manifest_for(marks, name=name):
            return build_derived_manifest(
                marks, title=f"{Path(name).stem}.png", creator={"name": "bench"}
            )

        lab = label_pixels(Image.fromarray(rgb), payload, opts, Description("bench"), manifest_for)
        path = out / f"{i:02d}-{Path(name).stem}.png"
        write_output(lab, path, opts, created="2026-12-08T00:00:00+00:00", record={"bench": True})
        done.append(
            {
                "name": name,
                "payload": payload,
                "path": path,
                "original": rgb,
                "labelled": np.asarray(lab.pixels.convert("RGB")),
            }
        )
    return done


def publish_all(labelled: list[dict], db: Path):
    """A registry on 127.0.0.1 holding every labelled output; returns (url, stop)."""
    import socket
    import threading

    import uvicorn

    from detectors.registry_client import RegistryClient
    from fakestudio.registry import tokens
    from fakestudio.registry.app import RegistryConfig, create_app
    from fakestudio.registry.storage import open_storage

    storage = open_storage(f"sqlite:///{db}")
    storage.migrate()
    _, secret = tokens.create(storage)
    app = create_app(storage, RegistryConfig(rate=0))
    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with RegistryClient(url, secret) as client:
        for item in labelled:
            client.publish(item["path"].read_bytes())

    def stop():
        server.should_exit = True
        thread.join(10)

    return url, stop


def png_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


# --- measuring ----------------------------------------------------------------------------------


def _same_frame(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """The reference cut to the attacked picture's frame (the attacks crop the top left only)."""
    if a.shape == b.shape:
        return b
    if a.shape[0] <= b.shape[0] and a.shape[1] <= b.shape[1]:
        return b[b.shape[0] - a.shape[0] :, b.shape[1] - a.shape[1] :]
    return None


def psnr(a: np.ndarray, b: np.ndarray) -> float | None:
    b = _same_frame(a, b)
    if b is None:
        return None
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def ssim(a: np.ndarray, b: np.ndarray) -> float | None:
    b = _same_frame(a, b)
    if b is None:
        return None
    from skimage.metrics import structural_similarity

    return float(structural_similarity(a, b, channel_axis=2, data_range=255))


def _verify_job(job: dict) -> dict:
    """One attacked copy verified three ways (runs in a worker process)."""
    from detectors.verify import verify_image

    path = Path(job["path"])
    path.write_bytes(job["data"])
    row = {k: v for k, v in job.items() if k not in ("data", "path")}
    for mode in MODES:
        kw = {"use_ledger": mode == "ledger", "ledger_path": job["ledger"]}
        if mode == "registry":
            kw["registry"] = job["registry"]
        rep = verify_image(path, **kw).to_dict()
        v = rep["verdict"]
        row[mode] = {"outcome": v["outcome"], "tier": v["tier"], "rule": v.get("rule")}
        if mode == "blind":
            ours = [w for w in rep["watermarks"] if w["found"] and w.get("payload")]
            row["read"] = bool(ours)
            row["read_right"] = any(w["payload"] == job["payload"] for w in ours)
        if mode == "ledger":
            row["ledger_how"] = rep["ledger"].get("how")
            row["ledger_found"] = bool(rep["ledger"].get("matched"))
    path.unlink()
    return row


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--limit", type=int, default=None, help="pictures (default: all)")
    ap.add_argument("--pictures", choices=("bench", "world"), default="bench")
    ap.add_argument("--edits", default="short", help="short, all, or a comma-separated list")
    ap.add_argument("--attacks", default=None, help="comma-separated subset")
    ap.add_argument("--no-regen", action="store_true", help="skip the VAE and img2img attacks")
    ap.add_argument("--base", default=None, help="another base for regeneration (diffusers folder)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    home = Path(tempfile.mkdtemp(prefix="fs-attacks-"))
    os.environ["FAKESTUDIO_HOME"] = str(home)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from edits import EDITS
    from watermark_robustness import pictures

    edit_names = (
        list(EDITS)
        if args.edits == "all"
        else list(SHORT_EDITS)
        if args.edits == "short"
        else [e.strip() for e in args.edits.split(",")]
    )
    t0 = time.perf_counter()
    world = Regenerator("world") if (args.pictures == "world" or not args.no_regen) else None
    pics = (
        world_pictures(args.limit or 28, world)
        if args.pictures == "world"
        else pictures(args.limit)
    )
    targets = copy_targets(len(pics), pics[0][1].shape[0])
    ledger = home / "ledger.sqlite"
    labelled = label_all(pics, home / "out", ledger)
    url, stop = publish_all(labelled, home / "registry.sqlite")
    print(f"{len(labelled)} pictures labelled and published in {time.perf_counter() - t0:.0f} s")

    # the averaging adversary's other outputs: random crops and flips of the pictures, labelled
    rng = np.random.default_rng(1)
    extra = []
    for k in range(100):
        _, src = pics[k % len(pics)]
        side = src.shape[0]
        big = np.asarray(Image.fromarray(src).resize((side * 3 // 2, side * 3 // 2), Image.LANCZOS))
        y, x = rng.integers(0, side // 2 + 1, 2)
        crop = big[y : y + side, x : x + side]
        if k % 2:
            crop = crop[:, ::-1]
        extra.append(embed_both(np.ascontiguousarray(crop), f"{rng.integers(1 << 40):010x}"))
    estimates = {10: average_estimate(extra[:10]), 100: average_estimate(extra)}

    attacks = {
        "none": lambda it, i: it["labelled"],
        "copy": lambda it, i: embed_both(targets[i], it["payload"]),
        "forge": lambda it, i: embed_both(targets[i], f"{(i * 7919 + 13) % (1 << 40):010x}"),
        "removal": lambda it, i: informed_removal(it["labelled"], it["payload"]),
        "removal+crop3": lambda it, i: crop3(informed_removal(it["labelled"], it["payload"])),
        "average10": lambda it, i: subtract_estimate(it["labelled"], estimates[10]),
        "average100": lambda it, i: subtract_estimate(it["labelled"], estimates[100]),
        "median3": lambda it, i: denoise("median3", it["labelled"]),
        "nlmeans": lambda it, i: denoise("nlmeans", it["labelled"]),
        "bilateral": lambda it, i: denoise("bilateral", it["labelled"]),
    }
    if not args.no_regen:
        regens = [world] + ([Regenerator(args.base)] if args.base else [])
        for r in regens:
            tag = "" if r.base == "world" else f"@{Path(r.base).name}"
            attacks[f"vae{tag}"] = lambda it, i, r=r: r.vae(it["labelled"])
            for s in (0.1, 0.2, 0.3):
                attacks[f"img2img{s}{tag}"] = lambda it, i, r=r, s=s: r.img2img(
                    it["labelled"], s, i
                )
    if args.attacks:
        keep = {a.strip() for a in args.attacks.split(",")}
        attacks = {k: v for k, v in attacks.items() if k in keep}

    jobs, quality = [], defaultdict(list)
    work = home / "copies"
    work.mkdir()
    for name, attack in attacks.items():
        for i, it in enumerate(labelled):
            attacked = attack(it, i)
            reference = targets[i] if name in ("copy", "forge") else it["labelled"]
            quality[name].append((psnr(attacked, reference), ssim(attacked, reference)))
            for e in edit_names:
                copy = EDITS[e](attacked)
                jobs.append(
                    {
                        "attack": name,
                        "edit": e,
                        "picture": it["name"],
                        "payload": it["payload"],
                        "data": png_bytes(copy),
                        "path": str(work / f"{len(jobs)}.png"),
                        "ledger": str(ledger),
                        "registry": url,
                    }
                )
    print(f"{len(jobs)} copies made in {time.perf_counter() - t0:.0f} s; verifying each three ways")
    with ProcessPoolExecutor(args.workers) as pool:
        rows = list(pool.map(_verify_job, jobs, chunksize=4))
    stop()
    print(f"verified in {time.perf_counter() - t0:.0f} s\n")
    report(rows, quality, attacks)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


def report(rows: list[dict], quality: dict, attacks: dict) -> None:
    by = defaultdict(list)
    for r in rows:
        by[r["attack"]].append(r)
    print(
        f"{'attack':16s} {'PSNR':>6s} {'SSIM':>5s} {'id read':>8s} {'content':>8s}  "
        + "  ".join(f"{m:>24s}" for m in MODES)
    )
    for name in attacks:
        rs = by[name]
        if not rs:
            continue
        q = [p for p, _ in quality[name] if p is not None and np.isfinite(p)]
        s = [x for _, x in quality[name] if x is not None]
        read = sum(r["read_right"] for r in rs) / len(rs)
        found = sum(r["ledger_how"] == "content" and r["ledger_found"] for r in rs) / len(rs)
        cells = []
        for m in MODES:
            c = Counter(f"{r[m]['outcome']}/{r[m]['tier']}" for r in rs)
            top = ", ".join(f"{k} {100 * v / len(rs):.0f}%" for k, v in c.most_common(2))
            cells.append(f"{top:>24s}")
        print(
            f"{name:16s} {np.mean(q) if q else float('nan'):6.1f} {np.mean(s) if s else float('nan'):5.3f}"
            f" {100 * read:7.0f}% {100 * found:7.0f}%  " + "  ".join(cells)
        )
    print("\nTargets (issue 24):")
    copies = by["copy"]
    if copies:
        read = [r for r in copies if r["read_right"]]
        for m in ("ledger", "registry"):
            n = sum(r[m]["outcome"] == "label-mismatch" for r in read)
            bad = sum(r[m]["tier"] in ("confirmed", "recorded") for r in copies)
            print(
                f"  copy attacks whose copied identifier reads, reported label-mismatch with the "
                f"{m}: {n}/{len(read)} ({100 * n / max(1, len(read)):.1f}%, target >= 99%); "
                f"confirmed or recorded as AI: {bad}/{len(copies)}"
            )
        n = sum(r["blind"]["tier"] == "claimed" for r in read)
        print(f"  copy attacks, no record: tier 'claimed' (unconfirmed) {n}/{len(read)}")
    trues = by["none"]
    if trues:
        for m in ("ledger", "registry"):
            n = sum(r[m]["outcome"] == "label-mismatch" for r in trues)
            print(
                f"  true copies reported label-mismatch with the {m}: {n}/{len(trues)} (target <= 1%)"
            )
    for name in ("removal", "removal+crop3", "average10", "average100", "vae", "img2img0.1"):
        rs = by[name]
        for m in ("ledger", "registry"):
            if rs:
                n = sum(r[m]["outcome"] == "recovered" for r in rs)
                print(
                    f"  {name}: recovered with the {m}: {n}/{len(rs)} ({100 * n / len(rs):.1f}%, target >= 95%)"
                )


if __name__ == "__main__":
    main()
