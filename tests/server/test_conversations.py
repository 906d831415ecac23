"""Conversations over REST: creation, distinct semantics, metadata, participants, listing."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from tests.support import AppFixture, RunningServer, login, make_app


async def auth(
    client: httpx.AsyncClient, app: AppFixture, user_id: str, now: float
) -> dict[str, str]:
    session = await login(client, app, user_id, now)
    return {"Authorization": f"Bearer {session['session_token']}"}


async def create(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> httpx.Response:
    return await client.post("/v1/conversations", json=body, headers=headers)


@pytest.fixture
async def app(server: RunningServer) -> AppFixture:
    return await make_app(server.services)


async def test_create_adds_the_creator_and_creates_unknown_users(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    alice = await auth(client, app, "alice", server.clock.now())
    made = await create(client, alice, participants=["bob"], metadata={"title": "hi"})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["participants"] == ["alice", "bob"]
    assert body["created_by"] == "alice"
    assert body["metadata"] == {"title": "hi"}
    assert body["distinct"] is False
    assert body["last_message"] is None
    assert (body["unread_count"], body["read_position"], body["left"]) == (0, 0, False)
    bob = await auth(client, app, "bob", server.clock.now())
    seen = await client.get(f"/v1/conversations/{body['id']}", headers=bob)
    assert seen.status_code == 200
    assert seen.json()["participants"] == ["alice", "bob"]
