"""Where a terminal client gets identity tokens.

A real app's backend signs identity tokens; a terminal has no backend, so it borrows one:

* the server's development sample provider (``POST /v1/dev/identity_tokens``), which signs
  for any user of a *staging* app — the default, and what ``chinwag demo`` uses;
* ``--token-url URL``: your backend's endpoint, POSTed ``{"app_id", "user_id", "nonce"}``
  and answering ``{"identity_token"}`` (the sample provider's shape);
* ``--token-command CMD``: a program that prints a token; ``{user}`` and ``{nonce}`` in its
  arguments are replaced (no shell is involved, so nothing in them is interpreted).
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from chinwag.client.connection import error_from
from chinwag.client.errors import UsageError

__all__ = ["Provider", "command_provider", "sample_provider", "url_provider"]

Provider = Callable[[str, bool], Awaitable[str]]

SAMPLE_PATH = "/v1/dev/identity_tokens"


def url_provider(url: str, app_id: str, user_id: str, **extra: Any) -> Provider:
    """POST ``{"app_id", "user_id", "nonce", **extra}`` to ``url``; read ``identity_token``."""

    async def provide(nonce: str, needs_refresh: bool) -> str:
        body = {"app_id": app_id, "user_id": user_id, "nonce": nonce, **extra}
        async with httpx.AsyncClient(timeout=15) as http:
            answer = await http.post(url, json=body)
        if answer.status_code >= 400:
            raise error_from(answer)
        return str(answer.json()["identity_token"])

    return provide


def sample_provider(
    base_url: str, app_id: str, user_id: str, display_name: str | None = None
) -> Provider:
    """The server's sample provider, for staging apps (production apps refuse it: 403)."""
    extra = {"display_name": display_name} if display_name else {}
    return url_provider(base_url.rstrip("/") + SAMPLE_PATH, app_id, user_id, **extra)


def command_provider(command: str, user_id: str) -> Provider:
    """Run ``command`` (split like a shell would, but run without one) for each token."""
    template = shlex.split(command)
    if not template:
        raise UsageError("--token-command is empty")

    async def provide(nonce: str, needs_refresh: bool) -> str:
        argv = [part.replace("{user}", user_id).replace("{nonce}", nonce) for part in template]
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, _ = await process.communicate()
        if process.returncode != 0:
            raise UsageError(f"token command exited with {process.returncode}")
        return out.decode().strip()

    return provide
