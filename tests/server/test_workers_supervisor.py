"""The ``--workers`` supervisor: a worker failing to start stops the server; a killed one is
replaced however young (the OOM killer or an operator killed it; it did not fail); stopped
by SIGTERM, it asks to die of SIGTERM as one server does, unless a worker did not drain."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from chinwag.server.workers import run_workers


def test_a_worker_failing_at_start_stops_the_supervisor(tmp_path: Path) -> None:
    starts = tmp_path / "starts"

    def serve(index: int) -> None:
        with starts.open("a") as log:
            log.write(f"{index}\n")
        sys.exit(3)

    assert run_workers(1, serve) == 1
    assert starts.read_text() == "0\n"  # not replaced: a crash loop would keep appending


def test_a_young_worker_killed_by_a_signal_is_replaced(tmp_path: Path) -> None:
    killed, replaced = tmp_path / "killed", tmp_path / "replaced"

    def serve(index: int) -> None:
        if not killed.exists():
            killed.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        replaced.touch()
        sys.exit(3)  # then fail at start, so the supervisor stops and the test ends

    assert run_workers(1, serve) == 1
    assert replaced.exists()


def _stop_the_supervisor() -> None:
    """SIGTERM the supervisor (this test's process) until it passes one on to this worker
    (its handler may not know this worker's pid yet at the first); bounded."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        os.kill(os.getppid(), signal.SIGTERM)
        time.sleep(0.05)
    sys.exit(4)


def test_stopped_by_sigterm_after_a_clean_drain_it_dies_of_sigterm() -> None:
    """Worker 0 signals while worker 1 is still being forked: the stop reaches both (it
    reached only the workers forked before it, and the parent waited for ever)."""

    def serve(index: int) -> None:  # SIGTERM has its default action here: the worker dies
        _stop_the_supervisor()

    assert run_workers(2, serve) == -signal.SIGTERM


def test_a_worker_that_does_not_drain_cleanly_makes_the_stop_a_failure() -> None:
    def serve(index: int) -> None:
        signal.signal(signal.SIGTERM, lambda *_: os._exit(3))
        _stop_the_supervisor()

    assert run_workers(1, serve) == 1
