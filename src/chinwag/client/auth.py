"""Credentials: the one flight that turns an identity token into a session.

One :class:`Authenticator` per client owns the session. Every way of getting one — Layer's
challenge (``authenticate`` → nonce → identity token), ASAPP's token provider, Kustomer's
``log_in(jwt)``, an anonymous session — ends in :meth:`Authenticator.exchange`. Its state
changes only through :func:`chinwag.core.client_states.auth_transition`, whose table also
says what each move does to local data and whether the provider is asked.

Why single-flight: when a session ends, every request in flight gets a 401 at once. If each
one asked the app for a token, the app's backend would be hammered and single-use nonces
burned (pain point 1 of other SDKs). Here the first ending starts one *flight*
(``asyncio.Task``); the others await the same task and then retry with its session. An
ending reported for a session that was already replaced (the old socket's close after a
refresh, a 401 for a stale token) is ignored.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any, Final, TypeAlias

import orjson

from chinwag.client.connection import Api, error_from
from chinwag.client.errors import (
    AlreadyAuthenticated,
    AuthenticationStopped,
    NotAuthenticated,
    ServerError,
    SessionRevoked,
    Suspended,
    UsageError,
)
from chinwag.client.models import AnonymousData, User
from chinwag.client.vault import SavedSession, SessionVault
from chinwag.core.backoff import Backoff
from chinwag.core.client_states import (
    AuthEvent,
    AuthState,
    Effects,
    LocalData,
    OutboxRule,
    auth_transition,
)

__all__ = [
    "STOP",
    "Authenticator",
    "ChallengeHandler",
    "StopAuthentication",
    "TokenProvider",
    "claimed_user",
    "ending_event",
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

Emit: TypeAlias = Callable[..., None]
_AUTH_BACKOFF = Backoff(base=0.5, cap=30.0)
_SIGNED_IN = (
    AuthState.AUTHENTICATED,
    AuthState.REFRESHING,
    AuthState.UPGRADING,
    AuthState.DEAUTHENTICATING,
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


def ending_event(reason: object, wipe: object = False) -> AuthEvent:
    """How the server said a session ended (401 data, close reason, ``session.revoked``)."""
    if wipe is True:
        return AuthEvent.WIPE
    return AuthEvent.EXPIRE if reason == "expired" else AuthEvent.REVOKE


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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api = api
        self.vault = vault
        self.state = AuthState.UNAUTHENTICATED
        self.session: SavedSession | None = None
        self.user: User | None = None
        """The device's user; kept while the session is renewed, so local data stays theirs."""
        self._emit = emit
        self._provider = token_provider
        self._handler = challenge_handler
        self._backoff = backoff
        self._max_attempts = max_attempts
        self._rand = rand
        self._clock = clock
        self._flight: asyncio.Task[SavedSession] | None = None
        self._answer: asyncio.Future[tuple[str, asyncio.Future[SavedSession]]] | None = None
        self._upgrade: tuple[SavedSession, AnonymousData] | None = None
        self._signing_out: set[asyncio.Task[None]] = set()
        self.on_session: Callable[[SavedSession, SavedSession | None], Awaitable[None]] | None = (
            None
        )
        """Called after every successful exchange with (new, previous): the client opens the
        new user's store here (wiping the previous user's first when they differ)."""
        self.on_wipe: Callable[[], Awaitable[None]] | None = None
        """Called when a move wipes local data: the client stops its tasks, deletes stores."""
        self.on_hold: Callable[[], Awaitable[None]] | None = None
        """Called when a suspension holds everything: the client stops its tasks."""
        self.suspension: Suspended | None = None
        """The refusal that suspended this device, raised again to every later request."""
        self.device_label: str | None = None
        """Sent at sign-in; the app's backend sees it in the user's session list."""

    # -- the table ------------------------------------------------------------------------

    async def fire(self, event: AuthEvent, *, nonce: str | None = None) -> Effects:
        """Make the move the table has for ``event`` and carry out its effects."""
        held = self.session
        self.state, effects = auth_transition(self.state, event)
        if effects.local_data is LocalData.WIPE:
            self._cancel_other_flight()
            # In a task of its own: the caller may be one the wipe stops (an outbox send
            # that got a 401 saying wipe), and a task awaiting its own cancellation recurses
            # without end. Shielded, so the sign-out finishes even if the caller is cancelled.
            signing_out = asyncio.get_running_loop().create_task(
                self._sign_out(event, held, effects)
            )
            self._signing_out.add(signing_out)
            signing_out.add_done_callback(self._signing_out.discard)
            await asyncio.shield(signing_out)
            return effects
        if effects.outbox is OutboxRule.HELD:  # a task of its own, as for a wipe (above)
            holding = asyncio.get_running_loop().create_task(self._hold(effects))
            self._signing_out.add(holding)
            holding.add_done_callback(self._signing_out.discard)
            await asyncio.shield(holding)
            return effects
        if effects.ask_provider:
            self._ensure_flight(nonce, needs_refresh=effects.needs_refresh)
        if effects.deauthenticated is not None:
            self._emit("deauthenticated", effects.deauthenticated)
        return effects

    def _cancel_other_flight(self) -> None:
        flight, current = self._flight, asyncio.current_task()
        if flight is not None and flight is not current and not flight.done():
            flight.cancel()

    async def _sign_out(
        self, event: AuthEvent, held: SavedSession | None, effects: Effects
    ) -> None:
        self.session, self.user = None, None
        if self.on_wipe is not None:
            await self.on_wipe()
        await self.vault.clear()
        if event is AuthEvent.STOP and held is not None:
            # STOP while the session still works (asked at a proactive refresh): end it
            # on the server too, or it stays live there, held by nobody, until it expires.
            await self._end_quietly(held)
        if effects.deauthenticated is not None:
            self._emit("deauthenticated", effects.deauthenticated)

    async def _hold(self, effects: Effects) -> None:
        """Suspended: the session is dead, but the user and their data stay this device's."""
        self.session = None
        if self.on_hold is not None:
            await self.on_hold()
        self._emit("deauthenticated", effects.deauthenticated)

    def suspended_error(self) -> Suspended:
        """What a request meets while the device is held by a suspension."""
        if self.suspension is not None:
            return self.suspension.copy()
        return Suspended(403, "user_suspended", "This user is suspended.", {})

    @property
    def in_flight(self) -> bool:
        return self._flight is not None and not self._flight.done()

    async def restore(self) -> SavedSession | None:
        saved = await self.vault.load()
        if saved is not None and self.state is AuthState.UNAUTHENTICATED:
            await self.fire(AuthEvent.RESTORE)
            self.session, self.user = saved, saved.user
        return saved

    # -- what requests use ----------------------------------------------------------------

    async def current(self) -> SavedSession:
        """The session to send; waits for a flight in progress; raises when signed out."""
        if self.session is not None and self.state in _SIGNED_IN:
            return self.session
        if self.state is AuthState.SUSPENDED:
            raise self.suspended_error()
        if self.state is AuthState.REAUTHENTICATING and not self.in_flight:
            self._ensure_flight(None, needs_refresh=True)  # asked again at the next need
        if self._flight is not None and not self._flight.done():
            return await asyncio.shield(self._flight)
        raise NotAuthenticated("This request")

    async def unauthorized(self, stale: SavedSession, data: dict[str, Any]) -> None:
        """A request sent with ``stale`` got 401: renew once for everybody, then retry."""
        await self.ended(stale, ending_event(data.get("reason"), data.get("wipe")), data)

    async def ended(
        self, stale: SavedSession, event: AuthEvent, data: dict[str, Any] | None = None
    ) -> None:
        """The server says ``stale`` ended (401, socket close, ``session.revoked``).

        Returns once a replacement session is in place; raises when the device is signed
        out instead. An ending of a session this device no longer holds changes nothing.
        """
        if self.session is not None and self.session.session_id == stale.session_id:
            self.session = None  # dead on the server: never sent again
            nonce = (data or {}).get("nonce")
            await self.fire(event, nonce=str(nonce) if nonce else None)
        if self.state is AuthState.UNAUTHENTICATED:
            raise SessionRevoked("The server ended this session; local data was wiped.")
        if self.in_flight:
            assert self._flight is not None
            await asyncio.shield(self._flight)

    async def suspended(self, stale: SavedSession, error: Suspended) -> None:
        """A request sent with ``stale`` was refused 403 ``user_suspended``/``app_suspended``:
        hold everything (when ``stale`` is still this device's session). Signing in again
        would only be refused again, and no message is to blame."""
        if self.session is not None and self.session.session_id == stale.session_id:
            self.suspension = error
            await self.fire(AuthEvent.SUSPEND)

    # -- starting flights -----------------------------------------------------------------

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
            self._upgrade = (self.session, anonymous_data)
            await self.fire(AuthEvent.UPGRADE)
            self._ensure_flight(None, needs_refresh=False)
        elif not self.in_flight:
            if self.state in (AuthState.UNAUTHENTICATED, AuthState.CHALLENGED, AuthState.SUSPENDED):
                await self.fire(AuthEvent.CHALLENGE)
            else:
                self._ensure_flight(None, needs_refresh=True)
        assert self._flight is not None
        return await asyncio.shield(self._flight)

    async def refresh(self) -> SavedSession | None:
        """Fetch the next session before this one expires (the old one serves meanwhile)."""
        user = self.user
        if self.state is not AuthState.AUTHENTICATED or user is None or user.anonymous:
            return None
        await self.fire(AuthEvent.REFRESH)
        assert self._flight is not None
        return await asyncio.shield(self._flight)

    def _ensure_flight(self, nonce: str | None, *, needs_refresh: bool) -> None:
        if self.in_flight:
            return
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
                await self.fire(AuthEvent.UPGRADE)
                return await self.exchange(token, upgrade=(self.session, AnonymousData.KEEP))
            assert self.session is not None
            return self.session
        return await self.exchange(token)

    # -- the flight -----------------------------------------------------------------------

    async def _fly(self, nonce: str | None, needs_refresh: bool) -> SavedSession:
        upgrade, self._upgrade = self._upgrade, None
        attempt = 0
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
                await self.fire(AuthEvent.STOP)
                raise AuthenticationStopped("The token provider asked to stop.") from None
            except Suspended as exc:  # asking again would be refused again: hold
                _settle(outcome, exc)
                self.suspension = exc
                await self.fire(AuthEvent.SUSPEND)
                raise
            except UsageError as exc:
                _settle(outcome, exc)
                await self.fire(AuthEvent.GIVE_UP)
                raise
            except Exception as exc:  # provider trouble, offline, token refused: back off
                _settle(outcome, exc)
                self._emit("error", exc)
                await self.fire(AuthEvent.FAIL)
                needs_refresh = needs_refresh or _expired(exc)
                nonce = None
                attempt += 1
                if attempt >= self._max_attempts:
                    await self.fire(AuthEvent.GIVE_UP)
                    raise
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
        if not anonymous and self.state is AuthState.AUTHENTICATED:
            self._check_same_user(token)  # one user per client while signed in
        if upgrade is None:
            await self.fire(AuthEvent.ANSWER)
        try:
            session = await self._open_session(token, upgrade, anonymous)
        except BaseException as exc:
            if not from_flight and isinstance(exc, Suspended):
                self.suspension = exc
                await self.fire(AuthEvent.SUSPEND)
            elif not from_flight:
                await self.fire(AuthEvent.GIVE_UP)
            raise
        previous_user, replaced = self.user, self.session if upgrade is None else upgrade[0]
        switched = previous_user is not None and previous_user.user_id != session.user.user_id
        self.session, self.user = session, session.user
        await self.vault.save(session)
        if self.on_session is not None:
            await self.on_session(session, replaced)
        refreshing = self.state is AuthState.REFRESHING
        await self.fire(AuthEvent.SWITCH if switched else AuthEvent.SUCCEED)
        self._emit("authenticated", session.user)
        if refreshing and replaced is not None:
            await self._end_quietly(replaced)
        return session

    async def _open_session(
        self, token: str, upgrade: tuple[SavedSession, AnonymousData] | None, anonymous: bool
    ) -> SavedSession:
        before = self._clock()
        device = {"device_label": self.device_label} if self.device_label else {}
        if anonymous:
            response = await self.api.call(
                "POST", "/v1/sessions/anonymous", json={"app_id": self.api.app_id, **device}
            )
        else:
            body: dict[str, Any] = {
                "app_id": self.api.app_id,
                "identity_token": token,
                **device,
            }
            bearer = None
            if upgrade is not None:
                bearer = upgrade[0].token
                body["anonymous_data"] = upgrade[1].value
            response = await self.api.call("POST", "/v1/sessions", json=body, token=bearer)
        if response.status_code != 201:
            raise error_from(response)
        after = self._clock()
        body = orjson.loads(response.content)
        server_now = float(body.get("server_time") or (before + after) / 2)
        body["issued_at"] = body.get("issued_at") or server_now
        body["clock_offset"] = server_now - (before + after) / 2
        return SavedSession.from_json(body)

    async def _end_quietly(self, old: SavedSession) -> None:
        """A refreshed-away session is ended on the server, so no live session is orphaned."""
        try:
            await self.api.call("DELETE", "/v1/sessions/current", token=old.token)
        except Exception as exc:  # it expires on its own anyway
            log.info("could not end the previous session: %s", exc)


def _settle(outcome: asyncio.Future[SavedSession] | None, exc: BaseException) -> None:
    if outcome is not None and not outcome.done():
        outcome.set_exception(exc)


def _expired(exc: BaseException) -> bool:
    return isinstance(exc, ServerError) and exc.data.get("reason") == "expired"


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _retrieve(task: asyncio.Task[SavedSession]) -> None:
    if not task.cancelled():
        task.exception()  # consumed here so an unawaited failure is not logged as lost
