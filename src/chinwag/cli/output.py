"""How commands speak: one JSON object for scripts, Rich for people, errors on stderr.

With ``--json`` stdout carries exactly one JSON object — the result, or ``{"error": …}`` —
so ``chinwag … --json | jq`` never meets a stray line. Human output goes through Rich,
and every value that came from a user or the database is escaped first: an app named
``[red]x`` must print as typed, never restyle the terminal.

Exit codes come from exceptions: a :class:`ChinwagError` becomes ``typer.Exit(1)`` after
it is reported; Typer's own usage errors keep their code 2.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from chinwag.core.errors import ChinwagError

if TYPE_CHECKING:
    from chinwag.server.storage.records import AppRecord, KeyRecord

__all__ = [
    "EXIT_ERROR",
    "Output",
    "app_details",
    "app_json",
    "app_table",
    "key_json",
    "keys_table",
    "printable",
    "safe",
    "when",
]

EXIT_ERROR = 1


def printable(text: str) -> str:
    """Control characters (an app name holding ESC[2J would clear the screen) shown as
    visible escapes, for plain output."""
    return "".join(
        c if c.isprintable() else (f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}")
        for c in text
    )


def safe(text: str) -> str:
    """Untrusted text made inert for Rich: :func:`printable`, with markup escaped."""
    return escape(printable(text))


def app_json(app: AppRecord) -> dict[str, Any]:
    from chinwag.server.handlers.app_views import app_json as render

    return render(app)


def key_json(key: KeyRecord) -> dict[str, Any]:
    """A key as listed: never its secret or private key (those have their own commands)."""
    from chinwag.server.handlers.app_views import key_json as render

    return render(key)


def when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%MZ")


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def app_table(apps: list[AppRecord]) -> Table:
    """Apps one per row; the id never wraps (people copy it), the name may."""
    table = Table()
    table.add_column("app id", no_wrap=True, min_width=36)
    table.add_column("name", overflow="fold")
    table.add_column("environment")
    table.add_column("anonymous")
    for app in apps:
        table.add_row(
            safe(app.id), safe(app.name), safe(app.environment), _yes(app.allow_anonymous)
        )
    return table


def app_details(app: AppRecord) -> Table:
    """One app, every setting, as a two-column list."""
    table = Table(show_header=False, box=None)
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("app id", f"[bold]{safe(app.id)}[/]")
    table.add_row("name", safe(app.name))
    table.add_row("environment", safe(app.environment))
    table.add_row("anonymous users", "allowed" if app.allow_anonymous else "refused")
    table.add_row("nonce", "required" if app.require_nonce else "optional")
    table.add_row("conversation policy", safe(app.conversation_policy))
    table.add_row("session lifetime", f"{app.session_lifetime} s")
    table.add_row("max token age", f"{app.max_token_age} s")
    table.add_row("created", when(app.created_at))
    table.add_row("updated", when(app.updated_at))
    return table


def keys_table(keys: list[KeyRecord]) -> Table:
    table = Table()
    table.add_column("kid", no_wrap=True, min_width=28)
    table.add_column("alg")
    table.add_column("enabled")
    table.add_column("development")
    table.add_column("created")
    for key in keys:
        table.add_row(
            safe(key.kid),
            safe(key.alg),
            _yes(key.enabled),
            _yes(key.development),
            when(key.created_at),
        )
    return table


class Output:
    """One command's output channel; consoles are made per command so tests' captured
    streams and ``COLUMNS`` apply."""

    def __init__(self, json_mode: bool) -> None:
        self.json_mode = json_mode
        self.console = Console(highlight=False)
        self.errors = Console(stderr=True, highlight=False)

    def emit(self, data: dict[str, Any], human: Callable[[Console], None]) -> None:
        """The command's result: ``data`` as JSON, or ``human`` drawing it with Rich."""
        if self.json_mode:
            typer.echo(json.dumps(data, indent=2))
        else:
            human(self.console)

    def fail(self, error: ChinwagError) -> NoReturn:
        """Report ``error`` (stderr always; stdout too with --json) and exit 1.

        Error lines are never wrapped, so logs and ``grep`` see each message whole."""
        self.errors.print(f"[bold red]error:[/] {safe(error.message)}", soft_wrap=True)
        details = ", ".join(f"{k}={v!r}" for k, v in error.data.items())
        suffix = f" ({details})" if details else ""
        self.errors.print(f"[dim]{safe(str(error.error_id) + suffix)}[/]", soft_wrap=True)
        if self.json_mode:
            typer.echo(json.dumps(error.to_json(), indent=2))
        raise typer.Exit(EXIT_ERROR)
