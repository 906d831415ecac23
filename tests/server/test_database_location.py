"""The default database is one file per user (XDG), and is always shown as a full path."""

from __future__ import annotations

from pathlib import Path

from chinwag.server.database_location import (
    default_database_path,
    default_database_url,
    describe_database,
    ensure_default_directory,
)


def test_default_follows_xdg_data_home() -> None:
    env = {"XDG_DATA_HOME": "/data", "HOME": "/home/ann"}
    assert default_database_path(env) == Path("/data/chinwag/chinwag.db")
    assert default_database_url(env) == "sqlite+aiosqlite:////data/chinwag/chinwag.db"


def test_default_without_xdg_data_home_is_under_home() -> None:
    assert default_database_path({"HOME": "/home/ann"}) == Path(
        "/home/ann/.local/share/chinwag/chinwag.db"
    )


def test_a_relative_xdg_data_home_is_ignored_as_the_spec_says() -> None:
    env = {"XDG_DATA_HOME": "data", "HOME": "/home/ann"}
    assert default_database_path(env).is_absolute()


def test_only_the_default_directory_is_created(tmp_path: Path) -> None:
    env = {"XDG_DATA_HOME": str(tmp_path)}
    ensure_default_directory(str(tmp_path / "elsewhere" / "x.db"), env)
    assert not (tmp_path / "elsewhere").exists()
    ensure_default_directory(str(default_database_path(env)), env)
    assert (tmp_path / "chinwag").stat().st_mode & 0o777 == 0o700


def test_a_relative_sqlite_url_is_shown_as_an_absolute_path(tmp_path: Path) -> None:
    described = describe_database("sqlite+aiosqlite:///./chinwag.db", cwd=tmp_path)
    assert described == str(tmp_path.resolve() / "chinwag.db")


def test_a_postgres_url_is_shown_without_its_password() -> None:
    described = describe_database("postgresql+asyncpg://ann:hunter2@db.example/chat")
    assert described == "postgresql+asyncpg://ann:***@db.example/chat"
