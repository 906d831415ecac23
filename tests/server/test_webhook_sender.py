"""The sender against receivers that misbehave: bounded time and memory, no redirects."""

from __future__ import annotations

import time

from chinwag.server.webhooks.sender import Sender
from tests.support import Receiver, peak_rss, reset_peak_rss, vm_rss


async def test_a_2xx_is_success_and_anything_else_is_not() -> None:
    sender = Sender(timeout=5, allow_loopback=True)
    async with Receiver() as receiver:
        assert (await sender.post(receiver.url, b"{}", {})).ok
        receiver.status = 500
        failed = await sender.post(receiver.url, b"{}", {})
    await sender.close()
    assert not failed.ok
    assert failed.status == 500
    assert failed.error == "answered 500"


async def test_a_name_resolving_to_loopback_is_not_connected_to() -> None:
    """Without the development flag, the address a name resolves to is checked before
    connecting: ``localhost`` passes no literal-address rule, yet reaches this machine."""
    sender = Sender(timeout=5)
    async with Receiver() as receiver:
        url = receiver.url.replace("127.0.0.1", "localhost")
        outcome = await sender.post(url, b"{}", {})
    await sender.close()
    assert not outcome.ok
    assert outcome.error == "refused: localhost does not resolve to a public address"
    assert receiver.requests == []


async def test_a_redirect_is_not_followed() -> None:
    sender = Sender(timeout=5, allow_loopback=True)
    async with Receiver() as receiver:
        receiver.mode = "redirect"
        outcome = await sender.post(receiver.url, b"{}", {})
        await sender.close()
    assert not outcome.ok
    assert outcome.status == 302
    assert outcome.error is not None
    assert "not followed" in outcome.error
    assert len(receiver.requests) == 1


async def test_a_receiver_that_never_answers_costs_the_timeout() -> None:
    sender = Sender(timeout=0.5, allow_loopback=True)
    async with Receiver() as receiver:
        receiver.mode = "hang"
        started = time.monotonic()
        outcome = await sender.post(receiver.url, b"{}", {})
        await sender.close()
    assert time.monotonic() - started < 4  # the receiver would hang forever
    assert not outcome.ok
    assert outcome.error == "no answer within 0.5 seconds"


async def test_a_100_mb_answer_is_read_only_a_few_kib() -> None:
    sender = Sender(timeout=10, allow_loopback=True)
    async with Receiver() as receiver:
        receiver.mode = "huge"
        reset_peak_rss()
        base = vm_rss()
        started = time.monotonic()
        outcome = await sender.post(receiver.url, b"{}", {})
        await sender.close()
        assert time.monotonic() - started < 5
    assert outcome.ok
    assert peak_rss() - base < 30 * 2**20
    assert len(receiver.requests) == 1


async def test_an_unreachable_receiver_is_a_failure_not_an_exception() -> None:
    sender = Sender(timeout=2, allow_loopback=True)
    outcome = await sender.post("http://127.0.0.1:1/hook", b"{}", {})
    await sender.close()
    assert not outcome.ok
    assert outcome.error is not None
    assert "request failed" in outcome.error
