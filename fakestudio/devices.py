"""`--device`: what the user asked for, checked against the torch that is installed."""

from __future__ import annotations

from fakestudio.errors import UserError


def resolve_device(name: str | None) -> str:
    """``name`` (cpu, cuda, cuda:1, mps ...) or, when None, cuda if a GPU is visible else cpu.
    A device this torch cannot use is one clear line (a CPU-only torch asked for cuda used to
    end in "AssertionError: Torch not compiled with CUDA enabled")."""
    import torch

    if name is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise UserError(
            f"--device {name}: not a device torch knows (cpu, cuda, cuda:1, mps)"
        ) from None
    if dev.type == "cuda":
        if not torch.backends.cuda.is_built():
            raise UserError(
                f"--device {name}: this torch ({torch.__version__}) was built without CUDA; "
                "use --device cpu or install a CUDA build of torch"
            )
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: no CUDA GPU is visible to torch")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(
                f"--device {name}: there are {torch.cuda.device_count()} CUDA device(s) here"
            )
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise UserError(f"--device {name}: Apple's MPS is not available to this torch")
    elif dev.type != "cpu":
        raise UserError(f"--device {name}: use cpu, cuda, cuda:N or mps")
    return name
