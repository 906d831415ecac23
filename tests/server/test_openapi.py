"""The OpenAPI document is valid, complete, and what the running server really answers.

Real answers are checked with schemathesis's own checks (status documented, content type,
body matching the schema): first a walk through every operation's success and its common
errors, then a few generated requests per operation, with a signed-in session and with the
ids of a real conversation and message so authenticated routes get past their 404s.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.generation.case import Case
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

from chinwag.core.keys import Alg, generate_key_pair
from chinwag.server.settings import Settings
from chinwag.server.storage import webhook_outbox
from chinwag.server.webhooks.worker import new_msg_id
from tests.support import (
    AppFixture,
    JwksEndpoint,
    RunningServer,
    bearer,
    get_nonce,
    hook_settings,
    jwk_for,
    make_app,
    platform_key,
    send,
    start,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
GENERATED_PER_OPERATION = 4
PUBLIC = {"/v1/nonces", "/v1/sessions", "/v1/sessions/anonymous", "/v1/dev/identity_tokens"}
PLATFORM = "/v1/platform/"
OperationCase = Case[APIOperation[Any, Any, Any, Any]]
"""A request for one operation (schemathesis's own annotations leave it unparameterised)."""


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def test_the_document_is_valid_openapi(server: RunningServer) -> None:
    validate(server.app.openapi())


def test_no_fastapi_validation_schema_is_left(server: RunningServer) -> None:
    text = str(server.app.openapi())
    assert "HTTPValidationError" not in text
    assert "'detail'" not in text


def test_every_error_answer_is_the_error_envelope(server: RunningServer) -> None:
    envelope = "#/components/schemas/ErrorEnvelope"
    for path, method, operation in operations(server.app.openapi()):
        for status, answer in operation["responses"].items():
            if int(status) < 400:
                continue
            schema = answer["content"]["application/json"]["schema"]
            assert schema == {"$ref": envelope}, (method, path, status)
            assert "example" in answer["content"]["application/json"], (method, path, status)


async def test_a_nul_in_any_query_is_a_documented_400(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    """A NUL in the query is refused before any route runs, whatever the operation's
    parameters, so every operation documents the 400 (schemathesis once drew one for the
    audit log and found it undocumented)."""
    for path, method, operation in operations(server.app.openapi()):
        assert "400" in operation["responses"], (method, path)
    for url in ("/v1/platform/audit?app_id=a%00b", "/v1/me?unused=%00"):
        refused = await client.get(url)
        assert refused.status_code == 400, (url, refused.text)
        assert refused.json()["error"]["id"] == "invalid_request"


def test_every_success_answer_has_a_schema(server: RunningServer) -> None:
    for path, method, operation in operations(server.app.openapi()):
        for status, answer in operation["responses"].items():
            if status.startswith("2") and status != "204":
                content = answer["content"]["application/json"]
                assert content["schema"] != {}, (method, path, status)


def test_authenticated_operations_declare_the_session_scheme(server: RunningServer) -> None:
    document = server.app.openapi()
    schemes = document["components"]["securitySchemes"]
    assert schemes["session"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "opaque session token",
        "description": schemes["session"]["description"],
    }
    for path, method, operation in operations(document):
        if path.startswith(PLATFORM):
            assert operation["security"] == [{"platformApiKey": []}], (method, path)
            assert "401" in operation["responses"], (method, path)
        elif path in PUBLIC and path != "/v1/sessions":
            assert "security" not in operation, (method, path)
        elif path.startswith("/v1/platform/"):
            assert operation["security"] == [{"platformApiKey": []}], (method, path)
        else:
            assert {"session": []} in operation["security"], (method, path)
            assert "401" in operation["responses"], (method, path)


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Loopback receivers and JWKS endpoints allowed; no webhook deliveries are sent."""
    return hook_settings(database_url, webhook_workers=False, allow_insecure_jwks=True)


class Walk:
    """Requests made with httpx against the running server, each checked by schemathesis."""

    def __init__(self, server: RunningServer, client: httpx.AsyncClient) -> None:
        self.schema: OpenApiSchema = schemathesis.openapi.from_dict(server.app.openapi())
        self.client = client
        self.base_url = server.url
        self.statuses: set[tuple[str, str, int]] = set()

    def case(self, method: str, path: str, **parts: Any) -> OperationCase:
        return self.schema[path][method].Case(**parts)

    async def run(
        self, case: OperationCase, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        kwargs = case.as_transport_kwargs(base_url=self.base_url, headers=headers)
        response = await self.client.request(
            kwargs["method"],
            kwargs["url"],
            headers=kwargs.get("headers"),
            params=kwargs.get("params"),
            json=kwargs.get("json"),
            content=kwargs.get("data"),
        )
        case.validate_response(response, checks=CHECKS)
        self.statuses.add((case.method, case.path, response.status_code))
        return response

    async def call(
        self, method: str, path: str, headers: dict[str, str] | None = None, **parts: Any
    ) -> httpx.Response:
        return await self.run(self.case(method, path, **parts), headers)


async def test_every_operation_answers_as_documented(
    server: RunningServer,
    client: httpx.AsyncClient,
    app: AppFixture,
    alice: dict[str, str],
    bob: dict[str, str],
) -> None:
    walk = Walk(server, client)
    await sign_in_walk(walk, app)
    open_app = await make_app(server.services, allow_anonymous=True)
    await walk.call("POST", "/v1/sessions/anonymous", body={"app_id": open_app.app_id})
    conversation, message = await conversation_walk(walk, alice, bob)
    await error_walk(walk, alice, bob, conversation, message)
    await block_walk(walk, alice)
    await leave_walk(walk, alice, bob, conversation, message)
    await platform_walk(walk, server, app, alice)
    documented = {(m.upper(), p) for p, m, _ in operations(server.app.openapi())}
    walked = {(method, path) for method, path, status in walk.statuses if status < 300}
    assert documented - walked == set()


async def sign_in_walk(walk: Walk, app: AppFixture) -> None:
    nonce = (await walk.call("POST", "/v1/nonces", body={"app_id": app.app_id})).json()
    token_body = {"app_id": app.app_id, "user_id": "carol", "nonce": nonce["nonce"]}
    token = await walk.call("POST", "/v1/dev/identity_tokens", body=token_body)
    session_body = {"app_id": app.app_id, "identity_token": token.json()["identity_token"]}
    session = (await walk.call("POST", "/v1/sessions", body=session_body)).json()
    carol = {"Authorization": f"Bearer {session['session_token']}"}
    await walk.call("GET", "/v1/me", carol)
    await walk.call("DELETE", "/v1/sessions/current", carol)
    await walk.call("GET", "/v1/me", carol)  # 401 with a fresh nonce
    await walk.call("POST", "/v1/sessions/anonymous", body={"app_id": app.app_id})  # 403
    await walk.call("POST", "/v1/nonces", body={"app_id": str(uuid.uuid4())})  # 404
    await walk.call("POST", "/v1/nonces", body={"app_id": ""})  # 422


async def conversation_walk(
    walk: Walk, alice: dict[str, str], bob: dict[str, str]
) -> tuple[str, str]:
    body = {"participants": ["bob"], "distinct": True, "metadata": {"title": "walk"}}
    created = await walk.call("POST", "/v1/conversations", alice, body=body)
    again = await walk.call("POST", "/v1/conversations", alice, body=body)
    assert (created.status_code, again.status_code) == (201, 200)
    conversation = created.json()["id"]
    at = {"conversation_id": conversation}
    message_id = str(uuid.uuid4())
    message_body = {"id": message_id, "parts": [{"mime_type": "text/plain", "body": "hi"}]}
    sent = await walk.call(
        "POST",
        "/v1/conversations/{conversation_id}/messages",
        alice,
        path_parameters=at,
        body=message_body,
    )
    resent = await walk.call(
        "POST",
        "/v1/conversations/{conversation_id}/messages",
        alice,
        path_parameters=at,
        body=message_body,
    )
    assert (sent.status_code, resent.status_code) == (201, 200)
    await walk.call("GET", "/v1/conversations", alice, query={"limit": 10})
    await walk.call("GET", "/v1/conversations/{conversation_id}", bob, path_parameters=at)
    await walk.call("GET", "/v1/conversations/{conversation_id}/messages", bob, path_parameters=at)
    await walk.call(
        "POST",
        "/v1/conversations/{conversation_id}/receipts",
        bob,
        path_parameters=at,
        body={"type": "read", "position": 1},
    )
    await walk.call(
        "POST",
        "/v1/messages/{message_id}/receipts",
        bob,
        path_parameters={"message_id": message_id},
        body={"type": "delivered"},
    )
    await walk.call("GET", "/v1/events", bob, query={"after": 0})
    await walk.call("GET", "/v1/users/{user_id}", bob, path_parameters={"user_id": "alice"})
    await walk.call(
        "PATCH",
        "/v1/conversations/{conversation_id}",
        alice,
        path_parameters=at,
        body={"metadata": {"set": {"topic": "x"}}},
    )
    return conversation, message_id


async def error_walk(
    walk: Walk, alice: dict[str, str], bob: dict[str, str], conversation: str, message: str
) -> None:
    at = {"conversation_id": conversation}
    await walk.call(
        "GET",
        "/v1/conversations/{conversation_id}",
        alice,
        path_parameters={"conversation_id": str(uuid.uuid4())},
    )  # 404
    await walk.call("GET", "/v1/conversations", query={"limit": 10})  # 401
    await walk.call("GET", "/v1/conversations", alice, query={"limit": 0})  # 422
    other = {"id": message, "parts": [{"mime_type": "text/plain", "body": "changed"}]}
    await walk.call(
        "POST",
        "/v1/conversations/{conversation_id}/messages",
        alice,
        path_parameters=at,
        body=other,
    )  # 409 id_in_use
    huge = {"id": str(uuid.uuid4()), "parts": [{"mime_type": "text/plain", "body": "x" * 70_000}]}
    await walk.call(
        "POST", "/v1/conversations/{conversation_id}/messages", alice, path_parameters=at, body=huge
    )  # 413 message_too_large
    await walk.call("POST", "/v1/conversations", alice, body={"participants": ["x" * 300_000]})
    response = await walk.client.post(
        "/v1/conversations", headers={**alice, "content-type": "application/json"}, content=b"{"
    )
    walk.case("POST", "/v1/conversations").validate_response(response, checks=CHECKS)
    assert response.status_code == 400


async def block_walk(walk: Walk, alice: dict[str, str]) -> None:
    who = {"user_id": "mallory"}
    await walk.call("POST", "/v1/me/blocks/{user_id}", alice, path_parameters=who)
    await walk.call("GET", "/v1/me/blocks", alice)
    await walk.call("DELETE", "/v1/me/blocks/{user_id}", alice, path_parameters=who)
    await walk.call("POST", "/v1/me/blocks/{user_id}", alice, path_parameters={"user_id": "alice"})


async def platform_messages_walk(walk: Walk, key: dict[str, str], app: AppFixture) -> None:
    """Conversations, sends, bots, announcements and blocks as the app's server."""
    at = {"app_id": app.app_id}
    base = "/v1/platform/apps/{app_id}"
    bot = {"user_id": "walkbot", "display_name": "Walk"}
    await walk.call("POST", f"{base}/bots", key, path_parameters=at, body=bot)
    await walk.call("POST", f"{base}/bots", key, path_parameters=at, body=bot)  # 200
    body = {"participants": ["alice", "walkbot"], "metadata": {"title": "bot"}}
    made = await walk.call("POST", f"{base}/conversations", key, path_parameters=at, body=body)
    in_conv = {**at, "conversation_id": made.json()["id"]}
    parts = [{"mime_type": "text/plain", "body": "beep"}]
    send = {"id": str(uuid.uuid4()), "sender_id": "walkbot", "parts": parts}
    path = f"{base}/conversations/{{conversation_id}}/messages"
    await walk.call("POST", path, key, path_parameters=in_conv, body=send)
    await platform_reads_walk(walk, key, at, in_conv)
    note = {"id": str(uuid.uuid4()), "user_ids": ["alice", "bob"], "parts": parts}
    await walk.call("POST", f"{base}/announcements", key, path_parameters=at, body=note)
    pair = {"user_id": "alice", "blocked": "mallory"}
    await walk.call("POST", f"{base}/blocks", key, path_parameters=at, body=pair)
    await walk.call("GET", f"{base}/blocks", key, path_parameters=at, query={"user_id": "alice"})
    await walk.call("DELETE", f"{base}/blocks", key, path_parameters=at, query=pair)
    await walk.call("POST", f"{base}/bots", path_parameters=at, body=bot)  # 401
    await walk.call(
        "POST", f"{base}/bots", key, path_parameters={"app_id": str(uuid.uuid4())}, body=bot
    )


async def platform_reads_walk(
    walk: Walk, key: dict[str, str], at: dict[str, str], in_conv: dict[str, str]
) -> None:
    base = "/v1/platform/apps/{app_id}/conversations"
    await walk.call("GET", base + "/{conversation_id}", key, path_parameters=in_conv)
    await walk.call("GET", base + "/{conversation_id}/messages", key, path_parameters=in_conv)
    await walk.call("GET", base, key, path_parameters=at, query={"user_id": "alice", "limit": 1})
    unknown = {**at, "conversation_id": str(uuid.uuid4())}
    await walk.call("GET", base + "/{conversation_id}", key, path_parameters=unknown)  # 404
    await walk.call(
        "GET", base + "/{conversation_id}/messages", key, path_parameters=in_conv,
        query={"limit": 501},
    )  # fmt: skip
    await walk.call("GET", base, key, path_parameters=at, query={"user_id": "ghost"})  # 404


async def leave_walk(
    walk: Walk, alice: dict[str, str], bob: dict[str, str], conversation: str, message: str
) -> None:
    at = {"conversation_id": conversation}
    await walk.call(
        "POST",
        "/v1/conversations/{conversation_id}/participants",
        alice,
        path_parameters=at,
        body={"user_ids": ["dave"]},
    )
    await walk.call(
        "DELETE",
        "/v1/conversations/{conversation_id}/participants/{user_id}",
        alice,
        path_parameters={**at, "user_id": "dave"},
    )
    await walk.call(
        "DELETE",
        "/v1/messages/{message_id}",
        alice,
        path_parameters={"message_id": message},
        query={"mode": "all_participants"},
    )
    await walk.call("POST", "/v1/conversations/{conversation_id}/leave", bob, path_parameters=at)
    await walk.call(
        "POST",
        "/v1/conversations/{conversation_id}/receipts",
        bob,
        path_parameters=at,
        body={"type": "read", "position": 1},
    )  # 403
    await walk.call(
        "DELETE",
        "/v1/conversations/{conversation_id}",
        alice,
        path_parameters=at,
        query={"mode": "all_participants"},
    )


async def platform_walk(
    walk: Walk, server: RunningServer, app: AppFixture, alice: dict[str, str]
) -> None:
    """Every platform operation once with an admin key, and its common refusals."""
    admin = await platform_key(server.services)
    await webhooks_walk(walk, server, app, alice, admin)
    at = {"app_id": app.app_id}
    made = await walk.call("POST", "/v1/platform/apps", admin, body={"name": "walk"})
    assert made.status_code == 201
    await walk.call("GET", "/v1/platform/apps", admin)
    await walk.call("GET", "/v1/platform/apps/{app_id}", admin, path_parameters=at)
    await walk.call(
        "PATCH", "/v1/platform/apps/{app_id}", admin, path_parameters=at, body={"name": "w"}
    )
    keys = "/v1/platform/apps/{app_id}/keys"
    await walk.call("GET", keys, admin, path_parameters=at)
    pair = generate_key_pair(Alg.ES256)
    await walk.call(
        "POST", keys, admin, path_parameters=at, body={"public_key": pair.public_key_pem}
    )
    secret = await walk.call(
        "POST", f"{keys}/generate", admin, path_parameters=at, body={"kind": "hmac_secret"}
    )
    kid = {**at, "kid": secret.json()["kid"]}
    await walk.call("GET", keys + "/{kid}/secret", admin, path_parameters=kid)
    await walk.call("POST", keys + "/{kid}/disable", admin, path_parameters=kid)
    await walk.call("POST", keys + "/{kid}/enable", admin, path_parameters=kid)
    await walk.call("DELETE", keys + "/{kid}", admin, path_parameters=kid)
    await walk.call("DELETE", keys + "/{kid}", admin, path_parameters=kid)  # 404
    await platform_messages_walk(walk, admin, app)
    await platform_users_walk(walk, admin, app)
    await jwks_walk(walk, admin, app)
    await walk.call("POST", "/v1/platform/apps/{app_id}/suspend", admin, path_parameters=at)
    await walk.call("POST", "/v1/platform/apps/{app_id}/unsuspend", admin, path_parameters=at)
    await walk.call("GET", "/v1/platform/audit", admin, query={"limit": 5})
    await walk.call("GET", "/v1/platform/apps")  # 401
    mine = await platform_key(server.services, "app", app.app_id)
    await walk.call("GET", "/v1/platform/audit", mine)  # 403
    other = {"app_id": made.json()["app_id"]}
    await walk.call("GET", "/v1/platform/apps/{app_id}", mine, path_parameters=other)  # 404


async def jwks_walk(walk: Walk, admin: dict[str, str], app: AppFixture) -> None:
    at = {"app_id": app.app_id}
    with JwksEndpoint() as endpoint:
        endpoint.keys = [jwk_for(generate_key_pair(Alg.ES256), "walk")]
        path = "/v1/platform/apps/{app_id}/jwks"
        await walk.call("PUT", path, admin, path_parameters=at, body={"url": endpoint.url})
        await walk.call("GET", path, admin, path_parameters=at)
        await walk.call("PUT", path, admin, path_parameters=at, body={"url": "http://x"})  # 422
        await walk.call("DELETE", path, admin, path_parameters=at)
        await walk.call("GET", path, admin, path_parameters=at)  # 404


async def platform_users_walk(walk: Walk, admin: dict[str, str], app: AppFixture) -> None:
    at = {"app_id": app.app_id}
    user = {**at, "user_id": "alice"}
    users = "/v1/platform/apps/{app_id}/users"
    await walk.call("GET", users + "/{user_id}", admin, path_parameters=user)
    await walk.call(
        "PATCH", users + "/{user_id}", admin, path_parameters=user, body={"display_name": "A"}
    )
    await walk.call(
        "GET",
        "/v1/platform/apps/{app_id}/sessions",
        admin,
        path_parameters=at,
        query={"user_id": "alice"},
    )
    await walk.call(
        "POST", users + "/suspend", admin, path_parameters=at, body={"user_id": "alice"}
    )
    await walk.call(
        "POST", users + "/unsuspend", admin, path_parameters=at, body={"user_id": "alice"}
    )
    await walk.call(
        "POST",
        "/v1/platform/apps/{app_id}/sessions/end",
        admin,
        path_parameters=at,
        body={"user_id": "bob", "wipe": True},
    )
    await walk.call(
        "POST", "/v1/platform/apps/{app_id}/sessions/end", admin, path_parameters=at, body={}
    )  # 422


def generated(schema: OpenApiSchema, per_operation: int) -> list[OperationCase]:
    """A few schema-driven requests per operation, drawn up front (hypothesis is sync)."""
    cases: list[OperationCase] = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # an operation schemathesis cannot read
        operation = result.ok()

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(
            max_examples=per_operation,
            database=None,
            deadline=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def draw(case: OperationCase) -> None:
            cases.append(case)

        draw()
    return cases


async def test_generated_requests_answer_as_documented(
    server: RunningServer,
    client: httpx.AsyncClient,
    app: AppFixture,
    alice: dict[str, str],
) -> None:
    walk = Walk(server, client)
    conversation, _ = await conversation_walk(
        walk, alice, await bearer(client, app, "bob", server.clock.now())
    )
    real = {"conversation_id": conversation, "user_id": "bob", "app_id": app.app_id}
    await get_nonce(client, app.app_id)
    cases = generated(walk.schema, GENERATED_PER_OPERATION)
    assert {(c.method, c.path) for c in cases} == {
        (m.upper(), p) for p, m, _ in operations(server.app.openapi())
    }
    for case in cases:
        await walk.run(case, alice)  # as generated: mostly 404s and 422s
        if case.path_parameters:  # and aimed at things that exist
            case.path_parameters = {
                name: real.get(name, value) for name, value in case.path_parameters.items()
            }
            await walk.run(case, alice)


async def test_generated_platform_requests_answer_as_documented(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: dict[str, str]
) -> None:
    """Schema-driven bodies and parameters with an admin key, aimed at a real app, user and
    key: whatever they hold (NUL, huge numbers, odd ids), the answer is documented, never 500."""
    walk = Walk(server, client)
    admin = await platform_key(server.services)
    real = {"app_id": app.app_id, "user_id": "alice", "kid": app.kid}
    cases = [c for c in generated(walk.schema, GENERATED_PER_OPERATION) if PLATFORM in c.path]
    assert cases
    for case in cases:
        if case.path.endswith("/suspend") and "/users/" not in case.path:
            continue  # suspending the app would end the user's sessions the others need
        await walk.run(case, admin)
        if case.path_parameters:
            case.path_parameters = {
                name: real.get(name, value) for name, value in case.path_parameters.items()
            }
            await walk.run(case, admin)


async def webhooks_walk(
    walk: Walk,
    server: RunningServer,
    app: AppFixture,
    alice: dict[str, str],
    admin: dict[str, str],
) -> None:
    """Webhooks, their deliveries, the push gateway and a device's push token. The
    delivery workers are off: the walk fans the outbox out itself and nothing is sent."""
    base = "/v1/platform/apps/{app_id}/webhooks"
    at = {"app_id": app.app_id}
    body = {"url": "https://example.com/hook", "event_types": ["message.created"]}
    made = (await walk.call("POST", base, admin, path_parameters=at, body=body)).json()
    hook = {**at, "endpoint_id": made["id"]}
    await walk.call("GET", base, admin, path_parameters=at)
    await walk.call("GET", base + "/{endpoint_id}", admin, path_parameters=hook)
    await walk.call(
        "PATCH", base + "/{endpoint_id}", admin, path_parameters=hook, body={"enabled": True}
    )
    await walk.call("POST", base + "/{endpoint_id}/rotate-secret", admin, path_parameters=hook)
    await send(walk.client, alice, await start(walk.client, alice, "bob"), "hi")
    async with server.services.db.transaction() as tx:
        await webhook_outbox.expand(tx.conn, limit=10, new_msg_id=new_msg_id)
    listed = await walk.call("GET", base + "/{endpoint_id}/deliveries", admin, path_parameters=hook)
    replay = {**hook, "delivery_id": listed.json()["deliveries"][0]["id"]}
    await walk.call(
        "POST", base + "/{endpoint_id}/deliveries/{delivery_id}/replay", admin,
        path_parameters=replay,
    )  # fmt: skip
    await walk.call("DELETE", base + "/{endpoint_id}", admin, path_parameters=hook)
    gateway = "/v1/platform/apps/{app_id}/push-gateway"
    await walk.call(
        "PUT", gateway, admin, path_parameters=at, body={"url": "https://push.example.com/"}
    )
    await walk.call("GET", gateway, admin, path_parameters=at)
    await walk.call("POST", gateway + "/rotate-secret", admin, path_parameters=at)
    await walk.call("DELETE", gateway, admin, path_parameters=at)
    await walk.call("POST", "/v1/push_tokens", alice, body={"kind": "fcm", "token": "t"})
    await walk.call("DELETE", "/v1/push_tokens", alice)
