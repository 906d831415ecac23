"""Credentials: the challenge flow, the token provider, and the session kept on the device.

One :class:`Authenticator` per client owns the session token. Every way of getting one —
Layer's challenge (``authenticate`` → nonce → identity token), ASAPP's token provider,
Kustomer's ``log_in(jwt)``, an anonymous session — ends in :meth:`Authenticator.exchange`.

Why single-flight: when a session expires, every request in flight gets a 401 at once.
If each one asked the app for a token, the app's backend would be hammered and single-use
nonces burned (pain point 1 of other SDKs). Here the first 401 starts one *flight*
(``asyncio.Task``); the others await the same task and then retry with its session. A 401
for a token that was already replaced just retries. Provider failures back off with full
jitter; the provider can say stop (:class:`StopAuthentication` or :data:`STOP`), after which
the SDK asks no more and reports ``deauthenticated``.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import inspect
import logging
import random
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Final, TypeAlias

import orjson

from chinwag.client.connection import Api, error_from
from chinwag.client.errors import (
    AlreadyAuthenticated,
    AuthenticationStopped,
    NotAuthenticated,
    ServerError,
    UsageError,
)
from chinwag.client.models import AnonymousData, User
from chinwag.core.backoff import Backoff
from chinwag.core.client_states import AuthEvent, AuthState, next_auth_state

__all__ = [
    "STOP",
    "Authenticator",
    "ChallengeHandler",
    "SavedSession",
    "SessionVault",
    "StopAuthentication",
    "TokenProvider",
    "claimed_user",
]

log = logging.getLogger("chinwag.client")


class _Stop(Enum):
    STOP = "stop"


STOP: Final = _Stop.STOP
"""Return this from a token provider to make the SDK stop asking and sign the user out."""


class StopAuthentication(Exception):
    """Raise this from a token provider or challenge handler to stop authenticating."""


TokenProvider: TypeAlias = Callable[[str, bool], "Awaitable[str | _Stop] | str | _Stop"]
"""``provider(nonce, needs_refresh) -> identity token | STOP`` (ASAPP's context provider)."""
ChallengeHandler: TypeAlias = Callable[[str], "Awaitable[str | _Stop] | str | _Stop"]
"""``handler(nonce) -> identity token`` (Layer's challenge, answered inline)."""


@dataclass(frozen=True, slots=True)
class SavedSession:
    token: str
    session_id: str
    user: User
    expires_at: float

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> SavedSession:
        return cls(
            token=str(body["session_token"]),
            session_id=str(body["session_id"]),
            user=User.from_json(body["user"]),
            expires_at=float(body["expires_at"]),
        )


def claimed_user(token: str) -> str | None:
    """The user a JWT names (``sub``/``prn``/``external_id``/``email``), unverified.

    Only used to refuse a switch to another user *before* spending the token; the server
    verifies the signature.
    """
    try:
        payload = token.split(".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, orjson.JSONDecodeError):
        return None
    if not isinstance(claims, dict):
        return None
    for name in ("sub", "prn", "external_id", "externalId", "email"):
        if isinstance(claims.get(name), str):
            return str(claims[name])
    return None


class SessionVault:
    """Keeps the session on the device so a restarted app is signed in without a new token.

    The token goes to the OS keyring when asked for and ``keyring`` is installed (it is an
    optional dependency); everything else lives in ``session.sqlite3`` next to the stores.
    """

    def __init__(self, directory: Path, app_id: str, *, use_keyring: bool = False) -> None:
        self.path = directory / app_id / "session.sqlite3"
        self.app_id = app_id
        self._keyring: Any = None
        if use_keyring:
            try:
                keyring = importlib.import_module("keyring")
            except ImportError:
                log.warning("keyring is not installed; keeping the session token in the store")
            else:
                self._keyring = keyring

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path)
        conn.execute("CREATE TABLE IF NOT EXISTS session (k INTEGER PRIMARY KEY, body TEXT)")
        return conn

    def _load(self) -> SavedSession | None:
        if not self.path.exists():
            return None
        with self._connect() as conn:
            row = conn.execute("SELECT body FROM session WHERE k = 1").fetchone()
        conn.close()
        if row is None:
            return None
        body = orjson.loads(row[0])
        if self._keyring is not None:
            body["session_token"] = self._keyring.get_password(f"chinwag:{self.app_id}", "session")
            if not body["session_token"]:
                return None
        return SavedSession.from_json(body)

    def _save(self, session: SavedSession) -> None:
        token: str | None = session.token
        if self._keyring is not None:
            self._keyring.set_password(f"chinwag:{self.app_id}", "session", session.token)
            token = None
        body = {
            "session_token": token,
            "session_id": session.session_id,
            "user": session.user.to_json(),
            "expires_at": session.expires_at,
        }
        with self._connect() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO session (k, body) VALUES (1, ?)",
                (orjson.dumps(body).decode(),),
            )
        conn.close()

    def _clear(self) -> None:
        if self._keyring is not None:
            try:
                self._keyring.delete_password(f"chinwag:{self.app_id}", "session")
            except Exception:  # keyring backends raise their own types
                log.debug("no keyring entry to delete")
        self.path.unlink(missing_ok=True)

    async def load(self) -> SavedSession | None:
        return await asyncio.to_thread(self._load)

    async def save(self, session: SavedSession) -> None:
        await asyncio.to_thread(self._save, session)

    async def clear(self) -> None:
        await asyncio.to_thread(self._clear)


Emit: TypeAlias = Callable[..., None]
_AUTH_BACKOFF = Backoff(base=0.5, cap=30.0)


class Authenticator:
    """The auth state machine plus the one credential flight; see the module docstring."""

    def __init__(
        self,
        api: Api,
        vault: SessionVault,
        *,
        emit: Emit,
        token_provider: TokenProvider | None = None,
        challenge_handler: ChallengeHandler | None = None,
        backoff: Backoff = _AUTH_BACKOFF,
        max_attempts: int = 6,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.api = api
        self.vault = vault
        self.state = AuthState.UNAUTHENTICATED
        self.session: SavedSession | None = None
        self.user: User | None = None
        """The device's user; kept through a challenge, so a re-auth must be the same user."""
        self._emit = emit
        self._provider = token_provider
        self._handler = challenge_handler
        self._backoff = backoff
        self._max_attempts = max_attempts
        self._rand = rand
        self._flight: asyncio.Task[SavedSession] | None = None
        self._answer: asyncio.Future[tuple[str, asyncio.Future[SavedSession]]] | None = None
        self._upgrade: tuple[SavedSession, AnonymousData] | None = None
        self.on_session: Callable[[SavedSession, SavedSession | None], Awaitable[None]] | None = (
            None
        )
        """Called after every successful exchange with (new, previous) — the client hooks
        stores and sync here."""

    def move(self, event: AuthEvent) -> None:
        self.state = next_auth_state(self.state, event)

    @property
    def in_flight(self) -> bool:
        return self._flight is not None and not self._flight.done()

    async def restore(self) -> SavedSession | None:
        saved = await self.vault.load()
        if saved is not None and self.state is AuthState.UNAUTHENTICATED:
            self.move(AuthEvent.RESTORE)
            self.session, self.user = saved, saved.user
        return saved

    # -- what requests use ------------------------------------------------------------

    async def current(self) -> SavedSession:
        """The session to send; waits for a flight in progress; raises when signed out."""
        if self.session is not None and self.state in (
            AuthState.AUTHENTICATED,
            AuthState.DEAUTHENTICATING,
            AuthState.UPGRADING,
        ):
            return self.session
        if self._flight is not None and not self._flight.done():
            return await asyncio.shield(self._flight)
        raise NotAuthenticated("This request")

    async def unauthorized(self, stale: SavedSession, data: dict[str, Any]) -> None:
        """A request sent with ``stale`` got 401: re-authenticate once for everybody."""
        if self.session is not None and self.session is not stale:
            return  # already replaced by another flight; just retry
        if self._flight is None or self._flight.done():
            if self.state is AuthState.DEAUTHENTICATING:
                raise NotAuthenticated("Deauthentication")
            self.session = None
            self.move(AuthEvent.CHALLENGE)
            nonce = data.get("nonce")
            self._start(str(nonce) if nonce else None, needs_refresh=True)
        assert self._flight is not None
        await asyncio.shield(self._flight)

    # -- starting flights -------------------------------------------------------------

    async def request_nonce(self) -> str | None:
        """A fresh nonce, or None when an identified user is already authenticated."""
        if self.state is AuthState.AUTHENTICATED and self.user and not self.user.anonymous:
            return None
        return await self.fetch_nonce()

    async def fetch_nonce(self) -> str:
        response = await self.api.call("POST", "/v1/nonces", json={"app_id": self.api.app_id})
        if response.status_code != 201:
            raise error_from(response)
        return str(orjson.loads(response.content)["nonce"])

    async def authenticate(
        self, user_id: str | None, anonymous_data: AnonymousData
    ) -> SavedSession:
        """Layer's ``authenticate``: resume, join the flight in progress, or start one."""
        if self.state is AuthState.AUTHENTICATED and self.session is not None:
            current = self.session.user
            if not current.anonymous:
                if user_id is not None and user_id not in (current.user_id, current.email):
                    raise AlreadyAuthenticated(current.user_id, user_id)
                return self.session  # the same user again: resume
            self.move(AuthEvent.UPGRADE)
            self._upgrade = (self.session, anonymous_data)
            self._start(None, needs_refresh=False)
        elif self._flight is None or self._flight.done():
            if self.state is not AuthState.CHALLENGED:
                self.move(AuthEvent.CHALLENGE)
            self._start(None, needs_refresh=False)
        assert self._flight is not None
        return await asyncio.shield(self._flight)

    def _start(self, nonce: str | None, *, needs_refresh: bool) -> None:
        self._flight = asyncio.get_running_loop().create_task(self._fly(nonce, needs_refresh))
        self._flight.add_done_callback(_retrieve)

    async def answer(self, token: str) -> SavedSession:
        """Layer's ``answer_authentication_challenge``: feed the waiting flight, or exchange."""
        if self._answer is not None and not self._answer.done():
            outcome: asyncio.Future[SavedSession] = asyncio.get_running_loop().create_future()
            self._answer.set_result((token, outcome))
            return await outcome
        if self.state is AuthState.AUTHENTICATED:
            self._check_same_user(token)
            if self.user is not None and self.user.anonymous and self.session is not None:
                self.move(AuthEvent.UPGRADE)
                return await self.exchange(token, upgrade=(self.session, AnonymousData.KEEP))
            assert self.session is not None
            return self.session
        return await self.exchange(token)

    # -- the flight -------------------------------------------------------------------

    async def _fly(self, nonce: str | None, needs_refresh: bool) -> SavedSession:
        upgrade, self._upgrade = self._upgrade, None
        attempt = 0
        last: BaseException | None = None
        while True:
            outcome: asyncio.Future[SavedSession] | None = None
            try:
                if nonce is None:
                    nonce = await self.fetch_nonce()
                self._emit("challenge", nonce)
                token, outcome = await self._ask(nonce, needs_refresh)
                if token is STOP:
                    raise StopAuthentication
                assert isinstance(token, str)
                session = await self.exchange(token, upgrade=upgrade, from_flight=True)
            except StopAuthentication:
                self._stop(upgrade)
                raise AuthenticationStopped("The token provider asked to stop.") from None
            except UsageError as exc:
                self._fail(upgrade)
                if outcome is not None and not outcome.done():
                    outcome.set_exception(exc)
                raise
            except Exception as exc:  # provider trouble, offline, token refused: back off
                last = exc
                if outcome is not None and not outcome.done():
                    outcome.set_exception(exc)
                self._emit("error", exc)
                if self.state is AuthState.AUTHENTICATING:
                    self.move(AuthEvent.CHALLENGE)
                needs_refresh = needs_refresh or _expired(exc)
                nonce = None
                attempt += 1
                if attempt >= self._max_attempts:
                    self._fail(upgrade)
                    raise last from None
                await asyncio.sleep(self._backoff.delay(attempt - 1, self._rand()))
                continue
            if outcome is not None and not outcome.done():
                outcome.set_result(session)
            return session

    async def _ask(
        self, nonce: str, needs_refresh: bool
    ) -> tuple[str | _Stop, asyncio.Future[SavedSession] | None]:
        if self._provider is not None:
            return await _maybe_await(self._provider(nonce, needs_refresh)), None
        if self._handler is not None:
            return await _maybe_await(self._handler(nonce)), None
        self._answer = asyncio.get_running_loop().create_future()
        token, outcome = await self._answer
        return token, outcome

    def _stop(self, upgrade: tuple[SavedSession, AnonymousData] | None) -> None:
        if upgrade is not None:
            self.move(AuthEvent.FAIL)
            return
        if self.state in (AuthState.CHALLENGED, AuthState.AUTHENTICATING):
            self.move(AuthEvent.STOP)
        self.session = None
        self._emit("deauthenticated", "stopped")

    def _fail(self, upgrade: tuple[SavedSession, AnonymousData] | None) -> None:
        if self.state in (AuthState.CHALLENGED, AuthState.AUTHENTICATING, AuthState.UPGRADING):
            self.move(AuthEvent.FAIL)

    def _check_same_user(self, token: str) -> None:
        claimed = claimed_user(token)
        user = self.user
        known = user is not None and not user.anonymous and claimed is not None
        if known and user is not None and claimed not in (user.user_id, user.email):
            assert claimed is not None
            raise AlreadyAuthenticated(user.user_id, claimed)

    async def exchange(
        self,
        token: str,
        *,
        upgrade: tuple[SavedSession, AnonymousData] | None = None,
        from_flight: bool = False,
        anonymous: bool = False,
    ) -> SavedSession:
        """``POST /v1/sessions`` (or ``/anonymous``); on success the session is ours."""
        if not anonymous:
            self._check_same_user(token)
        if upgrade is None:
            self.move(AuthEvent.ANSWER)
        try:
            if anonymous:
                response = await self.api.call(
                    "POST", "/v1/sessions/anonymous", json={"app_id": self.api.app_id}
                )
            else:
                body: dict[str, Any] = {"app_id": self.api.app_id, "identity_token": token}
                bearer = None
                if upgrade is not None:
                    bearer = upgrade[0].token
                    body["anonymous_data"] = upgrade[1].value
                response = await self.api.call("POST", "/v1/sessions", json=body, token=bearer)
            if response.status_code != 201:
                raise error_from(response)
            session = SavedSession.from_json(orjson.loads(response.content))
            previous = self.user
            switched = previous is not None and session.user.user_id != previous.user_id
            if switched and previous is not None and not previous.anonymous:
                await self.api.call("DELETE", "/v1/sessions/current", token=session.token)
                raise AlreadyAuthenticated(previous.user_id, session.user.user_id)
        except BaseException:
            if not from_flight:
                self.move(AuthEvent.FAIL)
            raise
        old = self.session if upgrade is None else upgrade[0]
        self.session, self.user = session, session.user
        await self.vault.save(session)
        if self.on_session is not None:
            await self.on_session(session, old)
        self.move(AuthEvent.SUCCEED)
        self._emit("authenticated", session.user)
        return session

    async def forget(self) -> None:
        """Drop the session everywhere (after deauthentication or revocation)."""
        if self._flight is not None and not self._flight.done():
            self._flight.cancel()
        self.session, self.user = None, None
        await self.vault.clear()


def _expired(exc: BaseException) -> bool:
    return isinstance(exc, ServerError) and exc.data.get("reason") == "expired"


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _retrieve(task: asyncio.Task[SavedSession]) -> None:
    if not task.cancelled():
        task.exception()  # consumed here so an unawaited failure is not logged as lost
