"""Requests to one backend that arrive together go as one round trip.

Why: under load the loop reads many requests from the sockets in one turn, and each then
asks the database or Redis for something small: a socket's stream page after a doorbell
(``storage/read_batching.py``), a request's rate-limit counters
(``rate_counters.py``). One round trip each is a syscall, a wake-up of the other side and
a pooled connection; what they ask can as well go together, since the other side answers
a list as cheaply as one. A :class:`Coalescer` queues what its callers ask and runs one
batch at a time: what is asked for while a batch runs (or in the same turn as the first
ask) goes in the next, at most ``max_batch`` per batch. So a lone ask pays no wait at
all, and under load the batches grow by themselves.

A batch runs in a task of its own, so no caller's cancellation cuts the others' answer,
and in a fresh context (a caller's may say it holds a database connection). If the batch
fails, every caller of it gets the failure, as its own call would have.
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
    """``await coalescer(ask)``: ``run(batch)`` answers a batch of asks, in order."""

    def __init__(
        self,
        run: Callable[[Sequence[Ask]], Awaitable[Sequence[Answer]]],
        *,
        max_batch: int,
        observe: Callable[[int], None] | None = None,
    ) -> None:
        """``observe``: told each batch's size (a metric)."""
        self._run = run
        self._max = max_batch
        self._observe = observe
        self._queue: list[_Waiting[Ask, Answer]] = []
        self._draining = False

    async def __call__(self, ask: Ask) -> Answer:
        waiting: _Waiting[Ask, Answer] = _Waiting(ask)
        self._queue.append(waiting)
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain(), context=contextvars.Context())
        return await waiting.done

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self._max], self._queue[self._max :]
                await self._answer(batch)
        finally:
            self._draining = False

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
