"""Bench-only: log the server's slow garbage collections (``fanout.py --gc-log``).

``fanout.py`` puts this folder first on the server's ``PYTHONPATH`` and names a file in
``CHINWAG_BENCH_GC_LOG``; Python imports ``sitecustomize`` at start-up, so every collection
of generation 2 (and any other over 5 ms) is appended as ``<monotonic> <generation>
<milliseconds> <collected>``, with CLOCK_MONOTONIC like the benchmark's own timestamps.
Without the variable this does nothing.
"""

from __future__ import annotations

import gc
import os
import time
from typing import Any

_path = os.environ.get("CHINWAG_BENCH_GC_LOG")
if _path:
    _out = open(_path, "a", buffering=1)  # noqa: SIM115 - open for the process's life
    _started = [0.0]

    def _on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            _started[0] = time.monotonic()
            return
        took = time.monotonic() - _started[0]
        if info["generation"] == 2 or took > 0.005:
            _out.write(
                f"{_started[0]:.6f} {info['generation']} {took * 1e3:.1f} {info['collected']}\n"
            )

    gc.callbacks.append(_on_gc)
