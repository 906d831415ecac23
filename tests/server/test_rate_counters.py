"""Counter storage (memory and real Redis) and the RateLimits arithmetic, without a server."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pydantic
import pytest
import redis.asyncio as aioredis

from chinwag.clock import ManualClock
from chinwag.core.errors import RateLimited
from chinwag.server.rate_counters import MemoryCounters, RedisCounters, open_counters
from chinwag.server.rate_limits import Action, RateLimits, parse_rates
from chinwag.server.settings import Settings
from tests.redis_server import redis_server

REDIS_URL = "redis://127.0.0.1:6379/0"


def _caller(session: str = "s1", user_pk: int = 7, app_id: str = "app") -> Any:
    return SimpleNamespace(
        session=SimpleNamespace(id=session), user=SimpleNamespace(pk=user_pk), app_id=app_id
    )


def _limits(clock: ManualClock, **settings: Any) -> RateLimits:
    return RateLimits(Settings(**settings), clock, MemoryCounters(clock))


async def test_memory_counters_add_and_expire() -> None:
    clock = ManualClock(1000.0)
    counters = MemoryCounters(clock)
    assert await counters.incr_many([("a", 10, 1), ("b", 5, 3), ("a", 10, 2)]) == [1, 3, 3]
    clock.advance(5)
    assert await counters.incr_many([("a", 10, 1)]) == [4]
    assert len(counters) == 1  # b expired
    clock.advance(5)
    assert await counters.incr_many([("a", 10, 1)]) == [1]


async def test_redis_counters_are_shared_per_prefix_and_expire() -> None:
    prefix = f"chinwag_test_{secrets.token_hex(6)}:limits"
    one, two = RedisCounters(REDIS_URL, prefix=prefix), RedisCounters(REDIS_URL, prefix=prefix)
    other = RedisCounters(REDIS_URL, prefix=prefix + "x")
    admin = aioredis.from_url(REDIS_URL)
    try:
        assert await one.incr_many([("k", 60, 2), ("j", 60, 1)]) == [2, 1]
        assert await two.incr_many([("k", 60, 3)]) == [5]
        assert await other.incr_many([("k", 60, 1)]) == [1]
        assert 0 < await admin.ttl(f"{prefix}:k") <= 60
    finally:
        await admin.delete(f"{prefix}:k", f"{prefix}:j", f"{prefix}x:k")
        await admin.aclose()
        for counters in (one, two, other):
            await counters.close()


def test_unknown_counter_scheme_is_refused_with_a_hint() -> None:
    with pytest.raises(ValueError, match="use memory:// or redis://"):
        open_counters("memcached://localhost", prefix="p", clock=ManualClock())


async def test_refusal_waits_for_the_latest_exceeded_window() -> None:
    clock = ManualClock(1_800_000_000.0)
    limits = _limits(clock, limit_messages_per_session="2/second;3/minute")
    await limits.charge(Action.MESSAGES, _caller())
    await limits.charge(Action.MESSAGES, _caller())
    with pytest.raises(RateLimited) as refused:
        await limits.charge(Action.MESSAGES, _caller())
    assert refused.value.retry_after == 1  # the second is spent, the minute has 3 of 3
    clock.advance(1)
    with pytest.raises(RateLimited) as refused:
        await limits.charge(Action.MESSAGES, _caller())
    assert refused.value.retry_after == 59  # the refusal above counted toward the minute
    for _ in range(2):
        with pytest.raises(RateLimited) as refused:
            await limits.charge(Action.MESSAGES, _caller())
    assert refused.value.retry_after == 59  # both spent now: the later end
    await limits.charge(Action.MESSAGES, _caller(session="s2", user_pk=8))  # others are fine


async def test_master_switch_and_empty_rates_turn_limits_off() -> None:
    clock = ManualClock(1_800_000_000.0)
    for limits in (
        _limits(clock, rate_limits=False, limit_messages_per_session="1/minute"),
        _limits(clock, **{f"limit_messages_per_{s}": "" for s in ("session", "user", "app")}),
    ):
        for _ in range(3):
            await limits.charge(Action.MESSAGES, _caller())


async def test_auth_limit_is_the_burst_per_refill_time() -> None:
    clock = ManualClock(1_800_000_000.0)
    limits = _limits(clock, auth_rate_per_second=0.5, auth_rate_burst=3)
    for _ in range(3):
        await limits.charge_address("192.0.2.1")
    with pytest.raises(RateLimited) as refused:
        await limits.charge_address("192.0.2.1")
    assert refused.value.retry_after == 6
    await limits.charge_address("192.0.2.2")


def test_rate_settings_take_rate_strings_numbers_and_off() -> None:
    settings = Settings(
        limit_typing_per_app="7", limit_typing_per_user="0", limit_typing_per_session=" "
    )
    assert settings.limit_typing_per_app == "7/second"
    assert (settings.limit_typing_per_user, settings.limit_typing_per_session) == ("", "")
    assert parse_rates("20/second;600/minute") == parse_rates("20 per 1 second; 600/minute")
    with pytest.raises(pydantic.ValidationError, match="limit_typing_per_app"):
        Settings(limit_typing_per_app="lots")


def test_trusted_proxies_come_comma_separated_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHINWAG_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1")
    assert Settings().trusted_proxies == ["10.0.0.0/8", "127.0.0.1"]
    with pytest.raises(pydantic.ValidationError, match="trusted_proxies"):
        Settings(trusted_proxies=["10.0.0.300"])


async def test_redis_counters_send_a_requests_increments_in_one_call(tmp_path: Path) -> None:
    """A message charges ten counters: one script call, not ten (``rate_counters.py``)."""
    with redis_server(tmp_path) as redis:
        counters = RedisCounters(redis.url, prefix="p")
        admin = aioredis.from_url(redis.url)
        try:
            increments = [(f"k{n}", 60, 1) for n in range(10)]
            await counters.incr_many(increments)  # loads the script

            async def calls() -> int:
                stats = await admin.info("commandstats")
                return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in _SCRIPT)

            before = await calls()
            assert await counters.incr_many(increments) == [2] * 10
            assert await calls() - before == 1
        finally:
            await admin.aclose()
            await counters.close()


_SCRIPT = ("eval", "evalsha")  # calls from clients; what a script runs counts apart


async def test_redis_counters_of_requests_that_arrive_while_one_is_out_share_a_call(
    tmp_path: Path,
) -> None:
    """Under load a node sends a few script calls, not one per request (``coalescing.py``):
    those that arrive while a call is out go together after it. Each request still gets
    its own counters' totals, as if it had called alone."""
    with redis_server(tmp_path) as redis:
        counters = RedisCounters(redis.url, prefix="p")
        admin = aioredis.from_url(redis.url)
        try:
            await counters.incr_many([("warm", 60, 1)])  # loads the script

            async def calls() -> int:
                stats = await admin.info("commandstats")
                return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in _SCRIPT)

            before = await calls()
            requests = [[("shared", 60, 1), (f"own{n}", 60, n + 1)] for n in range(40)]
            totals = await asyncio.gather(*(counters.incr_many(r) for r in requests))
            assert await calls() - before == 2  # the first alone, the rest together behind it
            assert [own for _, own in totals] == [n + 1 for n in range(40)]
            assert [shared for shared, _ in totals] == list(range(1, 41))  # in order, once each
            assert 0 < await admin.ttl("p:shared") <= 60
        finally:
            await admin.aclose()
            await counters.close()


async def test_a_redis_that_is_gone_fails_every_request_of_the_call(tmp_path: Path) -> None:
    """Each request then sees the failure its own call would have (and ``RateLimits``
    fails open for it); none is left waiting."""
    with redis_server(tmp_path) as redis:
        counters = RedisCounters(redis.url, prefix="p")
        await counters.incr_many([("warm", 60, 1)])
    try:
        async with asyncio.timeout(10):
            failed = await asyncio.gather(
                *(counters.incr_many([("k", 60, 1)]) for _ in range(5)), return_exceptions=True
            )
        assert all(isinstance(f, (OSError, aioredis.RedisError)) for f in failed), failed
    finally:
        await counters.close()
