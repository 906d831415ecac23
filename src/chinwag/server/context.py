"""Services outside a running server (CLI commands, tests): open, use, close."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from chinwag.clock import Clock, SystemClock
from chinwag.server.broker.memory import MemoryBroker
from chinwag.server.handlers import apps as app_handlers
from chinwag.server.services import Services, load_server_secret
from chinwag.server.settings import Settings
from chinwag.server.storage import apps as app_store
from chinwag.server.storage.database import Database
from chinwag.server.storage.records import AppRecord, KeyRecord

__all__ = ["DEV_APP_NAME", "ensure_dev_app", "open_services"]

DEV_APP_NAME = "chinwag-dev"


@asynccontextmanager
async def open_services(settings: Settings, clock: Clock | None = None) -> AsyncIterator[Services]:
    db = Database(
        settings.database_url,
        synchronous=settings.sqlite_synchronous,
        pg_lanes=settings.pg_write_lanes,
        pg_pool_size=settings.pg_pool_size,
    )
    try:
        await db.migrate()
        services = Services(
            settings=settings,
            clock=clock or SystemClock(),
            db=db,
            broker=MemoryBroker(),
            nonce_secret=await load_server_secret(db, "nonce", secrets.token_bytes),
        )
        try:
            yield services
        finally:
            await services.jwks.close()  # the JWKS fetcher's HTTP client, if it opened one
    finally:
        await db.close()


async def ensure_dev_app(services: Services) -> tuple[AppRecord, KeyRecord | None]:
    """The quick start's app: the first staging app named chinwag-dev, created if missing."""
    async with services.db.read() as conn:
        existing = [
            a
            for a in await app_store.list_apps(conn)
            if a.name == DEV_APP_NAME and not a.production
        ]
    if existing:
        app = existing[0]
        async with services.db.read() as conn:
            keys = [k for k in await app_store.list_keys(conn, app.id) if k.development]
        return app, keys[0] if keys else None
    app, key = await app_handlers.create_app(services, DEV_APP_NAME, allow_anonymous=True)
    return app, key.record if key else None
