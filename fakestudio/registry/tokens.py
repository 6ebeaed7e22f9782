"""Publisher tokens: random, shown once, stored only as their SHA-256.

A token is 32 random bytes (URL-safe base64) behind the prefix `fsr_`. It is as strong as a
random key, so a plain SHA-256 (no slow password hash) is enough to make a stolen database
useless for publishing: the server compares hashes, never tokens.
"""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "fsr_"
ENV = "FAKESTUDIO_REGISTRY_TOKEN"


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.strip().encode("utf-8", "replace")).hexdigest()


def create(storage, name: str = "publisher") -> tuple[int, str]:
    """A new token (id, token); only its hash is stored."""
    token = new_token()
    return storage.add_token(name, hash_token(token)), token
