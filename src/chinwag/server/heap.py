"""Keeping full garbage collections short with thousands of sockets: freeze, again and again.

CPython's cycle collector walks every tracked object of the generation it collects; a full
(generation 2) collection walks the whole heap. With 12,000 sockets connected one full
collection stopped the event loop for **0.9-1.5 s** (~120 µs per socket, bench/README.md,
issue #10); every message in flight waited that long.

:func:`gc.freeze` moves every tracked object to a permanent generation no collection walks.
Freezing once at start (what ``chinwag serve`` did first) keeps the libraries out of the walk
but not the sockets, which all connect later. So :func:`keep_frozen` collects and freezes
again every ``Settings.gc_refreeze_interval`` seconds: each pass walks only what survived
since the last one, and so does any full collection between passes, whatever the number of
sockets. Measured with 12,000 sockets at 1,000 msg/s: the longest pass 34 ms every 2 s (the
default), 83 ms every 10 s. Most of that was :func:`gc.get_freeze_count`, which walks the
whole permanent generation (it counts a linked list): a pass now counts only when it is a
whole one, and a regular pass is the collection of what is new, ~20 ms at 2,000 sockets.

The price: reference cycles are never found among frozen objects. An object freed by its
reference count (nearly all of them) is freed frozen or not, but a cycle that becomes garbage
after its members were frozen stays. Two things bound that:

- a closed WebSocket leaves no cycle (``tests/server/test_heap_cycles.py`` holds it; the two
  it used to leave, httptools' parser holding its upgraded protocol and SQLAlchemy's
  expanding ``IN`` parameter built per connect, are broken in ``http_protocol.py`` and
  ``storage/push.py``);
- every ``Settings.gc_full_interval`` seconds the heap is unfrozen, collected whole and
  frozen again: one long pause (as long as before, ~1.4 s at 12,000 sockets) an hour by
  default, in exchange for memory that cannot creep (an exception kept with its frame while
  a request was frozen mid-flight, say).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import dataclass

__all__ = ["FreezePass", "freeze_pass", "keep_frozen"]

log = logging.getLogger("chinwag.heap")


@dataclass(frozen=True, slots=True)
class FreezePass:
    """What one pass did: objects it found to be garbage, objects frozen after it (in all;
    counted for whole passes only, ``None`` otherwise) and how long the event loop stood
    still for it."""

    collected: int
    frozen: int | None
    seconds: float


def freeze_pass(*, whole: bool = False) -> FreezePass:
    """Collect what is not frozen (with ``whole``, everything: unfreeze first), then freeze
    what survived."""
    started = time.perf_counter()
    if whole:
        gc.unfreeze()
    collected = gc.collect()
    gc.freeze()
    seconds = time.perf_counter() - started
    # Counting walks every frozen object: tens of ms with thousands of sockets, so only the
    # rare whole pass (which walks them all anyway) pays it, outside the measured pause.
    return FreezePass(collected, gc.get_freeze_count() if whole else None, seconds)


async def keep_frozen(interval: float, whole_every: float) -> None:
    """:func:`freeze_pass` every ``interval`` seconds, and a whole one every ``whole_every``
    seconds (0: never), until cancelled."""
    last_whole = time.monotonic()
    while True:
        await asyncio.sleep(interval)
        whole = whole_every > 0 and time.monotonic() - last_whole >= whole_every
        if whole:
            last_whole = time.monotonic()
        done = freeze_pass(whole=whole)
        level = logging.INFO if whole or done.seconds > 0.05 else logging.DEBUG
        frozen = "" if done.frozen is None else f", {done.frozen} frozen"
        log.log(
            level,
            "%s heap collected: %d objects freed%s, %.0f ms",
            "whole" if whole else "unfrozen",
            done.collected,
            frozen,
            done.seconds * 1e3,
        )
