"""A complete app backend that signs chinwag identity tokens.

Your users already sign in to *your* app. To let them chat, your backend vouches for them:
the chat client fetches a nonce from chinwag, sends it here together with whatever proves
who the user is to you (a session cookie, a password, …), and this endpoint answers with an
identity token - a JWT naming the user and carrying that nonce, signed with your key. The
client hands the token to chinwag and gets a chat session back.

The credential check below is a toy (a dict of password hashes); replace it with your real
login. Everything else is production-shaped:

* the key is configured once, of any type chinwag accepts: ES256, RS256, PS256, EdDSA
  (a private key in PEM) or HS256 (the secret chinwag generated for you, used as printed);
* the token has ``sub`` (the user id), ``nce`` (the nonce), ``iat`` and a short ``exp``,
  ``iss`` (your app id) and the optional profile claims;
* a nonce is passed through untouched, never invented here.

Run it::

    CHINWAG_APP_ID=... CHINWAG_KID=key_... CHINWAG_ALG=ES256 \\
    CHINWAG_PRIVATE_KEY_FILE=private.pem uvicorn examples.identity_backend:app --port 9000

(for HS256 set ``CHINWAG_SECRET`` instead of ``CHINWAG_PRIVATE_KEY_FILE``). Only PyJWT and
Starlette are needed; nothing here imports chinwag.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

__all__ = ["SigningKey", "User", "create_backend", "sign_identity_token"]

TOKEN_LIFETIME = 300  # seconds; chinwag's nonce already limits a token to 10 minutes
ALGORITHMS = ("ES256", "RS256", "PS256", "EdDSA", "HS256")


@dataclass(frozen=True)
class SigningKey:
    """The key registered with chinwag for this app: its kid, algorithm and private half."""

    kid: str
    alg: str
    private_key_pem: str | None = None
    secret: str | None = None  # HS256: the text `chinwag keys add-secret` printed, as is

    def __post_init__(self) -> None:
        if self.alg not in ALGORITHMS:
            raise ValueError(f"alg must be one of {', '.join(ALGORITHMS)}")
        if (self.alg == "HS256") != (self.secret is not None):
            raise ValueError("HS256 needs `secret`; the other algorithms need a private key")
        if self.alg != "HS256" and not self.private_key_pem:
            raise ValueError(f"{self.alg} needs `private_key_pem`")

    def material(self) -> Any:
        if self.secret is not None:
            # Used exactly as printed, like any JWT library's HS256 secret: no decoding.
            return self.secret
        return self.private_key_pem


def sign_identity_token(
    key: SigningKey,
    *,
    app_id: str,
    user_id: str,
    nonce: str,
    now: int | None = None,
    profile: dict[str, str] | None = None,
) -> str:
    issued_at = int(time.time()) if now is None else now
    claims: dict[str, Any] = {
        "iss": app_id,
        "sub": user_id,
        "nce": nonce,
        "iat": issued_at,
        "exp": issued_at + TOKEN_LIFETIME,
        **(profile or {}),
    }
    return jwt.encode(
        claims, key.material(), algorithm=key.alg, headers={"kid": key.kid, "typ": "JWT"}
    )


# --- the toy user store: replace with your own login ------------------------------------


@dataclass(frozen=True)
class User:
    user_id: str
    password_sha256: str
    display_name: str | None = None
    email: str | None = None

    @classmethod
    def with_password(cls, user_id: str, password: str, **profile: str) -> User:
        digest = hashlib.sha256(password.encode()).hexdigest()
        return cls(user_id, digest, **profile)

    def password_matches(self, password: str) -> bool:
        presented = hashlib.sha256(password.encode()).hexdigest()
        return hmac.compare_digest(presented, self.password_sha256)


@dataclass
class Backend:
    key: SigningKey
    app_id: str
    users: dict[str, User] = field(default_factory=dict)

    def authenticate(self, username: object, password: object) -> User | None:
        if not isinstance(username, str) or not isinstance(password, str):
            return None
        user = self.users.get(username)
        if user is None or not user.password_matches(password):
            return None
        return user

    async def identity_token(self, request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "send a JSON body"}, status_code=400)
        if not isinstance(body, dict) or not isinstance(body.get("nonce"), str):
            return JSONResponse({"error": "nonce is required"}, status_code=400)
        user = self.authenticate(body.get("username"), body.get("password"))
        if user is None:
            return JSONResponse({"error": "wrong username or password"}, status_code=401)
        profile = {
            name: value
            for name, value in (("display_name", user.display_name), ("email", user.email))
            if value is not None
        }
        token = sign_identity_token(
            self.key,
            app_id=self.app_id,
            user_id=user.user_id,
            nonce=body["nonce"],
            profile=profile,
        )
        return JSONResponse({"identity_token": token})


def create_backend(key: SigningKey, app_id: str, users: list[User]) -> Starlette:
    backend = Backend(key=key, app_id=app_id, users={u.user_id: u for u in users})
    return Starlette(routes=[Route("/identity_token", backend.identity_token, methods=["POST"])])


def _from_environment() -> Starlette:
    key_file = os.environ.get("CHINWAG_PRIVATE_KEY_FILE")
    key = SigningKey(
        kid=os.environ["CHINWAG_KID"],
        alg=os.environ.get("CHINWAG_ALG", "ES256"),
        private_key_pem=open(key_file).read() if key_file else None,  # noqa: SIM115
        secret=os.environ.get("CHINWAG_SECRET"),
    )
    demo = [User.with_password("alice", "wonderland", display_name="Alice")]
    return create_backend(key, os.environ["CHINWAG_APP_ID"], demo)


def __getattr__(name: str) -> Any:
    # `uvicorn examples.identity_backend:app` builds the app from the environment on demand,
    # so importing this module (tests, the docs) needs no configuration.
    if name == "app":
        return _from_environment()
    raise AttributeError(name)
