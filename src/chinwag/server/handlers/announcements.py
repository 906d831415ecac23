"""Announcements: system messages from the app to a list of users, outside conversations.

An announcement is one ``announcement.created`` event appended to each recipient's stream
(``{"announcement": {"id", "parts", "sent_at"}}``), so it arrives live or on the next sync
under the stream's usual exactly-once and gap rules, like any other event. Its id is chosen
by the caller: the same id with the same parts answers the stored announcement and appends
nothing (a retry after a lost answer announces once); other parts under a used id are 409
``id_in_use``. Recipients the app has never seen are skipped (nobody is created), and the
answer counts who got it.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from chinwag.core.errors import IdInUse
from chinwag.core.events import EventType
from chinwag.core.ids import is_valid_uuid
from chinwag.server.handlers.actors import AuditHook, FanoutCharge, audited, charged
from chinwag.server.handlers.conversations import check_user_ids, emit, invalid
from chinwag.server.handlers.messages import check_parts
from chinwag.server.services import Services
from chinwag.server.storage import announcements as store
from chinwag.server.storage import events as event_store
from chinwag.server.storage import users as user_store
from chinwag.server.storage.announcements import AnnouncementRow

__all__ = ["COST_BYTES", "MAX_RECIPIENTS", "announce", "fanout_cost"]

MAX_RECIPIENTS = 1000
"""Recipients per announcement: each costs a stream position written in one transaction,
so the bound keeps one request's transaction (and its row locks) short. Announce to more
users in several requests, each with its own id."""


COST_BYTES = 16 * 1024
"""Each full 16 KiB of an announcement's parts counts every recipient once more: the
payload is sent to each connected recipient and read back by each one syncing, so 1,000
recipients of 60 KiB cost far more than 1,000 of a line of text."""


def fanout_cost(recipients: int, size: int) -> int:
    """What an announcement of ``size`` bytes to ``recipients`` users is charged."""
    return recipients * (1 + size // COST_BYTES)


def _json(row: AnnouncementRow) -> dict[str, Any]:
    return {"id": row.public_id, "parts": orjson.loads(row.parts), "sent_at": row.sent_at}


async def announce(
    services: Services,
    app_id: str,
    announcement_id: str,
    parts: object,
    recipients: object,
    *,
    audit: AuditHook | None = None,
    charge: FanoutCharge | None = None,
) -> tuple[dict[str, Any], bool]:
    """Append the announcement to each known recipient's stream; returns (answer, created).

    ``charge`` is told its cost before any work: :func:`fanout_cost` recipients."""
    if not is_valid_uuid(announcement_id):
        raise invalid("id", "expected a lower-case UUID chosen by the caller")
    clean = check_parts(parts, services.settings.max_message_bytes)
    user_ids = check_user_ids(recipients, "user_ids", MAX_RECIPIENTS)
    if not user_ids:
        raise invalid("user_ids", "expected at least one user id")
    encoded = orjson.dumps(clean).decode()
    await charged(charge, fanout_cost(len(user_ids), len(encoded)))
    now = services.now()
    async with services.db.transaction() as tx:
        found = await user_store.find_users(tx.conn, app_id, user_ids)
        row = AnnouncementRow(
            id=str(uuid.UUID(bytes=services.random(16), version=4)),
            app_id=app_id,
            public_id=announcement_id,
            parts=encoded,
            sent_at=now,
            recipient_count=len(found),
        )
        if not await store.insert_announcement(tx.conn, row):
            existing = await store.get_announcement(tx.conn, app_id, announcement_id)
            if existing is None or orjson.loads(existing.parts) != clean:
                raise IdInUse("That announcement id is already used by a different one.")
            return {**_json(existing), "recipient_count": existing.recipient_count}, False
        appended = await event_store.append_event(
            tx.conn, app_id=app_id, event_type=EventType.ANNOUNCEMENT_CREATED,
            data={"announcement": _json(row)}, user_pks=[pk for pk, _ in found.values()], now=now,
        )  # fmt: skip
        emit(services, tx, appended)
        await audited(tx, audit)
    return {**_json(row), "recipient_count": row.recipient_count}, True
