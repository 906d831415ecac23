"""Ending sessions from the server side: an admin (CLI or platform) revokes a user's sessions.

Revocation must reach live connections, not only the next REST call (a pain point of
token-based peers). Three things make it so: the rows are revoked in the database (REST
refuses them at once), each session gets a ``session.revoked`` event in the user's stream
(the user's other devices learn it), and a ``SessionsRevoked`` doorbell closes the sockets.
Where the revoking process has no shared broker (the CLI with ``memory://``), the servers'
sweep finds the revoked rows in the database within seconds (``revoked_among``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from chinwag.core.errors import NotFound
from chinwag.core.events import EventType
from chinwag.core.ids import user_id_problem
from chinwag.core.session_tokens import is_session_id
from chinwag.server.broker import SessionsRevoked
from chinwag.server.handlers.apps import get_app
from chinwag.server.handlers.emit import emit
from chinwag.server.services import Services
from chinwag.server.storage import events as event_store
from chinwag.server.storage import push as push_store
from chinwag.server.storage import sessions as session_store
from chinwag.server.storage import users as user_store
from chinwag.server.storage.database import Transaction
from chinwag.server.storage.records import SessionRecord, UserRecord
from chinwag.server.storage.sessions import Revocation

__all__ = [
    "REVOKED",
    "end_app_sessions",
    "end_one_session",
    "end_sessions",
    "list_user_sessions",
    "purge_spent_records",
    "revoke_user_sessions",
    "revoked_among",
]

REVOKED = "revoked"


async def end_sessions(
    services: Services,
    tx: Transaction,
    *,
    app_id: str,
    user_pk: int,
    session_ids: Sequence[str],
    reason: str,
    wipe: bool = False,
) -> list[str]:
    """The one way a session ends (log-out, expiry, revocation): mark it ended and put
    ``session.revoked`` in the user's stream inside ``tx``; once ``tx`` commits, ring the
    doorbells that tell the user's devices and close the session's sockets.

    ``wipe`` (a stolen device) is stored with the session, carried in the event's data and
    the doorbell, and closes the sockets with ``session_wiped``: the SDK then deletes the
    session's local data instead of keeping it for the next sign-in.

    Returns the ids this call ended. A session another request already ended is left
    alone, so concurrent endings announce it once.
    """
    now = services.now()
    ended: list[str] = []
    for session_id in session_ids:
        if not await session_store.revoke_session(
            tx.conn, session_id, now=now, reason=reason, wipe=wipe
        ):
            continue
        ended.append(session_id)
        appended = await event_store.append_event(
            tx.conn,
            app_id=app_id,
            event_type=EventType.SESSION_REVOKED,
            data=_revoked_data(session_id, reason, wipe),
            user_pks=[user_pk],
            now=now,
        )
        emit(services, tx, appended)
    if ended:
        await push_store.forget_sessions(tx.conn, ended)  # a signed-out device gets nothing
        revoked = SessionsRevoked(session_ids=tuple(ended), reason=reason, wipe=wipe)
        tx.after_commit(lambda: services.publish(revoked))
    return ended


def _revoked_data(session_id: str, reason: str, wipe: bool) -> dict[str, object]:
    """``wipe`` appears only when set, so ordinary endings look as they always did."""
    data: dict[str, object] = {"session_id": session_id, "reason": reason}
    if wipe:
        data["wipe"] = True
    return data


async def revoke_user_sessions(
    services: Services, app_id: str, user_id: str, *, reason: str = REVOKED, wipe: bool = False
) -> list[str]:
    """End every live session of one user of one app; returns the ended session ids.

    ``wipe``: the devices must also delete the session's local data (a stolen device)."""
    known = await _user(services, app_id, user_id)
    async with services.db.transaction() as tx:
        user = await user_store.get_user_by_pk(tx.conn, known.pk)
        assert user is not None  # users are never deleted
        live = await session_store.user_session_ids(tx.conn, user.pk, now=services.now())
        return await end_sessions(
            services,
            tx,
            app_id=app_id,
            user_pk=user.pk,
            session_ids=live,
            reason=reason,
            wipe=wipe,
        )


async def _user(services: Services, app_id: str, user_id: str) -> UserRecord:
    await get_app(services, app_id)
    user = None
    if user_id_problem(user_id) is None:
        async with services.db.read() as conn:
            user = await user_store.get_user(conn, app_id, user_id)
    if user is None:
        raise NotFound("No user with that id in this app.", data={"user_id": user_id[:256]})
    return user


async def list_user_sessions(services: Services, app_id: str, user_id: str) -> list[SessionRecord]:
    """The user's live sessions (device label, created, last seen, address)."""
    user = await _user(services, app_id, user_id)
    async with services.db.read() as conn:
        return await session_store.live_sessions(conn, user.pk, now=services.now())


async def end_one_session(
    services: Services, app_id: str, session_id: str, *, reason: str = REVOKED, wipe: bool = False
) -> list[str]:
    """End one session of the app (``not_found`` for another app's, or none)."""
    await get_app(services, app_id)
    async with services.db.transaction() as tx:
        found = None
        if is_session_id(session_id):
            found = await session_store.get_session(tx.conn, session_id)
        if found is None or found.app_id != app_id:
            raise NotFound(
                "No session with that id in this app.", data={"session_id": session_id[:64]}
            )
        return await end_sessions(
            services,
            tx,
            app_id=app_id,
            user_pk=found.user_pk,
            session_ids=[found.id],
            reason=reason,
            wipe=wipe,
        )


async def end_app_sessions(
    services: Services,
    app_id: str,
    *,
    issued_before: float | None = None,
    reason: str = REVOKED,
    wipe: bool = False,
) -> list[str]:
    """End every live session of the app (issued before a time, if given): after a key
    leak, or when the app is suspended."""
    await get_app(services, app_id)
    async with services.db.transaction() as tx:
        found = await session_store.app_live_sessions(
            tx.conn, app_id, now=services.now(), issued_before=issued_before
        )
        by_user: defaultdict[int, list[str]] = defaultdict(list)
        for session_id, user_pk in found:
            by_user[user_pk].append(session_id)
        ended: list[str] = []
        for user_pk, ids in by_user.items():
            ended += await end_sessions(
                services,
                tx,
                app_id=app_id,
                user_pk=user_pk,
                session_ids=ids,
                reason=reason,
                wipe=wipe,
            )
        return ended


async def revoked_among(services: Services, session_ids: list[str]) -> dict[str, Revocation]:
    """Which of these sessions the database says have ended, with reason and wipe flag."""
    if not session_ids:
        return {}
    async with services.db.read() as conn:
        return await session_store.revoked_among(conn, session_ids)


async def purge_spent_records(services: Services) -> None:
    """Forget used nonces and jtis whose tokens have expired anyway.

    Safe because expiry is checked before the record is: an expired nonce fails its seal
    check (``nonce_expired``) and an old no-nonce token fails ``too_old``, whether or not
    its record is still there. Without this, every sign-in would leave a row forever.
    """
    async with services.db.transaction() as tx:
        await session_store.purge_expired(tx.conn, now=services.now())
