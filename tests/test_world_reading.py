"""The text encoder's reading lesson: which tokens are tagged with what, and that it learns."""

import numpy as np
import pytest

from fakestudio.world.attributes import ALL_VALUES, ATTRIBUTES
from fakestudio.world.model import world_tokenizer
from fakestudio.world.reading import IGNORE, NOUNS, SIDES, targets
from fakestudio.world.scenes import random_scene

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tokenizer():
    return world_tokenizer()


def test_each_description_noun_carries_its_persons_attributes_and_side(tokenizer):
    rng = np.random.default_rng(3)
    scenes = [random_scene(rng, two=0.5) for _ in range(40)]
    assert {len(s.people) for s in scenes} == {1, 2}
    ids, labels, side = targets(tokenizer, scenes)
    for i, scene in enumerate(scenes):
        tokens = tokenizer.convert_ids_to_tokens(ids[i].tolist())
        tagged = [j for j in range(len(tokens)) if side[i, j] != IGNORE]
        assert [tokens[j][:-4] for j in tagged] == [w for w in tokens_words(scene) if w in NOUNS]
        for k, j in enumerate(tagged):
            who = k // 7
            want = SIDES[0] if len(scene.people) == 1 else SIDES[1 + who]
            assert SIDES[side[i, j]] == want
            person = scene.people[who].attributes()
            for a in ATTRIBUTES:
                if a in NOUNS[tokens[j][:-4]]:
                    assert ALL_VALUES[a][labels[a][i, j]] == person[a]
                else:
                    assert labels[a][i, j] == IGNORE
        others = [j for j in range(len(tokens)) if j not in tagged]
        assert all(labels[a][i, j] == IGNORE for a in ATTRIBUTES for j in others)


def tokens_words(scene) -> list[str]:
    import re

    return re.findall(r"[a-z]+", scene.caption())


def test_the_lesson_teaches_a_random_encoder_to_read_shirt_colours(tokenizer):
    from fakestudio.world.model import build_models
    from fakestudio.world.reading import Heads, teach

    _, encoder, _, _ = build_models(0, "base", tokenizer)
    rng = np.random.default_rng([0, 42])
    ids, labels, side = targets(tokenizer, [random_scene(rng, two=0.5) for _ in range(256)])

    def shirt_read(enc) -> float:  # a linear read-out of shirt colour, fitted on the features
        with torch.no_grad():
            h = enc(ids)[0]
        heads = Heads(h.shape[-1], torch.Generator().manual_seed(1))
        opt = torch.optim.AdamW(heads.parameters(), 1e-2)
        y = labels["shirt_colour"]
        mask = y != IGNORE
        for _ in range(150):
            loss = torch.nn.functional.cross_entropy(heads.attr["shirt_colour"](h[mask]), y[mask])
            opt.zero_grad()
            loss.backward()
            opt.step()
        return float((heads.attr["shirt_colour"](h[mask]).argmax(-1) == y[mask]).float().mean())

    before = shirt_read(encoder)
    result = teach(encoder, tokenizer, steps=120, seed=0, two=0.35, batch=32)
    assert result["text_read"] >= 0.97
    assert before < 0.8 and shirt_read(encoder) >= 0.97
