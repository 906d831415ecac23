"""Sending: the durable outbox, drained in order, exactly once.

A message gets its id (a UUID) when it is written, and the id *is* the idempotency key:
the server answers 201 the first time, 200 with the stored message on a repeat, 409
``id_in_use`` only if the same id came with other content. So a send whose answer was lost
(crash, timeout, dropped socket) is simply sent again until acknowledged; a 409 carrying
the same parts counts as success. Order per conversation is outbox order: each
conversation's queue sends one message at a time and stops at the first transient
failure, so a later message never overtakes an earlier one. Permanent refusals (4xx other
than 401/408/429) mark the message failed instead of leaving it pending forever.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any

from chinwag.client.errors import (
    AuthenticationStopped,
    MessageRejected,
    NotAuthenticated,
    ServerError,
    SessionRevoked,
)
from chinwag.client.store import OutboxEntry, Store
from chinwag.client.sync import Requester
from chinwag.core.backoff import Backoff

__all__ = ["Outbox"]

log = logging.getLogger("chinwag.client")


class Outbox:
    def __init__(
        self,
        store: Store,
        request: Requester,
        *,
        me: Callable[[], str],
        emit: Callable[..., None],
        backoff: Backoff,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.request = request
        self.me = me
        self.emit = emit
        self.backoff = backoff
        self.rand = rand
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Background loop: drain when woken; on trouble, back off and try again."""
        attempt = 0
        self._wake.set()
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
                attempt = 0
            except (NotAuthenticated, AuthenticationStopped, SessionRevoked):
                return  # signed out: the outbox went with the user's data
            except Exception as exc:  # offline, server trouble, a renewal that gave up
                log.debug("outbox: will retry (%s)", exc)
                await asyncio.sleep(self.backoff.delay(attempt, self.rand()))
                attempt += 1
                self._wake.set()

    async def flush(self) -> None:
        """Send everything queued, in order; returns when the outbox is empty.

        Raises :class:`OfflineError` (or a transient :class:`ServerError`) if it can't.
        """
        async with self._lock:
            while entries := await self.store.outbox():
                queues: dict[str, list[OutboxEntry]] = {}
                for entry in entries:
                    queues.setdefault(entry.conversation_id, []).append(entry)
                results = await asyncio.gather(
                    *(self._drain(queue) for queue in queues.values()), return_exceptions=True
                )
                for result in results:
                    if isinstance(result, BaseException):
                        raise result

    async def _drain(self, queue: list[OutboxEntry]) -> None:
        for entry in queue:
            await self._send(entry)

    async def _send(self, entry: OutboxEntry) -> None:
        path = f"/v1/conversations/{entry.conversation_id}/messages"
        try:
            message = await self.request(
                "POST", path, json={"id": entry.message_id, "parts": entry.parts}
            )
        except ServerError as exc:
            if exc.error_id == "id_in_use" and _same_parts(exc.data, entry.parts):
                message = exc.data.get("message", exc.data)
            elif exc.transient or exc.status in (401, 408):
                await self.store.note_attempt(entry.message_id)
                raise
            else:
                await self.store.fail(entry.message_id)
                rejected = MessageRejected(exc.status, exc.error_id, str(exc), exc.data)
                self.emit("message_failed", entry.message_id, rejected)
                return
        await self.store.acknowledge(message, self.me())
        self.emit("message_sent", message["id"])


def _same_parts(data: dict[str, Any], parts: list[Any]) -> bool:
    existing = data.get("message", data)
    return isinstance(existing, dict) and existing.get("parts") == parts and "id" in existing
