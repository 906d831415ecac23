"""The one object apps touch: :class:`Client`.

It wires the parts together — :mod:`~chinwag.client.auth` (who we are),
:mod:`~chinwag.client.store` (what we know), :mod:`~chinwag.client.sync` (staying current),
:mod:`~chinwag.client.outbox` (what we said) — and keeps the rules that span them:

* one user per client: another user needs :meth:`Client.deauthenticate` to finish first;
* local data belongs to its user: it is kept while the app's backend is asked to renew an
  expired or revoked session, and deleted when the user signs out, the provider says stop,
  the server revokes with ``wipe``, or the renewal signs in a different user (the table in
  :mod:`chinwag.core.client_states` decides each case);
* :meth:`Client.deauthenticate` needs the server, so queued messages are delivered first;
  offline it refuses and deletes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from chinwag.client.apply import ApplyResult
from chinwag.client.auth import (
    Authenticator,
    ChallengeHandler,
    TokenProvider,
    claimed_user,
)
from chinwag.client.connection import Api, error_from
from chinwag.client.emitter import ClientEvent, Emitter, Handler
from chinwag.client.errors import (
    AlreadyAuthenticated,
    AuthenticationStopped,
    NotAuthenticated,
    ServerError,
    SessionRevoked,
    Suspended,
    UsageError,
)
from chinwag.client.gate import Gate
from chinwag.client.models import (
    Announcement,
    AnonymousData,
    Conversation,
    Message,
    Typing,
    User,
)
from chinwag.client.outbox import MAX_RETRY_AFTER, Outbox
from chinwag.client.refresh import refresh_forever
from chinwag.client.store import Store, remove_store_files, store_path
from chinwag.client.sync import LiveSync, SyncProgress, historic_sync
from chinwag.client.vault import SavedSession, SessionVault
from chinwag.core.backoff import Backoff
from chinwag.core.client_states import (
    AuthEvent,
    AuthState,
    ConnectionEvent,
    ConnectionState,
    next_connection_state,
)
from chinwag.core.sync_cursor import SyncPolicy
from chinwag.core.typing import TypingState

__all__ = ["Client", "ClientEvent"]

log = logging.getLogger("chinwag.client")


class Client:
    """A chinwag client for one app on one device. Use ``async with`` or ``connect``/``close``."""

    def __init__(
        self,
        base_url: str,
        app_id: str,
        *,
        store_dir: str | os.PathLike[str],
        identity_token_provider: TokenProvider | None = None,
        on_challenge: ChallengeHandler | None = None,
        sync_policy: SyncPolicy | None = None,
        anonymous_data: AnonymousData = AnonymousData.KEEP,
        use_keyring: bool = False,
        use_websocket: bool = True,
        poll_interval: float = 5.0,
        backoff: Backoff | None = None,
        rand: Callable[[], float] = random.random,
        device_label: str | None = None,
    ) -> None:
        self.app_id = app_id
        self.store_dir = Path(store_dir)
        self.sync_policy = sync_policy or SyncPolicy.all()
        self.anonymous_data = anonymous_data
        self._backoff = backoff or Backoff(base=0.5, cap=60.0)
        self._rand = rand
        self._use_websocket = use_websocket
        self._poll_interval = poll_interval
        self._events = Emitter()
        self._emit = self._events.emit
        self.connection_state = ConnectionState.DISCONNECTED
        self._api = Api(base_url, app_id, on_reachable=self._reachable)
        self._auth = Authenticator(
            self._api,
            SessionVault(self.store_dir, app_id, use_keyring=use_keyring),
            emit=self._emit,
            token_provider=identity_token_provider,
            challenge_handler=on_challenge,
            backoff=Backoff(base=self._backoff.base, cap=min(self._backoff.cap, 30.0)),
            rand=rand,
        )
        self._auth.on_session = self._on_session
        self._auth.on_wipe = self._wipe
        self._auth.on_hold = self._stop_background
        self._auth.device_label = device_label
        self._store: Store | None = None
        self._store_user: str | None = None
        self._upgrade_data: AnonymousData | None = None
        self._live: LiveSync | None = None
        self._outbox: Outbox | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._push_token: tuple[str, str] | None = None
        self._push_renewal: asyncio.Task[None] | None = None
        self._session_changed = asyncio.Event()
        self._synced = Gate()
        self._events.on(ClientEvent.DEAUTHENTICATED, self._sync_will_not_come)

    # -- events -----------------------------------------------------------------------

    def on(self, event: ClientEvent | str, handler: Handler) -> Callable[[], None]:
        """Call ``handler`` (plain or async) on ``event``; returns a function to unsubscribe."""
        return self._events.on(event, handler)

    def _reachable(self, ok: bool) -> None:
        """Any answer from the server is a good moment for the outbox to try again."""
        if ok and self._outbox is not None:
            self._outbox.wake()

    def _connection(self, event: ConnectionEvent) -> None:
        """The live connection's table moves; ``connected``/``disconnected`` follow it."""
        before = self.connection_state
        if event is ConnectionEvent.CONNECT and before is ConnectionState.WAITING:
            event = ConnectionEvent.RETRY
        after = next_connection_state(before, event)
        self.connection_state = after
        if after is ConnectionState.CONNECTED and before is not after:
            self._emit(ClientEvent.CONNECTED)
            if self._outbox is not None:
                self._outbox.wake()
        elif before is ConnectionState.CONNECTED and after is not before:
            self._emit(ClientEvent.DISCONNECTED)

    # -- lifecycle --------------------------------------------------------------------

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Reach the server (offline is fine) and resume a session kept on the device."""
        saved = await self._auth.restore()
        try:
            await self._api.call("GET", "/healthz")
        except UsageError:
            raise
        except Exception as exc:
            log.info("connect: server not reachable yet (%s); working offline", exc)
        if saved is not None:
            await self._open_store(saved.user.user_id)
            self._start_background()
            self._emit(ClientEvent.AUTHENTICATED, saved.user)

    async def close(self) -> None:
        """Stop background work and close files; the session stays on the device."""
        await self._stop_background()
        if self._store is not None:
            await self._store.close()
            self._store, self._store_user = None, None
        self._events.cancel_pending()
        await self._api.aclose()

    # -- who we are -------------------------------------------------------------------

    @property
    def user(self) -> User | None:
        return self._auth.user

    @property
    def auth_state(self) -> AuthState:
        return self._auth.state

    @property
    def is_authenticated(self) -> bool:
        return self._auth.state is AuthState.AUTHENTICATED

    async def request_nonce(self) -> str | None:
        """A nonce for an identity token, or None if an identified user is signed in."""
        return await self._auth.request_nonce()

    async def authenticate(
        self, user_id: str | None = None, *, anonymous_data: AnonymousData | None = None
    ) -> User:
        """Sign in with the challenge flow and return the user once authenticated.

        Raises the ``challenge`` (to ``on_challenge``, the token provider, or the
        ``challenge`` event, answered by :meth:`answer_authentication_challenge`). When
        ``user_id`` is already signed in this resumes; another user raises
        :class:`AlreadyAuthenticated`. An anonymous user is upgraded.
        """
        upgrading = self._is_anonymous()
        if upgrading:
            await self._prepare_upgrade(anonymous_data)
        try:
            session = await self._auth.authenticate(user_id, anonymous_data or self.anonymous_data)
        finally:
            self._start_background()
        return session.user

    async def answer_authentication_challenge(self, identity_token: str) -> User:
        """Answer the latest challenge with a token from the app's backend."""
        session = await self._auth.answer(identity_token)
        self._start_background()
        return session.user

    async def log_in(self, jwt: str, *, anonymous_data: AnonymousData | None = None) -> User:
        """Kustomer-style: exchange a JWT from the app's backend (no nonce) for a session.

        Upgrades an anonymous user, keeping or discarding their conversations
        (``anonymous_data``, default from the constructor).
        """
        auth = self._auth
        if auth.state is AuthState.CHALLENGED and auth.in_flight:
            return await self.answer_authentication_challenge(jwt)
        if auth.state is AuthState.AUTHENTICATED and auth.session is not None:
            current = auth.session.user
            if not current.anonymous:
                claimed = claimed_user(jwt)
                if claimed is not None and claimed not in (current.user_id, current.email):
                    raise AlreadyAuthenticated(current.user_id, claimed)
                return current
            data = await self._prepare_upgrade(anonymous_data)
            await auth.fire(AuthEvent.UPGRADE)
            try:
                session = await auth.exchange(jwt, upgrade=(auth.session, data))
            finally:
                self._start_background()
            return session.user
        session = await auth.exchange(jwt)
        self._start_background()
        return session.user

    async def log_out(self) -> None:
        """Kustomer's name for :meth:`deauthenticate`."""
        await self.deauthenticate()

    def is_logged_in(self, email: str | None = None, user_id: str | None = None) -> bool:
        """Signed in as an identified user — that one, if ``email`` or ``user_id`` is given
        (``email`` wins when both are, as Kustomer's backend does).

        True while an ended session is being renewed (the user's data is still here); false
        once the device is signed out (log-out, provider said stop, wiped)."""
        user = self._auth.user
        if user is None or user.anonymous or self._auth.state in _SIGNED_OUT:
            return False
        if email is not None:
            return user.email == email
        if user_id is not None:
            return user.user_id == user_id
        return True

    async def start_anonymous(self) -> User:
        """Sign in as a new anonymous user (the app must allow anonymous users)."""
        current = self._auth.user
        if self._auth.state is AuthState.AUTHENTICATED and current is not None:
            if current.anonymous:
                return current
            raise AlreadyAuthenticated(current.user_id, "a new anonymous user")
        session = await self._auth.exchange("", anonymous=True)
        self._start_background()
        return session.user

    async def deauthenticate(self) -> None:
        """Deliver queued messages, end the session on the server, delete local data.

        Needs the server: offline it raises :class:`OfflineError` and deletes nothing.
        """
        auth = self._auth
        renewing = auth.state is AuthState.REAUTHENTICATING
        held = auth.state is AuthState.SUSPENDED  # its session is over: nothing to end
        signed_in = auth.state in (AuthState.AUTHENTICATED, AuthState.REFRESHING)
        if not (renewing or held or signed_in):
            raise NotAuthenticated("deauthenticate()")
        await self._api.call("GET", "/healthz")  # OfflineError: nothing touched
        if renewing and self._store is not None and await self._store.outbox():
            raise UsageError(
                "The session ended and messages are still queued; answer the challenge "
                "so they can be delivered, then deauthenticate()."
            )
        await auth.fire(AuthEvent.DEAUTHENTICATE)
        self._push_token = None
        if signed_in:
            try:
                await self._end_session_on_server()
            except BaseException:
                await auth.fire(AuthEvent.FAIL)
                raise
        await auth.fire(AuthEvent.FINISH)  # wipes, then reports ``deauthenticated``

    async def _end_session_on_server(self) -> None:
        if self._outbox is not None:
            await self._outbox.flush()
        session = self._auth.session
        assert session is not None
        response = await self._api.call("DELETE", "/v1/sessions/current", token=session.token)
        if response.status_code not in (204, 401):
            raise error_from(response)

    async def me(self) -> User:
        """The signed-in user as the server sees it now (``GET /v1/me``)."""
        return User.from_json((await self._request("GET", "/v1/me"))["user"])

    # -- data -------------------------------------------------------------------------

    async def conversations(self) -> list[Conversation]:
        """From the local store: most recent message first, with unread counts."""
        return await self._need_store().conversations()

    async def conversation(self, conversation_id: str) -> Conversation | None:
        return await self._need_store().conversation(conversation_id)

    async def announcements(self) -> list[Announcement]:
        """From the local store: the app's announcements to this user, newest first."""
        return await self._need_store().announcements()

    async def messages(
        self,
        conversation_id: str,
        *,
        after: int | None = None,
        before: int | None = None,
        limit: int | None = None,
    ) -> list[Message]:
        """From the local store, by position; messages still in the outbox come last."""
        return await self._need_store().messages(
            conversation_id, after=after, before=before, limit=limit
        )

    async def create_conversation(
        self,
        participants: list[str],
        *,
        distinct: bool = False,
        metadata: dict[str, Any] | None = None,
        conversation_id: str | None = None,
    ) -> Conversation:
        """Create (or, when distinct, find) a conversation on the server; needs the server."""
        body: dict[str, Any] = {"participants": participants, "distinct": distinct}
        if metadata is not None:
            body["metadata"] = metadata
        if conversation_id is not None:
            body["id"] = conversation_id
        created = await self._request("POST", "/v1/conversations", json=body)
        store = self._need_store()
        await store.upsert_conversations([created])
        found = await store.conversation(created["id"])
        assert found is not None
        return found

    async def send_message(
        self,
        conversation_id: str,
        text: str | None = None,
        *,
        parts: list[dict[str, str]] | None = None,
        message_id: str | None = None,
    ) -> Message:
        """Queue a message: stored at once (offline too), delivered in order, exactly once."""
        if parts is None:
            if text is None:
                raise UsageError("send_message() needs text or parts")
            parts = [{"mime_type": "text/plain", "body": text}]
        user = self._auth.user
        if user is None:
            raise NotAuthenticated("send_message()")
        message = await self._need_store().enqueue(
            message_id or str(uuid.uuid4()), conversation_id, user.user_id, parts
        )
        if self._outbox is not None:
            self._outbox.wake()
        return message

    async def mark_read(self, conversation_id: str, position: int) -> None:
        await self._request(
            "POST",
            f"/v1/conversations/{conversation_id}/receipts",
            json={"type": "read", "position": position},
        )
        if self._live is not None:
            await self._live.catch_up()

    async def register_push_token(self, kind: str, token: str) -> None:
        """Let the app's push gateway wake this device (``kind``: e.g. ``apns``, ``fcm``)
        while it has no live connection. The server binds it to the session; the SDK
        registers it again for each new session of the same user (a renewal), and forgets
        it when the user changes or signs out."""
        await self._request("POST", "/v1/push_tokens", json={"kind": kind, "token": token})
        self._push_token = (kind, token)

    async def _renew_push_token(self, kind: str, token: str) -> None:
        try:
            await self._request("POST", "/v1/push_tokens", json={"kind": kind, "token": token})
        except Exception as exc:  # the app can register again; nothing else depends on it
            log.warning("could not register the push token for the new session: %s", exc)

    async def set_typing(
        self, conversation_id: str, state: TypingState | str = TypingState.STARTED
    ) -> bool:
        """Tell the other participants this user is typing (``started``), stopped for a
        moment (``paused``) or is done (``finished``). Repeat ``started`` every second or
        two while the user types; the server pauses a silent typist after 2.5 s. Typing is
        ephemeral: with no live socket nothing is sent and this returns False."""
        if self._live is None:
            return False
        return await self._live.send_typing(conversation_id, TypingState(state))

    async def flush_outbox(self) -> None:
        """Wait until every queued message is acknowledged: through a rate limit (429, for
        as long as the server asks), but not through being offline (it raises)."""
        if self._outbox is not None:
            await self._outbox.flush()

    async def pending_count(self) -> int:
        return len(await self._need_store().outbox())

    async def sync_now(self) -> None:
        """Catch up from the event stream over REST (e.g. before a test asserts)."""
        if self._live is None:
            raise NotAuthenticated("sync_now()")
        await self._live.catch_up()

    async def wait_until_synced(self) -> None:
        """Wait until this run has read everything the server held when it connected:
        the first download on a new device, then the stream up to the server's head.
        Offline it waits for the server (wrap it in ``asyncio.timeout``). If the session
        ends instead, it raises why: :class:`SessionRevoked` (wiped),
        :class:`AuthenticationStopped` (the provider said stop), :class:`NotAuthenticated`
        (signed out); after a new sign-in it waits for that one's sync."""
        await self._synced.wait()

    # -- plumbing ---------------------------------------------------------------------

    def _is_anonymous(self) -> bool:
        user = self._auth.user
        return self._auth.state is AuthState.AUTHENTICATED and user is not None and user.anonymous

    def _need_store(self) -> Store:
        if self._store is None:
            raise NotAuthenticated("The local store")
        return self._store

    async def _request(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        """An authenticated call; a 401 re-authenticates once for everyone, then retries."""
        while True:
            session = await self._auth.current()
            response = await self._api.call(
                method, path, token=session.token, json=json, params=params
            )
            if response.status_code == 401:
                await self._auth.unauthorized(session, error_from(response).data)
                continue
            if response.status_code >= 400:
                error = error_from(response)
                if isinstance(error, Suspended):
                    await self._auth.suspended(session, error)
                    continue  # held now: current() raises it (or a renewal's answer)
                raise error
            if not response.content:
                return None
            return orjson.loads(response.content)

    async def _sync_request(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        """:meth:`_request` for sync's reads: a 429 waits the server's ``retry_after``
        (capped) and asks again.

        Pages are charged to the session's read budget (``read_kib``), so a device
        downloading a long history of large messages is refused now and then by design.
        Raised, a refusal restarted the whole download: a history larger than the budget
        of a minute could never finish, and each restart spent the budget again."""
        while True:
            try:
                return await self._request(method, path, json=json, params=params)
            except ServerError as exc:
                if exc.status != 429:
                    raise
                await asyncio.sleep(min(exc.retry_after or 1.0, MAX_RETRY_AFTER))

    async def _prepare_upgrade(self, anonymous_data: AnonymousData | None) -> AnonymousData:
        """Before an anonymous user logs in: stop sync (the server will close the anonymous
        socket) and try to deliver what the anonymous user queued."""
        data = anonymous_data or self.anonymous_data
        self._upgrade_data = data
        await self._stop_background()
        if data is AnonymousData.KEEP and self._outbox is not None:
            try:
                await asyncio.wait_for(self._outbox.flush(), 10)
            except Exception as exc:
                log.info("anonymous outbox not fully delivered before log-in: %s", exc)
        return data

    async def _on_session(self, new: SavedSession, old: SavedSession | None) -> None:
        """A session was opened: the store follows its user (the table's local-data rule)."""
        self._session_changed.set()
        self._follow_push_token(new)
        if self._store is not None and self._store_user == new.user.user_id:
            return
        await self._stop_background()  # its tasks hold the store being replaced
        if self._store is not None and self._store_user is not None:
            upgraded = old is not None and old.user.anonymous and not new.user.anonymous
            store, self._store = self._store, None
            if upgraded and self._upgrade_data is not AnonymousData.DISCARD:
                await store.close()
                target = store_path(self.store_dir, self.app_id, new.user.user_id)
                await asyncio.to_thread(_move_store, store.path, target)
                self._store, self._store_user = await Store.open(target), new.user.user_id
                await self._store.forget_stream()
                self._start_background()
                return
            await store.destroy()  # another user: the previous user's data goes first
        await self._open_store(new.user.user_id)
        self._start_background()

    def _follow_push_token(self, new: SavedSession) -> None:
        """The server forgot the token with the old session: register it for the new one
        if the user is the same (in a task of its own: this runs inside the sign-in that
        ``_request`` waits for). ``_store_user`` is still the previous session's user."""
        if self._push_token is None or self._store_user != new.user.user_id:
            self._push_token = None
            return
        self._push_renewal = asyncio.get_running_loop().create_task(
            self._renew_push_token(*self._push_token)
        )

    async def _open_store(self, user_id: str) -> None:
        if self._store is None:
            self._store = await Store.open(store_path(self.store_dir, self.app_id, user_id))
            self._store_user = user_id

    def _start_background(self) -> None:
        if self._tasks or self._store is None or self._auth.session is None:
            return
        if self._synced.failed:  # a new sign-in after the last session ended
            self._synced.clear()
        store = self._store
        self._outbox = Outbox(
            store,
            self._request,
            me=lambda: self._auth.user.user_id if self._auth.user else "",
            emit=self._emit,
            backoff=self._backoff,
            rand=self._rand,
        )
        self._live = LiveSync(
            self._api,
            self._auth,
            store,
            self._sync_request,
            on_result=self._on_result,
            on_missing=self._fetch_conversations,
            on_connection=self._connection,
            backoff=self._backoff,
            rand=self._rand,
            use_websocket=self._use_websocket,
            poll_interval=self._poll_interval,
            on_typing=self._on_typing,
        )
        self._live.caught_up = self._synced
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._sync_then_live()),
            loop.create_task(self._outbox.run()),
            loop.create_task(refresh_forever(self._auth, self._session_changed, rand=self._rand)),
        ]

    async def _stop_background(self) -> None:
        current = asyncio.current_task()
        tasks, self._tasks = [t for t in self._tasks if t is not current], []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.connection_state is not ConnectionState.DISCONNECTED:
            self._connection(ConnectionEvent.CLOSE)

    async def _sync_then_live(self) -> None:
        store, live = self._need_store(), self._live
        assert live is not None
        attempt = 0
        while await store.get_meta("synced") != "1":
            try:
                me = (await self._auth.current()).user.user_id
                head = await historic_sync(
                    self._sync_request, store, me, self.sync_policy, self._progress
                )
                await store.mark_synced(head)
            except (NotAuthenticated, AuthenticationStopped, SessionRevoked, Suspended):
                return  # signed out (or held) meanwhile: nothing to sync for
            except Exception as exc:
                self._emit(ClientEvent.ERROR, exc)
                await asyncio.sleep(self._backoff.delay(attempt, self._rand()))
                attempt += 1
        self._emit(ClientEvent.SYNCED)
        await live.run()

    def _progress(self, progress: SyncProgress) -> None:
        self._emit(ClientEvent.SYNC_PROGRESS, progress)

    def _on_result(self, result: ApplyResult) -> None:
        if result.applied:
            self._emit(ClientEvent.CHANGES, result.applied)
        for message in result.messages:
            self._emit(ClientEvent.MESSAGE, message)
        for receipt in result.receipts:
            self._emit(ClientEvent.RECEIPT, receipt)
        for announcement in result.announcements:
            self._emit(ClientEvent.ANNOUNCEMENT, announcement)
        for message in result.login_requests:
            self._emit(ClientEvent.LOGIN_REQUESTED, message)

    async def _fetch_conversations(self, missing: set[str]) -> None:
        """Conversations the stream mentioned before this device knew them."""
        for cid in missing:
            try:
                found = await self._request("GET", f"/v1/conversations/{cid}")
            except Exception as exc:
                log.info("could not fetch conversation %s: %s", cid, exc)
                continue
            await self._need_store().upsert_conversations([found])

    def _sync_will_not_come(self, reason: str) -> None:
        """Signed out: whoever waits for the sync gets the reason instead of waiting
        forever. Subscribed first, so the waiters resume after every handler has run."""
        if reason == "suspended":
            self._synced.fail(self._auth.suspended_error)
        else:
            self._synced.fail(_SIGNED_OUT_ERRORS.get(reason, _signed_out))

    def _on_typing(self, typing: Typing) -> None:
        self._emit(ClientEvent.TYPING, typing)

    async def _wipe(self) -> None:
        """Signed out (the table said wipe): stop every task, delete the user's data."""
        await self._stop_background()
        self._outbox, self._live, self._push_token = None, None, None
        self._synced.clear()
        if self._store is not None:
            store, self._store, self._store_user = self._store, None, None
            await store.destroy()


_SIGNED_OUT = (AuthState.UNAUTHENTICATED, AuthState.SUSPENDED)


def _signed_out() -> Exception:
    return NotAuthenticated("wait_until_synced()")


_SIGNED_OUT_ERRORS: dict[str, Callable[[], Exception]] = {
    "wiped": lambda: SessionRevoked("The server ended this session; local data was wiped."),
    "stopped": lambda: AuthenticationStopped("The token provider asked to stop."),
}
"""What ``wait_until_synced()`` raises after each ``deauthenticated`` reason: the error the
SDK's other calls raise for it."""


def _move_store(source: Path, target: Path) -> None:
    remove_store_files(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)
    remove_store_files(source)
