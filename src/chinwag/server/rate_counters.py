"""Where rate-limit counters live: this process's memory, or Redis shared by every node.

A counter is ``incr(key, expiry, amount) -> new total`` over a fixed window, the primitive
of ``limits``' storage (``INCRBY``, and ``EXPIRE`` when the key is new). On Redis the
increments of one request go out as one script call, one round trip: a message charges
ten counters (messages and requests, per session, user and app, some with two windows),
and ``limits``' storage, which has no batched increment, sent them as ten concurrent
script calls on ten pooled connections: ~7 % of a node's CPU at 50 msg/s across two nodes
(``bench/README.md``). The increments of requests that arrive while a call is out share
the next call (``coalescing.py``): under load a node sends a few calls where it
sent one per request, and a request that finds none out goes at once, as before.

The script does what ``limits``' own ``incr_expire.lua`` does per key, in order, and the
keys are ``<prefix>:<key>`` as ``limits`` names them, so nodes of either kind count
together during a rolling upgrade. All of one call's keys go to one Redis (chinwag does
not shard its Redis). The pool is ours, so shutdown closes it and a dead Redis fails in
half a second instead of after redis-py's retries. ``memory://`` is
:class:`MemoryCounters` rather than ``limits``' memory storage: that one scans every key
on every increment (1.4 ms per hit at 10,000 keys, measured), and a busy single node has
that many.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Protocol

from chinwag.clock import Clock
from chinwag.server.coalescing import Coalescer

__all__ = ["Counters", "Increment", "MemoryCounters", "RedisCounters", "open_counters"]

Increment = tuple[str, int, int]
"""(key, expiry seconds, amount)."""

_TIMEOUT = 0.5

MAX_REQUESTS_PER_CALL = 64
"""Requests whose increments share one script call at most (a message's are ten)."""


class Counters(Protocol):
    async def incr_many(self, increments: Sequence[Increment]) -> list[int]:
        """Add each amount to its key (created with the expiry); the new totals, in order."""
        ...

    async def close(self) -> None: ...


class MemoryCounters:
    """Counters in a dict; expired keys leave through a heap, O(log n) per new key."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._counts: dict[str, int] = {}
        self._expiries: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._counts)

    async def incr_many(self, increments: Sequence[Increment]) -> list[int]:
        now = self._clock.now()
        self._expire(now)
        totals = []
        for key, expiry, amount in increments:
            total = self._counts.get(key)
            if total is None:
                total = 0
                heapq.heappush(self._expiries, (now + expiry, key))
            total += amount
            self._counts[key] = total
            totals.append(total)
        return totals

    def _expire(self, now: float) -> None:
        while self._expiries and self._expiries[0][0] <= now:
            _, key = heapq.heappop(self._expiries)
            self._counts.pop(key, None)

    async def close(self) -> None:
        self._counts.clear()
        self._expiries.clear()


_INCR_MANY = """
local totals = {}
for i, key in ipairs(KEYS) do
    local amount = tonumber(ARGV[2 * i])
    local total = redis.call("INCRBY", key, amount)
    if total == amount then
        redis.call("EXPIRE", key, ARGV[2 * i - 1])
    end
    totals[i] = total
end
return totals
"""
"""``incr_many`` in one call: KEYS the counters, ARGV (expiry, amount) per key."""


class RedisCounters:
    """Counters in Redis; the increments of the requests of a moment in one script call."""

    def __init__(self, url: str, *, prefix: str) -> None:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self._prefix = prefix
        self._pool = aioredis.ConnectionPool.from_url(
            url,
            socket_connect_timeout=_TIMEOUT,
            socket_timeout=_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
        )
        self._redis = aioredis.Redis(connection_pool=self._pool)
        self._incr_many = self._redis.register_script(_INCR_MANY)
        self._together: Coalescer[Sequence[Increment], list[int]] = Coalescer(
            self._incr_together, max_batch=MAX_REQUESTS_PER_CALL
        )

    async def incr_many(self, increments: Sequence[Increment]) -> list[int]:
        return await self._together(increments)

    async def _incr_together(self, batches: Sequence[Sequence[Increment]]) -> list[list[int]]:
        """The increments of requests that arrived together, in one script call: it runs
        them in order, as one call each would have."""
        keys = [f"{self._prefix}:{key}" for increments in batches for key, _, _ in increments]
        args: list[int] = []
        for increments in batches:
            for _, expiry, amount in increments:
                args += (expiry, amount)
        totals = [int(total) for total in await self._incr_many(keys=keys, args=args)]
        answers, start = [], 0
        for increments in batches:
            answers.append(totals[start : start + len(increments)])
            start += len(increments)
        return answers

    async def close(self) -> None:
        await self._redis.aclose()
        await self._pool.aclose()


def open_counters(url: str, *, prefix: str, clock: Clock) -> Counters:
    """``memory://`` or a Redis URL (``redis://``, ``rediss://``, ``unix://``)."""
    if url.startswith("memory://"):
        return MemoryCounters(clock)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisCounters(url, prefix=prefix)
    raise ValueError(
        f"Unsupported rate limit URL scheme {url.split(':', 1)[0]!r}; "
        "use memory:// or redis://host:6379/0"
    )
