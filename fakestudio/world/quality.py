"""Quality measures of a base model on the world, read by the attribute probe."""

from __future__ import annotations

import numpy as np

from fakestudio.world.attributes import ATTRIBUTES
from fakestudio.world.draw import render
from fakestudio.world.scenes import Scene, random_scene


def prompt_scenes(n: int, seed: int = 0, two: float = 0.0) -> list[Scene]:
    """n random scenes of training people: their captions are the prompts."""
    rng = np.random.default_rng([seed, 5])
    return [random_scene(rng, two=two) for _ in range(n)]


def generate(
    pipe,
    prompts: list[str],
    seeds: list[int],
    steps: int = 20,
    guidance: float = 5.0,
    size: int = 256,
    batch: int = 8,
) -> list:
    """Pictures for prompts (PIL), one seed each; never written anywhere by this function."""
    import torch

    images = []
    for i in range(0, len(prompts), batch):
        gens = [torch.Generator().manual_seed(s) for s in seeds[i : i + batch]]
        out = pipe(
            prompts[i : i + batch],
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=gens,
            height=size,
            width=size,
            output_type="pil",
        )
        images += out.images
    return images


def score(probe, scenes: list[Scene], images: list) -> dict:
    """How many attributes the probe reads back as the scenes say, per attribute and overall."""
    hits = {a: [] for a in ATTRIBUTES}
    whole = []
    for scene, image in zip(scenes, images, strict=True):
        read = probe.read(image, people=len(scene.people))
        for got, want in zip(read, scene.attributes(), strict=True):
            for a in ATTRIBUTES:
                hits[a].append(got[a] == want[a])
            whole.append(got == want)
    per = {a: round(float(np.mean(v)), 4) for a, v in hits.items()}
    return {
        "n": len(scenes),
        "adherence": round(float(np.mean([x for v in hits.values() for x in v])), 4),
        "all_right": round(float(np.mean(whole)), 4),
        "per_attribute": per,
    }


def prompt_adherence(
    pipe,
    n: int = 100,
    seed: int = 0,
    steps: int = 20,
    guidance: float = 5.0,
    two: float = 0.0,
    probe=None,
) -> dict:
    """Generate the captions of n random scenes; the share of attributes read back right."""
    from fakestudio.world.probe import load_probe

    probe = probe or load_probe()
    scenes = prompt_scenes(n, seed, two)
    images = generate(
        pipe,
        [s.caption() for s in scenes],
        [seed + i for i in range(n)],
        steps=steps,
        guidance=guidance,
    )
    return score(probe, scenes, images)


def render_adherence(n: int = 100, seed: int = 0, two: float = 0.0, probe=None) -> dict:
    """The same measure on the world's own renders of those prompts: the ceiling."""
    from fakestudio.world.probe import load_probe

    probe = probe or load_probe()
    scenes = prompt_scenes(n, seed, two)
    return score(probe, scenes, [render(s) for s in scenes])


# -- a person recognised ---------------------------------------------------------------------------

RECOGNISED_MATCHES = 7  # of the 9 attributes, the held-out feature among them


def shows(read: dict[str, str], person) -> bool:
    """Whether a probe reading shows `person` (a world `Person`): their held-out feature (which
    no base-trained person has, so chance cannot supply it) and at least RECOGNISED_MATCHES of
    the nine attributes. The probe reads 98% of attributes right on renders, so a perfect
    drawing of the person passes this nearly always."""
    want = person.attributes()
    if any(read[a] != v for a, v in person.held_out().items()):
        return False
    return sum(read[a] == want[a] for a in ATTRIBUTES) >= RECOGNISED_MATCHES


def person_measures(reads: list[dict[str, str]], person) -> dict:
    """For probe readings of many pictures: how often they show `person`, how often the
    held-out feature appears, and the share of the person's attributes read back."""
    want = person.attributes()
    held = person.held_out()
    n = max(len(reads), 1)
    return {
        "n": len(reads),
        "shows": round(sum(shows(r, person) for r in reads) / n, 4),
        "held_out": round(sum(all(r[a] == v for a, v in held.items()) for r in reads) / n, 4),
        "attributes": round(
            sum(r[a] == want[a] for r in reads for a in ATTRIBUTES) / (n * len(ATTRIBUTES)), 4
        ),
    }
