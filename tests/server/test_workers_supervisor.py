"""The ``--workers`` supervisor: a worker failing to start stops the server; a killed one is
replaced however young (the OOM killer or an operator killed it; it did not fail)."""

from __future__ import annotations

import os
import signal
import sys
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
