"""Whether a device has a live socket, as the push worker on any node can see it.

The hub knows only this node's sockets, so the node writes it where every node looks:
``push_tokens.online_until``, a lease renewed every third of ``push_online_lease`` for the
sessions connected here, set on connect and cleared when a session's last socket here
closes. A node that dies without clearing it costs at most one lease of missed pushes.
Only sessions with a push token have a row, so for everyone else each write changes
nothing.
"""

from __future__ import annotations

import asyncio
import logging

from chinwag.server.services import Services
from chinwag.server.storage import push as push_store
from chinwag.server.storage.failures import log_failure

__all__ = ["device_connected", "device_disconnected", "renew_forever"]

log = logging.getLogger("chinwag.push")


async def device_connected(services: Services, session_id: str) -> None:
    until = services.now() + services.settings.push_online_lease
    try:
        async with services.db.transaction() as tx:
            await push_store.mark_online(tx.conn, [session_id], until=until)
    except Exception:
        log_failure(log, "could not mark a device online")


async def device_disconnected(services: Services, session_id: str) -> None:
    if services.hub.sockets_of_session(session_id):
        return
    try:
        async with services.db.transaction() as tx:
            await push_store.mark_offline(tx.conn, session_id)
    except Exception:
        log_failure(log, "could not mark a device offline")


async def renew_forever(services: Services) -> None:
    """Renew the online leases of this node's sessions until cancelled."""
    lease = services.settings.push_online_lease
    while True:
        await asyncio.sleep(lease / 3)
        sessions = services.hub.session_ids()
        try:
            async with services.db.transaction() as tx:
                await push_store.mark_online(tx.conn, sessions, until=services.now() + lease)
        except Exception:
            log_failure(log, "could not renew online devices; retrying")
