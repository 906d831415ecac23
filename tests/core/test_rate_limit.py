"""The token bucket behind the auth rate limit."""

from __future__ import annotations

import math

import pytest

from chinwag.core.rate_limit import TokenBucket


def test_full_bucket_allows_a_burst_then_asks_to_wait() -> None:
    bucket = TokenBucket.full(rate=2, burst=3, now=100)
    assert [bucket.take(100) for _ in range(3)] == [0, 0, 0]
    assert bucket.take(100) == pytest.approx(0.5)


def test_tokens_refill_at_the_rate() -> None:
    bucket = TokenBucket.full(rate=2, burst=3, now=100)
    for _ in range(3):
        bucket.take(100)
    assert bucket.take(100.25) == pytest.approx(0.25)
    assert bucket.take(100.5) == 0


def test_refill_never_exceeds_the_burst() -> None:
    bucket = TokenBucket.full(rate=10, burst=2, now=0)
    assert bucket.take(10_000) == 0
    assert bucket.take(10_000) == 0
    assert bucket.take(10_000) > 0


def test_a_refused_take_spends_nothing() -> None:
    bucket = TokenBucket.full(rate=1, burst=1, now=0)
    bucket.take(0)
    for _ in range(100):
        assert bucket.take(0) == pytest.approx(1.0)
    assert bucket.take(1) == 0


def test_clock_going_backwards_adds_no_tokens() -> None:
    bucket = TokenBucket.full(rate=1, burst=1, now=1000)
    bucket.take(1000)
    assert bucket.take(0) > 0
    assert bucket.take(-1e9) > 0


def test_cost_larger_than_one() -> None:
    bucket = TokenBucket.full(rate=1, burst=5, now=0)
    assert bucket.take(0, cost=5) == 0
    assert bucket.take(0, cost=2) == pytest.approx(2)


def test_zero_rate_waits_forever_once_empty() -> None:
    bucket = TokenBucket.full(rate=0, burst=1, now=0)
    assert bucket.take(0) == 0
    assert math.isinf(bucket.take(1e9))
