"""The broker contract and the doorbell messages it carries.

Nothing depends on a doorbell arriving: a node that misses one still serves every event,
because connections read the store from their cursor whenever they see a gap, and the broker
repairs what it knows it missed (:class:`Resync`). Doorbells only make delivery fast.

A node hands its own doorbells to its own connections directly (``Services.publish``); the
broker carries them to the *other* nodes, in the reduced, untrusted form
:mod:`chinwag.server.broker.wire` defines: positions, never events; session ids to look up,
never a verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from chinwag.core.protocol import typing_frame
from chinwag.core.typing import TypingState

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


@dataclass(frozen=True, slots=True)
class EventsAppended:
    """Readers' streams advanced: (user_pk, position) each, with the shared event JSON.

    Local only: other nodes hear it as :class:`StreamsAdvanced` and read the event from the
    store, so nothing a broker carries ever becomes an event a device stores."""

    event_json: bytes
    targets: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class StreamsAdvanced:
    """Another node says these users' streams reached these positions: a hint to read the
    store past each live connection's cursor (a false one costs one read)."""

    targets: tuple[tuple[int, int], ...]
    removed_from: str | None = None
    """The conversation whose participants were removed, when that was the event: typing
    relays re-read its members (an ephemeral concern the store alone cannot prompt)."""


@dataclass(frozen=True, slots=True)
class ConversationAdvanced:
    """A conversation's log reached ``position`` (a message to a big conversation, written
    once): each node merges it into the streams of the members with sockets there and
    offers them the events (``server/live_merge.py``). Only a prompt: what is merged and
    delivered is what the store holds, so a false one costs a merge that finds nothing."""

    conversation_id: str
    position: int


@dataclass(frozen=True, slots=True)
class Signal:
    """A typing change for users' live connections; never stored. Carried as fields, not as
    a frame, so a broker can only ever produce a well-formed typing frame."""

    user_pks: tuple[int, ...]
    conversation_id: str
    user_id: str
    state: TypingState
    exclude_session: str | None = None

    @property
    def frame(self) -> bytes:
        return typing_frame(self.conversation_id, self.user_id, self.state)


@dataclass(frozen=True, slots=True)
class SessionsRevoked:
    """These sessions ended: their sockets get the reason and are closed (``session_wiped``
    when ``wipe``: the devices must delete the session's local data). Local only: other
    nodes hear a :class:`RevocationHint`."""

    session_ids: tuple[str, ...]
    reason: str
    wipe: bool = False


@dataclass(frozen=True, slots=True)
class RevocationHint:
    """Another node says these sessions ended. Closing a socket (4003 makes a device wipe
    itself) is decided by the store: the receiving node looks the sessions up first."""

    session_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Resync:
    """Doorbells may have been missed (this node was deaf, or a node could not publish):
    every live connection should check the store."""


Doorbell = (
    EventsAppended
    | StreamsAdvanced
    | ConversationAdvanced
    | Signal
    | SessionsRevoked
    | RevocationHint
    | Resync
)
Listener = Callable[[Doorbell], None]


class Broker(Protocol):
    async def start(self, listener: Listener) -> None:
        """Begin delivering *other* nodes' doorbells to ``listener`` (and a local
        :class:`Resync` whenever some may have been missed). Returns at once, even when the
        broker's server is unreachable: a node serves without it."""
        ...

    def publish(self, message: Doorbell) -> None:
        """Ring the other nodes' doorbells; never blocks, never raises for delivery
        problems (a lost doorbell is repaired with a :class:`Resync`)."""
        ...

    @property
    def connected(self) -> bool:
        """Whether doorbells are being heard (for readiness checks and tests)."""
        ...

    async def close(self) -> None: ...


def open_broker(url: str, *, prefix: str = "chinwag", deployment_id: str = "local") -> Broker:
    """The broker for ``url``; channels are ``<prefix>:<deployment_id>:doorbell``."""
    if url.startswith("memory://"):
        from chinwag.server.broker.memory import MemoryBroker

        return MemoryBroker()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from chinwag.server.broker.redis import RedisBroker

        return RedisBroker(url, prefix=prefix, deployment_id=deployment_id)
    raise ValueError(
        f"Unsupported broker URL scheme {url.split(':', 1)[0]!r}; "
        "use memory:// or redis://host:6379/0"
    )
