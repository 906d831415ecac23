"""JWKS key sets: reading a fetched set, and how long to trust it. Pure: no I/O, no clock.

An app may publish its signing keys at a ``jwks_url`` instead of uploading them. The server
fetches the set (``server.jwks``); this module decides what in it is usable, with the very
rules an uploaded key meets (:func:`chinwag.core.keys.load_public_jwk`): each key is pinned
to one algorithm (its ``alg``, else the one its type implies; RFC 8725 §3.1), RSA keys are at
least 2048 bits, EC keys are P-256, ``use`` must be ``sig`` when present, and symmetric
(``oct``) keys are refused: a secret published at a URL is no secret.

One bad key does not spoil the set (a set may legitimately hold encryption keys beside
signing ones): it is left out and named in :attr:`JwkSet.rejected`, so a person registering
the URL sees why. A set with no usable key at all is refused whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from chinwag.core.errors import ChinwagError, InvalidRequest
from chinwag.core.ids import is_valid_kid
from chinwag.core.keys import Alg, KeyMaterial, load_public_jwk
from chinwag.core.strict_json import StrictJSONError, loads_object

__all__ = [
    "DEFAULT_MAX_AGE",
    "MAX_KEYS",
    "MAX_MAX_AGE",
    "MIN_MAX_AGE",
    "REFETCH_INTERVAL",
    "JwkSet",
    "RejectedJwk",
    "cache_lifetime",
    "parse_jwks",
]

DEFAULT_MAX_AGE = 300.0
"""Seconds a set is trusted when the response names no ``max-age``."""
MIN_MAX_AGE = 60.0
"""Floor: a ``max-age=0`` (or ``no-store``) endpoint would be fetched on every sign-in."""
MAX_MAX_AGE = 24 * 3600.0
"""Ceiling: a removed (say, leaked) key stops working within a day whatever the header says."""
REFETCH_INTERVAL = 30.0
"""At most one fetch per app per this many seconds outside expiry: an unknown ``kid`` (or a
failed fetch) must not let anyone with a forged token make chinwag hammer the endpoint."""
MAX_KEYS = 100
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d{1,12})\"?\s*(?:,|$)", re.IGNORECASE)
_NO_STORE = re.compile(r"(?:^|,)\s*(?:no-store|no-cache)\s*(?:,|$)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class RejectedJwk:
    """A key of the set that chinwag will not verify with, and why (no key material)."""

    kid: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class JwkSet:
    keys: dict[str, KeyMaterial] = field(default_factory=dict)
    rejected: tuple[RejectedJwk, ...] = ()

    def algs(self) -> dict[str, Alg]:
        return {kid: material.alg for kid, material in self.keys.items()}


def cache_lifetime(cache_control: str | None) -> float:
    """Seconds to keep a fetched set, from its ``Cache-Control``, clamped to [60 s, 24 h]."""
    if not cache_control:
        return DEFAULT_MAX_AGE
    if _NO_STORE.search(cache_control):
        return MIN_MAX_AGE
    found = _MAX_AGE.search(cache_control)
    if found is None:
        return DEFAULT_MAX_AGE
    return min(MAX_MAX_AGE, max(MIN_MAX_AGE, float(found.group(1))))


def _invalid(message: str) -> InvalidRequest:
    return InvalidRequest(message, data={"property": "jwks_url"}, status=422)


def _key_problem(jwk: dict[str, Any]) -> str | None:
    """Why this JWK is unusable before it is parsed, or None."""
    kty = jwk.get("kty")
    if kty == "oct":
        return "symmetric (oct) keys are refused in a JWKS: a published secret is no secret"
    if "use" in jwk and jwk["use"] != "sig":
        return "'use' must be 'sig' when present"
    alg = jwk.get("alg")
    if isinstance(alg, str) and alg.lower() == "none":
        return "'alg: none' is refused"
    if isinstance(alg, str) and alg == Alg.HS256.value:
        return "HS256 keys are secrets, never published"
    return None


def _read_key(jwk: object) -> tuple[str, KeyMaterial] | RejectedJwk:
    if not isinstance(jwk, dict):
        return RejectedJwk(None, "not a JSON object")
    kid = jwk.get("kid")
    shown = kid[:128] if isinstance(kid, str) else None
    if not is_valid_kid(kid):
        return RejectedJwk(
            shown, "every key needs a 'kid' of 1 to 128 characters from A-Z a-z 0-9 . _ : -"
        )
    problem = _key_problem(jwk)
    if problem is not None:
        return RejectedJwk(shown, problem)
    try:
        alg, key = load_public_jwk(jwk)
    except ChinwagError as exc:
        return RejectedJwk(shown, exc.message)
    return str(kid), KeyMaterial(alg=alg, key=key)


def parse_jwks(body: bytes) -> JwkSet:
    """The usable keys of a JWKS document (RFC 7517 §5), or ``invalid_request`` (422) when
    the document is not one or holds no usable key. A ``kid`` listed twice is ambiguous, so
    both copies are left out."""
    try:
        document = loads_object(body)
    except StrictJSONError as exc:
        raise _invalid(f"The JWKS is not a strict UTF-8 JSON object ({exc}).") from None
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise _invalid("The JWKS has no 'keys' array.")
    if len(entries) > MAX_KEYS:
        raise _invalid(f"The JWKS lists {len(entries)} keys; at most {MAX_KEYS} are read.")
    keys: dict[str, KeyMaterial] = {}
    rejected: list[RejectedJwk] = []
    duplicates: set[str] = set()
    for entry in entries:
        read = _read_key(entry)
        if isinstance(read, RejectedJwk):
            rejected.append(read)
        elif read[0] in keys or read[0] in duplicates:
            duplicates.add(read[0])
            keys.pop(read[0], None)
        else:
            keys[read[0]] = read[1]
    rejected.extend(RejectedJwk(kid, "the kid is listed more than once") for kid in duplicates)
    if not keys:
        reasons = "; ".join(f"{r.kid or '?'}: {r.reason}" for r in rejected[:5])
        why = f" ({reasons})." if reasons else "."
        raise _invalid("The JWKS has no usable signing key" + why)
    return JwkSet(keys=keys, rejected=tuple(rejected))
