"""Whether this node should be sent traffic: the checks behind ``GET /readyz``.

Liveness (``/healthz``) and readiness are different questions. A node whose database is
gone is alive (restarting it would not help) but not ready (a load balancer should send
its requests elsewhere). Ready means: the database answers within
``Settings.readiness_timeout``, its schema is not behind this code's migrations (it may be
ahead: during a rolling restart the first new node migrates while the old ones still
serve), and the node is not shutting down.

The broker is reported but does not decide: a node whose Redis is down still serves
every request correctly (the database is the truth; doorbells only make delivery fast),
and every node shares the one Redis, so failing readiness on it would take the whole
deployment out of the load balancer at once. ``broker`` is ``connected``, ``deaf``
(subscription lost; catching up from the store when it returns) or ``local`` (memory://).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import text

from chinwag.server.services import Services
from chinwag.server.storage.database import sqlite_file

__all__ = ["Readiness", "check_readiness"]

_MIGRATIONS = Path(__file__).parent / "storage" / "migrations"


@dataclass(frozen=True)
class Readiness:
    ready: bool
    checks: dict[str, str]
    """``database``: ``ok`` or why not; ``migrations``: ``ok``, ``ahead (rev)``,
    ``behind (rev)`` or ``unknown``;
    ``broker``: ``connected``/``deaf``/``local``; ``draining``: ``yes``/``no``."""

    def to_json(self) -> dict[str, Any]:
        return {"status": "ready" if self.ready else "not_ready", "checks": self.checks}


@lru_cache(maxsize=1)
def _revisions() -> tuple[str, frozenset[str]]:
    """The newest revision this code knows, and all it knows (read once: the scripts ship
    with the code)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    script = ScriptDirectory.from_config(config)
    head = script.get_current_head()
    assert head is not None
    return head, frozenset(s.revision for s in script.walk_revisions())


def _migrations(revision: str | None) -> str:
    """``ok`` at the head; ``ahead (…)`` past it (newer code migrated during a rolling
    restart: still ready, or every old node would leave the load balancer at once);
    ``behind (…)`` otherwise (not ready)."""
    head, known = _revisions()
    if revision == head:
        return "ok"
    if revision is not None and revision not in known:
        return f"ahead ({revision})"
    return f"behind ({revision or 'none'})"


async def check_readiness(services: Services) -> Readiness:
    database, revision = await _database(services)
    migrations = _migrations(revision) if database == "ok" else "unknown"
    draining = services.drain.draining
    checks = {
        "database": database,
        "migrations": migrations,
        "broker": str(getattr(services.broker, "state", "unknown")),
        "draining": "yes" if draining else "no",
    }
    ready = database == "ok" and not migrations.startswith(("behind", "unknown")) and not draining
    return Readiness(ready, checks)


async def _database(services: Services) -> tuple[str, str | None]:
    """``ok`` and the schema's revision, or what went wrong (never the URL or a password)."""
    if _sqlite_file_missing(services.db.url):
        return "database file missing", None
    try:
        return "ok", await asyncio.wait_for(
            _revision(services), services.settings.readiness_timeout
        )
    except TimeoutError:
        return "timed out", None
    except Exception as exc:
        return f"unreachable ({type(exc).__name__})", None


def _sqlite_file_missing(url: str) -> bool:
    """An open SQLite connection keeps reading a deleted file, so check the path itself
    (one stat, cheaper than a thread hand-off)."""
    file = sqlite_file(url)
    return file is not None and not os.path.isfile(file)


async def _revision(services: Services) -> str | None:
    async with services.db.read() as conn:
        found = await conn.execute(text("SELECT version_num FROM alembic_version"))
        return found.scalar_one_or_none()
