"""Identity-token verification (the rules are documented in docs/identity-tokens.md).

Two steps, both pure:

1. :func:`parse_identity_token` reads a compact JWS under strict rules (size caps before any
   decoding, canonical unpadded base64url, strict UTF-8 JSON, an allow-list of header
   parameters) and yields the ``kid`` the caller must look up among *this app's* keys.
2. :func:`verify_identity_token` checks the pinned algorithm and signature, then the claims,
   against a clock reading passed in as ``now``.

Nonce consumption and ``jti`` replay are the store's job and come after both steps, so a
token that fails any check here never uses up its nonce.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import dataclass
from typing import Any

from chinwag.core.errors import InvalidIdentityToken, TokenRejection
from chinwag.core.ids import is_valid_kid, user_id_problem
from chinwag.core.keys import KeyMaterial
from chinwag.core.strict_json import StrictJSONError, loads_object

__all__ = [
    "DEFAULT_LEEWAY",
    "MAX_TOKEN_LENGTH",
    "IdentityClaims",
    "ParsedToken",
    "TokenKey",
    "TokenPolicy",
    "is_http_url",
    "parse_identity_token",
    "verify_identity_token",
]

MAX_TOKEN_LENGTH = 8192
MAX_HEADER_SEGMENT = 1024
MAX_SIGNATURE_SEGMENT = 1024
DEFAULT_LEEWAY = 60.0
MAX_NUMERIC_DATE = 253402300799  # 9999-12-31: anything later is a unit mistake (ms)
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")
_ALLOWED_HEADER = frozenset({"alg", "kid", "typ", "cty"})
_ACCEPTED_TYP = frozenset({"jwt", "chinwag-id+jwt", "application/chinwag-id+jwt"})
_ACCEPTED_CTY = frozenset({"chinwag-eit;v=1", "layer-eit;v=1"})
_USER_ID_CLAIMS = ("sub", "prn", "external_id", "externalId")
_PROFILE_LIMITS = {
    "display_name": 128,
    "first_name": 128,
    "last_name": 128,
    "avatar_url": 1024,
    "email": 254,
}


def is_http_url(value: str) -> bool:
    """Whether ``value`` may be a profile's ``avatar_url``: only http(s), so no client is
    handed a ``javascript:`` or ``data:`` URL to put in an ``<img src>`` or a link. The
    token's claim and the platform API's profile fields are held to this one rule."""
    return value.startswith(("https://", "http://"))


@dataclass(frozen=True, slots=True)
class ParsedToken:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes

    @property
    def kid(self) -> str:
        return str(self.header["kid"])

    @property
    def alg(self) -> str:
        return str(self.header["alg"])


@dataclass(frozen=True, slots=True)
class TokenKey:
    """A key of the app named in the request, as the store holds it."""

    kid: str
    material: KeyMaterial
    enabled: bool
    development: bool


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    app_id: str
    production: bool
    require_nonce: bool
    max_token_age: float
    leeway: float = DEFAULT_LEEWAY


@dataclass(frozen=True, slots=True)
class IdentityClaims:
    user_id: str | None
    email: str | None
    nonce: str | None
    jti: str | None
    issued_at: int
    expires_at: int | None
    display_name: str | None
    avatar_url: str | None
    first_name: str | None
    last_name: str | None


def _reject(
    reason: TokenRejection, message: str, *, detail: str | None = None, **data: Any
) -> InvalidIdentityToken:
    return InvalidIdentityToken(reason, message, detail=detail, data=data or None)


def _malformed(detail: str) -> InvalidIdentityToken:
    return _reject(
        TokenRejection.MALFORMED, f"The identity token is not a well-formed compact JWS: {detail}."
    )


def _b64decode(segment: str, what: str) -> bytes:
    if _SEGMENT.fullmatch(segment) is None or len(segment) % 4 == 1:
        raise _malformed(f"the {what} is not unpadded base64url")
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise _malformed(f"the {what} is not unpadded base64url") from None
    # One token, one spelling: reject non-canonical trailing bits.
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != segment:
        raise _malformed(f"the {what} is not canonical base64url")
    return raw


def parse_identity_token(token: object) -> ParsedToken:
    if not isinstance(token, str) or not token:
        raise _malformed("expected a non-empty string")
    if len(token) > MAX_TOKEN_LENGTH:
        raise _reject(
            TokenRejection.TOKEN_TOO_LARGE,
            f"The identity token is longer than {MAX_TOKEN_LENGTH} characters.",
        )
    parts = token.split(".")
    if len(parts) != 3:
        raise _malformed(f"expected 3 dot-separated parts, got {len(parts)}")
    header_b64, payload_b64, signature_b64 = parts
    if len(header_b64) > MAX_HEADER_SEGMENT or len(signature_b64) > MAX_SIGNATURE_SEGMENT:
        raise _reject(TokenRejection.TOKEN_TOO_LARGE, "The token header or signature is too long.")
    try:
        header = loads_object(_b64decode(header_b64, "header"))
    except StrictJSONError as exc:
        raise _malformed(f"the header is not a strict UTF-8 JSON object ({exc})") from None
    _check_header(header)
    try:
        claims = loads_object(_b64decode(payload_b64, "payload"))
    except StrictJSONError as exc:
        raise _malformed(f"the payload is not a strict UTF-8 JSON object ({exc})") from None
    signature = _b64decode(signature_b64, "signature")
    if not signature:
        raise _reject(
            TokenRejection.SIGNATURE_INVALID,
            "The identity token is not signed.",
            detail="empty signature",
        )
    return ParsedToken(
        header=header,
        claims=claims,
        signing_input=f"{header_b64}.{payload_b64}".encode(),
        signature=signature,
    )


def _printable(name: str, limit: int) -> str:
    """A header name safe to echo: ASCII only, so lone surrogates cannot break rendering."""
    return name[:limit].encode("ascii", "backslashreplace").decode("ascii")


def _check_header(header: dict[str, Any]) -> None:
    extra = sorted(set(header) - _ALLOWED_HEADER)
    if extra:
        raise _reject(
            TokenRejection.UNSUPPORTED_HEADER,
            "The token header has parameters chinwag does not accept (only alg, kid, typ, "
            f"cty are allowed): {', '.join(_printable(x, 20) for x in extra[:5])}.",
            parameters=[_printable(x, 40) for x in extra[:10]],
        )
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise _malformed("the header has no 'alg'")
    if alg.lower() == "none":
        raise _reject(
            TokenRejection.SIGNATURE_INVALID,
            "Unsigned tokens ('alg: none') are refused.",
            detail="alg none",
        )
    kid = header.get("kid")
    if kid is None:
        raise _reject(TokenRejection.MALFORMED, "The token header must name its key in 'kid'.")
    if not is_valid_kid(kid):
        raise _reject(
            TokenRejection.SIGNATURE_INVALID,
            "The identity token is not signed by an enabled key of this app.",
            detail="kid has an invalid shape",
        )
    typ = header.get("typ")
    if "typ" in header and (not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYP):
        raise _reject(
            TokenRejection.UNSUPPORTED_HEADER,
            "The token 'typ' must be absent, 'JWT' or 'chinwag-id+jwt'.",
        )
    cty = header.get("cty")
    if "cty" in header and (not isinstance(cty, str) or cty.lower() not in _ACCEPTED_CTY):
        raise _reject(
            TokenRejection.UNSUPPORTED_HEADER,
            "Nested tokens are refused: 'cty' must be absent or 'chinwag-eit;v=1'.",
        )


def verify_identity_token(
    parsed: ParsedToken, *, key: TokenKey | None, policy: TokenPolicy, now: float
) -> IdentityClaims:
    _check_signature(parsed, key, policy)
    return _check_claims(parsed.claims, policy, now)


def _check_signature(parsed: ParsedToken, key: TokenKey | None, policy: TokenPolicy) -> None:
    detail: str | None = None
    if key is None:
        detail = "unknown kid for this app"
    elif not key.enabled:
        detail = "key is disabled"
    elif key.development and policy.production:
        detail = "development key used for a production app"
    elif parsed.alg != key.material.alg.value:
        detail = f"alg {parsed.alg[:12]!r} differs from the key's pinned {key.material.alg}"
    elif not key.material.verify(parsed.signing_input, parsed.signature):
        detail = "signature does not verify"
    if detail is not None:
        raise _reject(
            TokenRejection.SIGNATURE_INVALID,
            "The identity token is not signed by an enabled key of this app.",
            detail=detail,
        )


def _numeric_date(claims: dict[str, Any], name: str, *, required: bool) -> int | None:
    value = claims.get(name)
    if value is None:
        if name in claims or required:
            raise _reject(
                TokenRejection.CLAIM_MISSING
                if name not in claims
                else TokenRejection.CLAIM_INVALID,
                f"The '{name}' claim is required (seconds since the epoch).",
                claim=name,
            )
        return None
    if type(value) is not int or not 0 <= value <= MAX_NUMERIC_DATE:
        raise _reject(
            TokenRejection.CLAIM_INVALID,
            f"The '{name}' claim must be an integer number of seconds since the epoch.",
            claim=name,
        )
    return value


def _optional_string(claims: dict[str, Any], name: str, limit: int) -> str | None:
    value = claims.get(name)
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or len(value) > limit
        or (user_id_problem(value) is not None and value != "")
    ):
        raise _reject(
            TokenRejection.CLAIM_INVALID,
            f"The '{name}' claim must be a string of at most {limit} characters "
            "without control characters.",
            claim=name,
        )
    return value or None


def _user_id(claims: dict[str, Any]) -> str | None:
    found = [(name, claims[name]) for name in _USER_ID_CLAIMS if claims.get(name) is not None]
    if not found:
        return None
    values = {value for _, value in found if isinstance(value, str)}
    name, value = found[0]
    problem = user_id_problem(value)
    if problem is not None:
        raise _reject(
            TokenRejection.CLAIM_INVALID, f"The '{name}' claim (user id) {problem}.", claim=name
        )
    if len(values) != 1 or len(found) != len([v for _, v in found if isinstance(v, str)]):
        raise _reject(
            TokenRejection.CLAIM_INVALID,
            "The token names different user ids in sub/prn/external_id.",
            claim=name,
        )
    return str(value)


def _check_claims(claims: dict[str, Any], policy: TokenPolicy, now: float) -> IdentityClaims:
    leeway = policy.leeway
    if not math.isfinite(now):
        raise ValueError("now must be finite")
    issued_at = _numeric_date(claims, "iat", required=True)
    assert issued_at is not None
    expires_at = _numeric_date(claims, "exp", required=False)
    not_before = _numeric_date(claims, "nbf", required=False)
    if issued_at > now + leeway:
        raise _reject(
            TokenRejection.ISSUED_IN_FUTURE,
            "The token's 'iat' is in the future; check the signing server's clock.",
            server_time=int(now),
        )
    # No leeway on exp: a session never outlives its token (it ends at exp), so a token
    # accepted after its exp would open a session that is already over.
    if expires_at is not None and now >= expires_at:
        raise _reject(
            TokenRejection.EXPIRED, "The identity token has expired.", server_time=int(now)
        )
    if not_before is not None and now + leeway < not_before:
        raise _reject(
            TokenRejection.NOT_YET_VALID,
            "The identity token is not valid yet ('nbf').",
            server_time=int(now),
        )

    if "iss" in claims and claims["iss"] != policy.app_id:
        raise _reject(
            TokenRejection.ISSUER_MISMATCH, "The token's 'iss' must equal the app id when present."
        )
    if "aud" in claims:
        aud = claims["aud"]
        audiences = [aud] if isinstance(aud, str) else aud
        if (
            not isinstance(audiences, list)
            or not all(isinstance(a, str) for a in audiences)
            or policy.app_id not in audiences
        ):
            raise _reject(
                TokenRejection.AUDIENCE_MISMATCH,
                "The token's 'aud' must contain the app id when present.",
            )

    nonce = claims.get("nce")
    if nonce is not None and not isinstance(nonce, str):
        raise _reject(
            TokenRejection.CLAIM_INVALID, "The 'nce' claim must be a string.", claim="nce"
        )
    if nonce is None and policy.require_nonce:
        raise _reject(
            TokenRejection.NONCE_REQUIRED,
            "This app requires the token to carry a chinwag nonce in 'nce'.",
        )
    jti = claims.get("jti")
    # jti is stored (used_jtis): the user-id rules keep NUL and lone surrogates out of SQL.
    if jti is not None and user_id_problem(jti) is not None:
        raise _reject(
            TokenRejection.CLAIM_INVALID,
            "The 'jti' claim must be a string of 1 to 256 characters without control characters.",
            claim="jti",
        )
    if nonce is None and now - issued_at > policy.max_token_age:
        raise _reject(
            TokenRejection.TOO_OLD,
            f"Without a nonce the token's 'iat' must be within "
            f"{int(policy.max_token_age)} seconds.",
            server_time=int(now),
        )

    user_id = _user_id(claims)
    email = _optional_string(claims, "email", _PROFILE_LIMITS["email"])
    if email is not None and ("@" not in email or any(c.isspace() for c in email)):
        raise _reject(
            TokenRejection.CLAIM_INVALID,
            "The 'email' claim is not an email address.",
            claim="email",
        )
    if user_id is None and email is None:
        raise _reject(
            TokenRejection.CLAIM_MISSING,
            "The token must name the user in 'sub' (or 'prn'/'external_id') or 'email'.",
            claim="sub",
        )
    display_name = _optional_string(claims, "display_name", _PROFILE_LIMITS["display_name"])
    if display_name is None:
        display_name = _optional_string(claims, "name", _PROFILE_LIMITS["display_name"])
    avatar_url = _optional_string(claims, "avatar_url", _PROFILE_LIMITS["avatar_url"])
    if avatar_url is not None and not is_http_url(avatar_url):
        raise _reject(
            TokenRejection.CLAIM_INVALID,
            "The 'avatar_url' claim must be an http(s) URL.",
            claim="avatar_url",
        )
    return IdentityClaims(
        user_id=user_id,
        email=email,
        nonce=nonce,
        jti=jti,
        issued_at=issued_at,
        expires_at=expires_at,
        display_name=display_name,
        avatar_url=avatar_url,
        first_name=_optional_string(claims, "first_name", _PROFILE_LIMITS["first_name"]),
        last_name=_optional_string(claims, "last_name", _PROFILE_LIMITS["last_name"]),
    )
