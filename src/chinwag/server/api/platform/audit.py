"""The audit log of platform and CLI actions.

# stand-in: replaced by the audit module on merge (same signature; it writes a table row)
"""

from __future__ import annotations

import logging

from chinwag.server.api.platform.auth import PlatformCaller
from chinwag.server.storage.database import Transaction

__all__ = ["record"]

log = logging.getLogger("chinwag.audit")


async def record(
    tx: Transaction, caller: PlatformCaller | str, action: str, target: str, address: str
) -> None:
    """Note ``action`` on ``target`` by ``caller`` from ``address`` (never a secret)."""
    who = caller if isinstance(caller, str) else caller.key_id
    log.info("audit %s %s by %s from %s", action, target, who, address)
