"""The audit log of platform and CLI actions.

# stand-in: replaced by the audit module on merge
The real module writes an ``audit_log`` row in ``tx``; this one keeps the signature so
callers are in place, and records nothing.
"""

from __future__ import annotations

from typing import Any

from chinwag.server.storage.database import Transaction

__all__ = ["record"]


async def record(tx: Transaction, caller: Any, action: str, target: str, address: str) -> None:
    """Note ``action`` on ``target`` by ``caller`` from ``address``; never pass a secret."""
    del tx, caller, action, target, address
