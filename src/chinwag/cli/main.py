"""``chinwag``: serve, and manage apps and keys. Options mirror Settings (CHINWAG_* env vars)."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from chinwag import __version__
from chinwag.cli.apps import apps_app
from chinwag.cli.chat import chat
from chinwag.cli.demo import demo
from chinwag.cli.keys import keys_app
from chinwag.cli.options import DatabaseUrl
from chinwag.cli.output import Output, safe
from chinwag.cli.runner import run_handler
from chinwag.cli.sessions import sessions_app

__all__ = ["app", "main"]

app = typer.Typer(
    name="chinwag",
    help="Self-hostable chat with bring-your-own-identity auth.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(apps_app)
app.add_typer(keys_app)
app.add_typer(sessions_app)
app.command()(chat)
app.command()(demo)
console = Console()


def _print_version(value: bool) -> None:
    # Eager, so `chinwag --version` answers before Typer asks for a command.
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    pass


@app.command()
def serve(
    host: Annotated[str, typer.Option(envvar="CHINWAG_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="CHINWAG_PORT")] = 8000,
    database_url: DatabaseUrl = None,
    broker_url: Annotated[
        str | None,
        typer.Option(
            "--broker-url", envvar="CHINWAG_BROKER_URL", help="memory:// (default) or redis://…"
        ),
    ] = None,
    dev_app: Annotated[
        bool,
        typer.Option(
            "--dev-app/--no-dev-app",
            help="Make sure a staging app exists and print its id and development key.",
        ),
    ] = True,
) -> None:
    """Run the chinwag server."""
    from chinwag.server.app import create_app
    from chinwag.server.settings import Settings

    overrides: dict[str, object] = {"host": host, "port": port}
    if database_url:
        overrides["database_url"] = database_url
    if broker_url:
        overrides["broker_url"] = broker_url
    settings = Settings(**overrides)  # type: ignore[arg-type]
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s %(message)s"
    )
    if dev_app:
        _print_dev_app(database_url)
    url = settings.public_url or f"http://{settings.host}:{settings.port}"
    console.print(
        f"[bold green]chinwag {__version__}[/] serving at [bold]{escape(url)}[/] "
        f"(docs: {escape(url)}/docs)"
    )
    from chinwag.server.serving import ChinwagServer, uvicorn_config

    config = uvicorn_config(create_app(settings), settings, loop="uvloop")
    # Closes WebSockets with 1001 before uvicorn's 1012; freezes the started heap (serving.py).
    ChinwagServer(config, freeze_heap=True).run()


def _print_dev_app(database_url: str | None) -> None:
    """Also the first touch of the database, so a bad URL fails here cleanly (exit 1)."""
    from chinwag.server.context import ensure_dev_app

    app_record, key = run_handler(Output(json_mode=False), database_url, ensure_dev_app)
    console.print(f"staging app  [bold]{safe(app_record.id)}[/] ({safe(app_record.name)})")
    if key is not None:
        console.print(
            f"dev key      [bold]{safe(key.kid)}[/] ({key.alg}; used by "
            "POST /v1/dev/identity_tokens)"
        )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
