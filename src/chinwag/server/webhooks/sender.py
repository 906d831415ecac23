"""One bounded POST to a receiver (a webhook endpoint or a push gateway).

Receivers are other people's servers, so every attempt is bounded: one overall deadline
(connect, TLS, send, answer: a receiver that hangs or trickles costs at most that), no
redirect followed (a 3xx is a failure the API shows; following it could lead a delivery
somewhere the app never registered), no proxy, at most :data:`MAX_HEAD_BYTES` of status
line and headers and :data:`MAX_RESPONSE_BYTES` of body read (a receiver that answers
100 MB costs a few KiB of memory; the connection is then dropped). Only a 2xx is success.

Why not httpx: a delivery is one small POST whose answer is only a status, and httpx's
generality cost about half a millisecond of CPU per request on the event loop that also
serves chat traffic (``bench/webhooks.py``). This speaks just enough HTTP/1.1 over
asyncio streams, keeps one idle connection per origin for the next delivery, and treats
anything unexpected as a failed attempt.

Where it connects: the URL was checked when registered (``core.target_urls``), but a host
name can resolve anywhere, and differently on every lookup (DNS rebinding). So each new
connection resolves the name itself, keeps only the addresses
:func:`~chinwag.core.target_urls.address_allowed` accepts (``server.target_addresses``,
shared with the JWKS fetcher), and connects to one of those addresses (TLS still verifies
the certificate for the name): the address checked is the address connected to, with no
second lookup in between. A name with no allowed address fails the attempt with one
message whether it resolved to a private address or to nothing, so the deliveries list
does not tell an app which internal names exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from chinwag.server.target_addresses import resolve_allowed

__all__ = ["MAX_HEAD_BYTES", "MAX_RESPONSE_BYTES", "Outcome", "Sender"]

MAX_RESPONSE_BYTES = 4096
MAX_HEAD_BYTES = 16 * 1024

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    status: int | None
    error: str | None
    """Why it failed, for the API to show (never the response body)."""


class _BadAnswer(Exception):
    pass


class _Refused(Exception):
    pass


class Sender:
    def __init__(self, *, timeout: float, allow_loopback: bool = False, max_idle: int = 64) -> None:
        """``allow_loopback``: the development flag (``dev_allow_http_loopback``) letting
        deliveries reach this machine; private addresses are never connected to."""
        self._timeout = timeout
        self._allow_loopback = allow_loopback
        self._idle: dict[tuple[str, str, int], list[Streams]] = {}
        self._max_idle = max_idle
        self._tls = ssl.create_default_context()

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        try:
            async with asyncio.timeout(self._timeout):
                return await self._post(url, body, headers)
        except TimeoutError:
            return Outcome(False, None, f"no answer within {self._timeout:g} seconds")
        except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return Outcome(False, None, "request failed: connection error")
        except _Refused as exc:
            return Outcome(False, None, f"refused: {exc}")
        except (_BadAnswer, ValueError) as exc:
            return Outcome(False, None, f"request failed: {exc}")

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        parts = urlsplit(url)
        tls = parts.scheme == "https"
        host = parts.hostname or ""
        origin = (parts.scheme, host, parts.port or (443 if tls else 80))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        reader, writer = await self._connection(origin, tls)
        try:
            request = [f"POST {target} HTTP/1.1", f"host: {parts.netloc}",
                       "user-agent: chinwag-webhooks", "content-type: application/json",
                       f"content-length: {len(body)}"]  # fmt: skip
            request += [f"{k}: {v}" for k, v in headers.items()]
            writer.write(("\r\n".join(request) + "\r\n\r\n").encode() + body)
            status, reusable = await _read_answer(reader)
        except BaseException:
            writer.close()
            raise
        self._release(origin, (reader, writer), reusable)
        if 200 <= status < 300:
            return Outcome(True, status, None)
        if 300 <= status < 400:
            return Outcome(False, status, f"answered {status}; redirects are not followed")
        return Outcome(False, status, f"answered {status}")

    async def _connection(self, origin: tuple[str, str, int], tls: bool) -> Streams:
        pool = self._idle.get(origin)
        while pool:
            reader, writer = pool.pop()
            if not writer.is_closing() and not reader.at_eof():
                return reader, writer
            writer.close()
        _, host, port = origin
        allowed = await resolve_allowed(host, port, allow_loopback=self._allow_loopback)
        if not allowed:  # one message whether it resolved to nothing or to a private address
            raise _Refused(f"{host[:100]} does not resolve to a public address")
        failure: OSError | None = None
        for address in allowed:
            try:
                return await asyncio.open_connection(
                    address, port, ssl=self._tls if tls else None,
                    server_hostname=host if tls else None, limit=MAX_HEAD_BYTES,
                )  # fmt: skip
            except OSError as exc:
                failure = exc
        assert failure is not None
        raise failure

    def _release(self, origin: tuple[str, str, int], streams: Streams, reusable: bool) -> None:
        pool = self._idle.setdefault(origin, [])
        if reusable and len(pool) < self._max_idle:
            pool.append(streams)
        else:
            streams[1].close()

    async def close(self) -> None:
        for pool in self._idle.values():
            for _, writer in pool:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
        self._idle.clear()


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """The status, and whether the connection may carry another request (the whole body
    was read and the receiver did not ask to close)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
        raise _BadAnswer("not an HTTP/1.x answer")
    fields = {}
    for line in lines:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip().lower()
    length = fields.get("content-length")
    if length is not None and length.isdigit() and int(length) <= MAX_RESPONSE_BYTES:
        await reader.readexactly(int(length))
        return int(rest[:3]), fields.get("connection") != "close"
    with contextlib.suppress(asyncio.IncompleteReadError):
        await reader.read(MAX_RESPONSE_BYTES)  # a taste of a large or chunked body, then drop
    return int(rest[:3]), False
