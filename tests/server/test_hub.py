"""The hub's bookkeeping, without sockets: groups by user and session, counted and O(1)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from chinwag.server.broker import EventsAppended, RevocationHint, SessionsRevoked, StreamsAdvanced
from chinwag.server.hub import SMALL_GROUP, Hub


@dataclass(eq=False)
class FakeConnection:
    """A LiveConnection that records what the hub offers it."""

    user_pk: int
    session_id: str
    app_id: str = "app"
    expires_at: float = float("inf")
    offered: list[int] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    hinted: list[int] = field(default_factory=list)

    def offer_event(self, pos: int, frame: bytes) -> None:
        self.offered.append(pos)

    def hint(self, pos: int) -> None:
        self.hinted.append(pos)

    def offer_signal(self, frame: bytes) -> None: ...

    def resync(self) -> None: ...

    def revoke(self, reason: str, *, wipe: bool = False) -> None:
        self.revoked.append(reason)

    def going_away(self) -> None: ...


async def test_many_sockets_of_one_session_register_in_linear_time() -> None:
    hub = Hub()
    conns = [FakeConnection(1, "s") for _ in range(40_000)]
    started = time.perf_counter()
    for conn in conns:
        hub.register(conn)
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, elapsed  # a tuple copied per socket takes 4 s or more here
    assert hub.sockets_of_session("s") == hub.sockets_of_user(1) == 40_000
    for conn in conns:
        hub.unregister(conn)
    assert hub.sockets_of_session("s") == hub.connection_count() == 0


async def test_groups_small_and_large_get_every_offer_and_shrink_to_nothing() -> None:
    hub = Hub()
    small = [FakeConnection(1, f"a{n}") for n in range(2)]
    large = [FakeConnection(2, "b") for _ in range(SMALL_GROUP + 3)]
    for conn in [*small, *large]:
        hub.register(conn)
    hub.register(large[0])  # registering twice changes nothing
    assert (hub.sockets_of_user(1), hub.sockets_of_user(2)) == (2, SMALL_GROUP + 3)
    hub.dispatch(EventsAppended(b"{}", ((1, 5), (2, 7))))
    hub.dispatch(SessionsRevoked(session_ids=("b",), reason="logout"))
    assert [c.offered for c in small] == [[5], [5]]
    assert all(c.offered == [7] and c.revoked == ["logout"] for c in large)
    hub.unregister(large[3])
    hub.unregister(large[3])  # twice is harmless
    assert hub.sockets_of_session("b") == SMALL_GROUP + 2
    for conn in [*small, *large]:
        hub.unregister(conn)
    assert hub.connection_count() == 0
    await hub.wait_empty()


async def test_other_nodes_positions_are_hints_and_their_revocations_are_not_for_the_hub() -> None:
    hub = Hub()
    alice, bob = FakeConnection(1, "a"), FakeConnection(2, "b")
    for conn in (alice, bob):
        hub.register(conn)
    hub.dispatch(StreamsAdvanced(((1, 4), (3, 9))))
    hub.dispatch(RevocationHint(("a", "b")))  # the store decides (server/doorbells.py)
    assert (alice.hinted, bob.hinted, alice.offered) == ([4], [], [])
    assert alice.revoked == bob.revoked == []
