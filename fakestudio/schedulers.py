"""Scheduler names users know from Automatic1111 and diffusers, mapped to diffusers classes."""

from __future__ import annotations

from fakestudio.errors import UserError

# name -> (diffusers class name, extra config)
SCHEDULERS: dict[str, tuple[str, dict]] = {
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "lms": ("LMSDiscreteScheduler", {}),
    "ddim": ("DDIMScheduler", {}),
    "ddpm": ("DDPMScheduler", {}),
    "pndm": ("PNDMScheduler", {}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "dpm++2m": ("DPMSolverMultistepScheduler", {}),
    "dpm++2m_karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "dpm++2m_sde": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "dpm++2m_sde_karras": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True},
    ),
    "dpm++sde": ("DPMSolverSinglestepScheduler", {}),
    "dpm++sde_karras": ("DPMSolverSinglestepScheduler", {"use_karras_sigmas": True}),
    "dpm2": ("KDPM2DiscreteScheduler", {}),
    "dpm2_karras": ("KDPM2DiscreteScheduler", {"use_karras_sigmas": True}),
    "dpm2_a": ("KDPM2AncestralDiscreteScheduler", {}),
    "dpm2_a_karras": ("KDPM2AncestralDiscreteScheduler", {"use_karras_sigmas": True}),
    "lms_karras": ("LMSDiscreteScheduler", {"use_karras_sigmas": True}),
}
KARRAS = {name for name, (_, extra) in SCHEDULERS.items() if extra.get("use_karras_sigmas")}
ALIASES = {
    "eulera": "euler_a",
    "eulerancestral": "euler_a",
    "dpm++2mkarras": "dpm++2m_karras",
    "dpmpp2m": "dpm++2m",
    "dpmpp2mkarras": "dpm++2m_karras",
    "dpmsolver": "dpm++2m",
    "dpm2a": "dpm2_a",
    "dpm2akarras": "dpm2_a_karras",
    "dpmpp2msde": "dpm++2m_sde",
    "dpmpp2msdekarras": "dpm++2m_sde_karras",
    "dpmppsde": "dpm++sde",
    "dpmppsdekarras": "dpm++sde_karras",
}


def canonical(name: str) -> str:
    """`Euler a`, `euler-a`, `EULER_A` -> `euler_a`; UserError for unknown names."""
    key = name.strip().lower().replace(" ", "_").replace("-", "_")
    if key in SCHEDULERS:
        return key
    squashed = key.replace("_", "")
    if squashed in ALIASES:
        return ALIASES[squashed]
    for k in SCHEDULERS:
        if k.replace("_", "") == squashed:
            return k
    raise UserError(f"unknown scheduler {name!r}; choose one of: {', '.join(SCHEDULERS)}")


def make_scheduler(name: str, base_config):
    import diffusers

    cls_name, extra = SCHEDULERS[canonical(name)]
    return getattr(diffusers, cls_name).from_config(base_config, **extra)
