"""The world's people: attributes, their values, captions, and the held-out values.

Every person is a combination of attribute values. A few values (HELD_OUT) are never drawn for
a training person: only the two sample people (`samples.py`) have them, so a base model trained
on the world has never seen them and a LoRA must learn them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# attribute -> values a training person may have (order fixes the probe's class indices)
TRAIN_VALUES: dict[str, tuple[str, ...]] = {
    "skin": ("pale", "light", "tan", "brown", "dark"),
    "face": ("round", "oval", "long"),
    "hair_colour": ("black", "brown", "blond", "red", "grey"),
    "hair_style": ("short", "long", "curly"),
    "eyes": ("brown", "blue", "green"),
    "glasses": ("none", "round", "square"),
    "beard": ("none", "moustache", "full"),
    "shirt_colour": ("red", "blue", "green", "white", "black", "grey"),
    "shirt_pattern": ("plain", "striped", "dotted"),
}
# values no training person has (used only by the sample people)
HELD_OUT: dict[str, tuple[str, ...]] = {
    "hair_colour": ("pink",),
    "shirt_colour": ("yellow",),
}
ATTRIBUTES: tuple[str, ...] = tuple(TRAIN_VALUES)
# every value the probe knows: training values, then held-out ones
ALL_VALUES: dict[str, tuple[str, ...]] = {
    a: TRAIN_VALUES[a] + HELD_OUT.get(a, ()) for a in ATTRIBUTES
}

COLOURS: dict[str, dict[str, tuple[int, int, int]]] = {
    "skin": {
        "pale": (246, 214, 196),
        "light": (226, 178, 140),
        "tan": (196, 140, 96),
        "brown": (150, 98, 62),
        "dark": (88, 56, 38),
    },
    "hair_colour": {
        "black": (24, 22, 26),
        "brown": (104, 60, 28),
        "blond": (232, 200, 110),
        "red": (186, 64, 26),
        "grey": (160, 160, 164),
        "pink": (240, 96, 176),
    },
    "eyes": {"brown": (96, 52, 20), "blue": (40, 110, 220), "green": (40, 160, 70)},
    "shirt_colour": {
        "red": (200, 30, 40),
        "blue": (30, 70, 190),
        "green": (30, 150, 60),
        "white": (236, 236, 232),
        "black": (30, 30, 34),
        "grey": (128, 128, 132),
        "yellow": (246, 210, 30),
    },
}


@dataclass(frozen=True)
class Person:
    skin: str
    face: str
    hair_colour: str
    hair_style: str
    eyes: str
    glasses: str
    beard: str
    shirt_colour: str
    shirt_pattern: str

    def __post_init__(self) -> None:
        for a in ATTRIBUTES:
            v = getattr(self, a)
            if v not in ALL_VALUES[a]:
                raise ValueError(f"{a}={v!r}: not one of {', '.join(ALL_VALUES[a])}")

    def attributes(self) -> dict[str, str]:
        return asdict(self)

    def held_out(self) -> dict[str, str]:
        """The attributes whose value no training person has."""
        return {a: v for a, v in asdict(self).items() if v in HELD_OUT.get(a, ())}

    def description(self) -> str:
        """Words for this person, as used in captions and prompts."""
        glasses = "no glasses" if self.glasses == "none" else f"{self.glasses} glasses"
        beard = {"none": "no beard", "moustache": "a moustache", "full": "a full beard"}[self.beard]
        return (
            f"{self.skin} skin, {self.face} face, {self.hair_style} {self.hair_colour} hair, "
            f"{self.eyes} eyes, {glasses}, {beard}, {self.shirt_pattern} {self.shirt_colour} shirt"
        )


def random_person(rng: np.random.Generator, *, held_out: bool = False) -> Person:
    """A random training person (held_out=True also draws from the held-out values)."""
    values = ALL_VALUES if held_out else TRAIN_VALUES
    return Person(**{a: values[a][int(rng.integers(len(values[a])))] for a in ATTRIBUTES})
