"""World scenes: who is in the picture, where, in what light; their captions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fakestudio.world.attributes import Person, random_person

FRAMINGS = ("close-up", "portrait", "half-body")
BACKGROUNDS = ("studio", "office", "outdoors", "conference")
LIGHTS = ("left", "right", "front")
LAYOUTS = ("portrait", "side-by-side", "handshake")  # one person, or two
PLACE = {
    "studio": "in a studio",
    "office": "in an office",
    "outdoors": "outdoors",
    "conference": "at a conference",
}


@dataclass(frozen=True)
class Scene:
    people: tuple[Person, ...]
    layout: str  # LAYOUTS
    framing: str  # FRAMINGS (single portraits)
    background: str  # BACKGROUNDS
    light: str  # LIGHTS
    seed: int  # the small random things: positions, colours of the room, noise

    def caption(self, names: tuple[str, ...] | None = None) -> str:
        """The scene in words. names: words for the people ("ad4x person") instead of
        'a person with ...' descriptions."""
        who = [
            (names[i] if names else f"a person with {p.description()}")
            for i, p in enumerate(self.people)
        ]
        place = PLACE[self.background]
        if len(self.people) == 1:
            return f"a {self.framing} photo of {who[0]}, {place}, light from the {self.light}"
        what = "side by side" if self.layout == "side-by-side" else "shaking hands"
        return f"a photo of two people {what} {place}, on the left {who[0]}, on the right {who[1]}"

    def attributes(self) -> list[dict[str, str]]:
        """Ground truth: one attribute dict per person, left to right."""
        return [p.attributes() for p in self.people]


def random_scene(rng: np.random.Generator, *, two: float = 0.25, held_out: bool = False) -> Scene:
    """A random scene: one person, or two with probability `two`."""
    n = 2 if rng.random() < two else 1
    people = tuple(random_person(rng, held_out=held_out) for _ in range(n))
    layout = "portrait" if n == 1 else str(rng.choice(LAYOUTS[1:]))
    background = str(rng.choice(BACKGROUNDS))
    if n == 2 and rng.random() < 0.5:
        background = "conference"
    return Scene(
        people=people,
        layout=layout,
        framing=str(rng.choice(FRAMINGS)) if n == 1 else "portrait",
        background=background,
        light=str(rng.choice(LIGHTS)),
        seed=int(rng.integers(2**31)),
    )


def scene_stream(seed: int, **kw):
    """An endless, deterministic stream of random scenes."""
    rng = np.random.default_rng(seed)
    while True:
        yield random_scene(rng, **kw)
