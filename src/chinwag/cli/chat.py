"""``chinwag chat``: the terminal client (needs the ``tui`` extra: ``pip install chinwag[tui]``).

It signs in the way a terminal can (see :mod:`chinwag.tui.signin`): through the server's
development sample provider for a staging app, or ``--token-url`` / ``--token-command`` for
an app whose backend signs the tokens. Each user's data lives in its own folder under
``--store`` so several users can chat from one machine.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["chat", "default_store"]

_SAFE = re.compile(r"[A-Za-z0-9._-]{1,64}")


def default_store(user_id: str) -> Path:
    """``$XDG_DATA_HOME/chinwag/chat/<user>`` (a hash for user ids unfit for a file name)."""
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    name = user_id if _SAFE.fullmatch(user_id) and user_id not in (".", "..") else None
    return base / "chinwag" / "chat" / (name or hashlib.sha256(user_id.encode()).hexdigest()[:24])


def chat(
    app_id: Annotated[str, typer.Option("--app", envvar="CHINWAG_APP_ID", help="The app's id.")],
    user: Annotated[str, typer.Option("--user", help="Who to sign in as.")],
    url: Annotated[
        str, typer.Option("--url", envvar="CHINWAG_URL", help="Where the server listens.")
    ] = "http://127.0.0.1:8000",
    store: Annotated[
        Path | None,
        typer.Option(
            "--store", help="Local data folder (default ~/.local/share/chinwag/chat/USER)."
        ),
    ] = None,
    display_name: Annotated[
        str | None, typer.Option("--display-name", help="Sample provider only.")
    ] = None,
    token_url: Annotated[
        str | None,
        typer.Option(
            "--token-url",
            help='Your backend: POSTed {"app_id","user_id","nonce"}, answers {"identity_token"}.',
        ),
    ] = None,
    token_command: Annotated[
        str | None,
        typer.Option(
            "--token-command",
            help="A program that prints an identity token; {user} and {nonce} are filled in.",
        ),
    ] = None,
    log_file: Annotated[
        Path | None, typer.Option("--log-file", help="Write the SDK's log here (default: none).")
    ] = None,
) -> None:
    """Chat in the terminal as USER (ctrl+n: new conversation, ctrl+o: sign out, ctrl+r: sign
    in again, ctrl+q: quit)."""
    if not url.startswith(("http://", "https://")):  # else it fails only once the UI is up
        raise typer.BadParameter(
            f"expected http://host:port or https://host, not {url[:100]!r}", param_hint="--url"
        )
    try:
        from chinwag.tui.app import ChatApp
    except ImportError as exc:  # textual is an optional extra
        typer.echo(f"chinwag chat needs Textual: pip install 'chinwag[tui]' ({exc})", err=True)
        raise typer.Exit(1) from exc
    from chinwag.client import Client
    from chinwag.tui import signin

    _route_logs(log_file)

    if token_command:
        provider = signin.command_provider(token_command, user)
    elif token_url:
        provider = signin.url_provider(token_url, app_id, user)
    else:
        provider = signin.sample_provider(url, app_id, user, display_name)
    client = Client(
        url, app_id, store_dir=store or default_store(user), identity_token_provider=provider
    )
    app = ChatApp(client, user, url=url)
    goodbye = app.run()
    if goodbye:
        typer.echo(goodbye, err=bool(app.return_code))
    if app.return_code:
        raise typer.Exit(app.return_code)


def _route_logs(log_file: Path | None) -> None:
    """Away from the screen: a warning printed to stderr would tear the full-screen UI."""
    logger = logging.getLogger("chinwag")
    if log_file is None:
        logger.addHandler(logging.NullHandler())
        logger.propagate = False
        return
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
