"""The token bucket and the fixed-window arithmetic behind the rate limits."""

from __future__ import annotations

import math

import pytest

from chinwag.core.rate_limit import Rate, TokenBucket


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


def test_rate_windows_are_aligned_to_the_epoch() -> None:
    rate = Rate(amount=10, seconds=60)
    assert rate.window(120.0) == rate.window(179.9) == 2
    assert rate.window(180.0) == 3


def test_retry_after_is_the_time_left_in_the_window() -> None:
    rate = Rate(amount=10, seconds=60)
    assert rate.retry_after(120.0) == 60
    assert rate.retry_after(150.5) == pytest.approx(29.5)


def test_a_charge_never_exceeds_a_whole_window() -> None:
    rate = Rate(amount=10, seconds=60)
    assert rate.charge(3) == 3
    assert rate.charge(999) == 10  # passes in a fresh window instead of never
    assert rate.charge(0) == 0
