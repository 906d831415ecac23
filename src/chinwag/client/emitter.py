"""The SDK's events: names, and a dispatcher that never lets an app's handler break it."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from enum import StrEnum
from typing import Any

__all__ = ["ClientEvent", "Emitter", "Handler"]

log = logging.getLogger("chinwag.client")


class ClientEvent(StrEnum):
    """Names for :meth:`Client.on`, with the arguments each handler receives."""

    CONNECTED = "connected"  # ()
    DISCONNECTED = "disconnected"  # ()
    CHALLENGE = "challenge"  # (nonce)
    AUTHENTICATED = "authenticated"  # (user)
    DEAUTHENTICATED = "deauthenticated"  # (reason: deauthenticated|stopped|wiped|suspended)
    SYNC_PROGRESS = "sync_progress"  # (SyncProgress)
    SYNCED = "synced"  # ()
    CHANGES = "changes"  # (list of applied events)
    MESSAGE = "message"  # (Message) new to this device, from the stream
    RECEIPT = "receipt"  # (Receipt) anyone's read/delivered marks moved
    TYPING = "typing"  # (Typing) someone else's typing state changed
    ANNOUNCEMENT = "announcement"  # (Announcement) new to this device, from the app
    LOGIN_REQUESTED = "login_requested"  # (message)
    MESSAGE_SENT = "message_sent"  # (message id)
    MESSAGE_FAILED = "message_failed"  # (message id, MessageRejected)
    ERROR = "error"  # (exception)


Handler = Callable[..., Any]


class Emitter:
    """Calls handlers (plain or async) in subscription order; a failing one is logged.

    Async handlers run as tasks of their own, so a slow handler never stalls sync; the
    tasks are kept (and cancelled by :meth:`cancel_pending`) so none is lost or leaks.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}
        self._pending: set[asyncio.Task[Any]] = set()

    def on(self, event: ClientEvent | str, handler: Handler) -> Callable[[], None]:
        name = ClientEvent(event).value
        self._handlers.setdefault(name, []).append(handler)
        return lambda: self._handlers[name].remove(handler)

    def emit(self, event: str, *args: Any) -> None:
        for handler in list(self._handlers.get(event, ())):
            try:
                result = handler(*args)
            except Exception:
                log.exception("chinwag %s handler failed", event)
                continue
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._pending.add(task)
                task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("chinwag event handler failed", exc_info=task.exception())

    def cancel_pending(self) -> None:
        for task in list(self._pending):
            task.cancel()
