"""Attack family 5: a removed participant trying to keep seeing the conversation.

Documented (docs/protocol.md "Users", "Conversations", "WebSocket"): a former participant
sees the conversation as it was when they left (metadata and participants then), never the
members added later or their profiles; profiles are visible only while sharing a live
conversation (404 otherwise, the same as for an unknown id); no typing signal reaches them
from the moment of removal; every write is 403 ``access_denied``.
"""

from __future__ import annotations

import time
import uuid

import httpx
import orjson

from tests.abuse.attacker import Socket
from tests.abuse.conftest import Figures, LegitChat, Target

ATTACK_SECONDS = 3.0


async def test_a_removed_participant_keeps_asking(
    target: Target, http: httpx.AsyncClient, chat: LegitChat, figures: Figures
) -> None:
    carol = await target.sign_in(http, "carol")
    mallory = await target.sign_in(http, "mallory")
    made = await http.post(
        "/v1/conversations",
        json={"participants": ["mallory"], "metadata": {"title": "before"}},
        headers=carol.headers,
    )
    path = f"/v1/conversations/{made.json()['id']}"
    listening = await Socket.open(target, mallory)
    removed = await http.delete(f"{path}/participants/mallory", headers=carol.headers)
    assert removed.status_code == 204
    assert (await http.get("/v1/users/carol", headers=mallory.headers)).status_code == 404
    await http.patch(path, json={"metadata": {"set": {"title": "after"}}}, headers=carol.headers)
    await http.post(f"{path}/participants", json={"user_ids": ["dave"]}, headers=carol.headers)
    await target.sign_in(http, "dave")  # dave has a profile now
    carols_phone = await Socket.open(target, carol)
    answers: list[tuple[str, int, str]] = []
    probes = [path, "/v1/users/carol", "/v1/users/dave", "/v1/conversations", f"{path}/messages"]
    async with chat.during():
        start = time.monotonic()
        while time.monotonic() - start < ATTACK_SECONDS:
            for probe in probes:
                got = await http.get(probe, headers=mallory.headers)
                answers.append((probe, got.status_code, got.text))
            sent = await http.post(
                f"{path}/messages",
                json={
                    "id": str(uuid.uuid4()),
                    "parts": [{"mime_type": "text/plain", "body": "hi"}],
                },
                headers=mallory.headers,
            )
            answers.append(("send", sent.status_code, sent.json()["error"]["id"]))
            state = "started" if len(answers) % 2 else "finished"
            data = {"conversation_id": path.rsplit("/", 1)[1], "state": state}
            await carols_phone.send("typing.update", data)
    await carols_phone.close()
    await listening.close()
    figures.attacker_sent = len(answers)
    refused = [a for a in answers if a[1] >= 400]
    figures.refused("403/404", len(refused))
    for probe, status, text in answers:
        if status == 429:  # reads count against the session's request limit too
            error_id = text if probe == "send" else orjson.loads(text)["error"]["id"]
            assert error_id == "rate_limited", (probe, text)
            continue
        assert "dave" not in text, (probe, text)
        assert "after" not in text, (probe, text)
        if probe.startswith("/v1/users/"):
            assert status == 404, (probe, status)
        if probe == "send":
            assert (status, text) == (403, "access_denied")
    views = [
        orjson.loads(text) for probe, status, text in answers if probe == path and status == 200
    ]
    assert views
    assert {v["metadata"]["title"] for v in views} == {"before"}
    assert {tuple(v["participants"]) for v in views} == {("carol",)}
    assert not [f for f in listening.others if f["type"] == "signal"]
    chat.assert_unharmed()
