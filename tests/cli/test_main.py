"""The command line's edges: database URLs, env vars, usage errors, ``serve`` untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chinwag.cli.main import app

runner = CliRunner()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'chinwag.db'}"


def test_database_url_comes_from_the_environment(sqlite_url: str) -> None:
    env = {"CHINWAG_DATABASE_URL": sqlite_url}
    created = json.loads(runner.invoke(app, ["apps", "create", "x", "--json"], env=env).stdout)
    listed = json.loads(runner.invoke(app, ["apps", "list", "--json"], env=env).stdout)
    assert [a["app_id"] for a in listed["apps"]] == [created["app_id"]]


@pytest.mark.parametrize(
    "url",
    ["mysql://user@host/db", "not a url", "sqlite:///plain.db", "postgresql://postgres@x/db"],
)
def test_unsupported_database_url_is_a_clear_error(url: str) -> None:
    result = runner.invoke(app, ["apps", "list", "--json", "--database-url", url])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    error = json.loads(result.stdout)["error"]
    assert error["id"] == "invalid_request"
    assert error["data"] == {"property": "database_url"}
    assert "sqlite+aiosqlite://" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_unreachable_database_hides_the_password() -> None:
    url = "postgresql+asyncpg://chinwag:hunter2@127.0.0.1:1/chinwag"
    result = runner.invoke(app, ["apps", "list", "--json", "--database-url", url])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    error = json.loads(result.stdout)["error"]
    assert error["id"] == "service_unavailable"
    assert "hunter2" not in result.stdout + result.stderr
    assert "Could not open the database" in result.stderr


def test_sqlite_file_in_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'missing-dir' / 'x.db'}"
    result = runner.invoke(app, ["apps", "list", "--database-url", url])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    assert "missing-dir" in result.stderr
    assert "does not exist" in result.stderr


def test_unopenable_sqlite_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a-directory.db").mkdir()
    url = f"sqlite+aiosqlite:///{tmp_path / 'a-directory.db'}"
    result = runner.invoke(app, ["apps", "list", "--json", "--database-url", url])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert json.loads(result.stdout)["error"]["id"] == "service_unavailable"
    assert "Could not open the database" in result.stderr


def test_missing_argument_is_a_usage_error(sqlite_url: str) -> None:
    result = runner.invoke(app, ["keys", "generate", "--database-url", sqlite_url])
    assert result.exit_code == 2
    assert result.stdout == ""


def test_serve_keeps_its_options() -> None:
    result = runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in ("--host", "--port", "--database-url", "--broker-url", "--dev-app"):
        assert option in result.stdout


def test_serve_with_a_bad_database_url_fails_before_listening() -> None:
    result = runner.invoke(app, ["serve", "--port", "0", "--database-url", "mysql://user@host/db"])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert "Unsupported database URL" in result.stderr
    assert "serving at" not in result.stdout


def test_version() -> None:
    from chinwag import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == __version__
