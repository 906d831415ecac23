"""docs/sdk.md's sign-in examples run as written and print what the doc says they print.

A runnable example is a ```python block whose first line names its file (``# challenge.py``);
the ```text block starting ``$ python challenge.py`` holds its expected output. Each example
runs as a subprocess (this interpreter) in a fresh directory next to the doc's
``backend.py``, against a real server on loopback, with only the environment variables the
doc names: ``CHINWAG_URL``, ``APP_ID`` and, for ``log_in.py``, ``APP_KID``/``APP_SECRET``
(what ``chinwag keys add-secret APP_ID --json`` prints).
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chinwag.server.handlers import apps as app_handlers
from chinwag.server.settings import Settings
from tests.support import RunningServer, run_server

DOC = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)
FILE_MARKER = re.compile(r"# (\w+\.py)")
RUN_LINE = re.compile(r"\$ python (\w+\.py)")
TIMEOUT = 60.0


@dataclass(frozen=True)
class DocExamples:
    files: dict[str, str]
    """File name → source, for every python block whose first line names its file."""
    outputs: dict[str, str]
    """Example file name → the output the doc shows for ``python NAME``."""


def doc_examples() -> DocExamples:
    files: dict[str, str] = {}
    outputs: dict[str, str] = {}
    for lang, body in FENCE.findall(DOC.read_text(encoding="utf-8")):
        first, _, rest = body.partition("\n")
        if lang == "python" and (named := FILE_MARKER.fullmatch(first.strip())):
            assert named.group(1) not in files, f"{named.group(1)} appears twice in sdk.md"
            files[named.group(1)] = body
        elif lang == "text" and (run := RUN_LINE.fullmatch(first.strip())):
            outputs[run.group(1)] = rest
    return DocExamples(files, outputs)


def test_the_doc_marks_its_runnable_examples() -> None:
    examples = doc_examples()
    assert set(examples.files) == {"backend.py", "challenge.py", "provider.py", "log_in.py"}
    assert set(examples.outputs) == {"challenge.py", "provider.py", "log_in.py"}
    for name, source in examples.files.items():
        compile(source, name, "exec")  # a syntax error is reported by name


@pytest.fixture
async def doc_server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """A server as `chinwag serve` runs it, on a fresh SQLite file."""
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'chinwag.db'}", auth_rate_per_second=0
    )
    async with run_server(settings) as running:
        yield running


async def example_env(server: RunningServer, example: str) -> dict[str, str]:
    """What the doc tells the reader to export before running ``example``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHINWAG_", "APP_"))}
    env["CHINWAG_URL"] = server.url
    if example == "log_in.py":
        # chinwag apps create support --no-nonce --allow-anonymous; chinwag keys add-secret
        app, _ = await app_handlers.create_app(
            server.services, "support", require_nonce=False, allow_anonymous=True
        )
        key = await app_handlers.add_secret(server.services, app.id)
        assert key.secret is not None
        env.update(APP_ID=app.id, APP_KID=key.record.kid, APP_SECRET=key.secret)
    else:
        # chinwag serve --dev-app (or chinwag apps create demo): a staging app
        app, _ = await app_handlers.create_app(server.services, "demo")
        env["APP_ID"] = app.id
    return env


async def run_example(directory: Path, example: str, env: dict[str, str]) -> str:
    """``python example`` in ``directory``; its stdout, after checking it exited 0."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        example,
        cwd=directory,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"{example} did not finish within {TIMEOUT:.0f} s")
    out, err = stdout.decode(), stderr.decode()
    assert process.returncode == 0, f"{example} exited {process.returncode}:\n{out}\n{err}"
    return out


@pytest.mark.parametrize("example", ["challenge.py", "provider.py", "log_in.py"])
async def test_example_runs_as_documented(
    doc_server: RunningServer, tmp_path: Path, example: str
) -> None:
    examples = doc_examples()
    directory = tmp_path / "example"
    directory.mkdir()
    for name in ("backend.py", example):
        (directory / name).write_text(examples.files[name], encoding="utf-8")
    env = await example_env(doc_server, example)
    out = await run_example(directory, example, env)
    assert out.splitlines() == examples.outputs[example].splitlines()


async def test_challenge_lists_what_provider_sent(
    doc_server: RunningServer, tmp_path: Path
) -> None:
    """The doc's note: after provider.py, challenge.py resumes alice and lists the chat."""
    examples = doc_examples()
    for name in ("backend.py", "challenge.py", "provider.py"):
        (tmp_path / name).write_text(examples.files[name], encoding="utf-8")
    env = await example_env(doc_server, "challenge.py")
    await run_example(tmp_path, "provider.py", env)
    lines = (await run_example(tmp_path, "challenge.py", env)).splitlines()
    assert lines[:1] == examples.outputs["challenge.py"].splitlines()  # signed in as alice
    assert len(lines) == 2, lines
    assert re.fullmatch(r"[0-9a-f-]{36} 0", lines[1]), lines  # the conversation, nothing unread


async def test_provider_prints_the_message_it_just_sent_after_history(
    doc_server: RunningServer, tmp_path: Path
) -> None:
    """A second run finds the first run's message in the conversation: it still prints its
    own (the doc once printed ``messages(..., limit=1)``, the oldest)."""
    examples = doc_examples()
    source = examples.files["provider.py"]
    (tmp_path / "backend.py").write_text(examples.files["backend.py"], encoding="utf-8")
    env = await example_env(doc_server, "provider.py")
    for text in ("first run", "second run"):
        changed = source.replace('"sent exactly once, even offline"', repr(text))
        assert changed != source
        (tmp_path / "provider.py").write_text(changed, encoding="utf-8")
        out = await run_example(tmp_path, "provider.py", env)
    assert out.splitlines() == ["pending second run", "sent second run"]
