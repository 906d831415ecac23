"""Run one server handler from a command: settings, services, one event loop, clean errors.

Every failure a user can cause ends as a :class:`ChinwagError`, so the command reports it
and exits 1 instead of showing a traceback: a malformed or unsupported database URL is
``invalid_request``; a database that cannot be reached or opened is ``service_unavailable``
(with the URL's password hidden). Errors after the database opened that are not database
errors are bugs, and keep their traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from chinwag.core.errors import ChinwagError, InvalidRequest, ServiceUnavailable

if TYPE_CHECKING:
    from chinwag.cli.output import Output
    from chinwag.server.services import Services
    from chinwag.server.settings import Settings

__all__ = ["run_action", "run_handler", "settings_from"]

T = TypeVar("T")
_MAX_DETAIL = 300
_DRIVER_SETTLE_SECONDS = 0.05


def run_handler(
    out: Output, database_url: str | None, action: Callable[[Services], Awaitable[T]]
) -> T:
    """``action(services)`` on a fresh event loop; a ChinwagError is reported and exits 1.

    The database used is named on stderr first, so ``--json`` output stays one object and
    a person always sees which file or server the command changed."""
    from chinwag.cli.output import safe
    from chinwag.server.database_location import describe_database

    try:
        settings = _settings(database_url)
        out.errors.print(
            f"[dim]database: {safe(describe_database(settings.database_url))}[/]", soft_wrap=True
        )
        return asyncio.run(_run(settings, action))
    except ChinwagError as error:
        out.fail(error)


def run_action(settings: Settings, action: Callable[[Services], Awaitable[T]]) -> T:
    """``action(services)`` on a fresh event loop; errors are raised, not reported."""
    return asyncio.run(_run(settings, action))


def _settings(database_url: str | None) -> Settings:
    return settings_from({"database_url": database_url} if database_url else {})


def settings_from(overrides: dict[str, object]) -> Settings:
    """Settings from flags over ``CHINWAG_*`` variables; invalid ones are InvalidRequest."""
    import pydantic

    from chinwag.server.settings import Settings

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidRequest(f"Invalid settings: {problems}") from None


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        # Not parseable, so no password to find: show it unless it might hold one.
        return url[:80] if "@" not in url else url.split(":", 1)[0] + ":…"


def _detail(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).strip().splitlines()
    first = text[0] if text else type(cause).__name__
    return f"{type(cause).__name__}: {first}"[:_MAX_DETAIL]


def _check_url(url: str) -> None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        parsed = None
    if parsed is None or parsed.drivername not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        raise InvalidRequest(
            f"Unsupported database URL {_redacted(url)!r}; use sqlite+aiosqlite:///path.db "
            "or postgresql+asyncpg://user@host/db.",
            data={"property": "database_url"},
        )
    path = parsed.database
    if parsed.drivername.startswith("sqlite") and path and path != ":memory:":
        from chinwag.server.database_location import ensure_default_directory

        ensure_default_directory(path)
        # SQLite creates the file but not its directory, and says only "unable to open".
        directory = Path(path).parent
        if not path.startswith("file:") and not directory.is_dir():
            raise InvalidRequest(
                f"The SQLite database's directory {str(directory)[:200]!r} does not exist.",
                data={"property": "database_url"},
            )


async def _run(settings: Settings, action: Callable[[Services], Awaitable[T]]) -> T:
    from sqlalchemy.exc import SQLAlchemyError

    from chinwag.server.context import open_services

    _check_url(settings.database_url)
    opened = False
    try:
        async with open_services(settings) as services:
            opened = True
            return await action(services)
    except ChinwagError:
        raise
    except Exception as exc:
        if opened and not isinstance(exc, SQLAlchemyError):
            raise
        if not opened:
            # aiosqlite (0.22) stops its worker thread without awaiting it when a connect
            # fails; let it finish while this loop is alive, or it raises in the thread.
            await asyncio.sleep(_DRIVER_SETTLE_SECONDS)
        where = _redacted(settings.database_url)
        message = (
            f"Database error on {where}: {_detail(exc)}"
            if opened
            else f"Could not open the database at {where}: {_detail(exc)}"
        )
        data = {"database_url": where, "reason": _detail(exc)}
        raise ServiceUnavailable(message, data=data) from None
