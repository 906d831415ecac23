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
import contextlib
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
    Suspended,
)
from chinwag.client.store import OutboxEntry, Store
from chinwag.client.sync import Requester
from chinwag.core.backoff import Backoff

__all__ = ["Outbox"]

log = logging.getLogger("chinwag.client")

MAX_RETRY_AFTER = 300.0


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
            except Suspended:
                return  # held, queue and all, until the app signs in again
            except Exception as exc:  # offline, server trouble, a renewal that gave up
                log.debug("outbox: will retry (%s)", exc)
                await self._back_off(exc, attempt)
                attempt += 1
                self._wake.set()

    async def _back_off(self, exc: Exception, attempt: int) -> None:
        """Wait before trying again: the back-off, and never less than the server's
        ``retry_after`` (capped, so a wrong answer cannot park the outbox for hours).

        The two parts differ. ``retry_after`` is the server's word, and the SDK promises
        never to retry sooner: nothing shortens it. The back-off is only a guess at when the
        server will be back (up to a minute), so a :meth:`wake` during it — the live
        connection opened again, ``send_message`` — ends it: a device whose socket came back
        seconds after an outage used to sit on its queue for the rest of the minute. A wake
        from before this wait (the failed attempt's own answer) does not count.
        """
        delay = self.backoff.delay(attempt, self.rand())
        floor = 0.0
        if isinstance(exc, ServerError) and exc.retry_after is not None:
            floor = min(exc.retry_after, MAX_RETRY_AFTER)
        self._wake.clear()
        await asyncio.sleep(floor)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, delay - floor)):
                await self._wake.wait()

    async def flush(self) -> None:
        """Send everything queued, in order; returns when the outbox is empty.

        A 429 is not a failure: the server said when to come back, so this waits that long
        (capped) and goes on; a caller who cannot wait wraps it in ``asyncio.timeout``.
        Raises :class:`OfflineError` (or another transient :class:`ServerError`) if it can't.
        """
        async with self._lock:
            while entries := await self.store.outbox():
                queues: dict[str, list[OutboxEntry]] = {}
                for entry in entries:
                    queues.setdefault(entry.conversation_id, []).append(entry)
                results = await asyncio.gather(
                    *(self._drain(queue) for queue in queues.values()), return_exceptions=True
                )
                failures = [r for r in results if isinstance(r, BaseException)]
                limited = [r for r in failures if _rate_limited(r)]
                for failure in failures:
                    if not _rate_limited(failure):
                        raise failure
                if limited:
                    await asyncio.sleep(max(_wait_asked(r) for r in limited))

    async def _drain(self, queue: list[OutboxEntry]) -> None:
        for entry in queue:
            await self._send(entry)

    async def _send(self, entry: OutboxEntry) -> None:
        path = f"/v1/conversations/{entry.conversation_id}/messages"
        try:
            message = await self.request(
                "POST", path, json={"id": entry.message_id, "parts": entry.parts}
            )
        except Suspended:
            raise  # the user's suspension, not this message's fault: it stays queued
        except ServerError as exc:
            if exc.error_id == "id_in_use" and _same_parts(exc.data, entry.parts):
                message = exc.data.get("message", exc.data)
            elif exc.transient or exc.status in (401, 408):
                await self.store.note_attempt(entry.message_id)
                raise
            else:
                await self.store.fail(entry.message_id)
                rejected = MessageRejected(exc.status, exc.error_id, exc.message, exc.data)
                self.emit("message_failed", entry.message_id, rejected)
                return
        await self.store.acknowledge(message, self.me())
        self.emit("message_sent", message["id"])


def _rate_limited(exc: BaseException) -> bool:
    return isinstance(exc, ServerError) and exc.status == 429


def _wait_asked(exc: BaseException) -> float:
    """The server's ``retry_after`` (capped), or a second if it named none."""
    asked = exc.retry_after if isinstance(exc, ServerError) else None
    return min(asked, MAX_RETRY_AFTER) if asked is not None else 1.0


def _same_parts(data: dict[str, Any], parts: list[Any]) -> bool:
    existing = data.get("message", data)
    return isinstance(existing, dict) and existing.get("parts") == parts and "id" in existing
