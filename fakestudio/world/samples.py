"""The two sample people of the demo (`samples/ad4x`, `samples/b0bz`), drawn from the world.

Each has one value no training person of the world has (see `attributes.HELD_OUT`): ad4x's
pink hair, b0bz's yellow shirt. A base trained on the world has never drawn them, so a LoRA
trained on a sample folder has to learn them. Deterministic: the same files every time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fakestudio.world.attributes import Person
from fakestudio.world.draw import render
from fakestudio.world.scenes import BACKGROUNDS, FRAMINGS, LIGHTS, Scene

SAMPLE_PEOPLE: dict[str, Person] = {
    "ad4x": Person(
        skin="light",
        face="oval",
        hair_colour="pink",
        hair_style="long",
        eyes="green",
        glasses="none",
        beard="none",
        shirt_colour="blue",
        shirt_pattern="plain",
    ),
    "b0bz": Person(
        skin="brown",
        face="round",
        hair_colour="black",
        hair_style="short",
        eyes="brown",
        glasses="round",
        beard="full",
        shirt_colour="yellow",
        shirt_pattern="striped",
    ),
}
PER_PERSON = 8
SAMPLE_SIZE = 384


def sample_scenes(name: str, n: int = PER_PERSON) -> list[Scene]:
    """The scenes of one sample person's photo set: varied framing, place and light."""
    person = SAMPLE_PEOPLE[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    return [
        Scene(
            people=(person,),
            layout="portrait",
            framing=FRAMINGS[i % len(FRAMINGS)],
            background=BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))],
            light=LIGHTS[int(rng.integers(len(LIGHTS)))],
            seed=int(rng.integers(2**31)),
        )
        for i in range(n)
    ]


def write_samples(root: Path, size: int = SAMPLE_SIZE) -> list[Path]:
    """Write samples/<name>/<name>_NN.jpg for both sample people; returns the files."""
    written = []
    for name in SAMPLE_PEOPLE:
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i, scene in enumerate(sample_scenes(name)):
            path = folder / f"{name}_{i + 1:02d}.jpg"
            tmp = path.with_suffix(".tmp.jpg")
            render(scene, size).save(tmp, quality=88)
            tmp.replace(path)
            written.append(path)
    return written
