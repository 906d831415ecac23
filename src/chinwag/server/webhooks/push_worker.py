"""The push worker: wakes offline devices through the app's push gateway.

A pending notification comes due ``push_delay`` after its message. Each pass first drops
the due ones whose device is online (its socket delivered the message), then claims the
rest, coalesces them per user and conversation (one notification, the user's devices
listed, the newest message and the unread count as of now), and posts each app's batch to
its gateway signed the Standard Webhooks way. A failed post is retried on the webhook
schedule; once that is spent the gateway is disabled with the reason.
"""

from __future__ import annotations

import random
import secrets
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.core.webhook_events import next_delay
from chinwag.core.webhook_signing import headers
from chinwag.server.services import Services
from chinwag.server.storage import conversations as conversation_store
from chinwag.server.storage import messages as message_store
from chinwag.server.storage import push as store
from chinwag.server.storage.messages import Visibility
from chinwag.server.webhooks.sender import Sender
from chinwag.server.webhooks.worker import Poller

__all__ = ["MAX_BATCH", "PushWorker"]

MAX_BATCH = 100
"""Notifications in one post to a gateway."""


class PushWorker(Poller):
    def __init__(
        self, services: Services, sender: Sender, jitter: Callable[[], float] = random.random
    ) -> None:
        super().__init__(
            services.settings.webhook_poll_interval, services.settings.webhook_busy_share
        )
        self._services = services
        self._sender = sender
        self._jitter = jitter

    async def run_once(self) -> int:
        services, settings = self._services, self._services.settings
        now = services.now()
        due_by = now - settings.push_delay
        by_app: dict[str, list[store.DueJob]] = defaultdict(list)
        async with services.db.transaction() as tx:
            await store.drop_online(tx.conn, now=now, due_by=due_by)
            lease = 2 * settings.webhook_timeout + 30
            for job in await store.claim_due(
                tx.conn, now=now, due_by=due_by, lease=lease, limit=10 * MAX_BATCH
            ):
                by_app[job.app_id].append(job)
        for app_id, jobs in by_app.items():
            await self._send_app(app_id, jobs)
        return sum(len(jobs) for jobs in by_app.values())

    async def _send_app(self, app_id: str, jobs: list[store.DueJob]) -> None:
        async with self._services.db.read() as conn:
            gateway = await store.get_gateway(conn, app_id)
            if gateway is not None and gateway.enabled:
                notes = await _notifications(conn, app_id, jobs, gateway.include_body)
        lease = jobs[0].lease_until  # one claim, one lease
        if gateway is None or not gateway.enabled:
            async with self._services.db.transaction() as tx:
                await store.delete_jobs(tx.conn, [j.id for j in jobs], lease_until=lease)
            return
        for start in range(0, len(notes), MAX_BATCH):
            batch = notes[start : start + MAX_BATCH]
            ids = [i for _, ids in batch for i in ids]
            await self._post(gateway, [n for n, _ in batch], ids, lease)

    async def _post(
        self, gateway: store.GatewayRow, notes: list[dict[str, Any]], ids: list[int], lease: float
    ) -> None:
        """Post ``notes`` and record the outcome of jobs ``ids``, while they hold ``lease``
        (``store.max_attempts``): a claim that lapsed belongs to the worker that took it."""
        now = self._services.now()
        body = orjson.dumps({"type": "push.notifications", "notifications": notes})
        msg_id = "push_" + secrets.token_urlsafe(18)
        signed = headers(gateway.secrets(now), msg_id, now, body)
        outcome = await self._sender.post(gateway.url, body, signed)
        async with self._services.db.transaction() as tx:
            if outcome.ok:
                await store.delete_jobs(tx.conn, ids, lease_until=lease)
                return
            held = await store.max_attempts(tx.conn, ids, lease_until=lease)
            if held is None:
                return
            attempts = held + 1
            schedule = self._services.settings.webhook_retry_schedule
            delay = next_delay(attempts, schedule, self._jitter)
            if delay is None:
                reason = f"disabled after {attempts} failed attempts; last: {outcome.error}"
                await store.disable_gateway(tx.conn, gateway.app_id, reason=reason, now=now)
                await store.delete_jobs(tx.conn, ids, lease_until=lease)
                return
            await store.retry_jobs(
                tx.conn, ids, lease_until=lease, attempts=attempts,
                next_attempt_at=now + delay,  # from the start
                error=outcome.error or "failed",
            )  # fmt: skip


async def _notifications(
    conn: AsyncConnection, app_id: str, jobs: list[store.DueJob], include_body: bool
) -> list[tuple[dict[str, Any], list[int]]]:
    """One notification per (user, conversation): the user's devices, the newest message,
    the unread count now; with the job ids it answers for."""
    groups: dict[tuple[int, str], list[store.DueJob]] = defaultdict(list)
    for job in jobs:
        groups[(job.user_pk, job.conversation_id)].append(job)
    notes = []
    for (user_pk, conversation_id), group in groups.items():
        note = await _notification(conn, app_id, user_pk, conversation_id, group, include_body)
        if note is not None:
            notes.append((note, [j.id for j in group]))
    return notes


async def _notification(
    conn: AsyncConnection,
    app_id: str,
    user_pk: int,
    conversation_id: str,
    group: list[store.DueJob],
    include_body: bool,
) -> dict[str, Any] | None:
    newest = max(group, key=lambda j: j.id)
    message = await message_store.get_message_by_public_id(conn, app_id, newest.message_id)
    member = await conversation_store.get_member(conn, conversation_id, user_pk)
    if message is None or member is None:
        return None
    seen = Visibility(user_pk=user_pk, above=member.hidden_position, up_to=member.left_position)
    unread = await message_store.unread_count(
        conn, conversation_id, seen, read_position=member.read_position
    )
    devices = {(j.kind, j.token) for j in group}
    note: dict[str, Any] = {
        "devices": [{"kind": k, "token": t} for k, t in sorted(devices)],
        "conversation_id": newest.conversation_public_id,
        "message_id": message.public_id,
        "sender_id": message.sender_id,
        "unread_count": unread,
        "coalesced": len({j.message_id for j in group}),
    }
    if include_body and message.deleted_at is None:
        note["parts"] = orjson.loads(message.parts)
    return note
