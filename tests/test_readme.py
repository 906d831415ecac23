"""The README's walk-through, pasted as a newcomer would: ``serve``'s export lines, then the
curl block, in bash, against a real ``chinwag serve``."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support import ServerProcess, serve_in_subprocess

README = Path(__file__).resolve().parents[1] / "README.md"


def _curl_walk_through() -> str:
    text = README.read_text()
    section = text[text.index("### Try it with curl") :]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


def _exports(server: ServerProcess) -> list[str]:
    lines = [line.strip() for line in server.output.splitlines()]
    return [line for line in lines if line.startswith("export ")]


def _paste(*parts: str) -> subprocess.CompletedProcess[str]:
    script = "\n".join(["set -e", *parts])
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)


@pytest.mark.slow
async def test_the_curl_walk_through_runs_as_pasted(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'chinwag.db'}"
    async with serve_in_subprocess(url, tmp_path / "serve.log") as server:
        result = _paste(*_exports(server), _curl_walk_through())
    assert result.returncode == 0, result.stderr
    me, after = result.stdout.split("204\n")  # curl prints bodies without a newline
    assert '"user_id":"alice"' in me
    assert '"error"' in after
    assert '"nonce"' in after  # the 401 after log-out carries a fresh nonce


@pytest.mark.slow
async def test_a_wrong_app_id_shows_the_server_s_error_not_a_traceback(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'chinwag.db'}"
    async with serve_in_subprocess(url, tmp_path / "serve.log") as server:
        exports = [*_exports(server), "export APP_ID=00000000-0000-0000-0000-000000000000"]
        result = _paste(*exports, _curl_walk_through())
    assert result.returncode == 1
    assert result.stderr.startswith('error: {"error": {"id": "app_not_found"')
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
