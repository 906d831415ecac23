"""chinwag.js's rules, run in the browser: cursor arithmetic, gaps, back-off; and /docs renders.

The cursor rules are checked on a Client whose socket is a stand-in: a real server never
skips a cursor, so a gap cannot be produced on purpose end to end.
"""

from __future__ import annotations

from typing import Any

from playwright.async_api import Browser, Route, expect

from tests.support import RunningServer, open_page

CURSOR_RULES = """async () => {
  const { Client } = await import("/web/chinwag.js");
  const client = new Client({ baseUrl: location.origin, token: "t", sessionId: "s",
    user: { user_id: "u" }, cursor: 5 });
  const closed = [];
  client.socket = { close: (code, why) => closed.push(why), readyState: 1 };
  const seen = [];
  client.addEventListener("event", (e) => seen.push(e.detail.cursor));
  const frame = (cursor) => ({ cursor, event: { type: "x", at: 0, data: {} } });
  client.onEvent(frame(6));
  client.onEvent(frame(6));  // a replay overlapping live: ignored
  client.onEvent(frame(4));  // older still: ignored
  client.onEvent(frame(9));  // 7 and 8 are missing: a gap
  const after = { seen, closed, cursor: client.state.cursor, socket: client.socket,
    saved: JSON.parse(sessionStorage.getItem("chinwag.session")).cursor };
  client.end("test");
  return after;
}"""

BACKOFF = """async () => {
  const { backoffDelay } = await import("/web/chinwag.js");
  const top = (attempt) => backoffDelay(attempt, () => 0.999999);
  return { none: backoffDelay(3, () => 0), first: top(0), fifth: top(5), late: top(40),
    spread: new Set(Array.from({ length: 50 }, () => backoffDelay(4))).size };
}"""


async def test_events_apply_in_cursor_order_and_a_gap_resumes(
    browser: Browser, server: RunningServer
) -> None:
    context, page, errors = await open_page(browser)
    await page.goto(server.url)
    result: dict[str, Any] = await page.evaluate(CURSOR_RULES)
    assert result["seen"] == [6]
    assert result["cursor"] == result["saved"] == 6  # resumes after 6, so 7.. come again
    assert result["closed"] == ["gap after 6: got 9"]
    assert result["socket"] is None
    await context.close()
    assert errors == []


async def test_back_off_is_jittered_exponential_and_capped(
    browser: Browser, server: RunningServer
) -> None:
    context, page, _ = await open_page(browser)
    await page.goto(server.url)
    result: dict[str, Any] = await page.evaluate(BACKOFF)
    assert result["none"] == 0
    assert 249 < result["first"] <= 250
    assert 7999 < result["fifth"] <= 8000
    assert 14999 < result["late"] <= 15000
    assert result["spread"] > 40  # jitter: reconnecting clients do not arrive together
    await context.close()


async def test_swagger_ui_renders_offline_with_an_authorize_button(
    browser: Browser, server: RunningServer
) -> None:
    context, page, errors = await open_page(browser)
    outside: list[str] = []

    async def only_this_server(route: Route) -> None:
        if route.request.url.startswith(server.url):
            await route.continue_()
        else:
            outside.append(route.request.url)
            await route.abort()

    await context.route("**/*", only_this_server)
    await page.goto(f"{server.url}/docs")
    await expect(page.locator(".swagger-ui .btn.authorize")).to_be_visible()
    await expect(page.locator(".opblock-summary-path").first).to_be_visible()
    assert await page.locator(".opblock").count() >= 19
    assert outside == []
    await context.close()
    assert errors == []
