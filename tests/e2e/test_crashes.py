"""The endings that need a process to die or a revocation to land mid-stream: a device
killed with SIGKILL while its outbox is full, a device relaunched offline, and an operator's
revocation (plain, or with ``--wipe``) while the device is sending — the races where the
old session's tasks wrote to a closed store, or a wipe was lost or never finished."""

from __future__ import annotations

import signal
import threading

import pytest

from tests.e2e.conftest import (
    Devices,
    Users,
    World,
    assert_private,
    assert_signed_out,
    signed_in_alone,
    signed_in_pair,
    texts,
)
from tests.e2e.harness import free_port

pytestmark = pytest.mark.slow  # ~20-30 s: real processes killed, paused and restarted

IN_FLIGHT = 5
"""Messages the stream may have queued and unacknowledged at once (a fast typist)."""


def test_killed_device_restarts_signed_in_and_delivers_its_outbox_exactly_once(
    world: World, device: Devices, user: Users
) -> None:
    """The OS kills the app (SIGKILL) while its outbox is full and a send is on the wire
    to a server that has stopped answering; relaunched, it is signed in from disk and
    every message arrives once — including the one whose answer was lost."""
    alice, bob = user("alice"), user("bob")
    a, b, conversation = signed_in_pair(device, alice, bob)
    queued = [f"queued {n}" for n in range(5)]
    world.server.signal(signal.SIGSTOP)  # answers nothing; the first send waits on the wire
    try:
        for text in queued:
            assert a.call("send", conversation=conversation, text=text)["state"] == "pending"
        a.kill()
    finally:
        world.server.signal(signal.SIGCONT)

    mark = a.mark()
    a.start()  # the same store folder: the app relaunched
    assert a.wait_for("ready", since=mark)["restored"] is True
    for text in queued:
        b.wait_for("received", text=text)
    a.call("flush")
    assert a.seen("provider", since=mark) == []  # signed in from disk, the app not asked
    expected = ["before", *queued]
    assert world.server_texts(world.saved_token(b.store_dir), conversation) == expected
    assert texts(b, conversation) == expected
    assert texts(a, conversation) == expected
    assert [e["text"] for e in b.seen("received")] == expected  # each arrived once
    for path in [*world.user_files(a.store_dir), world.session_file(a.store_dir)]:
        assert_private(path)


def test_log_out_offline_refuses_and_deletes_nothing(
    world: World, device: Devices, user: Users
) -> None:
    """Log-out needs the server (the outbox goes first): a device relaunched without a
    network keeps its user, session and queued message, and delivers them once back."""
    alice, bob = user("alice"), user("bob")
    a, b, conversation = signed_in_pair(device, alice, bob)
    a.kill()
    a.args[0] = f"http://127.0.0.1:{free_port()}"  # nothing listens there: offline
    mark = a.mark()
    a.start()
    assert a.wait_for("ready", since=mark)["restored"] is True
    assert a.call("send", conversation=conversation, text="offline")["state"] == "pending"
    assert a.fails("log_out") == "OfflineError"
    assert len(world.user_files(a.store_dir)) == 1
    assert world.session_file(a.store_dir).exists()
    assert a.call("state") == {
        "auth_state": "authenticated", "user": alice, "logged_in": True, "pending": 1,
    }  # fmt: skip

    a.kill()
    a.args[0] = world.server.url
    a.start()
    b.wait_for("received", text="offline")
    a.call("log_out")
    assert world.user_files(a.store_dir) == []
    assert not world.session_file(a.store_dir).exists()
    assert world.server_texts(world.saved_token(b.store_dir), conversation) == ["before", "offline"]


def test_revocation_while_sending_renews_once_and_loses_nothing(
    world: World, device: Devices, user: Users
) -> None:
    alice, bob = user("alice"), user("bob")
    a, b, conversation = signed_in_pair(device, alice, bob)
    tokens = {world.saved_token(a.store_dir)}
    mark = a.mark()
    revoker = threading.Thread(target=world.revoke, args=(alice,))
    sent: list[str] = []
    requests: list[int] = []
    renewed_at: int | None = None  # how many had been sent when the renewal was seen

    revoker.start()
    while len(sent) < 400 and (renewed_at is None or len(sent) < renewed_at + 10):
        if renewed_at is None and not revoker.is_alive() and a.seen("authenticated", since=mark):
            renewed_at = len(sent)
        sent.append(f"stream {len(sent)}")
        requests.append(a.send("send", conversation=conversation, text=sent[-1]))
        if len(requests) > IN_FLIGHT:  # pace on the device's own acknowledgements
            message_id = a.reply(requests[-IN_FLIGHT - 1])["result"]["id"]
            a.wait_for("message_sent", since=mark, timeout=15, id=message_id)
    revoker.join()
    a.call("flush", timeout=15)
    tokens.add(world.saved_token(a.store_dir))
    # The old session's socket is closed by the server's sweep (4003), before or after the
    # renewal; the device reconnects on the new session and asks nobody again.
    lost = a.wait_for("disconnected", since=mark)
    a.wait_for("connected", since=a.events.index(lost))

    assert a.wait_for("provider", since=mark)["needs_refresh"] is True
    assert len(a.seen("provider", since=mark)) == 1
    expected = ["before", *sent]
    for text in sent[-3:]:
        b.wait_for("received", text=text)
    assert world.server_texts(world.saved_token(b.store_dir), conversation) == expected
    assert texts(a, conversation) == expected
    assert len(world.server.live_sessions(world.app_id, alice)) == 1  # no orphan
    assert sorted(world.me(t) for t in tokens) == [200, 401]
    problems = [e for e in a.events if e["event"] in ("error", "loop_error", "message_failed")]
    problems += [e for e in a.events if "closed database" in str(e.get("message", ""))]
    assert problems == []


def test_wiped_revocation_while_sending_wipes_at_once(
    world: World, device: Devices, user: Users
) -> None:
    """A stolen phone in use: whichever reaches it first — a refused send, the socket's
    close, the stream's ``session.revoked`` — it wipes without asking the app."""
    alice = user("alice")
    a, conversation = signed_in_alone(device, alice, user("bob"))
    mark = a.mark()
    revoker = threading.Thread(target=world.revoke, args=(alice, "--wipe"))
    revoker.start()
    sent = 0
    while (revoker.is_alive() or sent < 20) and not a.seen("deauthenticated", since=mark):
        reply = a.reply(a.send("send", conversation=conversation, text=f"stream {sent}"))
        sent += 1
        if reply["ok"]:  # pace on the device's own acknowledgements, as a typist would
            a.wait_for(("message_sent", "deauthenticated"), since=a.events.index(reply))
    revoker.join()

    assert a.wait_for("deauthenticated", since=mark)["reason"] == "wiped"
    assert a.seen("provider", since=mark) == []
    assert a.seen("authenticated", since=mark) == []
    assert_signed_out(world, a, conversation)
    assert world.server.live_sessions(world.app_id, alice) == []
    assert a.seen("loop_error") == []  # the SDK's tasks ended cleanly
