"""Nonce rules: stateless to issue, single-use by a consumption record.

A nonce carries its app, its expiry and 128 random bits, sealed with an HMAC under a
server secret that every node shares (it lives in the database). Issuing one therefore
writes nothing: an unauthenticated flood of ``POST /v1/nonces`` cannot grow the database.
Single use is enforced where it must be atomic anyway: consuming a nonce inserts its
:attr:`CheckedNonce.key` into a table with a unique key, in the same transaction that
creates the session, so of any number of concurrent submissions exactly one commits.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import struct
from dataclasses import dataclass

from chinwag.core.errors import InvalidIdentityToken, TokenRejection

__all__ = ["NONCE_LIFETIME", "CheckedNonce", "IssuedNonce", "check_nonce", "issue_nonce"]

NONCE_LIFETIME = 600.0
_VERSION = 1
_RANDOM_BYTES = 16
_MAC_BYTES = 16
_RAW_LENGTH = 1 + 8 + _RANDOM_BYTES + _MAC_BYTES
_SHAPE = re.compile(r"[A-Za-z0-9_-]{55}")  # 41 bytes, unpadded


@dataclass(frozen=True, slots=True)
class IssuedNonce:
    value: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class CheckedNonce:
    key: bytes
    """SHA-256 of the nonce: what the consumption record stores."""
    expires_at: float


def _mac(secret: bytes, app_id: str, body: bytes) -> bytes:
    message = b"chinwag-nonce\x00" + app_id.encode() + b"\x00" + body
    return hmac.new(secret, message, hashlib.sha256).digest()[:_MAC_BYTES]


def issue_nonce(
    app_id: str, *, secret: bytes, now: float, random: bytes, lifetime: float = NONCE_LIFETIME
) -> IssuedNonce:
    if len(random) != _RANDOM_BYTES:
        raise ValueError(f"need {_RANDOM_BYTES} random bytes, got {len(random)}")
    expires_at = int(now + lifetime)
    body = struct.pack(">BQ", _VERSION, expires_at) + random
    raw = body + _mac(secret, app_id, body)
    value = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return IssuedNonce(value=value, expires_at=float(expires_at))


def check_nonce(value: object, app_id: str, *, secret: bytes, now: float) -> CheckedNonce:
    """Check a nonce's seal, app and age. Whether it was used is the store's to say."""
    if not isinstance(value, str) or _SHAPE.fullmatch(value) is None:
        raise InvalidIdentityToken(
            TokenRejection.NONCE_NOT_FOUND, "The nonce is not one this server issued."
        )
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    # One nonce, one spelling: the last character has 2 unused bits, and the consumption
    # key hashes the text, so a non-canonical spelling would be a second use of one nonce.
    canonical = base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == value
    if not canonical or len(raw) != _RAW_LENGTH or raw[0] != _VERSION:
        raise InvalidIdentityToken(
            TokenRejection.NONCE_NOT_FOUND, "The nonce is not one this server issued."
        )
    body, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    if not hmac.compare_digest(mac, _mac(secret, app_id, body)):
        raise InvalidIdentityToken(
            TokenRejection.NONCE_NOT_FOUND,
            "The nonce was not issued by this server for this app.",
        )
    (expires_at,) = struct.unpack(">Q", body[1:9])
    if now >= expires_at:
        raise InvalidIdentityToken(
            TokenRejection.NONCE_EXPIRED,
            "The nonce has expired (nonces live 10 minutes); ask for a new one.",
        )
    return CheckedNonce(key=hashlib.sha256(value.encode()).digest(), expires_at=float(expires_at))
