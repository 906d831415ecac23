"""Push gateways, device push tokens and pending notifications. SQL only.

A push token belongs to a session (one device), so ending the session deletes it and a
signed-out device is never woken again. :func:`enqueue` runs inside the transaction that
stores a message: one ``INSERT … SELECT`` writes a pending notification for each
recipient device with a token, when the app has an enabled gateway (otherwise nothing).
Whether a device is connected is kept as ``online_until``, a lease the node holding its
socket renews; the worker drops notifications for devices online when they come due (the
socket delivered the message) and sends the rest, coalesced per device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Insert,
    Integer,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.server.storage.prepared import Prepared
from chinwag.server.storage.schema import (
    participants,
    push_gateways,
    push_jobs,
    push_tokens,
    users,
)

__all__ = [
    "ENQUEUE_STATEMENT",
    "DueJob",
    "GatewayRow",
    "claim_due",
    "delete_gateway",
    "delete_jobs",
    "disable_gateway",
    "drop_online",
    "enqueue",
    "enqueue_params",
    "enqueue_statement",
    "forget_sessions",
    "get_gateway",
    "mark_offline",
    "mark_online",
    "max_attempts",
    "put_gateway",
    "register_token",
    "retry_jobs",
]


@dataclass(frozen=True, slots=True)
class GatewayRow:
    app_id: str
    url: str
    include_body: bool
    enabled: bool
    secret: str
    previous_secret: str | None
    previous_secret_until: float | None
    disabled_reason: str | None
    created_at: float
    updated_at: float

    def secrets(self, now: float) -> tuple[str, ...]:
        """Sign with the previous secret too while the rotation overlap lasts."""
        if self.previous_secret is None or (self.previous_secret_until or 0) <= now:
            return (self.secret,)
        return (self.secret, self.previous_secret)


@dataclass(frozen=True, slots=True)
class DueJob:
    id: int
    app_id: str
    session_id: str
    user_pk: int
    conversation_id: str
    conversation_public_id: str
    message_id: str
    attempts: int
    kind: str
    token: str
    lease_until: float
    """The claim's lease: what is recorded of this try counts only while the job holds it."""


def enqueue_statement(*only_if: ColumnElement[bool]) -> Insert:
    """The push jobs' ``INSERT … SELECT``, writing only when ``only_if`` also holds.
    Parameters ``app_id``, ``sender_id``, ``conversation_id``, ``conversation_public_id``,
    ``message_id``, ``now`` (see ``webhook_outbox.enqueue_statement``)."""
    return insert(push_jobs).from_select(
        [
            "app_id",
            "session_id",
            "user_pk",
            "conversation_id",
            "conversation_public_id",
            "message_id",
            "attempts",
            "next_attempt_at",
            "created_at",
        ],
        select(
            push_tokens.c.app_id,
            push_tokens.c.session_id,
            push_tokens.c.user_pk,
            bindparam("conversation_id"),
            bindparam("conversation_public_id"),
            bindparam("message_id"),
            literal(0),
            bindparam("now", type_=Float),
            bindparam("now", type_=Float),
        )
        .select_from(
            push_tokens.join(push_gateways, push_gateways.c.app_id == push_tokens.c.app_id).join(
                users, users.c.pk == push_tokens.c.user_pk
            )
        )
        .where(
            push_tokens.c.user_pk.in_(
                select(participants.c.user_pk).where(
                    participants.c.conversation_id == bindparam("conversation_id"),
                    participants.c.left_at.is_(None),
                )
            ),
            push_tokens.c.app_id == bindparam("app_id"),
            push_gateways.c.enabled.is_(True),
            users.c.user_id != bindparam("sender_id"),
            *only_if,
        ),
    )


ENQUEUE_STATEMENT = enqueue_statement()
_ENQUEUE = Prepared(ENQUEUE_STATEMENT)


def enqueue_params(
    app_id: str, message: dict[str, Any], conversation_id: str, now: float
) -> dict[str, Any]:
    """The parameters of :data:`ENQUEUE_STATEMENT` for a new message (its JSON)."""
    return {
        "app_id": app_id,
        "sender_id": message.get("sender_id") or "",
        "conversation_id": conversation_id,
        "conversation_public_id": message["conversation_id"],
        "message_id": message["id"],
        "now": now,
    }


async def enqueue(
    conn: AsyncConnection, *, app_id: str, message: dict[str, Any], conversation_id: str, now: float
) -> bool:
    """A pending notification for every device with a push token of the conversation's
    participants but the sender (the message's readers; by primary key, no scan); whether
    there was any."""
    params = enqueue_params(app_id, message, conversation_id, now)
    return await _ENQUEUE.rowcount(conn, params) > 0


_GATEWAY_FIELDS = list(GatewayRow.__slots__)


async def get_gateway(conn: AsyncConnection, app_id: str) -> GatewayRow | None:
    row = (
        await conn.execute(
            select(*[push_gateways.c[f] for f in _GATEWAY_FIELDS]).where(
                push_gateways.c.app_id == app_id
            )
        )
    ).first()
    if row is None:
        return None
    values = dict(zip(_GATEWAY_FIELDS, row, strict=True))
    return GatewayRow(
        **{
            **values,
            "include_body": bool(values["include_body"]),
            "enabled": bool(values["enabled"]),
        }
    )


async def put_gateway(conn: AsyncConnection, app_id: str, values: dict[str, Any]) -> None:
    """Create the app's gateway (``values`` complete) or change the given columns."""
    if await get_gateway(conn, app_id) is None:
        await conn.execute(insert(push_gateways).values(app_id=app_id, **values))
    else:
        await conn.execute(
            update(push_gateways).where(push_gateways.c.app_id == app_id).values(**values)
        )


async def delete_gateway(conn: AsyncConnection, app_id: str) -> bool:
    result = await conn.execute(delete(push_gateways).where(push_gateways.c.app_id == app_id))
    return bool(result.rowcount)


async def disable_gateway(conn: AsyncConnection, app_id: str, *, reason: str, now: float) -> None:
    await conn.execute(
        update(push_gateways)
        .where(push_gateways.c.app_id == app_id)
        .values(enabled=False, disabled_reason=reason[:300], updated_at=now)
    )


async def register_token(
    conn: AsyncConnection, *, session_id: str, app_id: str, user_pk: int, kind: str, token: str,
    now: float,
) -> None:  # fmt: skip
    """The session's token (replacing its previous one). The same token under another
    session of the app (the device signed in again) is dropped, so one device is woken once."""
    await forget_sessions(conn, [session_id])
    await conn.execute(
        delete(push_tokens).where(push_tokens.c.app_id == app_id, push_tokens.c.token == token)
    )
    await conn.execute(
        insert(push_tokens).values(
            session_id=session_id,
            app_id=app_id,
            user_pk=user_pk,
            kind=kind,
            token=token,
            online_until=now,
            created_at=now,
        )
    )


async def forget_sessions(conn: AsyncConnection, session_ids: list[str]) -> None:
    """Drop the sessions' push tokens and anything pending for them."""
    if not session_ids:
        return
    await conn.execute(delete(push_jobs).where(push_jobs.c.session_id.in_(session_ids)))
    await conn.execute(delete(push_tokens).where(push_tokens.c.session_id.in_(session_ids)))


# Built once: ``in_(a_list)`` builds an expanding bind parameter that SQLAlchemy links in a
# reference cycle, garbage for the cycle collector on every WebSocket that connects.
_MARK_ONLINE = (
    update(push_tokens)
    .where(push_tokens.c.session_id.in_(bindparam("session_ids", expanding=True)))
    .values(online_until=bindparam("until"))
)


async def mark_online(conn: AsyncConnection, session_ids: list[str], *, until: float) -> None:
    if session_ids:
        await conn.execute(_MARK_ONLINE, {"session_ids": session_ids, "until": until})


async def mark_offline(conn: AsyncConnection, session_id: str) -> None:
    await conn.execute(
        update(push_tokens).where(push_tokens.c.session_id == session_id).values(online_until=0)
    )


async def drop_online(conn: AsyncConnection, *, now: float, due_by: float) -> None:
    """Due notifications of devices connected now: their socket delivered the message."""
    online = select(push_tokens.c.session_id).where(push_tokens.c.online_until > now)
    await conn.execute(
        delete(push_jobs).where(
            push_jobs.c.next_attempt_at <= due_by, push_jobs.c.session_id.in_(online)
        )
    )


# Built once, like _MARK_ONLINE: the correlated EXISTS left a reference cycle per pass.
_CLAIMABLE = (
    select(push_jobs.c.id)
    .where(
        push_jobs.c.next_attempt_at <= bindparam("due_by", type_=Float),
        push_jobs.c.lease_until.is_(None)
        | (push_jobs.c.lease_until < bindparam("now", type_=Float)),
        ~select(push_tokens.c.session_id)
        .where(
            push_tokens.c.session_id == push_jobs.c.session_id,
            push_tokens.c.online_until > bindparam("now", type_=Float),
        )
        .exists(),
    )
    .order_by(push_jobs.c.next_attempt_at)
    .limit(bindparam("limit", type_=Integer))
    .with_for_update(skip_locked=True)
)


async def claim_due(
    conn: AsyncConnection, *, now: float, due_by: float, lease: float, limit: int
) -> list[DueJob]:
    """Take up to ``limit`` notifications due by ``due_by`` for ``lease`` seconds (see
    webhooks.claim_due); ``due_by`` trails ``now`` by the app's push delay. Never one of a
    device online now: on PostgreSQL a job committed after this transaction's
    :func:`drop_online` (each statement sees what has committed by its start) would
    otherwise be claimed, and a connected device woken (seen once in CI)."""
    params = {"now": now, "due_by": due_by, "limit": limit}
    ids = [int(r[0]) for r in await conn.execute(_CLAIMABLE, params)]
    if not ids:
        return []
    lease_until = now + lease  # one value: the outcome is recorded only under it
    await conn.execute(
        update(push_jobs).where(push_jobs.c.id.in_(ids)).values(lease_until=lease_until)
    )
    rows = await conn.execute(
        select(
            push_jobs.c.id,
            push_jobs.c.app_id,
            push_jobs.c.session_id,
            push_jobs.c.user_pk,
            push_jobs.c.conversation_id,
            push_jobs.c.conversation_public_id,
            push_jobs.c.message_id,
            push_jobs.c.attempts,
            push_tokens.c.kind,
            push_tokens.c.token,
        )
        .join(push_tokens, push_tokens.c.session_id == push_jobs.c.session_id)
        .where(push_jobs.c.id.in_(ids))
        .order_by(push_jobs.c.id)
    )
    return [
        DueJob(
            int(r[0]), r[1], r[2], int(r[3]), r[4], r[5], r[6], int(r[7]), r[8], r[9], lease_until
        )
        for r in rows
    ]


def _held(ids: list[int], lease_until: float) -> ColumnElement[bool]:
    """Jobs ``ids``, only those still under the claim's lease ``lease_until``.

    A worker records a try's outcome only while its claim holds: a try that outlived its
    lease (the process stalled) may have been claimed and posted again by another worker,
    and its late "retry" would clear that worker's lease, so a third worker would post the
    notification once more, and its attempts would be counted twice."""
    return push_jobs.c.id.in_(ids) & (push_jobs.c.lease_until == lease_until)


async def delete_jobs(conn: AsyncConnection, ids: list[int], *, lease_until: float) -> None:
    if ids:
        await conn.execute(delete(push_jobs).where(_held(ids, lease_until)))


async def max_attempts(conn: AsyncConnection, ids: list[int], *, lease_until: float) -> int | None:
    """The most attempts among the jobs still under ``lease_until``; None if none is."""
    found = await conn.execute(
        select(func.count(), func.max(push_jobs.c.attempts)).where(_held(ids, lease_until))
    )
    held, most = found.one()
    return int(most or 0) if held else None


async def retry_jobs(
    conn: AsyncConnection,
    ids: list[int],
    *,
    lease_until: float,
    attempts: int,
    next_attempt_at: float,
    error: str,
) -> None:
    await conn.execute(
        update(push_jobs)
        .where(_held(ids, lease_until))
        .values(
            attempts=attempts,
            next_attempt_at=next_attempt_at,
            lease_until=None,
            last_error=error[:300],
        )
    )
