"""The platform API's request bodies and answers, as pydantic models (OpenAPI schemas).

Views (``*_view``) turn handler records into the JSON the endpoints send; the models
describe that JSON. Nothing here ever renders a stored secret except the one answer meant
to (``GET …/keys/{kid}/secret``, admin only, audited).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from chinwag.server.handlers.app_views import app_json, key_json
from chinwag.server.handlers.identities import user_json
from chinwag.server.storage.audit import AuditEntry
from chinwag.server.storage.records import AppRecord, SessionRecord, UserRecord

__all__ = [
    "App",
    "AppCreate",
    "AppList",
    "AppUpdate",
    "AuditPage",
    "BlockRef",
    "EndSessions",
    "EndedSessions",
    "Key",
    "KeyGenerate",
    "KeyList",
    "KeyRegister",
    "KeySecret",
    "PlatformUser",
    "SessionList",
    "UserRef",
    "UserUpdate",
    "app_view",
    "audit_view",
    "key_view",
    "not_null",
    "session_view",
    "user_view",
]

Seconds = Field(description="Seconds since the Unix epoch, in the server's clock")
Policy = Literal["open", "existing_users", "anonymous_to_agents"]


class _Body(BaseModel):
    # strict: "wipe": "yes" or "enabled": 1 is a client's mistake, not a yes (as the
    # webhook and message bodies already hold)
    model_config = ConfigDict(extra="forbid", strict=True)


def _example(example: dict[str, Any]) -> ConfigDict:
    """A request example for Swagger UI's "Try it out" (schemathesis tries it first)."""
    return ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [example]})


def _not_null(cls: type[BaseModel], value: object) -> object:
    if value is None:
        raise ValueError("must not be null; leave the field out to keep its value")
    return value


def not_null(*fields: str) -> Any:
    """A validator refusing an explicit ``null`` for ``fields``: in a PATCH body whose
    fields are optional only so they can be left out, ``null`` would otherwise be taken as
    "unchanged" and a client that meant to clear the value would get 200 and no change."""
    return field_validator(*fields, mode="before")(_not_null)


class AppCreate(_Body):
    model_config = _example({"name": "Support chat", "allow_anonymous": True})

    name: str = Field(min_length=1, max_length=200)
    environment: Literal["staging", "production"] = "staging"
    allow_anonymous: bool = False
    require_nonce: bool = True
    session_lifetime: int | None = Field(default=None, description="Seconds (default 30 days)")
    max_token_age: int | None = Field(default=None, description="Seconds (default 900)")
    conversation_policy: Policy = "open"


class AppUpdate(_Body):
    model_config = _example({"session_lifetime": 86400, "agents_add": ["support/ann"]})

    name: str | None = Field(default=None, min_length=1, max_length=200)
    environment: Literal["staging", "production"] | None = None
    allow_anonymous: bool | None = None
    require_nonce: bool | None = None
    session_lifetime: int | None = None
    max_token_age: int | None = None
    conversation_policy: Policy | None = None
    agents_add: list[str] = Field(default_factory=list, max_length=1000)
    agents_remove: list[str] = Field(default_factory=list, max_length=1000)

    _no_null = not_null(
        "name",
        "environment",
        "allow_anonymous",
        "require_nonce",
        "session_lifetime",
        "max_token_age",
        "conversation_policy",
    )


class App(_Body):
    app_id: str
    name: str
    environment: Literal["staging", "production"]
    session_lifetime: int
    require_nonce: bool
    max_token_age: int
    allow_anonymous: bool
    conversation_policy: str
    suspended_at: float | None
    created_at: float = Seconds
    updated_at: float = Seconds
    development_key: Key | None = Field(
        default=None, description="A new staging app's development key (private key once)"
    )


class AppList(_Body):
    apps: list[App]


class KeyRegister(_Body):
    public_key: str = Field(min_length=1, max_length=16384, description="PEM or JWK (JSON)")
    alg: str | None = Field(default=None, max_length=16)
    kid: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="1 to 128 of `A-Z a-z 0-9 . _ : -` (default: a new `key_…`)",
    )


class KeyGenerate(_Body):
    model_config = _example({"kind": "key_pair", "alg": "ES256"})

    kind: Literal["key_pair", "hmac_secret"] = "key_pair"
    alg: str = Field(default="ES256", max_length=16, description="For key_pair")


class Key(_Body):
    kid: str
    app_id: str
    alg: str
    enabled: bool
    development: bool
    created_at: float = Seconds
    private_key_pem: str | None = Field(
        default=None, description="Only in the answer that generated it; never stored"
    )
    secret: str | None = Field(default=None, description="Only when an HS256 secret is made")


class KeyList(_Body):
    keys: list[Key]


class KeySecret(_Body):
    kid: str
    alg: Literal["HS256"]
    secret: str


class UserUpdate(_Body):
    """Fields to set; ``null`` clears one. The next sign-in's claims apply again."""

    model_config = _example({"display_name": "Alice Liddell", "avatar_url": None})

    display_name: str | None = Field(default=None, max_length=128)
    avatar_url: str | None = Field(default=None, max_length=1024)
    email: str | None = Field(default=None, max_length=254)
    first_name: str | None = Field(default=None, max_length=128)
    last_name: str | None = Field(default=None, max_length=128)


class PlatformUser(_Body):
    user_id: str
    display_name: str | None
    avatar_url: str | None
    anonymous: bool
    email: str | None
    first_name: str | None
    last_name: str | None
    bot: bool = Field(default=False, description="A bot identity created by the app's server")
    agent: bool
    suspended_at: float | None
    created_at: float = Seconds
    updated_at: float = Seconds


class UserRef(_Body):
    model_config = _example({"user_id": "alice"})

    user_id: str = Field(min_length=1, max_length=256)


class BlockRef(_Body):
    model_config = _example({"user_id": "alice", "blocked": "spammer"})

    user_id: str = Field(min_length=1, max_length=256, description="The user who blocks")
    blocked: str = Field(min_length=1, max_length=256, description="The user blocked")


class SessionInfo(_Body):
    session_id: str
    device_label: str | None
    address: str | None
    created_at: float = Seconds
    last_seen_at: float | None = Field(description="To the minute")
    expires_at: float = Seconds


class SessionList(_Body):
    user_id: str
    sessions: list[SessionInfo]


class EndSessions(_Body):
    """Exactly one of ``session_id``, ``user_id`` or ``issued_before``."""

    model_config = _example({"user_id": "alice", "wipe": True})

    session_id: str | None = Field(default=None, min_length=1, max_length=64)
    user_id: str | None = Field(default=None, min_length=1, max_length=256)
    issued_before: float | None = Field(
        default=None,
        allow_inf_nan=False,  # 1e400 parses as infinity: "before forever" ends them all
        description="Every session of the app opened before this time",
    )
    wipe: bool = Field(default=False, description="Devices also delete their local data")


class EndedSessions(_Body):
    ended_session_ids: list[str]
    wipe: bool


class AuditItem(_Body):
    id: int
    at: float = Seconds
    caller: str = Field(description="`cli` or `api_key:<key id>`")
    action: str
    app_id: str | None
    target: str
    address: str | None
    data: dict[str, Any]


class AuditPage(_Body):
    entries: list[AuditItem]
    next_before: int | None = Field(description="Pass as `before` for the next page")


def app_view(app: AppRecord) -> dict[str, Any]:
    return app_json(app) | {"suspended_at": app.suspended_at}


key_view = key_json
"""Never the stored secret or development private key."""


def user_view(user: UserRecord) -> dict[str, Any]:
    return {
        **user_json(user),
        "agent": user.agent,
        "suspended_at": user.suspended_at,
        "created_at": user.created_at,
        "updated_at": user.updated_at,
    }


def session_view(session: SessionRecord) -> dict[str, Any]:
    return {
        "session_id": session.id,
        "device_label": session.device_label,
        "address": session.address,
        "created_at": session.created_at,
        "last_seen_at": session.last_seen_at,
        "expires_at": session.expires_at,
    }


def audit_view(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": entry.at,
        "caller": entry.caller,
        "action": entry.action,
        "app_id": entry.app_id,
        "target": entry.target,
        "address": entry.address,
        "data": entry.data,
    }


App.model_rebuild()
