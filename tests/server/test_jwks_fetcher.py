"""The JWKS fetcher alone, against real endpoints on loopback: what it refuses and why."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from chinwag.core.keys import Alg, generate_key_pair
from chinwag.server.jwks import JwksFetcher, JwksFetchError
from tests.support import jwk_for, run_asgi

Send = Callable[[dict[str, Any]], Awaitable[None]]
DOCUMENT = json.dumps({"keys": [jwk_for(generate_key_pair(Alg.ES256), "k1")]}).encode()


def answering(status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Send) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def _fetcher() -> JwksFetcher:
    return JwksFetcher(allow_insecure=True, timeout=2.0, max_bytes=64 * 1024)


async def test_a_good_set_is_read_with_its_lifetime() -> None:
    headers = [(b"cache-control", b"max-age=600")]
    async with run_asgi(answering(200, DOCUMENT, headers)) as url:
        fetcher = _fetcher()
        try:
            fetched = await fetcher.fetch(url + "/jwks")
        finally:
            await fetcher.close()
    assert list(fetched.keys.keys) == ["k1"]
    assert fetched.max_age == 600


@pytest.mark.parametrize(
    ("status", "body", "headers", "problem"),
    [
        (200, gzip.compress(DOCUMENT), [(b"content-encoding", b"gzip")], "gzip-encoded"),
        (200, b"{}", [(b"content-length", b"999999")], "over 65536 bytes"),
        (200, b"<html>hello</html>", [], "not a strict UTF-8 JSON object"),
        (404, b"", [], "answered 404"),
        (301, b"", [(b"location", b"https://example.com/")], "redirected (301)"),
    ],
)
async def test_unusable_answers_are_refused_with_the_reason(
    status: int, body: bytes, headers: list[tuple[bytes, bytes]], problem: str
) -> None:
    async with run_asgi(answering(status, body, headers)) as url:
        fetcher = _fetcher()
        try:
            with pytest.raises(JwksFetchError, match=re.escape(problem)):
                await fetcher.fetch(url + "/jwks")
        finally:
            await fetcher.close()


async def test_nothing_listening_is_a_fetch_error() -> None:
    from tests.support import free_port

    fetcher = _fetcher()
    try:
        with pytest.raises(JwksFetchError, match="request failed"):
            await fetcher.fetch(f"http://127.0.0.1:{free_port()}/jwks")
    finally:
        await fetcher.close()


async def test_the_url_rule_is_checked_again_before_each_fetch() -> None:
    fetcher = JwksFetcher(allow_insecure=False, timeout=2.0, max_bytes=64 * 1024)
    with pytest.raises(JwksFetchError, match="https://"):
        await fetcher.fetch("http://127.0.0.1:9/jwks")
    await fetcher.close()
