"""Rate limits over a real server: 429 + Retry-After over HTTP, the same error over the
WebSocket, per session / user / app, shared by two nodes on one Redis, open when Redis is
down, and typing coalesced.

The counters live outside the database, so these run on SQLite only, except the two-node
test, which needs a database both nodes share (PostgreSQL). Windows are aligned to the
clock, so a ManualClock at a minute's start makes every ``retry_after`` exactly 60.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from chinwag.clock import ManualClock
from chinwag.core.errors import RateLimited
from chinwag.server.rate_limits import Turns
from chinwag.server.settings import Settings
from tests.redis_server import redis_server
from tests.server.test_websocket import (
    SignedIn,
    create_conversation,
    open_device,
    send_rest,
    sign_in,
)
from tests.support import (
    RunningServer,
    free_port,
    make_app,
    postgres_database,
    run_server,
)

REDIS_URL = "redis://127.0.0.1:6379/0"
MINUTE_START = 1_800_000_000.0
"""A clock reading at the start of a minute (and of every shorter window)."""

OFF: dict[str, Any] = {f"limit_{a}_per_{s}": "" for a in (
    "messages", "conversations", "participants", "metadata", "receipts", "typing", "requests",
    "read_kib",
) for s in ("session", "user", "app")}  # fmt: skip
"""Every per-session/user/app limit off: each test turns on the ones it is about."""


def _settings(tmp_path: Path, **limits: Any) -> Settings:
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'chinwag.db'}",
        auth_rate_per_second=0,
        **{**OFF, **limits},
    )


@pytest.fixture
def limited(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The limits a test turns on (indirect parametrization)."""
    found: dict[str, Any] = getattr(request, "param", {})
    return found


@pytest.fixture
async def node(tmp_path: Path, limited: dict[str, Any]) -> AsyncIterator[RunningServer]:
    async with run_server(_settings(tmp_path, **limited), ManualClock(MINUTE_START)) as running:
        yield running


@pytest.fixture
async def http(node: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=node.url, timeout=30) as client:
        yield client


def _text(body: str) -> list[dict[str, str]]:
    return [{"mime_type": "text/plain", "body": body}]


def _assert_refused(response: httpx.Response, retry_after: float = 60) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["Retry-After"] == str(int(retry_after))
    error = response.json()["error"]
    assert error["id"] == "rate_limited"
    assert error["data"] == {"retry_after": retry_after}


Write = Callable[[httpx.AsyncClient, SignedIn, str], Awaitable[httpx.Response]]


async def _message(http: httpx.AsyncClient, user: SignedIn, conv: str) -> httpx.Response:
    body = {"id": str(uuid.uuid4()), "parts": _text("hi")}
    return await http.post(f"/v1/conversations/{conv}/messages", json=body, headers=user.headers)


async def _conversation(http: httpx.AsyncClient, user: SignedIn, conv: str) -> httpx.Response:
    body = {"participants": ["bob"]}
    return await http.post("/v1/conversations", json=body, headers=user.headers)


async def _participants(http: httpx.AsyncClient, user: SignedIn, conv: str) -> httpx.Response:
    body = {"user_ids": [f"u{secrets.token_hex(3)}", f"u{secrets.token_hex(3)}"]}
    return await http.post(
        f"/v1/conversations/{conv}/participants", json=body, headers=user.headers
    )


async def _metadata(http: httpx.AsyncClient, user: SignedIn, conv: str) -> httpx.Response:
    body = {"metadata": {"set": {"topic": secrets.token_hex(3)}}}
    return await http.patch(f"/v1/conversations/{conv}", json=body, headers=user.headers)


async def _receipt(http: httpx.AsyncClient, user: SignedIn, conv: str) -> httpx.Response:
    body = {"type": "read", "position": 0}
    return await http.post(f"/v1/conversations/{conv}/receipts", json=body, headers=user.headers)


@pytest.mark.parametrize(
    ("limited", "write", "allowed"),
    [
        ({"limit_messages_per_session": "2/minute"}, _message, 2),
        ({"limit_conversations_per_session": "1/minute"}, _conversation, 0),
        # the setup's conversation names 1 participant; each call here names 2
        ({"limit_participants_per_session": "5/minute"}, _participants, 2),
        ({"limit_metadata_per_session": "2/minute"}, _metadata, 2),
        ({"limit_receipts_per_session": "2/minute"}, _receipt, 2),
    ],
    indirect=["limited"],
    ids=["messages", "conversations", "participants", "metadata", "receipts"],
)
async def test_each_http_write_is_refused_with_429_and_retry_after_until_the_window_ends(
    node: RunningServer, http: httpx.AsyncClient, write: Write, allowed: int
) -> None:
    app = await make_app(node.services)
    alice = await sign_in(http, app, "alice", node.clock.now())
    conv = await create_conversation(http, alice, ["bob"])
    for _ in range(allowed):
        assert (await write(http, alice, conv)).status_code in (200, 201)
    _assert_refused(await write(http, alice, conv))
    node.clock.advance(30)
    _assert_refused(await write(http, alice, conv), retry_after=30)
    node.clock.advance(30)
    assert (await write(http, alice, conv)).status_code in (200, 201)


@pytest.mark.parametrize(
    "limited",
    [
        {
            "limit_messages_per_session": "2/minute",
            "limit_typing_per_session": "1/minute",
            "limit_receipts_per_session": "1/minute",
        }
    ],
    indirect=True,
)
async def test_websocket_requests_are_refused_with_the_same_error(
    node: RunningServer, http: httpx.AsyncClient
) -> None:
    app = await make_app(node.services)
    alice = await sign_in(http, app, "alice", node.clock.now())
    conv = await create_conversation(http, alice, ["bob"])
    assert (await _message(http, alice, conv)).status_code == 201  # HTTP and WS share it
    device = await open_device(node, alice.token)
    send = {"conversation_id": conv, "id": str(uuid.uuid4()), "parts": _text("hi")}
    assert (await device.request("message.send", send))["ok"]
    typing = {"conversation_id": conv, "state": "started"}
    receipt = {"conversation_id": conv, "type": "read", "position": 1}
    assert (await device.request("typing.update", typing))["ok"]
    assert (await device.request("receipt.mark", receipt))["ok"]
    refusals = [
        await device.request("message.send", {**send, "id": str(uuid.uuid4())}),
        await device.request("typing.update", typing),
        await device.request("receipt.mark", receipt),
    ]
    for refused in refusals:
        assert refused["ok"] is False
        assert refused["error"]["id"] == "rate_limited"
        assert refused["error"]["data"] == {"retry_after": 60}
    assert (await device.request("ping", {}))["ok"]  # other methods are not affected
    await device.ws.close()


@pytest.mark.parametrize("limited", [{"limit_requests_per_session": "3/second"}], indirect=True)
async def test_websocket_request_rate_covers_every_method(
    node: RunningServer, http: httpx.AsyncClient
) -> None:
    app = await make_app(node.services)
    alice = await sign_in(http, app, "alice", node.clock.now())
    device = await open_device(node, alice.token)
    answers = [await device.request("ping", {}) for _ in range(4)]
    assert [a["ok"] for a in answers] == [True, True, True, False]
    assert answers[-1]["error"] == {
        "id": "rate_limited",
        "message": "Rate limit on requests reached; retry in 1 s.",
        "data": {"retry_after": 1},
    }
    node.clock.advance(1)
    assert (await device.request("ping", {}))["ok"]
    await device.ws.close()


@pytest.mark.parametrize("limited", [{"limit_requests_per_session": "3/second"}], indirect=True)
async def test_http_requests_with_a_session_share_the_request_rate_with_the_websocket(
    node: RunningServer, http: httpx.AsyncClient
) -> None:
    """Reads are counted too: before, one session's GET flood got no 429 at all."""
    app = await make_app(node.services)
    alice = await sign_in(http, app, "alice", node.clock.now())
    bob = await sign_in(http, app, "bob", node.clock.now())
    device = await open_device(node, alice.token)
    assert (await http.get("/v1/me", headers=alice.headers)).status_code == 200
    assert (await http.get("/v1/conversations", headers=alice.headers)).status_code == 200
    assert (await device.request("ping", {}))["ok"]
    _assert_refused(await http.get("/v1/me", headers=alice.headers), retry_after=1)
    refused = await device.request("ping", {})
    assert refused["error"]["id"] == "rate_limited"
    assert (await http.get("/v1/me", headers=bob.headers)).status_code == 200
    node.clock.advance(1)
    assert (await http.get("/v1/me", headers=alice.headers)).status_code == 200
    await device.ws.close()


@pytest.mark.parametrize("limited", [{"limit_read_kib_per_session": "200/minute"}], indirect=True)
async def test_message_pages_are_charged_by_the_bodies_they_serve(
    node: RunningServer, http: httpx.AsyncClient
) -> None:
    """Before, a user could ask for 200 pages of 1 MiB a second (the request limit) and
    hold the server's CPU. A page's size is known only after the read, so the page that
    spends the budget is served and the next is refused, before any work."""
    app = await make_app(node.services)
    alice = await sign_in(http, app, "alice", node.clock.now())
    conv = await create_conversation(http, alice, ["bob"])
    for _ in range(3):
        await send_rest(http, alice, conv, "x" * 60_000)  # 3 x 59 KiB: 176 KiB a page
    path = f"/v1/conversations/{conv}/messages?limit=10"
    for _ in range(2):  # 176, then 352 KiB: the second page starts within the budget
        page = await http.get(path, headers=alice.headers)
        assert page.status_code == 200, page.text
        assert len(page.json()["messages"]) == 3
    _assert_refused(await http.get(path, headers=alice.headers))
    small = await http.get(f"{path}&after=3", headers=alice.headers)  # even an empty page
    _assert_refused(small)
    _assert_refused(await http.get("/v1/events", headers=alice.headers))  # one budget
    other_device = await sign_in(http, app, "alice", node.clock.now())
    assert (await http.get(path, headers=other_device.headers)).status_code == 200
    node.clock.advance(60)
    assert (await http.get(path, headers=alice.headers)).status_code == 200
    events = await http.get("/v1/events?limit=1000", headers=alice.headers)
    assert events.status_code == 200  # 3 x 59 KiB of events: 177 of 200 KiB, then 354
    assert len(events.content) > 3 * 60_000
    _assert_refused(await http.get("/v1/events", headers=alice.headers))


@pytest.mark.parametrize("limited", [{"limit_read_kib_per_session": "100/minute"}], indirect=True)
async def test_conversation_lists_are_charged_by_what_they_render(
    node: RunningServer, http: httpx.AsyncClient
) -> None:
    """Each conversation counts 8 KiB besides its bytes (four statements to build it): a
    page of 100 was ~13 ms of CPU however small, and the request limit allows 200 a
    second."""
    app = await make_app(node.services)
    alice = await sign_in(http, app, "alice", node.clock.now())
    for n in range(5):
        await create_conversation(http, alice, [f"u{n}"])
    for _ in range(3):  # 5 x (8 KiB + their bytes): ~42, ~84, then ~126 KiB
        listed = await http.get("/v1/conversations?limit=100", headers=alice.headers)
        assert listed.status_code == 200, listed.text
        assert len(listed.json()["conversations"]) == 5
    _assert_refused(await http.get("/v1/conversations", headers=alice.headers))
    node.clock.advance(60)
    assert (await http.get("/v1/conversations", headers=alice.headers)).status_code == 200


@pytest.mark.parametrize("limited", [{"limit_read_kib_per_session": "100/second"}], indirect=True)
async def test_a_socket_replay_waits_for_the_read_budget(
    node: RunningServer, http: httpx.AsyncClient
) -> None:
    """A socket asks for nothing, so its replay is never refused: it waits until the
    budget has room. Before, reopening sockets at ``after=0`` read the stream unlimited."""
    app = await make_app(node.services)
    alice = await sign_in(http, app, "alice", node.clock.now())
    conv = await create_conversation(http, alice, ["bob"])
    for _ in range(3):
        await send_rest(http, alice, conv, "x" * 60_000)
    first = await open_device(node, alice.token, after=0)
    kinds: list[str] = []
    while not kinds or kinds[-1] != "caught_up":  # one page: served, and the budget spent
        kinds.append(orjson.loads(await asyncio.wait_for(first.ws.recv(), 10))["type"])
    assert kinds.count("event") == 4  # conversation.created and three messages
    second = await open_device(node, alice.token, after=0)
    with pytest.raises(TimeoutError):  # paced: nothing until the window passes
        await asyncio.wait_for(second.ws.recv(), 0.5)
    node.clock.advance(1)
    replayed = orjson.loads(await asyncio.wait_for(second.ws.recv(), 10))
    assert (replayed["type"], replayed["cursor"]) == ("event", 1)
    for device in (first, second):
        await device.ws.close()


async def test_one_users_reads_take_turns_in_arrival_order_and_leave_no_lock_behind() -> None:
    """Eight sockets waiting for their user's read budget all woke when a second began and
    read 8 MiB back to back, ~200 ms in which the node served nobody else. Turns are per
    key, so another user is never held up, and a waiter that gives up takes no turn."""
    turns = Turns()
    order: list[str] = []
    holding, release = asyncio.Event(), asyncio.Event()

    async def read(name: str, key: str) -> None:
        async with turns.turn(key):
            order.append(f"{name} in")
            if name == "a":
                holding.set()
                await release.wait()
            order.append(f"{name} out")

    a = asyncio.create_task(read("a", "user:1"))
    await holding.wait()
    b, c = (asyncio.create_task(read(name, "user:1")) for name in "bc")
    await read("x", "user:2")  # meanwhile b and c queue behind a
    c.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await c
    assert order == ["a in", "x in", "x out"]
    assert len(turns) == 1
    release.set()
    await asyncio.gather(a, b)
    assert order[3:] == ["a out", "b in", "b out"]
    assert len(turns) == 0


async def test_a_turn_rests_its_share_before_the_next_and_a_full_queue_is_refused() -> None:
    """Readers of one user at once were refused only once their second's budget was
    spent, so they read it back to back; paced, a 1 MiB page rests 125 ms first. The
    queue is bounded: waiting is not a way around the budget."""
    turns = Turns(max_waiting=2)
    loop = asyncio.get_running_loop()
    holding, release = asyncio.Event(), asyncio.Event()
    started: list[float] = []

    async def read(rest: float) -> None:
        async with turns.turn("user:1") as turn:
            started.append(loop.time())
            holding.set()
            await release.wait()
            turn.rest(rest)

    first = asyncio.create_task(read(0.2))
    await holding.wait()
    second = asyncio.create_task(read(0.0))
    await asyncio.sleep(0)  # second queues behind first
    with pytest.raises(RateLimited) as refused:
        async with turns.turn("user:1"):
            pytest.fail("a third reader got a turn past max_waiting")
    assert refused.value.retry_after > 0
    release.set()
    await asyncio.gather(first, second)
    assert started[1] - started[0] >= 0.2
    assert len(turns) == 0


@pytest.mark.parametrize("limited", [{"limit_requests_per_session": "1/minute"}], indirect=True)
async def test_log_out_is_never_refused_by_the_request_limit(
    node: RunningServer, http: httpx.AsyncClient
) -> None:
    app = await make_app(node.services)
    alice = await sign_in(http, app, "alice", node.clock.now())
    assert (await http.get("/v1/me", headers=alice.headers)).status_code == 200
    _assert_refused(await http.get("/v1/me", headers=alice.headers))
    assert (await http.delete("/v1/sessions/current", headers=alice.headers)).status_code == 204
    assert (await http.get("/v1/me", headers=alice.headers)).status_code == 401


@pytest.mark.parametrize(
    "limited",
    [{"limit_messages_per_user": "3/minute", "limit_messages_per_app": "5/minute"}],
    indirect=True,
)
async def test_user_limit_spans_sessions_and_app_limit_spans_users(
    node: RunningServer, http: httpx.AsyncClient
) -> None:
    app = await make_app(node.services)
    phone = await sign_in(http, app, "alice", node.clock.now())
    laptop = await sign_in(http, app, "alice", node.clock.now())
    bob = await sign_in(http, app, "bob", node.clock.now())
    conv = await create_conversation(http, phone, ["bob"])
    for device in (phone, laptop, phone):
        assert (await _message(http, device, conv)).status_code == 201
    _assert_refused(await _message(http, laptop, conv))  # alice's 3
    assert (await _message(http, bob, conv)).status_code == 201
    _assert_refused(await _message(http, bob, conv))  # the app's 5, the refusal included


@pytest.mark.parametrize(
    "limited", [{"limit_participants_per_session": "10/minute"}], indirect=True
)
async def test_participants_cost_one_each_and_a_request_larger_than_the_limit_still_fits(
    node: RunningServer, http: httpx.AsyncClient
) -> None:
    app = await make_app(node.services)
    alice = await sign_in(http, app, "alice", node.clock.now())
    many = {"participants": [f"user{n}" for n in range(50)]}
    made = await http.post("/v1/conversations", json=many, headers=alice.headers)
    assert made.status_code == 201, made.text  # a whole window's worth, not "never"
    _assert_refused(await _conversation(http, alice, ""))
    node.clock.advance(60)
    assert (await _conversation(http, alice, "")).status_code == 201


async def test_limits_are_shared_by_two_nodes_on_one_redis() -> None:
    prefix = f"chinwag_test_{secrets.token_hex(6)}"
    async with postgres_database() as database_url:
        settings = Settings(
            database_url=database_url,
            broker_url=REDIS_URL,
            broker_prefix=prefix,
            auth_rate_per_second=0,
            **{**OFF, "limit_messages_per_user": "2/minute"},
        )
        clock = ManualClock(MINUTE_START)  # counters are fresh: the prefix is this test's
        async with run_server(settings, clock) as node_a, run_server(settings, clock) as node_b:
            app = await make_app(node_a.services)
            async with (
                httpx.AsyncClient(base_url=node_a.url) as on_a,
                httpx.AsyncClient(base_url=node_b.url) as on_b,
            ):
                alice = await sign_in(on_a, app, "alice", clock.now())
                conv = await create_conversation(on_a, alice, ["bob"])
                await send_rest(on_a, alice, conv, "one")
                await send_rest(on_b, alice, conv, "two")
                _assert_refused(await _message(on_a, alice, conv))
                _assert_refused(await _message(on_b, alice, conv))


async def test_two_deployments_on_one_redis_and_prefix_count_apart(tmp_path: Path) -> None:
    """Both deployments' first user is pk 1 and both sign in from 127.0.0.1: without the
    deployment id in the keys, the second would find the first's counters spent."""
    prefix = f"chinwag_test_{secrets.token_hex(6)}"
    limits = {"limit_messages_per_user": "2/minute"}
    shared: dict[str, Any] = {"broker_url": REDIS_URL, "broker_prefix": prefix, **OFF, **limits}
    clock = ManualClock(MINUTE_START)
    settings = [
        Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / name}.db", **shared)
        for name in ("one", "two")
    ]
    async with run_server(settings[0], clock) as one, run_server(settings[1], clock) as two:
        assert one.services.deployment_id != two.services.deployment_id
        for node in (one, two):
            async with httpx.AsyncClient(base_url=node.url) as http:
                app = await make_app(node.services)
                alice = await sign_in(http, app, "alice", clock.now())
                conv = await create_conversation(http, alice, ["bob"])
                await send_rest(http, alice, conv, "one")
                await send_rest(http, alice, conv, "two")
                _assert_refused(await _message(http, alice, conv))
        ids = (one.services.deployment_id, two.services.deployment_id)
    admin = aioredis.from_url(REDIS_URL)
    try:
        keys = [key.decode() async for key in admin.scan_iter(f"{prefix}:*")]
        assert {key.split(":")[1] for key in keys} == set(ids), keys
        await admin.delete(*keys)
    finally:
        await admin.aclose()


async def test_limits_fail_open_with_a_warning_when_redis_is_down(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nobody listens
    settings = _settings(tmp_path, rate_limit_url=dead, limit_messages_per_session="1/minute")
    caplog.set_level(logging.WARNING, logger="chinwag.rate_limits")
    async with run_server(settings) as node, httpx.AsyncClient(base_url=node.url) as http:
        app = await make_app(node.services)
        alice = await sign_in(http, app, "alice", node.clock.now())
        conv = await create_conversation(http, alice, ["bob"])
        started = time.perf_counter()
        for _ in range(3):
            assert (await _message(http, alice, conv)).status_code == 201
        assert time.perf_counter() - started < 3
        node.clock.advance(node.services.rate_limits.recheck_after)
        assert (await _message(http, alice, conv)).status_code == 201  # tried again: still down
    warnings = [r for r in caplog.records if "rate limit storage failed" in r.getMessage()]
    assert len(warnings) == 1  # one per outage, not one per request or per recheck


async def test_a_hung_limit_storage_is_waited_for_once_then_skipped_until_it_answers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A stopped redis-server accepts connections and never answers: only the request
    that finds it so waits (the counters' 0.5 s timeout); the rechecks go on beside the
    requests, and the limits return with Redis."""
    caplog.set_level(logging.WARNING, logger="chinwag.rate_limits")
    with redis_server(tmp_path) as redis:
        assert redis.process is not None
        settings = _settings(
            tmp_path, rate_limit_url=redis.url, limit_messages_per_session="4/hour"
        )
        async with run_server(settings) as node, httpx.AsyncClient(base_url=node.url) as http:
            app = await make_app(node.services)
            alice = await sign_in(http, app, "alice", node.clock.now())
            conv = await create_conversation(http, alice, ["bob"])
            assert (await _message(http, alice, conv)).status_code == 201  # counted: 1 of 4
            os.kill(redis.process.pid, signal.SIGSTOP)
            try:
                assert (await _message(http, alice, conv)).status_code == 201  # waited, open
                node.clock.advance(node.services.rate_limits.recheck_after)
                started = time.perf_counter()
                sent = await asyncio.gather(*(_message(http, alice, conv) for _ in range(5)))
                assert time.perf_counter() - started < 0.4  # nobody waited for the recheck
                assert {answer.status_code for answer in sent} == {201}
            finally:
                os.kill(redis.process.pid, signal.SIGCONT)
            node.clock.advance(node.services.rate_limits.recheck_after)
            async with asyncio.timeout(10):  # each request starts a recheck until one counts
                while "limits are on" not in caplog.text:
                    assert (await _message(http, alice, conv)).status_code == 201
                    await asyncio.sleep(0.05)
                while (await _message(http, alice, conv)).status_code == 201:
                    pass  # counted again: the hour's 4 run out
    warnings = [r for r in caplog.records if "rate limit storage failed" in r.getMessage()]
    assert len(warnings) == 1


@pytest.mark.parametrize("limited", [{}], indirect=True)
async def test_ten_thousand_typing_changes_become_a_bounded_number_of_frames(
    node: RunningServer, http: httpx.AsyncClient
) -> None:
    app = await make_app(node.services)
    alice = await sign_in(http, app, "alice", node.clock.now())
    bob = await sign_in(http, app, "bob", node.clock.now())
    conv = await create_conversation(http, alice, ["bob"])
    typist, watcher = await open_device(node, alice.token), await open_device(node, bob.token)
    await watcher.until_caught_up()
    states = ["started", "paused"] * 4_999 + ["started", "finished"]

    async def send_all() -> None:  # pipelined; the answers are read meanwhile
        for n, state in enumerate(states):
            frame = {"type": "request", "request_id": f"t{n}", "method": "typing.update",
                     "data": {"conversation_id": conv, "state": state}}  # fmt: skip
            await typist.ws.send(orjson.dumps(frame).decode())

    started = time.perf_counter()
    sending = asyncio.create_task(send_all())
    while len(typist.responses) < len(states):
        await typist.frame()
    await sending
    assert all(r["ok"] for r in typist.responses.values())
    elapsed = time.perf_counter() - started
    while not watcher.signals or watcher.signals[-1]["data"]["state"] != "finished":
        await watcher.frame(timeout=5)  # the last window's flush brings the finished
    windows = elapsed / node.settings.typing_relay_interval
    assert len(watcher.signals) <= windows + 2, (len(watcher.signals), elapsed)
    assert len(watcher.signals) < 100
    with pytest.raises(TimeoutError):
        await watcher.frame(timeout=0.5)  # nothing after the finished
    for device in (typist, watcher):
        await device.ws.close()


@pytest.mark.parametrize(
    ("trusted", "distinct"),
    [([], False), (["127.0.0.1"], True), (["10.0.0.0/8", "127.0.0.0/8"], True)],
    ids=["untrusted peer", "trusted peer", "trusted networks"],
)
async def test_x_forwarded_for_counts_only_from_a_trusted_proxy(
    tmp_path: Path, trusted: list[str], distinct: bool
) -> None:
    settings = _settings(tmp_path).model_copy(
        update={"auth_rate_per_second": 1, "auth_rate_burst": 1, "trusted_proxies": trusted}
    )
    async with (
        run_server(settings, ManualClock(MINUTE_START)) as node,
        httpx.AsyncClient(base_url=node.url) as http,
    ):
        app = await make_app(node.services)

        async def nonce(forwarded_for: str) -> int:
            headers = {"X-Forwarded-For": forwarded_for}
            body = {"app_id": app.app_id}
            return (await http.post("/v1/nonces", json=body, headers=headers)).status_code

        assert await nonce("203.0.113.1") == 201
        # Another client behind the proxy: its own budget only if the header is believed.
        assert await nonce("203.0.113.2, 10.1.1.1") == (201 if distinct else 429)
        assert await nonce("203.0.113.1") == 429  # the first client's budget is spent
