"""The identity service's HTTP API (Starlette).

- ``POST /signup`` ``{"username", "password", "display_name"?}`` -> 201 ``{"user_id"}``
- ``POST /signin`` ``{"username", "password"}`` -> 200 ``{"access_token", "expires_at"}``;
  with ``"cookie": true`` (the sign-in page) -> 200 ``{"user_id", "display_name",
  "expires_at"}`` and the access token only in an HttpOnly cookie (``cookie.py``)
- ``POST /chat_token`` ``{"nonce", "app_id"?}`` with ``Authorization: Bearer <access_token>``
  or the cookie -> 200 ``{"identity_token", "expires_at"}``; CORS for
  ``IDENTITY_CHAT_ORIGINS`` (``cors.py``)
- ``POST /signout`` with the bearer token or the cookie -> 204; the token is dead, the
  cookie cleared
- ``GET /`` the sign-in page (``page.py``)

Errors are ``{"error": {"id", "message"}}`` with a 4xx status, as chinwag's own are
(``errors.py``). ``/chat_token`` is what a chat client's identity-token provider calls: it
asks chinwag for a nonce, then asks this service to vouch for the signed-in user with that
nonce. Two kinds of client call it: an app (SDK) with the bearer token, and chinwag's web
client in a browser with the cookie, which is why it takes both.
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
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .cookie import clear_cookie, read_cookie, require_json, set_cookie
from .cors import ChatOrigins, parse_origins
from .errors import ApiError, render_api_error, render_http_exception
from .limits import SlidingWindowLimiter
from .page import page_routes
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
    chat_origins: frozenset[str] = frozenset()
    """The origins of the chinwag servers whose web client may call ``/chat_token``."""


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


def _access_token(request: Request) -> str:
    """The bearer token, or else the cookie's (which must come with a JSON body: CSRF)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        return token
    cookie = read_cookie(request)
    if cookie is None:
        raise ApiError(
            401,
            "unauthenticated",
            "Send Authorization: Bearer <access_token>, or sign in on this service's page.",
        )
    require_json(request)
    return cookie


class Service:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.users = UserStore(config.database)
        self.per_user = SlidingWindowLimiter(config.sign_in_limit_per_user, config.sign_in_window)
        self.per_address = SlidingWindowLimiter(
            config.sign_in_limit_per_address, config.sign_in_window
        )
        self.origins = ChatOrigins(config.chat_origins)

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
        as_cookie = (await request.json()).get("cookie") is True
        if as_cookie:  # a login CSRF would sign the victim in as the attacker
            require_json(request)
        self._limit(body["username"], request.client.host if request.client else "unknown")
        user = await asyncio.to_thread(
            self.users.check_password, body["username"], body["password"]
        )
        if user is None:
            raise ApiError(401, "wrong_credentials", "Wrong username or password.")
        self.per_user.forget(body["username"])
        now = self.config.clock()
        token, expires_at = await asyncio.to_thread(self.users.open_sign_in, user.user_id, now)
        if not as_cookie:
            return JSONResponse({"access_token": token, "expires_at": expires_at})
        # The page's script gets who signed in, never the token: the cookie is HttpOnly.
        response = JSONResponse(
            {"user_id": user.user_id, "display_name": user.display_name, "expires_at": expires_at}
        )
        set_cookie(response, request, token, max_age=int(expires_at - now))
        return response

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
            self.users.signed_in_user, _access_token(request), self.config.clock()
        )
        if user is None:
            raise ApiError(401, "unauthenticated", "Sign in again: this access token is not valid.")
        return user

    async def chat_token(self, request: Request) -> Response:
        """``_chat_token`` with CORS headers on every answer, refusals too, so chinwag's page
        can show why it failed rather than a bare network error."""
        cors = self.origins.headers(request)
        try:
            response = await self._chat_token(request)
        except ApiError as exc:
            exc.headers.update(cors)
            raise
        response.headers.update(cors)
        return response

    async def chat_token_preflight(self, request: Request) -> Response:
        return Response(status_code=204, headers=self.origins.preflight(request))

    async def _chat_token(self, request: Request) -> Response:
        """Vouch for the signed-in user to chinwag, bound to the chat client's nonce.

        chinwag's web client also sends the ``app_id`` it signs in to; this service signs
        for one app, so another app's id is refused rather than answered with a token
        that app would reject anyway.
        """
        user = await self._signed_in(request)
        body = await _fields(request, "nonce")
        app_id = body.get("app_id", self.config.key.app_id)
        if app_id != self.config.key.app_id:
            raise ApiError(
                400,
                "wrong_app",
                f"This service signs in to app {self.config.key.app_id}, not {app_id}.",
            )
        nonce = body["nonce"]
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
        await asyncio.to_thread(self.users.close_sign_in, _access_token(request))
        response = Response(status_code=204)
        clear_cookie(response, request)
        return response


def create_service(config: Config) -> Starlette:
    service = Service(config)
    routes = [
        Route("/signup", service.sign_up, methods=["POST"]),
        Route("/signin", service.sign_in, methods=["POST"]),
        Route("/chat_token", service.chat_token, methods=["POST"]),
        Route("/chat_token", service.chat_token_preflight, methods=["OPTIONS"]),
        Route("/signout", service.sign_out, methods=["POST"]),
        *page_routes(),
    ]
    handlers = {ApiError: render_api_error, HTTPException: render_http_exception}
    return Starlette(routes=routes, exception_handlers=handlers)


@functools.cache  # uvicorn may look `app` up more than once
def _from_environment() -> Starlette:
    key = load_signing_key(Path(os.environ["IDENTITY_KEY_FILE"]), os.environ["IDENTITY_APP_ID"])
    database = Path(os.environ.get("IDENTITY_DATABASE", "identity.db")).resolve()
    origins = parse_origins(os.environ.get("IDENTITY_CHAT_ORIGINS", ""))
    print(f"identity service: users in {database}, signing with key {key.kid}")
    allowed = ", ".join(sorted(origins)) or "nowhere (IDENTITY_CHAT_ORIGINS is empty)"
    print(f"identity service: chinwag's web client allowed from {allowed}")
    return create_service(Config(key=key, database=database, chat_origins=origins))


def __getattr__(name: str) -> Any:
    # `uvicorn examples.identity_service.app:app` builds the service from the environment on
    # demand, so importing this module (tests) needs no configuration.
    if name == "app":
        return _from_environment()
    raise AttributeError(name)
