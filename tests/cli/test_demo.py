"""``chinwag demo`` as a user runs it: a subprocess, its output, its exit code."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

DEMO = [sys.executable, "-m", "chinwag.cli.main", "demo", "--port", "0"]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200", "TMPDIR": str(tmp_path)}


def test_demo_shows_both_users_chatting_and_how_to_join(tmp_path: Path) -> None:
    """Also: a ``CHINWAG_DATABASE_URL`` exported for real work is not where the demo's app
    and users go (only ``--database-url`` is)."""
    real = tmp_path.parent / f"{tmp_path.name}-real.db"
    done = subprocess.run(
        [*DEMO, "--duration", "5"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**_env(tmp_path), "CHINWAG_DATABASE_URL": f"sqlite+aiosqlite:///{real}"},
    )
    out = done.stdout
    assert done.returncode == 0, (out, done.stderr)
    assert "alice (phone): Hi Bob!" in out
    assert "bob (laptop): Hi Alice." in out
    assert "✓ on bob's phone" in out
    assert "read by bob" in out
    assert "is typing…" in out
    assert "chinwag chat --app " in out
    assert "--user alice" in out
    app_id = out.split("chinwag chat --app ", 1)[1].split()[0]
    assert f"/?app={app_id}" in out  # the browser link fills in the app
    assert "Join from a browser: http://127.0.0.1:" in out
    assert "demo stopped" in out
    assert list(tmp_path.iterdir()) == []  # the temporary database and stores are gone
    assert not real.exists()


async def test_ctrl_c_stops_the_demo_cleanly(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        *DEMO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_env(tmp_path)
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(20):
            while b"bob (laptop): " not in await process.stdout.readline():
                pass
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(20):
            rest, errors = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, errors.decode()
    assert rest.decode().rstrip().endswith("demo stopped")
    assert b"Traceback" not in errors
