"""``chinwag api-keys``: keys for the platform API (an app's own servers driving chinwag).

``create`` prints the key once (only its SHA-256 is stored); ``list`` shows each key's
role, app and last use (to the minute); ``revoke`` kills a key at once. Every create and
revoke is in the audit log, as caller ``cli``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from chinwag.cli.audited import audited
from chinwag.cli.options import DatabaseUrl, JsonFlag
from chinwag.cli.output import Output, safe
from chinwag.cli.runner import run_handler

if TYPE_CHECKING:
    from chinwag.server.storage.api_keys import ApiKeyRecord

__all__ = ["api_keys_app"]

api_keys_app = typer.Typer(
    name="api-keys", help="Manage platform API keys (roles admin and app).", no_args_is_help=True
)


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "never"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%MZ")


def api_key_json(key: ApiKeyRecord) -> dict[str, Any]:
    """A key as listed: never its secret (chinwag does not have it) nor its hash."""
    return {
        "key_id": key.id,
        "role": key.role,
        "app_id": key.app_id,
        "label": key.label,
        "created_at": key.created_at,
        "last_used_at": key.last_used_at,
        "revoked_at": key.revoked_at,
    }


def _target(key: ApiKeyRecord) -> str:
    """``apps/<app id>/api_keys/<id>`` for an app key, so reading the log per app shows
    the key's revocation beside its creation."""
    return (f"apps/{key.app_id}/" if key.app_id else "") + f"api_keys/{key.id}"


@api_keys_app.command("create")
def create(
    role: Annotated[str, typer.Option("--role", help="admin (every app) or app (one app).")],
    app_id: Annotated[
        str | None, typer.Option("--app", metavar="APP_ID", help="The app an app key reaches.")
    ] = None,
    label: Annotated[str | None, typer.Option("--label", help="What it is for.")] = None,
    database_url: DatabaseUrl = None,
    json_mode: JsonFlag = False,
) -> None:
    """Create a key; it is printed once and chinwag keeps only its hash."""
    from chinwag.server.handlers.api_keys import create_api_key

    out = Output(json_mode)
    record, token = run_handler(
        out,
        database_url,
        audited(
            lambda services: create_api_key(services, role, app_id=app_id, label=label),
            "api_key.create",
            lambda made: _target(made[0]),
            {"role": role, "app_id": app_id, "label": label},
        ),
    )

    def human(console: Console) -> None:
        console.print(f"[green]created API key[/] [bold]{safe(record.id)}[/] ({record.role})")
        console.print(
            "[bold yellow]This key is shown once and is not stored by chinwag. "
            "Keep it on your backend only; if it is lost, create a new one.[/]"
        )
        typer.echo(token)

    out.emit(api_key_json(record) | {"api_key": token}, human)


@api_keys_app.command("list")
def list_(database_url: DatabaseUrl = None, json_mode: JsonFlag = False) -> None:
    """List the keys with their role, app and last use (never a secret)."""
    from chinwag.server.handlers.api_keys import list_api_keys

    out = Output(json_mode)
    keys = run_handler(out, database_url, list_api_keys)

    def human(console: Console) -> None:
        table = Table("key id", "role", "app", "label", "created", "last used", "revoked")
        for k in keys:
            table.add_row(
                k.id,
                k.role,
                safe(k.app_id or "-"),
                safe(k.label or ""),
                _when(k.created_at),
                _when(k.last_used_at),
                _when(k.revoked_at) if k.revoked_at else "",
            )
        console.print(table if keys else "No API keys; create one with chinwag api-keys create.")

    out.emit({"api_keys": [api_key_json(k) for k in keys]}, human)


@api_keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (the 8 characters after cwk_).")],
    database_url: DatabaseUrl = None,
    json_mode: JsonFlag = False,
) -> None:
    """Revoke a key: its next request is refused (401)."""
    from chinwag.server.handlers.api_keys import revoke_api_key

    out = Output(json_mode)
    record = run_handler(
        out,
        database_url,
        audited(
            lambda services: revoke_api_key(services, key_id),
            "api_key.revoke",
            _target,
        ),
    )
    out.emit(
        api_key_json(record),
        lambda console: console.print(f"[green]revoked API key[/] [bold]{safe(record.id)}[/]"),
    )
