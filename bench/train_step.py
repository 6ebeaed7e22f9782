"""Training speed and peak memory: `fakestudio train`'s loop vs a plain reference loop.

The reference is written here the way diffusers' `train_text_to_image_lora.py` example does it:
peft LoRA on the UNet attention, a DataLoader that opens, resizes and normalises every image
and tokenises every caption on each access, the VAE encoding and the text encoder running on
every step, plain AdamW. Both loops train the same LoRA (rank, targets, lr) on the same images
of the same model, in separate subprocesses (peak RSS is per process), alternating, in one run.

Model: a small-but-not-tiny SD-architecture pipeline with random weights, 256 px: UNet
64/128/256 with cross-attention (layers_per_block 2, attention heads of 32 channels like SD's
40-160, not 8, where CPU attention kernels crawl; 18M parameters), a four-block VAE at a
quarter of SD's width (4M), a 2-layer CLIP text encoder (1M). Its costs keep SD1.5-at-512's
proportions (GFLOPs per image, counted with torch's FlopCounterMode): VAE encode / UNet forward
= 1.52 here, 1.60 for SD1.5 (1,082 / 677); text encoder / UNet = 0.027 here, 0.019 for SD1.5.
`--full-size` uses the SD1.5 architecture (bundled configs) at 512 px: for a GPU.

    .venv/bin/python bench/train_step.py                  # CPU: small model, 256 px, batch 2
    .venv/bin/python bench/train_step.py --full-size --batch 4 --precision bf16   # on a GPU

Each loop runs on one thread by default (`--threads`), so CPU seconds per step stay honest on a
shared machine. Prints the best round of each loop: steps/s (1 / the median step time after
--warmup), CPU seconds per step, wall time for the whole run
(load, caching and writing included), peak memory (max RSS; CUDA: max allocated), the ratio.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


# -- the model and the data ------------------------------------------------------------------


def build_model(folder: Path, full: bool) -> Path:
    import torch
    from diffusers import (
        AutoencoderKL,
        DDPMScheduler,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    from fakestudio import tiny

    torch.manual_seed(0)
    tokenizer = tiny.byte_tokenizer()
    if full:
        cfg = ROOT / "fakestudio" / "configs" / "sd15"
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(cfg / "unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(cfg / "vae"))
        te_cfg = CLIPTextConfig.from_pretrained(cfg / "text_encoder")
        te_cfg.bos_token_id, te_cfg.eos_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id
        te_cfg.pad_token_id = te_cfg.eos_token_id
        text_encoder = CLIPTextModel(te_cfg)
    else:  # a small SD-architecture model: three blocks, attention in the top two
        text_encoder = CLIPTextModel(CLIPTextConfig(**tiny.text_encoder_config(tokenizer, 256)))
        unet = UNet2DConditionModel(
            **tiny.unet_config(
                layers_per_block=2,
                block_out_channels=(64, 128, 256),
                down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                cross_attention_dim=256,
                attention_head_dim=(2, 4, 8),  # heads per block: 32 channels each (SD1.5: 40-160)
                norm_num_groups=32,
            )
        )
        vae = AutoencoderKL(
            **tiny.vae_config(block_out_channels=(32, 64, 128, 128), norm_num_groups=32)
        )
    scheduler = DDPMScheduler(**tiny.SCHEDULE, clip_sample=False)
    pipe = tiny.make_pipeline(tokenizer, text_encoder, vae, unet, scheduler)
    pipe.save_pretrained(folder, safe_serialization=True)
    n = {
        k: sum(p.numel() for p in m.parameters())
        for k, m in (("unet", unet), ("vae", vae), ("text_encoder", text_encoder))
    }
    return n


def build_dataset(folder: Path, n: int, size: int) -> Path:
    import numpy as np
    from PIL import Image

    from fakestudio.dataset import DatasetImage, compute_fingerprint

    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = []
    for i in range(n):
        y, x = np.mgrid[0:size, 0:size] / size
        a = np.stack(
            [
                128 + 90 * np.sin((6 + i) * x + 2 * y),
                128 + 80 * np.cos(5 * y - 3 * x * y),
                128 + 70 * np.sin(9 * x * y + i),
            ],
            -1,
        ) + rng.normal(0, 6, (size, size, 3))
        rel = f"images/{i + 1:04d}.png"
        Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(folder / rel)
        images.append(
            DatasetImage(
                file=rel,
                caption=f"photo of ben0a man, pose {i}",
                width=size,
                height=size,
                bucket=(size, size),
                sha256=hashlib.sha256((folder / rel).read_bytes()).hexdigest(),
                source_sha256="0" * 64,
                face=False,
            )
        )
    doc = {
        "format": "fakestudio.dataset/1",
        "token": "ben0a",
        "class_word": "man",
        "resolution": size,
        "person": True,
        "consent": {"statement": "bench", "recorded": "2026-01-01T00:00:00+00:00"},
        "created_by": "bench",
        "images": [{**im.__dict__, "bucket": list(im.bucket)} for im in images],
        "fingerprint": compute_fingerprint(images),
    }
    (folder / "dataset.json").write_text(json.dumps(doc))
    return folder


# -- the two loops ----------------------------------------------------------------------------------


def run_ours(args, stamps: list[float]) -> None:
    from fakestudio.train.config import TrainConfig
    from fakestudio.train.loop import train

    cfg = TrainConfig(
        dataset=Path(args.dataset),
        out=Path(args.work) / "ours.safetensors",
        base=args.model,
        rank=args.rank,
        lr=1e-4,
        max_steps=args.steps,
        batch_size=args.batch,
        mixed_precision=args.precision,
        seed=0,
        compile=args.compile,
        channels_last=None if args.channels_last is None else args.channels_last == "on",
        gradient_checkpointing=args.gradient_checkpointing,
    )
    train(cfg, on_step=lambda info: stamps.append(_now()))


def run_reference(args, stamps: list[float]) -> None:
    """diffusers' train_text_to_image_lora.py, reduced to its training path (no torchvision:
    its Resize/CenterCrop/ToTensor/Normalize are done with PIL + numpy, same arithmetic)."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from accelerate import Accelerator
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from diffusers.optimization import get_scheduler
    from peft import LoraConfig
    from PIL import Image
    from transformers import CLIPTextModel, CLIPTokenizer

    accelerator = Accelerator(mixed_precision=args.precision)
    model = args.model
    noise_scheduler = DDPMScheduler.from_pretrained(model, subfolder="scheduler")
    tokenizer = CLIPTokenizer.from_pretrained(model, subfolder="tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(model, subfolder="text_encoder")
    vae = AutoencoderKL.from_pretrained(model, subfolder="vae")
    unet = UNet2DConditionModel.from_pretrained(model, subfolder="unet")
    unet.requires_grad_(False)
    vae.requires_grad_(False)
    text_encoder.requires_grad_(False)
    weight_dtype = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[
        args.precision
    ]
    unet.add_adapter(
        LoraConfig(
            r=args.rank, lora_alpha=args.rank, init_lora_weights="gaussian", target_modules=TARGETS
        )
    )
    unet.to(accelerator.device, dtype=weight_dtype)
    vae.to(accelerator.device, dtype=weight_dtype)
    text_encoder.to(accelerator.device, dtype=weight_dtype)
    if args.precision != "no":
        for p in unet.parameters():
            if p.requires_grad:
                p.data = p.data.float()
    lora_layers = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        lora_layers, lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8
    )
    meta = json.loads((Path(args.dataset) / "dataset.json").read_text())
    rows = [(Path(args.dataset) / im["file"], im["caption"]) for im in meta["images"]]
    res = meta["resolution"]

    def transform(path):  # Resize(res) + CenterCrop(res) + ToTensor + Normalize([.5], [.5])
        im = Image.open(path).convert("RGB")
        s = res / min(im.size)
        im = im.resize((round(im.width * s), round(im.height * s)), Image.Resampling.BILINEAR)
        left, top = (im.width - res) // 2, (im.height - res) // 2
        a = np.asarray(im.crop((left, top, left + res, top + res)), dtype=np.float32) / 255.0
        return (torch.from_numpy(a).permute(2, 0, 1) - 0.5) / 0.5

    class Data(torch.utils.data.Dataset):  # `dataset.with_transform(preprocess_train)`
        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            path, caption = rows[i]
            ids = tokenizer(
                caption,
                max_length=tokenizer.model_max_length,
                padding="max_length",
                truncation=True,
                return_tensors="pt",
            ).input_ids[0]
            return {"pixel_values": transform(path), "input_ids": ids}

    def collate_fn(examples):
        pixel_values = torch.stack([e["pixel_values"] for e in examples])
        pixel_values = pixel_values.to(memory_format=torch.contiguous_format).float()
        return {
            "pixel_values": pixel_values,
            "input_ids": torch.stack([e["input_ids"] for e in examples]),
        }

    loader = torch.utils.data.DataLoader(
        Data(), shuffle=True, collate_fn=collate_fn, batch_size=args.batch, num_workers=0
    )
    lr_scheduler = get_scheduler(
        "constant", optimizer=optimizer, num_warmup_steps=0, num_training_steps=args.steps
    )
    unet, optimizer, loader, lr_scheduler = accelerator.prepare(
        unet, optimizer, loader, lr_scheduler
    )
    torch.manual_seed(0)
    step = 0
    unet.train()
    while step < args.steps:
        for batch in loader:
            with accelerator.accumulate(unet):
                latents = vae.encode(
                    batch["pixel_values"].to(dtype=weight_dtype)
                ).latent_dist.sample()
                latents = latents * vae.config.scaling_factor
                noise = torch.randn_like(latents)
                bsz = latents.shape[0]
                timesteps = torch.randint(
                    0, noise_scheduler.config.num_train_timesteps, (bsz,), device=latents.device
                ).long()
                noisy_latents = noise_scheduler.add_noise(latents, noise, timesteps)
                encoder_hidden_states = text_encoder(batch["input_ids"], return_dict=False)[0]
                model_pred = unet(
                    noisy_latents, timesteps, encoder_hidden_states, return_dict=False
                )[0]
                loss = F.mse_loss(model_pred.float(), noise.float(), reduction="mean")
                avg_loss = accelerator.gather(loss.repeat(bsz)).mean()
                _ = avg_loss.item()
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(lora_layers, 1.0)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
            if accelerator.sync_gradients:
                step += 1
                stamps.append(_now())
                if step >= args.steps:
                    break
    # the example then saves the LoRA with StableDiffusionPipeline.save_lora_weights
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    state = convert_state_dict_to_diffusers(
        get_peft_model_state_dict(accelerator.unwrap_model(unet))
    )
    StableDiffusionPipeline.save_lora_weights(
        Path(args.work) / "reference", unet_lora_layers=state, safe_serialization=True
    )


def _now() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def child(args) -> None:
    import torch

    from fakestudio.quiet import quiet_libraries

    quiet_libraries()
    if args.threads:
        torch.set_num_threads(args.threads)
    stamps: list[tuple[float, float]] = []
    start = time.perf_counter()
    (run_ours if args.variant == "ours" else run_reference)(args, stamps)
    wall = time.perf_counter() - start
    if len(stamps) < 2:
        sys.exit("need at least 2 steps to time one")
    w = max(0, min(args.warmup, len(stamps) - 2))
    steady = stamps[w:]
    # the median step time after warm-up: robust to other processes on a shared machine;
    # CPU seconds per step: robust to them too when each loop has its own cores
    step_s = statistics.median(b[0] - a[0] for a, b in zip(steady, steady[1:], strict=False))
    cpu_s = statistics.median(b[1] - a[1] for a, b in zip(steady, steady[1:], strict=False))
    out = {
        "variant": args.variant,
        "steps_per_s": 1.0 / step_s,
        "cpu_s_per_step": cpu_s,
        "wall_s": wall,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2**20
        if torch.cuda.is_available()
        else None,
    }
    Path(args.result).write_text(json.dumps(out))


# -- the parent ------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=4, help="steps left out of steps/s")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2, help="alternating runs of each loop")
    ap.add_argument("--precision", default="no", choices=["no", "fp16", "bf16"])
    ap.add_argument("--full-size", action="store_true", help="SD1.5 architecture at 512 px")
    ap.add_argument("--compile", action="store_true", help="ours: torch.compile the UNet")
    ap.add_argument("--channels-last", choices=["on", "off"], default=None)
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--only", choices=["ours", "reference"], default=None)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per loop (0: torch's default); 1 keeps CPU s/step honest on a "
        "shared machine",
    )
    ap.add_argument("--json", action="store_true")
    # internal: one measured run
    ap.add_argument("--variant", choices=["ours", "reference"], default=None)
    ap.add_argument("--model")
    ap.add_argument("--dataset")
    ap.add_argument("--work")
    ap.add_argument("--result")
    args = ap.parse_args()
    if args.variant:
        child(args)
        return

    home = Path(tempfile.mkdtemp(prefix="fs-train-bench-"))
    os.environ["FAKESTUDIO_HOME"] = str(home / "home")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from fakestudio.quiet import quiet_libraries

    quiet_libraries()
    size = 512 if args.full_size else 256
    t = time.perf_counter()
    params = build_model(home / "model", args.full_size)
    build_dataset(home / "dataset", args.images, size)
    say = (lambda *a: None) if args.json else print
    say(
        f"model: {'SD1.5 architecture' if args.full_size else 'small SD architecture'}, "
        f"random weights, {size} px, batch {args.batch}, rank {args.rank}, precision "
        f"{args.precision}; parameters "
        + ", ".join(f"{k} {v / 1e6:.1f}M" for k, v in params.items())
        + f" (built in {time.perf_counter() - t:.0f}s)"
    )
    variants = [args.only] if args.only else ["reference", "ours"]
    results: dict[str, list[dict]] = {v: [] for v in variants}
    for r in range(args.rounds):
        for v in variants if r % 2 == 0 else variants[::-1]:
            work = home / f"{v}-{r}"
            work.mkdir()
            cmd = [
                sys.executable,
                __file__,
                "--variant",
                v,
                "--model",
                str(home / "model"),
                "--dataset",
                str(home / "dataset"),
                "--work",
                str(work),
                "--result",
                str(work / "result.json"),
                "--steps",
                str(args.steps),
                "--warmup",
                str(args.warmup),
                "--batch",
                str(args.batch),
                "--rank",
                str(args.rank),
                "--precision",
                args.precision,
                "--threads",
                str(args.threads),
            ]
            if args.compile:
                cmd.append("--compile")
            if args.channels_last:
                cmd += ["--channels-last", args.channels_last]
            if args.gradient_checkpointing:
                cmd.append("--gradient-checkpointing")
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            if proc.returncode:
                sys.exit(f"{v} failed:\n{proc.stderr[-4000:]}")
            results[v].append(json.loads((work / "result.json").read_text()))
            res = results[v][-1]
            say(
                f"  round {r + 1} {v:>9}: {res['steps_per_s']:.3f} steps/s, "
                f"{res['cpu_s_per_step']:.2f} CPU s/step, wall {res['wall_s']:.1f}s, "
                f"max RSS {res['maxrss_mb']:.0f} MB"
                + (f", CUDA peak {res['cuda_peak_mb']:.0f} MB" if res["cuda_peak_mb"] else "")
            )
    summary: dict = {  # best of the rounds: other processes only ever slow a round down
        v: {
            "steps_per_s": max(r["steps_per_s"] for r in rs),
            "images_per_s": max(r["steps_per_s"] for r in rs) * args.batch,
            "cpu_s_per_step": min(r["cpu_s_per_step"] for r in rs),
            "wall_s": min(r["wall_s"] for r in rs),
            "maxrss_mb": max(r["maxrss_mb"] for r in rs),
            "cuda_peak_mb": max((r["cuda_peak_mb"] or 0) for r in rs) or None,
        }
        for v, rs in results.items()
    }
    shutil.rmtree(home, ignore_errors=True)
    if len(summary) == 2:
        summary["ratio"] = summary["ours"]["steps_per_s"] / summary["reference"]["steps_per_s"]
        summary["cpu_ratio"] = (
            summary["reference"]["cpu_s_per_step"] / summary["ours"]["cpu_s_per_step"]
        )
        summary["ratio_of_medians"] = statistics.median(
            r["steps_per_s"] for r in results["ours"]
        ) / statistics.median(r["steps_per_s"] for r in results["reference"])
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(
        f"\n{'loop':>10} {'steps/s':>9} {'images/s':>9} {'CPU s/step':>11} {'wall s':>8} {'max RSS MB':>11}"
        + (
            f" {'CUDA peak MB':>13}"
            if any(s.get("cuda_peak_mb") for s in summary.values() if isinstance(s, dict))
            else ""
        )
    )
    for v in variants:
        s = summary[v]
        print(
            f"{v:>10} {s['steps_per_s']:>9.3f} {s['images_per_s']:>9.2f} {s['cpu_s_per_step']:>11.2f} {s['wall_s']:>8.1f} "
            f"{s['maxrss_mb']:>11.0f}"
            + (f" {s['cuda_peak_mb']:>13.0f}" if s["cuda_peak_mb"] else "")
        )
    if "ratio" in summary:
        print(
            f"\nours / reference: {summary['ratio']:.2f}x steps/s, {summary['cpu_ratio']:.2f}x "
            f"fewer CPU seconds per step (best rounds); {summary['ratio_of_medians']:.2f}x "
            f"median against median (target >= 1.5x); peak memory "
            f"{summary['ours']['maxrss_mb'] - summary['reference']['maxrss_mb']:+.0f} MB RSS"
        )


if __name__ == "__main__":
    main()
