"""An app and its keys as JSON: one rendering for the CLI's ``--json`` and the platform API.

Never a stored secret or a development private key: those have their own, audited paths.
"""

from __future__ import annotations

from typing import Any

from chinwag.server.storage.records import AppRecord, KeyRecord

__all__ = ["app_json", "key_json"]


def app_json(app: AppRecord) -> dict[str, Any]:
    return {
        "app_id": app.id,
        "name": app.name,
        "environment": app.environment,
        "session_lifetime": app.session_lifetime,
        "require_nonce": app.require_nonce,
        "max_token_age": app.max_token_age,
        "allow_anonymous": app.allow_anonymous,
        "conversation_policy": app.conversation_policy,
        "created_at": app.created_at,
        "updated_at": app.updated_at,
    }


def key_json(key: KeyRecord) -> dict[str, Any]:
    """A key as listed: never its secret or private key."""
    return {
        "kid": key.kid,
        "app_id": key.app_id,
        "alg": key.alg,
        "enabled": key.enabled,
        "development": key.development,
        "created_at": key.created_at,
    }
