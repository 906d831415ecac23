"""What an operator's infrastructure asks a node: ``/healthz``, ``/readyz``, ``/metrics``.

``/healthz`` does no I/O: it answers while the event loop runs, which is all a liveness
probe should restart a process for. ``/readyz`` checks what serving needs
(:mod:`chinwag.server.readiness`). ``/metrics`` is Prometheus' text format, only for
clients in ``Settings.metrics_networks`` (loopback by default): it says how busy the node
is and how sign-ins fail, which is nobody else's business. Others get 404, as if the
endpoint did not exist.
"""

from __future__ import annotations

import ipaddress

from fastapi import APIRouter, Request
from starlette.responses import Response

from chinwag.core.client_address import Network, trusted_networks
from chinwag.core.errors import ErrorId
from chinwag.server import metrics
from chinwag.server.api.deps import client_address, services_of
from chinwag.server.api.responses import JSON, plain_error
from chinwag.server.readiness import check_readiness

__all__ = ["ops_router"]


def ops_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)
    router.add_api_route("/healthz", healthz, methods=["GET"])
    router.add_api_route("/readyz", readyz, methods=["GET"])
    router.add_api_route("/metrics", metrics_endpoint, methods=["GET"])
    return router


async def healthz() -> JSON:
    return JSON({"status": "ok"})


async def readyz(request: Request) -> JSON:
    found = await check_readiness(services_of(request))
    if found.ready:
        return JSON(found.to_json())
    return plain_error(
        503,
        ErrorId.SERVICE_UNAVAILABLE,
        "This node is not ready to serve; see data.checks.",
        found.to_json(),
        headers={"Retry-After": "5"},
    )


async def metrics_endpoint(request: Request) -> Response:
    allowed = trusted_networks(tuple(services_of(request).settings.metrics_networks))
    if not _within(client_address(request), allowed):
        return plain_error(404, ErrorId.NOT_FOUND, "No such endpoint.")
    return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE_LATEST)


def _within(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    return any(parsed.version == net.version and parsed in net for net in networks)
