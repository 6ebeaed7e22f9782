"""The attribute probe: reads a world person's attributes back from a picture.

Four small CNNs (about 0.6M parameters each; `MEMBERS`) trained on world renders, one head
per attribute (`attributes.ALL_VALUES`, held-out values included), their probabilities
averaged. It reads one person per *view*: the whole
picture for a one-person picture, the left or right half (head and shirt) for a two-person
scene. Its weights are committed next to this file (`probe.safetensors`, sha256 in
`probe.sha256`); retrain them with

    .venv/bin/python -m fakestudio.world.probe --out fakestudio/world/probe.safetensors

(deterministic data from each net's seed; CPU, about 12-20 minutes a net on 2 cores).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from detectors.fingerprint import sha256_file
from fakestudio.world.attributes import ALL_VALUES, ATTRIBUTES
from fakestudio.world.draw import WORLD_INK, Ink, render
from fakestudio.world.scenes import random_scene

VIEW = 128
WEIGHTS = Path(__file__).with_name("probe.safetensors")
TWO_PERSON_BOX = (0.14, 0.64)  # vertical extent of a two-person view, in picture heights
# The probe is an ensemble, its nets' probabilities averaged: (seed, pattern inks) of each
# (`random_ink`). Nets that read renders equally well (98-99%) disagree on generated pictures
# (blurred faces, soft stripes): the net trained on the world's own ink reads b0bz's soft
# stripes as dots, nets trained on varied inks read ad4x's blurred pink hair as red in some
# encounters, and those three read a yellow shirt with saturated orange stripes as red (the
# fourth, trained on bolder off-colour patterns, reads it yellow).
MEMBERS: tuple[tuple[int, str], ...] = (
    (0, "world"),
    (0, "varied"),
    (1, "varied"),
    (2, "bold"),
)
INKS = ("world", "varied", "bold")


def views(image: Image.Image, people: int) -> list[Image.Image]:
    """One VIEW x VIEW picture per person, left to right."""
    image = image.convert("RGB")
    w, h = image.size
    if people == 1:
        return [image.resize((VIEW, VIEW), Image.BILINEAR)]
    if people != 2:
        raise ValueError(f"people={people}: the probe reads one or two people")
    y0, y1 = (int(v * h) for v in TWO_PERSON_BOX)
    return [
        image.crop((x0, y0, x0 + w // 2, y1)).resize((VIEW, VIEW), Image.BILINEAR)
        for x0 in (0, w // 2)
    ]


def _net():
    import torch
    from torch import nn

    def block(cin, cout):
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.BatchNorm2d(cout), nn.ReLU()
        )

    class ProbeNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                block(3, 24), block(24, 48), block(48, 64), block(64, 96),
                nn.Conv2d(96, 48, 1), nn.ReLU(), nn.Flatten(),
                nn.Linear(48 * 8 * 8, 160), nn.ReLU(),
            )  # fmt: skip
            self.heads = nn.ModuleDict({a: nn.Linear(160, len(ALL_VALUES[a])) for a in ATTRIBUTES})

        def forward(self, x):
            f = self.features(x)
            return {a: h(f) for a, h in self.heads.items()}

    torch.manual_seed(0)
    return ProbeNet()


def _batch(images: list[Image.Image]):
    import torch

    arr = np.stack([np.asarray(im, dtype=np.float32) for im in images]) / 127.5 - 1.0
    return torch.from_numpy(arr.transpose(0, 3, 1, 2).copy())


@dataclass
class Probe:
    nets: list  # an ensemble: their probabilities are averaged

    def read_views(self, images: list[Image.Image]) -> list[dict[str, str]]:
        """Attributes of the person in each view."""
        import torch

        out = []
        with torch.no_grad():
            for i in range(0, len(images), 64):
                x = _batch(images[i : i + 64])
                reads = [net(x) for net in self.nets]
                idx = {
                    a: sum(r[a].softmax(1) for r in reads).argmax(1).tolist() for a in ATTRIBUTES
                }
                for j in range(len(images[i : i + 64])):
                    out.append({a: ALL_VALUES[a][idx[a][j]] for a in ATTRIBUTES})
        return out

    def read(self, image: Image.Image, people: int = 1) -> list[dict[str, str]]:
        """Attributes of each person in a picture, left to right."""
        return self.read_views(views(image, people))


def load_probe(path: Path = WEIGHTS) -> Probe:
    """The committed probe; FileNotFoundError if its weights are missing, ValueError if their
    sha256 is missing or differs from the one committed beside them (the probe's readings are
    the world base's measured quality: weights that cannot be checked are not used)."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no probe weights (train them: python -m {__name__})")
    expected = path.with_suffix(".sha256")
    if not expected.exists():
        raise ValueError(f"{path}: no {expected.name} beside it: the weights cannot be checked")
    if expected.read_text().split()[0] != sha256_file(path):
        raise ValueError(f"{path}: sha256 differs from {expected.name}")
    state = {k: v.float() for k, v in load_file(str(path)).items()}
    groups: dict[str, dict] = {}
    for k, v in state.items():
        member, _, name = k.partition(".") if re.match(r"m\d+\.", k) else ("m0", "", k)
        groups.setdefault(member, {})[name] = v
    nets = []
    for member in sorted(groups, key=lambda m: int(m[1:])):
        net = _net()
        net.load_state_dict(groups[member])
        nets.append(net.eval())
    return Probe(nets)


# -- training -------------------------------------------------------------------------------------


def random_ink(rng: np.random.Generator, kind: str = "varied") -> Ink:
    """The pattern colours of a training scene (`INKS`). "world": the world's own. "varied":
    half the scenes keep them, the others get softer patterns, some of them off-colour: a
    generated shirt's stripes are often so, and they are still stripes (the net trained on the
    world's own ink reads half-contrast stripes as dots). "bold": as varied, but off-colour
    twice as often and up to full strength (a LoRA draws b0bz's yellow shirt with saturated
    orange stripes; it is still a yellow shirt)."""
    if kind == "world" or rng.random() < 0.5:
        return WORLD_INK
    bold = kind == "bold"
    tinted = rng.random() < (0.6 if bold else 0.3)
    tint = tuple(int(v) for v in rng.integers(0, 256, 3)) if tinted else None
    top = 1.0 if bold or not tint else 0.7
    return Ink(contrast=float(rng.uniform(0.3, top)), tint=tint)


def labelled_views(
    rng: np.random.Generator, n: int, augment: bool = True, inks: str = "world"
) -> list[tuple[Image.Image, dict[str, str]]]:
    """n (view, attributes) pairs from random world scenes, held-out values included;
    `augment`: softened, shifted and noisy; `inks`: the pattern colours (`random_ink`)."""
    out = []
    while len(out) < n:
        scene = random_scene(rng, two=0.4, held_out=True)
        ink = WORLD_INK if inks == "world" else random_ink(rng, inks)
        vs = views(render(scene, 256, ink=ink), len(scene.people))
        for v, attrs in zip(vs, scene.attributes(), strict=True):
            out.append((_augment(v, rng) if augment else v, attrs))
    return out[:n]


def _augment(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Generated pictures are softer, noisier and less well placed than renders."""
    dx, dy = (int(v) for v in rng.integers(-6, 7, 2))
    im = im.transform(im.size, Image.AFFINE, (1, 0, dx, 0, 1, dy), resample=Image.BILINEAR)
    if rng.random() < 0.7:
        im = im.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.2, 1.5))))
    arr = np.asarray(im, dtype=np.float32) * rng.uniform(0.85, 1.12)
    arr += rng.normal(0, rng.uniform(0, 8), arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def targets(attrs: list[dict[str, str]]):
    import torch

    return {a: torch.tensor([ALL_VALUES[a].index(x[a]) for x in attrs]) for a in ATTRIBUTES}


def accuracy(probe: Probe, n: int = 400, seed: int = 99) -> dict[str, float]:
    """Per-attribute accuracy on n fresh, unaugmented views (scenes the probe never saw)."""
    data = labelled_views(np.random.default_rng([seed, 7]), n, augment=False)
    read = probe.read_views([v for v, _ in data])
    acc = {
        a: float(np.mean([r[a] == t[a] for r, (_, t) in zip(read, data, strict=True)]))
        for a in ATTRIBUTES
    }
    acc["mean"] = float(np.mean([acc[a] for a in ATTRIBUTES]))
    return acc


def _augment_batch(x, gen):
    """Cheap augmentation on a batch tensor: shift, softening, brightness, noise."""
    import torch

    n = x.shape[0]
    dx, dy = (int(v) for v in torch.randint(-6, 7, (2,), generator=gen))
    x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    soft = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    k = torch.rand(n, 1, 1, 1, generator=gen)
    x = x * (1 - k) + soft * k
    x = (x + 1) * torch.empty(n, 1, 1, 1).uniform_(0.85, 1.12, generator=gen) - 1
    return x + torch.randn(x.shape, generator=gen) * torch.rand(n, 1, 1, 1, generator=gen) * 0.06


def train_member(
    seed: int,
    inks: str = "varied",
    steps: int = 1500,
    batch: int = 64,
    n_views: int = 10000,
    log=print,
) -> dict:
    """One net on its own n_views rendered views (drawn once from `seed`, with the pattern
    `inks` of `random_ink`, augmented every step); its fp16 state dict."""
    import torch

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    data = labelled_views(np.random.default_rng([seed, 3]), n_views, augment=False, inks=inks)
    pixels = torch.from_numpy(np.stack([np.asarray(v) for v, _ in data]))  # N H W 3 uint8
    tgt_all = targets([t for _, t in data])
    del data
    net = _net()
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    for step in range(steps):
        idx = torch.randint(0, len(pixels), (batch,), generator=gen)
        x = pixels[idx].permute(0, 3, 1, 2).float() / 127.5 - 1.0
        net.train()
        logits = net(_augment_batch(x, gen))
        loss = sum(
            torch.nn.functional.cross_entropy(logits[a], tgt_all[a][idx]) for a in ATTRIBUTES
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            log(
                json.dumps(
                    {"seed": seed, "inks": inks, "step": step, "loss": round(loss.item(), 4)}
                )
            )
    net.eval()
    state = {k: v.detach().half().contiguous() for k, v in net.state_dict().items()}
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}


def save_members(out: Path, members: list[dict]) -> Path:
    """Write member state dicts as one probe file (keys m0., m1., ...) and its sha256."""
    from safetensors.torch import save_file

    state = {f"m{i}.{k}": v for i, m in enumerate(members) for k, v in m.items()}
    tmp = Path(out).with_suffix(".partial")
    save_file(state, str(tmp), metadata={"values": json.dumps(ALL_VALUES)})
    tmp.replace(out)
    Path(out).with_suffix(".sha256").write_text(f"{sha256_file(out)}  {Path(out).name}\n")
    return Path(out)


def train(
    out: Path,
    steps: int = 1500,
    batch: int = 64,
    n_views: int = 10000,
    members: tuple[tuple[int, str], ...] = MEMBERS,
    log=print,
) -> dict:
    """Train the `members` nets ((seed, inks) each), write them as one probe file."""
    nets = [train_member(seed, inks, steps, batch, n_views, log) for seed, inks in members]
    save_members(out, nets)
    acc = accuracy(load_probe(out))
    log(json.dumps({"accuracy": acc}))
    return acc


def main() -> None:
    import click

    @click.command()
    @click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=WEIGHTS)
    @click.option("--steps", type=click.IntRange(min=1), default=1500)
    @click.option("--views", "n_views", type=click.IntRange(min=64), default=10000)
    def cli(out, steps, n_views):
        """Train the attribute probe (the nets of MEMBERS, ~12-20 min each on 2 cores) on world
        renders; write weights + sha256."""
        import torch

        torch.set_num_threads(2)
        train(out, steps=steps, n_views=n_views)

    cli()


if __name__ == "__main__":
    main()
