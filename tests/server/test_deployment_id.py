"""The deployment id namespaces shared infrastructure: one per database, stable across nodes."""

from __future__ import annotations

from pathlib import Path

from chinwag.server.services import load_deployment_id
from chinwag.server.storage.database import Database


async def test_nodes_of_one_database_agree_and_another_database_differs(
    database_url: str, tmp_path: Path
) -> None:
    first, second = Database(database_url), Database(database_url)
    other = Database(f"sqlite+aiosqlite:///{tmp_path / 'other.db'}")
    try:
        for db in (first, second, other):
            await db.migrate()
        a, b, c = [await load_deployment_id(db) for db in (first, second, other)]
    finally:
        for db in (first, second, other):
            await db.close()
    assert a == b
    assert a != c
    assert len(bytes.fromhex(a)) == 8
