"""The session kept on the device, so a restarted app is signed in without a new token.

The session token is a bearer credential, so every file that holds it (or the user's data)
is created owner-only (0600) in an owner-only folder, before anything is written to it:
SQLite creates its ``-wal`` and ``-shm`` files with the main file's mode. With
``use_keyring=True`` and the optional ``keyring`` package the token itself goes to the OS
keyring instead.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from chinwag.client.models import User

__all__ = ["SavedSession", "SessionVault", "create_private_file"]

log = logging.getLogger("chinwag.client")


def create_private_file(path: Path) -> None:
    """Make ``path`` (and its folder) readable by the owner only, creating it if needed."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)


@dataclass(frozen=True, slots=True)
class SavedSession:
    token: str
    session_id: str
    user: User
    expires_at: float
    """When the server ends the session, in the server's clock."""
    issued_at: float = 0.0
    """When the server opened it, in the server's clock (0 when unknown)."""
    clock_offset: float = 0.0
    """The server's clock minus this device's, measured when the session was opened."""

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> SavedSession:
        return cls(
            token=str(body["session_token"]),
            session_id=str(body["session_id"]),
            user=User.from_json(body["user"]),
            expires_at=float(body["expires_at"]),
            issued_at=float(body.get("issued_at") or 0.0),
            clock_offset=float(body.get("clock_offset") or 0.0),
        )

    def to_json(self, *, with_token: bool = True) -> dict[str, Any]:
        return {
            "session_token": self.token if with_token else None,
            "session_id": self.session_id,
            "user": self.user.to_json(),
            "expires_at": self.expires_at,
            "issued_at": self.issued_at,
            "clock_offset": self.clock_offset,
        }

    def refresh_due(self, fraction: float) -> float:
        """This device's clock time at which ``fraction`` of the session's life has passed."""
        issued = self.issued_at or self.expires_at
        return issued + fraction * (self.expires_at - issued) - self.clock_offset


class SessionVault:
    """``<store_dir>/<app_id>/session.sqlite3``: one row, the current session."""

    def __init__(self, directory: Path, app_id: str, *, use_keyring: bool = False) -> None:
        self.path = directory / app_id / "session.sqlite3"
        self.app_id = app_id
        self._keyring: Any = None
        if use_keyring:
            try:
                keyring = importlib.import_module("keyring")
            except ImportError:
                log.warning("keyring is not installed; keeping the session token in the store")
            else:
                self._keyring = keyring

    def _connect(self) -> sqlite3.Connection:
        create_private_file(self.path)
        conn = sqlite3.connect(self.path)
        conn.execute("CREATE TABLE IF NOT EXISTS session (k INTEGER PRIMARY KEY, body TEXT)")
        return conn

    def _load(self) -> SavedSession | None:
        if not self.path.exists():
            return None
        conn = self._connect()
        try:
            row = conn.execute("SELECT body FROM session WHERE k = 1").fetchone()
        finally:
            conn.close()
        if row is None:
            return None
        body = orjson.loads(row[0])
        if self._keyring is not None:
            body["session_token"] = self._keyring.get_password(f"chinwag:{self.app_id}", "session")
            if not body["session_token"]:
                return None
        return SavedSession.from_json(body)

    def _save(self, session: SavedSession) -> None:
        if self._keyring is not None:
            self._keyring.set_password(f"chinwag:{self.app_id}", "session", session.token)
        body = session.to_json(with_token=self._keyring is None)
        conn = self._connect()
        try:
            with conn:
                conn.execute(
                    "INSERT OR REPLACE INTO session (k, body) VALUES (1, ?)",
                    (orjson.dumps(body).decode(),),
                )
        finally:
            conn.close()

    def _clear(self) -> None:
        if self._keyring is not None:
            try:
                self._keyring.delete_password(f"chinwag:{self.app_id}", "session")
            except Exception:  # keyring backends raise their own types
                log.debug("no keyring entry to delete")
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    async def load(self) -> SavedSession | None:
        return await asyncio.to_thread(self._load)

    async def save(self, session: SavedSession) -> None:
        await asyncio.to_thread(self._save, session)

    async def clear(self) -> None:
        await asyncio.to_thread(self._clear)
