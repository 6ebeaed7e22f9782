"""Train the world base model (docs/world-model.md) in resumable slices.

    .venv/bin/python scripts/train_world.py --minutes 60 --background     # one slice
    .venv/bin/python scripts/train_world.py --status                       # where it stands
    .venv/bin/python scripts/train_world.py --export fakestudio/world/base  # fp16 + base.sha256

Run it again with the same --run-dir to continue exactly where the last slice stopped
(checkpoints: safetensors + JSON, in the user cache unless --run-dir says otherwise).
--background runs it at the lowest CPU priority, in a session (and so a scheduler autogroup)
of its own: on a shared machine it only uses what nobody else wants.
Stop a slice early with Ctrl-C or SIGTERM: it saves a checkpoint first.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


def lowest_priority() -> None:
    """nice 19; and since Linux shares CPU between sessions (autogroups) before nice values
    count, a session of our own whose autogroup is niced too."""
    import os

    try:
        os.setsid()
    except OSError:
        pass  # already a session leader
    os.nice(19 - os.nice(0))
    if os.getsid(0) == os.getpid():
        try:
            Path("/proc/self/autogroup").write_text("19")
        except OSError:
            pass  # no autogroups here: nice alone does it


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the run lives (default: <user cache>/fakestudio/world-train-9).",
)
@click.option(
    "--minutes", type=click.FloatRange(min=0, min_open=True), help="Stop after this long."
)
@click.option("--steps", type=click.IntRange(min=1), help="Stop after this many steps.")
@click.option("--vae-steps", type=click.IntRange(min=1), help="VAE steps in all (recipe).")
@click.option("--unet-steps", type=click.IntRange(min=1), help="UNet steps in all (recipe).")
@click.option("--eval-every", type=click.IntRange(min=0), help="UNet steps between probe measures.")
@click.option(
    "--scale", type=click.Choice(["base", "test"]), help="Model size (test: a miniature)."
)
@click.option("--cache-scenes", type=click.IntRange(min=1), help="Scenes in the latent cache.")
@click.option(
    "--text-pretrain",
    type=click.IntRange(min=0),
    help="Steps of the text encoder's reading lesson before the UNet (0: none; new runs only).",
)
@click.option(
    "--from-run",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Start a new run at the UNet stage with this run's VAE and latent cache.",
)
@click.option("--status", is_flag=True, help="Print where the run stands; train nothing.")
@click.option(
    "--export",
    "export_to",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the current (EMA) weights as a diffusers folder (fp16); train nothing.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.option("--background", is_flag=True, help="Lowest CPU priority (nice 19, own autogroup).")
def main(
    run_dir,
    minutes,
    steps,
    vae_steps,
    unet_steps,
    eval_every,
    scale,
    cache_scenes,
    text_pretrain,
    from_run,
    status,
    export_to,
    as_json,
    background,
):
    """Train the world base model: VAE, latent cache, then UNet + text encoder."""
    if background:
        lowest_priority()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from dataclasses import asdict, replace

    from fakestudio.quiet import quiet_libraries
    from fakestudio.world.trainer import (
        LEGACY,
        VAE_AND_CACHE,
        WorldRecipe,
        WorldTrainer,
        default_run_dir,
    )

    quiet_libraries()
    run_dir = run_dir or default_run_dir()
    saved = run_dir / "recipe.json"
    try:
        recipe = (
            WorldRecipe(**(LEGACY | json.loads(saved.read_text())))
            if saved.exists()
            else WorldRecipe()
        )
    except (OSError, ValueError, TypeError) as e:
        raise click.UsageError(f"{saved}: not a world-train recipe ({e})") from e
    if from_run and not saved.exists():  # a new run takes the VAE's and the cache's recipe
        source = from_run / "recipe.json"
        try:
            theirs = LEGACY | json.loads(source.read_text())
            recipe = replace(recipe, **{k: theirs[k] for k in VAE_AND_CACHE})
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise click.UsageError(f"{source}: not a world-train recipe ({e})") from e
    changes = {
        k: v
        for k, v in dict(
            vae_steps=vae_steps,
            unet_steps=unet_steps,
            eval_every=eval_every,
            scale=scale,
            cache_scenes=cache_scenes,
            text_pretrain=text_pretrain,
        ).items()
        if v is not None
    }
    try:
        trainer = WorldTrainer(
            run_dir, replace(recipe, **changes), log=click.echo, from_run=from_run
        )
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    if export_to:
        out = trainer.export(export_to)
        click.echo(f"wrote {out}")
        return
    result = trainer.status() if status else trainer.run(minutes=minutes, max_steps=steps)
    result["recipe"] = asdict(trainer.recipe)
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(
            f"{result['stage']} step {result['step']}, {result['elapsed_s'] / 60:.1f} min trained "
            f"({result['run_dir']})"
        )


if __name__ == "__main__":
    main()
