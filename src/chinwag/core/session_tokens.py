"""Session token rules.

A token is ``cws_<id>.<secret>``: the id (128 bits) finds the row, the secret (256 bits) is
stored only as its SHA-256 and compared in constant time (the Lucia/Copenhagen-book split:
a database leak hands out no live session, and lookup timing reveals nothing of the secret).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

__all__ = [
    "NewSessionToken",
    "ParsedSessionToken",
    "is_session_id",
    "new_session_token",
    "parse_session_token",
    "secret_matches",
]

_PREFIX = "cws_"
_ID = re.compile(r"[A-Za-z0-9_-]{22}")
_SHAPE = re.compile(r"cws_([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})")
ID_BYTES = 16
SECRET_BYTES = 32


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class NewSessionToken:
    token: str
    session_id: str
    secret_hash: bytes


@dataclass(frozen=True, slots=True)
class ParsedSessionToken:
    session_id: str
    secret_hash: bytes


def new_session_token(random: bytes) -> NewSessionToken:
    """Build a token from ``ID_BYTES + SECRET_BYTES`` bytes of CSPRNG output."""
    if len(random) != ID_BYTES + SECRET_BYTES:
        raise ValueError(f"need {ID_BYTES + SECRET_BYTES} random bytes")
    session_id = _b64(random[:ID_BYTES])
    secret = _b64(random[ID_BYTES:])
    return NewSessionToken(
        token=f"{_PREFIX}{session_id}.{secret}",
        session_id=session_id,
        secret_hash=hashlib.sha256(secret.encode()).digest(),
    )


def parse_session_token(token: str) -> ParsedSessionToken | None:
    match = _SHAPE.fullmatch(token)
    if match is None:
        return None
    return ParsedSessionToken(
        session_id=match.group(1), secret_hash=hashlib.sha256(match.group(2).encode()).digest()
    )


def is_session_id(value: str) -> bool:
    """Whether ``value`` has the shape of a session id (before it is looked up)."""
    return _ID.fullmatch(value) is not None


def secret_matches(stored_hash: bytes, presented: ParsedSessionToken) -> bool:
    return hmac.compare_digest(stored_hash, presented.secret_hash)
