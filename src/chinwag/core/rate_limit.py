"""Rate limiting, pure: the caller passes ``now``.

:class:`TokenBucket` is a bucket kept in one process; :class:`Rate` is the arithmetic of a
fixed-window counter kept in shared storage (``server/rate_limits.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Rate", "TokenBucket"]


@dataclass(slots=True)
class TokenBucket:
    rate: float
    burst: float
    tokens: float
    updated: float

    @classmethod
    def full(cls, rate: float, burst: float, now: float) -> TokenBucket:
        return cls(rate=rate, burst=burst, tokens=burst, updated=now)

    def take(self, now: float, cost: float = 1.0) -> float:
        """Spend ``cost`` tokens; return 0 on success or the seconds to wait otherwise."""
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        self.updated = now
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / self.rate if self.rate > 0 else float("inf")


@dataclass(frozen=True, slots=True)
class Rate:
    """``amount`` per ``seconds``, counted in fixed windows aligned to the Unix epoch.

    Aligned windows need no shared "window started at" record: every node computes the
    same window from its own clock, so one shared counter per window is the whole state.
    The price of fixed windows is that up to twice ``amount`` can pass across a boundary;
    pairing a short rate with a long one ("20/second;600/minute") bounds that.
    """

    amount: int
    seconds: int

    def window(self, now: float) -> int:
        """The index of the window ``now`` falls in."""
        return math.floor(now / self.seconds)

    def retry_after(self, now: float) -> float:
        """Seconds until the window ``now`` falls in ends."""
        return (self.window(now) + 1) * self.seconds - now

    def charge(self, cost: int) -> int:
        """What a request costing ``cost`` counts: never more than a whole window, so a
        request the settings allow in size (999 participants) passes when the window is
        fresh instead of never."""
        return max(0, min(cost, self.amount))
