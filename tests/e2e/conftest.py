"""One real ``chinwag serve`` process for the package, an app with a key the tests signed up
for through the CLI, and devices that each run in a process of their own."""

from __future__ import annotations

import json
import sqlite3
import stat
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import Cli, DeviceProcess, ServerProcess


class Token(str):
    """A session token that does not show itself in a failed assertion's report."""

    def __repr__(self) -> str:
        return "<session token>"


@dataclass
class World:
    """The server and the app every device of these tests belongs to."""

    server: ServerProcess
    cli: Cli
    app_id: str
    kid: str
    key_file: Path
    root: Path

    def revoke(self, user_id: str, *flags: str) -> list[str]:
        """``chinwag sessions revoke``, as an operator would; the ended session ids."""
        answer = self.cli.json("sessions", "revoke", self.app_id, user_id, *flags)
        return list(answer["revoked_session_ids"])

    def app_dir(self, store_dir: Path) -> Path:
        return store_dir / self.app_id

    def user_files(self, store_dir: Path) -> list[Path]:
        """The users' local stores on a device (``user-<hash>.sqlite3``)."""
        return sorted(self.app_dir(store_dir).glob("user-*.sqlite3"))

    def session_file(self, store_dir: Path) -> Path:
        return self.app_dir(store_dir) / "session.sqlite3"

    def saved_token(self, store_dir: Path) -> Token:
        """The session token a device kept on disk (what a thief of the laptop would find)."""
        with sqlite3.connect(self.session_file(store_dir)) as conn:
            (body,) = conn.execute("SELECT body FROM session WHERE k = 1").fetchone()
        return Token(json.loads(body)["session_token"])

    def me(self, token: str) -> int:
        """``GET /v1/me`` with ``token``: 200 while the session is live, 401 once it ended."""
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.get(f"{self.server.url}/v1/me", headers=headers, timeout=10).status_code

    def server_texts(self, token: str, conversation: str) -> list[str]:
        """The conversation's messages as the server stores them, in order."""
        answer = httpx.get(
            f"{self.server.url}/v1/conversations/{conversation}/messages",
            params={"limit": 500},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        answer.raise_for_status()
        messages = answer.json()["messages"]
        return ["".join(p["body"] for p in m["parts"]) for m in messages]


Devices = Callable[..., DeviceProcess]
Users = Callable[[str], str]


def signed_in_pair(
    device: Devices, alice: str, bob: str
) -> tuple[DeviceProcess, DeviceProcess, str]:
    """Alice and Bob on a device each, with one message of Alice's delivered to Bob."""
    a, b = device(alice), device(bob)
    first, second = a.send("sign_in"), b.send("sign_in")  # both processes start at once
    assert [a.reply(first)["result"], b.reply(second)["result"]] == [alice, bob]
    a.wait_for("synced")
    b.wait_for("synced")  # so "before" arrives live, as a ``received`` event
    conversation = a.call("create_conversation", participants=[alice, bob])
    a.call("send", conversation=conversation, text="before")
    a.call("flush")
    b.wait_for("received", text="before")
    return a, b, str(conversation)


def signed_in_alone(device: Devices, alice: str, bob: str) -> tuple[DeviceProcess, str]:
    """Alice on her device with a conversation holding one message of hers (Bob, who has
    no device here, need not have signed in: the server knows users by their app's ids)."""
    a = device(alice)
    assert a.sign_in() == alice
    conversation = a.call("create_conversation", participants=[alice, bob])
    a.call("send", conversation=conversation, text="before")
    a.call("flush")
    return a, str(conversation)


def texts(d: DeviceProcess, conversation: str) -> list[str]:
    return [m["text"] for m in d.call("messages", conversation=conversation)]


def assert_signed_out(world: World, d: DeviceProcess, conversation: str) -> None:
    """Nothing of the user is left, and nothing more can be queued or read."""
    assert world.user_files(d.store_dir) == []
    assert not world.session_file(d.store_dir).exists()
    assert d.fails("send", conversation=conversation, text="after") == "NotAuthenticated"
    assert d.fails("conversations") == "NotAuthenticated"
    assert d.call("state")["logged_in"] is False
    assert d.call("tasks") == []  # no background task survives the sign-out
    assert world.user_files(d.store_dir) == []  # the refused send created nothing


def assert_private(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode == 0o600, f"{path.name} has mode {mode:o}"


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("e2e")
    db_path = root / "chinwag.db"
    url = f"sqlite+aiosqlite:///{db_path}"
    cli = Cli(url)
    app_id = str(cli.json("apps", "create", "e2e")["app_id"])  # also creates the schema
    server = ServerProcess(url, db_path, root / "server.log")
    server.launch()  # starts while the key is made: both take seconds
    try:
        key = cli.json("keys", "generate", app_id, "--alg", "ES256")
        key_file = root / "app-backend-key.pem"
        key_file.write_text(key["private_key_pem"])
        server.wait_healthy()
        yield World(server, cli, app_id, str(key["kid"]), key_file, root)
    finally:
        server.stop()


@pytest.fixture
def user() -> Callable[[str], str]:
    """A user id of its own for each test (the server and its database are shared)."""
    suffix = uuid.uuid4().hex[:8]
    return lambda name: f"{name}-{suffix}"


@pytest.fixture
def device(world: World, tmp_path: Path) -> Iterator[Callable[..., DeviceProcess]]:
    """``device(user_id, store_dir=None)``: a started device; all are killed afterwards."""
    started: list[DeviceProcess] = []

    def start(user_id: str, store_dir: Path | None = None) -> DeviceProcess:
        store = store_dir or tmp_path / f"device-{len(started)}"
        args = [world.server.url, world.app_id, str(store), user_id]
        stderr = tmp_path / f"device-{len(started)}.err"
        process = DeviceProcess([*args, str(world.key_file), world.kid], store, stderr)
        started.append(process)
        process.start()
        return process

    yield start
    for process in started:
        process.kill()
