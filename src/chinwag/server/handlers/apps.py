"""Apps and signing keys: the rules behind the CLI and the platform API."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any

from chinwag.core.errors import AppNotFound, IdInUse, InvalidRequest, NotFound
from chinwag.core.ids import is_valid_kid, is_valid_uuid, unstorable, user_id_problem
from chinwag.core.keys import (
    Alg,
    generate_hmac_secret,
    generate_key_pair,
    load_public_key,
    public_key_pem,
)
from chinwag.server.handlers.conversation_policy import check_policy
from chinwag.server.services import Services
from chinwag.server.storage import apps as app_store
from chinwag.server.storage import conversations as conversation_store
from chinwag.server.storage import users as user_store
from chinwag.server.storage.records import AppRecord, KeyRecord

__all__ = [
    "DEFAULT_MAX_TOKEN_AGE",
    "DEFAULT_SESSION_LIFETIME",
    "MAX_AGENTS",
    "MAX_SIGNING_KEYS",
    "NewKey",
    "add_public_key",
    "add_secret",
    "create_app",
    "delete_key",
    "generate_key",
    "get_app",
    "get_key",
    "get_secret",
    "list_agents",
    "list_apps",
    "list_keys",
    "set_agents",
    "set_key_enabled",
    "update_app",
]

DEFAULT_SESSION_LIFETIME = 30 * 24 * 3600
MIN_SESSION_LIFETIME = 30
MAX_SESSION_LIFETIME = 365 * 24 * 3600
DEFAULT_MAX_TOKEN_AGE = 15 * 60
MAX_TOKEN_AGE_LIMIT = 24 * 3600
ENVIRONMENTS = ("staging", "production")
MAX_KID_LENGTH = 128
MAX_SIGNING_KEYS = 100
"""Per app, as for a JWKS document: every key is listed, loaded and tried by kid."""
MAX_AGENTS = 1000
"""Per app: each agent may be added to conversations under the ``agents`` policy, and the
list is answered whole."""


@dataclass(frozen=True, slots=True)
class NewKey:
    record: KeyRecord
    private_key_pem: str | None = None
    secret: str | None = None


def _new_kid(services: Services) -> str:
    return "key_" + services.random(12).hex()


def _check_app_fields(
    name: str | None,
    environment: str | None,
    session_lifetime: int | None,
    max_token_age: int | None,
) -> None:
    if name is not None and (not 1 <= len(name.strip()) <= 200 or unstorable(name)):
        raise InvalidRequest(
            "An app name must be 1 to 200 characters, without NUL.",
            data={"property": "name"},
            status=422,
        )
    if environment is not None and environment not in ENVIRONMENTS:
        raise InvalidRequest(
            "environment must be 'staging' or 'production'.",
            data={"property": "environment"},
            status=422,
        )
    if session_lifetime is not None and not (
        MIN_SESSION_LIFETIME <= session_lifetime <= MAX_SESSION_LIFETIME
    ):
        raise InvalidRequest(
            f"session_lifetime must be {MIN_SESSION_LIFETIME} to {MAX_SESSION_LIFETIME} seconds.",
            data={"property": "session_lifetime"},
            status=422,
        )
    if max_token_age is not None and not 1 <= max_token_age <= MAX_TOKEN_AGE_LIMIT:
        raise InvalidRequest(
            f"max_token_age must be 1 to {MAX_TOKEN_AGE_LIMIT} seconds.",
            data={"property": "max_token_age"},
            status=422,
        )


async def create_app(
    services: Services,
    name: str,
    *,
    production: bool = False,
    allow_anonymous: bool = False,
    require_nonce: bool = True,
    session_lifetime: int = DEFAULT_SESSION_LIFETIME,
    max_token_age: int = DEFAULT_MAX_TOKEN_AGE,
    conversation_policy: str = "open",
) -> tuple[AppRecord, NewKey | None]:
    """Create an app; a staging app also gets its development key (the sample provider's)."""
    _check_app_fields(name, None, session_lifetime, max_token_age)
    check_policy(conversation_policy)
    now = services.now()
    record = AppRecord(
        id=str(uuid.UUID(bytes=services.random(16), version=4)),
        name=name.strip(),
        environment="production" if production else "staging",
        session_lifetime=session_lifetime,
        require_nonce=require_nonce,
        max_token_age=max_token_age,
        allow_anonymous=allow_anonymous,
        created_at=now,
        updated_at=now,
        conversation_policy=conversation_policy,
    )
    dev_key: NewKey | None = None
    async with services.db.transaction() as tx:
        await app_store.insert_app(tx.conn, record)
        if not production:
            pair = generate_key_pair(Alg.ES256)
            key = KeyRecord(
                kid=_new_kid(services),
                app_id=record.id,
                alg=Alg.ES256.value,
                public_key_pem=pair.public_key_pem,
                secret=None,
                private_key_pem=pair.private_key_pem,
                development=True,
                enabled=True,
                created_at=now,
            )
            await app_store.insert_key(tx.conn, key)
            dev_key = NewKey(record=key, private_key_pem=pair.private_key_pem)
    return record, dev_key


async def get_app(services: Services, app_id: str) -> AppRecord:
    """The app, or ``app_not_found``. App ids are UUIDs we generated: anything else is
    refused before it reaches SQL (PostgreSQL cannot even hold a NUL in text)."""
    record = None
    if is_valid_uuid(app_id):
        async with services.db.read() as conn:
            record = await app_store.get_app(conn, app_id)
    if record is None:
        raise AppNotFound(data={"app_id": app_id[:64]})
    return record


async def list_apps(services: Services) -> list[AppRecord]:
    async with services.db.read() as conn:
        return await app_store.list_apps(conn)


async def update_app(services: Services, app_id: str, **changes: Any) -> AppRecord:
    """Change name, environment, session_lifetime, require_nonce, max_token_age,
    allow_anonymous or conversation_policy. Moving to production keeps development keys
    but they stop working."""
    changes = {k: v for k, v in changes.items() if v is not None}
    allowed = {
        "name",
        "environment",
        "session_lifetime",
        "require_nonce",
        "max_token_age",
        "allow_anonymous",
        "conversation_policy",
    }
    unknown = set(changes) - allowed
    if unknown:
        raise InvalidRequest(f"Unknown app settings: {', '.join(sorted(unknown))}.")
    _check_app_fields(
        changes.get("name"),
        changes.get("environment"),
        changes.get("session_lifetime"),
        changes.get("max_token_age"),
    )
    if "conversation_policy" in changes:
        check_policy(changes["conversation_policy"])
    async with services.db.transaction() as tx:
        record = await app_store.get_app(tx.conn, app_id)
        if record is None:
            raise AppNotFound(data={"app_id": app_id[:64]})
        if changes:
            changes["updated_at"] = services.now()
            await app_store.update_app(tx.conn, app_id, changes)
            record = replace(record, **changes)
    return record


async def set_agents(
    services: Services, app_id: str, *, add: list[str], remove: list[str]
) -> list[str]:
    """Designate users as agents (creating them if the app has not seen them yet, so a
    support team can be set up before it signs in) or stop; returns the app's agents."""
    for user_id in [*add, *remove]:
        problem = user_id_problem(user_id)
        if problem is not None:
            raise InvalidRequest(f"Every agent user id {problem}.", data={"property": "agent"})
    await get_app(services, app_id)
    async with services.db.transaction() as tx:
        await app_store.lock_app(tx.conn, app_id)
        await conversation_store.ensure_users(tx.conn, app_id, add, services.now())
        await user_store.set_agent(tx.conn, app_id, add, True)
        await user_store.set_agent(tx.conn, app_id, remove, False)
        agents = await user_store.list_agents(tx.conn, app_id)
        if len(agents) > MAX_AGENTS:  # raised in the transaction: nothing is kept
            raise InvalidRequest.of_property(
                "agents_add", f"an app may have at most {MAX_AGENTS} agents"
            )
        return agents


async def list_agents(services: Services, app_id: str) -> list[str]:
    await get_app(services, app_id)
    async with services.db.read() as conn:
        return await user_store.list_agents(conn, app_id)


async def list_keys(services: Services, app_id: str) -> list[KeyRecord]:
    await get_app(services, app_id)
    async with services.db.read() as conn:
        return await app_store.list_keys(conn, app_id)


async def _insert_key(services: Services, record: KeyRecord) -> None:
    async with services.db.transaction() as tx:
        if await app_store.get_app(tx.conn, record.app_id) is None:
            raise AppNotFound(data={"app_id": record.app_id[:64]})
        await app_store.lock_app(tx.conn, record.app_id)
        if await app_store.count_keys(tx.conn, record.app_id) >= MAX_SIGNING_KEYS:
            raise InvalidRequest.of_property(
                "keys", f"an app may have at most {MAX_SIGNING_KEYS} signing keys"
            )
        if await app_store.get_key(tx.conn, record.app_id, record.kid) is not None:
            # Only this app's kids can clash (0009): another app's are neither refused
            # nor revealed, since the answer would tell this app they exist.
            raise IdInUse(
                "This app already has a key with that kid.", data={"kid": record.kid[:128]}
            )
        await app_store.insert_key(tx.conn, record)


def _parse_alg(alg: str) -> Alg:
    try:
        return Alg(alg)
    except ValueError:
        raise InvalidRequest(
            f"Unsupported algorithm {alg[:16]!r}; use one of "
            + ", ".join(a.value for a in Alg)
            + ".",
            data={"property": "alg"},
            status=422,
        ) from None


async def generate_key(services: Services, app_id: str, alg: str) -> NewKey:
    """Generate a key pair; the private key is returned once and never stored."""
    chosen = _parse_alg(alg)
    if chosen is Alg.HS256:  # checked here, not in core.keys, to answer 422 with the field
        raise InvalidRequest(
            "HS256 is a shared secret, not a key pair: ask for an HMAC secret instead "
            "(platform API: kind 'hmac_secret'; CLI: chinwag keys add-secret).",
            data={"property": "alg"},
            status=422,
        )
    pair = generate_key_pair(chosen)
    record = KeyRecord(
        kid=_new_kid(services),
        app_id=app_id,
        alg=chosen.value,
        public_key_pem=pair.public_key_pem,
        secret=None,
        private_key_pem=None,
        development=False,
        enabled=True,
        created_at=services.now(),
    )
    await _insert_key(services, record)
    return NewKey(record=record, private_key_pem=pair.private_key_pem)


async def add_public_key(
    services: Services, app_id: str, key_text: str, alg: str | None = None, kid: str | None = None
) -> NewKey:
    # A token's kid must have this shape to be verified at all, and a kid is a path
    # segment of the key's URLs: a kid outside it could be stored but never used or managed.
    if kid is not None and not is_valid_kid(kid):
        raise InvalidRequest(
            f"A kid must be 1 to {MAX_KID_LENGTH} of A-Z a-z 0-9 . _ : - (as in a JWKS).",
            data={"property": "kid"},
            status=422,
        )
    chosen, key = load_public_key(key_text, _parse_alg(alg) if alg else None)
    record = KeyRecord(
        kid=kid or _new_kid(services),
        app_id=app_id,
        alg=chosen.value,
        public_key_pem=public_key_pem(key),
        secret=None,
        private_key_pem=None,
        development=False,
        enabled=True,
        created_at=services.now(),
    )
    await _insert_key(services, record)
    return NewKey(record=record)


async def add_secret(services: Services, app_id: str) -> NewKey:
    secret = generate_hmac_secret(services.random(32))
    record = KeyRecord(
        kid=_new_kid(services),
        app_id=app_id,
        alg=Alg.HS256.value,
        public_key_pem=None,
        secret=secret,
        private_key_pem=None,
        development=False,
        enabled=True,
        created_at=services.now(),
    )
    await _insert_key(services, record)
    return NewKey(record=record, secret=secret)


async def _no_key(services: Services, app_id: str, kid: str) -> Exception:
    """``app_not_found`` if there is no such app, else ``not_found``, which is also the
    answer for another app's kid: as absent as no key, so nothing tells an app (or a
    platform key scoped to it) what kids other apps use."""
    await get_app(services, app_id)
    return NotFound("No key with that kid in this app.", data={"kid": kid[:128]})


def _could_exist(app_id: str, kid: str) -> bool:
    """Ids no database can hold are refused before SQL: a NUL in a kid from a URL would
    be a PostgreSQL error, not a 404. Not the kid alphabet: keys uploaded before it was
    enforced may have other kids, and must stay manageable (deletable at least)."""
    return is_valid_uuid(app_id) and not unstorable(kid)


async def get_key(services: Services, app_id: str, kid: str) -> KeyRecord:
    """The app's key ``kid``, or ``not_found``."""
    record = None
    if _could_exist(app_id, kid):
        async with services.db.read() as conn:
            record = await app_store.get_key(conn, app_id, kid)
    if record is None:
        raise await _no_key(services, app_id, kid)
    return record


async def get_secret(services: Services, app_id: str, kid: str) -> KeyRecord:
    """An HS256 key with its secret, for an admin. Unlike a private key, chinwag must keep
    the secret to verify with, and the app's backend needs the very same one to sign, so
    showing it again is how a lost copy is recovered without rotating the key."""
    record = await get_key(services, app_id, kid)
    if record.alg != Alg.HS256.value or record.secret is None:
        raise InvalidRequest(
            f"Key {kid[:128]!r} is {record.alg}; only HS256 keys have a secret to show.",
            data={"kid": kid[:128], "alg": record.alg},
            status=422,
        )
    return record


async def set_key_enabled(services: Services, app_id: str, kid: str, enabled: bool) -> KeyRecord:
    record = None
    if _could_exist(app_id, kid):
        async with services.db.transaction() as tx:
            if await app_store.set_key_enabled(tx.conn, app_id, kid, enabled):
                record = await app_store.get_key(tx.conn, app_id, kid)
    if record is None:
        raise await _no_key(services, app_id, kid)
    return record


async def delete_key(services: Services, app_id: str, kid: str) -> None:
    deleted = False
    if _could_exist(app_id, kid):
        async with services.db.transaction() as tx:
            deleted = await app_store.delete_key(tx.conn, app_id, kid)
    if not deleted:
        raise await _no_key(services, app_id, kid)
