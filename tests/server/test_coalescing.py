"""The coalescer under the batched catch-up reads and rate-limit counters
(``server/coalescing.py``): an ask that finds fewer than ``in_flight`` calls out goes at
once, alone; what is asked while that many are out goes together after one returns, in
order."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from chinwag.server.coalescing import Coalescer


class Backend:
    """Answers each ask with its double, one batch at a time, when the test lets it."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.failure: Exception | None = None

    async def run(self, asks: Sequence[int]) -> list[int]:
        self.batches.append(list(asks))
        await asyncio.sleep(0)  # a round trip always gives the loop a turn
        await self.release.wait()
        if self.failure is not None:
            raise self.failure
        return [ask * 2 for ask in asks]


async def test_a_lone_ask_goes_at_once_and_the_asks_behind_it_go_together() -> None:
    backend = Backend()
    together = Coalescer(backend.run, max_batch=100)
    assert await together(7) == 14
    assert backend.batches == [[7]]
    asks = [together(n) for n in range(10)]
    assert await asyncio.gather(*asks) == [n * 2 for n in range(10)]
    # One call out at a time by default: the first went alone, the rest after it, together.
    assert backend.batches == [[7], [0], list(range(1, 10))]


async def test_with_two_in_flight_the_first_two_go_side_by_side() -> None:
    backend = Backend()
    together = Coalescer(backend.run, max_batch=100, in_flight=2)
    asks = [together(n) for n in range(10)]
    assert await asyncio.gather(*asks) == [n * 2 for n in range(10)]
    assert backend.batches == [[0], [1], list(range(2, 10))]


async def test_a_lone_ask_runs_in_its_callers_task() -> None:
    """No task and no turn of the loop between the ask and its call at low load."""
    seen: list[asyncio.Task[object] | None] = []

    async def run(asks: Sequence[int]) -> list[int]:
        seen.append(asyncio.current_task())
        return list(asks)

    together = Coalescer(run, max_batch=10)
    assert await together(1) == 1
    assert seen == [asyncio.current_task()]


async def test_asks_made_while_a_batch_runs_go_in_the_next_and_batches_are_bounded() -> None:
    backend = Backend()
    backend.release.clear()
    sizes: list[int] = []
    together = Coalescer(backend.run, max_batch=4, in_flight=1, observe=sizes.append)
    first = asyncio.ensure_future(together(0))
    await asyncio.sleep(0)
    assert backend.batches == [[0]]  # out, held
    later = [asyncio.ensure_future(together(n)) for n in range(1, 7)]
    await asyncio.sleep(0)
    assert len(backend.batches) == 1  # one batch at a time
    backend.release.set()
    assert await first == 0
    assert await asyncio.gather(*later) == [2, 4, 6, 8, 10, 12]
    assert backend.batches == [[0], [1, 2, 3, 4], [5, 6]]
    assert sizes == [1, 4, 2]


async def test_a_failed_batch_fails_each_of_its_asks_and_the_next_batch_runs() -> None:
    backend = Backend()
    backend.failure = ConnectionError("gone")
    together = Coalescer(backend.run, max_batch=10)
    failed = await asyncio.gather(*(together(n) for n in range(3)), return_exceptions=True)
    assert [type(f) for f in failed] == [ConnectionError] * 3
    backend.failure = None
    assert await together(5) == 10


async def test_a_caller_cancelled_does_not_cut_the_others_answer() -> None:
    backend = Backend()
    backend.release.clear()
    together = Coalescer(backend.run, max_batch=10, in_flight=1)
    asks = [asyncio.ensure_future(together(n)) for n in range(3)]
    await asyncio.sleep(0)
    assert backend.batches == [[0]]  # the first is out, the others wait behind it
    asks[0].cancel()  # its call is cut: the others still go
    with pytest.raises(asyncio.CancelledError):
        await asks[0]
    backend.release.set()
    assert await asyncio.gather(*asks[1:]) == [2, 4]
    assert backend.batches == [[0], [1, 2]]
    asks = [asyncio.ensure_future(together(n)) for n in range(3, 6)]
    backend.release.clear()
    await asyncio.sleep(0)
    asks[1].cancel()  # a waiting one cancelled: the call it is in answers the rest
    backend.release.set()
    assert await asks[0] == 6
    assert await asks[2] == 10
    assert backend.batches[-1] == [4, 5]
