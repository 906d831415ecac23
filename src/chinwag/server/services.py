"""Everything a handler needs, built once by the app factory and passed down explicitly."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from chinwag.clock import Clock
from chinwag.core.keys import Alg, KeyMaterial, verifier_for
from chinwag.server.broker import Broker, Doorbell, EventsAppended
from chinwag.server.hub import Hub
from chinwag.server.jwks import JwksCache, JwksFetcher
from chinwag.server.rate_limits import RateLimits
from chinwag.server.settings import Settings
from chinwag.server.storage.database import Database
from chinwag.server.storage.records import KeyRecord
from chinwag.server.storage.schema import server_secrets
from chinwag.server.typing_relay import TypingRelay, participants_removed

__all__ = ["KeyCache", "KnownApps", "Services", "load_server_secret"]

Random = Callable[[int], bytes]


class KeyCache:
    """Parsed verification keys, keyed by their stored text (a changed key is a new entry)."""

    def __init__(self, size: int = 4096) -> None:
        self._entries: OrderedDict[tuple[str, str, str], KeyMaterial] = OrderedDict()
        self._size = size

    def material(self, record: KeyRecord) -> KeyMaterial:
        stored = record.public_key_pem or record.secret or ""
        cache_key = (record.kid, record.alg, stored)
        found = self._entries.get(cache_key)
        if found is None:
            found = verifier_for(
                Alg(record.alg), public_key_pem=record.public_key_pem, secret=record.secret
            )
            self._entries[cache_key] = found
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return found


class KnownApps:
    """App ids known to exist (bounded). Safe to keep because apps are never deleted; if
    deleting apps is ever added, it must clear this on every node."""

    def __init__(self, size: int = 10_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def contains(self, app_id: str) -> bool:
        return app_id in self._ids

    def add(self, app_id: str) -> None:
        self._ids[app_id] = None
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)


async def load_server_secret(db: Database, name: str, random: Random) -> bytes:
    """Read a shared secret, creating it first if no node has yet (first writer wins)."""
    async with db.transaction() as tx:
        dialect_insert = pg_insert if tx.is_postgres else sqlite_insert
        await tx.conn.execute(
            dialect_insert(server_secrets)
            .values(name=name, value=random(32))
            .on_conflict_do_nothing()
        )
        value = (
            await tx.conn.execute(
                select(server_secrets.c.value).where(server_secrets.c.name == name)
            )
        ).scalar_one()
    return bytes(value)


@dataclass
class Services:
    settings: Settings
    clock: Clock
    db: Database
    broker: Broker
    nonce_secret: bytes
    random: Random = field(default=secrets.token_bytes)
    keys: KeyCache = field(default_factory=KeyCache)
    known_apps: KnownApps = field(default_factory=KnownApps)
    rate_limits: RateLimits = field(default_factory=RateLimits.disabled)
    hub: Hub = field(default_factory=Hub)
    typing: TypingRelay = field(init=False)
    jwks: JwksCache = field(init=False)
    _background: list[asyncio.Task[None]] = field(default_factory=list)
    outbox_doorbell: Callable[[], None] | None = None
    """Wakes this process's delivery workers when events were committed (``webhooks/``)."""

    def __post_init__(self) -> None:
        self.typing = TypingRelay(
            self.publish,
            pause_after=self.settings.typing_pause_after,
            finish_after=self.settings.typing_finish_after,
            interval=self.settings.typing_relay_interval,
        )
        self.jwks = JwksCache(
            JwksFetcher(
                allow_insecure=self.settings.allow_insecure_jwks,
                timeout=self.settings.jwks_fetch_timeout,
                max_bytes=self.settings.jwks_max_bytes,
            )
        )

    def start_background(self) -> None:
        """Start the periodic sweep (typing silence, session expiry) for live sockets."""
        from chinwag.server.ws import sweep_forever

        self._background.append(asyncio.create_task(sweep_forever(self)))

    def now(self) -> float:
        return self.clock.now()

    def publish(self, message: Doorbell) -> None:
        self.broker.publish(message)

    def on_doorbell(self, message: Doorbell) -> None:
        self.hub.dispatch(message)
        if isinstance(message, EventsAppended) and self.outbox_doorbell is not None:
            self.outbox_doorbell()
        if isinstance(message, EventsAppended) and len(self.typing):
            removed = participants_removed(message)
            if removed is not None:
                self.typing.members_changed(*removed)

    async def shutdown(self) -> None:
        self.hub.close_all()
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.jwks.close()
