"""Standard Webhooks 1.0 signatures (https://www.standardwebhooks.com), pure.

A delivery carries ``webhook-id``, ``webhook-timestamp`` (integer seconds) and
``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``; several signatures
are separated by spaces, which is how a secret rotation stays verifiable: during the
overlap every delivery is signed with the new secret *and* the old one, so a receiver that
still holds either accepts it. Secrets are ``whsec_`` + base64 of the raw key bytes, the
form every ``standardwebhooks`` library accepts. Time and randomness come in as arguments.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Iterable

__all__ = ["SECRET_PREFIX", "headers", "new_secret", "sign"]

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
_SECRET_BYTES = 32


def new_secret(random: Callable[[int], bytes]) -> str:
    """A fresh ``whsec_`` secret of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(random(_SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    text = secret.removeprefix(SECRET_PREFIX)
    return base64.b64decode(text + "=" * (-len(text) % 4))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``body`` under ``secret``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secrets: Iterable[str], msg_id: str, now: float, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers, signed with every secret in ``secrets``."""
    timestamp = int(now)
    signatures = " ".join(sign(s, msg_id, timestamp, body) for s in secrets)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures,
    }
