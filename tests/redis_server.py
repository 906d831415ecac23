"""A redis-server of the test's own, to stop, restart and configure at will.

The shared Redis on 6379 is never stopped or reconfigured; tests about Redis failing,
passwords, ACLs or TLS start one of these on a free port instead.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import free_port

__all__ = ["RedisServer", "redis_server"]


@dataclass
class RedisServer:
    """``redis-server`` on ``port``; ``args`` are extra command-line options."""

    workdir: Path
    args: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, listen_port: int | None = None) -> None:
        """Start (again) on the same port; returns once it accepts connections.
        ``listen_port``: the port to wait for (the TLS port, when plain TCP is off)."""
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is not installed"
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", str(self.workdir), *self.args]
        with (self.workdir / f"redis-{self.port}.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log_text()[-2000:]}")
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", listen_port or self.port), 0.2).close()
                return
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def log_text(self) -> str:
        path = self.workdir / f"redis-{self.port}.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextlib.contextmanager
def redis_server(workdir: Path, *args: str, port: int | None = None) -> Iterator[RedisServer]:
    server = RedisServer(workdir, list(args), port or free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
