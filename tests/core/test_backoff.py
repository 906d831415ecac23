"""Back-off: full jitter inside a capped exponential envelope, pure and pinned."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chinwag.core.backoff import Backoff, full_jitter


def test_envelope_doubles_until_the_cap() -> None:
    almost_one = 0.999999
    ceilings = [full_jitter(n, base=0.5, cap=8.0, rand=almost_one) for n in range(7)]
    assert [round(c, 3) for c in ceilings] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_zero_randomness_means_retry_at_once() -> None:
    assert full_jitter(5, base=1, cap=60, rand=0.0) == 0.0


def test_huge_attempt_numbers_stay_at_the_cap() -> None:
    assert full_jitter(10_000, base=1, cap=30, rand=0.5) == 15.0


@given(st.integers(0, 200), st.floats(0, 1, exclude_max=True))
def test_delay_is_always_within_zero_and_cap(attempt: int, rand: float) -> None:
    assert 0 <= full_jitter(attempt, base=0.25, cap=45, rand=rand) <= 45


def test_different_draws_spread_devices_out() -> None:
    delays = {full_jitter(6, base=1, cap=60, rand=r / 10) for r in range(10)}
    assert len(delays) == 10


@pytest.mark.parametrize(
    ("attempt", "rand", "base", "cap"), [(-1, 0.5, 1, 1), (0, 1.0, 1, 1), (0, 0.5, 0, 1)]
)
def test_bad_arguments_are_refused(attempt: int, rand: float, base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="must"):
        full_jitter(attempt, base=base, cap=cap, rand=rand)


def test_policy_adds_its_floor() -> None:
    assert Backoff(base=1, cap=10, floor=5).delay(3, 0.5) == 9.0
