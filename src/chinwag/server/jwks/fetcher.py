"""Fetching a JWKS over HTTP, bounded in every way a hostile or broken endpoint could test.

- **Time**: the whole exchange (connect, headers, body) gets ``timeout`` seconds of wall
  time, not per read: an endpoint that drips one byte a second would pass every per-read
  timeout while holding a sign-in for minutes.
- **Size**: at most ``max_bytes`` of body, read as it streams and cut off past the limit;
  ``Accept-Encoding: identity`` and a refusal of any other encoding keep a small
  compressed answer from inflating in memory.
- **Redirects**: none are followed. The registered URL is the one checked
  (:func:`chinwag.core.jwks_url.check_jwks_url`); following a redirect would fetch a URL
  nobody checked. The error says to register the final URL.
- **Scheme and host**: checked again before every fetch, so a URL stored under a laxer
  rule (or a server restarted without the development flag) is not fetched.

The error message is safe to log and to show the person registering the URL: it names the
status or the limit, never the body.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from chinwag.core.errors import InvalidRequest
from chinwag.core.jwks import JwkSet, cache_lifetime, parse_jwks
from chinwag.core.jwks_url import check_jwks_url

__all__ = ["FetchedSet", "JwksFetchError", "JwksFetcher"]

_ACCEPT = "application/jwk-set+json, application/json;q=0.9"


class JwksFetchError(Exception):
    """The set could not be fetched or read; ``str(error)`` says why, without the body."""


@dataclass(frozen=True, slots=True)
class FetchedSet:
    keys: JwkSet
    max_age: float
    """Seconds to trust it, from its ``Cache-Control`` (clamped; ``core.jwks``)."""


class JwksFetcher:
    """One pooled HTTP client for every app's set; opened on first use, closed at shutdown."""

    def __init__(self, *, allow_insecure: bool, timeout: float, max_bytes: int) -> None:
        self.allow_insecure = allow_insecure
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                follow_redirects=False,
                timeout=httpx.Timeout(self.timeout),
                # Proxy variables are not read: the set decides whose tokens are believed,
                # and an inherited proxy would see (and could answer) every fetch.
                trust_env=False,
                headers={"accept": _ACCEPT, "accept-encoding": "identity"},
            )
        return self._client

    async def fetch(self, url: str) -> FetchedSet:
        try:
            check_jwks_url(url, allow_insecure=self.allow_insecure)
        except InvalidRequest as exc:
            raise JwksFetchError(exc.message) from None
        try:
            async with asyncio.timeout(self.timeout):
                body, cache_control = await self._get(url)
        except TimeoutError:
            raise JwksFetchError(f"no complete answer within {self.timeout:g} s") from None
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            # Whatever the peer or the network does ends here, never as a 500 of sign-in.
            raise JwksFetchError(f"the request failed ({type(exc).__name__})") from None
        try:
            keys = parse_jwks(body)
        except InvalidRequest as exc:
            raise JwksFetchError(exc.message) from None
        return FetchedSet(keys=keys, max_age=cache_lifetime(cache_control))

    async def _get(self, url: str) -> tuple[bytes, str | None]:
        async with self._http().stream("GET", url) as response:
            if response.is_redirect:
                raise JwksFetchError(
                    f"the endpoint redirected ({response.status_code}); redirects are not "
                    "followed, register the final URL"
                )
            if response.status_code != 200:
                raise JwksFetchError(f"the endpoint answered {response.status_code}")
            encoding = response.headers.get("content-encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):
                raise JwksFetchError(f"the answer is {encoding[:20]}-encoded; send it plain")
            return await self._read(response), response.headers.get("cache-control")

    async def _read(self, response: httpx.Response) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise JwksFetchError(f"the set is over {self.max_bytes} bytes")
        body = bytearray()
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) > self.max_bytes:
                raise JwksFetchError(f"the set is over {self.max_bytes} bytes")
        return bytes(body)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
