"""The web client in a real browser: two people (two browser contexts) on a real server."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Locator, Page, expect

from tests.support import AppFixture, RunningServer, open_page, sign_in

SCREENSHOT = Path(os.environ.get("CHINWAG_SCREENSHOTS") or ".") / "web-client.png"
"""Written only with ``CHINWAG_SCREENSHOTS=docs/images`` (a test run leaves the tree as it
found it; without the variable the picture is still taken, and thrown away)."""

TestFn = Callable[..., Awaitable[None]]


def bounded(seconds: float) -> Callable[[TestFn], TestFn]:
    """Fail a test that takes longer than ``seconds`` (each browser step has its own 8 s)."""

    def wrap(test: TestFn) -> TestFn:
        @functools.wraps(test)
        async def run(*args: Any, **kwargs: Any) -> None:
            async with asyncio.timeout(seconds):
                await test(*args, **kwargs)

        return run

    return wrap


async def start_chat(alice: Page, with_user: str) -> None:
    await alice.fill("#new-participants", with_user)
    await alice.click("#new-conversation button")
    await expect(alice.locator("#conversation-title")).to_have_text(with_user)


async def send(page: Page, text: str) -> None:
    await page.fill("#compose-text", text)
    await page.press("#compose-text", "Enter")


def bodies(page: Page) -> Locator:
    return page.locator("#messages li .body")


async def open_first(page: Page) -> None:
    await page.locator("#conversations li .open").first.click()


@bounded(30)
async def test_two_people_chat_both_ways_live(alice: Page, bob: Page) -> None:
    await start_chat(alice, "bob")
    await send(alice, "hi bob <img src=x onerror=alert(1)>")
    unread = bob.locator("#conversations li .unread")
    await expect(unread).to_have_text("1")  # arrives live, counted unread
    await open_first(bob)
    await expect(bob.locator("#messages li .body")).to_have_text(
        ["hi bob <img src=x onerror=alert(1)>"]
    )
    assert await bob.locator("#messages img").count() == 0  # text, never markup
    await expect(unread).to_be_hidden()
    await send(bob, "hello alice")
    await expect(alice.locator("#messages li .body")).to_have_text(
        ["hi bob <img src=x onerror=alert(1)>", "hello alice"]
    )
    await expect(bob.locator("#messages li.pending")).to_have_count(0)


@bounded(30)
async def test_a_refused_new_chat_shows_why_and_the_form_still_works(alice: Page) -> None:
    await alice.fill("#new-participants", "x" * 300)  # past the 256-character user id limit
    await alice.press("#new-participants", "Enter")
    error = alice.locator("#new-conversation-error")
    await expect(error).to_have_text(
        "Invalid participants: every user id must be 1 to 256 characters."
    )
    await start_chat(alice, "oscar")  # a refusal once left the form refusing to submit
    await expect(error).to_be_empty()


@bounded(30)
async def test_typing_shows_to_the_other_person(alice: Page, bob: Page) -> None:
    await start_chat(alice, "bob")
    await send(alice, "are you there?")
    await open_first(bob)
    await bob.locator("#compose-text").press_sequentially("yes, typ")
    await expect(alice.locator("#typing")).to_have_text("bob typing…")
    await bob.press("#compose-text", "Enter")
    await expect(alice.locator("#typing")).to_have_text("")


@bounded(30)
async def test_read_receipt_shows_to_the_sender_and_outlives_a_reload(
    browser: Browser, server: RunningServer, app: AppFixture, alice: Page, bob: Page
) -> None:
    await start_chat(alice, "bob")
    await send(alice, "did you read this?")
    mine = alice.locator("#messages li.mine .receipt")
    await expect(mine).to_have_text("sent")
    await open_first(bob)
    await expect(mine).to_have_text("read")
    await alice.reload()  # resumes after its cursor: the receipt is not sent again
    await open_first(alice)
    await expect(mine).to_have_text("read")
    await expect(alice.locator("#messages li.mine.read")).to_have_count(1)
    await save_screenshot(alice, bob)

    # A new tab starts live and has seen no receipt; bob's reply says he read it.
    context, page, errors = await open_page(browser)
    await sign_in(page, server, app, "alice", "Alice")
    await open_first(page)
    await expect(bodies(page)).to_have_count(2)
    await expect(page.locator("#messages li.mine .receipt")).to_have_text("read")
    await context.close()
    assert errors == []


async def save_screenshot(alice: Page, bob: Page) -> None:
    """The picture in the docs, of a real session (alice's side)."""
    await send(bob, "Yes! Typing indicators, receipts and resume work here too.")
    await expect(alice.locator("#messages li")).to_have_count(2)
    await alice.locator("#compose-text").press_sequentially("Great")
    path = SCREENSHOT if "CHINWAG_SCREENSHOTS" in os.environ else None
    await alice.screenshot(path=path)


@bounded(30)
async def test_offline_and_back_resumes_and_sends_what_waited(alice: Page, bob: Page) -> None:
    await start_chat(alice, "bob")
    await send(alice, "before")
    await open_first(bob)
    await expect(bodies(bob)).to_have_text(["before"])

    await bob.context.set_offline(True)
    await expect(bob.locator("#status")).to_have_attribute("data-state", "offline")
    await send(alice, "while you were away 1")
    await send(alice, "while you were away 2")
    await send(bob, "written offline")
    await expect(bob.locator("#messages li.pending .body")).to_have_text(["written offline"])
    # alice's two are stored (no longer pending on her side); bob, offline, has not got them
    await expect(alice.locator("#messages li:not(.pending) .body")).to_have_count(3)
    await expect(bodies(bob)).to_have_count(2)

    await bob.context.set_offline(False)
    await expect(bob.locator("#status")).to_have_attribute("data-state", "online")
    everything = ["before", "while you were away 1", "while you were away 2", "written offline"]
    await expect(bob.locator("#messages li:not(.pending) .body")).to_have_text(everything)
    await expect(alice.locator("#messages li .body")).to_have_text(everything)
    ids = await bob.locator("#messages li").evaluate_all("(nodes) => nodes.map(n => n.dataset.id)")
    assert len(ids) == len(set(ids)) == 4  # no duplicates on either side
