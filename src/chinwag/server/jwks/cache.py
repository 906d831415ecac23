"""The per-process cache of apps' JWKS sets, and the one fetch at a time that fills it.

Sign-in asks :meth:`JwksCache.lookup` (no I/O) for a ``kid``. It answers with the key, with
``None`` (no such key: the token is refused), or with :data:`FETCH` when a fetch is due:

- the app has no set yet, or its URL changed;
- the set is past its ``Cache-Control`` lifetime (``core.jwks.cache_lifetime``);
- the ``kid`` is unknown and no fetch for this app started in the last 30 s
  (``REFETCH_INTERVAL``): a rotated-in key is found by one refetch, while a flood of forged
  ``kid`` values costs the endpoint at most one request per 30 s.

The caller then leaves its database transaction, awaits :meth:`refresh` and looks again.
Concurrent callers for one app share one fetch (single flight), shielded so that one
caller giving up does not cancel it for the others. A failed fetch keeps the last good set
(logged as a warning) and also waits out ``REFETCH_INTERVAL`` before the next try.

The cache is per process: each node of a cluster fetches for itself, at most once per
lifetime and once per 30 s per app. The URL and when it was registered
(:class:`~chinwag.server.storage.jwks.JwksSource`) are read from the database on every
lookup that needs them, so a new URL, or the same one registered again, makes every node
drop its copy at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from enum import Enum
from typing import Final
from urllib.parse import urlsplit

from chinwag.core.jwks import REFETCH_INTERVAL, JwkSet
from chinwag.core.keys import KeyMaterial
from chinwag.server.jwks.fetcher import FetchedSet, JwksFetcher, JwksFetchError
from chinwag.server.storage.jwks import JwksSource

__all__ = ["FETCH", "CachedSet", "Fetch", "JwksCache"]

log = logging.getLogger("chinwag.jwks")


class Fetch(Enum):
    FETCH = "fetch"


FETCH: Final = Fetch.FETCH


@dataclass
class CachedSet:
    """What this process knows of one app's set."""

    source: JwksSource
    keys: JwkSet | None = None
    fetched_at: float | None = None
    expires_at: float = 0.0
    last_attempt: float | None = None
    last_error: str | None = None
    flight: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return self.source.url

    def may_fetch(self, now: float) -> bool:
        return self.last_attempt is None or now - self.last_attempt >= REFETCH_INTERVAL


def _where(url: str) -> str:
    """Host and path only: a query string might carry something meant to stay private."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


class JwksCache:
    def __init__(self, fetcher: JwksFetcher) -> None:
        self.fetcher = fetcher
        self._sets: dict[str, CachedSet] = {}

    def entry(self, app_id: str, source: JwksSource) -> CachedSet:
        found = self._sets.get(app_id)
        if found is None or found.source != source:
            found = self._sets[app_id] = CachedSet(source=source)
        return found

    def lookup(
        self, app_id: str, source: JwksSource, kid: str, *, now: float
    ) -> KeyMaterial | Fetch | None:
        entry = self.entry(app_id, source)
        if entry.flight is not None and not entry.flight.done():
            return FETCH
        material = entry.keys.keys.get(kid) if entry.keys is not None else None
        stale = entry.keys is None or now >= entry.expires_at
        if (stale or material is None) and entry.may_fetch(now):
            return FETCH
        return material

    async def refresh(self, app_id: str, source: JwksSource, *, now: float) -> None:
        """Fetch the set unless a fetch is already under way (then wait for that one).
        Never raises for the endpoint's faults: they are logged and the last good set kept."""
        entry = self.entry(app_id, source)
        if entry.flight is None or entry.flight.done():
            entry.last_attempt = now
            entry.flight = asyncio.create_task(self._refresh(app_id, entry, now))
        await asyncio.shield(entry.flight)

    async def _refresh(self, app_id: str, entry: CachedSet, now: float) -> None:
        try:
            self.store(app_id, entry.source, await self.fetcher.fetch(entry.url), now=now)
        except JwksFetchError as exc:
            entry.last_error = str(exc)
            kept = "keeping the last good set" if entry.keys else "no set yet"
            log.warning(
                "JWKS fetch failed app=%s url=%s: %s (%s)", app_id, _where(entry.url), exc, kept
            )

    def store(
        self, app_id: str, source: JwksSource, fetched: FetchedSet, *, now: float
    ) -> CachedSet:
        """Install a freshly fetched set (also how registration primes the cache)."""
        entry = self.entry(app_id, source)
        entry.keys = fetched.keys
        entry.fetched_at = now
        entry.expires_at = now + fetched.max_age
        entry.last_attempt = entry.last_attempt if entry.last_attempt is not None else now
        entry.last_error = None
        return entry

    def status(self, app_id: str, source: JwksSource) -> CachedSet | None:
        found = self._sets.get(app_id)
        return found if found is not None and found.source == source else None

    def forget(self, app_id: str) -> None:
        self._sets.pop(app_id, None)

    async def close(self) -> None:
        flights = [e.flight for e in self._sets.values() if e.flight and not e.flight.done()]
        for flight in flights:
            flight.cancel()
        for flight in flights:
            with contextlib.suppress(asyncio.CancelledError):
                await flight
        await self.fetcher.close()
