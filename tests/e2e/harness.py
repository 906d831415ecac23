"""Processes for the end-to-end tests: the chinwag server, the CLI, and devices.

Everything here waits on something observable — a line a device printed, ``/healthz``
answering, a row in the server's database — with a bound of a few seconds, never a bare
sleep: on a loaded CI machine a sleep is either too short (flaky) or too long (slow).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

__all__ = ["Cli", "DeviceProcess", "ServerProcess", "free_port", "until"]

WAIT = 10.0
"""Seconds any single wait may take before the test fails (generous for a loaded CI box)."""
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def until(check: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """Poll ``check`` until it returns something truthy (for state outside any process's
    output: a database row, a file); fails naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@dataclass
class Cli:
    """``chinwag ...`` as a subprocess on the server's database, as an operator runs it."""

    database_url: str

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "chinwag.cli.main", *args, "--database-url", self.database_url],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=ROOT,
            check=False,
        )

    def json(self, *args: str) -> Any:
        done = self.run(*args, "--json")
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return json.loads(done.stdout)

    def has_option(self, option: str, *command: str) -> bool:
        help_text = subprocess.run(
            [sys.executable, "-m", "chinwag.cli.main", *command, "--help"],
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
            cwd=ROOT,
            check=False,
        ).stdout
        return option in help_text


@dataclass
class ServerProcess:
    """``chinwag serve`` on a fixed port, so it can be stopped and started again in place."""

    database_url: str
    db_path: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.launch()
        self.wait_healthy()

    def launch(self) -> None:
        env = {
            **os.environ,
            "CHINWAG_TOKEN_LEEWAY_SECONDS": "0",  # a token's exp is the session's end
            "CHINWAG_AUTH_RATE_PER_SECOND": "0",
            "CHINWAG_LOG_LEVEL": "warning",
        }
        command = [sys.executable, "-m", "chinwag.cli.main", "serve", "--no-dev-app"]
        command += ["--port", str(self.port), "--database-url", self.database_url]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log, env=env, cwd=ROOT)

    def wait_healthy(self) -> None:
        until(self._healthy, "the server's /healthz", timeout=30)

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the server exited: {self.log_path.read_text()[-2000:]}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read the server's database directly: the truth about sessions, behind the API."""
        with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10) as conn:
            return list(conn.execute(sql, params).fetchall())

    def sessions(self, app_id: str, user_id: str) -> list[tuple[str, float, str | None]]:
        """The user's sessions: (id, expires_at, revoked_reason), oldest first."""
        rows = self.query(
            "SELECT s.id, s.expires_at, s.revoked_reason FROM sessions s "
            "JOIN users u ON u.pk = s.user_pk WHERE u.app_id = ? AND u.user_id = ? "
            "ORDER BY s.created_at",
            app_id,
            user_id,
        )
        return [(str(r[0]), float(r[1]), r[2]) for r in rows]

    def live_sessions(self, app_id: str, user_id: str) -> list[str]:
        now = time.time()
        return [
            s
            for s, expires, reason in self.sessions(app_id, user_id)
            if not reason and expires > now
        ]


class DeviceProcess:
    """``tests/e2e/device.py`` in its own process, with its output kept as a list of events."""

    def __init__(self, args: list[str], store_dir: Path, stderr_path: Path) -> None:
        self.args = args
        self.store_dir = store_dir
        self.stderr_path = stderr_path
        self.events: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._next_id = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process without waiting: commands queue in its stdin until it is ready
        (its ``ready`` event says whether it was signed in from disk)."""
        with self.stderr_path.open("ab") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.e2e.device", *self.args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                cwd=ROOT,
            )
        assert self.process.stdout is not None
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()

    def _read(self, stdout: IO[bytes]) -> None:
        for line in stdout:
            with self._changed:
                self.events.append(json.loads(line))
                self._changed.notify_all()
        with self._changed:
            self.events.append({"event": "exited"})
            self._changed.notify_all()

    def mark(self) -> int:
        """A position in the event list: ``wait_for(since=mark)`` sees only what came after."""
        with self._changed:
            return len(self.events)

    def wait_for(
        self, name: str | tuple[str, ...], *, since: int = 0, timeout: float = WAIT, **fields: Any
    ) -> dict[str, Any]:
        """The first event ``name`` (or any of these names) with these field values, at or
        after ``since``."""
        names = (name,) if isinstance(name, str) else name

        def found() -> dict[str, Any] | None:
            for event in self.events[since:]:
                if event["event"] in names and all(event.get(k) == v for k, v in fields.items()):
                    return event
            return None

        with self._changed:
            if not self._changed.wait_for(lambda: found() is not None, timeout=timeout):
                raise AssertionError(
                    f"no {name} {fields} within {timeout}s; saw: {self.events[since:][-30:]}\n"
                    f"stderr: {self.stderr_path.read_text()[-3000:]}"
                )
            event = found()
            assert event is not None
            return event

    def seen(self, name: str, *, since: int = 0, **fields: Any) -> list[dict[str, Any]]:
        with self._changed:
            return [
                e
                for e in self.events[since:]
                if e["event"] == name and all(e.get(k) == v for k, v in fields.items())
            ]

    def send(self, cmd: str, **args: Any) -> int:
        """Send a command without waiting; returns its id (see :meth:`reply`)."""
        assert self.process is not None
        assert self.process.stdin is not None
        self._next_id += 1
        line = json.dumps({"id": self._next_id, "cmd": cmd, **args}).encode() + b"\n"
        self.process.stdin.write(line)
        self.process.stdin.flush()
        return self._next_id

    def reply(self, request_id: int, timeout: float = WAIT) -> dict[str, Any]:
        return self.wait_for("reply", id=request_id, timeout=timeout)

    def call(self, cmd: str, timeout: float = WAIT, **args: Any) -> Any:
        """Run a command that must succeed; returns its result."""
        answer = self.reply(self.send(cmd, **args), timeout)
        assert answer["ok"], answer
        return answer["result"]

    def sign_in(self) -> str:
        """Sign in and wait for the first sync: what is sent from then on arrives live
        (a ``received`` event), not inside the downloaded history."""
        mark = self.mark()
        user_id = str(self.call("sign_in"))
        self.wait_for("synced", since=mark)
        return user_id

    def fails(self, cmd: str, **args: Any) -> str:
        """Run a command that must fail; returns the error's class name."""
        answer = self.reply(self.send(cmd, **args))
        assert not answer["ok"], answer
        return str(answer["error"])

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL, as the OS ends an app: no clean-up runs."""
        if self.process is not None and self.process.poll() is None:
            mark = self.mark()
            self.process.kill()
            self.process.wait(timeout=WAIT)
            self.wait_for("exited", since=mark)
        self.close_pipes()

    def close_pipes(self) -> None:
        if self.process is not None:
            for pipe in (self.process.stdin, self.process.stdout):
                if pipe is not None:
                    pipe.close()
