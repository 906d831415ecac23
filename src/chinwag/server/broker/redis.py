"""Redis pub/sub broker for several nodes sharing one database.

One channel per deployment, ``<prefix>:<deployment_id>:doorbell``; what travels on it is
described (and distrusted) in :mod:`chinwag.server.broker.wire`.

Redis is optional at every moment, including start-up:

* **Deaf** (never connected yet, the subscription dropped, or Redis stopped answering):
  the receiver retries every ``poll_interval`` seconds and, each time, hands the listener
  a local :class:`Resync`, so every live connection on this node reads the store about as
  often; once subscribed again it hands one more, for whatever was announced in between.
  One warning per outage.
* **Hung** Redis (a stopped process, a frozen machine): the TCP connection stays open and
  nothing arrives, which a blocking read cannot tell from a quiet channel, so ``/readyz``
  said ``connected`` through a whole hang. The subscription's reads are therefore bounded:
  after ``health_interval`` quiet seconds a PING goes on the subscription's own connection,
  and no answer within ``health_timeout`` counts as a lost subscription (deaf). One PING
  per quiet interval per node, nothing per request.
* **Mute** (a publish failed, or the bounded queue overflowed): the sender remembers it and,
  once Redis takes a publish again, publishes a :class:`Resync` so every other node reads
  its live connections' streams; the doorbells queued meanwhile are then redundant and
  dropped.

URLs: ``redis://[user:password@]host:port/db``, ``rediss://`` for TLS (``?ssl_ca_certs=``
a CA file, ``ssl_cert_reqs=none`` to skip verification), ``unix://`` for a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets

import redis.asyncio as aioredis

from chinwag.server import metrics
from chinwag.server.broker.base import Doorbell, Listener, Resync
from chinwag.server.broker.wire import WireError, decode, encode, encode_all, reduced

__all__ = ["RedisBroker"]

log = logging.getLogger(__name__)


SEND_BATCH = 512
"""Queued doorbells published in one round trip at most."""
CLOSE_TIMEOUT = 5.0
"""Seconds :meth:`RedisBroker.close` gives each of its steps."""


class RedisBroker:
    poll_interval = 1.5
    """Seconds between store checks (and reconnection attempts) while deaf."""
    health_interval = 5.0
    """Quiet seconds on the subscription before it is PINGed."""
    health_timeout = 2.0
    """Seconds Redis has to answer that PING, or to confirm a subscription, or to take a
    new connection's set-up, before it counts as gone (a PING answers in microseconds)."""

    def __init__(
        self, url: str, *, prefix: str, deployment_id: str, queue_size: int = 10_000
    ) -> None:
        self._url = url
        self._deployment = deployment_id
        self._channel = f"{prefix}:{deployment_id}:doorbell"
        self._node = secrets.token_hex(8)
        self._client: aioredis.Redis | None = None
        self._outbox: asyncio.Queue[Doorbell] = asyncio.Queue(maxsize=queue_size)
        self._tasks: list[asyncio.Task[None]] = []
        self._connected = False
        self._lost = False
        self._refused = 0
        self._closing = False

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def state(self) -> str:
        """``connected`` while subscribed and answering, ``deaf`` while resubscribing or
        once Redis left a PING unanswered (for ``/readyz``)."""
        return "connected" if self._connected else "deaf"

    @property
    def channel(self) -> str:
        return self._channel

    @property
    def client_name(self) -> str:
        """This node's name in Redis's CLIENT LIST (an operator's way to find it)."""
        return f"{self._channel}:{self._node}"

    async def start(self, listener: Listener) -> None:
        self._client = aioredis.from_url(
            self._url,
            client_name=self.client_name,
            socket_connect_timeout=2,
            # A command to a hung Redis (a publish, a new connection's set-up) fails
            # rather than waiting for ever; redis-py then drops the connection itself,
            # which cancelling it from outside (asyncio.wait_for) did not do cleanly.
            socket_timeout=self.health_timeout,
            socket_keepalive=True,
            health_check_interval=10,
        )
        self._tasks = [
            asyncio.create_task(self._receive(listener)),
            asyncio.create_task(self._send()),
        ]

    # -- receiving -------------------------------------------------------------------------

    async def _receive(self, listener: Listener) -> None:
        """Subscribe and listen; after a failure, try again every ``poll_interval`` with a
        store check in between. One warning per outage.

        An outage ends only when Redis *confirms* a subscription: one that fails before its
        confirmation is part of the outage already warned of, and is followed by the same
        wait as a refused connection. Without that wait, an endpoint that takes SUBSCRIBE
        and hangs up (or refuses it: an ACL without the channel) was retried in a tight
        loop, and every turn logged "subscription lost" (a fault test saw two in one 10 s
        outage). Only a subscription that was confirmed and lasted ``poll_interval`` (an
        idle connection dropped, say) is tried again at once."""
        assert self._client is not None
        loop = asyncio.get_running_loop()
        attempts = 0
        warned = False  # the outage under way has been logged
        again_at_once = False
        while True:
            self._stop_if_closing()
            if attempts and not again_at_once:
                await asyncio.sleep(self.poll_interval)
                _safely(listener, Resync())
            pubsub = self._client.pubsub()
            started = loop.time()
            try:
                # Bounded by socket_timeout: a hung Redis accepts the TCP connection and
                # never answers its set-up, and the store checks must go on.
                await pubsub.subscribe(self._channel)
                await self._listen(pubsub, listener, resync=attempts > 0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._stop_if_closing()
                confirmed = self._connected
                why = f"{type(exc).__name__}: {str(exc)[:200]}"
                if confirmed:
                    log.warning(
                        "doorbell subscription lost (%s); serving from the store, polling"
                        " every %.1f s until Redis is back", why, self.poll_interval,
                    )  # fmt: skip
                elif not warned:
                    log.warning(
                        "Redis unreachable (%s); serving from the store, polling every %.1f s",
                        why, self.poll_interval,
                    )  # fmt: skip
                warned = True
                again_at_once = confirmed and loop.time() - started >= self.poll_interval
            finally:
                attempts += 1
                self._connected = False
                await self._discard(pubsub)

    async def _discard(self, pubsub: aioredis.client.PubSub) -> None:
        """Close a subscription's connection, bounded: the peer may be hung."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pubsub.aclose(), self.health_timeout)  # type: ignore[no-untyped-call]

    async def _listen(
        self, pubsub: aioredis.client.PubSub, listener: Listener, *, resync: bool
    ) -> None:
        """Deliver doorbells until the subscription ends or Redis stops answering.
        Connected only once Redis has confirmed the subscription; then, after an outage,
        one :class:`Resync` (earlier, a doorbell could still fall between the re-read and
        the subscription).

        Every read is bounded (the module docstring says why): anything from Redis proves
        it alive; after ``health_interval`` seconds of nothing, a PING; no answer to it (or
        no confirmation of the subscription) within ``health_timeout`` raises
        :class:`TimeoutError`, which the caller treats as a lost subscription."""
        loop = asyncio.get_running_loop()
        answer_by = loop.time() + self.health_timeout  # the subscription's confirmation
        ping_at = math.inf
        while True:
            self._stop_if_closing()
            wait = max(0.0, min(answer_by, ping_at) - loop.time())
            item = await pubsub.get_message(timeout=wait)  # read first: a stalled loop
            if item is None:  # must not take an answer waiting in the buffer for silence
                now = loop.time()
                if now >= answer_by:
                    raise TimeoutError(f"Redis did not answer for {self.health_timeout:g} s")
                if now >= ping_at:
                    await asyncio.wait_for(pubsub.ping(), self.health_timeout)
                    answer_by, ping_at = now + self.health_timeout, math.inf
                continue
            answer_by, ping_at = math.inf, loop.time() + self.health_interval
            kind = item.get("type")
            if kind == "unsubscribe":
                raise ConnectionError("the subscription ended")
            if kind == "subscribe":
                self._connected = True
                if resync:
                    log.warning("doorbell subscription restored; live connections catch up")
                    metrics.doorbell_repaired()
                    _safely(listener, Resync())
            if kind != "message":
                continue
            try:
                node, message = decode(item["data"], deployment=self._deployment)
            except WireError as exc:
                self._refuse(exc)
                continue
            if node != self._node:
                _safely(listener, message)

    def _refuse(self, exc: WireError) -> None:
        """Count refused doorbells; log the first and then every thousandth (a flood of
        forgeries must not become a flood of log lines). Never the content."""
        self._refused += 1
        if self._refused == 1 or self._refused % 1000 == 0:
            log.warning("refused %d doorbell(s) on %s: %s", self._refused, self._channel, exc)

    # -- sending ---------------------------------------------------------------------------

    async def _send(self) -> None:
        """Publish what is queued: everything queued at once goes as few doorbells as
        carry it (``wire.encode_all``), in one round trip (a pipeline without MULTI:
        Redis runs the PUBLISHes in order)."""
        assert self._client is not None
        while True:
            self._stop_if_closing()
            if self._lost:
                await self._repair()
            batch = [await self._outbox.get()]
            while len(batch) < SEND_BATCH and not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            raws = encode_all(batch, deployment=self._deployment, node=self._node)
            try:
                if len(raws) == 1:
                    await self._client.publish(self._channel, raws[0])
                else:
                    async with self._client.pipeline(transaction=False) as pipe:
                        for raw in raws:
                            pipe.publish(self._channel, raw)
                        await pipe.execute()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._stop_if_closing()
                self._mark_lost(type(exc).__name__)

    async def _repair(self) -> None:
        """Publish a :class:`Resync` as soon as Redis takes it, then drop what queued
        meanwhile: the other nodes' re-read covers it."""
        assert self._client is not None
        resync = encode(Resync(), deployment=self._deployment, node=self._node)
        while True:
            self._stop_if_closing()
            try:
                await self._client.publish(self._channel, resync)
                break
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(self.poll_interval)
        self._lost = False
        while not self._outbox.empty():
            self._outbox.get_nowait()
        metrics.doorbell_repaired()
        log.warning("doorbells publish again; other nodes were told to resync")

    def _mark_lost(self, why: str) -> None:
        if not self._lost:
            log.warning("doorbell not published (%s); other nodes will resync later", why)
        self._lost = True

    def publish(self, message: Doorbell) -> None:
        if self._lost:
            return  # the coming Resync covers it
        try:
            self._outbox.put_nowait(reduced(message))
        except asyncio.QueueFull:
            self._mark_lost("queue full")

    def _stop_if_closing(self) -> None:
        """Once :meth:`close` began, end the calling task as cancelled. Every loop step
        checks it because a cancellation can be lost inside redis-py (seen: a task that
        took its ``cancel()`` as a dropped connection, resubscribed and ran on, until the
        test's event loop waited for it forever)."""
        if self._closing:
            raise asyncio.CancelledError

    async def close(self) -> None:
        """Stop both tasks and the client, waiting at most ``CLOSE_TIMEOUT`` for each step:
        a node stopping must not hang on Redis (a test's stop once waited forever on a
        cancelled task that never finished, inside redis-py)."""
        self._closing = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            done, stuck = await asyncio.wait(self._tasks, timeout=CLOSE_TIMEOUT)
            for task in done:  # retrieved, so nothing is logged as never retrieved
                if not task.cancelled():
                    task.exception()
            if stuck:
                log.warning("%d doorbell task(s) did not stop; leaving them", len(stuck))
        self._connected = False
        if self._client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._client.aclose(), CLOSE_TIMEOUT)


def _safely(listener: Listener, message: Doorbell) -> None:
    try:
        listener(message)
    except Exception:
        log.exception("a doorbell's listener failed")
