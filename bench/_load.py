"""Reusable benchmark plumbing: a server subprocess, a lean HTTP/1.1 client, progress, machine info.

Shared by the benchmarks in this folder (auth now; WebSocket fan-out and sync later):

- :class:`ServerProcess` runs ``chinwag serve`` on a loopback port against a given database
  and samples its CPU time with psutil, so a benchmark can report server CPU per operation
  (a figure that survives a noisy, shared machine far better than throughput does).
- :class:`HttpConnection` is one keep-alive HTTP/1.1 connection over asyncio streams with
  hand-built requests: about ten times cheaper per request than httpx, so the load
  generator is not what is being measured. It only understands ``Content-Length`` bodies,
  which is all chinwag's JSON API sends.
- :class:`Progress` prints one self-overwriting status line with an ETA on stderr.
- :func:`machine_info` and :func:`loadavg` describe the machine the figures came from.

Nothing here listens on anything but 127.0.0.1, and every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import orjson
import psutil

__all__ = [
    "REPO",
    "HttpConnection",
    "HttpError",
    "PostgresProbe",
    "Progress",
    "ServerProcess",
    "free_port",
    "loadavg",
    "machine_info",
    "percentile",
    "postgres_cpu",
    "speed_probe",
]

REPO = Path(__file__).resolve().parent.parent
CHINWAG = REPO / ".venv" / "bin" / "chinwag"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def loadavg() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return (round(one, 2), round(five, 2), round(fifteen, 2))


def postgres_cpu() -> float:
    """CPU seconds used so far by every process of the ``postgres`` user (other users of
    the same server included, so an upper bound for one benchmark's share)."""
    total = 0.0
    for process in psutil.process_iter(["username"]):
        if process.info["username"] == "postgres":
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
    return total


class PostgresProbe:
    """What PostgreSQL did between two samples: the database's transactions (its
    ``pg_stat_database`` commits and rollbacks; on autocommit reads each statement is one)
    and the CPU of every ``postgres`` process. Per message, they say where a step's time
    went that the server's own CPU does not show."""

    def __init__(self, database_url: str) -> None:
        from sqlalchemy import make_url

        url = make_url(database_url)
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._database = url.database

    def sample(self) -> tuple[int, float]:
        return asyncio.run(self._transactions()), postgres_cpu()

    async def _transactions(self) -> int:
        import asyncpg

        conn = await asyncpg.connect(self._dsn)
        try:
            found = await conn.fetchval(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1",
                self._database,
            )
        finally:
            await conn.close()
        return int(found or 0)


def speed_probe() -> float:
    """Milliseconds one core takes for a fixed piece of pure Python (best of five).

    Why: this machine's speed varies about threefold across a day (bench/README.md), with
    the same clock rate and no other load on it, so a figure is comparable with another
    only when this probe read about the same for both."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i ^ (i >> 3)
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def machine_info() -> dict[str, object]:
    """Cores, load, Python, SQLite and a speed probe: what a reader needs to weigh the
    figures."""
    freq = psutil.cpu_freq()
    return {
        "speed_probe_ms": speed_probe(),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": platform.processor() or platform.machine(),
        "cores_logical": psutil.cpu_count(logical=True),
        "cores_physical": psutil.cpu_count(logical=False),
        "cpu_mhz": round(freq.current) if freq else None,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "loadavg": loadavg(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
    }


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


# --------------------------------------------------------------------------- server


@dataclass
class ServerProcess:
    """``chinwag serve`` in a subprocess on a free loopback port; a context manager.

    ``env`` adds CHINWAG_* settings on top of the current environment. Use
    :meth:`cpu_seconds` before and after a phase to charge the server's CPU to it.
    """

    database_url: str
    env: Mapping[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    start_timeout: float = 30.0
    log_path: Path | None = None
    python_args: tuple[str, ...] = ()
    """Run the server as ``python <python_args> chinwag serve …``, e.g.
    ``("-m", "cProfile", "-o", "server.prof")`` to profile it (written on a clean exit)."""
    preexec_fn: Callable[[], None] | None = None
    """Runs in the child before exec (e.g. to raise its file-descriptor limit)."""
    _proc: subprocess.Popen[bytes] | None = None
    _log: TextIO | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def __enter__(self) -> ServerProcess:
        env = {
            **os.environ,
            "CHINWAG_DATABASE_URL": self.database_url,
            "CHINWAG_LOG_LEVEL": "warning",
            **self.env,
        }
        self._log = open(self.log_path, "w") if self.log_path else None
        prefix = [sys.executable, *self.python_args] if self.python_args else []
        self._proc = subprocess.Popen(
            [
                *prefix,
                str(CHINWAG),
                "serve",
                "--no-dev-app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=env,
            stdout=self._log or subprocess.DEVNULL,
            stderr=self._log or subprocess.DEVNULL,
            preexec_fn=self.preexec_fn,
        )
        try:
            self._wait_until_ready()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_until_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"chinwag serve exited with {self._proc.returncode}"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock,
            ):
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
            time.sleep(0.05)
        raise RuntimeError(f"chinwag serve did not answer /healthz within {self.start_timeout}s")

    def __exit__(self, *_exc: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            # SIGINT: uvicorn shuts down gracefully and a cProfile wrapper still writes its file.
            self._proc.send_signal(signal.SIGINT)
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()

    def cpu_seconds(self) -> float:
        """User + system CPU the server process (and any children) has used so far."""
        proc = psutil.Process(self.pid)
        total = sum(proc.cpu_times()[:2])
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += sum(child.cpu_times()[:2])
        return float(total)


# --------------------------------------------------------------------------- HTTP client


class HttpError(RuntimeError):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:300]!r}")
        self.status = status
        self.body = body


class HttpConnection:
    """One keep-alive HTTP/1.1 connection; requests on it are strictly sequential."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._host_header = f"Host: {host}:{port}\r\n".encode()

    async def __aenter__(self) -> HttpConnection:
        await self.connect()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        sock = self._writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
            self._writer = None

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        *,
        headers: bytes = b"",
        content_type: bytes = b"application/json",
    ) -> tuple[int, bytes]:
        """Send one request and read the whole response: ``(status, body)``.

        ``headers`` is extra raw header lines, each ending in CRLF.
        """
        assert self._reader is not None
        assert self._writer is not None
        head = b"%s %s HTTP/1.1\r\n" % (method.encode(), path.encode()) + self._host_header
        if body or method in ("POST", "PUT", "PATCH"):
            head += b"Content-Type: %s\r\nContent-Length: %d\r\n" % (content_type, len(body))
        self._writer.write(head + headers + b"\r\n" + body)
        raw = await self._reader.readuntil(b"\r\n\r\n")
        status = int(raw[9:12])
        length = 0
        lower = raw.lower()
        at = lower.find(b"\r\ncontent-length:")
        if at >= 0:
            end = lower.index(b"\r\n", at + 2)
            length = int(lower[at + 17 : end])
        elif b"\r\ntransfer-encoding:" in lower:
            raise HttpError(status, b"chunked responses are not supported by the bench client")
        payload = await self._reader.readexactly(length) if length else b""
        return status, payload

    async def post_json(self, path: str, data: object, *, expect: int = 201) -> dict[str, object]:
        status, payload = await self.request("POST", path, orjson.dumps(data))
        if status != expect:
            raise HttpError(status, payload)
        parsed = orjson.loads(payload)
        assert isinstance(parsed, dict)
        return parsed


# --------------------------------------------------------------------------- progress


class Progress:
    """A one-line, self-overwriting progress display with an ETA (stderr, TTY or not)."""

    def __init__(self, total_seconds: float, stream: TextIO = sys.stderr) -> None:
        self.total = total_seconds
        self.started = time.monotonic()
        self.stream = stream
        self._tty = stream.isatty()
        self._last = 0.0

    def update(self, label: str, *, done_seconds: float, note: str = "") -> None:
        now = time.monotonic()
        if not self._tty and now - self._last < 2.0:
            return  # a log file gets a line every 2 s, not a flood of carriage returns
        self._last = now
        elapsed = now - self.started
        eta = max(0.0, self.total - done_seconds)
        pct = min(100.0, 100.0 * done_seconds / self.total) if self.total else 100.0
        line = f"{label:<24} {pct:5.1f}%  elapsed {elapsed:5.0f}s  ETA {eta:4.0f}s  {note}"
        self.stream.write(("\r" + line.ljust(110)) if self._tty else line + "\n")
        self.stream.flush()

    def finish(self, message: str = "") -> None:
        if self._tty:
            self.stream.write("\r" + " " * 110 + "\r")
        if message:
            self.stream.write(message + "\n")
        self.stream.flush()
