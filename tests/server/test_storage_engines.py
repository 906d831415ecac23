"""The storage seam: chinwag's own sqlite3 connection, its pragmas, and the SQLAlchemy pin."""

from __future__ import annotations

import ast
import sqlite3
import threading
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version
from sqlalchemy import insert

from chinwag.server.storage.database import Database
from chinwag.server.storage.engines.sqlite import WAL_CHECKPOINT_BYTES
from chinwag.server.storage.prepared import raw_sqlite
from chinwag.server.storage.schema import server_secrets

ROOT = Path(__file__).resolve().parents[2]
STORAGE = ROOT / "src" / "chinwag" / "server" / "storage"
ROW_API = {"_mapping", "_asdict", "_fields", "_t", "_tuple"}
"""SQLAlchemy ``Row``'s public names (underscored so they cannot clash with columns)."""


def _server_requirement(name: str) -> Requirement:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for line in project["optional-dependencies"]["server"]:
        requirement = Requirement(line)
        if requirement.name == name:
            return requirement
    raise AssertionError(f"{name} is not a server dependency")


def test_installed_sqlalchemy_is_within_the_pinned_range() -> None:
    """``engines/sqlite_driver.py`` relies on two undocumented points of SQLAlchemy's
    asyncio layer, ``prepared_pg.py`` and ``engines/postgres.py`` on its asyncpg adapter
    (``tests/server/test_storage_prepared_pg.py``); past the pin, re-check them before
    moving it."""
    pin = _server_requirement("sqlalchemy")
    assert any(spec.operator == "<" for spec in pin.specifier), pin
    assert Version(version("sqlalchemy")) in pin.specifier, (version("sqlalchemy"), str(pin))


def _own_private_names(trees: list[ast.Module]) -> set[str]:
    """Underscored names chinwag's storage code declares: functions and methods, annotated
    fields, and what an ``__init__`` assigns to ``self`` (not every ``self._x``: a subclass
    of a library class reaching into its base's state would otherwise pass)."""
    names: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            if isinstance(node, ast.FunctionDef) and node.name == "__init__":
                for inner in ast.walk(node):
                    if (
                        isinstance(inner, ast.Attribute)
                        and isinstance(inner.ctx, ast.Store)
                        and isinstance(inner.value, ast.Name)
                        and inner.value.id == "self"
                    ):
                        names.add(inner.attr)
    return {n for n in names if n.startswith("_")}


def test_storage_reaches_no_private_attribute_of_another_library() -> None:
    files = sorted(STORAGE.rglob("*.py"))
    trees = [ast.parse(f.read_text(), str(f)) for f in files]
    allowed = ROW_API | _own_private_names(trees)
    found = [
        f"{file.relative_to(ROOT)}:{node.lineno} .{node.attr}"
        for file, tree in zip(files, trees, strict=True)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and node.attr not in allowed
    ]
    assert found == []


async def _pragmas(db: Database, *names: str) -> list[object]:
    async with db.read() as conn:
        raw = raw_sqlite(conn)
        assert isinstance(raw, sqlite3.Connection)
        return [raw.execute(f"PRAGMA {name}").fetchone()[0] for name in names]


@pytest.mark.parametrize(("chosen", "expected"), [(None, 2), ("FULL", 2), ("NORMAL", 1)])
async def test_synchronous_is_full_unless_normal_is_chosen(
    tmp_path: Path, chosen: str | None, expected: int
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'sync.db'}"
    db = Database(url) if chosen is None else Database(url, synchronous=chosen)  # type: ignore[arg-type]
    await db.migrate()
    try:
        assert await _pragmas(db, "synchronous") == [expected]
    finally:
        await db.close()


async def test_the_wal_is_limited_and_checkpointed_off_the_connection(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'limits.db'}")
    await db.migrate()
    try:
        found = await _pragmas(
            db, "journal_mode", "journal_size_limit", "wal_autocheckpoint", "foreign_keys"
        )
        assert found == ["wal", WAL_CHECKPOINT_BYTES, 0, 1]
    finally:
        await db.close()


async def test_in_memory_databases_keep_sqlites_own_checkpoints() -> None:
    db = Database("sqlite+aiosqlite:///:memory:")
    await db.migrate()
    try:
        assert await _pragmas(db, "wal_autocheckpoint") == [1000]
    finally:
        await db.close()


@pytest.mark.parametrize(("chosen", "off_loop"), [("FULL", True), ("NORMAL", False)])
async def test_full_commits_on_a_thread_of_its_own_and_normal_inline(
    tmp_path: Path, chosen: str, off_loop: bool
) -> None:
    """FULL's fsync must not stall the loop; NORMAL's commit is too cheap to hand off."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'commit.db'}", synchronous=chosen)  # type: ignore[arg-type]
    await db.migrate()
    threads: list[str] = []
    try:
        async with db.read() as conn:
            raw = raw_sqlite(conn)
            assert raw is not None
            raw.set_trace_callback(
                lambda sql: (
                    threads.append(threading.current_thread().name) if sql == "COMMIT" else None
                )
            )
        async with db.transaction() as tx:
            await tx.conn.execute(insert(server_secrets).values(name="k", value=b"v"))
    finally:
        await db.close()
    assert len(threads) == 1
    assert threads[0].startswith("chinwag-sqlite-commit") is off_loop, threads
