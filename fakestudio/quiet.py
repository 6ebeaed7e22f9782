"""Silence the chatter of the heavy libraries (progress bars, torchvision fallbacks).

fakestudio draws its own progress bars; diffusers', transformers' and huggingface_hub's would
interleave with them.
"""

from __future__ import annotations

import os
import warnings


def quiet_libraries() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*torchvision.*")
    # each person's LoRA is a second adapter on the same model, on purpose
    warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
    import diffusers.utils.logging as dlog
    import transformers.utils.logging as tlog

    tlog.set_verbosity_error()
    tlog.disable_progress_bar()
    dlog.set_verbosity_error()
    dlog.disable_progress_bar()
