"""The text encoder learns to read captions before the UNet listens to it (stage "text").

Stable Diffusion's UNet learns to draw from a CLIP text encoder that already knows what words
mean. The world's text encoder starts from random weights, and a random causal transformer
mixes a caption's words: "green" in "green eyes" and in "dotted green shirt" come out alike,
so the UNet can learn that something is green but not what. This stage stands in for CLIP's
pretraining with a tagging task on world captions: at each noun of a person's description
(skin, face, hair, eyes, glasses, beard or moustache, shirt) the encoder's output must tell the
values of that noun's attributes (hair: colour and style; shirt: colour and pattern) and
whose they are (the only person, the one on the left, the one on the right). CLIP's text
encoder is causal, a word sees only the words before it, so the noun, which comes after its
adjectives, is where a person's attribute is whole. The linear heads are thrown away after.
"""

from __future__ import annotations

import math

import numpy as np

from fakestudio.world.attributes import ALL_VALUES, ATTRIBUTES

# noun -> the attributes its adjectives give, in description order (see Person.description)
NOUNS: dict[str, tuple[str, ...]] = {
    "skin": ("skin",),
    "face": ("face",),
    "hair": ("hair_colour", "hair_style"),
    "eyes": ("eyes",),
    "glasses": ("glasses",),
    "beard": ("beard",),
    "moustache": ("beard",),
    "shirt": ("shirt_colour", "shirt_pattern"),
}
PER_PERSON = 7  # nouns in one description ("beard" or "moustache" once)
SIDES = ("only", "left", "right")
IGNORE = -100


def targets(tokenizer, scenes) -> tuple:
    """Token ids (N x max_length) of the scenes' captions, and per token the class index of
    each attribute and of the side (IGNORE where a token is not a description's noun)."""
    import torch

    ids = tokenizer(
        [s.caption() for s in scenes],
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    n, length = ids.shape
    labels = {a: torch.full((n, length), IGNORE) for a in ATTRIBUTES}
    side = torch.full((n, length), IGNORE)
    noun_of = {tokenizer.convert_tokens_to_ids(f"{w}</w>"): w for w in NOUNS}
    for i, scene in enumerate(scenes):
        positions = [j for j, t in enumerate(ids[i].tolist()) if t in noun_of]
        if len(positions) != PER_PERSON * len(scene.people):
            raise ValueError(f"caption not read as {len(scene.people)} descriptions: {scene}")
        for k, j in enumerate(positions):
            who = k // PER_PERSON
            person = scene.people[who].attributes()
            for a in NOUNS[noun_of[int(ids[i, j])]]:
                labels[a][i, j] = ALL_VALUES[a].index(person[a])
            side[i, j] = 0 if len(scene.people) == 1 else 1 + who
    return ids, labels, side


class Heads:
    """Linear read-outs of the encoder's token features: one per attribute, one for the side."""

    def __init__(self, width: int, generator):
        import torch

        def linear(k: int):
            layer = torch.nn.Linear(width, k)
            with torch.no_grad():
                layer.weight.copy_(torch.randn(k, width, generator=generator) / math.sqrt(width))
                layer.bias.zero_()
            return layer

        self.attr = {a: linear(len(ALL_VALUES[a])) for a in ATTRIBUTES}
        self.side = linear(len(SIDES))

    def parameters(self) -> list:
        return [p for m in (*self.attr.values(), self.side) for p in m.parameters()]

    def loss_and_accuracy(self, hidden, labels: dict, side) -> tuple:
        """Mean cross-entropy over every labelled token and head; share of them right."""
        import torch.nn.functional as F

        losses, right, total = [], 0, 0
        for head, y in [(self.attr[a], labels[a]) for a in ATTRIBUTES] + [(self.side, side)]:
            mask = y != IGNORE
            logits = head(hidden[mask])
            losses.append(F.cross_entropy(logits, y[mask], reduction="sum"))
            right += int((logits.argmax(-1) == y[mask]).sum())
            total += int(mask.sum())
        return sum(losses) / max(1, total), right / max(1, total)


def teach(
    text_encoder,
    tokenizer,
    steps: int,
    seed: int,
    two: float,
    batch: int = 64,
    lr: float = 1e-3,
    log=None,
) -> dict:
    """Train `text_encoder` in place on the tagging task for `steps` steps (deterministic
    from seed); returns its accuracy on 512 captions it never saw."""
    import torch

    from fakestudio.world.scenes import random_scene

    gen = torch.Generator().manual_seed(seed)
    heads = Heads(text_encoder.config.hidden_size, gen)
    params = list(text_encoder.parameters()) + heads.parameters()
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-2)
    warmup = max(1, steps // 20)
    text_encoder.train()
    for step in range(steps):
        rng = np.random.default_rng([seed, 41, step])
        ids, labels, side = targets(tokenizer, [random_scene(rng, two=two) for _ in range(batch)])
        hidden = text_encoder(ids)[0]
        loss, acc = heads.loss_and_accuracy(hidden, labels, side)
        cosine = 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * step / steps))
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / warmup) * cosine
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if log and (step % 100 == 0 or step == steps - 1):
            log({"text_step": step, "loss": round(loss.item(), 4), "accuracy": round(acc, 4)})
    text_encoder.eval()
    rng = np.random.default_rng([seed, 42])
    ids, labels, side = targets(tokenizer, [random_scene(rng, two=0.5) for _ in range(512)])
    with torch.no_grad():
        _, acc = heads.loss_and_accuracy(text_encoder(ids)[0], labels, side)
    return {"text_read": round(acc, 4)}
