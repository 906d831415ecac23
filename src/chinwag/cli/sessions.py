"""``chinwag sessions``: end a user's sessions from the server side.

The database is updated at once, so the next REST call with any of those tokens gets 401;
running servers close the user's sockets (4003) within about two seconds, when their sweep
sees the revoked rows, so this works without a shared broker. ``--wipe`` (a stolen device)
also tells the devices to delete the session's local data (close reason ``session_wiped``).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from chinwag.cli.audited import audited
from chinwag.cli.options import DatabaseUrl, JsonFlag
from chinwag.cli.output import Output, safe
from chinwag.cli.runner import run_handler

__all__ = ["sessions_app"]

sessions_app = typer.Typer(
    name="sessions", help="End users' sessions (server-side revocation).", no_args_is_help=True
)


@sessions_app.command("revoke")
def revoke(
    app_id: Annotated[str, typer.Argument(help="The app's id.")],
    user_id: Annotated[str, typer.Argument(help="The app's own id for the user.")],
    wipe: Annotated[
        bool,
        typer.Option(
            "--wipe", help="Also tell the devices to delete their local data (stolen device)."
        ),
    ] = False,
    database_url: DatabaseUrl = None,
    json_mode: JsonFlag = False,
) -> None:
    """Revoke every live session of one user: all their devices must sign in again."""
    from chinwag.server.handlers.sessions import revoke_user_sessions

    out = Output(json_mode)
    ended = run_handler(
        out,
        database_url,
        audited(
            lambda services: revoke_user_sessions(services, app_id, user_id, wipe=wipe),
            "sessions.end",
            f"apps/{app_id}/sessions",
            lambda ended: {"user_id": user_id, "wipe": wipe, "ended": len(ended)},
        ),
    )

    def human(console: Console) -> None:
        wiped = " (devices told to wipe local data)" if wipe else ""
        console.print(
            f"[green]revoked[/] {len(ended)} session(s) of [bold]{safe(user_id)}[/]{wiped}"
        )

    body = {"app_id": app_id, "user_id": user_id, "revoked_session_ids": ended, "wipe": wipe}
    out.emit(body, human)
