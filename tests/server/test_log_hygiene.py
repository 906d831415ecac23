"""No credential and no message body reaches the server's output (issue #8, part 5).

A real ``chinwag serve`` in a child process, at DEBUG with uvicorn's access log on, goes
through a whole session over REST and WebSocket; then its stdout and stderr are searched
for every secret the session handled.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import jwt
import pytest
from sqlalchemy import insert
from sqlalchemy.exc import DBAPIError
from websockets.asyncio.client import connect

from chinwag.server.storage.database import Database
from chinwag.server.storage.schema import server_secrets
from tests.support import ServerProcess, serve_in_subprocess


def _dev_app_id(server: ServerProcess) -> str:
    found = re.search(r"staging app\s+([0-9a-f-]{36})", server.output)
    assert found, server.output
    return found.group(1)


def _add_secret(database_url: str, app_id: str) -> dict[str, str]:
    """``chinwag keys add-secret`` as an admin runs it, beside the running server."""
    cli = [sys.executable, "-m", "chinwag.cli.main", "keys", "add-secret", app_id]
    done = subprocess.run(
        [*cli, "--json", "--database-url", database_url], capture_output=True, check=True
    )
    added: dict[str, str] = json.loads(done.stdout)
    return added


async def _session(client: httpx.AsyncClient, app_id: str, token: str) -> str:
    opened = await client.post("/v1/sessions", json={"app_id": app_id, "identity_token": token})
    assert opened.status_code == 201, opened.text
    return str(opened.json()["session_token"])


async def _nonce(client: httpx.AsyncClient, app_id: str) -> str:
    return str((await client.post("/v1/nonces", json={"app_id": app_id})).json()["nonce"])


async def _full_session(server: ServerProcess, database_url: str) -> list[str]:
    """Every credential and body the session used, to be looked for in the output."""
    app_id = _dev_app_id(server)
    body, ws_body = f"body-{secrets.token_hex(8)}", f"ws-body-{secrets.token_hex(8)}"
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        nonce = await _nonce(client, app_id)
        minted = await client.post(
            "/v1/dev/identity_tokens", json={"app_id": app_id, "user_id": "alice", "nonce": nonce}
        )
        identity_token = minted.json()["identity_token"]
        session_token = await _session(client, app_id, identity_token)
        auth = {"Authorization": f"Bearer {session_token}"}
        made = await client.post("/v1/conversations", json={"participants": ["bob"]}, headers=auth)
        conversation = made.json()["id"]
        sent = await client.post(
            f"/v1/conversations/{conversation}/messages",
            json={"id": str(uuid.uuid4()), "parts": [{"mime_type": "text/plain", "body": body}]},
            headers=auth,
        )
        assert sent.status_code == 201, sent.text
        ws_url = server.url.replace("http://", "ws://") + "/v1/websocket"
        async with connect(f"{ws_url}?session_token={session_token}") as ws:
            assert json.loads(await ws.recv())["type"] == "hello"
            request = {
                "type": "request",
                "request_id": "r1",
                "method": "message.send",
                "data": {
                    "conversation_id": conversation,
                    "id": str(uuid.uuid4()),
                    "parts": [{"mime_type": "text/plain", "body": ws_body}],
                },
            }
            await ws.send(json.dumps(request))
            while json.loads(await ws.recv()).get("type") != "response":
                pass
        async with connect(ws_url, additional_headers=auth) as ws:  # a header, not the query
            assert json.loads(await ws.recv())["type"] == "hello"
        key = _add_secret(database_url, app_id)
        second_nonce = await _nonce(client, app_id)
        claims = {"sub": "alice", "nce": second_nonce, "iat": int(__import__("time").time())}
        forged = jwt.encode(claims, secrets.token_urlsafe(32), "HS256", headers={"kid": key["kid"]})
        refused = await client.post(
            "/v1/sessions", json={"app_id": app_id, "identity_token": forged}
        )
        assert refused.status_code == 401
        signed = jwt.encode(claims, key["secret"], "HS256", headers={"kid": key["kid"]})
        second_token = await _session(client, app_id, signed)
        bogus = await client.get("/v1/me", headers={"Authorization": "Bearer cws_bogus.secret1"})
        assert bogus.status_code == 401
        gone = await client.delete("/v1/sessions/current", headers=auth)
        assert gone.status_code == 204
    return [
        nonce, identity_token, session_token, body, ws_body, key["secret"], second_nonce,
        forged, signed, second_token, "cws_bogus.secret1",
    ]  # fmt: skip


@pytest.mark.slow
async def test_no_credential_or_body_reaches_the_server_output(
    database_url: str, tmp_path: Path
) -> None:
    env = {"CHINWAG_LOG_LEVEL": "debug"}
    async with serve_in_subprocess(database_url, tmp_path / "server.log", env=env) as server:
        secrets_used = await _full_session(server, database_url)
    output = server.output
    assert '"POST /v1/sessions HTTP/1.1" 201' in output  # the access log was on
    assert "session_token=[redacted]" in output  # and saw the WebSocket's query
    for value in secrets_used:
        assert value not in output, value
    # Session tokens are cws_<id>.<secret>: the id may be logged, the secret never.
    assert secrets_used[2].split(".", 1)[1] not in output


async def test_database_errors_carry_no_parameters(database_url: str) -> None:
    """A failing statement's error (what ``log.exception`` prints) names no bound value."""
    db = Database(database_url)
    try:
        await db.migrate()
        secret = secrets.token_bytes(16)
        async with db.transaction() as tx:
            await tx.conn.execute(insert(server_secrets).values(name="dup", value=b"x"))
        with pytest.raises(DBAPIError) as caught:
            async with db.transaction() as tx:
                await tx.conn.execute(insert(server_secrets).values(name="dup", value=secret))
    finally:
        await db.close()
    text = str(caught.value)
    assert "parameters hidden" in text.lower()
    assert repr(secret) not in text
    assert secret.hex() not in text


@pytest.mark.slow
async def test_json_logs_are_one_object_per_line_and_still_redacted(
    database_url: str, tmp_path: Path
) -> None:
    env = {"CHINWAG_LOG_LEVEL": "debug", "CHINWAG_LOG_FORMAT": "json"}
    async with serve_in_subprocess(database_url, tmp_path / "server.log", env=env) as server:
        secrets_used = await _full_session(server, database_url)
    lines = [json.loads(line) for line in server.output.splitlines()]  # each one parses
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    sessions = [a for a in access if a["path"] == "/v1/sessions" and a["method"] == "POST"]
    assert {a["status"] for a in sessions} == {201, 401}  # request fields, typed
    assert any("session_token=[redacted]" in line["message"] for line in lines)
    output = server.output
    for value in secrets_used:
        assert value not in output, value
    assert secrets_used[2].split(".", 1)[1] not in output
