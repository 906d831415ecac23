"""Attack family 8: an anonymous user naming arbitrary users and probing profiles, and an
id probe across apps.

Documented (docs/protocol.md "Conversations", "Users", the opening paragraph): under
``anonymous_to_agents`` an anonymous user may only name the app's agents, and the refusal
(403 ``participants_not_allowed``) is the same whether the named user exists or not; a
profile is 404 unless shared, the same 404 as for an id never seen; conversation and
message ids are unique per app, so whether an id is taken (409) says nothing about
another app.
"""

from __future__ import annotations

import time
import uuid

import httpx

from chinwag.core.keys import Alg
from chinwag.server.context import open_services
from chinwag.server.handlers import apps as app_handlers
from chinwag.server.settings import Settings
from tests.abuse.conftest import Figures, LegitChat, Target
from tests.support import AppFixture

ATTACK_SECONDS = 3.0


async def _support_app(target: Target) -> AppFixture:
    """A second app on the same server: anonymous visitors may talk to agents only."""
    async with open_services(Settings(database_url=target.database_url)) as services:
        app, _ = await app_handlers.create_app(
            services, "support", allow_anonymous=True, conversation_policy="anonymous_to_agents"
        )
        key = await app_handlers.generate_key(services, app.id, Alg.ES256.value)
        await app_handlers.set_agents(services, app.id, add=["helpdesk"], remove=[])
    return AppFixture(app.id, key.record.kid, Alg.ES256, private_key_pem=key.private_key_pem)


def _message(message_id: str) -> dict[str, object]:
    return {"id": message_id, "parts": [{"mime_type": "text/plain", "body": "probe"}]}


async def test_an_anonymous_user_names_strangers_probes_profiles_and_ids(
    target: Target, http: httpx.AsyncClient, chat: LegitChat, figures: Figures
) -> None:
    support = await _support_app(target)
    await target.sign_in(http, "alice", app=support)  # alice exists in the support app too
    taken = await http.post(  # ids in use in the first app
        "/v1/conversations",
        json={"participants": ["bob"], "id": str(uuid.uuid4())},
        headers=chat.alice.headers,
    )
    taken_message = str(uuid.uuid4())
    sent = await http.post(
        f"/v1/conversations/{taken.json()['id']}/messages",
        json=_message(taken_message),
        headers=chat.alice.headers,
    )
    assert sent.status_code == 201
    headers, prober = [
        {"Authorization": f"Bearer {anon.json()['session_token']}"}
        for anon in [
            await http.post("/v1/sessions/anonymous", json={"app_id": support.app_id})
            for _ in range(2)
        ]
    ]  # the prober's rate limits are not the attacker's, which the attack has used up
    answers: dict[str, list[tuple[int, str]]] = {}

    def keep(kind: str, answer: httpx.Response) -> None:
        answers.setdefault(kind, []).append((answer.status_code, answer.text))

    async with chat.during():
        start, n = time.monotonic(), 0
        while time.monotonic() - start < ATTACK_SECONDS:
            n += 1
            named = "alice" if n % 2 else f"stranger-{n}"
            body = {"participants": [named]}
            keep("create", await http.post("/v1/conversations", json=body, headers=headers))
            for user in ("alice", f"nobody-{n}", "bob"):
                keep(f"profile {user[:6]}", await http.get(f"/v1/users/{user}", headers=headers))
        probe = {"participants": ["helpdesk"], "id": taken.json()["id"]}
        keep("id probe", await http.post("/v1/conversations", json=probe, headers=prober))
        own = answers["id probe"][0][1]
        path = f"/v1/conversations/{httpx.Response(200, text=own).json()['id']}/messages"
        keep("id probe", await http.post(path, json=_message(taken_message), headers=prober))
    figures.attacker_sent = sum(len(a) for a in answers.values())
    for status in (403, 404, 429):
        figures.refused(status, sum(s == status for a in answers.values() for s, _ in a))
    creates = {status for status, _ in answers["create"]}
    assert creates <= {403, 429}, creates
    assert 403 in creates
    refusals = {text for status, text in answers["create"] if status == 403}
    assert len(refusals) == 1  # alice (exists) and strangers (do not) get the very same answer
    assert "participants_not_allowed" in refusals.pop()
    profiles = {(s, t) for kind, a in answers.items() if kind.startswith("profile") for s, t in a}
    # Reads count against the session's request limit too: a refusal there says nothing.
    limited = {(s, t) for s, t in profiles if s == 429}
    assert all('"id":"rate_limited"' in t for _, t in limited), limited
    profiles -= limited
    assert len(profiles) == 1  # one and the same 404 for alice, bob and nobody
    assert profiles.pop()[0] == 404
    assert [status for status, _ in answers["id probe"]] == [201, 201]  # no 409: nothing leaks
    chat.assert_unharmed()
