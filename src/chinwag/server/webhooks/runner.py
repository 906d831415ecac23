"""Starts and stops this process's delivery workers (webhooks, push, online leases)."""

from __future__ import annotations

import asyncio
import contextlib

from chinwag.server.services import Services
from chinwag.server.webhooks.presence import renew_forever
from chinwag.server.webhooks.push_worker import PushWorker
from chinwag.server.webhooks.sender import Sender
from chinwag.server.webhooks.worker import WebhookWorker

__all__ = ["Delivery"]


class Delivery:
    """One webhook worker and one push worker per process, plus the online-lease renewal."""

    def __init__(self, services: Services) -> None:
        self._sender = Sender(
            timeout=services.settings.webhook_timeout,
            allow_loopback=services.settings.dev_allow_http_loopback,
        )
        self.webhooks = WebhookWorker(services, self._sender)
        self.push = PushWorker(services, self._sender)
        self._tasks: list[asyncio.Task[None]] = [asyncio.create_task(renew_forever(services))]
        if services.settings.webhook_workers:
            self._tasks += [
                asyncio.create_task(self.webhooks.run_forever()),
                asyncio.create_task(self.push.run_forever()),
            ]

    def wake(self) -> None:
        """New events were committed somewhere: look at the outbox soon."""
        self.webhooks.wake()
        self.push.wake()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._sender.close()
