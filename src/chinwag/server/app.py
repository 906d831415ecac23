"""The app factory and its lifespan: open store, broker and hub; close them in reverse."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from chinwag import __version__
from chinwag.clock import Clock, SystemClock
from chinwag.server.api import auth as auth_api
from chinwag.server.api import blocks as blocks_api
from chinwag.server.api import conversations as conversations_api
from chinwag.server.api import events as events_api
from chinwag.server.api import messages as messages_api
from chinwag.server.api import push_tokens as push_tokens_api
from chinwag.server.api import users as users_api
from chinwag.server.api.docs import docs_router
from chinwag.server.api.drain_gate import DrainGate
from chinwag.server.api.errors import BodyLimit, install_error_handlers
from chinwag.server.api.openapi import install_openapi
from chinwag.server.api.ops import ops_router
from chinwag.server.api.platform import platform_router
from chinwag.server.api.request_metrics import RequestMetrics
from chinwag.server.api.web import web_router
from chinwag.server.broker import open_broker
from chinwag.server.log_redaction import install_redaction
from chinwag.server.rate_limits import open_rate_limits
from chinwag.server.services import Services, load_deployment_id, load_server_secret
from chinwag.server.settings import Settings
from chinwag.server.storage.database import Database
from chinwag.server.webhooks.runner import Delivery
from chinwag.server.ws import WEBSOCKET_PATH, serve_socket

__all__ = ["create_app"]

log = logging.getLogger("chinwag")


class ChinwagAPI(FastAPI):
    """FastAPI, with the WebSocket endpoint served ahead of the middleware stack.

    None of the HTTP middleware (error pages, body limits, routing, exception handlers)
    does anything for a WebSocket, yet through it every frame a socket sends passes each
    layer's ``send`` wrapper for the socket's whole life, and an idle socket's task keeps
    each layer's frame alive (~6 KiB per socket, ``bench/fanout.py``). ``serve_socket``
    handles its own errors and closes.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == WEBSOCKET_PATH:
            scope["app"] = self
            await serve_socket(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or Settings()
    clock = clock or SystemClock()
    install_redaction()  # before uvicorn logs the first request line

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(
            settings.database_url,
            synchronous=settings.sqlite_synchronous,
            pg_lanes=settings.pg_write_lanes,
            pg_pool_size=settings.pg_pool_size,
        )
        await db.migrate()
        await db.warm()
        deployment_id = await load_deployment_id(db)
        broker = open_broker(
            settings.broker_url, prefix=settings.broker_prefix, deployment_id=deployment_id
        )
        services = Services(
            settings=settings,
            clock=clock,
            db=db,
            broker=broker,
            nonce_secret=await load_server_secret(db, "nonce", _random),
            deployment_id=deployment_id,
            rate_limits=open_rate_limits(settings, clock, deployment_id),
        )
        app.state.services = services
        if settings.create_dev_app:
            from chinwag.server.context import ensure_dev_app

            await ensure_dev_app(services)
        await broker.start(services.on_doorbell)
        services.start_background()
        delivery = Delivery(services)
        services.outbox_doorbell = delivery.wake
        app.state.delivery = delivery
        try:
            yield
        finally:
            await delivery.close()
            await services.shutdown()
            await services.rate_limits.close()
            await broker.close()
            await db.close()

    app = ChinwagAPI(
        title="chinwag",
        version=__version__,
        lifespan=lifespan,
        description="Self-hostable chat with bring-your-own-identity authentication.",
        docs_url=None,  # served from package files by docs_router, not from a CDN
        redoc_url=None,
        telemetry=None
        if settings.opentelemetry
        else {"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    app.include_router(auth_api.router)
    app.include_router(conversations_api.router)
    app.include_router(messages_api.router)
    app.include_router(users_api.router)
    app.include_router(events_api.router)
    app.include_router(blocks_api.router)
    app.include_router(platform_router())
    app.include_router(push_tokens_api.router)
    app.include_router(web_router())
    app.include_router(docs_router(app.openapi_url or "/openapi.json", app.title))
    install_openapi(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    _install_operations(app)
    return app


def _install_operations(app: FastAPI) -> None:
    """/healthz, /readyz, /metrics, the request counters (``api/ops.py``) and the
    refusal of new requests while draining (``api/drain_gate.py``)."""
    app.include_router(ops_router())
    app.add_middleware(DrainGate)
    app.add_middleware(RequestMetrics)  # outermost: counts the gate's refusals too


def _random(n: int) -> bytes:
    import secrets

    return secrets.token_bytes(n)
