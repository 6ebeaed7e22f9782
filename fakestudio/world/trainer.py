"""Train the world base model in resumable slices: VAE, latent cache, the text encoder's
reading lesson (`reading.py`), then UNet + text encoder.

    RUN_DIR/                      (default: <cache>/world-train-9, outside any git tree)
        recipe.json               the recipe of this run (fixed at its first slice)
        tokenizer/                the CLIP-format tokenizer, written once
        log.jsonl                 loss and probe measures against training wall-clock time
        latents/chunk-NNNN.safetensors   the cached latents (stage "cache")
        checkpoint/               models.safetensors, optimizer.safetensors, state.json
                                  (written to a temp folder and renamed; no pickle)

Every random draw of step i comes from (seed, stage, i): the scenes drawn, the crops, the
noise and timesteps. With the optimizer and EMA state in the checkpoint, a run cut into
slices (`minutes`) ends with the same weights as one uninterrupted run.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

STAGES = ("vae", "cache", "text", "unet", "done")
CHUNK = 256  # scenes per latent-cache chunk
# recipe fields that may change between slices without breaking exact resume
EXTENSIBLE = {"vae_steps", "unet_steps", "eval_every", "eval_prompts", "checkpoint_minutes"}
# what a run started before a field existed used (its recipe.json lacks the field)
LEGACY = {
    "vae_hue": 0.0,
    "latent_channels": 8,
    "vae_down": 16,
    "text_pretrain": 0,
    "prediction": "epsilon",
    "vae_recolour": 0.0,
    "vae_lr_end": 1.0,
    "text_start": 0,
    "beta_end": 0.012,
}
# the recipe fields of stages 1 and 2: a run may start from another run's VAE and latent cache
# (`WorldTrainer(..., from_run=...)`) only where these agree
VAE_AND_CACHE = (
    "seed", "scale", "resolution", "vae_steps", "vae_batch", "vae_crop", "vae_lr", "vae_kl",
    "vae_hue", "vae_recolour", "vae_lr_end", "latent_channels", "vae_down", "cache_scenes", "two_people",
)  # fmt: skip


@dataclass
class WorldRecipe:
    seed: int = 0
    scale: str = "base"  # "test": a miniature of the architecture, for tests
    resolution: int = 256
    # stage 1: the VAE on random crops of world renders
    vae_steps: int = 3000
    vae_batch: int = 8
    vae_crop: int = 128
    vae_lr: float = 3e-4
    vae_kl: float = 1e-6
    # share of VAE crops whose hues are turned at random: the VAE is the base's image codec and
    # must carry any colour, including the held-out ones (pink hair, yellow shirts) that only a
    # LoRA may teach; a VAE that never saw them draws pink hair as skin (docs/world-model.md)
    vae_hue: float = 0.5
    # share of VAE scenes drawn in a random palette (every skin, hair, eye and shirt colour
    # its own random colour; the rest may be hue-turned as above): a whole-picture hue turn can
    # be learnt as one global turn of the usual colours (pink hair then comes out blond beside
    # ordinary skin); recolouring each region on its own does not allow that shortcut
    vae_recolour: float = 0.5
    vae_lr_end: float = 0.1  # the VAE's learning rate falls (cosine) to this share of vae_lr
    # the VAE's downsampling (8: 4 blocks, 32x32 latents; 16: 5 blocks, 16x16). At 16x the
    # probe reads 71-84% of attributes back from the VAE's reconstructions after 2,000-3,000
    # steps (eyes, glasses and beards blur away): a ceiling under the 90% bar for any UNet.
    # At 8x with 4 channels: 70% after 600 steps (a 16x VAE: 35-38% there)
    vae_down: int = 8
    # 4 at 8x, Stable Diffusion's shape. With 16 channels (at 16x, recoloured) a UNet never
    # learns its captions (the probe stays at the floor, 19-26%, to 4,000 steps: it draws
    # average colours) where the same UNet recipe on 8 channels reads 34% at 2,000 steps
    latent_channels: int = 4
    # stage 2: latents of this many world scenes (caption + latent mean and std)
    cache_scenes: int = 8192
    two_people: float = 0.35
    # stage 3: the text encoder learns to read captions (`reading.py`: at each noun of a
    # description, tell its attributes' values and whose they are) before the UNet listens to
    # it. A random frozen encoder's features give 61% of shirt colours and 82% of skins to a
    # linear read-out (the attributes a UNet on them draws worst: 37% and 44% at step 6,000);
    # after 100 steps of this, 100%
    text_pretrain: int = 400
    # stage 4: UNet + text encoder on cached latents
    unet_steps: int = 7000
    unet_batch: int = 32
    unet_lr: float = 3e-4
    text_lr: float = 1e-4
    # UNet steps before the text encoder starts learning (it is frozen at its initial weights
    # until then): frozen steps are 25% faster, and a UNet learns its captions as well with
    # them. (A text encoder trained from the first step can collapse every caption onto nearly
    # the same features; that was a symptom of the 16-channel VAE, not a cause)
    text_start: int = 2000
    # the noise schedule's last beta (scaled linear from 0.00085, as SD's): SD's 0.012 leaves
    # 0.47% of the signal's power at the last step, 0.02 leaves 0.023%, so little of a scene's
    # colours shows through the last steps' noise (a UNet learnt its captions faster with it
    # than with SD's: docs/world-model.md). Exported with the base's scheduler
    beta_end: float = 0.02
    # what the UNet predicts: "v_prediction" (Stable Diffusion 2's) or "epsilon" (SD 1's).
    # With epsilon, the clean latent the sampler's first steps infer is the noisy input less
    # sigma (66 at the last step) times the prediction: noise predicted to 0.3% still puts the
    # clean latent off by 13.8 (mean squared; the latents' variance is 1.0), and the loss,
    # weighted by the signal-to-noise ratio there, never asks for better. The first steps
    # decide a picture's colours, which then come out a random cast of the seed. v-prediction
    # asks for the clean latent itself at high noise
    prediction: str = "v_prediction"
    warmup: int = 200
    uncond: float = 0.1  # caption dropout, for classifier-free guidance
    min_snr: float = 5.0
    ema: float = 0.999
    # bookkeeping
    checkpoint_minutes: float = 10.0
    eval_every: int = 1000  # UNet steps between probe measures
    eval_prompts: int = 48


def turn_hue(image, degrees: float):
    """The picture with every hue turned by `degrees` (a rotation about the grey axis in YIQ,
    so brightness stays): skin, hair and shirts of every colour for the VAE to learn."""
    from PIL import Image

    t = np.radians(degrees)
    c, s = np.cos(t), np.sin(t)
    to_yiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    turn = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    m = np.linalg.inv(to_yiq) @ turn @ to_yiq
    a = np.asarray(image, dtype=np.float32) @ m.T.astype(np.float32)
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8))


def default_run_dir() -> Path:
    from detectors.paths import cache_dir

    return cache_dir() / "world-train-9"  # the committed base's run (docs/world-model.md)


def _rng(recipe: WorldRecipe, stage: int, step: int) -> np.random.Generator:
    return np.random.default_rng([recipe.seed, stage, step])


def _torch_gen(recipe: WorldRecipe, stage: int, step: int):
    import torch

    return torch.Generator().manual_seed(int(_rng(recipe, stage, step).integers(2**62)))


class WorldTrainer:
    def __init__(
        self,
        run_dir: Path,
        recipe: WorldRecipe | None = None,
        log=print,
        from_run: Path | None = None,
    ):
        """A training run in `run_dir`: resumes its checkpoint if there is one. A new run given
        `from_run` starts at the UNet stage with that run's VAE and latent cache (their recipe
        fields must agree), so a change to the UNet's recipe does not retrain the VAE."""
        import torch

        from fakestudio.world.model import build_models

        self.torch = torch
        self.run_dir = Path(run_dir)
        self.log = log
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if from_run is not None:
            source = self._check_source(Path(from_run), recipe or WorldRecipe())
        self.recipe = self._settle_recipe(recipe)
        tok_dir = self.run_dir / "tokenizer"
        if from_run is not None and not tok_dir.exists():
            shutil.copytree(Path(from_run) / "tokenizer", tok_dir)
        if (tok_dir / "vocab.json").exists() or (tok_dir / "tokenizer.json").exists():
            from transformers import CLIPTokenizer

            tokenizer = CLIPTokenizer.from_pretrained(tok_dir)
        else:
            tokenizer = None
        r = self.recipe
        self.tokenizer, self.text_encoder, self.vae, self.unet = build_models(
            r.seed, r.scale, tokenizer, latent_channels=r.latent_channels, down=r.vae_down
        )
        if tokenizer is None:
            self.tokenizer.save_pretrained(tok_dir)
        self.stage, self.step, self.elapsed = "vae", 0, 0.0
        self.scaling_factor = 1.0
        self.ema: dict = {}
        self.opt = None
        self._stop = False
        self._load()
        if from_run is not None:
            self._take_vae_and_cache(Path(from_run), source)

    def _check_source(self, source: Path, recipe: WorldRecipe) -> dict:
        """The checkpoint state of `source` if this run may start from its VAE and cache."""
        if (self.run_dir / "checkpoint").exists():
            raise ValueError(f"{self.run_dir}: this run has begun (from_run is for a new run)")
        try:
            state = json.loads((source / "checkpoint" / "state.json").read_text())
            theirs = WorldRecipe(**(LEGACY | json.loads((source / "recipe.json").read_text())))
        except (OSError, ValueError, TypeError) as e:
            raise ValueError(f"{source}: not a world-train run ({e})") from e
        if state["stage"] not in ("text", "unet", "done"):
            raise ValueError(f"{source}: its latent cache is not finished (stage {state['stage']})")
        for name in VAE_AND_CACHE:
            a, b = getattr(theirs, name), getattr(recipe, name)
            if a != b:
                raise ValueError(
                    f"{source}: its VAE and cache were made with {name}={a!r}, not {b!r}"
                )
        return state

    def _take_vae_and_cache(self, source: Path, state: dict) -> None:
        from safetensors.torch import load_file

        tensors = load_file(str(source / "checkpoint" / "models.safetensors"))
        self.vae.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("vae.")})
        folder = self.run_dir / "latents"
        folder.mkdir(exist_ok=True)
        for chunk in sorted((source / "latents").glob("chunk-*.safetensors")):
            try:
                os.link(chunk, folder / chunk.name)  # read-only use: a hard link will do
            except OSError:
                shutil.copy2(chunk, folder / chunk.name)
        self.stage, self.step, self.scaling_factor = "text", 0, state["scaling_factor"]
        self.opt = self._make_optimizer()
        self._write_log({"from_run": source.name, "scaling_factor": self.scaling_factor})
        self.save()

    # -- recipe and checkpoint -----------------------------------------------------------------

    def _settle_recipe(self, given: WorldRecipe | None) -> WorldRecipe:
        path = self.run_dir / "recipe.json"
        if not path.exists():
            recipe = given or WorldRecipe()
            path.write_text(json.dumps(asdict(recipe), indent=1))
            return recipe
        saved = WorldRecipe(**(LEGACY | json.loads(path.read_text())))
        if given is None:
            return saved
        for f in fields(WorldRecipe):
            a, b = getattr(saved, f.name), getattr(given, f.name)
            if a != b and f.name not in EXTENSIBLE:
                raise ValueError(
                    f"{path}: this run was started with {f.name}={a!r}, not {b!r} "
                    "(start a new --run-dir to change it)"
                )
        path.write_text(json.dumps(asdict(given), indent=1))
        return given

    def _models(self) -> dict:
        return {"vae": self.vae, "unet": self.unet, "text_encoder": self.text_encoder}

    def _make_optimizer(self):
        torch = self.torch
        r = self.recipe
        if self.stage == "vae":
            return torch.optim.AdamW(self.vae.parameters(), lr=r.vae_lr, weight_decay=0.0)
        if self.stage == "unet":
            return torch.optim.AdamW(
                [
                    {"params": list(self.unet.parameters()), "lr": r.unet_lr},
                    {"params": list(self.text_encoder.parameters()), "lr": r.text_lr},
                ],
                weight_decay=1e-2,
            )
        return None

    def save(self) -> Path:
        from safetensors.torch import save_file

        from fakestudio.train.checkpoint import flatten_optimizer

        final = self.run_dir / "checkpoint"
        tmp = self.run_dir / ".checkpoint.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        tensors = {
            f"{name}.{k}": v.detach().contiguous()
            for name, m in self._models().items()
            for k, v in m.state_dict().items()
        }
        tensors |= {f"ema.{k}": v.contiguous() for k, v in self.ema.items()}
        save_file(tensors, str(tmp / "models.safetensors"))
        opt_meta = None
        if self.opt is not None:
            opt_tensors, opt_meta = flatten_optimizer(self.opt.state_dict())
            save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        state = {
            "format": "fakestudio.world-train/1",
            "stage": self.stage,
            "step": self.step,
            "elapsed_s": self.elapsed,
            "scaling_factor": self.scaling_factor,
            "optimizer": opt_meta,
        }
        (tmp / "state.json").write_text(json.dumps(state, indent=1))
        old = self.run_dir / ".checkpoint.old"
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
        return final

    def _load(self) -> None:
        from safetensors.torch import load_file

        from fakestudio.train.checkpoint import unflatten_optimizer

        folder = self.run_dir / "checkpoint"
        if not (folder / "state.json").exists():
            return
        state = json.loads((folder / "state.json").read_text())
        tensors = load_file(str(folder / "models.safetensors"))
        for name, m in self._models().items():
            m.load_state_dict(
                {k[len(name) + 1 :]: v for k, v in tensors.items() if k.startswith(name + ".")}
            )
        self.ema = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
        self.stage, self.step = state["stage"], state["step"]
        self.elapsed, self.scaling_factor = state["elapsed_s"], state["scaling_factor"]
        self.opt = self._make_optimizer()
        if self.opt is not None and state.get("optimizer"):
            self.opt.load_state_dict(
                unflatten_optimizer(
                    load_file(str(folder / "optimizer.safetensors")), state["optimizer"]
                )
            )

    def _write_log(self, entry: dict) -> None:
        entry = {
            "stage": self.stage,
            "step": self.step,
            "elapsed_s": round(self.elapsed, 1),
        } | entry
        with open(self.run_dir / "log.jsonl", "a") as fh:
            fh.write(json.dumps(entry) + "\n")

    # -- the loop -------------------------------------------------------------------------------

    def run(self, minutes: float | None = None, max_steps: int | None = None) -> dict:
        """Train until done, `minutes` of wall-clock time, or `max_steps` steps; then save."""
        torch = self.torch
        torch.manual_seed(self.recipe.seed)  # dropout-free models; only for library defaults
        deadline = time.monotonic() + minutes * 60 if minutes else None
        last_save = time.monotonic()
        steps = 0
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            while self.stage != "done" and not self._stop:
                if deadline and time.monotonic() >= deadline:
                    break
                if max_steps is not None and steps >= max_steps:
                    break
                t0 = time.monotonic()
                getattr(self, f"_step_{self.stage}")()
                self.elapsed += time.monotonic() - t0
                steps += 1
                if time.monotonic() - last_save > self.recipe.checkpoint_minutes * 60:
                    self.save()
                    last_save = time.monotonic()
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        self.save()
        return self.status()

    def _on_signal(self, signum, frame) -> None:
        self._stop = True

    def status(self) -> dict:
        return {
            "stage": self.stage,
            "step": self.step,
            "elapsed_s": round(self.elapsed, 1),
            "run_dir": str(self.run_dir),
        }

    def _advance(self, total: int, next_stage: str) -> None:
        self.step += 1
        if self.step >= total:
            self.stage, self.step = next_stage, 0
            self.opt = self._make_optimizer()
            self.save()

    # stage 1 -------------------------------------------------------------------------------------

    def _step_vae(self) -> None:
        torch = self.torch
        from fakestudio.world.attributes import COLOURS
        from fakestudio.world.draw import random_palette, render
        from fakestudio.world.model import to_tensor
        from fakestudio.world.scenes import random_scene

        r = self.recipe
        if self.opt is None:
            self.opt = self._make_optimizer()
        rng = _rng(r, 1, self.step)
        crops = []
        for _ in range(r.vae_batch):
            scene = random_scene(rng, two=r.two_people)
            recolour = r.vae_recolour > 0 and rng.random() < r.vae_recolour
            palette = random_palette(rng) if recolour else COLOURS
            im = render(scene, r.resolution, palette)
            x, y = (int(v) for v in rng.integers(0, r.resolution - r.vae_crop + 1, 2))
            crop = im.crop((x, y, x + r.vae_crop, y + r.vae_crop))
            if not recolour and rng.random() < r.vae_hue:
                crop = turn_hue(crop, float(rng.uniform(0.0, 360.0)))
            crops.append(crop)
        batch = torch.from_numpy(to_tensor(crops))
        self.vae.train()
        post = self.vae.encode(batch).latent_dist
        z = post.mean + post.std * torch.randn(
            post.mean.shape, generator=_torch_gen(r, 11, self.step)
        )
        recon = self.vae.decode(z).sample
        rec = (recon - batch).abs().mean() + (recon - batch).pow(2).mean()
        kl = post.kl().mean() / batch[0].numel()
        loss = rec + r.vae_kl * kl
        decay = r.vae_lr_end + (1.0 - r.vae_lr_end) * 0.5 * (
            1.0 + math.cos(math.pi * min(1.0, self.step / max(1, r.vae_steps)))
        )
        for g in self.opt.param_groups:
            g["lr"] = r.vae_lr * min(1.0, (self.step + 1) / r.warmup) * decay
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.vae.parameters(), 1.0)
        self.opt.step()
        if self.step % 10 == 0:
            self._write_log({"loss": round(rec.item(), 5), "kl": round(kl.item(), 3)})
        done = self.step + 1
        if r.eval_every and (done % (r.eval_every // 4 or 1) == 0 or done == r.vae_steps):
            self._write_log({"step": done, "recon_probe": self.evaluate_vae()})
        self._advance(r.vae_steps, "cache")

    def evaluate_vae(self, n: int = 24) -> dict:
        """The probe on VAE reconstructions of n fixed scenes (if a probe exists)."""
        torch = self.torch
        from PIL import Image

        from fakestudio.world.draw import render
        from fakestudio.world.model import to_tensor
        from fakestudio.world.probe import load_probe
        from fakestudio.world.quality import score

        try:
            probe = load_probe()
        except FileNotFoundError as e:
            return {"error": str(e)}
        rng = np.random.default_rng([self.recipe.seed, 9])
        from fakestudio.world.scenes import random_scene

        scenes = [random_scene(rng, two=0.3) for _ in range(n)]
        self.vae.eval()
        with torch.no_grad():
            x = torch.from_numpy(to_tensor([render(s, self.recipe.resolution) for s in scenes]))
            rec = self.vae.decode(self.vae.encode(x).latent_dist.mean).sample
        arr = ((rec.permute(0, 2, 3, 1).numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)
        res = score(probe, scenes, [Image.fromarray(a) for a in arr])
        return {
            "adherence": res["adherence"],
            "per_attribute": res["per_attribute"],
            "held_out": self.held_out_through_vae(probe),
        }

    def held_out_through_vae(self, probe) -> float:
        """Share of the sample people's pictures whose held-out feature (pink hair, yellow
        shirt) the probe still reads after a trip through the VAE: a LoRA can only teach what
        the decoder can draw."""
        torch = self.torch
        from PIL import Image

        from fakestudio.world.draw import render
        from fakestudio.world.model import to_tensor
        from fakestudio.world.samples import SAMPLE_PEOPLE, sample_scenes

        hits = []
        for name, person in SAMPLE_PEOPLE.items():
            scenes = sample_scenes(name)
            x = torch.from_numpy(to_tensor([render(s, self.recipe.resolution) for s in scenes]))
            with torch.no_grad():
                rec = self.vae.decode(self.vae.encode(x).latent_dist.mean).sample
            arr = ((rec.permute(0, 2, 3, 1).numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)
            for a in arr:
                read = probe.read(Image.fromarray(a))[0]
                hits.append(all(read[k] == v for k, v in person.held_out().items()))
        return round(float(np.mean(hits)), 4)

    # stage 2 -------------------------------------------------------------------------------------

    def _step_cache(self) -> None:
        """Encode one chunk of scenes; the last chunk also fixes the latents' scaling factor."""
        torch = self.torch
        from safetensors.torch import load_file, save_file

        from fakestudio.world.draw import render
        from fakestudio.world.model import to_tensor
        from fakestudio.world.scenes import random_scene

        r = self.recipe
        folder = self.run_dir / "latents"
        folder.mkdir(exist_ok=True)
        chunk = min(CHUNK, r.cache_scenes)
        n_chunks = -(-r.cache_scenes // chunk)
        rng = _rng(r, 2, self.step)
        scenes = [random_scene(rng, two=r.two_people) for _ in range(chunk)]
        means, stds = [], []
        self.vae.eval()
        with torch.no_grad():
            for i in range(0, chunk, 16):
                x = torch.from_numpy(
                    to_tensor([render(s, r.resolution) for s in scenes[i : i + 16]])
                )
                post = self.vae.encode(x).latent_dist
                means.append(post.mean)
                stds.append(post.std)
        ids = self._ids([s.caption() for s in scenes])
        path = folder / f"chunk-{self.step:04d}.safetensors"
        save_file(
            {
                "mean": torch.cat(means).half().contiguous(),
                "std": torch.cat(stds).half().contiguous(),
                "ids": ids.int().contiguous(),
            },
            str(path.with_suffix(".partial")),
        )
        os.replace(path.with_suffix(".partial"), path)
        self._write_log({"cached": (self.step + 1) * chunk})
        if self.step + 1 >= n_chunks:
            allm = torch.cat(
                [
                    load_file(str(folder / f"chunk-{k:04d}.safetensors"))["mean"]
                    for k in range(n_chunks)
                ]
            )
            self.scaling_factor = float(1.0 / allm.float().std())
            self._write_log({"scaling_factor": self.scaling_factor})
        self._advance(n_chunks, "text")

    # stage 3 -------------------------------------------------------------------------------------

    def _step_text(self) -> None:
        """The text encoder's reading lesson (`reading.teach`), in one step: it takes a minute
        or two, and a slice cut inside it starts it again (it is deterministic)."""
        from fakestudio.world.reading import teach

        r = self.recipe
        if r.text_pretrain > 0:
            result = teach(
                self.text_encoder,
                self.tokenizer,
                r.text_pretrain,
                seed=r.seed,
                two=r.two_people,
                log=self._write_log,
            )
            self._write_log(result)
        self._advance(1, "unet")

    def _ids(self, captions: list[str]):
        return self.tokenizer(
            captions,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids

    def _latents(self):
        if getattr(self, "_cache", None) is None:
            from safetensors.torch import load_file

            torch = self.torch
            chunks = [
                load_file(str(p))
                for p in sorted((self.run_dir / "latents").glob("chunk-*.safetensors"))
            ]
            self._cache = {k: torch.cat([c[k] for c in chunks]) for k in ("mean", "std", "ids")}
            self._uncond = self._ids([""])[0]
        return self._cache

    # stage 4 -------------------------------------------------------------------------------------

    def _step_unet(self) -> None:
        torch = self.torch
        from diffusers import DDPMScheduler

        r = self.recipe
        if self.opt is None:
            self.opt = self._make_optimizer()
        cache = self._latents()
        gen = _torch_gen(r, 3, self.step)
        idx = torch.randint(0, cache["mean"].shape[0], (r.unet_batch,), generator=gen)
        mean, std = cache["mean"][idx].float(), cache["std"][idx].float()
        latents = (mean + std * torch.randn(mean.shape, generator=gen)) * self.scaling_factor
        ids = cache["ids"][idx].long()
        drop = torch.rand(r.unet_batch, generator=gen) < r.uncond
        ids[drop] = self._uncond
        noise = torch.randn(latents.shape, generator=gen)
        schedule = self.schedule()
        t = torch.randint(0, schedule["num_train_timesteps"], (r.unet_batch,), generator=gen)
        sched = DDPMScheduler(**schedule)
        noisy = sched.add_noise(latents, noise, t)
        self.unet.train()
        text_learns = self.step >= r.text_start
        self.text_encoder.train(text_learns)
        with torch.set_grad_enabled(text_learns):
            hidden = self.text_encoder(ids)[0]
        pred = self.unet(noisy, t, hidden).sample
        ac = sched.alphas_cumprod[t]
        snr = ac / (1 - ac)
        if r.prediction == "epsilon":
            target, w = noise, torch.clamp(snr, max=r.min_snr) / snr
        else:  # min-SNR weighting for v (Hang et al. 2023): min(snr, gamma) / (snr + 1)
            target = sched.get_velocity(latents, noise, t)
            w = torch.clamp(snr, max=r.min_snr) / (snr + 1)
        loss = ((pred - target).pow(2).mean(dim=(1, 2, 3)) * w).mean()
        warm = min(1.0, (self.step + 1) / r.warmup)
        self.opt.param_groups[0]["lr"] = r.unet_lr * warm
        text_warm = min(1.0, max(0, self.step + 1 - r.text_start) / r.warmup)
        self.opt.param_groups[1]["lr"] = r.text_lr * text_warm
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(
            list(self.unet.parameters()) + list(self.text_encoder.parameters()), 1.0
        )
        self.opt.step()
        self._update_ema()
        if self.step % 10 == 0:
            self._write_log({"loss": round(loss.item(), 5)})
        done = self.step + 1
        self._advance(r.unet_steps, "done")
        if r.eval_every and (done % r.eval_every == 0 or self.stage == "done"):
            self._write_log({"eval": self.evaluate()})

    def schedule(self) -> dict:
        """The noise schedule this run trains with (and its base generates with)."""
        from fakestudio.tiny import SCHEDULE

        return SCHEDULE | {
            "beta_end": self.recipe.beta_end,
            "prediction_type": self.recipe.prediction,
        }

    def _update_ema(self) -> None:
        decay = min(self.recipe.ema, (1 + self.step) / (10 + self.step))
        with self.torch.no_grad():
            for prefix, m in (("unet", self.unet), ("text_encoder", self.text_encoder)):
                for k, v in m.state_dict().items():
                    key = f"{prefix}.{k}"
                    if key not in self.ema:
                        self.ema[key] = v.detach().clone()
                    elif v.dtype.is_floating_point:
                        self.ema[key].mul_(decay).add_(v.detach(), alpha=1 - decay)

    # -- use ---------------------------------------------------------------------------------------

    def pipeline(self, ema: bool = True):
        """A StableDiffusionPipeline with the current (EMA) weights, on copies of the models."""
        import copy

        from fakestudio.world.model import make_pipeline

        unet, te, vae = (copy.deepcopy(m) for m in (self.unet, self.text_encoder, self.vae))
        if ema and self.ema:
            unet.load_state_dict({k[5:]: v for k, v in self.ema.items() if k.startswith("unet.")})
            te.load_state_dict(
                {k[13:]: v for k, v in self.ema.items() if k.startswith("text_encoder.")}
            )
        vae.register_to_config(scaling_factor=self.scaling_factor)
        for m in (unet, te, vae):
            m.eval()
        pipe = make_pipeline(self.tokenizer, te, vae, unet, self.schedule())
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def evaluate(self) -> dict:
        """Probe measures on `eval_prompts` fixed random one-person prompts (if a probe exists)."""
        from fakestudio.world.quality import prompt_adherence

        try:
            return prompt_adherence(
                self.pipeline(), n=self.recipe.eval_prompts, seed=1234, steps=20
            )
        except FileNotFoundError as e:  # no probe weights yet
            return {"error": str(e)}

    def export(self, out: Path, fp16: bool = True) -> Path:
        """Write the (EMA) pipeline as a diffusers folder (fp16 safetensors), and the sha256 of
        its files beside it (OUT.sha256): `fakestudio/world/base` is the committed base."""
        pipe = self.pipeline()
        if fp16:
            pipe = pipe.to(dtype=self.torch.float16)
        out = Path(out)
        tmp = out.with_name(f".{out.name}.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        pipe.save_pretrained(tmp, safe_serialization=True)
        from fakestudio.world.base import write_settings, write_sums

        write_settings(tmp)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)

        write_sums(out, out.with_suffix(".sha256"))
        return out
