"""Prometheus metrics: the objects, and plain functions the rest of the server calls.

The counters are module-level, in prometheus-client's default registry, because that is
how the library is used (one registry per process) and because code far from the app
factory (the broker, the group-commit batcher) must be able to count without being handed
an object. Tests read deltas, never absolute values.

Labels are bounded by construction: routes are the app's route *templates*
(``/v1/conversations/{conversation_id}/messages``, never a raw path; anything unmatched is
``unmatched``), methods and statuses come from small fixed sets, and authentication
reasons from the documented error ids and token-rejection reasons (anything else is
``other``). No label ever holds a user, app, session or conversation id.

With ``chinwag serve --workers N`` the workers share one view through prometheus-client's
multiprocess mode (:func:`chinwag.server.workers.prepare_multiprocess_metrics` sets
``PROMETHEUS_MULTIPROC_DIR`` before this module is first imported): counters and
histograms are summed over workers, and the open-socket gauge is the live workers' sum.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess

from chinwag.core.errors import ChinwagError, ErrorId, TokenRejection

__all__ = [
    "CONTENT_TYPE_LATEST",
    "authentication",
    "batch_committed",
    "doorbell_received",
    "doorbell_repaired",
    "doorbell_sent",
    "exposition",
    "fanout_written",
    "http_request",
    "messages_stored",
    "pages_read_together",
    "socket_closed",
    "socket_opened",
]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_REASONS = frozenset({str(e) for e in ErrorId} | {str(r) for r in TokenRejection})

HTTP_REQUESTS = Counter(
    "chinwag_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "chinwag_http_request_duration_seconds",
    "Time from a request's arrival to its response's end, by route template.",
    ["route", "method"],
    buckets=_LATENCY_BUCKETS,
)
AUTHENTICATIONS = Counter(
    "chinwag_authentications",
    "Sign-ins (POST /v1/sessions and /v1/sessions/anonymous) by outcome and reason.",
    ["outcome", "reason"],
)
OPEN_SOCKETS = Gauge(
    "chinwag_open_websockets",
    "WebSockets registered with the hub (signed in and streaming).",
    multiprocess_mode="livesum",
)
MESSAGES = Counter("chinwag_messages_stored", "Messages stored (committed), duplicates excluded.")
FANOUT = Histogram(
    "chinwag_fanout_seconds",
    "From a doorbell reaching this node's hub to the event's frame being written to a socket "
    "(one sample per socket per burst).",
    buckets=_LATENCY_BUCKETS,
)
DOORBELLS = Counter(
    "chinwag_doorbells",
    "Doorbells sent to and received from the broker, and repairs (store re-reads after a "
    "doorbell may have been lost).",
    ["event"],
)
BATCH_SIZE = Histogram(
    "chinwag_group_commit_batch_size",
    "Write jobs committed together in one group-commit transaction.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
PAGE_BATCH_SIZE = Histogram(
    "chinwag_catch_up_batch_size",
    "Sockets' stream reads after a doorbell done together in one statement.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
BATCH_RERUNS = Counter(
    "chinwag_group_commit_reruns",
    "Group-commit batches rolled back and run again job by job: `database` (a dropped "
    "connection, a lock timeout or deadlock between batches), `refusal` (a job refused "
    "after writing), `error` (anything else: look at the log).",
    ["reason"],
)


_http_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
"""The labelled series per (route, method, status): ``labels()`` costs more than the
increment itself, on every request. Bounded as the labels are."""


def http_request(route: str, method: str, status: int, seconds: float) -> None:
    """One answered HTTP request; ``route`` must be a template or ``unmatched``."""
    method = method if method in _METHODS else "OTHER"  # before the key: a client's choice
    key = (route, method, status)
    children = _http_children.get(key)
    if children is None:
        children = (
            HTTP_REQUESTS.labels(route, method, str(status)),
            HTTP_LATENCY.labels(route, method),
        )
        _http_children[key] = children
    children[0].inc()
    children[1].observe(seconds)


def authentication(error: ChinwagError | None, *, anonymous: bool = False) -> None:
    """A sign-in's outcome: accepted when ``error`` is None, else refused with its reason
    (the token-rejection reason when there is one, otherwise the error id)."""
    if error is None:
        AUTHENTICATIONS.labels("accepted", "anonymous" if anonymous else "identity_token").inc()
        return
    reason = str(error.data.get("reason") or error.error_id)
    AUTHENTICATIONS.labels("refused", reason if reason in _REASONS else "other").inc()


def socket_opened() -> None:
    OPEN_SOCKETS.inc()


def socket_closed() -> None:
    OPEN_SOCKETS.dec()


def messages_stored(count: int = 1) -> None:
    MESSAGES.inc(count)


def fanout_written(seconds: float) -> None:
    FANOUT.observe(seconds)


def doorbell_sent() -> None:
    DOORBELLS.labels("sent").inc()


def doorbell_received() -> None:
    DOORBELLS.labels("received").inc()


def doorbell_repaired() -> None:
    """A re-read of the store because doorbells may have been missed (a failed publish,
    a dropped subscription)."""
    DOORBELLS.labels("repaired").inc()


def batch_committed(size: int) -> None:
    BATCH_SIZE.observe(size)


def pages_read_together(size: int) -> None:
    PAGE_BATCH_SIZE.observe(size)


def batch_rerun(reason: str) -> None:
    BATCH_RERUNS.labels(reason).inc()


def exposition() -> bytes:
    """The text format of every metric: this process's, or all workers' together."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()
