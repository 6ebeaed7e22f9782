"""Personal LoRA training, top to bottom: `train()` reads as the list below, each part a
named function after it.

    1. `check_inputs`: settings, dataset and output before anything slow
    2. `setup`: accelerate, the base model, LoRA adapters on UNet attention (and the text
       encoder), cached latents and text embeddings -> a `Run`
    3. `make_optimizer`: optimizer and lr schedule -> an `Optim`; `resume` for `--resume`
    4. the loop: `train_step` (micro_batch -> loss_of -> backward, guards against NaN and
       explosion), `preview` (through the labeller), `checkpoint`, Ctrl-C
    5. `export`: the LoRA file(s), with our `header`

What changes as it trains lives in one `TrainState`; nothing is shared through closures.

It runs alone (`fakestudio train`) or one copy per process under `accelerate launch`: each
process takes every P-th batch and DDP averages the gradients; only the main process writes
files or talks. Steps are optimizer steps; one step sees batch_size x grad_accum x P images.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from fakestudio import __version__
from fakestudio.errors import UserError
from fakestudio.label.labeller import check_writable
from fakestudio.train.checkpoint import (
    capture_rng,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from fakestudio.train.config import STORY_REPEATS, TrainConfig
from fakestudio.train.data import (
    TrainData,
    class_prompt,
    epoch_batches,
    open_dataset,
    steps_per_epoch,
)

UNET_TARGETS = {  # TrainConfig.layers -> the UNet modules (peft names) that carry the LoRA
    "attention": ["to_q", "to_k", "to_v", "to_out.0"],
    "all": [
        *["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj"],
        *["ff.net.2", "conv1", "conv2"],
    ],
}
TE_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
HEADER_FORMAT = "fakestudio.lora/1"
# Settings a resumed run must share with the run it continues (else it is another run).
MUST_MATCH = (
    "rank alpha train_text_encoder layers resolution lr text_encoder_lr lr_scheduler warmup_steps "
    "batch_size grad_accum seed min_snr_gamma noise_offset caption_dropout prior_loss_weight "
    "weight_decay prior_images"
).split()


@dataclass
class StepInfo:
    step: int
    total: int
    loss: float
    lr: float
    seconds: float  # since this run (not the resumed one) started stepping
    first_step: int  # where this run started (resume point)


@dataclass
class TrainResult:
    outputs: list[Path]
    steps: int
    loss: float | None  # running mean at the end
    checkpoint: Path | None
    samples: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    resumed_from: int | None = None
    header: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "outputs": [str(p) for p in self.outputs],
            "steps": self.steps,
            "loss": self.loss,
            "checkpoint": str(self.checkpoint) if self.checkpoint else None,
            "samples": [str(p) for p in self.samples],
            "seconds": round(self.seconds, 2),
            "resumed_from": self.resumed_from,
            "header": self.header,
        }


class TrainingInterrupted(Exception):
    """Ctrl-C or SIGTERM: a checkpoint was saved; the CLI exits 130."""

    def __init__(self, step: int, checkpoint: Path | None):
        self.step, self.checkpoint = step, checkpoint
        super().__init__(f"interrupted at step {step}; checkpoint saved to {checkpoint}")


class TrainingDiverged(UserError):
    """NaN, inf or exploding loss; the last good checkpoint is kept."""


def train(
    cfg: TrainConfig,
    on_step: Callable[[StepInfo], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train a LoRA as `cfg` says; return what was written. UserError for anything fixable."""
    ds = check_inputs(cfg)  # 1
    run = setup(cfg, ds, log)  # 2
    opt = make_optimizer(run)  # 3
    state = TrainState(guard=LossGuard(cfg.explode_factor, cfg.explode_patience))
    if cfg.resume:
        resume(run, opt, state)
    state.last_ckpt = latest_checkpoint(run.run_dir)

    first_step, started = state.step, time.perf_counter()  # 4
    with _graceful_stop() as stop:
        while state.step < run.total:
            stop_now = train_step(run, opt, state, stop)
            if run.main and on_step:
                lr = opt.lr_sched.get_last_lr()[0]
                elapsed = time.perf_counter() - started
                on_step(StepInfo(state.step, run.total, state.loss, lr, elapsed, first_step))
            if cfg.sample_every and state.step % cfg.sample_every == 0:
                preview(run, state)
            if stop_now or (run.procs == 1 and stop["requested"]):  # P > 1: agreed in the step
                raise TrainingInterrupted(state.step, checkpoint(run, opt, state))
            due = cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0
            if due and state.step < run.total and not state.guard.strikes:
                checkpoint(run, opt, state)  # never from a run that may be exploding

    final_ckpt = checkpoint(run, opt, state)  # 5
    written = export(run, state, final_ckpt)
    result = TrainResult(
        outputs=written,
        steps=state.step,
        loss=state.guard.mean,
        checkpoint=final_ckpt,
        samples=state.samples,
        seconds=time.perf_counter() - started,
        resumed_from=state.resumed_from,
        header=header(run, state.step),
    )
    run.accelerator.end_training()
    return result


@dataclass
class Run:
    """What `setup` builds once and every later part reads."""

    cfg: TrainConfig
    ds: Any
    accelerator: Any
    base: Any
    unet: Any
    encoders: list
    te_names: list[str]
    te_configs: dict
    alpha: float
    prediction: str
    noise_sched: Any
    channels_last: bool
    gen: torch.Generator  # noise, timesteps, caption dropout: this process's stream
    data: TrainData
    total: int
    micro_per_epoch: int
    class_order: torch.Tensor | None
    snr: torch.Tensor | None
    say: Callable[[str], None]
    orders: dict = field(default_factory=dict)  # epoch -> its batches (one epoch kept)

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def procs(self) -> int:
        return self.accelerator.num_processes

    @property
    def rank(self) -> int:
        return self.accelerator.process_index

    @property
    def device(self):
        return self.accelerator.device

    @property
    def run_dir(self) -> Path:
        return self.cfg.run_folder()

    @property
    def sdxl(self) -> bool:
        return self.base.family == "sdxl"

    @property
    def identity(self) -> dict:
        """What a resumed run must share with the run it continues."""
        return {
            "base_sha256": self.base.sha256,
            "dataset_fingerprint": self.ds.fingerprint,
            "prediction_type": self.prediction,
            **{k: getattr(self.cfg, k) for k in MUST_MATCH},
            "alpha": self.alpha,
        }


@dataclass
class Optim:
    """What `make_optimizer` builds: the optimizer, its schedule, the (wrapped) UNet forward."""

    optimizer: Any
    lr_sched: Any
    params: list
    unet_fwd: Any


@dataclass
class TrainState:
    """What changes as the run goes, and what a checkpoint carries over."""

    guard: LossGuard
    step: int = 0
    loss: float | None = None
    resumed_from: int | None = None
    started_at: float = field(default_factory=lambda: round(time.time(), 3))
    last_ckpt: Path | None = None
    samples: list[Path] = field(default_factory=list)


# -- 1. checks that need no model ------------------------------------------------------------


def check_inputs(cfg: TrainConfig):
    """Settings, dataset, output folders and the run folder's checkpoints, before anything
    slow; returns the opened dataset."""
    cfg.check()
    ds = open_dataset(cfg.dataset, cfg.resolution)
    if cfg.sample_every and ds.resolution < 256:
        raise UserError(
            f"previews need at least 256 px (the watermark does); dataset is {ds.resolution}"
        )
    run_dir = cfg.run_folder()
    check_writable(Path(cfg.out).expanduser().parent, create=False)
    check_writable(run_dir, create=False)
    found = list_checkpoints(run_dir)
    if cfg.resume and not found:
        raise UserError(f"--resume: no checkpoint in {run_dir}/checkpoints to resume from")
    if found and not cfg.resume:
        raise UserError(
            f"{run_dir} holds checkpoints of an earlier run (up to step {found[-1][0]}); pass "
            "--resume to continue it, or remove that folder (or pick --run-dir) to start over"
        )
    return ds


# -- 2. accelerate, base model, adapters, caches ---------------------------------------------


def setup(cfg: TrainConfig, ds, log: Callable[[str], None] | None) -> Run:
    from diffusers import DDPMScheduler
    from peft import LoraConfig

    from fakestudio.models import load_base

    accelerator = _accelerator(cfg)
    main = accelerator.is_main_process
    say = (log or (lambda m: None)) if main else (lambda m: None)
    device = accelerator.device
    for w in ds.warnings:
        say(f"dataset: {w}")
    with accelerator.main_process_first():
        base = load_base(cfg.base, config=cfg.base_config, tokenizer=cfg.tokenizer)
        if cfg.prior_images and cfg.class_images is None:  # the base draws the class images
            from fakestudio.train.prior import draw_class_images

            base.pipe.to(device)
            size = cfg.resolution or ds.resolution
            drawn = draw_class_images(cfg, base, class_prompt(cfg, ds), size, say)
            cfg = dataclasses.replace(cfg, class_images=drawn)
    pipe, sdxl = base.pipe, base.family == "sdxl"
    weight_dtype = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[
        cfg.mixed_precision
    ]
    unet, vae = pipe.unet, pipe.vae
    encoders = [pipe.text_encoder] + ([pipe.text_encoder_2] if sdxl else [])
    te_names = ["text_encoder", "text_encoder_2"][: len(encoders)]
    for m in (unet, vae, *encoders):
        m.requires_grad_(False)
    unet.to(device, dtype=weight_dtype)
    vae.to(device, dtype=torch.float32)  # SDXL's VAE overflows in fp16; it runs once per image
    for te in encoders:
        te.to(device, dtype=weight_dtype)

    alpha = float(cfg.alpha if cfg.alpha is not None else cfg.rank)
    torch.manual_seed(cfg.seed)  # the same LoRA initialisation in every process
    unet.add_adapter(
        LoraConfig(
            r=cfg.rank,
            lora_alpha=alpha,
            init_lora_weights="gaussian",
            target_modules=UNET_TARGETS[cfg.layers],
        )
    )
    te_configs = {}
    if cfg.train_text_encoder:
        for name, te in zip(te_names, encoders, strict=False):
            te_configs[name] = LoraConfig(
                r=cfg.rank,
                lora_alpha=alpha,
                init_lora_weights="gaussian",
                target_modules=TE_TARGETS,
            )
            te.add_adapter(te_configs[name])
    for m in [unet] + (encoders if cfg.train_text_encoder else []):
        for p in m.parameters():
            if p.requires_grad:
                p.data = p.data.float()  # LoRA weights train in fp32 under any mixed precision
        m.train()
    if cfg.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    if device.type == "cuda":  # TF32 matmuls on Ampere+: fp32 range, ~3x the throughput
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    channels_last = cfg.channels_last if cfg.channels_last is not None else device.type == "cuda"
    if channels_last:
        unet.to(memory_format=torch.channels_last)
    noise_sched = DDPMScheduler.from_config(pipe.scheduler.config)
    prediction = cfg.prediction_type or noise_sched.config.prediction_type
    if prediction not in ("epsilon", "v_prediction"):
        raise UserError(f"{base.name}: prediction type {prediction!r} is not supported")

    rank = accelerator.process_index
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + rank)
    data = TrainData(ds, pipe, base.family, cfg, device, cfg.train_text_encoder, gen)
    t0 = time.perf_counter()
    data.warm()
    if cfg.cache_latents or data.cache_text:
        say(
            f"cached {len(data.latents)} latents, {len(data.embeds)} text embeddings in "
            f"{time.perf_counter() - t0:.1f}s"
        )
    if device.type == "cuda" and not cfg.sample_every:  # give the frozen encoders' memory back
        if cfg.cache_latents:
            vae.to("cpu")
        if data.cache_text:
            for te in encoders:
                te.to("cpu")
        torch.cuda.empty_cache()

    micro_per_epoch = steps_per_epoch(data.buckets, cfg.batch_size, accelerator.num_processes)
    if cfg.max_steps is not None:
        total = cfg.max_steps
    else:
        epochs = cfg.epochs if cfg.epochs is not None else STORY_REPEATS
        total = math.ceil(epochs * micro_per_epoch / cfg.grad_accum)
    class_order = (
        torch.randperm(len(data.class_files), generator=torch.Generator().manual_seed(cfg.seed))
        if data.class_files
        else None
    )
    snr = None
    if cfg.min_snr_gamma:
        ac = noise_sched.alphas_cumprod.float()
        snr = (ac / (1 - ac)).to(device)
    return Run(
        cfg=cfg,
        ds=ds,
        accelerator=accelerator,
        base=base,
        unet=unet,
        encoders=encoders,
        te_names=te_names,
        te_configs=te_configs,
        alpha=alpha,
        prediction=prediction,
        noise_sched=noise_sched,
        channels_last=channels_last,
        gen=gen,
        data=data,
        total=total,
        micro_per_epoch=micro_per_epoch,
        class_order=class_order,
        snr=snr,
        say=say,
    )


# -- 3. optimizer, schedule, resume ------------------------------------------------------------


def make_optimizer(run: Run) -> Optim:
    from diffusers.optimization import get_scheduler

    cfg = run.cfg
    trained = [run.unet] + (run.encoders if cfg.train_text_encoder else [])
    groups = [{"params": [p for p in run.unet.parameters() if p.requires_grad], "lr": cfg.lr}]
    if cfg.train_text_encoder:
        te_params = [p for te in run.encoders for p in te.parameters() if p.requires_grad]
        groups.append({"params": te_params, "lr": cfg.text_encoder_lr or cfg.lr})
    fused = {"fused": True} if run.device.type in ("cuda", "cpu") else {}
    optimizer = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay, **fused)
    lr_sched = get_scheduler(
        cfg.lr_scheduler,
        optimizer,
        num_warmup_steps=cfg.warmup_steps,
        num_training_steps=run.total,
    )
    prepared = run.accelerator.prepare(*trained, optimizer)
    unet_fwd, te_fwd, optimizer = prepared[0], list(prepared[1:-1]), prepared[-1]
    if te_fwd:  # training encodes through the wrapped encoders; previews use the plain ones
        run.data.train_encoders = te_fwd
    if cfg.compile:
        unet_fwd = torch.compile(unet_fwd)
    params = [p for g in groups for p in g["params"]]
    return Optim(optimizer, lr_sched, params, unet_fwd)


def resume(run: Run, opt: Optim, state: TrainState) -> None:
    """Continue exactly from the newest checkpoint: LoRA weights, optimizer, schedule, loss
    guard and every random stream."""
    from peft import set_peft_model_state_dict

    cfg = run.cfg
    ckpt = load_checkpoint(latest_checkpoint(run.run_dir))
    _check_resumable(ckpt.state.get("identity", {}), run.identity, ckpt.path)
    for name, model in [("unet", run.unet), *zip(run.te_names, run.encoders, strict=False)]:
        part = {k[len(name) + 1 :]: v for k, v in ckpt.lora.items() if k.startswith(name + ".")}
        if part:
            res = set_peft_model_state_dict(model, part)
            if getattr(res, "unexpected_keys", None):
                raise UserError(f"{ckpt.path}: LoRA keys do not fit this model")
    opt.optimizer.load_state_dict(ckpt.optimizer)
    opt.lr_sched.load_state_dict(ckpt.scheduler)
    scaler = run.accelerator.scaler
    if scaler is not None and ckpt.state.get("scaler"):
        scaler.load_state_dict(ckpt.state["scaler"])
    state.guard.load(ckpt.state.get("guard", {}))
    if len(ckpt.rng) == run.procs:
        restore_rng(ckpt.rng[run.rank], run.gen)
    else:
        run.say(
            f"resuming with {run.procs} processes after {len(ckpt.rng)}: the data order and "
            "noise differ from an uninterrupted run"
        )
        run.gen.manual_seed(cfg.seed * 1_000_003 + run.rank + ckpt.step)
    if ckpt.state.get("total") != run.total:
        run.say(f"resuming a {ckpt.state.get('total')}-step run as a {run.total}-step run")
    state.step = state.resumed_from = ckpt.step
    state.started_at = ckpt.state.get("started_at", state.started_at)
    run.say(f"resumed from {ckpt.path} (step {state.step})")


# -- 4. one optimizer step -----------------------------------------------------------------------


def train_step(run: Run, opt: Optim, state: TrainState, stop: dict) -> bool:
    """grad_accum micro-batches, the divergence guard, clip, step; True when all processes
    agree to stop (Ctrl-C)."""
    cfg, accelerator = run.cfg, run.accelerator
    running = 0.0
    for k in range(cfg.grad_accum):
        batch = micro_batch(run, state.step, k)
        sync = k == cfg.grad_accum - 1
        with contextlib.nullcontext() if sync else accelerator.no_sync(opt.unet_fwd):
            try:
                loss = loss_of(run, opt, batch) / cfg.grad_accum
                accelerator.backward(loss)
            except torch.OutOfMemoryError:
                raise UserError(_out_of_memory(cfg, batch, state.last_ckpt)) from None
        running += loss.detach().float()
    flags = torch.stack(
        [running.reshape(()), torch.tensor(float(stop["requested"]), device=run.device)]
    )
    if run.procs > 1:
        flags = accelerator.reduce(flags, "mean")
    state.loss, stop_now = float(flags[0]), bool(flags[1] > 0)
    reason = state.guard.check(state.loss)
    if reason:
        opt.optimizer.zero_grad(set_to_none=True)
        raise TrainingDiverged(
            f"{reason} at step {state.step + 1}: stopped{_last(state.last_ckpt)}; resume from it "
            f"with a lower --lr (now {cfg.lr:g})"
            + (" or --mixed-precision bf16/no" if cfg.mixed_precision == "fp16" else "")
        )
    if cfg.max_grad_norm:
        accelerator.clip_grad_norm_(opt.params, cfg.max_grad_norm)
    opt.optimizer.step()
    opt.lr_sched.step()
    opt.optimizer.zero_grad(set_to_none=True)
    state.step += 1
    return stop_now


def micro_batch(run: Run, step: int, k: int):
    """The k-th micro-batch of optimizer step `step` for this process."""
    cfg, procs, rank = run.cfg, run.procs, run.rank
    m = step * cfg.grad_accum + k
    epoch, pos = divmod(m, run.micro_per_epoch)
    if epoch not in run.orders:
        run.orders.clear()
        run.orders[epoch] = epoch_batches(run.data.buckets, cfg.batch_size, cfg.seed, epoch, procs)
    indices = run.orders[epoch][pos * procs + rank]
    if cfg.caption_dropout:
        drop = (torch.rand(len(indices), generator=run.gen) < cfg.caption_dropout).tolist()
    else:
        drop = [False] * len(indices)
    classes = []
    if run.class_order is not None:
        first = (m * procs + rank) * cfg.batch_size
        order = run.class_order
        classes = [int(order[(first + j) % len(order)]) for j in range(len(indices))]
    return run.data.batch(indices, drop, classes)


def loss_of(run: Run, opt: Optim, batch) -> torch.Tensor:
    """noise -> UNet -> (min-SNR weighted) MSE, plus the prior-preservation part."""
    cfg, gen, device, sched = run.cfg, run.gen, run.device, run.noise_sched
    latents = batch.latents
    b = latents.shape[0]
    noise = torch.randn(latents.shape, generator=gen).to(device)
    if cfg.noise_offset:
        offset = torch.randn((b, latents.shape[1], 1, 1), generator=gen).to(device)
        noise += cfg.noise_offset * offset
    t = torch.randint(0, sched.config.num_train_timesteps, (b,), generator=gen).to(device)
    noisy = sched.add_noise(latents, noise, t)
    target = noise if run.prediction == "epsilon" else sched.get_velocity(latents, noise, t)
    if run.channels_last:
        noisy = noisy.contiguous(memory_format=torch.channels_last)
    extra = {}
    if run.sdxl:
        w, h = batch.size
        ids = torch.tensor([h, w, 0, 0, h, w], device=device, dtype=batch.embeds.dtype)
        extra["added_cond_kwargs"] = {"text_embeds": batch.pooled, "time_ids": ids.repeat(b, 1)}
    pred = opt.unet_fwd(noisy, t, batch.embeds, **extra).sample
    per = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
    if run.snr is not None:  # min-SNR-gamma weighting (Hang et al. 2023)
        s = run.snr[t]
        weight = torch.clamp(s, max=cfg.min_snr_gamma)
        per = per * weight / (s + 1 if run.prediction == "v_prediction" else s)
    n = batch.n_instance
    loss = per[:n].mean()
    if n < b:
        loss = loss + cfg.prior_loss_weight * per[n:].mean()
    return loss


# -- checkpoints, previews -----------------------------------------------------------------------


def checkpoint(run: Run, opt: Optim, state: TrainState) -> Path | None:
    """Save a checkpoint of step `state.step` (main process; every process's RNG)."""
    rngs = [capture_rng(run.gen)]
    if run.procs > 1:
        from accelerate.utils import gather_object

        rngs = gather_object(rngs)
    if run.main:
        scaler = run.accelerator.scaler
        meta = {
            "identity": run.identity,
            "total": run.total,
            "processes": run.procs,
            "started_at": state.started_at,
            "guard": state.guard.state(),
            "scaler": scaler.state_dict() if scaler else None,
            "software": f"fakestudio {__version__}",
            "config": run.cfg.to_json(),
        }
        try:
            state.last_ckpt = save_checkpoint(
                run.run_dir,
                state.step,
                lora=lora_state(run),
                optimizer=opt.optimizer.state_dict(),
                scheduler=opt.lr_sched.state_dict(),
                rng=rngs,
                state=meta,
                keep=run.cfg.keep_checkpoints,
            )
        except OSError as e:
            raise UserError(
                f"{run.run_dir}: cannot write a checkpoint ({e.strerror or e}); nothing "
                f"half-written was left{_last(state.last_ckpt)}"
            ) from None
    run.accelerator.wait_for_everyone()
    return state.last_ckpt


def preview(run: Run, state: TrainState) -> None:
    if run.main:
        form, path = run.cfg.outputs()[0]
        kwargs = lora_file_kwargs(run, state, form, path)
        state.samples.append(_preview(run, state.step, kwargs))
    run.accelerator.wait_for_everyone()


# -- 5. the LoRA file(s) -------------------------------------------------------------------------


def export(run: Run, state: TrainState, final_ckpt: Path | None) -> list[Path]:
    """Write every requested form (main process); on a write error remove what was written."""
    from fakestudio.train.export import save_lora

    written: list[Path] = []
    if run.main:
        for form, path in run.cfg.outputs():
            path = Path(path).expanduser()
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                save_lora(path, **lora_file_kwargs(run, state, form, path))
            except OSError as e:
                for p in written:
                    p.unlink(missing_ok=True)
                raise UserError(
                    f"{path}: cannot write the LoRA ({e.strerror or e}); nothing was written. The "
                    f"trained weights are in {final_ckpt}: free space and run again with --resume"
                ) from None
            written.append(path)
    run.accelerator.wait_for_everyone()
    return written


def lora_state(run: Run) -> dict[str, torch.Tensor]:
    """The trained LoRA weights, `unet.<peft key>` / `text_encoder.<peft key>`."""
    from peft import get_peft_model_state_dict

    out = {f"unet.{k}": v for k, v in get_peft_model_state_dict(run.unet).items()}
    trained = run.encoders if run.cfg.train_text_encoder else []
    for name, te in zip(run.te_names, trained, strict=False):
        out.update({f"{name}.{k}": v for k, v in get_peft_model_state_dict(te).items()})
    return out


def lora_file_kwargs(run: Run, state: TrainState, form: str, path: Path) -> dict:
    from peft import LoraConfig

    from fakestudio.train.export import tag_frequency

    states = lora_state(run)
    unet = {k[5:]: v for k, v in states.items() if k.startswith("unet.")}
    tes = {
        n: {k[len(n) + 1 :]: v for k, v in states.items() if k.startswith(n + ".")}
        for n in run.te_configs
    }
    cfg = run.cfg
    return dict(
        unet_state=unet,
        unet_config=LoraConfig(
            r=cfg.rank, lora_alpha=run.alpha, target_modules=UNET_TARGETS[cfg.layers]
        ),
        te_states=tes,
        te_configs=run.te_configs,
        form=form,
        header=header(run, state.step),
        output_name=Path(path).stem,
        started_at=state.started_at,
        tag_frequency=tag_frequency([img.caption for img in run.ds.images]),
        sgm_layers_per_block=run.unet.config.layers_per_block if run.sdxl else None,
    )


def header(run: Run, at: int) -> dict:
    """Our metadata in the LoRA file (see docs/training.md)."""
    cfg, ds, base = run.cfg, run.ds, run.base
    return {
        "format": HEADER_FORMAT,
        "trigger": ds.token,
        "class_word": ds.class_word,
        "base_model": base.name,
        "base_sha256": base.sha256,
        "base_family": base.family,
        "dataset_fingerprint": ds.fingerprint,
        "images": len(ds.images),
        "person": ds.person,
        "consent": ds.consent.statement if ds.consent else None,
        "consent_recorded": ds.consent.recorded if ds.consent else None,
        "rank": cfg.rank,
        "alpha": run.alpha,
        "layers": cfg.layers,
        "targets": {"unet": UNET_TARGETS[cfg.layers], **{n: TE_TARGETS for n in run.te_configs}},
        "steps": at,
        "epochs": round(at * cfg.grad_accum / run.micro_per_epoch, 2),
        "resolution": ds.resolution,
        "batch_size": cfg.batch_size * cfg.grad_accum * run.procs,
        "lr": cfg.lr,
        "lr_scheduler": cfg.lr_scheduler,
        "prediction_type": run.prediction,
        "mixed_precision": cfg.mixed_precision,
        "min_snr_gamma": cfg.min_snr_gamma,
        "noise_offset": cfg.noise_offset,
        "prior_preservation": bool(run.data.class_files),
        "train_text_encoder": cfg.train_text_encoder,
        "seed": cfg.seed,
        "software": f"fakestudio {__version__}",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **({"notes": cfg.extra} if cfg.extra else {}),
    }


# ------------------------------------------------------------------------------------- helpers


class LossGuard:
    """Stops on a NaN/inf loss, or a loss above `factor` x its running mean `patience` times
    in a row (after 10 steps of history). The running mean ignores the suspect steps."""

    def __init__(self, factor: float, patience: int):
        self.factor, self.patience = factor, patience
        self.mean: float | None = None
        self.seen = 0
        self.strikes = 0

    def check(self, loss: float) -> str | None:
        if not math.isfinite(loss):
            return f"the loss became {loss}"
        if self.mean is not None and self.seen >= 10 and loss > self.factor * self.mean:
            self.strikes += 1
            if self.strikes >= self.patience:
                return (
                    f"the loss exploded ({loss:.4g}, over {self.factor:g}x its running mean "
                    f"{self.mean:.4g} for {self.strikes} steps)"
                )
            return None
        self.strikes = 0
        self.mean = loss if self.mean is None else 0.9 * self.mean + 0.1 * loss
        self.seen += 1
        return None

    def state(self) -> dict:
        return {"mean": self.mean, "seen": self.seen, "strikes": self.strikes}

    def load(self, d: dict) -> None:
        self.mean, self.seen, self.strikes = d.get("mean"), d.get("seen", 0), d.get("strikes", 0)


def _last(ckpt: Path | None) -> str:
    return (
        f"; the last good checkpoint is {ckpt}"
        if ckpt
        else "; no checkpoint was saved yet (see --checkpoint-every)"
    )


def _out_of_memory(cfg: TrainConfig, batch, ckpt: Path | None) -> str:
    w, h = batch.size
    tips = [
        f"--batch-size {max(1, cfg.batch_size // 2)}" if cfg.batch_size > 1 else None,
        None if cfg.gradient_checkpointing else "--gradient-checkpointing",
        "--mixed-precision bf16 (or fp16)" if cfg.mixed_precision == "no" else None,
        None if cfg.cache_latents and cfg.cache_text else "--cache",
    ]
    tips = [t for t in tips if t]
    return (
        f"out of GPU memory at batch {batch.latents.shape[0]} x {w}x{h} px"
        + (f"; try {', '.join(tips)}" if tips else "; try a smaller --resolution or --rank")
        + (f"; the last checkpoint is {ckpt} (--resume keeps it)" if ckpt else "")
    )


def _accelerator(cfg: TrainConfig):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    if int(os.environ.get("WORLD_SIZE", "1")) == 1:  # a later run in this process may differ
        AcceleratorState._reset_state(reset_partial_state=True)
    if cfg.device not in (None, "cpu", "cuda"):
        raise UserError(
            f"--device {cfg.device!r}: use cpu or cuda (choose GPUs with CUDA_VISIBLE_DEVICES)"
        )
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA GPU is visible to torch")
    cpu = cfg.device == "cpu" or not torch.cuda.is_available()  # CPU-only: gloo under DDP
    return Accelerator(mixed_precision=cfg.mixed_precision, cpu=cpu)


def _check_resumable(saved: dict, now: dict, where: Path) -> None:
    for key, value in now.items():
        if key in saved and saved[key] != value:
            raise UserError(
                f"--resume: {where} was trained with {key}={saved[key]!r}, this run has "
                f"{value!r}; use the same settings, or start a new run in another --run-dir"
            )


@contextlib.contextmanager
def _graceful_stop():
    """The first Ctrl-C (or SIGTERM) asks the loop to checkpoint and stop after this step;
    a second Ctrl-C interrupts at once. Under `accelerate launch` a worker gets the terminal's
    SIGINT and then its launcher's copy: a repeat within 2 s counts as the same press."""
    flag = {"requested": False, "at": 0.0}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        now = time.monotonic()
        if flag["requested"] and signum == signal.SIGINT and now - flag["at"] > 2.0:
            raise KeyboardInterrupt
        if not flag["requested"]:
            flag["requested"], flag["at"] = True, now

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _preview(run: Run, step: int, lora_kwargs: dict) -> Path:
    """Render the sample prompt with the LoRA as it is now; write it through the labeller,
    beside the LoRA snapshot it was made with (so its manifest names a real file's hash)."""
    from fakestudio.label.labeller import LabelOptions, file_payload, write_labelled
    from fakestudio.lora import sha256_file
    from fakestudio.lora_info import a1111_hash
    from fakestudio.record import GenerationRecord, LoraRef
    from fakestudio.schedulers import make_scheduler
    from fakestudio.train.export import save_lora

    cfg, pipe, data, base, ds = run.cfg, run.base.pipe, run.data, run.base, run.ds
    resolution = ds.resolution
    folder = run.run_dir / "samples"
    folder.mkdir(parents=True, exist_ok=True)
    snapshot = folder / f"step-{step:06d}.safetensors"
    save_lora(snapshot, **lora_kwargs)
    prompt = cfg.sample_prompt or ds.images[0].caption
    record = GenerationRecord(
        prompt=prompt,
        negative_prompt="",
        seed=cfg.sample_seed,
        steps=cfg.sample_steps,
        guidance=base.settings.guidance if cfg.sample_guidance is None else cfg.sample_guidance,
        width=resolution,
        height=resolution,
        scheduler="euler",
        base_model=base.name,
        base_sha256=base.sha256,
        loras=[LoraRef(snapshot.name, sha256_file(snapshot), 1.0, ds.token, a1111_hash(snapshot))],
    )
    if not isinstance(pipe.scheduler, type(make_scheduler("euler", pipe.scheduler.config))):
        pipe.scheduler = make_scheduler("euler", pipe.scheduler.config)
    unet = pipe.unet
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices), torch.no_grad(), run.accelerator.autocast():
        unet.eval()
        try:
            embeds, pooled = data.text.encode([x[None] for x in data.text.ids(prompt)])
            neg, neg_pooled = data.text.encode([x[None] for x in data.text.ids("")])
            kwargs = dict(prompt_embeds=embeds, negative_prompt_embeds=neg)
            if pooled is not None:
                kwargs.update(pooled_prompt_embeds=pooled, negative_pooled_prompt_embeds=neg_pooled)
            image = pipe(
                **kwargs,
                num_inference_steps=record.steps,
                guidance_scale=record.guidance,
                width=resolution,
                height=resolution,
                generator=torch.Generator("cpu").manual_seed(record.seed),
            ).images[0]
        finally:
            unet.train()
    stem = f"step-{step:06d}-{file_payload(record, 'png')}"
    return write_labelled(image, record, folder, stem, LabelOptions()).path
