"""The SDK installs alone: ``chinwag.client`` needs only the base dependencies, and the
command line says which extra to install instead of a traceback."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from chinwag.cli.launcher import SERVER_EXTRA_MODULES, missing_extra_hint

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _imported_by(statement: str) -> set[str]:
    """Top-level modules a fresh interpreter imports to run ``statement``."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [line.split("|")[-1] for line in result.stderr.splitlines() if "|" in line]
    return {row.strip().split(".")[0] for row in rows}


def _requirement_names(requirements: list[str]) -> set[str]:
    return {r.split("[")[0].split(">")[0].split("=")[0].strip().lower() for r in requirements}


def test_the_client_imports_nothing_from_the_server_extra() -> None:
    """httpx imports click and rich for its own CLI when they happen to be installed (the
    dev venv has them); what chinwag's code adds on top of its base dependencies counts."""
    imported = _imported_by("import chinwag.client, chinwag.core")
    assert "httpx" in imported  # the measurement sees third-party imports at all
    by_base = _imported_by("import httpx, websockets, jwt, orjson, cryptography")
    assert (imported - by_base) & SERVER_EXTRA_MODULES == set()


def test_the_client_works_with_every_server_module_missing() -> None:
    """As in an SDK-only install: each server-extra module made unimportable first."""
    blocked = ", ".join(repr(m) for m in sorted(SERVER_EXTRA_MODULES))
    statement = (
        f"import sys; sys.modules.update(dict.fromkeys([{blocked}])); "
        "from chinwag.client import Client; print(Client.__name__)"
    )
    result = subprocess.run([sys.executable, "-c", statement], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Client"


def test_the_base_dependencies_are_the_sdk_s_alone() -> None:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    base = _requirement_names(project["dependencies"])
    server = _requirement_names(project["optional-dependencies"]["server"])
    assert base == {"pyjwt", "cryptography", "httpx", "websockets", "orjson"}
    assert {"fastapi", "sqlalchemy", "asyncpg", "redis", "typer", "uvicorn"} <= server
    assert base & server == set()


def test_the_server_extra_names_every_module_the_hint_knows() -> None:
    """The launcher's list must not drift from pyproject (a name per distribution)."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    server = _requirement_names(project["optional-dependencies"]["server"])
    by_module = {"pydantic_settings": "pydantic-settings", "starlette": "fastapi", "click": "typer"}
    assert {by_module.get(m, m) for m in SERVER_EXTRA_MODULES} <= server


def test_a_missing_server_extra_is_one_line_and_exit_1() -> None:
    """Runs the entry point with Typer made unimportable, as in an SDK-only install."""
    blocker = (
        "import sys; sys.modules['typer'] = None; "
        "from chinwag.cli.launcher import main; sys.argv = ['chinwag', 'serve']; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", blocker], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "chinwag: the command line needs the server extra (typer is not installed); "
        "install it with: pip install 'chinwag[server]'"
    ]


def test_other_missing_modules_are_not_blamed_on_the_extra() -> None:
    assert missing_extra_hint(ModuleNotFoundError("No module named 'x'", name="x")) is None
    hint = missing_extra_hint(ModuleNotFoundError("no", name="sqlalchemy.ext"))
    assert hint is not None
    assert "sqlalchemy is not installed" in hint
