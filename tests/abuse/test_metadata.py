"""Attack family 2: PATCH after PATCH, growing a conversation's metadata.

Documented (docs/protocol.md "Conversations", "Rate limits"): metadata is at most 16 KiB as
canonical JSON, and so is any one change (413 ``metadata_too_large``); 10 PATCHes a second
per session (429 ``rate_limited``); ``conversation.updated`` carries the change, not the
whole metadata, so the other participants' streams grow by the change only.
"""

from __future__ import annotations

import time

import httpx

from tests.abuse.conftest import Figures, LegitChat, Target

MAX_METADATA = 16 * 1024
ATTACK_SECONDS = 3.0


async def test_metadata_patches_growing_without_end(
    target: Target, http: httpx.AsyncClient, chat: LegitChat, figures: Figures
) -> None:
    mallory = await target.sign_in(http, "mallory")
    conversation_id = await target.conversation(http, mallory, ["bob"])
    path = f"/v1/conversations/{conversation_id}"
    outcomes: list[str] = []
    async with chat.during():
        start = time.monotonic()
        while time.monotonic() - start < ATTACK_SECONDS:
            change = {"set": {f"k{len(outcomes)}": "x" * 1024}}
            answer = await http.patch(path, json={"metadata": change}, headers=mallory.headers)
            outcomes.append("ok" if answer.is_success else answer.json()["error"]["id"])
        huge = {"set": {"one": "x" * MAX_METADATA}}
        answer = await http.patch(path, json={"metadata": huge}, headers=mallory.headers)
        outcomes.append("ok" if answer.is_success else answer.json()["error"]["id"])
    figures.attacker_sent = len(outcomes)
    for outcome in set(outcomes) - {"ok"}:
        figures.refused(outcome, outcomes.count(outcome))
    assert {"rate_limited", "metadata_too_large"} <= set(outcomes), set(outcomes)
    assert set(outcomes) <= {"ok", "rate_limited", "metadata_too_large"}
    assert outcomes.count("ok") <= MAX_METADATA // 1024
    seen = (await http.get(path, headers=chat.bob.headers)).json()["metadata"]
    assert len(str(seen)) <= MAX_METADATA + 1024
    events = (await http.get("/v1/events?after=0&limit=1000", headers=chat.bob.headers)).json()
    updates = [e for e in events["events"] if e["event"]["type"] == "conversation.updated"]
    assert len(updates) == outcomes.count("ok")
    assert max(len(str(e)) for e in updates) < 2048  # the change, not the whole metadata
    chat.assert_unharmed()
