"""Everything a handler needs, built once by the app factory and passed down explicitly."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select

from chinwag.clock import Clock
from chinwag.core.keys import Alg, KeyMaterial, verifier_for
from chinwag.server import metrics
from chinwag.server.broker import Broker, Doorbell, Resync
from chinwag.server.doorbells import Doorbells
from chinwag.server.drain import Drain
from chinwag.server.hub import Hub
from chinwag.server.jwks import JwksCache, JwksFetcher
from chinwag.server.rate_limits import RateLimits
from chinwag.server.settings import Settings
from chinwag.server.storage import engines
from chinwag.server.storage.database import Database
from chinwag.server.storage.read_batching import PageReads
from chinwag.server.storage.records import KeyRecord
from chinwag.server.storage.schema import server_secrets
from chinwag.server.typing_relay import TypingRelay

__all__ = ["KeyCache", "KnownApps", "Services", "load_deployment_id", "load_server_secret"]

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
        await tx.conn.execute(
            engines.insert(tx.conn, server_secrets)
            .values(name=name, value=random(32))
            .on_conflict_do_nothing()
        )
        value = (
            await tx.conn.execute(
                select(server_secrets.c.value).where(server_secrets.c.name == name)
            )
        ).scalar_one()
    return bytes(value)


async def load_deployment_id(db: Database) -> str:
    """This deployment's name on shared infrastructure (Redis channels, rate-limit keys).

    Stored in the database, so every node of one deployment agrees on it and two deployments
    sharing one Redis never do, whatever their settings say.
    """
    return (await load_server_secret(db, "deployment_id", secrets.token_bytes))[:8].hex()


@dataclass
class Services:
    settings: Settings
    clock: Clock
    db: Database
    broker: Broker
    nonce_secret: bytes
    deployment_id: str = "local"
    """Namespaces what this deployment shares with others (:func:`load_deployment_id`)."""
    random: Random = field(default=secrets.token_bytes)
    keys: KeyCache = field(default_factory=KeyCache)
    known_apps: KnownApps = field(default_factory=KnownApps)
    rate_limits: RateLimits = field(default_factory=RateLimits.disabled)
    hub: Hub = field(default_factory=Hub)
    drain: Drain = field(default_factory=Drain)
    """In-flight work a stopping node waits for (``drain.py``)."""
    typing: TypingRelay = field(init=False)
    jwks: JwksCache = field(init=False)
    doorbells: Doorbells = field(init=False)
    page_reads: PageReads = field(init=False)
    """Sockets' reads after a doorbell, batched (``storage/read_batching.py``)."""
    _background: list[asyncio.Task[None]] = field(default_factory=list)
    outbox_doorbell: Callable[[], None] | None = None
    """Wakes this process's delivery workers (``webhooks/``); see :meth:`outbox_written`."""

    def __post_init__(self) -> None:
        self.doorbells = Doorbells(self)
        self.page_reads = PageReads(self.db)
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

    def outbox_written(self) -> None:
        """A transaction that wrote webhook or push rows here has committed: wake this
        process's workers. Only then: waking them for every event made each worker run a
        pass (a transaction) up to 20 times a second per node whether or not the app has
        webhooks. Rows written elsewhere (another node, the CLI) are found by the workers'
        polling, or by the writing node's own workers."""
        if self.outbox_doorbell is not None:
            self.outbox_doorbell()

    def start_background(self) -> None:
        """Start the periodic sweep (typing silence, session expiry) for live sockets."""
        from chinwag.server.ws import SWEEP_INTERVAL, sweep_forever

        every = max(1, round(self.settings.revocation_sweep_seconds / SWEEP_INTERVAL))
        sweep = sweep_forever(self, interval=SWEEP_INTERVAL, revocation_every=every)
        self._background.append(asyncio.create_task(sweep))

    def now(self) -> float:
        return self.clock.now()

    def publish(self, message: Doorbell) -> None:
        """Ring this node's doorbell at once, then the other nodes' (``server.doorbells``)."""
        metrics.doorbell_sent()
        self.doorbells.local(message)
        self.broker.publish(message)

    def on_doorbell(self, message: Doorbell) -> None:
        """The broker's listener: other nodes' doorbells, and local resyncs."""
        if not isinstance(message, Resync):  # repairs are counted where they happen (broker)
            metrics.doorbell_received()
        self.doorbells.remote(message)

    async def shutdown(self) -> None:
        self.hub.close_all()
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.doorbells.close()
        await self.jwks.close()
