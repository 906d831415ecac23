"""Signing in with keys an app publishes at a JWKS URL, against a real endpoint on loopback.

The endpoint (``tests.support.JwksEndpoint``) is the app's backend: the tests change what it
serves and count its requests; chinwag is never told about a rotation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from chinwag.clock import ManualClock
from chinwag.core.keys import Alg, GeneratedKeyPair, generate_key_pair
from chinwag.server.settings import Settings
from tests.support import (
    AppFixture,
    JwksEndpoint,
    RunningServer,
    jwk_for,
    login,
    platform_key,
    run_server,
)

ADMIN = "cwk_standin_" + "a" * 43
PLATFORM = {"Authorization": f"Bearer {ADMIN}"}
FETCH_TIMEOUT = 1.0
# The drip endpoint takes 10 s to finish its answer. A refusal well before that shows the
# whole-fetch bound at work; the margin is wide because CI runs this on a loaded machine.
BOUNDED = FETCH_TIMEOUT + 4.0
OCT_SECRET = "c2VjcmV0" * 6


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        auth_rate_per_second=0,
        allow_insecure_jwks=True,
        jwks_fetch_timeout=FETCH_TIMEOUT,
    )


@pytest.fixture(autouse=True)
async def _admin_key(server: RunningServer) -> None:
    """PLATFORM carries a real admin API key made for this test's database."""
    PLATFORM.clear()
    PLATFORM.update(await platform_key(server.services))


@pytest.fixture
def endpoint() -> Iterator[JwksEndpoint]:
    with JwksEndpoint() as running:
        yield running


@pytest.fixture
def pair() -> GeneratedKeyPair:
    return generate_key_pair(Alg.ES256)


def _signer(app: AppFixture, pair: GeneratedKeyPair, kid: str) -> AppFixture:
    return AppFixture(app.app_id, kid, pair.alg, private_key_pem=pair.private_key_pem)


async def _register(client: httpx.AsyncClient, app_id: str, url: str) -> dict[str, Any]:
    response = await client.put(
        f"/v1/platform/apps/{app_id}/jwks", json={"url": url}, headers=PLATFORM
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _sign_in(
    client: httpx.AsyncClient, signer: AppFixture, now: float, user: str = "alice"
) -> httpx.Response:
    nonce = (await client.post("/v1/nonces", json={"app_id": signer.app_id})).json()["nonce"]
    token = signer.token({"sub": user, "nce": nonce, "iat": int(now)})
    return await client.post(
        "/v1/sessions", json={"app_id": signer.app_id, "identity_token": token}
    )


def _refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"]["data"]["reason"] == "signature_invalid"


async def test_sign_in_with_a_key_from_the_jwks(
    server: RunningServer,
    client: httpx.AsyncClient,
    app: AppFixture,
    endpoint: JwksEndpoint,
    pair: GeneratedKeyPair,
) -> None:
    endpoint.keys = [jwk_for(pair, "2026-11")]
    body = await _register(client, app.app_id, endpoint.url)
    assert body["keys"] == [{"kid": "2026-11", "alg": "ES256"}]
    assert body["url"] == endpoint.url
    await login(client, _signer(app, pair, "2026-11"), "alice", server.clock.now())
    assert endpoint.hits == 1  # registration primed the cache
    # Uploaded keys keep working beside the JWKS.
    await login(client, app, "bob", server.clock.now())
    shown = await client.get(f"/v1/platform/apps/{app.app_id}/jwks", headers=PLATFORM)
    assert shown.status_code == 200
    assert shown.json()["keys"] == body["keys"]


async def test_rotation_signs_in_with_the_new_kid_after_one_refetch(
    server: RunningServer,
    client: httpx.AsyncClient,
    app: AppFixture,
    endpoint: JwksEndpoint,
    pair: GeneratedKeyPair,
) -> None:
    endpoint.keys = [jwk_for(pair, "old")]
    await _register(client, app.app_id, endpoint.url)
    new_pair = generate_key_pair(Alg.RS256)
    endpoint.keys = [jwk_for(pair, "old"), jwk_for(new_pair, "new")]
    server.clock.advance(30)  # the unknown-kid refetch allows one per 30 s
    await login(client, _signer(app, new_pair, "new"), "alice", server.clock.now())
    assert endpoint.hits == 2
    await login(client, _signer(app, new_pair, "new"), "bob", server.clock.now())
    assert endpoint.hits == 2


async def test_the_last_good_set_is_kept_while_the_endpoint_is_down(
    server: RunningServer,
    client: httpx.AsyncClient,
    app: AppFixture,
    endpoint: JwksEndpoint,
    pair: GeneratedKeyPair,
    caplog: pytest.LogCaptureFixture,
) -> None:
    endpoint.keys = [jwk_for(pair, "k1")]
    await _register(client, app.app_id, endpoint.url)
    endpoint.mode = "down"
    server.clock.advance(301)  # past the default 5-minute lifetime
    with caplog.at_level(logging.WARNING, logger="chinwag.jwks"):
        await login(client, _signer(app, pair, "k1"), "alice", server.clock.now())
    assert endpoint.hits == 2
    assert "JWKS fetch failed" in caplog.text
    assert "answered 500" in caplog.text
    assert "keeping the last good set" in caplog.text
    shown = (await client.get(f"/v1/platform/apps/{app.app_id}/jwks", headers=PLATFORM)).json()
    assert shown["last_error"] == "the endpoint answered 500"
    # Failures are retried at most once per 30 s, not on every sign-in.
    await login(client, _signer(app, pair, "k1"), "bob", server.clock.now())
    assert endpoint.hits == 2


async def test_an_unknown_kid_flood_refetches_at_most_once_per_30_seconds(
    server: RunningServer,
    client: httpx.AsyncClient,
    app: AppFixture,
    endpoint: JwksEndpoint,
    pair: GeneratedKeyPair,
) -> None:
    endpoint.keys = [jwk_for(pair, "real")]
    endpoint.cache_control = "max-age=3600"
    await _register(client, app.app_id, endpoint.url)
    for second in range(3):
        for n in range(5):
            _refused(await _sign_in(client, _signer(app, pair, f"forged-{second}-{n}"), 0))
        assert endpoint.hits == 1 + second
        server.clock.advance(30)


async def test_concurrent_sign_ins_share_one_fetch(
    server: RunningServer,
    client: httpx.AsyncClient,
    app: AppFixture,
    endpoint: JwksEndpoint,
    pair: GeneratedKeyPair,
) -> None:
    endpoint.keys = [jwk_for(pair, "k1")]
    await _register(client, app.app_id, endpoint.url)
    server.clock.advance(301)
    endpoint.delay = 0.3
    signer = _signer(app, pair, "k1")
    now = server.clock.now()
    answers = await asyncio.gather(*(_sign_in(client, signer, now, f"u{i}") for i in range(8)))
    assert [a.status_code for a in answers] == [201] * 8
    assert endpoint.hits == 2


async def test_cache_control_max_age_sets_when_the_set_is_fetched_again(
    server: RunningServer,
    client: httpx.AsyncClient,
    app: AppFixture,
    endpoint: JwksEndpoint,
    pair: GeneratedKeyPair,
) -> None:
    endpoint.keys = [jwk_for(pair, "k1")]
    endpoint.cache_control = "public, max-age=120"
    body = await _register(client, app.app_id, endpoint.url)
    assert body["expires_at"] - body["fetched_at"] == 120
    server.clock.advance(119)
    await login(client, _signer(app, pair, "k1"), "alice", server.clock.now())
    assert endpoint.hits == 1
    server.clock.advance(1)
    await login(client, _signer(app, pair, "k1"), "bob", server.clock.now())
    assert endpoint.hits == 2


async def test_a_key_removed_from_the_set_stops_working_once_it_expires(
    server: RunningServer,
    client: httpx.AsyncClient,
    app: AppFixture,
    endpoint: JwksEndpoint,
    pair: GeneratedKeyPair,
) -> None:
    replacement = generate_key_pair(Alg.EDDSA)
    endpoint.keys = [jwk_for(pair, "leaked"), jwk_for(replacement, "next")]
    await _register(client, app.app_id, endpoint.url)
    endpoint.keys = [jwk_for(replacement, "next")]
    server.clock.advance(300)
    _refused(await _sign_in(client, _signer(app, pair, "leaked"), server.clock.now()))
    await login(client, _signer(app, replacement, "next"), "alice", server.clock.now())


async def test_unusable_keys_are_listed_and_refused_at_sign_in(
    server: RunningServer,
    client: httpx.AsyncClient,
    app: AppFixture,
    endpoint: JwksEndpoint,
    pair: GeneratedKeyPair,
) -> None:
    unsigned = generate_key_pair(Alg.ES256)
    endpoint.keys = [
        jwk_for(pair, "good"),
        jwk_for(unsigned, "none-key", alg="none"),
        {"kty": "oct", "kid": "shared", "k": OCT_SECRET, "alg": "HS256"},
    ]
    body = await _register(client, app.app_id, endpoint.url)
    assert body["keys"] == [{"kid": "good", "alg": "ES256"}]
    assert {r["kid"] for r in body["rejected"]} == {"none-key", "shared"}
    server.clock.advance(30)
    _refused(await _sign_in(client, _signer(app, unsigned, "none-key"), server.clock.now()))
    oct_signer = AppFixture(app.app_id, "shared", Alg.HS256, secret=OCT_SECRET)
    _refused(await _sign_in(client, oct_signer, server.clock.now()))


async def test_a_set_of_only_unusable_keys_is_refused_at_registration(
    client: httpx.AsyncClient, app: AppFixture, endpoint: JwksEndpoint
) -> None:
    endpoint.keys = [
        jwk_for(generate_key_pair(Alg.ES256), "none-key", alg="none"),
        {"kty": "oct", "kid": "shared", "k": "c2VjcmV0", "alg": "HS256"},
    ]
    response = await client.put(
        f"/v1/platform/apps/{app.app_id}/jwks", json={"url": endpoint.url}, headers=PLATFORM
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["id"] == "invalid_request"
    assert "no usable signing key" in error["message"]
    missing = await client.get(f"/v1/platform/apps/{app.app_id}/jwks", headers=PLATFORM)
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("mode", "problem"),
    [
        ("huge", "over 65536 bytes"),
        ("drip", f"within {FETCH_TIMEOUT:g} s"),
        ("redirect", "redirected (302)"),
        ("down", "answered 500"),
    ],
)
async def test_a_bad_endpoint_is_refused_in_bounded_time(
    client: httpx.AsyncClient, app: AppFixture, endpoint: JwksEndpoint, mode: str, problem: str
) -> None:
    endpoint.keys = [jwk_for(generate_key_pair(Alg.ES256), "k1")]
    endpoint.mode = mode
    started = time.monotonic()
    response = await client.put(
        f"/v1/platform/apps/{app.app_id}/jwks", json={"url": endpoint.url}, headers=PLATFORM
    )
    assert time.monotonic() - started < BOUNDED
    assert response.status_code == 422, response.text
    assert problem in response.json()["error"]["message"]


async def test_sign_in_waits_no_longer_than_the_fetch_timeout_for_a_slow_endpoint(
    server: RunningServer,
    client: httpx.AsyncClient,
    app: AppFixture,
    endpoint: JwksEndpoint,
    pair: GeneratedKeyPair,
) -> None:
    endpoint.keys = [jwk_for(pair, "k1")]
    await _register(client, app.app_id, endpoint.url)
    endpoint.mode = "drip"
    server.clock.advance(301)
    started = time.monotonic()
    await login(client, _signer(app, pair, "k1"), "alice", server.clock.now())
    assert time.monotonic() - started < BOUNDED


async def test_removing_the_url_stops_trusting_the_set(
    server: RunningServer,
    client: httpx.AsyncClient,
    app: AppFixture,
    endpoint: JwksEndpoint,
    pair: GeneratedKeyPair,
) -> None:
    endpoint.keys = [jwk_for(pair, "k1")]
    await _register(client, app.app_id, endpoint.url)
    removed = await client.delete(f"/v1/platform/apps/{app.app_id}/jwks", headers=PLATFORM)
    assert removed.status_code == 204
    _refused(await _sign_in(client, _signer(app, pair, "k1"), server.clock.now()))
    await login(client, app, "alice", server.clock.now())  # uploaded keys untouched


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic " + ADMIN}],
)
async def test_the_jwks_endpoints_need_a_platform_key(
    client: httpx.AsyncClient, app: AppFixture, headers: dict[str, str]
) -> None:
    for method in ("PUT", "GET", "DELETE"):
        response = await client.request(
            method,
            f"/v1/platform/apps/{app.app_id}/jwks",
            json={"url": "https://auth.example.com/jwks.json"},
            headers=headers,
        )
        assert response.status_code == 401, (method, response.text)
        assert response.json()["error"]["id"] == "authentication_required"


async def test_a_session_token_is_no_platform_key(
    client: httpx.AsyncClient, app: AppFixture, alice: dict[str, str]
) -> None:
    response = await client.get(f"/v1/platform/apps/{app.app_id}/jwks", headers=alice)
    assert response.status_code == 401


async def test_an_unknown_app_is_404(client: httpx.AsyncClient) -> None:
    response = await client.put(
        "/v1/platform/apps/4b7f1c1e-2f0a-4c53-9d3e-0a1b2c3d4e5f/jwks",
        json={"url": "https://auth.example.com/jwks.json"},
        headers=PLATFORM,
    )
    assert response.status_code == 404
    assert response.json()["error"]["id"] == "app_not_found"


async def test_http_urls_are_refused_without_the_development_flag(
    database_url: str, endpoint: JwksEndpoint
) -> None:
    settings = Settings(database_url=database_url)
    async with run_server(settings, ManualClock(start=time.time())) as running:
        app = await _make_app(running)
        async with httpx.AsyncClient(base_url=running.url) as client:
            response = await client.put(
                f"/v1/platform/apps/{app}/jwks", json={"url": endpoint.url}, headers=PLATFORM
            )
    assert response.status_code == 422
    assert "https://" in response.json()["error"]["message"]
    assert endpoint.hits == 0


async def test_a_loopback_host_in_integer_form_is_refused_at_registration(
    database_url: str,
) -> None:
    """``2130706433`` is 127.0.0.1 to every resolver: without the development flag it is
    refused like the dotted form, before any fetch."""
    settings = Settings(database_url=database_url)
    async with run_server(settings, ManualClock(start=time.time())) as running:
        app = await _make_app(running)
        async with httpx.AsyncClient(base_url=running.url) as client:
            response = await client.put(
                f"/v1/platform/apps/{app}/jwks",
                json={"url": "https://2130706433/jwks"},
                headers=PLATFORM,
            )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["id"] == "invalid_request"
    assert "public address" in error["message"]
    assert error["data"]["property"] == "jwks_url"


async def _make_app(running: RunningServer) -> str:
    from chinwag.server.handlers.apps import create_app

    record, _ = await create_app(running.services, "no flag")
    return record.id


async def test_registering_the_url_again_makes_every_node_drop_its_copy(
    server: RunningServer,
    settings: Settings,
    client: httpx.AsyncClient,
    app: AppFixture,
    endpoint: JwksEndpoint,
    pair: GeneratedKeyPair,
) -> None:
    endpoint.keys = [jwk_for(pair, "leaked")]
    endpoint.cache_control = "max-age=86400"
    await _register(client, app.app_id, endpoint.url)
    async with (
        run_server(settings, server.clock) as other,
        httpx.AsyncClient(base_url=other.url) as other_client,
    ):
        await login(other_client, _signer(app, pair, "leaked"), "alice", server.clock.now())
        assert endpoint.hits == 2  # the other node fetched for itself
        replacement = generate_key_pair(Alg.ES256)
        endpoint.keys = [jwk_for(replacement, "next")]
        server.clock.advance(1)
        await _register(client, app.app_id, endpoint.url)
        _refused(await _sign_in(other_client, _signer(app, pair, "leaked"), server.clock.now()))
        await login(other_client, _signer(app, replacement, "next"), "bob", server.clock.now())
    assert endpoint.hits == 4
