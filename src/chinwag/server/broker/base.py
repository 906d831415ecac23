"""The broker contract and the doorbell messages it carries.

Nothing depends on a doorbell arriving: a node that misses one still serves every event,
because connections read the store from their cursor whenever they see a gap. Doorbells
only make delivery fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

__all__ = [
    "Broker",
    "Doorbell",
    "EventsAppended",
    "Resync",
    "SessionsRevoked",
    "Signal",
    "decode",
    "encode",
    "open_broker",
]


@dataclass(frozen=True, slots=True)
class EventsAppended:
    """Readers' streams advanced: (user_pk, position) each, with the shared event JSON."""

    event_json: bytes
    targets: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class Signal:
    """An ephemeral frame (typing) for users' live connections; never stored."""

    user_pks: tuple[int, ...]
    frame: bytes
    exclude_session: str | None = None


@dataclass(frozen=True, slots=True)
class SessionsRevoked:
    """These sessions ended: their sockets get the reason and are closed (``session_wiped``
    when ``wipe``: the devices must delete the session's local data)."""

    session_ids: tuple[str, ...]
    reason: str
    wipe: bool = False


@dataclass(frozen=True, slots=True)
class Resync:
    """Local only, never published: the broker lost its subscription for a while, so
    doorbells may have been missed; every live connection should check the store."""


Doorbell = EventsAppended | Signal | SessionsRevoked | Resync
Listener = Callable[[Doorbell], None]


def encode(message: Doorbell) -> bytes:
    body: dict[str, Any]
    if isinstance(message, EventsAppended):
        body = {"k": "e", "j": message.event_json.decode(), "t": message.targets}
    elif isinstance(message, Signal):
        body = {
            "k": "s",
            "u": message.user_pks,
            "f": message.frame.decode(),
            "x": message.exclude_session,
        }
    elif isinstance(message, SessionsRevoked):
        body = {"k": "r", "s": message.session_ids, "r": message.reason, "w": message.wipe}
    else:
        raise ValueError("Resync is delivered locally by a broker and never published")
    return orjson.dumps(body)


def decode(raw: bytes) -> Doorbell:
    body = orjson.loads(raw)
    if body["k"] == "e":
        return EventsAppended(
            event_json=body["j"].encode(), targets=tuple((int(a), int(b)) for a, b in body["t"])
        )
    if body["k"] == "s":
        return Signal(
            user_pks=tuple(body["u"]), frame=body["f"].encode(), exclude_session=body["x"]
        )
    # "w" is absent from the doorbells of nodes older than the wipe flag.
    return SessionsRevoked(
        session_ids=tuple(body["s"]), reason=body["r"], wipe=bool(body.get("w", False))
    )


class Broker(Protocol):
    async def start(self, listener: Listener) -> None:
        """Begin delivering every node's doorbells (this node's included) to ``listener``."""
        ...

    def publish(self, message: Doorbell) -> None:
        """Ring the doorbell; never blocks, never raises for delivery problems."""
        ...

    async def close(self) -> None: ...


def open_broker(url: str, *, prefix: str = "chinwag") -> Broker:
    if url.startswith("memory://"):
        from chinwag.server.broker.memory import MemoryBroker

        return MemoryBroker()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from chinwag.server.broker.redis import RedisBroker

        return RedisBroker(url, channel=f"{prefix}:doorbell")
    raise ValueError(
        f"Unsupported broker URL scheme {url.split(':', 1)[0]!r}; "
        "use memory:// or redis://host:6379/0"
    )
