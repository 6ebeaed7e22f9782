"""A small procedural world of drawn people, owned by the project (CC0, no real person).

People are combinations of attributes (`attributes.py`), placed in scenes (`scenes.py`: one
person or two, side by side or shaking hands, in a studio, an office, outdoors or at a
conference) and drawn with PIL (`draw.py`). Every picture comes with its caption and its
ground-truth attributes, deterministically from a seed. The world base model (`fakestudio
train-world`, docs/world-model.md) is trained on it; the attribute probe (`probe.py`) reads the
attributes back from any picture.
"""

from fakestudio.world.attributes import (
    ALL_VALUES,
    ATTRIBUTES,
    HELD_OUT,
    TRAIN_VALUES,
    Person,
    random_person,
)
from fakestudio.world.draw import render
from fakestudio.world.scenes import Scene, random_scene, scene_stream

__all__ = [
    "ALL_VALUES",
    "ATTRIBUTES",
    "HELD_OUT",
    "TRAIN_VALUES",
    "Person",
    "Scene",
    "random_person",
    "random_scene",
    "render",
    "scene_stream",
]
