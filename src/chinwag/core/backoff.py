"""Reconnect and retry delays: capped exponential back-off with full jitter.

Why full jitter: when a server restarts, every device notices at the same moment. A
deterministic schedule (1 s, 2 s, 4 s, …) keeps them in lock-step, so they return in
waves that knock the server over again. Drawing the whole delay uniformly from
``[0, min(cap, base * 2**attempt)]`` spreads them out (AWS architecture blog, "Exponential
Backoff And Jitter"). The cap bounds how long a device stays away once the server is back.

Randomness comes in as an argument (a float in ``[0, 1)``) so the rule is pure and tests
can pin it; the SDK passes ``random.random()``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Backoff", "full_jitter"]


def full_jitter(attempt: int, *, base: float, cap: float, rand: float) -> float:
    """The delay before retry number ``attempt`` (0 for the first retry).

    ``rand`` must be in ``[0, 1)``; the result is in ``[0, min(cap, base * 2**attempt))``.
    """
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    if not 0.0 <= rand < 1.0:
        raise ValueError(f"rand must be in [0, 1), got {rand}")
    if base <= 0 or cap <= 0:
        raise ValueError(f"base and cap must be positive, got base={base} cap={cap}")
    # 2**attempt overflows a float near attempt 1024; the cap is reached long before.
    ceiling = cap if attempt >= 64 else min(cap, base * (2.0**attempt))
    return rand * ceiling


@dataclass(frozen=True, slots=True)
class Backoff:
    """A back-off policy: the numbers, kept together so callers can't mix them up."""

    base: float = 0.5
    cap: float = 60.0
    floor: float = 0.0
    """Added to every delay: a minimum pause (e.g. after a ``resume_later`` close)."""

    def delay(self, attempt: int, rand: float) -> float:
        return self.floor + full_jitter(attempt, base=self.base, cap=self.cap, rand=rand)
