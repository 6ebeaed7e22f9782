"""Where fakestudio keeps its things. FAKESTUDIO_HOME overrides all three (tests use it)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def _root(kind: str) -> Path:
    home = os.environ.get("FAKESTUDIO_HOME")
    if home:
        return Path(home) / kind
    fn = {
        "config": platformdirs.user_config_dir,
        "data": platformdirs.user_data_dir,
        "cache": platformdirs.user_cache_dir,
    }[kind]
    return Path(fn("fakestudio"))


def config_dir() -> Path:
    """Signing identity (private key mode 0600)."""
    return _root("config")


KEYS_DIR = "keys"  # under config_dir(): the local signing identity (mode 0700)
CA_FILE = "ca.pem"  # its CA certificate, the trust anchor readers are given


def local_ca_path(config: Path | None = None) -> Path:
    """The local signing identity's CA certificate (made by `fakestudio keys`)."""
    return Path(config if config is not None else config_dir()) / KEYS_DIR / CA_FILE


def data_dir() -> Path:
    """The output ledger."""
    return _root("data")


def cache_dir() -> Path:
    """The embedded default base model, built once."""
    return _root("cache")
