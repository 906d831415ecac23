"""``chinwag``: serve, and manage apps and keys. Options mirror Settings (CHINWAG_* env vars)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from chinwag import __version__
from chinwag.cli.api_keys import api_keys_app
from chinwag.cli.apps import apps_app
from chinwag.cli.chat import chat
from chinwag.cli.demo import demo
from chinwag.cli.keys import keys_app
from chinwag.cli.options import DatabaseUrl
from chinwag.cli.sessions import sessions_app
from chinwag.cli.users import users_app

if TYPE_CHECKING:
    from chinwag.server.settings import Settings
    from chinwag.server.storage.records import AppRecord, KeyRecord

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
app.add_typer(api_keys_app)
app.add_typer(users_app)
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
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            envvar="CHINWAG_WORKERS",
            help="Processes serving the one port (more than 1 needs a redis:// broker).",
        ),
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option("--log-format", envvar="CHINWAG_LOG_FORMAT", help="text (default) or json"),
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            envvar="CHINWAG_PUBLIC_URL",
            help="The URL clients reach the server at (behind a proxy), printed as the URL "
            "to use; default: http://HOST:PORT.",
        ),
    ] = None,
) -> None:
    """Run the chinwag server (checks the port and the database first)."""
    from chinwag.cli.serve import bind_socket, check_workers, preflight, print_banner, serve_on
    from chinwag.server.database_location import describe_database

    extra: dict[str, object] = {
        "workers": workers,
        "log_format": log_format,
        "public_url": public_url,
    }
    settings = _serve_settings(host, port, database_url, broker_url, extra)
    metrics_directory = check_workers(settings)  # before the metrics are first imported
    _configure_logging(settings)
    sock = bind_socket(settings.host, settings.port)
    try:
        dev = preflight(settings, dev_app=dev_app)
    except BaseException:
        sock.close()
        raise
    bound_port = sock.getsockname()[1]  # the real one when --port 0
    # Where this process listens, always: behind a proxy the public URL alone did not say
    # which address and port a node had bound (an operator's first question).
    listening = f"http://{_url_host(settings.host)}:{bound_port}"
    url = settings.public_url or listening  # what clients use: the export line, the docs
    database = describe_database(settings.database_url)
    if settings.log_format == "json":  # every line on stdout is a JSON object
        _log_banner(listening, settings.public_url, database, dev)
    else:
        print_banner(url, database, dev)
        public = f"public URL {escape(url)}; " if settings.public_url else ""
        console.print(
            f"[bold green]chinwag {__version__}[/] serving at [bold]{escape(listening)}[/] "
            f"({public}docs: {escape(url)}/docs)",
            soft_wrap=True,
        )
    serve_on(settings, sock, metrics_directory)


def _log_banner(
    listening: str,
    public_url: str | None,
    database: str,
    dev: tuple[AppRecord, KeyRecord | None] | None,
) -> None:
    log = logging.getLogger("chinwag")
    public = f"public URL {public_url}, " if public_url else ""
    log.info("chinwag %s serving at %s (%sdatabase %s)", __version__, listening, public, database)
    if dev is not None:
        log.info("staging app %s (dev key %s)", dev[0].id, dev[1].kid if dev[1] else "none")


def _configure_logging(settings: Settings) -> None:
    if settings.log_format == "json":
        from logging.config import dictConfig

        from chinwag.server.log_format import json_logging_config

        dictConfig(json_logging_config(settings.log_level))
        return
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)  # a line per migration: noise


def _serve_settings(
    host: str,
    port: int,
    database_url: str | None,
    broker_url: str | None,
    extra: dict[str, object] | None = None,
) -> Settings:
    from chinwag.cli.runner import settings_from
    from chinwag.cli.serve import exit_with
    from chinwag.core.errors import ChinwagError

    overrides: dict[str, object] = {"host": host, "port": port}
    overrides.update({k: v for k, v in (extra or {}).items() if v is not None})
    if database_url:
        overrides["database_url"] = database_url
    if broker_url:
        overrides["broker_url"] = broker_url
    try:
        return settings_from(overrides)
    except ChinwagError as error:
        exit_with(error.message)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def main() -> None:
    app()


if __name__ == "__main__":
    main()
