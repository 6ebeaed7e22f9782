"""The procedural world: deterministic pictures with captions and ground truth; held-out values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fakestudio.world import ATTRIBUTES, HELD_OUT, TRAIN_VALUES, Person, random_scene, render
from fakestudio.world.samples import SAMPLE_PEOPLE, write_samples
from fakestudio.world.scenes import scene_stream

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def test_same_seed_same_picture_and_caption():
    a = random_scene(np.random.default_rng(5), two=0.5)
    b = random_scene(np.random.default_rng(5), two=0.5)
    assert a == b and a.caption() == b.caption()
    assert np.array_equal(np.asarray(render(a)), np.asarray(render(b)))
    c = random_scene(np.random.default_rng(6), two=0.5)
    assert not np.array_equal(np.asarray(render(a)), np.asarray(render(c)))


def test_caption_names_every_attribute_of_everyone():
    stream = scene_stream(1, two=0.5)
    n_two = 0
    for _ in range(50):
        scene = next(stream)
        caption = scene.caption()
        n_two += len(scene.people) == 2
        for attrs in scene.attributes():
            for a in ("skin", "face", "hair_colour", "eyes", "shirt_colour", "shirt_pattern"):
                assert attrs[a] in caption
        assert render(scene, 128).size == (128, 128)
    assert 10 < n_two < 40


def test_training_people_never_have_held_out_values():
    seen = {a: set() for a in ATTRIBUTES}
    stream = scene_stream(2, two=0.5)
    for _ in range(1500):
        for attrs in next(stream).attributes():
            for a, v in attrs.items():
                seen[a].add(v)
    for a in ATTRIBUTES:
        assert seen[a] == set(TRAIN_VALUES[a]), a  # every training value occurs, nothing else
    for values in HELD_OUT.values():
        assert not set(values) & set().union(*seen.values())


def test_each_sample_person_has_a_held_out_feature():
    for name, person in SAMPLE_PEOPLE.items():
        assert person.held_out(), name
    assert SAMPLE_PEOPLE["ad4x"].held_out() != SAMPLE_PEOPLE["b0bz"].held_out()


def test_unknown_value_is_refused():
    with pytest.raises(ValueError, match="hair_colour='purple'"):
        Person(**(SAMPLE_PEOPLE["ad4x"].attributes() | {"hair_colour": "purple"}))


def test_committed_samples_are_the_world_samples(tmp_path):
    written = write_samples(tmp_path)
    assert len(written) == 16
    for path in written:
        committed = SAMPLES / path.parent.name / path.name
        a = np.asarray(Image.open(committed), dtype=np.int16)
        b = np.asarray(Image.open(path), dtype=np.int16)
        assert a.shape == b.shape and np.abs(a - b).mean() < 1.0, path.name
