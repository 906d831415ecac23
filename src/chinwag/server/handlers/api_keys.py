"""Platform API keys: create (shown once), list, revoke, and authenticate a request's key.

An ``app`` key reaches one app; an ``admin`` key reaches every app and the server-wide
endpoints (app creation, the audit log, HMAC secrets). ``PlatformCaller`` is who a platform
request (or a CLI command: :data:`CLI_CALLER`) acts as; it lives here, not in the HTTP
layer, because handlers and the audit log need it too.
"""

from __future__ import annotations

from dataclasses import dataclass

from chinwag.core.api_keys import ApiKeyRole, new_api_key, parse_api_key, secret_matches
from chinwag.core.errors import AuthenticationRequired, InvalidRequest, NotFound
from chinwag.server.handlers.apps import get_app
from chinwag.server.services import Services
from chinwag.server.storage import api_keys as store
from chinwag.server.storage.api_keys import ApiKeyRecord

__all__ = [
    "CLI_CALLER",
    "LAST_USED_RESOLUTION",
    "PlatformCaller",
    "authenticate_api_key",
    "create_api_key",
    "list_api_keys",
    "revoke_api_key",
]

LAST_USED_RESOLUTION = 60.0
"""``last_used_at`` is written at most this often per key: a busy backend's every request
would otherwise be a write, for a figure nobody needs to the second."""

MAX_LABEL = 200


@dataclass(frozen=True, slots=True)
class PlatformCaller:
    """Who a platform action is done by: an API key, or the CLI (``key_id='cli'``)."""

    key_id: str
    role: str
    app_id: str | None

    @property
    def is_admin(self) -> bool:
        return self.role == ApiKeyRole.ADMIN

    @property
    def audit_name(self) -> str:
        """How the audit log names the caller (never the key's secret)."""
        return "cli" if self is CLI_CALLER or self.key_id == "cli" else f"api_key:{self.key_id}"


CLI_CALLER = PlatformCaller(key_id="cli", role=ApiKeyRole.ADMIN.value, app_id=None)


def _check_role(role: str, app_id: str | None) -> ApiKeyRole:
    try:
        chosen = ApiKeyRole(role)
    except ValueError:
        raise InvalidRequest(
            "role must be 'admin' or 'app'.", data={"property": "role"}, status=422
        ) from None
    if (chosen is ApiKeyRole.APP) != (app_id is not None):
        raise InvalidRequest(
            "An 'app' key needs an app id; an 'admin' key takes none.",
            data={"property": "app_id"},
            status=422,
        )
    return chosen


async def create_api_key(
    services: Services, role: str, *, app_id: str | None = None, label: str | None = None
) -> tuple[ApiKeyRecord, str]:
    """A new key and its token; the token is returned this once and never stored."""
    chosen = _check_role(role, app_id)
    if label is not None and not (len(label) <= MAX_LABEL and label.isprintable()):
        raise InvalidRequest(
            f"A label must be at most {MAX_LABEL} printable characters.",
            data={"property": "label"},
            status=422,
        )
    if app_id is not None:
        await get_app(services, app_id)
    key = new_api_key(services.random(5 + 32))
    record = ApiKeyRecord(
        id=key.key_id,
        role=chosen.value,
        app_id=app_id,
        label=label or None,
        secret_hash=key.secret_hash,
        created_at=services.now(),
        last_used_at=None,
        revoked_at=None,
    )
    async with services.db.transaction() as tx:
        await store.insert_api_key(tx.conn, record)
    return record, key.token


async def list_api_keys(services: Services) -> list[ApiKeyRecord]:
    async with services.db.read() as conn:
        return await store.list_api_keys(conn)


async def revoke_api_key(services: Services, key_id: str) -> ApiKeyRecord:
    """Revoke at once: the key's next request is 401. Revoking twice is ``not_found``."""
    async with services.db.transaction() as tx:
        if not await store.revoke(tx.conn, key_id[:16], now=services.now()):
            raise NotFound("No live API key with that id.", data={"key_id": key_id[:16]})
        record = await store.get_api_key(tx.conn, key_id[:16])
    assert record is not None
    return record


async def authenticate_api_key(services: Services, token: str | None) -> PlatformCaller:
    """The caller a bearer token stands for, else 401 ``authentication_required`` (one
    answer for a missing, malformed, unknown, wrong or revoked key: no oracle)."""
    parsed = parse_api_key(token) if token else None
    record = None
    if parsed is not None:
        async with services.db.read() as conn:
            record = await store.get_api_key(conn, parsed.key_id)
    if (
        parsed is None
        or record is None
        or not secret_matches(record.secret_hash, parsed)
        or record.revoked_at is not None
    ):
        raise AuthenticationRequired("A valid platform API key is required.")
    now = services.now()
    if record.last_used_at is None or now - record.last_used_at >= LAST_USED_RESOLUTION:
        async with services.db.transaction() as tx:
            await store.touch(tx.conn, record.id, now=now, unless_after=now - LAST_USED_RESOLUTION)
    return PlatformCaller(key_id=record.id, role=record.role, app_id=record.app_id)
