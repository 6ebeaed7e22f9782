"""The options every picture-making command shares (`generate`, `encounter`), in one place.

Their names match the fields of GenerateConfig and EncounterConfig, so a command passes them
on as they are: `Config(prompt=..., **render)`.
"""

from __future__ import annotations

from pathlib import Path

import click

from fakestudio.errors import UserError

MAX_SEED = 2**64 - 1


class SeedType(click.ParamType):
    """A seed: 0 .. 2^64-1; -1 means random, as in Automatic1111; other negatives are refused."""

    name = "seed"

    def convert(self, value, param, ctx):
        if isinstance(value, int) and not isinstance(value, bool):
            v = value
        else:
            try:
                v = int(str(value).strip(), 10)
            except ValueError:
                raise UserError(f"--seed {value}: not a whole number") from None
        if v == -1:
            return None
        if not 0 <= v <= MAX_SEED:
            raise UserError(
                f"--seed {value}: out of range; seeds are 0 .. {MAX_SEED} (2^64-1), "
                "and -1 means random"
            )
        return v


RENDER_OPTIONS = [
    click.option(
        "--out",
        "-o",
        type=click.Path(path_type=Path),
        default=Path("out"),
        show_default=True,
        help="Output folder (created if missing).",
    ),
    click.option(
        "-n", "--num", "n", type=int, default=1, show_default=True, help="Number of images."
    ),
    click.option(
        "--seed",
        type=SeedType(),
        default=None,
        help="Seed of the first image (image i uses seed+i), 0 .. 2^64-1. Default, or -1 "
        "(as in Automatic1111): random, and recorded. Other negative seeds are refused.",
    ),
    click.option("--negative", default="", help="Negative prompt."),
    click.option("--steps", type=int, default=20, show_default=True),
    click.option(
        "--guidance",
        type=float,
        default=None,
        help="Classifier-free guidance scale. Default: what the base recommends (its "
        "fakestudio.json: 3 on world), else 7.",
    ),
    click.option(
        "--width",
        type=int,
        default=None,
        help="Pixels, divisible by 8, at least 256. Default: the base's native size.",
    ),
    click.option("--height", type=int, default=None),
    click.option(
        "--scheduler",
        default="euler",
        show_default=True,
        help="euler, euler_a, ddim, dpm++2m, dpm++2m_karras, unipc, heun, lms, pndm, ... "
        "(A1111 names work too).",
    ),
    click.option(
        "--base",
        default=None,
        help="'world' (the default, or $FAKESTUDIO_BASE: the project's own base of drawn "
        "people, docs/world-model.md), 'tiny' (random weights, fast), a diffusers SD1.5/SDXL "
        "folder, a single-file .safetensors checkpoint, or a cached hub id.",
    ),
    click.option(
        "--config",
        type=click.Path(path_type=Path),
        default=None,
        help="For single-file checkpoints: a diffusers folder whose configs match the weights.",
    ),
    click.option(
        "--tokenizer",
        type=click.Path(path_type=Path),
        default=None,
        help="For single-file checkpoints: a CLIP tokenizer folder.",
    ),
    click.option(
        "--format",
        "fmt",
        type=click.Choice(["png", "jpeg", "webp"]),
        default="png",
        show_default=True,
    ),
    click.option("--badge", is_flag=True, help="Also stamp a visible 'AI-generated' badge."),
    click.option(
        "--record-prompt",
        is_flag=True,
        help="Put the prompt into the manifest and metadata (off by default).",
    ),
    click.option(
        "--device", default=None, help="cpu, cuda, cuda:1 ... Default: cuda when available."
    ),
    click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON."),
]


def render_options(command):
    """Decorate a command with RENDER_OPTIONS (shown in this order in --help)."""
    for option in reversed(RENDER_OPTIONS):
        command = option(command)
    return command


def tsa_option(command):
    """`--tsa URL`: an RFC 3161 time-stamp authority for every signature the command makes
    (passed as `tsa`, not part of the render options; see `label.manifest.time_stamping`)."""
    return click.option(
        "--tsa",
        "tsa",
        default=None,
        metavar="URL",
        help="Time-stamp every signature at this RFC 3161 time-stamp authority (one request per "
        "file; checked before any work). Default: none, and nothing touches the network.",
    )(command)
