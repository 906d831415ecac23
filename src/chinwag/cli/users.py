"""``chinwag users``: suspend and unsuspend a user of an app (the platform API's rules).

A suspended user's live sessions end at once (their sockets close) and every sign-in is
refused with 403 ``user_suspended``, even with a valid identity token, until unsuspended.
Both are audited with caller ``cli``.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from chinwag.cli.audited import audited
from chinwag.cli.options import DatabaseUrl, JsonFlag
from chinwag.cli.output import Output, safe
from chinwag.cli.runner import run_handler

__all__ = ["users_app"]

users_app = typer.Typer(name="users", help="Suspend and unsuspend users.", no_args_is_help=True)

AppId = Annotated[str, typer.Argument(help="The app's id.")]
UserId = Annotated[str, typer.Argument(help="The app's own id for the user.")]


def _set(
    app_id: str, user_id: str, suspended: bool, database_url: str | None, json_mode: bool
) -> None:
    from chinwag.server.handlers.suspension import set_user_suspended

    out = Output(json_mode)
    user, ended = run_handler(
        out,
        database_url,
        audited(
            lambda services: set_user_suspended(services, app_id, user_id, suspended),
            "user.suspend" if suspended else "user.unsuspend",
            f"apps/{app_id}/users/{user_id}",
            lambda done: {"ended_sessions": len(done[1])},
        ),
    )

    def human(console: Console) -> None:
        word = "suspended" if suspended else "unsuspended"
        ending = f"; ended {len(ended)} session(s)" if suspended else ""
        console.print(f"[green]{word}[/] [bold]{safe(user_id)}[/]{ending}")

    body = {
        "app_id": app_id,
        "user_id": user.user_id,
        "suspended_at": user.suspended_at,
        "ended_session_ids": ended,
    }
    out.emit(body, human)


@users_app.command("suspend")
def suspend(
    app_id: AppId, user_id: UserId, database_url: DatabaseUrl = None, json_mode: JsonFlag = False
) -> None:
    """End the user's sessions and refuse their sign-ins (403 user_suspended)."""
    _set(app_id, user_id, True, database_url, json_mode)


@users_app.command("unsuspend")
def unsuspend(
    app_id: AppId, user_id: UserId, database_url: DatabaseUrl = None, json_mode: JsonFlag = False
) -> None:
    """Let the user sign in again."""
    _set(app_id, user_id, False, database_url, json_mode)
