"""The ``chinwag`` entry point: the command line, or one line saying which extra is missing.

``pip install chinwag`` is the client SDK alone; the command line and the server come with
``chinwag[server]``. Without it, importing Typer (or, inside a command, uvicorn or
SQLAlchemy) fails with a ``ModuleNotFoundError`` whose traceback tells a newcomer nothing
about extras. This module imports nothing outside the standard library until it has a
handler in place, so the missing package becomes one line and exit code 1.
"""

from __future__ import annotations

import sys

__all__ = ["SERVER_EXTRA_MODULES", "main", "missing_extra_hint"]

SERVER_EXTRA_MODULES = frozenset(
    {
        "fastapi",
        "starlette",
        "uvicorn",
        "sqlalchemy",
        "alembic",
        "asyncpg",
        "redis",
        "typer",
        "click",
        "rich",
        "pydantic",
        "pydantic_settings",
    }
)
"""Top-level modules that only ``chinwag[server]`` installs."""


def missing_extra_hint(error: ModuleNotFoundError) -> str | None:
    """The line to print for ``error``, or None when it is not a missing server extra."""
    top = (error.name or "").split(".")[0]
    if top not in SERVER_EXTRA_MODULES:
        return None
    return (
        f"chinwag: the command line needs the server extra ({top} is not installed); "
        "install it with: pip install 'chinwag[server]'"
    )


def main() -> None:
    try:
        from chinwag.cli.main import main as run

        run()
    except ModuleNotFoundError as error:
        hint = missing_extra_hint(error)
        if hint is None:
            raise
        print(hint, file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
