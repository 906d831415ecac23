"""Issue #8's "done means": every way a session ends, each device in a process of its own.

The rows of the table in ``chinwag.core.client_states``, end to end: a real ``chinwag
serve``, sessions ended by an operator's CLI or by the app's own flows, and for each row
what the device reports, what is left on its disk, and what the server says of the tokens.
"""

from __future__ import annotations

import signal

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
from tests.e2e.harness import until

pytestmark = pytest.mark.slow  # ~30-40 s: a real server, a process per device, real clocks

SHORT_SESSION = 4
"""Seconds: the identity token's exp, so the session's end (the server's leeway is 0)."""


def test_revoked_session_asks_the_app_and_keeps_data_until_it_answers(
    world: World, device: Devices, user: Users
) -> None:
    alice, bob = user("alice"), user("bob")
    a, b, conversation = signed_in_pair(device, alice, bob)
    [store] = world.user_files(a.store_dir)
    old_token = world.saved_token(a.store_dir)
    a.call("provider", mode="hold")  # the app's backend takes its time to decide
    mark = a.mark()

    world.revoke(alice)
    assert a.wait_for("provider", since=mark)["needs_refresh"] is True
    a.wait_for("state", since=mark, state="reauthenticating")
    assert world.me(old_token) == 401
    assert world.user_files(a.store_dir) == [store]  # data kept while the app decides
    assert texts(a, conversation) == ["before"]
    assert a.call("send", conversation=conversation, text="while asking")["state"] == "pending"
    assert a.call("state") | {"pending": 1} == {
        "auth_state": "reauthenticating", "user": alice, "logged_in": True, "pending": 1,
    }  # fmt: skip

    a.call("provider", mode="sign")
    a.wait_for("authenticated", since=mark, user=alice)
    b.wait_for("received", text="while asking")  # the outbox waited, then delivered
    a.wait_for("message_sent", since=mark)
    assert len(a.seen("provider", since=mark)) == 1
    assert a.seen("deauthenticated") == []
    assert world.user_files(a.store_dir) == [store]
    assert_private(store)
    assert_private(world.session_file(a.store_dir))
    new_token = world.saved_token(a.store_dir)
    assert new_token != old_token
    assert world.me(new_token) == 200
    assert len(world.server.live_sessions(world.app_id, alice)) == 1
    assert texts(a, conversation) == ["before", "while asking"]


def test_app_refusing_after_a_revocation_signs_out_and_wipes(
    world: World, device: Devices, user: Users
) -> None:
    """A password change: the operator revokes, then the app's backend returns ``STOP``."""
    alice, bob = user("alice"), user("bob")
    a, b, conversation = signed_in_pair(device, alice, bob)
    old_token = world.saved_token(a.store_dir)
    a.call("provider", mode="stop")
    mark = a.mark()

    world.revoke(alice)
    assert a.wait_for("deauthenticated", since=mark)["reason"] == "stopped"
    assert [p["needs_refresh"] for p in a.seen("provider", since=mark)] == [True]
    assert a.seen("authenticated", since=mark) == []
    assert_signed_out(world, a, conversation)
    assert world.me(old_token) == 401
    assert world.server.live_sessions(world.app_id, alice) == []
    assert texts(b, conversation) == ["before"]  # the other side keeps the conversation

    a.call("provider", mode="sign")  # signing in again later starts afresh from the server
    assert a.sign_in() == alice  # the history is downloaded; what follows arrives live
    b.call("send", conversation=conversation, text="welcome back")
    a.wait_for("received", since=mark, text="welcome back")
    assert texts(a, conversation) == ["before", "welcome back"]


def test_app_giving_up_at_a_proactive_refresh_signs_out_and_wipes(
    world: World, device: Devices, user: Users
) -> None:
    """The user signed out of the app meanwhile: asked for the next session, the provider
    raises ``StopAuthentication``; the session still had time, but the device signs out."""
    alice = user("alice")
    a = device(alice)
    a.call("provider", mode="sign", ttl=SHORT_SESSION)
    a.sign_in()
    conversation = a.call("create_conversation", participants=[alice, user("bob")])
    a.call("send", conversation=conversation, text="before")
    a.call("flush")
    old_token = world.saved_token(a.store_dir)
    mark = a.mark()
    a.call("provider", mode="giveup")

    assert a.wait_for("deauthenticated", since=mark)["reason"] == "stopped"
    assert [p["state"] for p in a.seen("provider", since=mark)] == ["refreshing"]
    assert_signed_out(world, a, conversation)
    assert world.me(old_token) == 401  # still live when the app said stop: ended, not orphaned
    assert world.server.live_sessions(world.app_id, alice) == []


def _has_wipe_flag() -> bool:
    from typer.testing import CliRunner

    from chinwag.cli.main import app

    result = CliRunner().invoke(app, ["sessions", "revoke", "--help"], env={"COLUMNS": "200"})
    return "--wipe" in result.stdout


@pytest.mark.skipif(not _has_wipe_flag(), reason="chinwag sessions revoke has no --wipe yet")
def test_revocation_with_wipe_signs_out_at_once_without_asking_the_app(
    world: World, device: Devices, user: Users
) -> None:
    """A stolen device: the operator revokes with ``--wipe``; the app is not asked. Alice's
    laptop, shut (killed) when it happened, wipes too the moment it is switched on."""
    alice, bob = user("alice"), user("bob")
    a, conversation = signed_in_alone(device, alice, bob)
    laptop = device(alice)
    laptop.sign_in()
    laptop.kill()
    old_token = world.saved_token(a.store_dir)
    mark = a.mark()

    world.revoke(alice, "--wipe")
    assert a.wait_for("deauthenticated", since=mark)["reason"] == "wiped"
    assert a.seen("provider", since=mark) == []
    assert_signed_out(world, a, conversation)
    assert world.me(old_token) == 401

    mark = laptop.mark()
    laptop.start()
    assert laptop.wait_for("ready", since=mark)["restored"] is True  # it slept through it
    assert laptop.wait_for("deauthenticated", since=mark)["reason"] == "wiped"
    assert laptop.seen("provider", since=mark) == []
    assert_signed_out(world, laptop, conversation)


def test_log_out_delivers_the_outbox_then_ends_the_session_and_wipes(
    world: World, device: Devices, user: Users
) -> None:
    """Alice logs out of her phone; her laptop stays signed in (its session is another)."""
    alice = user("alice")
    a, conversation = signed_in_alone(device, alice, user("bob"))
    laptop = device(alice)
    laptop.sign_in()
    old_token = world.saved_token(a.store_dir)
    mark, laptop_mark = a.mark(), laptop.mark()
    for n in range(3):
        a.send("send", conversation=conversation, text=f"last words {n}")

    a.call("log_out")  # queued behind the sends: they are in the outbox before it runs
    assert a.wait_for("deauthenticated", since=mark)["reason"] == "deauthenticated"
    for n in range(3):
        laptop.wait_for("received", text=f"last words {n}")
    assert world.server_texts(world.saved_token(laptop.store_dir), conversation) == [
        "before", "last words 0", "last words 1", "last words 2",
    ]  # fmt: skip
    assert a.seen("provider", since=mark) == []
    assert_signed_out(world, a, conversation)
    assert world.me(old_token) == 401
    laptop.call("sync")  # up to the head: past the phone's session.revoked
    laptop.call("send", conversation=conversation, text="still here")
    laptop.call("flush")
    assert laptop.seen("provider", since=laptop_mark) == []
    assert laptop.seen("deauthenticated") == []
    assert laptop.call("state")["auth_state"] == "authenticated"
    assert len(world.server.live_sessions(world.app_id, alice)) == 1


def test_renewal_as_another_user_wipes_the_previous_users_data_first(
    world: World, device: Devices, user: Users
) -> None:
    """The app's backend answers the challenge for someone else (a shared tablet)."""
    alice, bob, carol = user("alice"), user("bob"), user("carol")
    a, conversation = signed_in_alone(device, alice, bob)
    [alice_store] = world.user_files(a.store_dir)
    a.call("provider", mode=f"user:{carol}")
    mark = a.mark()

    world.revoke(alice)
    a.wait_for("authenticated", since=mark, user=carol)
    [carol_store] = world.user_files(a.store_dir)
    assert carol_store != alice_store
    assert not alice_store.exists()
    assert a.call("conversations") == []  # nothing of Alice's shows to Carol
    assert texts(a, conversation) == []
    assert a.call("state")["user"] == carol
    assert world.me(world.saved_token(a.store_dir)) == 200
    assert world.server.live_sessions(world.app_id, alice) == []
    assert len(world.server.live_sessions(world.app_id, carol)) == 1
    assert_private(carol_store)


def test_expiry_while_asleep_asks_the_app_and_keeps_data_and_outbox(
    world: World, device: Devices, user: Users
) -> None:
    """A laptop that slept past its session's end (SIGSTOP ... SIGCONT): on waking it
    asks the app (``needs_refresh``), keeps everything, and the outbox waits."""
    alice, bob = user("alice"), user("bob")
    b = device(bob)
    b.sign_in()
    a = device(alice)
    a.call("provider", mode="sign", ttl=SHORT_SESSION)
    a.sign_in()
    a.call("provider", mode="hold")  # so a proactive refresh cannot save the session
    conversation = b.call("create_conversation", participants=[alice, bob])
    b.call("send", conversation=conversation, text="before")
    a.wait_for("received", text="before")
    [store] = world.user_files(a.store_dir)
    old_token = world.saved_token(a.store_dir)
    [(session_id, _expires, _reason)] = world.server.sessions(world.app_id, alice)

    a.signal(signal.SIGSTOP)
    until(
        lambda: world.server.sessions(world.app_id, alice)[0][2] == "expired",
        "the server to expire the sleeping device's session",
    )
    mark = a.mark()
    a.signal(signal.SIGCONT)
    a.wait_for("state", since=mark, state="reauthenticating")
    assert a.wait_for("provider", since=mark)["needs_refresh"] is True
    assert world.user_files(a.store_dir) == [store]
    assert texts(a, conversation) == ["before"]
    assert a.call("send", conversation=conversation, text="after waking")["state"] == "pending"
    assert a.call("state")["pending"] == 1
    assert a.call("state")["logged_in"] is True

    a.call("provider", mode="sign")
    a.wait_for("authenticated", since=mark, user=alice)
    b.wait_for("received", text="after waking")
    assert len(a.seen("provider", since=mark)) == 1
    assert a.seen("deauthenticated") == []
    assert world.user_files(a.store_dir) == [store]
    assert world.me(old_token) == 401
    assert world.me(world.saved_token(a.store_dir)) == 200
    assert session_id not in world.server.live_sessions(world.app_id, alice)


def test_proactive_refresh_renews_before_expiry_and_ends_the_old_session(
    world: World, device: Devices, user: Users
) -> None:
    """An active user never sees the session end: at ~80 % of its life one provider call
    renews it; the old session is ended on the server, and its socket's close (a session
    the device no longer holds) changes nothing."""
    alice, bob = user("alice"), user("bob")
    b = device(bob)
    b.sign_in()
    a = device(alice)
    a.call("provider", mode="sign", ttl=SHORT_SESSION)
    a.sign_in()
    mark = a.mark()
    a.call("provider", mode="sign")  # the next session is a long one
    [(old_id, expires, _)] = world.server.sessions(world.app_id, alice)
    [(created,)] = world.server.query("SELECT created_at FROM sessions WHERE id = ?", old_id)

    call = a.wait_for("provider", since=mark, timeout=SHORT_SESSION + 5)
    assert call["needs_refresh"] is True
    assert call["state"] == "refreshing"
    assert 0.7 <= (call["t"] - created) / (expires - created) < 1  # ~80 %, before the end
    renewed = a.wait_for("authenticated", since=a.events.index(call))
    assert renewed["user"] == alice
    # The old session's socket is closed by the server (4003) once the device ends it: an
    # ending of a session the device no longer holds, so it just reconnects.
    lost = a.wait_for("disconnected", since=a.events.index(renewed))
    a.wait_for("connected", since=a.events.index(lost))
    until(lambda: world.server.sessions(world.app_id, alice)[0][2] is not None, "old session end")
    [new_id] = world.server.live_sessions(world.app_id, alice)
    assert new_id != old_id

    conversation = b.call("create_conversation", participants=[alice, bob])
    b.call("send", conversation=conversation, text="after the refresh")
    a.wait_for("received", text="after the refresh")  # the socket is back, on the new session
    a.call("send", conversation=conversation, text="reply")
    b.wait_for("received", text="reply")
    assert len(a.seen("provider", since=mark)) == 1
    assert a.seen("state", state="reauthenticating") == []
    assert a.seen("deauthenticated") == []
    assert a.call("state")["auth_state"] == "authenticated"
