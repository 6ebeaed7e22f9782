"""Shared test set-up: a private FAKESTUDIO_HOME per test session, tiny models built once."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

# A suite started in the background by a non-interactive shell inherits SIGINT ignored (POSIX),
# and so would every command the tests start: the Ctrl-C tests need the normal handler.
signal.signal(signal.SIGINT, signal.default_int_handler)

# The unit tests run on the random `tiny` base (fast); the world base's own tests pass
# `--base world` explicitly. Commands the tests start inherit this.
os.environ["FAKESTUDIO_BASE"] = "tiny"

FIXTURES = Path(
    os.environ.get("FAKESTUDIO_FIXTURES")
    or Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
)
# what the fixture-reading tests open; in CI (CI=true) a missing one fails the run instead of
# skipping those tests
REQUIRED_FIXTURES = ("c2pa/C.jpg", "real/DSCN0010.jpg", "generated")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def pytest_sessionstart(session):
    missing = [p for p in REQUIRED_FIXTURES if not (FIXTURES / p).exists()]
    if missing and in_ci():
        pytest.exit(
            f"CI=true but shared fixtures are missing in {FIXTURES}: {', '.join(missing)}",
            returncode=1,
        )


@pytest.fixture(scope="session", autouse=True)
def fs_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("fakestudio-home")
    old = os.environ.get("FAKESTUDIO_HOME")
    os.environ["FAKESTUDIO_HOME"] = str(home)
    os.environ["HF_HUB_OFFLINE"] = "1"
    yield home
    if old is None:
        os.environ.pop("FAKESTUDIO_HOME", None)
    else:
        os.environ["FAKESTUDIO_HOME"] = old


@pytest.fixture(scope="session")
def tiny_folder(fs_home):
    from fakestudio.tiny import ensure_tiny

    return ensure_tiny()


@pytest.fixture(scope="session")
def tiny_pipe(tiny_folder):
    from fakestudio.models import load_base

    return load_base("tiny").pipe


@pytest.fixture(scope="session")
def fixtures_dir():
    if not FIXTURES.is_dir():
        pytest.skip(f"shared fixtures not found at {FIXTURES}")
    return FIXTURES


@pytest.fixture(scope="session")
def camera_photo(fixtures_dir):
    """A real camera JPEG (EXIF, no provenance) from the shared fixtures."""
    p = fixtures_dir / "real" / "DSCN0010.jpg"
    if not p.is_file():
        pytest.skip(f"camera photo fixture not found at {p}")
    return p
