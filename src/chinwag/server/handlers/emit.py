"""What an appended event owes the outside world once its transaction commits.

In a module of its own because every handler that appends events needs it, the session
and identity handlers among them, which the conversation handlers import (through
``auth``): living in ``conversations.py`` it could not serve them.
"""

from __future__ import annotations

from chinwag.server.broker import EventsAppended
from chinwag.server.services import Services
from chinwag.server.storage.database import Transaction
from chinwag.server.storage.events import Appended

__all__ = ["emit"]


def emit(services: Services, tx: Transaction, appended: Appended) -> None:
    """Ring the doorbell for an appended event once (and only if) the transaction commits,
    and wake the delivery workers if it wrote rows for them."""
    if appended.outbox:
        tx.after_commit(services.outbox_written)
    if appended.targets:
        doorbell = EventsAppended(event_json=appended.event_json, targets=appended.targets)
        tx.after_commit(lambda: services.publish(doorbell))
