"""What one `fakestudio web` server is configured with."""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field
from pathlib import Path

# The join code: short, read aloud and typed on a phone; no 0/O, 1/I/L look-alikes.
JOIN_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
JOIN_LENGTH = 6  # 31^6 = 887 million codes; the server also limits tries per address

DEFAULT_MAX_UPLOAD = 64 * 1024 * 1024  # bytes of one uploaded image (`--max-upload`)


def new_join_code() -> str:
    return "".join(secrets.choice(JOIN_ALPHABET) for _ in range(JOIN_LENGTH))


def new_admin_token() -> str:
    return secrets.token_urlsafe(24)


def is_loopback(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and "localhost" (the names a local browser uses)."""
    if not host:
        return False
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class WebConfig:
    host: str = "127.0.0.1"
    port: int = 7860
    talk_dir: Path | None = None  # the talk's pictures: a demo output, or real/ + fake/
    lora_dir: Path | None = None  # LoRAs the studio offers
    registry: str | None = None  # a soft-binding registry verify may ask (never by default)
    allow_remote_admin: bool = False  # studio, audit, server paths for non-loopback clients
    max_upload: int = DEFAULT_MAX_UPLOAD
    trust_anchors: list[bytes] | None = None
    use_ledger: bool = True
    base: str | None = None  # the studio's default base (None: $FAKESTUDIO_BASE, else world)
    studio_out: Path | None = None  # where the studio writes (default: data folder/web-studio)
    public_url: str | None = None  # the address phones use (the QR code); default from host
    admin_token: str = field(default_factory=new_admin_token)
    join_code: str = field(default_factory=new_join_code)

    @property
    def remote(self) -> bool:
        """Listening beyond loopback: tokens and join codes are required."""
        return not is_loopback(self.host)
