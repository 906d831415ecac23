"""Sign-in rate limits: a sliding window of attempts per key (a username, a client address).

Password guessing is the attack a sign-in endpoint invites; argon2 makes each guess cost the
attacker, the limit caps how many guesses there are. Two windows apply at once: per username
(slows guessing one account from many addresses) and per client address (slows one address
trying many accounts). Time comes in as an argument, so tests need no sleeps.

In-memory and per process: run one instance, or put the counts in Redis when you run several.
"""

from __future__ import annotations

from collections import defaultdict, deque

__all__ = ["SlidingWindowLimiter"]


class SlidingWindowLimiter:
    """At most ``limit`` attempts per ``window`` seconds for each key."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._attempts: defaultdict[str, deque[float]] = defaultdict(deque)

    def retry_after(self, key: str, now: float) -> float | None:
        """Record an attempt for ``key``; None if allowed, else seconds until one is."""
        attempts = self._attempts[key]
        while attempts and attempts[0] <= now - self.window:
            attempts.popleft()
        if len(attempts) >= self.limit:
            return attempts[0] + self.window - now
        attempts.append(now)
        return None

    def forget(self, key: str) -> None:
        """A successful sign-in clears its username's count (not its address's)."""
        self._attempts.pop(key, None)
