"""SQLite's WAL is checkpointed by the background thread, not by the server's commits."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import bindparam, insert

from chinwag.server.storage.database import Database
from chinwag.server.storage.prepared import Prepared, raw_sqlite
from chinwag.server.storage.schema import server_secrets

_INSERT = Prepared(insert(server_secrets).values(name=bindparam("name"), value=bindparam("value")))


async def test_commits_do_not_checkpoint_and_the_thread_does(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.migrate()
    try:
        async with db.read() as conn:
            raw = raw_sqlite(conn)
            assert raw is not None
            assert raw.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
        # Bursts of writes with pauses: the thread copies each burst back and the log
        # restarts from its beginning, so the file never holds much more than one burst.
        # Without the thread (commits no longer checkpoint) it would hold all six.
        wal = Path(f"{path}-wal")
        sizes = []
        for burst in range(6):
            for i in range(100):
                async with db.transaction() as tx:
                    row = {"name": f"k{burst}-{i}", "value": b"x" * 2000}
                    await _INSERT.rowcount(tx.conn, row)
            sizes.append(wal.stat().st_size)
            await asyncio.sleep(0.6)
        assert sizes[-1] < 2.5 * sizes[0], sizes
    finally:
        await db.close()
