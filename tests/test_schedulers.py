"""Every scheduler name gives the diffusers class and the sigma schedule it promises."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fakestudio.errors import UserError
from fakestudio.schedulers import ALIASES, KARRAS, SCHEDULERS, canonical, make_scheduler

CONFIG = json.loads(
    (
        Path(__file__).resolve().parents[1]
        / "fakestudio/configs/sd15/scheduler/scheduler_config.json"
    ).read_text()
)
# what users type (Automatic1111's sampler names) -> what they must get
A1111_NAMES = {
    "Euler": "euler",
    "Euler a": "euler_a",
    "Heun": "heun",
    "LMS": "lms",
    "LMS Karras": "lms_karras",
    "DDIM": "ddim",
    "PLMS": None,  # not offered: refused, not silently replaced
    "UniPC": "unipc",
    "DPM++ 2M": "dpm++2m",
    "DPM++ 2M Karras": "dpm++2m_karras",
    "DPM++ 2M SDE": "dpm++2m_sde",
    "DPM++ 2M SDE Karras": "dpm++2m_sde_karras",
    "DPM++ SDE": "dpm++sde",
    "DPM++ SDE Karras": "dpm++sde_karras",
    "DPM2": "dpm2",
    "DPM2 Karras": "dpm2_karras",
    "DPM2 a": "dpm2_a",
    "DPM2 a Karras": "dpm2_a_karras",
}


def _is_karras(sigmas: np.ndarray) -> bool:
    """Karras et al.'s schedule: sigma^(1/7) falls linearly from sigma_max to sigma_min."""
    s = sigmas[sigmas > 0] ** (1 / 7)
    steps = np.diff(s)
    return len(s) > 3 and np.allclose(steps, steps[0], rtol=1e-3, atol=1e-6)


def _sigmas(scheduler) -> np.ndarray:
    """The distinct sigmas, largest first (KDPM2 repeats each one for its two stages)."""
    scheduler.set_timesteps(12)
    return np.unique(np.asarray(scheduler.sigmas, dtype=np.float64))[::-1]


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_every_name_gives_its_class_and_sigmas(name):
    cls_name, extra = SCHEDULERS[name]
    sched = make_scheduler(name, CONFIG)
    assert type(sched).__name__ == cls_name
    for key, value in extra.items():
        assert sched.config[key] == value
    if name in KARRAS:
        assert _is_karras(_sigmas(sched)), name
    elif hasattr(sched, "sigmas") and "use_karras_sigmas" in sched.config:
        assert not _is_karras(_sigmas(sched)), name


@pytest.mark.parametrize("typed, expected", sorted(A1111_NAMES.items()))
def test_a1111_names(typed, expected):
    if expected is None:
        with pytest.raises(UserError, match="unknown scheduler"):
            canonical(typed)
    else:
        assert canonical(typed) == expected
        assert canonical(typed.lower().replace(" ", "-")) == expected


def test_every_alias_keeps_karras():
    for alias, name in ALIASES.items():
        assert name in SCHEDULERS
        assert ("karras" in alias) == (name in KARRAS), alias
