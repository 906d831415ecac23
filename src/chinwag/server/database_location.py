"""Where the database is when nobody said: one place per user, whatever the working directory.

The default used to be ``./chinwag.db``, so ``chinwag serve`` run from the clone and
``chinwag apps list`` run from ``examples/`` silently used two different, one of them
new and empty, databases. The default now follows the XDG base-directory convention:
``$XDG_DATA_HOME/chinwag/chinwag.db``, or ``~/.local/share/chinwag/chinwag.db`` when
``XDG_DATA_HOME`` is unset (the convention's own fallback, used on every platform so the
path is the same one the README names). The directory is created owner-only on first use.

Every command also prints which database it used (:func:`describe_database`): an absolute
file path for SQLite, the URL with its password hidden otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "default_database_path",
    "default_database_url",
    "describe_database",
    "ensure_default_directory",
]

_SQLITE_PREFIX = "sqlite+aiosqlite:///"


def default_database_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_DATA_HOME/chinwag/chinwag.db``; a relative XDG_DATA_HOME is ignored, as the
    specification asks."""
    env = os.environ if environ is None else environ
    data_home = env.get("XDG_DATA_HOME", "")
    base = Path(data_home) if data_home and Path(data_home).is_absolute() else None
    if base is None:
        home = env.get("HOME") or str(Path.home())
        base = Path(home) / ".local" / "share"
    return base / "chinwag" / "chinwag.db"


def default_database_url(environ: Mapping[str, str] | None = None) -> str:
    return f"{_SQLITE_PREFIX}{default_database_path(environ)}"


def ensure_default_directory(file: str, environ: Mapping[str, str] | None = None) -> None:
    """Create the default database's directory (0700) when ``file`` is the default path.

    Only the default: a directory someone typed that does not exist is a mistake to report,
    not to paper over."""
    path = default_database_path(environ)
    if Path(file) == path:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)


def describe_database(url: str, cwd: Path | None = None) -> str:
    """The database as a person should see it: an absolute SQLite path (resolved against
    ``cwd``), or the URL with its password hidden; never a secret."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return url.split(":", 1)[0] + ":…" if "@" in url else url[:200]
    if parsed.drivername.startswith("sqlite"):
        database = parsed.database or ":memory:"
        if database == ":memory:" or database.startswith("file:"):
            return f"SQLite {database}"
        return str(((cwd or Path.cwd()) / Path(database)).resolve())
    return parsed.render_as_string(hide_password=True)
