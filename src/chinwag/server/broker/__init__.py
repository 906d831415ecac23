"""Pub/sub between server nodes. The database is the truth; the broker is a doorbell.

Backends are picked by URL scheme (``memory://``, ``redis://``) in :func:`open_broker`.
"""

from chinwag.server.broker.base import (
    Broker,
    ConversationAdvanced,
    Doorbell,
    EventsAppended,
    Listener,
    Resync,
    RevocationHint,
    SessionsRevoked,
    Signal,
    StreamsAdvanced,
    open_broker,
)

__all__ = [
    "Broker",
    "ConversationAdvanced",
    "Doorbell",
    "EventsAppended",
    "Listener",
    "Resync",
    "RevocationHint",
    "SessionsRevoked",
    "Signal",
    "StreamsAdvanced",
    "open_broker",
]
