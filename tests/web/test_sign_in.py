"""Signing in from the page: through a production app's own identity service, and out."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from examples.identity_service.app import Config, create_service
from examples.identity_service.page import CONTENT_SECURITY_POLICY
from examples.identity_service.tokens import SigningKey
from playwright.async_api import Browser, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chinwag.server.handlers.sessions import revoke_user_sessions
from tests.support import AppFixture, RunningServer, make_app, open_page, run_asgi, sign_in


def identity_service(app: AppFixture, page_origin: str, user_id: str) -> Starlette:
    """The contract in docs/web-client.md: POST {"app_id", "nonce"} with the service's own
    cookies, answer {"identity_token"}; CORS for the chat page's origin, with credentials.
    This one has already authenticated ``user_id`` (its cookie says so)."""
    cors = {
        "Access-Control-Allow-Origin": page_origin,
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Allow-Methods": "POST",
        "Access-Control-Allow-Headers": "Content-Type",
        "Vary": "Origin",
    }

    async def token(request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=cors)
        body = await request.json()
        assert body["app_id"] == app.app_id
        claims = {"sub": user_id, "nce": body["nonce"], "iat": int(time.time())}
        return JSONResponse({"identity_token": app.token(claims)}, headers=cors)

    return Starlette(routes=[Route("/identity-token", token, methods=["POST", "OPTIONS"])])


# Where a radio button is drawn against the words of its label (the text after it).
RADIO_AND_WORDS = """(radio) => {
  const words = document.createRange();
  words.selectNodeContents(radio.parentElement);
  words.setStartAfter(radio);
  const text = words.getBoundingClientRect();
  const box = radio.getBoundingClientRect();
  return { sameLine: box.top < text.bottom && text.top < box.bottom,
    before: box.right <= text.left };
}"""


@pytest.fixture
async def production_app(server: RunningServer) -> AppFixture:
    return await make_app(server.services, production=True)


@pytest.fixture
async def service_url(server: RunningServer, production_app: AppFixture) -> AsyncIterator[str]:
    async with run_asgi(identity_service(production_app, server.url, "dana")) as url:
        yield f"{url}/identity-token"


async def test_a_production_app_signs_in_through_its_identity_service(
    browser: Browser, server: RunningServer, production_app: AppFixture, service_url: str
) -> None:
    context, page, errors = await open_page(browser)
    await page.goto(f"{server.url}/?app={production_app.app_id}")
    for radio in await page.locator("input[name=provider]").all():  # inline, as a choice reads
        assert await radio.evaluate(RADIO_AND_WORDS) == {"sameLine": True, "before": True}
    await page.check("input[name=provider][value=service]")
    await page.fill("#identity-url", service_url)
    await page.click("#sign-in-button")
    await expect(page.locator("#status")).to_have_attribute("data-state", "online")
    await expect(page.locator("#whoami")).to_have_text("dana")
    await context.close()
    assert errors == []


async def test_sign_in_on_the_example_identity_service_s_page_then_chat_through_it(
    browser: Browser, server: RunningServer, production_app: AppFixture, tmp_path: Path
) -> None:
    """examples/identity_service serves the web client (README: "Use it with chinwag's web
    client"): its page signs the person in with a cookie, chinwag's page fetches an identity
    token with that cookie across origins (CORS for ``server.url`` only)."""
    assert production_app.private_key_pem is not None
    key = SigningKey(
        production_app.app_id, production_app.kid, "ES256", production_app.private_key_pem
    )
    config = Config(key=key, database=tmp_path / "users.db", chat_origins=frozenset({server.url}))
    context, page, errors = await open_page(browser)
    async with run_asgi(create_service(config)) as identity:
        shown = await page.goto(f"{identity}/")
        assert shown is not None
        assert shown.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        await page.fill("#username", "alice")
        await page.fill("#password", "correct horse battery")
        await page.fill("#display-name", "Alice")
        await page.click("#sign-up-button")
        await expect(page.locator("#status")).to_have_text("Signed in as Alice (alice).")

        await page.goto(f"{server.url}/?app={production_app.app_id}")
        await page.check("input[name=provider][value=service]")
        await page.fill("#identity-url", f"{identity}/chat_token")
        await page.click("#sign-in-button")
        await expect(page.locator("#status")).to_have_attribute("data-state", "online")
        await expect(page.locator("#whoami")).to_have_text("Alice (alice)")
    await context.close()
    assert errors == []


async def test_the_sample_provider_is_refused_for_a_production_app(
    browser: Browser, server: RunningServer, production_app: AppFixture
) -> None:
    context, page, _ = await open_page(browser)
    await page.goto(f"{server.url}/?app={production_app.app_id}")
    await page.fill("#user-id", "mallory")
    await page.click("#sign-in-button")
    await expect(page.locator("#sign-in-error")).to_contain_text("production apps")
    assert await page.locator("#chat").is_hidden()
    await context.close()


async def test_sign_out_ends_the_session_and_forgets_it(
    browser: Browser, server: RunningServer, app: AppFixture
) -> None:
    context, page, errors = await open_page(browser)
    await sign_in(page, server, app, "erin", "Erin")
    token = await page.evaluate("JSON.parse(sessionStorage.getItem('chinwag.session')).token")
    await page.click("#sign-out")
    await expect(page.locator("#sign-in")).to_be_visible()
    await expect(page.locator("#status")).to_have_attribute("data-state", "offline")
    assert await page.evaluate("sessionStorage.getItem('chinwag.session')") is None
    await page.reload()
    await expect(page.locator("#sign-in")).to_be_visible()
    answer = await page.request.get(
        f"{server.url}/v1/me", headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status == 401
    await context.close()
    assert errors == []


async def test_a_reload_keeps_the_tab_signed_in(
    browser: Browser, server: RunningServer, app: AppFixture
) -> None:
    context, page, errors = await open_page(browser)
    await sign_in(page, server, app, "erin", "Erin")
    await page.reload()
    await expect(page.locator("#status")).to_have_attribute("data-state", "online")
    await expect(page.locator("#whoami")).to_have_text("Erin (erin)")
    await context.close()
    assert errors == []


async def test_a_revoked_session_signs_the_page_out(
    browser: Browser, server: RunningServer, app: AppFixture
) -> None:
    context, page, errors = await open_page(browser)
    await sign_in(page, server, app, "erin", "Erin")
    await revoke_user_sessions(server.services, app.app_id, "erin")  # `chinwag sessions revoke`
    await expect(page.locator("#sign-in-error")).to_have_text("Signed out (revoked).")
    await expect(page.locator("#chat")).to_be_hidden()
    assert await page.evaluate("sessionStorage.getItem('chinwag.session')") is None
    await context.close()
    assert errors == []
