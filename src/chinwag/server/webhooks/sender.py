"""One bounded POST to a receiver (a webhook endpoint or a push gateway).

Receivers are other people's servers, so every attempt is bounded: one overall deadline
(connect, send, answer: a receiver that hangs or trickles costs at most that), no redirect
followed (a 3xx is a failure the API shows; following it could lead a delivery somewhere
the app never registered), no proxy from the environment, and at most
:data:`MAX_RESPONSE_BYTES` of the answer read (a receiver that answers 100 MB costs a few
KiB of memory). Only a 2xx status is success.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

__all__ = ["MAX_RESPONSE_BYTES", "Outcome", "Sender"]

MAX_RESPONSE_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    status: int | None
    error: str | None
    """Why it failed, for the API to show (never the response body)."""


class Sender:
    def __init__(self, *, timeout: float, max_connections: int = 64) -> None:
        self._timeout = timeout
        self._http = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=16),
            headers={"user-agent": "chinwag-webhooks"},
        )

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        try:
            async with asyncio.timeout(self._timeout):
                return await self._post(url, body, headers)
        except TimeoutError:
            return Outcome(False, None, f"no answer within {self._timeout:g} seconds")
        except httpx.HTTPError as exc:
            return Outcome(False, None, f"request failed: {type(exc).__name__}")

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        request_headers = {**headers, "content-type": "application/json"}
        async with self._http.stream("POST", url, content=body, headers=request_headers) as answer:
            read = 0
            async for chunk in answer.aiter_raw():
                read += len(chunk)
                if read >= MAX_RESPONSE_BYTES:
                    break
            status = answer.status_code
        if 200 <= status < 300:
            return Outcome(True, status, None)
        if 300 <= status < 400:
            return Outcome(False, status, f"answered {status}; redirects are not followed")
        return Outcome(False, status, f"answered {status}")

    async def close(self) -> None:
        await self._http.aclose()
