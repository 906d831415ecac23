"""Proactive refresh: renew a session before it expires, so an active user never sees 4004.

The token provider is asked at about 80 % of the session's life (jittered, so a fleet of
devices signed in together does not come back together), through the authenticator's one
flight: a refresh and a 401 arriving at once make one provider call. The old session
serves until the new one replaces it, then is ended on the server. A refresh that fails
leaves the old session in use and is tried again, sooner each time, until the session
expires and the ordinary challenge takes over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from chinwag.client.auth import Authenticator

__all__ = ["REFRESH_AT", "refresh_forever"]

log = logging.getLogger("chinwag.client")

REFRESH_AT = 0.8
"""The fraction of a session's life after which the next one is fetched."""
_JITTER = 0.1
_RETRY_FLOOR = 1.0


async def refresh_forever(
    auth: Authenticator,
    changed: asyncio.Event,
    *,
    rand: Callable[[], float],
    clock: Callable[[], float] = time.time,
) -> None:
    """Run until cancelled; ``changed`` is set whenever the authenticator's session changes."""
    while True:
        session = auth.session
        if session is None or session.user.anonymous:
            await _wait(changed, None)
            continue
        fraction = REFRESH_AT + (rand() - 0.5) * _JITTER
        delay = session.refresh_due(fraction) - clock()
        if await _wait(changed, max(0.0, delay)):
            continue  # a new session: schedule from it
        if auth.session is not session:
            continue
        try:
            await auth.refresh()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            left = session.expires_at - session.clock_offset - clock()
            log.info("session refresh failed (%s); %.0f s left", exc, left)
            await _wait(changed, max(_RETRY_FLOOR, left / 4))


async def _wait(changed: asyncio.Event, delay: float | None) -> bool:
    """Wait for a session change (True) or the timeout (False)."""
    try:
        async with asyncio.timeout(delay):
            await changed.wait()
    except TimeoutError:
        return False
    changed.clear()
    return True
