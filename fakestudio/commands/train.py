"""`fakestudio train` and `fakestudio lora-info`.

The options a user reaches for are flags, grouped in `--help`; the rest of `TrainConfig`
lives in an optional `--config train.toml` (flags win over the file).
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import click

from fakestudio.extras import require

SECTIONS = {
    "Output": ["out", "fmt", "run_dir"],
    "Model": ["base", "base_config", "tokenizer"],
    "LoRA and schedule": [
        "rank",
        "alpha",
        "train_text_encoder",
        "layers",
        "max_steps",
        "epochs",
        "batch_size",
        "lr",
        "lr_scheduler",
        "warmup_steps",
        "resolution",
        "seed",
    ],
    "Quality": [
        "min_snr_gamma",
        "noise_offset",
        "caption_dropout",
        "class_images",
        "class_prompt",
        "prior_images",
    ],
    "Speed and memory": ["mixed_precision", "gradient_checkpointing", "cache", "device"],
    "Checkpoints and previews": ["checkpoint_every", "resume", "sample_every", "sample_prompt"],
}


class _Sectioned(click.Command):
    """--help with the options in named sections instead of one long wall."""

    def format_options(self, ctx, formatter):
        records = {}
        for p in self.get_params(ctx):
            if isinstance(p, click.Argument):
                continue
            rec = p.get_help_record(ctx)
            if rec:
                records[p.name] = rec
        for title, names in SECTIONS.items():
            rows = [records.pop(n) for n in names if n in records]
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)
        if records:
            with formatter.section("General"):
                formatter.write_dl(list(records.values()))


P = click.Path(path_type=Path)


@click.command(cls=_Sectioned)
@click.argument("dataset", type=P)
@click.option("--out", "-o", type=P, required=True, help="The LoRA file to write (.safetensors).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["peft", "kohya", "both"]),
    default=None,
    help="kohya: Automatic1111/ComfyUI/kohya key names (default); peft: diffusers' form "
    "(ComfyUI reads it too); both: OUT (kohya) and OUT's stem + .peft.safetensors. "
    "Both load in fakestudio and diffusers.",
)
@click.option(
    "--run-dir", type=P, default=None, help="Checkpoints and previews [OUT's stem-training/]."
)
@click.option(
    "--base",
    default=None,
    help="'world' (default, or $FAKESTUDIO_BASE), 'tiny', a diffusers SD1.x/2.x/SDXL folder, "
    "a .safetensors checkpoint, or a cached hub id.",
)
@click.option(
    "--base-config",
    type=P,
    default=None,
    help="Single-file bases: a diffusers folder of matching configs.",
)
@click.option(
    "--tokenizer", type=P, default=None, help="Single-file bases: a CLIP tokenizer folder."
)
@click.option("--rank", type=int, default=None, help="LoRA rank [8].")
@click.option("--alpha", type=float, default=None, help="LoRA alpha; scale = alpha/rank [= rank].")
@click.option(
    "--train-text-encoder/--no-train-text-encoder",
    default=None,
    help="Also train LoRA on the text encoder(s) [no].",
)
@click.option(
    "--layers",
    type=click.Choice(["attention", "all"]),
    default=None,
    help="UNet layers with LoRA: attention (the usual LoRA) or all (also feed-forward and "
    "ResNet convolutions, kohya's LoCon) [attention].",
)
@click.option(
    "--steps",
    "max_steps",
    type=int,
    default=None,
    help="Optimizer steps [100 repeats of every photo].",
)
@click.option(
    "--epochs", type=int, default=None, help="Passes over the dataset (instead of --steps)."
)
@click.option("--batch-size", type=int, default=None, help="Images per step and process [1].")
@click.option("--lr", type=float, default=None, help="Learning rate [1e-4].")
@click.option(
    "--lr-scheduler",
    type=click.Choice(["constant", "cosine", "linear"]),
    default=None,
    help="[constant], after --warmup-steps of linear warm-up.",
)
@click.option("--warmup-steps", type=int, default=None, help="[0]")
@click.option(
    "--resolution",
    type=int,
    default=None,
    help="Must equal the dataset's (checked) [the dataset's].",
)
@click.option("--seed", type=int, default=None, help="[0]")
@click.option(
    "--min-snr-gamma", type=float, default=None, help="Min-SNR loss weighting; 5 is usual [off]."
)
@click.option(
    "--noise-offset", type=float, default=None, help="Helps very dark/bright images; ~0.05 [0]."
)
@click.option(
    "--caption-dropout",
    type=float,
    default=None,
    help="Share of steps trained on an empty caption [0].",
)
@click.option(
    "--class-images",
    type=P,
    default=None,
    help="Prior preservation: a folder of class images (e.g. from `fakestudio generate`).",
)
@click.option("--class-prompt", default=None, help="Their caption [photo of a <class word>].")
@click.option(
    "--prior-images",
    type=int,
    default=None,
    help="Prior preservation without --class-images: the base first draws this many [0].",
)
@click.option(
    "--mixed-precision",
    type=click.Choice(["no", "fp16", "bf16"]),
    default=None,
    help="[no]; fp16 needs CUDA.",
)
@click.option(
    "--gradient-checkpointing/--no-gradient-checkpointing",
    default=None,
    help="Less memory, ~30% slower [off].",
)
@click.option("--cache/--no-cache", default=None, help="Cache latents and text embeddings [on].")
@click.option(
    "--device", type=click.Choice(["cpu", "cuda"]), default=None, help="[cuda when present]"
)
@click.option(
    "--checkpoint-every",
    type=int,
    default=None,
    help="Checkpoint every N steps [0: at the end and on Ctrl-C].",
)
@click.option(
    "--resume",
    is_flag=True,
    default=None,
    help="Continue from the newest checkpoint in the run folder, exactly.",
)
@click.option(
    "--sample-every",
    type=int,
    default=None,
    help="A labelled preview image every N steps [0: none].",
)
@click.option("--sample-prompt", default=None, help="Preview prompt [the first caption].")
@click.option(
    "--config",
    "toml",
    type=P,
    default=None,
    help="A TOML file with any TrainConfig field (flags win).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress or log lines.")
def train(dataset, out, fmt, cache, toml, as_json, quiet, **options):
    """Train a LoRA on DATASET (made by `fakestudio prepare`).

    \b
    fakestudio train dataset/ --out ben0a.safetensors
    fakestudio train dataset/ --out ben0a.safetensors --base ~/models/sd15 \\
        --mixed-precision bf16 --steps 2400 --sample-every 200 --checkpoint-every 500
    accelerate launch --multi_gpu --num_processes 4 -m fakestudio train dataset/ --out x.safetensors

    Defaults in [brackets] are fakestudio's; a base may bring its own (a fakestudio.json in
    its folder: the world base trains all layers at lr 4e-4 with the text encoder and 16 prior
    images).
    Ctrl-C saves a checkpoint and exits 130; add --resume to the same command to continue.
    Exit codes: 0 done, 2 bad input or a diverged run (one line says why), 130 interrupted.
    """
    require("studio", "train")
    from fakestudio.train.config import make_config
    from fakestudio.train.loop import TrainingInterrupted
    from fakestudio.train.loop import train as run

    if fmt is not None:
        options["format"] = fmt
    if cache is not None:
        options["cache_latents"] = options["cache_text"] = cache
    if not options.get("resume"):
        options.pop("resume", None)
    cfg = make_config(dataset, out, toml, **options)
    main = int(os.environ.get("RANK", "0")) == 0
    quiet = quiet or not main
    log = (lambda m: None) if quiet else (lambda m: click.echo(f"fakestudio: {m}", err=True))
    try:
        with _progress(quiet or as_json) as on_step:
            result = run(cfg, on_step=on_step, log=log)
    except TrainingInterrupted as e:
        if main:
            click.echo(
                f"fakestudio: interrupted at step {e.step}; checkpoint saved to {e.checkpoint}; "
                "run the same command with --resume to continue",
                err=True,
            )
        sys.exit(130)
    if not main:
        return
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    if not quiet:
        done = result.steps - (result.resumed_from or 0)
        rate = f" ({done / result.seconds:.2f} steps/s)" if result.seconds > 0 and done else ""
        loss = f", loss {result.loss:.4f}" if result.loss is not None else ""
        click.echo(f"fakestudio: trained {result.steps} steps{rate}{loss}", err=True)
    for p in result.outputs:
        click.echo(str(p))


@contextmanager
def _progress(quiet: bool):
    """A rich bar with step, loss, lr and ETA on a terminal; a plain line every 5% otherwise."""
    from fakestudio.progress import on_terminal, progress_bars

    if quiet:
        yield lambda info: None
    elif not on_terminal():
        yield _lines
    else:
        fields = "loss {task.fields[loss]}  lr {task.fields[lr]}"
        with progress_bars("", fields=fields, elapsed=True, transient=False) as bars:
            yield lambda info: bars(
                "training", info.step, info.total, loss=f"{info.loss:.4f}", lr=f"{info.lr:.2e}"
            )


def _lines(info) -> None:
    every = max(1, info.total // 20)
    if info.step % every and info.step != info.total:
        return
    done = info.step - info.first_step
    rate = done / info.seconds if info.seconds > 0 else 0.0
    eta = (info.total - info.step) / rate if rate else 0.0
    click.echo(
        f"step {info.step}/{info.total}  loss {info.loss:.4f}  lr {info.lr:.2e}  "
        f"{rate:.2f} steps/s  ETA {time.strftime('%H:%M:%S', time.gmtime(eta))}",
        err=True,
    )


# -------------------------------------------------------------------------------- lora-info

FORM_WORDS = {
    "peft": "diffusers (unet.* / text_encoder.* keys)",
    "kohya": "kohya/Automatic1111 (lora_unet_* / lora_te_* keys)",
    "other": "unrecognised key layout",
}
PART_WORDS = {"unet": "UNet", "text_encoder": "text encoder", "text_encoder_2": "text encoder 2"}


@click.command("lora-info")
@click.argument("file", type=P)
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
def lora_info(file, as_json):
    """Describe a LoRA file: trigger word, base model, dataset, consent, rank/alpha, steps.

    Works on any LoRA: fakestudio's header, kohya's ss_* metadata, or only its tensors.
    """
    from fakestudio.lora_info import describe_lora

    info = describe_lora(file)
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
        return
    rows = [
        ("file", f"{info['file']} ({_size(info['bytes'])}, sha256 {info['sha256'][:12]})"),
        ("form", FORM_WORDS[info["form"]]),
        ("modules", ", ".join(f"{PART_WORDS.get(k, k)} {v}" for k, v in info["parts"].items())),
        (
            "rank / alpha",
            f"{info['rank']} / {info['alpha'] if info['alpha'] is not None else '?'}"
            + (f" (scale {info['scale']:g})" if info["scale"] is not None else ""),
        ),
        ("fits", info["architecture"]),
    ]
    if info["trigger"]:
        rows.append(("trigger word", info["trigger"]))
    a1 = info["a1111"]
    rows += [
        (
            "Automatic1111",
            f"{a1['name']} ({a1['sd_version']}), tag {a1['tag']}, hash {a1['hash']}, "
            f"legacy hash {a1['legacy_hash']}"
            + ("" if a1["loads"] else "; A1111 loads only the kohya form (--format kohya)"),
        ),
        ("ComfyUI", f"{info['comfyui']['name']} (LoraLoader)"),
    ]
    ours = info["fakestudio"]
    if ours:
        rows += [
            ("class word", ours.get("class_word") or "-"),
            (
                "base model",
                f"{ours.get('base_model')} (sha256 {str(ours.get('base_sha256'))[:12]})",
            ),
            (
                "dataset",
                f"fingerprint {str(ours.get('dataset_fingerprint'))[:16]}, {ours.get('images')} images",
            ),
            ("consent", ours.get("consent") or "(none recorded)"),
            (
                "training",
                f"{ours.get('steps')} steps, lr {ours.get('lr')} {ours.get('lr_scheduler')}, "
                f"{ours.get('resolution')} px, batch {ours.get('batch_size')}"
                + (", text encoder" if ours.get("train_text_encoder") else ""),
            ),
            ("made by", f"{ours.get('software')}, {ours.get('created')}"),
        ]
    if info["kohya"] and not ours:  # ours: the ss_* keys repeat our header (see --json)
        for k, v in info["kohya"].items():
            rows.append((k, json.dumps(v) if not isinstance(v, str) else v))
    if not ours and not info["kohya"]:
        rows.append(("metadata", "none (no fakestudio header, no kohya ss_* keys)"))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        click.echo(f"{k:>{width}}  {v}")


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
