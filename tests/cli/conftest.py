"""CLI fixtures: Typer's CliRunner in-process against a real database (SQLite and PostgreSQL).

The root ``database_url`` fixture makes the database (async); the commands themselves are
sync and run their own event loop, exactly as from a shell.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from typer.testing import CliRunner, Result

from chinwag.cli.main import app
from chinwag.server.context import open_services
from chinwag.server.services import Services
from chinwag.server.settings import Settings

T = TypeVar("T")


@dataclass
class Cli:
    """Runs ``chinwag …`` with ``--database-url`` appended; ``json`` insists on success."""

    database_url: str
    runner: CliRunner = field(default_factory=CliRunner)

    def __call__(self, *args: str, input: str | None = None) -> Result:
        return self.runner.invoke(
            app, [*args, "--database-url", self.database_url], input=input, env={"COLUMNS": "200"}
        )

    def json(self, *args: str, input: str | None = None) -> dict[str, Any]:
        result = self(*args, "--json", input=input)
        assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    def error(self, *args: str, input: str | None = None) -> tuple[Result, dict[str, Any]]:
        """A failing --json command: exit 1, ``{"error": …}`` on stdout, message on stderr."""
        result = self(*args, "--json", input=input)
        assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
        assert isinstance(result.exception, SystemExit)
        error: dict[str, Any] = json.loads(result.stdout)["error"]
        assert error["message"] in " ".join(result.stderr.split())
        return result, error

    def services(self, action: Callable[[Services], Awaitable[T]]) -> T:
        """Look behind the CLI: run ``action`` on the same database."""

        async def run() -> T:
            async with open_services(Settings(database_url=self.database_url)) as services:
                return await action(services)

        return asyncio.run(run())


@pytest.fixture
def cli(database_url: str) -> Cli:
    return Cli(database_url)


@pytest.fixture
def app_id(cli: Cli) -> str:
    return str(cli.json("apps", "create", "test app")["app_id"])
