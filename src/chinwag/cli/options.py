"""Options every command shares, declared once so they read the same everywhere.

``--database-url`` mirrors ``Settings.database_url`` and its ``CHINWAG_DATABASE_URL``
variable, so a shell that runs ``chinwag serve`` manages the same database with no flags.
"""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["DatabaseUrl", "JsonFlag"]

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="CHINWAG_DATABASE_URL",
        help=(
            "sqlite+aiosqlite:///path.db or postgresql+asyncpg://… "
            "(default: $XDG_DATA_HOME/chinwag/chinwag.db, "
            "~/.local/share/chinwag/chinwag.db without it)"
        ),
    ),
]

JsonFlag = Annotated[
    bool,
    typer.Option(
        "--json",
        help='Print exactly one JSON object on stdout (errors as {"error": …}).',
    ),
]
