"""The webhook delivery worker: one per process, started by the app's lifespan.

Each pass claims up to ``webhook_concurrency`` due deliveries (a lease, see
``storage/webhooks.py``), posts them concurrently, and records the outcomes in one
transaction:
delivered; pending again after a jittered back-off; or, once the schedule is spent,
failed, and the endpoint disabled with the reason (the API shows it; re-enabling the
endpoint resumes its pending deliveries). The worker wakes when a transaction of this
process that wrote outbox rows commits (``Services.outbox_written``) and otherwise polls,
so deliveries written by another process (the CLI, another node) are found too. It never
runs inside a request: sending a message only writes rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.core.webhook_events import next_delay
from chinwag.core.webhook_signing import headers
from chinwag.server.services import Services
from chinwag.server.storage import webhook_outbox
from chinwag.server.storage import webhooks as store
from chinwag.server.storage.failures import log_failure
from chinwag.server.webhooks.sender import Outcome, Sender

__all__ = ["EXPAND_BATCH", "PURGE_EVERY", "Poller", "WebhookWorker", "new_msg_id"]

PURGE_EVERY = 600.0
"""Seconds between purges of finished deliveries past ``webhook_retention_days``."""

EXPAND_BATCH = 500
"""Outbox events fanned out into deliveries per pass."""


def new_msg_id() -> str:
    """A ``webhook-id``: names one event, the same on every endpoint and every retry."""
    return "msg_" + secrets.token_urlsafe(18)


log = logging.getLogger("chinwag.webhooks")


class Poller:
    """A loop around ``run_once`` that sleeps while idle and wakes early when told to."""

    MIN_GAP = 0.05
    """Seconds between idle passes however often it is woken: a busy chat server rings
    for every message, and each pass is a transaction."""

    BUSY_LAG = 0.002
    """A turn of the event loop slower than this means clients are waiting on it."""

    def __init__(self, interval: float, busy_share: float = 1.0) -> None:
        self._interval = interval
        self._busy_share = busy_share
        self.passes = 0
        """Passes run so far (each a transaction or more)."""
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run_once(self) -> int:
        raise NotImplementedError

    async def run_forever(self) -> None:
        while True:
            started = time.monotonic()
            self.passes += 1
            try:
                busy = await self.run_once()
            except Exception:
                log_failure(log, "delivery pass failed; retrying")
                busy = 0
            if busy:
                await self._yield_to_clients(time.monotonic() - started)
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            await asyncio.sleep(min(self.MIN_GAP, self._interval))
            self._wake.clear()

    async def _yield_to_clients(self, spent: float) -> None:
        """Deliveries never slow message sending: while the loop is busy (a turn takes
        longer than :data:`BUSY_LAG`), wait so that delivery passes take about
        ``busy_share`` of the time; deliveries then lag, durably, and catch up when the
        load drops. An idle loop delivers flat out."""
        turn = time.monotonic()
        await asyncio.sleep(0)
        if time.monotonic() - turn > self.BUSY_LAG and self._busy_share < 1:
            await asyncio.sleep(spent * (1 / self._busy_share - 1))


class WebhookWorker(Poller):
    def __init__(
        self, services: Services, sender: Sender, jitter: Callable[[], float] = random.random
    ) -> None:
        super().__init__(
            services.settings.webhook_poll_interval, services.settings.webhook_busy_share
        )
        self._services = services
        self._sender = sender
        self._jitter = jitter
        self._purged_at = 0.0

    async def run_once(self) -> int:
        """One pass: claim and send what is due; returns how many were sent."""
        services, settings = self._services, self._services.settings
        now = services.now()
        if now - self._purged_at >= PURGE_EVERY:
            self._purged_at = now
            async with services.db.transaction() as tx:
                before = now - settings.webhook_retention_days * 86400
                await store.purge_finished(tx.conn, before=before)
        lease = 2 * settings.webhook_timeout + 30
        async with services.db.transaction() as tx:
            await webhook_outbox.expand(tx.conn, limit=EXPAND_BATCH, new_msg_id=new_msg_id)
            due = await store.claim_due(
                tx.conn, now=now, lease=lease, limit=settings.webhook_concurrency
            )
        outcomes = await asyncio.gather(*(self._attempt(d) for d in due))
        if outcomes:
            async with services.db.transaction() as tx:  # one commit for the whole pass
                for due_one, (started, outcome) in zip(due, outcomes, strict=True):
                    await self._record(tx.conn, due_one, started, outcome)
        return len(due)

    async def _attempt(self, due: store.DueDelivery) -> tuple[float, Outcome]:
        body = due.payload.encode()
        started = self._services.now()  # back-off counts from the attempt's start
        signed = headers(due.secrets, due.msg_id, started, body)
        return started, await self._sender.post(due.url, body, signed)

    async def _record(
        self, conn: AsyncConnection, due: store.DueDelivery, started: float, outcome: Outcome
    ) -> None:
        now = self._services.now()
        attempts = due.attempts + 1
        status, next_at = store.DELIVERED, now
        if not outcome.ok:
            delay = next_delay(
                attempts, self._services.settings.webhook_retry_schedule, self._jitter
            )
            status = store.PENDING if delay is not None else store.FAILED
            next_at = started + (delay or 0)
        recorded = await store.record_attempt(
            conn, due.id, lease_until=due.lease_until, status=status, attempts=attempts,
            next_attempt_at=next_at, http_status=outcome.status, error=outcome.error, now=now,
        )  # fmt: skip
        if recorded and status == store.FAILED:
            reason = f"disabled after {attempts} failed attempts; last: {outcome.error}"
            await store.disable_endpoint(conn, due.endpoint_id, reason=reason, now=now)
            log.warning("webhook endpoint %s disabled: %s", due.endpoint_id, outcome.error)
