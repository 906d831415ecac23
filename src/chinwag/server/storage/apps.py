"""Apps and their signing keys."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.server.storage.engines import locked
from chinwag.server.storage.prepared import Prepared
from chinwag.server.storage.records import AppRecord, KeyRecord
from chinwag.server.storage.schema import app_keys, apps

__all__ = [
    "count_keys",
    "delete_key",
    "get_app",
    "get_app_and_key",
    "get_conversation_policy",
    "get_key",
    "insert_app",
    "insert_key",
    "list_apps",
    "list_keys",
    "lock_app",
    "set_key_enabled",
    "update_app",
]


_APP_COLUMNS = [apps.c[f] for f in AppRecord.__slots__]
_KEY_COLUMNS = [app_keys.c[f] for f in KeyRecord.__slots__]
_GET_APP = Prepared(select(*_APP_COLUMNS).where(apps.c.id == bindparam("app_id")))
_GET_POLICY = Prepared(select(apps.c.conversation_policy).where(apps.c.id == bindparam("app_id")))
_GET_APP_KEY = Prepared(
    select(*_KEY_COLUMNS).where(
        app_keys.c.kid == bindparam("kid"), app_keys.c.app_id == bindparam("app_id")
    )
)

_GET_APP_AND_KEY = Prepared(
    select(*_APP_COLUMNS, *_KEY_COLUMNS)
    .select_from(
        apps.outerjoin(
            app_keys, (app_keys.c.app_id == apps.c.id) & (app_keys.c.kid == bindparam("kid"))
        )
    )
    .where(apps.c.id == bindparam("app_id"))
)


def _app(row: Any) -> AppRecord:
    """From a row in ``AppRecord`` field order (SQLite gives booleans as 0/1)."""
    id_, name, environment, lifetime, require_nonce, max_age, anonymous, created, updated = row[:9]
    return AppRecord(
        id=id_,
        name=name,
        environment=environment,
        session_lifetime=int(lifetime),
        require_nonce=bool(require_nonce),
        max_token_age=int(max_age),
        allow_anonymous=bool(anonymous),
        created_at=float(created),
        updated_at=float(updated),
        conversation_policy=row[9],
        suspended_at=None if row[10] is None else float(row[10]),
    )


def _key(row: Any) -> KeyRecord:
    """From a row in ``KeyRecord`` field order."""
    kid, app_id, alg, public_key_pem, secret, private_key_pem, development, enabled, created = row
    return KeyRecord(
        kid=kid,
        app_id=app_id,
        alg=alg,
        public_key_pem=public_key_pem,
        secret=secret,
        private_key_pem=private_key_pem,
        development=bool(development),
        enabled=bool(enabled),
        created_at=float(created),
    )


async def insert_app(conn: AsyncConnection, record: AppRecord) -> None:
    await conn.execute(insert(apps).values({f: getattr(record, f) for f in record.__slots__}))


async def get_app(conn: AsyncConnection, app_id: str) -> AppRecord | None:
    row = await _GET_APP.first(conn, {"app_id": app_id})
    return _app(row) if row else None


async def get_app_and_key(
    conn: AsyncConnection, app_id: str, kid: str
) -> tuple[AppRecord | None, KeyRecord | None]:
    """The app and its key ``kid`` in one statement (a sign-in needs both, and on
    PostgreSQL each statement is a round trip); the key is None when the app has none
    by that id, both are None when there is no such app."""
    row = await _GET_APP_AND_KEY.first(conn, {"app_id": app_id, "kid": kid})
    if row is None:
        return None, None
    split = len(_APP_COLUMNS)
    key = _key(row[split:]) if row[split] is not None else None
    return _app(row[:split]), key


async def lock_app(conn: AsyncConnection, app_id: str) -> None:
    """Hold the app's row until the transaction ends (PostgreSQL; SQLite's one writer
    already excludes the others), so a count-capped resource of the app (webhook
    endpoints, signing keys, agents) is counted and added by one transaction at a time:
    without it, 40 concurrent creations each counted 19 and all inserted."""
    await conn.execute(locked(conn, select(apps.c.id).where(apps.c.id == app_id)))


async def count_keys(conn: AsyncConnection, app_id: str) -> int:
    found = select(func.count()).select_from(app_keys).where(app_keys.c.app_id == app_id)
    return int(await conn.scalar(found) or 0)


async def get_conversation_policy(conn: AsyncConnection, app_id: str) -> str:
    """The app's ``conversation_policy`` (``open`` for an app that does not exist)."""
    row = await _GET_POLICY.first(conn, {"app_id": app_id})
    return str(row[0]) if row else "open"


async def list_apps(conn: AsyncConnection) -> list[AppRecord]:
    rows = await conn.execute(select(*_APP_COLUMNS).order_by(apps.c.created_at, apps.c.id))
    return [_app(r) for r in rows]


async def update_app(conn: AsyncConnection, app_id: str, changes: dict[str, Any]) -> None:
    await conn.execute(update(apps).where(apps.c.id == app_id).values(**changes))


async def insert_key(conn: AsyncConnection, record: KeyRecord) -> None:
    await conn.execute(insert(app_keys).values({f: getattr(record, f) for f in record.__slots__}))


async def get_key(conn: AsyncConnection, app_id: str, kid: str) -> KeyRecord | None:
    """The app's key ``kid``; a kid is unique only within its app (0009), so every key
    call names the app, and none can reach another app's key of the same kid."""
    row = await _GET_APP_KEY.first(conn, {"kid": kid, "app_id": app_id})
    return _key(row) if row else None


async def list_keys(conn: AsyncConnection, app_id: str) -> list[KeyRecord]:
    rows = await conn.execute(
        select(*_KEY_COLUMNS).where(app_keys.c.app_id == app_id).order_by(app_keys.c.created_at)
    )
    return [_key(r) for r in rows]


def _app_key(app_id: str, kid: str) -> ColumnElement[bool]:
    return (app_keys.c.app_id == app_id) & (app_keys.c.kid == kid)


async def set_key_enabled(conn: AsyncConnection, app_id: str, kid: str, enabled: bool) -> bool:
    result = await conn.execute(
        update(app_keys).where(_app_key(app_id, kid)).values(enabled=enabled)
    )
    return bool(result.rowcount)


async def delete_key(conn: AsyncConnection, app_id: str, kid: str) -> bool:
    result = await conn.execute(delete(app_keys).where(_app_key(app_id, kid)))
    return bool(result.rowcount)
