"""CLI actions go into the audit log as the platform API's do, with caller ``cli``.

A command wraps its handler call in :func:`audited`; the entry is written only once the
action succeeded, from ``local`` (the machine the command ran on). ``target`` and ``data``
may be computed from the result (a created app's id); ``data`` never holds a secret (the
audit handler drops any field named like one anyway).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from chinwag.server.services import Services

__all__ = ["CLI_ADDRESS", "audited"]

T = TypeVar("T")
CLI_ADDRESS = "local"


def audited(
    action: Callable[[Services], Awaitable[T]],
    name: str,
    target: str | Callable[[T], str],
    data: dict[str, Any] | Callable[[T], dict[str, Any]] | None = None,
) -> Callable[[Services], Awaitable[T]]:
    """``action``, then an audit entry ``name`` on ``target``."""

    async def run(services: Services) -> T:
        from chinwag.server.handlers import audit
        from chinwag.server.handlers.api_keys import CLI_CALLER

        result = await action(services)
        where = target(result) if callable(target) else target
        details = data(result) if callable(data) else data
        await audit.append(services, CLI_CALLER, name, where, CLI_ADDRESS, details)
        return result

    return run
