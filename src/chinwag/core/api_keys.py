"""Platform API key rules: the key's shape, and how its secret is checked.

A key is ``cwk_<id>_<secret>``: the id (8 characters of lower-case base32, so it can be
typed, and never starts with ``-`` on a command line) names the row, the secret (32 random
bytes, base64url) is stored only as its SHA-256 and compared in constant time.

Why SHA-256 and not a password hash (argon2, bcrypt): a password hash is slow on purpose,
to make guessing a *low-entropy* secret from a leaked hash expensive. These secrets are 256
random bits; no amount of guessing finds one, fast hash or slow. A slow hash would only add
tens of milliseconds to every platform request (and make a key-guessing flood a CPU flood).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "ID_BYTES",
    "PREFIX",
    "SECRET_BYTES",
    "ApiKeyRole",
    "NewApiKey",
    "ParsedApiKey",
    "new_api_key",
    "parse_api_key",
    "secret_matches",
]

PREFIX = "cwk_"
ID_BYTES = 5
SECRET_BYTES = 32
_SHAPE = re.compile(r"cwk_([a-z2-7]{8})_([A-Za-z0-9_-]{43})")


class ApiKeyRole(StrEnum):
    """``admin`` reaches every app and the server-wide endpoints; ``app`` only its app."""

    ADMIN = "admin"
    APP = "app"


@dataclass(frozen=True, slots=True)
class NewApiKey:
    token: str
    """Shown once to whoever created it; chinwag keeps only ``secret_hash``."""
    key_id: str
    secret_hash: bytes


@dataclass(frozen=True, slots=True)
class ParsedApiKey:
    key_id: str
    secret_hash: bytes


def new_api_key(random: bytes) -> NewApiKey:
    """Build a key from ``ID_BYTES + SECRET_BYTES`` bytes of CSPRNG output."""
    if len(random) != ID_BYTES + SECRET_BYTES:
        raise ValueError(f"need {ID_BYTES + SECRET_BYTES} random bytes")
    key_id = base64.b32encode(random[:ID_BYTES]).decode().lower()
    secret = base64.urlsafe_b64encode(random[ID_BYTES:]).rstrip(b"=").decode()
    return NewApiKey(
        token=f"{PREFIX}{key_id}_{secret}",
        key_id=key_id,
        secret_hash=hashlib.sha256(secret.encode()).digest(),
    )


def parse_api_key(token: str) -> ParsedApiKey | None:
    """The key's id and secret hash, or None for anything not shaped like a key."""
    match = _SHAPE.fullmatch(token)
    if match is None:
        return None
    return ParsedApiKey(match.group(1), hashlib.sha256(match.group(2).encode()).digest())


def secret_matches(stored_hash: bytes, presented: ParsedApiKey) -> bool:
    return hmac.compare_digest(stored_hash, presented.secret_hash)
