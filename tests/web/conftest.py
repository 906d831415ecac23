"""A real chinwag server on SQLite and Debian's Chromium driven by Playwright.

The browser is the system one (``/usr/bin/chromium``, ``apt-get install chromium``):
Playwright's own browser download is never used. Without it these tests FAIL, so a CI
machine missing the browser is noticed; ``CHINWAG_SKIP_BROWSER=1`` skips them on purpose.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from chinwag.server.settings import Settings
from tests.support import AppFixture, RunningServer, make_app, open_page, run_server, sign_in

CHROMIUM = os.environ.get("CHINWAG_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'chinwag.db'}", auth_rate_per_second=0
    )
    async with run_server(settings) as running:
        yield running


@pytest.fixture
async def app(server: RunningServer) -> AppFixture:
    return await make_app(server.services)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if os.environ.get("CHINWAG_SKIP_BROWSER") == "1":
        pytest.skip("CHINWAG_SKIP_BROWSER=1")
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: apt-get install -y chromium (or CHINWAG_SKIP_BROWSER=1)"
        )
    async with async_playwright() as playwright:
        # launch() gives Chromium a fresh, temporary user-data dir of its own (deleted on
        # close), so no test sees another's profile; contexts within it share nothing.
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=20_000
        )
        try:
            yield browser
        finally:
            await browser.close()


async def signed_in(
    browser: Browser, server: RunningServer, app: AppFixture, user_id: str
) -> AsyncIterator[Page]:
    context, page, errors = await open_page(browser)
    await sign_in(page, server, app, user_id, user_id.title())
    yield page
    await context.close()
    assert errors == [], errors


@pytest.fixture
async def alice(browser: Browser, server: RunningServer, app: AppFixture) -> AsyncIterator[Page]:
    async for page in signed_in(browser, server, app, "alice"):
        yield page


@pytest.fixture
async def bob(browser: Browser, server: RunningServer, app: AppFixture) -> AsyncIterator[Page]:
    async for page in signed_in(browser, server, app, "bob"):
        yield page
