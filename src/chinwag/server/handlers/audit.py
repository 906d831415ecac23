"""stand-in: replaced by the API-key module on merge (engineer A's audit log).

Same signature as the real ``audit.record``: who (a platform caller, or ``"cli"``), what,
on which target, from where. This stand-in only logs it; it never receives a secret.
"""

from __future__ import annotations

import logging
from typing import Any

from chinwag.server.storage.database import Transaction

__all__ = ["record"]

log = logging.getLogger("chinwag.audit")


async def record(
    tx: Transaction, caller: Any, action: str, target: str, address: str | None
) -> None:
    who = caller if isinstance(caller, str) else getattr(caller, "key_id", "?")
    log.info("audit caller=%s action=%s target=%s address=%s", who, action, target, address)
