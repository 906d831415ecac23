"""The identity service's HTTP API (Starlette).

- ``POST /signup`` ``{"username", "password", "display_name"?}`` -> 201 ``{"user_id"}``
- ``POST /signin`` ``{"username", "password"}`` -> 200 ``{"access_token", "expires_at"}``
- ``POST /chat_token`` ``{"nonce"}`` with ``Authorization: Bearer <access_token>``
  -> 200 ``{"identity_token", "expires_at"}``
- ``POST /signout`` with ``Authorization: Bearer <access_token>`` -> 204; the token is dead

Errors are ``{"error": {"id", "message"}}`` with a 4xx status, as chinwag's own are.
``/chat_token`` is what a chat client's identity-token provider calls: it asks chinwag for
a nonce, then asks this service to vouch for the signed-in user with that nonce.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .limits import SlidingWindowLimiter
from .tokens import CHAT_TOKEN_LIFETIME, SigningKey, load_signing_key
from .users import User, UsernameTaken, UserStore

__all__ = ["Config", "create_service"]

_USERNAME = re.compile(r"[a-z0-9_.-]{2,64}")
_MIN_PASSWORD = 10


@dataclass
class Config:
    key: SigningKey
    database: Path
    chat_token_lifetime: int = CHAT_TOKEN_LIFETIME
    sign_in_limit_per_user: int = 5
    sign_in_limit_per_address: int = 20
    sign_in_window: float = 60.0
    clock: Callable[[], float] = time.time


class ApiError(Exception):
    def __init__(self, status: int, error_id: str, message: str, **headers: str) -> None:
        super().__init__(message)
        self.status, self.error_id, self.message, self.headers = status, error_id, message, headers


def _error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    body = {"error": {"id": exc.error_id, "message": exc.message}}
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


async def _fields(request: Request, *names: str) -> dict[str, str]:
    """The JSON body's string fields ``names`` (all required)."""
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "invalid_request", "Send a JSON object.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "Send a JSON object.")
    missing = [n for n in names if not isinstance(body.get(n), str)]
    if missing:
        raise ApiError(400, "invalid_request", f"Expected string fields: {', '.join(missing)}.")
    return {n: body[n] for n in names} | {
        k: v for k, v in body.items() if k not in names and isinstance(v, str)
    }


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "unauthenticated", "Send Authorization: Bearer <access_token>.")
    return token


class Service:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.users = UserStore(config.database)
        self.per_user = SlidingWindowLimiter(config.sign_in_limit_per_user, config.sign_in_window)
        self.per_address = SlidingWindowLimiter(
            config.sign_in_limit_per_address, config.sign_in_window
        )

    async def sign_up(self, request: Request) -> Response:
        body = await _fields(request, "username", "password")
        if not _USERNAME.fullmatch(body["username"]):
            raise ApiError(400, "invalid_username", "2-64 of a-z, 0-9, '_', '.', '-'.")
        if len(body["password"]) < _MIN_PASSWORD:
            raise ApiError(400, "weak_password", f"At least {_MIN_PASSWORD} characters.")
        try:
            user = await asyncio.to_thread(
                self.users.sign_up,
                body["username"],
                body["password"],
                body.get("display_name"),
                self.config.clock(),
            )
        except UsernameTaken:
            raise ApiError(409, "username_taken", "That username is taken.") from None
        return JSONResponse({"user_id": user.user_id}, status_code=201)

    async def sign_in(self, request: Request) -> Response:
        body = await _fields(request, "username", "password")
        self._limit(body["username"], request.client.host if request.client else "unknown")
        user = await asyncio.to_thread(
            self.users.check_password, body["username"], body["password"]
        )
        if user is None:
            raise ApiError(401, "wrong_credentials", "Wrong username or password.")
        self.per_user.forget(body["username"])
        token, expires_at = await asyncio.to_thread(
            self.users.open_sign_in, user.user_id, self.config.clock()
        )
        return JSONResponse({"access_token": token, "expires_at": expires_at})

    def _limit(self, username: str, address: str) -> None:
        now = self.config.clock()
        wait = self.per_address.retry_after(address, now) or self.per_user.retry_after(
            username, now
        )
        if wait is not None:
            seconds = str(max(1, round(wait)))
            raise ApiError(
                429,
                "rate_limited",
                f"Too many sign-in attempts; retry in {seconds} s.",
                **{"retry-after": seconds},
            )

    async def _signed_in(self, request: Request) -> User:
        user = await asyncio.to_thread(
            self.users.signed_in_user, _bearer(request), self.config.clock()
        )
        if user is None:
            raise ApiError(401, "unauthenticated", "Sign in again: this access token is not valid.")
        return user

    async def chat_token(self, request: Request) -> Response:
        """Vouch for the signed-in user to chinwag, bound to the chat client's nonce."""
        user = await self._signed_in(request)
        nonce = (await _fields(request, "nonce"))["nonce"]
        now = int(self.config.clock())
        # Never past the sign-in itself: signing out here must end chat within exp.
        assert user.sign_in_expires_at is not None
        lifetime = min(self.config.chat_token_lifetime, int(user.sign_in_expires_at) - now)
        profile = {"display_name": user.display_name} if user.display_name else {}
        token = self.config.key.sign(
            user_id=user.user_id, nonce=nonce, now=now, lifetime=lifetime, profile=profile
        )
        return JSONResponse({"identity_token": token, "expires_at": now + lifetime})

    async def sign_out(self, request: Request) -> Response:
        await asyncio.to_thread(self.users.close_sign_in, _bearer(request))
        return Response(status_code=204)


def create_service(config: Config) -> Starlette:
    service = Service(config)
    routes = [
        Route("/signup", service.sign_up, methods=["POST"]),
        Route("/signin", service.sign_in, methods=["POST"]),
        Route("/chat_token", service.chat_token, methods=["POST"]),
        Route("/signout", service.sign_out, methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={ApiError: _error})


@functools.cache  # uvicorn may look `app` up more than once
def _from_environment() -> Starlette:
    key = load_signing_key(Path(os.environ["IDENTITY_KEY_FILE"]), os.environ["IDENTITY_APP_ID"])
    database = Path(os.environ.get("IDENTITY_DATABASE", "identity.db")).resolve()
    print(f"identity service: users in {database}, signing with key {key.kid}")
    return create_service(Config(key=key, database=database))


def __getattr__(name: str) -> Any:
    # `uvicorn examples.identity_service.app:app` builds the service from the environment on
    # demand, so importing this module (tests) needs no configuration.
    if name == "app":
        return _from_environment()
    raise AttributeError(name)
