"""Load an Automatic1111-style single-file checkpoint (`--base model.safetensors`), offline.

A single file holds the weights in the original LDM key layout (`model.diffusion_model.*`,
`first_stage_model.*`, `cond_stage_model.transformer.*` for SD1.x; SDXL has
`conditioner.embedders.0.transformer.*` and `conditioner.embedders.1.model.*`) but no configs and
no tokenizer. Everything else comes from disk, never from the hub:

- configs: the `config` folder (any diffusers folder whose component configs match the weights),
  else the standard SD1.5 / SDXL-base-1.0 configs shipped in `fakestudio/configs/`;
- tokenizer: the `tokenizer` folder, else `<config>/tokenizer`, else CLIP's BPE vocabulary as
  shipped inside an installed open-clip-torch or clip-anytorch package (found without importing
  them), else a BaseModelError asking for `--tokenizer DIR`.

The file is checked before any tensor is read: its safetensors header must parse (pickled `.ckpt`
files are refused, never unpickled) and its keys must be an SD1.x or SDXL checkpoint. Loading then
goes through diffusers' `from_single_file` with `config=<local folder>`, `local_files_only=True` and
every non-weight component passed in, which keeps it entirely on disk. Every failure is a
BaseModelError with one line naming the file.
"""

from __future__ import annotations

import copy
import gzip
import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path

SD1 = "sd1"
SDXL = "sdxl"

CONFIGS_DIR = Path(__file__).with_name("configs")
BUNDLED = {SD1: CONFIGS_DIR / "sd15", SDXL: CONFIGS_DIR / "sdxl"}
ARCH_NAMES = {SD1: "Stable Diffusion 1.x", SDXL: "SDXL"}

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
# The exact keys diffusers' own CLIP detection looks for: without them it would silently take the
# text encoder's weights from the config folder instead of the file.
SD1_CLIP_KEY = "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight"
SDXL_CLIP_KEY = (
    "conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight"
)
SDXL_OPENCLIP_KEY = "conditioner.embedders.1.model.positional_embedding"

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle")
CLIP_BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
CLIP_BPE_PACKAGES = ("open_clip", "clip")  # open-clip-torch, clip-anytorch (and openai's clip)
MAX_TOKENS = 77

TOKENIZER_HINT = (
    "pass --tokenizer DIR: a folder with a CLIP tokenizer (vocab.json + merges.txt or "
    "tokenizer.json), e.g. the tokenizer/ folder of any SD1.5 diffusers download"
)


class BaseModelError(ValueError):
    """A `--base` file that cannot be used; the message is one line naming the file."""


@dataclass(frozen=True)
class Header:
    """What the safetensors header says, read without loading any tensor."""

    shapes: dict[str, tuple[int, ...]]

    def has_prefix(self, prefix: str) -> bool:
        return any(k.startswith(prefix) for k in self.shapes)

    def count(self, prefix: str) -> int:
        return sum(k.startswith(prefix) for k in self.shapes)


def load_single_file(
    path: Path,
    config: Path | None = None,
    tokenizer: Path | None = None,
    torch_dtype=None,
):
    """Load a single-file SD1.x / SDXL checkpoint as a diffusers pipeline, without the network.

    `config`: a diffusers folder whose unet/vae/text_encoder(_2)/scheduler configs fit the weights
    (default: the bundled SD1.5 or SDXL-base-1.0 configs). `tokenizer`: a CLIP tokenizer folder,
    or a diffusers folder with tokenizer/ (and tokenizer_2/). `torch_dtype` defaults to float32.
    Raises BaseModelError with a one-line message for anything unusable.
    """
    import torch

    path = Path(path).expanduser()
    header = read_header(path)
    arch = detect_architecture(header, path)
    config_dir, config_desc = _config_folder(arch, config, path)
    te_configs = _check_config(config_dir, config_desc, arch, path)
    tokenizers = resolve_tokenizers(arch, tokenizer, config_dir, path)
    for name, tok in tokenizers.items():
        vocab_size = te_configs[name.replace("tokenizer", "text_encoder")].get("vocab_size")
        if vocab_size is not None and len(tok) > vocab_size:
            raise BaseModelError(
                f"{path}: the tokenizer has {len(tok)} tokens but the text encoder only "
                f"{vocab_size} embeddings; {TOKENIZER_HINT}"
            )
    _check_unet_size(header, config_dir, config_desc, path)

    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
    from diffusers.loaders.single_file_utils import SingleFileComponentError

    dtype = torch_dtype or torch.float32
    kwargs = dict(
        config=str(config_dir),
        local_files_only=True,
        torch_dtype=dtype,
        feature_extractor=None,
        image_encoder=None,
        **tokenizers,
    )
    try:
        if arch == SDXL:
            cls = StableDiffusionXLPipeline
            kwargs["add_watermarker"] = False  # fakestudio labels outputs itself
            kwargs["text_encoder_2"] = _sdxl_text_encoder_2(path, config_dir, dtype)
        else:
            cls = StableDiffusionPipeline
            kwargs.update(safety_checker=None, requires_safety_checker=False)
        pipe = cls.from_single_file(str(path), **kwargs)
    except (ValueError, RuntimeError, OSError, KeyError, SingleFileComponentError) as e:
        raise _load_error(e, path, config_desc) from e
    _check_complete(pipe, path, config_desc)
    return pipe


# -- the file ---------------------------------------------------------------------------------


def read_header(path: Path) -> Header:
    """Parse the safetensors header (names, shapes) safely; refuse pickles and broken files."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.exists():
        raise BaseModelError(f"{path}: no such file")
    if path.is_dir():
        raise BaseModelError(f"{path}: is a folder, expected a .safetensors checkpoint file")
    pickled = (
        f"{path}: a pickled PyTorch checkpoint, which fakestudio refuses to load (unpickling "
        "can run arbitrary code); convert it to .safetensors first"
    )
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise BaseModelError(pickled)
    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        if _looks_pickled(path):
            raise BaseModelError(pickled) from e
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        reason = reason.removeprefix("Error while deserializing header: ")
        raise BaseModelError(f"{path}: not a valid safetensors file ({reason})") from e
    if path.suffix != ".safetensors":
        # diffusers picks its reader by the (case-sensitive) extension, torch.load for the rest
        raise BaseModelError(f"{path}: a safetensors file must be named *.safetensors; rename it")
    if not shapes:
        raise BaseModelError(f"{path}: the safetensors file holds no tensors")
    return Header(shapes)


def _looks_pickled(path: Path) -> bool:
    """Only asked of files that safetensors rejected: a valid header length can start the same."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    # torch.save zip archives start with a local-file header; bare pickles with PROTO 2..5
    return head.startswith(b"PK\x03\x04") or (len(head) >= 2 and head[0] == 0x80 and head[1] <= 5)


def detect_architecture(header: Header, path: Path) -> str:
    """SD1 or SDXL from the checkpoint's key names; anything else is a BaseModelError."""
    has = header.has_prefix
    if not has(UNET_PREFIX):
        raise BaseModelError(f"{path}: not a Stable Diffusion checkpoint{_what_else(header)}")
    if has("conditioner.embedders.1.model."):
        arch = SDXL
        text_keys = (SDXL_CLIP_KEY, SDXL_OPENCLIP_KEY)
    elif has("cond_stage_model.transformer."):
        arch = SD1
        text_keys = (SD1_CLIP_KEY,)
    elif has("cond_stage_model.model."):
        raise BaseModelError(
            f"{path}: a Stable Diffusion 2.x checkpoint (OpenCLIP text encoder); only SD1.x and "
            "SDXL single files are supported, use a diffusers folder for 2.x"
        )
    elif has("conditioner.embedders.0.model."):
        raise BaseModelError(f"{path}: an SDXL refiner checkpoint; only base models are supported")
    else:
        raise BaseModelError(
            f"{path}: not a Stable Diffusion checkpoint (UNet weights but no text encoder: "
            "cond_stage_model.* or conditioner.embedders.*)"
        )
    missing = [k for k in text_keys if k not in header.shapes]
    if missing:
        raise BaseModelError(
            f"{path}: {ARCH_NAMES[arch]} checkpoint with an unrecognised text-encoder layout "
            f"(no {missing[0]})"
        )
    if not has(VAE_PREFIX):
        raise BaseModelError(
            f"{path}: {ARCH_NAMES[arch]} checkpoint without VAE weights (first_stage_model.*); "
            "use a full checkpoint"
        )
    return arch


def _what_else(header: Header) -> str:
    keys = list(header.shapes)
    if any("lora" in k.lower() for k in keys[:200]):
        return " (it looks like a LoRA: pass it with --lora)"
    if any(k.startswith(("down_blocks.", "up_blocks.", "mid_block.")) for k in keys):
        return " (it looks like a single diffusers component, not a full checkpoint)"
    return " (no model.diffusion_model.* UNet weights)"


# -- configs ----------------------------------------------------------------------------------


def _config_folder(arch: str, config: Path | None, path: Path) -> tuple[Path, str]:
    if config is None:
        folder = BUNDLED[arch]
        return folder, f"the bundled {folder.name} config"
    folder = Path(config).expanduser()
    if not (folder / "model_index.json").is_file():
        raise BaseModelError(
            f"{path}: --config {folder} is not a diffusers folder (no model_index.json)"
        )
    return folder, f"the config folder {folder}"


def _check_config(config_dir: Path, desc: str, arch: str, path: Path) -> dict[str, dict]:
    """Check that the folder has the configs `arch` needs; return the text encoders' configs."""
    try:
        index = json.loads((config_dir / "model_index.json").read_text())
    except (OSError, ValueError) as e:
        raise BaseModelError(f"{path}: unreadable model_index.json in {desc} ({e})") from e
    config_is_xl = "text_encoder_2" in index or "XL" in str(index.get("_class_name", ""))
    if config_is_xl != (arch == SDXL):
        other = "SDXL" if config_is_xl else "Stable Diffusion 1.x"
        raise BaseModelError(
            f"{path}: a {ARCH_NAMES[arch]} checkpoint but {desc} is for {other}; "
            "pass a matching --config"
        )
    encoders = ["text_encoder", "text_encoder_2"] if arch == SDXL else ["text_encoder"]
    needed = ["unet/config.json", "vae/config.json", "scheduler/scheduler_config.json"]
    needed += [f"{name}/config.json" for name in encoders]
    missing = [n for n in needed if not (config_dir / n).is_file()]
    if missing:
        raise BaseModelError(f"{path}: {desc} lacks {', '.join(missing)}")
    out = {}
    for name in encoders:
        try:
            out[name] = json.loads((config_dir / name / "config.json").read_text())
        except (OSError, ValueError) as e:
            raise BaseModelError(f"{path}: unreadable {name}/config.json in {desc} ({e})") from e
    return out


def _check_unet_size(header: Header, config_dir: Path, desc: str, path: Path) -> None:
    """LDM UNet tensors map one to one onto diffusers ones: a file with more is a bigger model.

    diffusers only logs unused weights, so without this a config with fewer blocks than the file
    would load a silently truncated UNet.
    """
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel

    try:
        with init_empty_weights():
            unet = UNet2DConditionModel.from_config(
                UNet2DConditionModel.load_config(config_dir / "unet")
            )
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise _load_error(e, path, desc) from e
    expected = len(unet.state_dict())
    found = header.count(UNET_PREFIX)
    if found > expected:
        raise BaseModelError(
            f"{path}: the file has {found} UNet tensors but {desc} builds a UNet with {expected}; "
            "pass --config DIR with a diffusers folder whose configs match this checkpoint"
        )


def _sdxl_text_encoder_2(path: Path, config_dir: Path, dtype):
    """SDXL's OpenCLIP encoder, converted from its own tensors only.

    Given the whole file, diffusers decides which embedder to read by comparing hidden sizes, and
    takes `conditioner.embedders.0` (CLIP-L) whenever both encoders are equally wide.
    """
    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm
    from safetensors import safe_open
    from transformers import CLIPTextModelWithProjection

    prefix = "conditioner.embedders.1.model."
    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys() if k.startswith(prefix)}
    return create_diffusers_clip_model_from_ldm(
        CLIPTextModelWithProjection,
        checkpoint=tensors,
        config=str(config_dir),
        subfolder="text_encoder_2",
        torch_dtype=dtype,
        local_files_only=True,
    )


def _load_error(e: BaseException, path: Path, desc: str) -> BaseModelError:
    text = str(e)
    if "meta tensor" in text:  # a weight the file lacks, left unloaded by diffusers
        return BaseModelError(
            f"{path}: the file lacks weights that {desc} needs; pass --config DIR with a "
            "diffusers folder whose configs match this checkpoint"
        )
    m = re.search(r"because (\S+) expected shape (.+?), but got (.+?)\.", text)
    if m:
        name, want, got = m.groups()
        return BaseModelError(
            f"{path}: the weights do not fit {desc} ({name} is {_shape(got)} in the file, the "
            f"config expects {_shape(want)}); pass --config DIR with a diffusers folder whose "
            "configs match this checkpoint"
        )
    first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
    return BaseModelError(f"{path}: cannot load with {desc} ({first})")


def _shape(text: str) -> str:
    return text.replace("torch.Size(", "").rstrip(")").replace(" ", "")


def _check_complete(pipe, path: Path, desc: str) -> None:
    """Weights the file lacks stay on the meta device in diffusers' loaders: refuse them."""
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        module = getattr(pipe, name, None)
        if module is None:
            continue
        tensors = list(module.named_parameters()) + list(module.named_buffers())
        missing = [n for n, t in tensors if t.is_meta]
        if missing:
            raise BaseModelError(
                f"{path}: the file lacks {len(missing)} {name} weights that {desc} needs "
                f"(e.g. {missing[0]}); pass --config DIR with a diffusers folder whose configs "
                "match this checkpoint"
            )


# -- tokenizers -------------------------------------------------------------------------------


def resolve_tokenizers(arch: str, tokenizer: Path | None, config_dir: Path, path: Path) -> dict:
    """{"tokenizer": ..., ["tokenizer_2": ...]} from the first source that has one."""
    if tokenizer is not None:
        folder = Path(tokenizer).expanduser()
        if is_tokenizer_dir(folder):
            main, second = folder, None
        elif is_tokenizer_dir(folder / "tokenizer"):
            main, second = folder / "tokenizer", folder / "tokenizer_2"
        else:
            raise BaseModelError(
                f"{path}: --tokenizer {folder} holds no CLIP tokenizer (vocab.json + merges.txt "
                "or tokenizer.json)"
            )
        return _tokenizer_pair(arch, _load_tokenizer_dir(main, path), second, path)
    if is_tokenizer_dir(config_dir / "tokenizer"):
        main = _load_tokenizer_dir(config_dir / "tokenizer", path)
        return _tokenizer_pair(arch, main, config_dir / "tokenizer_2", path)
    bpe = installed_clip_bpe()
    if bpe is not None:
        return _tokenizer_pair(arch, clip_tokenizer_from_bpe(bpe), None, path)
    raise BaseModelError(f"{path}: no tokenizer found for this checkpoint; {TOKENIZER_HINT}")


def _tokenizer_pair(arch: str, main, second_dir: Path | None, path: Path) -> dict:
    out = {"tokenizer": main}
    if arch == SDXL:
        if second_dir is not None and is_tokenizer_dir(second_dir):
            out["tokenizer_2"] = _load_tokenizer_dir(second_dir, path)
        else:
            # SDXL's second tokenizer is CLIP's vocabulary again, padding with "!" (id 0)
            # instead of <|endoftext|>, as in stabilityai/stable-diffusion-xl-base-1.0.
            out["tokenizer_2"] = _with_pad(main, "!")
    return out


def is_tokenizer_dir(folder: Path) -> bool:
    return folder.is_dir() and (
        (folder / "tokenizer.json").is_file()
        or ((folder / "vocab.json").is_file() and (folder / "merges.txt").is_file())
    )


def _load_tokenizer_dir(folder: Path, path: Path):
    from transformers import CLIPTokenizer

    try:
        return CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BaseModelError(f"{path}: cannot read the tokenizer in {folder} ({first})") from e


def _with_pad(tokenizer, pad: str):
    second = copy.deepcopy(tokenizer)
    second.pad_token = pad
    return second


def installed_clip_bpe() -> Path | None:
    """CLIP's BPE file inside an installed open-clip-torch / clip-anytorch, without importing it."""
    for name in CLIP_BPE_PACKAGES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        for location in spec.submodule_search_locations or []:
            candidate = Path(location) / CLIP_BPE_FILE
            if candidate.is_file():
                return candidate
    return None


def _bytes_to_unicode() -> list[str]:
    """CLIP/GPT-2's byte table, in CLIP's vocabulary order (printable bytes first)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars, n = [chr(b) for b in printable], 0
    for b in range(256):
        if b not in printable:
            chars.append(chr(256 + n))
            n += 1
    return chars


def clip_tokenizer_from_bpe(bpe_path: Path):
    """Build CLIP's tokenizer from `bpe_simple_vocab_16e6.txt.gz` exactly as CLIP does.

    The vocabulary is the 256 byte symbols, the same with `</w>`, one token per merge (the first
    48894 merge lines after the header), then <|startoftext|> and <|endoftext|>: 49408 ids.
    """
    from transformers import CLIPTokenizer

    lines = gzip.open(bpe_path).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    merges = [m for m in merges if len(m) == 2]
    symbols = _bytes_to_unicode()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=MAX_TOKENS)
