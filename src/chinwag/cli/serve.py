"""``chinwag serve``: check everything that can fail, print what to paste, then serve.

A newcomer's first minutes go wrong in two ways this module guards against. A database
that cannot be reached, or a port already taken, used to surface after "serving at …" as a
long traceback; both are now checked first (the port by binding the very socket uvicorn
then serves on, so nothing can take it in between) and reported as one line, exit code 1.
And the values the walk-throughs need (the URL, the staging app's id, which database) are
printed as ``export`` lines that can be pasted into another terminal as they are.
"""

from __future__ import annotations

import shlex
import socket
from typing import TYPE_CHECKING, NoReturn

import typer

from chinwag import __version__
from chinwag.cli.output import printable
from chinwag.core.errors import ChinwagError, ServiceUnavailable

if TYPE_CHECKING:
    from chinwag.server.settings import Settings
    from chinwag.server.storage.records import AppRecord, KeyRecord

__all__ = ["bind_socket", "check_workers", "exit_with", "preflight", "print_banner", "serve_on"]

_BACKLOG = 2048  # uvicorn's default


def exit_with(line: str) -> NoReturn:
    """One line on stderr, exit code 1: what a person needs, no traceback."""
    typer.echo(f"chinwag: {line}", err=True)
    raise typer.Exit(1)


def bind_socket(host: str, port: int) -> socket.socket:
    """The listening socket, bound now so a taken port is reported before anything else."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        exit_with(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        # Listening now, not when uvicorn starts: until then a second server could bind
        # the same address (SO_REUSEADDR allows it while neither listens).
        sock.listen(_BACKLOG)
    except OSError as exc:
        sock.close()
        exit_with(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    return sock


def preflight(settings: Settings, *, dev_app: bool) -> tuple[AppRecord, KeyRecord | None] | None:
    """Open (and migrate) the database once; with ``dev_app``, make sure the staging app
    exists. Any failure is one line and exit 1."""
    from chinwag.cli.runner import run_action
    from chinwag.server.context import ensure_dev_app

    async def touch(_services: object) -> None:
        return None

    try:
        if dev_app:
            return run_action(settings, ensure_dev_app)
        run_action(settings, touch)
        return None
    except ServiceUnavailable as error:
        where = error.data.get("database_url", "")
        exit_with(f"cannot reach the database at {where}: {error.data.get('reason', '')}")
    except ChinwagError as error:
        exit_with(error.message)


def print_banner(url: str, database: str, dev: tuple[AppRecord, KeyRecord | None] | None) -> None:
    """What the walk-throughs need, as plain lines (no markup, never wrapped)."""
    typer.echo(f"chinwag {__version__}")
    typer.echo(f"database     {database}")
    if dev is not None:
        app_record, key = dev
        typer.echo(f"staging app  {app_record.id} ({printable(app_record.name)})")
        if key is not None:
            typer.echo(f"dev key      {key.kid} ({key.alg}; used by POST /v1/dev/identity_tokens)")
    typer.echo("\nIn another terminal, paste:")
    typer.echo(f"  export CHINWAG_URL={shlex.quote(url)}")
    if dev is not None:
        typer.echo(f"  export APP_ID={shlex.quote(dev[0].id)}")
    typer.echo("")


def check_workers(settings: Settings) -> str | None:
    """Refuse ``--workers N`` without a broker the workers can share; with a good one,
    prepare the shared metrics directory (``server/workers.py``) and return it."""
    if settings.workers == 1:
        return None
    if settings.broker_url.startswith("memory://"):
        exit_with(
            f"--workers {settings.workers} needs a Redis broker (--broker-url redis://…): "
            "with memory:// each worker would see only its own clients' messages"
        )
    from chinwag.server.workers import prepare_multiprocess_metrics

    return prepare_multiprocess_metrics()


def serve_on(settings: Settings, sock: socket.socket, metrics_directory: str | None = None) -> None:
    """Run the app on the already-bound ``sock`` until interrupted; with
    ``settings.workers`` > 1, in that many forked workers (``server/workers.py``)."""
    if settings.workers == 1:
        _serve_one(settings, sock)
        return
    import chinwag.server.app
    import chinwag.server.serving  # noqa: F401 - imported once, before forking: shared
    from chinwag.server.workers import exit_as, run_workers

    code = run_workers(
        settings.workers, lambda _index: _serve_one(settings, sock), cleanup=metrics_directory
    )
    sock.close()
    exit_as(code)  # stopped by SIGTERM: die of it, as one process does (uvicorn re-raises)
    if code:
        raise typer.Exit(code)


def _serve_one(settings: Settings, sock: socket.socket) -> None:
    from chinwag.server.app import create_app
    from chinwag.server.serving import ChinwagServer, uvicorn_config

    config = uvicorn_config(create_app(settings), settings, loop="uvloop", backlog=_BACKLOG)
    # Closes WebSockets with 1001 before uvicorn's 1012; freezes the started heap (serving.py).
    ChinwagServer(config, freeze_heap=True).run(sockets=[sock])
