"""What ``wait_until_synced()`` waits on: an event that can also end in an error.

Why not a bare :class:`asyncio.Event`: the session can end while an app waits for the sync
(a device wiped while it was off resumes its saved session at once, and only then hears of
the wipe). An event nobody will ever set leaves the app hanging forever; a gate that *fails*
releases every waiter with the reason. A later sign-in opens it again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["Gate"]


class Gate:
    """``set`` releases waiters; ``fail`` releases them with an error; ``clear`` re-arms."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._error: Callable[[], Exception] | None = None

    @property
    def failed(self) -> bool:
        return self._error is not None

    def set(self) -> None:
        self._error = None
        self._event.set()

    def fail(self, error: Callable[[], Exception]) -> None:
        """Release the waiters, and any later ones until :meth:`clear`, with ``error()``
        (a fresh exception each, so no two waiters share one traceback)."""
        self._error = error
        self._event.set()

    def clear(self) -> None:
        self._error = None
        self._event.clear()

    async def wait(self) -> None:
        await self._event.wait()
        if self._error is not None:
            raise self._error()
