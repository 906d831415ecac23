"""``chinwag demo``: a server, a staging app and two users chatting, in one command.

The server runs in this process on SQLite (a temporary folder unless ``--database-url``
says otherwise; ``CHINWAG_DATABASE_URL`` does not), exactly as ``chinwag serve`` would run
it; the four clients are the SDK, signing in through the server's development sample
provider. Ctrl-C (or ``--duration``) stops the script, closes the clients, and shuts the
server down gracefully.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

__all__ = ["demo"]

DemoDatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="Where the demo's data goes (default: a temporary folder, deleted when it stops).",
    ),
]
"""Not read from ``CHINWAG_DATABASE_URL`` as every other command's is: the demo creates an
app and users, and one exported for real work would have it write them there for good."""


def demo(
    port: Annotated[
        int, typer.Option(help="Where to listen; 0 picks a free port (also if 8000 is taken).")
    ] = 8000,
    host: Annotated[str, typer.Option(help="The interface to listen on.")] = "127.0.0.1",
    database_url: DemoDatabaseUrl = None,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: until Ctrl-C).")
    ] = None,
) -> None:
    """Start a server and watch two users (two devices each) chat; then join them."""
    console = Console(highlight=False)
    with tempfile.TemporaryDirectory(prefix="chinwag-demo-") as folder:
        url = database_url or f"sqlite+aiosqlite:///{Path(folder) / 'demo.db'}"
        asyncio.run(_run(console, host, _port(host, port), url, Path(folder), duration))
    console.print("demo stopped", style="dim")


def _port(host: str, wanted: int) -> int:
    """``wanted`` if it is free, else one the OS picks (so a running server is no obstacle)."""
    with socket.socket() as probe:
        try:
            probe.bind((host, wanted))
        except OSError:
            probe.bind((host, 0))
        return int(probe.getsockname()[1])


async def _run(
    console: Console, host: str, port: int, database_url: str, folder: Path, duration: float | None
) -> None:
    from chinwag.cli.demo_script import Cast
    from chinwag.server.context import ensure_dev_app
    from chinwag.tui.signin import sample_provider

    stop = asyncio.Event()
    with _stop_on_signals(stop):
        async with _server(host, port, database_url) as (url, services):
            app, _ = await ensure_dev_app(services)
            _print_welcome(console, url, app.id, database_url)
            cast = await Cast.sign_in(
                console,
                url,
                app.id,
                folder / "clients",
                lambda user: sample_provider(url, app.id, user, user.title()),
            )
            script = asyncio.create_task(cast.play())
            try:
                async with asyncio.timeout(duration):
                    await stop.wait()
            except TimeoutError:
                pass
            finally:
                script.cancel()
                await asyncio.gather(script, return_exceptions=True)
                await cast.close()


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


@contextlib.asynccontextmanager
async def _server(host: str, port: int, database_url: str) -> AsyncIterator[tuple[str, Any]]:
    """chinwag on ``host:port`` in this event loop; yields its URL and services."""
    import uvicorn

    from chinwag.server.app import create_app
    from chinwag.server.serving import ChinwagServer
    from chinwag.server.settings import Settings

    class Embedded(ChinwagServer):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # the demo's own handlers stop everything in order

    settings = Settings(database_url=database_url, host=host, port=port)
    app = create_app(settings)
    server = Embedded(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # it failed to start: say why
            raise RuntimeError("the demo server stopped before it started")
        await asyncio.sleep(0.02)
    try:
        yield f"http://{host}:{port}", app.state.services
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=15)


def _print_welcome(console: Console, url: str, app_id: str, database_url: str) -> None:
    console.print(Text.assemble(("chinwag demo", "bold green"), " server at ", (url, "bold")))
    console.print(Text.assemble("database     ", database_url), style="dim")
    console.print(Text.assemble("staging app  ", (app_id, "bold")))
    console.print("Join from another terminal:", style="bold")
    join = f"chinwag chat --app {app_id} --url {url} --user"
    console.print(f"  {join} alice", soft_wrap=True)  # one line, so it copies whole
    console.print(f"  {join} carol    (then: /new alice bob)", soft_wrap=True)
    console.print(Text.assemble(("Join from a browser: ", "bold"), f"{url}/?app={app_id}"))
    console.print("Ctrl-C stops the demo.\n", style="dim")
