"""What each part of fakestudio needs beyond the core install, and one line when it is missing.

`pip install fakestudio` is the analysis core: `detectors/` and the commands that only read
pictures and files (`verify`, `compare`, `audit`, `label`, `lora-info`, `keys`, `registry
publish`), with no torch. The rest come as extras (pyproject.toml has the version ranges):

    studio     prepare, train, generate, encounter, demo   torch, diffusers, transformers, ...
    registry   registry serve (SQLite; PostgreSQL)          starlette, uvicorn, psycopg
    web        web                                          starlette, uvicorn, python-multipart
    cluster    audit --engine ray                           ray
    formats    the pixels of HEIC, DNG, SVG (verify, label)  pillow-heif, rawpy, resvg-py
    video      video frames (verify)                        av
    all        all of them (`dev` adds the test tools)

A command calls `require("studio", "train")` before it does anything: when a package of the
extra is not installed it raises `MissingExtra`, a UserError the CLI prints as one line with
exit code 2, naming the extra to install. `find_spec` only looks the package up on disk, so
the check imports nothing (torch stays out of a process that does not use it). An import that
still fails deeper down (a package removed by hand) is named the same way by `missing_extra`,
which the CLI calls on any ModuleNotFoundError.
"""

from __future__ import annotations

import importlib.util

from fakestudio.errors import UserError

# extra -> the import names of its packages, as pyproject.toml lists them
EXTRAS: dict[str, tuple[str, ...]] = {
    "studio": ("torch", "diffusers", "transformers", "peft", "accelerate", "tokenizers", "scipy"),
    "registry": ("starlette", "uvicorn", "psycopg"),
    "web": ("starlette", "uvicorn", "python_multipart", "segno"),
    "cluster": ("ray",),
    # verify reads these formats' credentials without them; their pixels need them
    "formats": ("pillow_heif", "rawpy", "resvg_py"),
    "video": ("av",),
}


class MissingExtra(UserError):
    """A command needs an extra that is not installed."""


def missing(extra: str) -> list[str]:
    """The packages of `extra` that cannot be imported here."""
    return [name for name in EXTRAS[extra] if not _installed(name)]


def problem(extra: str, what: str) -> str | None:
    """The one line to show when `what` (a command or option, e.g. "train") cannot run for
    want of `extra`: what needs it, the first missing package, what to install. None: ready."""
    absent = missing(extra)
    return _message(extra, what, absent[0]) if absent else None


def require(extra: str, what: str) -> None:
    """Raise MissingExtra with `problem`'s line unless every package of `extra` is installed."""
    text = problem(extra, what)
    if text:
        raise MissingExtra(text)


def missing_extra(error: ModuleNotFoundError, what: str) -> MissingExtra | None:
    """The MissingExtra for an import that failed on a package of an extra (None for any
    other module: that is a bug, shown as one)."""
    top = (error.name or "").split(".")[0]
    for extra, names in EXTRAS.items():
        if top in names:
            return MissingExtra(_message(extra, what, top))
    return None


def _message(extra: str, what: str, package: str) -> str:
    return (
        f"{what} needs fakestudio's {extra} extra ({package} is not installed): "
        f"pip install 'fakestudio[{extra}]'"
    )


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a broken install, or sys.modules[name] = None
        return False
