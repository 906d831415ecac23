"""The merge's one write statement keeps its prepared plan on PostgreSQL
(``storage/spans.py``, ``_PG_WRITE``): every send runs it, and when each execution was
planned afresh that planning was a fifth of PostgreSQL's CPU per send."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from chinwag.server.storage import spans
from chinwag.server.storage.database import Database
from tests.support import postgres_database

pytestmark = pytest.mark.postgres

_PLANS = text(
    "SELECT coalesce(max(generic_plans), 0) FROM pg_prepared_statements"
    " WHERE statement LIKE 'WITH extended AS%'"
)


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    async with postgres_database() as url:
        database = Database(url)
        await database.migrate()
        try:
            yield database
        finally:
            await database.close()


async def test_the_merge_write_switches_to_its_generic_plan(db: Database) -> None:
    """PostgreSQL plans a prepared statement for its parameters five times, then keeps the
    generic plan unless the custom ones look cheaper. A write for one or two members must
    not look cheaper than the generic plan (it did while arrays went to ``unnest`` bare)."""
    plan = spans._Plan(
        extend=[{"u_pk": 1, "at": 1, "new_last": 2}],
        heads={1: 2, 2: 3},
        streamed=[
            {"conv_id": "c", "u_pk": 1, "merged": 2},
            {"conv_id": "c", "u_pk": 2, "merged": 2},
        ],
    )
    async with db.transaction() as tx:
        for _ in range(8):  # the rows do not exist: nothing is written, the plan is made
            await spans._write_in_one(tx.conn, plan, {("c", 1): 2})
        generic = (await tx.conn.execute(_PLANS)).scalar_one()
    assert generic >= 2
