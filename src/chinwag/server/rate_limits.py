"""Rate limits on every write and every request with a session, per session, user and app.

Each :class:`Action` has up to three rules (session, user, app), each a list of rates from
the settings. A request charges its cost (1, or the number of participants named) to every
counter of its action at once; if any counter is over its rate, the request is refused with
:class:`~chinwag.core.errors.RateLimited` and the wait until the latest exceeded window
ends. The refusal happens before any work, which is the point: a POST naming 999 users is
refused before it costs a millisecond of the database.

Counters are fixed windows aligned to the clock (:class:`~chinwag.core.rate_limit.Rate`)
kept in :mod:`~chinwag.server.rate_counters`, so every node sharing the Redis shares them.
If that storage fails, limits are off (fail open) with one warning: rate limiting must
never take the service down. While the storage is known to have failed no request waits
for it: every :attr:`RateLimits.recheck_after` seconds one request's increments go to it in
the background, and when they are counted limits are on again (a second warning says so).
Before, each recheck was a request of its own: against a hung Redis it waited the whole
timeout, the requests that arrived meanwhile queued behind it (``coalescing.py``) and
waited another, and each failure warned again, twice per recheck.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from limits import parse_many

from chinwag.clock import Clock, SystemClock
from chinwag.core.errors import RateLimited
from chinwag.core.rate_limit import Rate
from chinwag.server.rate_counters import Counters, Increment, MemoryCounters, open_counters
from chinwag.server.settings import Settings

if TYPE_CHECKING:
    from chinwag.server.handlers.auth import Authenticated
    from chinwag.server.storage.events import StoredEvent, StoredPage

__all__ = [
    "Action",
    "RateLimits",
    "ReadPage",
    "ReplayPacer",
    "Turn",
    "Turns",
    "open_rate_limits",
    "parse_rates",
]

log = logging.getLogger("chinwag.rate_limits")

Rule = tuple[str, tuple[Rate, ...]]
"""(scope, rates)"""


class Action(StrEnum):
    """What is limited; the value names the settings ``limit_<value>_per_<scope>``."""

    MESSAGES = "messages"
    CONVERSATIONS = "conversations"
    PARTICIPANTS = "participants"
    METADATA = "metadata"
    RECEIPTS = "receipts"
    TYPING = "typing"
    REQUESTS = "requests"
    READ_KIB = "read_kib"
    """KiB served in pages (message bodies, event JSON): :meth:`RateLimits.reading`."""


SCOPES = ("session", "user", "app")


def parse_rates(text: str) -> tuple[Rate, ...]:
    """A validated settings value ("20/second;600/minute", or "" for none) as rates."""
    if not text:
        return ()
    return tuple(Rate(item.amount, item.get_expiry()) for item in parse_many(text))


def _rules(settings: Settings, action: Action) -> tuple[Rule, ...]:
    """The action's non-empty (scope, rates), from ``limit_<action>_per_<scope>``."""
    if not settings.rate_limits:
        return ()
    found = (
        (scope, parse_rates(getattr(settings, f"limit_{action}_per_{scope}"))) for scope in SCOPES
    )
    return tuple((scope, rates) for scope, rates in found if rates)


def _auth_rates(settings: Settings) -> tuple[Rate, ...]:
    """The sign-in limit: ``auth_rate_burst`` per the time the rate takes to refill it."""
    if settings.auth_rate_per_second <= 0:
        return ()
    seconds = max(1, math.ceil(settings.auth_rate_burst / settings.auth_rate_per_second))
    return (Rate(settings.auth_rate_burst, seconds),)


def _per_second(rates: tuple[Rate, ...]) -> float:
    """The per-second rate among ``rates`` (0 when there is none): what a burst may
    reach within a second, which reads are paced at. A longer window alone is not
    paced: its whole budget may go at once."""
    return next((rate.amount for rate in rates if rate.seconds == 1), 0.0)


def _rest(cost: int, per_second: float) -> float:
    """A page's share of a second's budget, at most the second (a page larger than the
    budget is charged only the budget, ``Rate.charge``)."""
    return min(cost / per_second, 1.0) if per_second else 0.0


class RateLimits:
    recheck_after: float = 5.0

    def __init__(self, settings: Settings, clock: Clock, counters: Counters) -> None:
        self._clock = clock
        self._counters = counters
        self._rules = {action: _rules(settings, action) for action in Action}
        self._auth = _auth_rates(settings)
        on = settings.rate_limits
        self._platform = parse_rates(settings.limit_platform_per_key) if on else ()
        self._recipients = parse_rates(settings.limit_platform_recipients_per_key) if on else ()
        self._platform_read = parse_rates(settings.limit_platform_read_kib_per_key) if on else ()
        self._off_until = -math.inf
        self._failed = False
        """The storage failed and no recheck has succeeded since."""
        self._recheck: asyncio.Task[None] | None = None
        self.read_turns = Turns()
        """One page read per user (or platform key) at a time on this node."""
        self._user_read_rate = _per_second(dict(self._rules[Action.READ_KIB]).get("user", ()))
        """KiB a second a user's reads are paced at (:meth:`reading`)."""
        self._platform_read_rate = _per_second(self._platform_read)
        """The same per platform key (:meth:`platform_reading`)."""

    @classmethod
    def disabled(cls) -> RateLimits:
        """No limits at all (commands outside a server)."""
        off = Settings(rate_limits=False, auth_rate_per_second=0)
        return cls(off, SystemClock(), MemoryCounters(SystemClock()))

    async def charge(
        self, action: Action, caller: Authenticated, cost: int = 1, *, refuse: bool = True
    ) -> None:
        """Count ``cost`` against the caller's session, user and app; 429 when over (unless
        ``refuse`` is false: the work is done, and only later requests are refused)."""
        rules = self._rules[action]
        if not rules or cost <= 0:
            return
        owners = {
            "session": caller.session.id,
            "user": str(caller.user.pk),
            "app": caller.app_id,
        }
        charged = [(f"{s}:{owners[s]}", rates) for s, rates in rules]
        await self._charge(str(action), charged, cost, refuse=refuse)

    @contextlib.asynccontextmanager
    async def reading(
        self, caller: Authenticated, *, item_cost: int = 1024
    ) -> AsyncIterator[ReadPage]:
        """A page read charged to the caller's read budget (:attr:`Action.READ_KIB`) by
        what the body records in the yielded :class:`ReadPage`.

        Its first KiB is charged before any work, and refused (429) once a window's
        budget is spent; a page's size is known only once it is read, so the rest is
        charged after, never refused: the work is done, and the next request pays. The
        request limit alone let one user ask for 200 pages of 1 MiB a second, each ~10 ms
        of the server's CPU. Each page item also counts ``item_cost`` bytes: 500 one-line
        messages are 128 KB but ~7 ms of CPU, so by bytes alone a user could ask for 64
        such pages a second.

        A user's reads take turns on the node (:attr:`read_turns`), each after the one
        before has rested its share of the budget's rate (1 MiB of 8 MiB a second: 125
        ms). Readers refused until a second began all read their pages at its start,
        back to back: eight, 8 MiB in which the node served nobody else, and ~600
        refusals a second answered besides (a pair's p99 68-161 ms; paced 13-27). A
        lone reader never waits; readers of one user at once share the rate the budget
        allows them anyway, waiting instead of asking again."""
        async with self.read_turns.turn(f"user:{caller.user.pk}") as turn:
            await self.charge(Action.READ_KIB, caller)
            page = ReadPage()
            yield page
            cost = page.kib(item_cost)
            await self.charge(Action.READ_KIB, caller, cost - 1, refuse=False)
            turn.rest(_rest(cost, self._user_read_rate))

    @contextlib.asynccontextmanager
    async def platform_reading(self, key_id: str) -> AsyncIterator[ReadPage]:
        """:meth:`reading` for a platform API page, per API key."""
        async with self.read_turns.turn(f"key:{key_id}") as turn:
            owners = [(f"key:{key_id}", self._platform_read)] if self._platform_read else []
            if owners:
                await self._charge("platform read_kib", owners, 1)
            page = ReadPage()
            yield page
            if owners:
                cost = page.kib(1024)
                await self._charge("platform read_kib", owners, cost - 1, refuse=False)
                turn.rest(_rest(cost, self._platform_read_rate))

    async def charge_platform(self, key_id: str) -> None:
        """A platform API request, per API key."""
        if self._platform:
            await self._charge("platform", [(f"key:{key_id}", self._platform)], 1)

    async def charge_platform_recipients(self, key_id: str, cost: int) -> None:
        """What a platform request fans out (``cost`` recipients), per API key.

        The request limit counts an announcement to 1,000 users as one request; this budget
        counts the 1,000 stream positions it writes, so one key cannot buy most of the
        database's write time with a few cheap-looking requests."""
        if self._recipients and cost > 0:
            await self._charge("platform recipients", [(f"key:{key_id}", self._recipients)], cost)

    async def charge_address(self, address: str) -> None:
        """The sign-in endpoints' limit, per client address."""
        if self._auth:
            await self._charge("auth", [(f"address:{address}", self._auth)], 1)

    async def _charge(
        self,
        name: str,
        owners: list[tuple[str, tuple[Rate, ...]]],
        cost: int,
        *,
        refuse: bool = True,
    ) -> None:
        now = self._clock.now()
        if now < self._off_until:
            return
        checks = [(rate, owner) for owner, rates in owners for rate in rates]
        increments: list[Increment] = [
            (
                f"{name}:{owner}:{rate.seconds}:{rate.window(now)}",
                rate.seconds + 1,
                rate.charge(cost),
            )
            for rate, owner in checks
        ]
        if self._failed:
            self._start_recheck(increments)
            return
        try:
            totals = await self._counters.incr_many(increments)
        except Exception as exc:  # storage down: limits off for a while, never a 500
            self._fail_open(exc, now)
            return
        if not refuse:
            return
        over = zip(checks, totals, strict=True)
        waits = [rate.retry_after(now) for (rate, _), total in over if total > rate.amount]
        if waits:
            raise RateLimited(
                retry_after=round(max(waits), 3),
                message=f"Rate limit on {name} reached; retry in {math.ceil(max(waits))} s.",
            )

    def _fail_open(self, exc: Exception, now: float) -> None:
        """Limits off until a recheck succeeds. Warn once per outage: the requests that
        were waiting on the storage together all fail together."""
        if not self._failed:
            log.warning(
                "rate limit storage failed (%s: %s); limits are off until it answers"
                " (tried again every %.0f s)",
                type(exc).__name__,
                str(exc)[:200],
                self.recheck_after,
            )
        self._failed = True
        self._off_until = now + self.recheck_after

    def _start_recheck(self, increments: list[Increment]) -> None:
        """Count this request's increments in the background (one recheck at a time);
        the request itself goes on unlimited, as every request does while failed."""
        if self._recheck is None or self._recheck.done():
            self._recheck = asyncio.create_task(self._rechecked(increments))

    async def _rechecked(self, increments: list[Increment]) -> None:
        try:
            await self._counters.incr_many(increments)
        except Exception:
            self._off_until = self._clock.now() + self.recheck_after
            return
        self._failed = False
        log.warning("rate limit storage answers again; limits are on")

    async def close(self) -> None:
        if self._recheck is not None:
            self._recheck.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recheck
        await self._counters.close()


@dataclass(slots=True)
class ReadPage:
    """What a page read served (:meth:`RateLimits.reading`): bytes, and items."""

    served: int = 0
    items: int = 0

    def of_events(self, events: Sequence[StoredEvent]) -> None:
        """A page of the user's stream: its event JSON, each event an item."""
        self.served = sum(len(event.event_json) for event in events)
        self.items = len(events)

    def kib(self, item_cost: int) -> int:
        """What the page costs: its bytes and ``item_cost`` per item, in KiB rounded up."""
        return -(-(self.served + self.items * item_cost) // 1024)


@dataclass(slots=True)
class _Queue:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    """Holder and waiters."""
    free_at: float = 0.0
    """Loop time before which the next holder does not start."""


@dataclass(slots=True)
class Turn:
    """A holder's turn (:meth:`Turns.turn`)."""

    _queue: _Queue

    def rest(self, seconds: float) -> None:
        """The next holder starts no sooner than ``seconds`` from now."""
        self._queue.free_at = asyncio.get_running_loop().time() + seconds


class Turns:
    """Per key, one holder at a time in arrival order, each starting no sooner than the
    rest its predecessor left (:meth:`Turn.rest`); at most :attr:`max_waiting` holding or
    waiting, the next refused. A key's queue lives only while someone is in it or its
    rest lasts (a node keeps none for idle users)."""

    __slots__ = ("_queues", "max_waiting")

    def __init__(self, max_waiting: int = 16) -> None:
        self._queues: dict[str, _Queue] = {}
        self.max_waiting = max_waiting

    def __len__(self) -> int:
        return len(self._queues)

    @contextlib.asynccontextmanager
    async def turn(self, key: str) -> AsyncIterator[Turn]:
        queue = self._queues.setdefault(key, _Queue())
        loop = asyncio.get_running_loop()
        if queue.users >= self.max_waiting:
            wait = max(queue.free_at - loop.time(), 0.0) + 0.1 * queue.users
            raise RateLimited(
                retry_after=round(wait, 3),
                message=f"Too many reads at once; retry in {math.ceil(wait)} s.",
            )
        queue.users += 1
        try:
            async with queue.lock:
                delay = queue.free_at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                yield Turn(queue)
        finally:
            queue.users -= 1
            if not queue.users:
                self._forget(key, queue)

    def _forget(self, key: str, queue: _Queue) -> None:
        """Drop an empty queue, once its rest is over: a reader that comes back a moment
        later (a refused request's next, one round trip on) still waits for the rest."""
        if queue.users or self._queues.get(key) is not queue:
            return
        loop = asyncio.get_running_loop()
        if queue.free_at > loop.time():
            loop.call_at(queue.free_at, self._forget, key, queue)
        else:
            del self._queues[key]


class ReplayPacer:
    """A socket's replay paced by its user's read budget (``connection.ReplayBudget``).

    The socket asks for nothing after it opens, so there is nothing to refuse: its replay
    waits until the budget has room. Before, a user reopening sockets at cursor 0 had a
    page of its stream read per socket (~20 ms of CPU for 1 MiB of events), unlimited, in
    the queue live deliveries read through: a legitimate pair's median reached 1.9 s.

    A user's replay pages take turns on the node with its other reads, paced
    (:meth:`RateLimits.reading`): eight sockets waiting for the budget all woke when a
    second began and read their pages back to back, 8 MiB in ~200 ms in which the node
    served nobody else, every second (a pair's p99 201-260 ms; in paced turns 18-25)."""

    __slots__ = ("_caller", "_limits")

    def __init__(self, limits: RateLimits, caller: Authenticated) -> None:
        self._limits = limits
        self._caller = caller

    async def paced(self, read: Callable[[], Awaitable[StoredPage]]) -> StoredPage:
        while True:
            try:
                async with self._limits.reading(self._caller) as served:
                    page = await read()
                    served.of_events(page.events)
                return page
            except RateLimited as refused:
                await asyncio.sleep(max(refused.retry_after, 0.05))


def open_rate_limits(settings: Settings, clock: Clock, deployment_id: str) -> RateLimits:
    """Counters at ``rate_limit_url``, else beside the broker (its Redis, its prefix).

    Keys are ``<broker_prefix>:<deployment_id>:limits:…``. The deployment id comes from the
    database (``services.load_deployment_id``), so every node of one deployment counts
    together, while two deployments sharing one Redis count apart even with the same
    prefix: their session ids differ, but user pks (1, 2, …) and client addresses do not.
    """
    url = settings.rate_limit_url or settings.broker_url
    prefix = f"{settings.broker_prefix}:{deployment_id}:limits"
    return RateLimits(settings, clock, open_counters(url, prefix=prefix, clock=clock))
