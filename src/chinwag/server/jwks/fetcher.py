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
- **Where it connects**: a host name can resolve anywhere, and differently on every lookup
  (DNS rebinding), so each fetch resolves it itself, keeps only the addresses
  :func:`~chinwag.core.target_urls.address_allowed` accepts (``server.target_addresses``,
  shared with the webhook sender) and connects to one of those: the URL asked for names
  the address, the ``Host`` header and TLS (SNI and certificate check) name the host. The
  address checked is the address connected to, with no second lookup in between. A name
  with no allowed address fails with one message whether it resolved to a private address
  or to nothing, so the error does not tell an app which internal names exist.

The error message is safe to log and to show the person registering the URL: it names the
status or the limit, never the body.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from urllib.parse import urlsplit

import httpx

from chinwag.core.errors import InvalidRequest
from chinwag.core.jwks import JwkSet, cache_lifetime, parse_jwks
from chinwag.core.jwks_url import check_jwks_url
from chinwag.core.target_urls import address_allowed, host_address
from chinwag.server.target_addresses import resolve_allowed

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
    """One HTTP client for every app's set; opened on first use, closed at shutdown."""

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
                # Requests go to an address (see _get), and the pool keys connections by
                # it: a kept-alive connection whose TLS was verified for one app's host
                # could carry another app's fetch for a different host on the same
                # address. So none is kept; sets are cached, fetches are rare.
                limits=httpx.Limits(max_keepalive_connections=0),
                # Nor are cookies: one app's endpoint must not set what another's receives.
                cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
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
        parts = urlsplit(url)
        host = parts.hostname or ""
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        literal = host_address(host)
        if literal is None:
            allowed = await resolve_allowed(
                host, port, allow_loopback=self.allow_insecure, unencodable_is_unresolved=True
            )
        elif address_allowed(literal, allow_loopback=self.allow_insecure):
            allowed = [str(literal)]
        else:
            allowed = []
        if not allowed:  # one message whether it resolved to nothing or to a private address
            kind = "a public or loopback" if self.allow_insecure else "a public"
            raise JwksFetchError(f"{host[:100]} does not resolve to {kind} address")
        named = httpx.URL(url)
        headers = {"host": f"[{host}]" if ":" in host else host}
        if parts.port is not None:
            headers["host"] += f":{parts.port}"
        # TLS checks the certificate for the name the URL gives (an IP literal is checked
        # as the address it is).
        extensions = {"sni_hostname": host} if tls and literal is None else {}
        failure: httpx.ConnectError | None = None
        for address in allowed:
            pinned = named.copy_with(host=address)
            try:
                return await self._exchange(pinned, headers, extensions)
            except httpx.ConnectError as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def _exchange(
        self, url: httpx.URL, headers: dict[str, str], extensions: dict[str, str]
    ) -> tuple[bytes, str | None]:
        async with self._http().stream(
            "GET", url, headers=headers, extensions=extensions
        ) as response:
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
