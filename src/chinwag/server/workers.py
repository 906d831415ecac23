"""``chinwag serve --workers N``: N processes serving one listening socket.

One Python process serves from one core; a node with more cores runs more workers. The
parent binds the socket (``cli/serve.py``), then forks N children that each run the whole
app (their own event loop, database pool, hub and broker subscription) on that socket:
the kernel hands each new connection to whichever worker accepts first. The parent only
supervises: a worker that dies is replaced; SIGTERM or SIGINT is passed on to every
worker, each drains as a single server does (``serving.py``), and the parent exits when
they all have, with the status a single server has: after SIGTERM it dies of SIGTERM
(uvicorn re-raises the signal; the shell sees 143, and systemd counts it a clean stop,
which it would not an ``exit(143)`` without ``SuccessExitStatus=``), after SIGINT it
exits 0.

Workers share nothing in memory, so a message sent through one worker reaches a socket
held by another only through the broker: more than one worker needs ``redis://`` (the
CLI refuses ``memory://``), exactly as several nodes do. Forking is POSIX-only; the
socket and the settings are inherited, nothing is pickled.

Metrics: with N > 1, :func:`prepare_multiprocess_metrics` points prometheus-client at a
fresh directory before the first metric exists, so ``/metrics`` on any worker reports all
of them (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import tempfile
import time
import traceback
from collections.abc import Callable
from types import FrameType

__all__ = ["exit_as", "prepare_multiprocess_metrics", "run_workers"]

log = logging.getLogger("chinwag.workers")

_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_QUICK_DEATH = 1.0
"""A worker that exits by itself sooner than this after starting is failing to start:
stop replacing workers (a crash loop) and exit. A worker *killed* (SIGKILL, SIGTERM: the
OOM killer, an operator) is replaced however young it was; it did not fail."""
_KILLED = (-signal.SIGKILL, -signal.SIGTERM)
_STOPS = (signal.SIGTERM, signal.SIGINT)
_DRAINED = (0, -signal.SIGTERM)
"""How a worker told to stop ends after a clean drain (uvicorn re-raises the SIGTERM)."""


def prepare_multiprocess_metrics() -> str | None:
    """Make a fresh metrics directory for this run, unless the operator chose one; call
    before anything imports prometheus_client. Returns the directory to remove at exit."""
    if os.environ.get(_MULTIPROC_ENV):
        return None
    directory = tempfile.mkdtemp(prefix="chinwag-metrics-")
    os.environ[_MULTIPROC_ENV] = directory
    return directory


def run_workers(count: int, serve: Callable[[int], None], *, cleanup: str | None = None) -> int:
    """Fork ``count`` workers running ``serve(index)``; supervise until told to stop and
    every worker has exited. Returns the exit status for the parent: negative when it
    should die of that signal, as :func:`exit_as` does (a clean stop on SIGTERM), 1
    when a worker failed at start or did not drain cleanly, 0 otherwise."""
    supervisor = _Supervisor(serve)
    previous = {sig: signal.signal(sig, supervisor.stop) for sig in _STOPS}
    try:
        for index in range(count):
            supervisor.spawn(index)
        return supervisor.wait_all()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if cleanup is not None:
            shutil.rmtree(cleanup, ignore_errors=True)


class _Supervisor:
    def __init__(self, serve: Callable[[int], None]) -> None:
        self._serve = serve
        self._children: dict[int, tuple[int, float]] = {}
        """pid → (worker index, start time)."""
        self._stopping = False
        self._status = 0
        self._signal: int | None = None
        """The signal that stopped the server (None: a worker's failure did)."""

    def spawn(self, index: int) -> None:
        """Fork worker ``index``, unless told to stop already. The stop signals are held
        from the fork until the worker is in ``_children``: a SIGTERM handled in between
        (it came during start-up, as the workers were being forked) was passed on to
        the workers known so far only, and the one being forked, or forked after it,
        never heard it and the parent waited for it for ever."""
        if self._stopping:
            return
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
        try:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child never returns here (coverage of forks)
                self._child(index)
            self._children[pid] = (index, time.monotonic())
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)  # a held one is handled now
        log.info("worker %d started (pid %d)", index, pid)

    def _child(self, index: int) -> None:
        for sig in _STOPS:
            signal.signal(sig, signal.SIG_DFL)  # uvicorn installs its own when it starts
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)  # held by spawn() in the parent
        code = 0
        try:
            self._serve(index)
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)

    def stop(self, signum: int, _frame: FrameType | None) -> None:
        """Pass the signal on as SIGTERM (each worker drains), once."""
        if self._stopping:
            return
        self._stopping = True
        self._signal = signum
        for pid in self._children:
            _kill(pid, signal.SIGTERM)

    def wait_all(self) -> int:
        while self._children:
            pid, status = os.wait()
            index, started = self._children.pop(pid, (-1, 0.0))
            _mark_dead(pid)
            code = os.waitstatus_to_exitcode(status)
            if self._stopping or index < 0:
                if index >= 0 and code not in _DRAINED:
                    log.error("worker %d (pid %d) stopped uncleanly (status %d)", index, pid, code)
                    self._status = 1
                continue
            if time.monotonic() - started < _QUICK_DEATH and code not in _KILLED:
                log.error("worker %d exited at start (status %d); stopping", index, code)
                self._status = 1
                self.stop(signal.SIGTERM, None)
                self._signal = None  # stopped by a failure, not by a signal
                continue
            log.warning("worker %d (pid %d) exited (status %d); replacing it", index, pid, code)
            self.spawn(index)
        if self._status == 0 and self._signal == signal.SIGTERM:
            return -signal.SIGTERM
        return self._status


def exit_as(status: int) -> None:
    """For a negative ``status`` (from :func:`run_workers`), die of that signal with its
    default action, as a single server does; otherwise return."""
    if status < 0:
        signal.signal(-status, signal.SIG_DFL)
        signal.raise_signal(signal.Signals(-status))


def _kill(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _mark_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (open sockets) from the shared metrics."""
    if os.environ.get(_MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
