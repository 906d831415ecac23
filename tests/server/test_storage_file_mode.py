"""The SQLite database (HS256 secrets, development private keys) is owner-only at rest."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import insert

from chinwag.server.storage.database import Database
from chinwag.server.storage.schema import server_secrets


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """What many hosts run with: new files would be world-readable (0644)."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


async def _write(path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        await db.migrate()
        async with db.transaction() as tx:
            await tx.conn.execute(insert(server_secrets).values(name="t", value=b"secret"))
        for suffix in ("-wal", "-shm"):  # still open: the WAL files exist now
            assert Path(f"{path}{suffix}").exists()
            assert _mode(Path(f"{path}{suffix}")) == 0o600, suffix
    finally:
        await db.close()


@pytest.mark.usefixtures("permissive_umask")
async def test_a_new_database_and_its_wal_files_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "chinwag.db"
    await _write(path)
    assert _mode(path) == 0o600


@pytest.mark.usefixtures("permissive_umask")
async def test_an_existing_readable_database_is_tightened_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "chinwag.db"
    path.touch()
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="chinwag.storage"):
        await _write(path)
    assert _mode(path) == 0o600
    assert str(path) in caplog.text
