"""Chat identity tokens: the app's private key, loaded from an owner-only file, and the JWT.

The key file is exactly what ``chinwag keys generate APP_ID --alg ES256 --json`` prints
(``{"kid", "alg", "private_key_pem"}``): chinwag keeps only the public half, so this file is
the one thing that can vouch for your users. It is refused when group or others can read
it, as ssh refuses a readable private key.

The token's ``exp`` is the chat session's lifetime: chinwag ends the session at ``exp``, and
the SDK asks this service for a fresh token at about 80 % of it (README: choosing ``exp``).
"""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass
from pathlib import Path

import jwt

__all__ = ["CHAT_TOKEN_LIFETIME", "KeyFileError", "SigningKey", "load_signing_key"]

CHAT_TOKEN_LIFETIME = 12 * 3600
"""Seconds a chat session lasts before the SDK must come back here for a new token."""

_ASYMMETRIC = ("ES256", "RS256", "PS256", "EdDSA")


class KeyFileError(Exception):
    """The key file is missing, readable by others, or not a ``keys generate`` output."""


@dataclass(frozen=True)
class SigningKey:
    app_id: str
    kid: str
    alg: str
    private_key_pem: str

    def sign(
        self, *, user_id: str, nonce: str, now: int, lifetime: int, profile: dict[str, str]
    ) -> str:
        claims = {
            "iss": self.app_id,
            "sub": user_id,
            "nce": nonce,
            "iat": now,
            "exp": now + lifetime,
            **profile,
        }
        headers = {"kid": self.kid, "typ": "JWT"}
        return jwt.encode(claims, self.private_key_pem, algorithm=self.alg, headers=headers)


def load_signing_key(path: Path, app_id: str) -> SigningKey:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"cannot read the key file {path}: {exc}") from None
    if mode & 0o077:
        raise KeyFileError(
            f"the key file {path} is readable by others (mode {mode:o}); chmod 600 it"
        )
    if not isinstance(data, dict) or data.get("alg") not in _ASYMMETRIC:
        raise KeyFileError(f"{path} is not the output of `chinwag keys generate --json`")
    if not isinstance(data.get("kid"), str) or not isinstance(data.get("private_key_pem"), str):
        raise KeyFileError(f"{path} lacks kid or private_key_pem")
    return SigningKey(app_id, data["kid"], data["alg"], data["private_key_pem"])
