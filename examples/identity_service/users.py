"""Accounts and sign-in sessions in SQLite; passwords hashed with argon2id.

Only hashes are stored: an argon2id hash of each password (argon2-cffi's defaults, which
follow RFC 9106's recommendations), and a SHA-256 of each sign-in session token (the token
is random and long, so a fast hash suffices; a stolen database holds no usable token).

Calls are blocking (sqlite3, argon2): the web layer runs them in a worker thread. Each call
opens its own connection, which keeps the store thread-safe without a lock.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError

__all__ = ["SIGN_IN_LIFETIME", "User", "UserStore", "UsernameTaken"]

SIGN_IN_LIFETIME = 30 * 24 * 3600
"""How long a sign-in lasts: the ceiling for every chat session opened through it."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    display_name TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sign_ins (
    token_sha256 TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(user_id),
    expires_at REAL NOT NULL
);
"""
# A hash to verify against when the user does not exist, so "no such user" takes as long
# as "wrong password" and the timing does not reveal which usernames exist.
_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("not a password anyone has")


class UsernameTaken(Exception):
    pass


@dataclass(frozen=True)
class User:
    user_id: str
    display_name: str | None
    sign_in_expires_at: float | None = None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class UserStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        # Owner-only from the start: the file holds password hashes.
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
        with self._connect() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path)) as db, db:
            yield db

    def sign_up(self, user_id: str, password: str, display_name: str | None, now: float) -> User:
        password_hash = _HASHER.hash(password)
        try:
            with self._connect() as db:
                db.execute(
                    "INSERT INTO users VALUES (?, ?, ?, ?)",
                    (user_id, password_hash, display_name, now),
                )
        except sqlite3.IntegrityError:
            raise UsernameTaken(user_id) from None
        return User(user_id, display_name)

    def check_password(self, user_id: str, password: str) -> User | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT password_hash, display_name FROM users WHERE user_id = ?", (user_id,)
            ).fetchone()
        try:
            _HASHER.verify(row[0] if row else _DUMMY_HASH, password)
        except VerificationError:
            return None
        return User(user_id, row[1]) if row else None

    def open_sign_in(self, user_id: str, now: float) -> tuple[str, float]:
        """A new sign-in session: (the bearer token, shown once; its expiry)."""
        token = secrets.token_urlsafe(32)
        expires_at = now + SIGN_IN_LIFETIME
        with self._connect() as db:
            db.execute(
                "INSERT INTO sign_ins VALUES (?, ?, ?)", (_digest(token), user_id, expires_at)
            )
        return token, expires_at

    def signed_in_user(self, token: str, now: float) -> User | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT u.user_id, u.display_name, s.expires_at FROM sign_ins s "
                "JOIN users u USING (user_id) WHERE s.token_sha256 = ? AND s.expires_at > ?",
                (_digest(token), now),
            ).fetchone()
        return User(row[0], row[1], row[2]) if row else None

    def close_sign_in(self, token: str) -> bool:
        with self._connect() as db:
            cursor = db.execute("DELETE FROM sign_ins WHERE token_sha256 = ?", (_digest(token),))
        return cursor.rowcount > 0
