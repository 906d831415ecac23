"""Requests to one backend that arrive while it is busy go together, one round trip.

Why: under load the loop reads many requests from the sockets in one turn, and each then
asks the database or Redis for something small: a socket's stream page after a doorbell
(``storage/read_batching.py``), a request's rate-limit counters (``rate_counters.py``).
One round trip each is a syscall, a wake-up of the other side and a pooled connection;
what they ask can as well go together, since the other side answers a list as cheaply as
one.

A :class:`Coalescer` lets an ask go at once, alone, in its caller's own task, while
fewer than ``in_flight`` calls (by default one) are out: at low load nothing changes, not
even a turn of the loop. Asks made while that many are out wait, and go together as soon
as one returns, at most ``max_batch`` per call, in one task that makes one call at a
time, so under load the batches grow by themselves.

A first version sent every ask through a task that gathered a turn's asks, one call at
a time: a lone ask then cost a task and two more turns of the loop (~70 us more CPU per
catch-up read, ``bench/catch_up_reads.py``). The next let two calls out at once, so that
two asks at once went side by side; under saturation (two nodes at 250 and 300 msg/s,
``bench/README.md``) one call out gave the lower p99 in four runs of four, because the
asks behind it waited in one batch rather than in two. On a lightly loaded machine the
two were indistinguishable.

Waiting asks are answered by a task of their own, so no caller's cancellation cuts the
others' answer, started in a fresh context (a caller's may say it holds a database
connection). If a call fails, every ask in it gets the failure, as its own call would
have.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["Coalescer"]

Ask = TypeVar("Ask")
Answer = TypeVar("Answer")


@dataclass(slots=True)
class _Waiting(Generic[Ask, Answer]):
    ask: Ask
    done: asyncio.Future[Answer] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Coalescer(Generic[Ask, Answer]):
    """``await coalescer(ask)``: ``run(asks)`` answers a list of asks, in order."""

    def __init__(
        self,
        run: Callable[[Sequence[Ask]], Awaitable[Sequence[Answer]]],
        *,
        max_batch: int,
        in_flight: int = 1,
        observe: Callable[[int], None] | None = None,
    ) -> None:
        """``in_flight``: calls out at once at most, before asks wait and go together;
        ``observe``: told each call's number of asks (a metric)."""
        self._run = run
        self._max = max_batch
        self._in_flight = in_flight
        self._observe = observe
        self._queue: list[_Waiting[Ask, Answer]] = []
        self._out = 0
        """Calls out now: callers' own, and the drainer's."""
        self._drainer: asyncio.Task[None] | None = None
        """The task answering waiting asks, one call at a time (held: the loop keeps only
        a weak reference to a task)."""

    async def __call__(self, ask: Ask) -> Answer:
        if self._queue or self._out >= self._in_flight:
            waiting: _Waiting[Ask, Answer] = _Waiting(ask)
            self._queue.append(waiting)
            return await waiting.done
        self._out += 1
        try:
            if self._observe is not None:
                self._observe(1)
            return (await self._run([ask]))[0]
        finally:
            self._out -= 1
            self._start_drainer()  # asked meanwhile: answered whatever became of ours

    def _start_drainer(self) -> None:
        if self._queue and self._drainer is None and self._out < self._in_flight:
            loop = asyncio.get_running_loop()
            self._drainer = loop.create_task(self._drain(), context=contextvars.Context())

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self._max], self._queue[self._max :]
                self._out += 1
                try:
                    await self._answer(batch)
                finally:
                    self._out -= 1
        finally:
            self._drainer = None

    async def _answer(self, batch: list[_Waiting[Ask, Answer]]) -> None:
        if self._observe is not None:
            self._observe(len(batch))
        try:
            answers = await self._run([waiting.ask for waiting in batch])
        except BaseException as failure:
            for waiting in batch:
                if waiting.done.done():
                    continue
                if isinstance(failure, Exception):
                    waiting.done.set_exception(failure)
                else:  # the batch's task was cancelled (the loop is closing): so are they
                    waiting.done.cancel()
            if not isinstance(failure, Exception):
                raise
            return
        for waiting, answer in zip(batch, answers, strict=True):
            if not waiting.done.done():
                waiting.done.set_result(answer)
