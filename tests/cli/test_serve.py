"""``chinwag serve`` as a newcomer meets it: one-line failures before "serving at", and
``export`` lines that work when pasted into a shell."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import serve_in_subprocess


def _chinwag(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The installed entry point's code path, in a child process, as from a shell."""
    return subprocess.run(
        [sys.executable, "-m", "chinwag.cli.launcher", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port some other program is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_busy_port_is_one_line_before_anything_else(held_port: int, tmp_path: Path) -> None:
    db = tmp_path / "chinwag.db"
    result = _chinwag(
        "serve", "--port", str(held_port), "--database-url", f"sqlite+aiosqlite:///{db}"
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"chinwag: cannot listen on 127.0.0.1:{held_port}: Address already in use"
    ]
    assert "serving at" not in result.stdout
    assert not db.exists()  # the port is checked before the database is touched


def test_an_unreachable_database_is_one_line_without_its_password(closed_port: int) -> None:
    url = f"postgresql+asyncpg://chinwag:hunter2@127.0.0.1:{closed_port}/chinwag"
    result = _chinwag("serve", "--port", "0", "--database-url", url)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        f"chinwag: cannot reach the database at postgresql+asyncpg://chinwag:***@127.0.0.1:"
        f"{closed_port}/chinwag: ConnectionRefusedError"
    )
    assert "hunter2" not in result.stdout + result.stderr
    assert "serving at" not in result.stdout


def test_an_unreachable_database_without_the_dev_app_is_one_line_too(closed_port: int) -> None:
    url = f"postgresql+asyncpg://chinwag@127.0.0.1:{closed_port}/chinwag"
    result = _chinwag("serve", "--no-dev-app", "--port", "0", "--database-url", url)
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("chinwag: cannot reach the database at ")


@pytest.mark.slow
async def test_the_printed_export_lines_work_when_pasted(tmp_path: Path) -> None:
    """Behind a proxy: the export line gives the public URL (what clients use), the
    "serving at" line the address the node listens on."""
    db = tmp_path / "chinwag.db"
    public = "https://chat.example.test"
    env = {"CHINWAG_PUBLIC_URL": public}
    database_url = f"sqlite+aiosqlite:///{db}"
    async with serve_in_subprocess(database_url, tmp_path / "serve.log", env=env) as server:
        output = server.output
        exports = [
            line.strip() for line in output.splitlines() if line.strip().startswith("export ")
        ]
        shell = "; ".join([*exports, 'echo "$CHINWAG_URL $APP_ID"'])
        pasted = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, check=True)
        url, app_id = pasted.stdout.split()
        assert url == public
        async with httpx.AsyncClient(base_url=server.url) as http:
            answer = await http.post("/v1/nonces", json={"app_id": app_id})
        assert answer.status_code == 201, answer.text
    assert re.search(rf"^database +{re.escape(str(db))}$", output, re.MULTILINE)
    assert output.index("export APP_ID=") < output.index("serving at")
    assert f"serving at {server.url} (public URL {public}; docs: {public}/docs)" in output


def test_the_default_database_does_not_depend_on_the_working_directory(
    tmp_path: Path, data_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    monkeypatch.delenv("CHINWAG_DATABASE_URL", raising=False)
    created = _chinwag("apps", "create", "from here", "--json", cwd=here)
    listed = _chinwag("apps", "list", "--json", cwd=there)
    assert created.returncode == listed.returncode == 0, created.stderr + listed.stderr
    assert '"from here"' in listed.stdout  # stdout is the JSON alone
    expected = data_home / "chinwag" / "chinwag.db"
    assert created.stderr.strip() == listed.stderr.strip() == f"database: {expected}"
    assert expected.parent.stat().st_mode & 0o077 == 0
    assert list(here.iterdir()) == list(there.iterdir()) == []
