"""Offline sending, exactly-once delivery in order, and deauthentication's promises."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from chinwag.client import Backoff, Client, MessageRejected, MessageState, OfflineError
from tests.client.conftest import Tokens
from tests.client.test_sync import signed_in
from tests.faults.harness import Proxy
from tests.support import RunningServer, free_port


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def server_messages(server: RunningServer, token: str, cid: str) -> list[dict[str, object]]:
    async with httpx.AsyncClient(base_url=server.url) as http:
        page = await http.get(
            f"/v1/conversations/{cid}/messages",
            params={"after": 0, "limit": 500},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert page.status_code == 200, page.text
    messages: list[dict[str, object]] = page.json()["messages"]
    return messages


@contextlib.contextmanager
def _logged(logger: logging.Logger, start: str) -> Iterator[asyncio.Event]:
    """An event set when ``logger`` logs a message starting with ``start`` (at any level)."""
    seen = asyncio.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith(start):
                seen.set()

    watch, level = Watch(logging.DEBUG), logger.level
    logger.addHandler(watch)
    logger.setLevel(logging.DEBUG)
    try:
        yield seen
    finally:
        logger.removeHandler(watch)
        logger.setLevel(level)


async def test_hundred_messages_sent_offline_arrive_once_in_order(
    server: RunningServer, make_client: Callable[..., Client], tokens: Tokens
) -> None:
    alice = await signed_in(make_client, tokens, "alice")
    conv = await alice.create_conversation(["alice", "bob"])
    session = alice._auth.session
    assert session is not None
    await alice.close()

    offline = make_client("alice-phone", base_url=closed_port_url())
    async with offline:
        assert offline.is_authenticated  # the session on the device; no server needed
        sent = [await offline.send_message(conv.id, f"offline {i}") for i in range(100)]
        assert {m.state for m in sent} == {MessageState.PENDING}
        assert await offline.pending_count() == 100
        with pytest.raises(OfflineError):
            await offline.flush_outbox()
        local = await offline.messages(conv.id)
        assert [m.text for m in local] == [f"offline {i}" for i in range(100)]

    back = make_client("alice-phone")  # restarted, and the server is reachable again
    async with back:
        await back.flush_outbox()
        assert await back.pending_count() == 0
        on_server = await server_messages(server, session.token, conv.id)
        assert [m["id"] for m in on_server] == [m.id for m in sent]
        assert [m["position"] for m in on_server] == list(range(1, 101))
        local = await back.messages(conv.id)
        assert [m.position for m in local] == list(range(1, 101))
        assert {m.state for m in local} == {MessageState.SENT}


async def test_lost_acknowledgement_is_not_a_duplicate(
    server: RunningServer, make_client: Callable[..., Client], tokens: Tokens
) -> None:
    alice = await signed_in(make_client, tokens, "alice")
    conv = await alice.create_conversation(["alice", "bob"])
    session = alice._auth.session
    assert session is not None
    await alice.close()
    offline = make_client("alice-phone", base_url=closed_port_url())
    async with offline:
        queued = await offline.send_message(conv.id, "did it arrive?")
    # The request reached the server, but the device crashed before the answer:
    async with httpx.AsyncClient(base_url=server.url) as http:
        first = await http.post(
            f"/v1/conversations/{conv.id}/messages",
            json={
                "id": queued.id,
                "parts": [{"mime_type": "text/plain", "body": "did it arrive?"}],
            },
            headers={"Authorization": f"Bearer {session.token}"},
        )
        assert first.status_code == 201
    async with make_client("alice-phone") as back:
        await back.flush_outbox()
        on_server = await server_messages(server, session.token, conv.id)
        assert [m["id"] for m in on_server] == [queued.id]


async def test_permanent_refusal_marks_the_message_failed(
    make_client: Callable[..., Client], tokens: Tokens
) -> None:
    alice = await signed_in(make_client, tokens, "alice")
    try:
        failures: list[tuple[str, MessageRejected]] = []
        alice.on("message_failed", lambda mid, error: failures.append((mid, error)))
        unknown = "00000000-0000-4000-8000-00000000dead"
        message = await alice.send_message(unknown, "to nowhere")
        await alice.flush_outbox()
        [(failed, error)] = failures
        assert failed == message.id
        prefix = f"{error.status} {error.error_id}: "
        assert str(error) == prefix + error.message  # once: it used to read "404 x: 404 x: …"
        assert not error.message.startswith(prefix)
        (stored,) = await alice.messages(unknown)
        assert stored.state is MessageState.FAILED
    finally:
        await alice.close()


async def test_deauthenticate_offline_is_refused_and_deletes_nothing(
    make_client: Callable[..., Client], tokens: Tokens, tmp_path: Path
) -> None:
    alice = await signed_in(make_client, tokens, "alice")
    store = alice._store
    assert store is not None
    path = store.path
    await alice.close()
    offline = make_client("alice-phone", base_url=closed_port_url())
    async with offline:
        await offline.send_message("00000000-0000-4000-8000-000000000001", "queued")
        with pytest.raises(OfflineError):
            await offline.deauthenticate()
        assert offline.is_authenticated
        assert path.exists()
        assert await offline.pending_count() == 1
    assert (tmp_path / "alice-phone").exists()


async def test_deauthenticate_online_drains_then_wipes(
    server: RunningServer, make_client: Callable[..., Client], tokens: Tokens
) -> None:
    alice = await signed_in(make_client, tokens, "alice")
    conv = await alice.create_conversation(["alice", "bob"])
    session = alice._auth.session
    store = alice._store
    assert session is not None
    assert store is not None
    reasons: list[str] = []
    alice.on("deauthenticated", reasons.append)
    for i in range(5):
        await alice.send_message(conv.id, f"last words {i}")
    await alice.deauthenticate()
    assert reasons == ["deauthenticated"]
    assert not store.path.exists()
    assert not alice.is_authenticated
    await alice.close()
    bob = await signed_in(make_client, tokens, "bob")
    try:
        bob_session = bob._auth.session
        assert bob_session is not None
        texts = [m["parts"] for m in await server_messages(server, bob_session.token, conv.id)]
        assert len(texts) == 5
    finally:
        await bob.close()
    async with httpx.AsyncClient(base_url=server.url) as http:
        dead = await http.get("/v1/me", headers={"Authorization": f"Bearer {session.token}"})
        assert dead.status_code == 401
    restarted = make_client("alice-phone")
    async with restarted:
        assert not restarted.is_authenticated


async def test_a_queue_held_back_by_an_outage_goes_out_once_the_socket_is_back(
    server: RunningServer,
    make_client: Callable[..., Client],
    tokens: Tokens,
) -> None:
    """After a failed send the outbox backs off (up to a minute). A trial's device was back
    on its socket 6 s after the nodes were, and its first acknowledgement came 36 s later:
    nothing ended the back-off early. The reconnect must."""
    proxy = Proxy(int(server.url.rsplit(":", 1)[1]))
    await proxy.start()
    alice = await signed_in(make_client, tokens, "alice", base_url=proxy.url)
    lost, sent = asyncio.Event(), asyncio.Event()
    alice.on("disconnected", lost.set)
    alice.on("message_sent", lambda message_id: sent.set())
    try:
        conv = await alice.create_conversation(["alice", "bob"])
        outbox = alice._outbox
        assert outbox is not None
        outbox.backoff, outbox.rand = Backoff(base=60.0, cap=60.0), lambda: 0.99  # ~a minute
        proxy.retarget(free_port())  # the server goes away
        async with asyncio.timeout(10):
            await lost.wait()
        with _logged(logging.getLogger("chinwag.client"), "outbox: will retry") as backing_off:
            await alice.send_message(conv.id, "held back")
            async with asyncio.timeout(10):
                await backing_off.wait()
        proxy.retarget(int(server.url.rsplit(":", 1)[1]))  # and comes back
        async with asyncio.timeout(10):
            await sent.wait()
        assert await alice.pending_count() == 0
    finally:
        await alice.close()
        await proxy.close()
