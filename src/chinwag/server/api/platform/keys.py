"""/v1/platform/apps/{app_id}/keys: the keys an app's backend signs identity tokens with.

Register a public key (rotation without downtime: add the new key, switch the backend to
it, disable the old one), generate a pair (the private key is in the answer, once) or an
HS256 secret, disable, enable, delete. Reading an HS256 secret again needs an admin key and
is audited: chinwag must keep that secret to verify with, so it is the one stored secret
the API can show.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from chinwag.server.api.deps import ServicesDep
from chinwag.server.api.platform.auth import Platform, require_admin, require_app_access
from chinwag.server.api.platform.common import PREFIX, READ_ERRORS, WRITE_ERRORS, audited
from chinwag.server.api.platform.models import (
    Key,
    KeyGenerate,
    KeyList,
    KeyRegister,
    KeySecret,
    key_view,
)
from chinwag.server.api.responses import JSON
from chinwag.server.handlers import apps as handlers
from chinwag.server.services import Services

__all__ = ["router"]

router = APIRouter(prefix=f"{PREFIX}/apps/{{app_id}}/keys", tags=["platform: keys"])


@router.get("", response_model=KeyList, responses=READ_ERRORS)
async def list_keys(app_id: str, caller: Platform, services: ServicesDep) -> JSON:
    require_app_access(caller, app_id)
    return JSON({"keys": [key_view(k) for k in await handlers.list_keys(services, app_id)]})


@router.post("", status_code=201, response_model=Key, responses=WRITE_ERRORS)
async def register_key(
    app_id: str, body: KeyRegister, caller: Platform, services: ServicesDep, request: Request
) -> JSON:
    """Register a public key (PEM or JWK); ``alg`` is inferred when the key says it."""
    require_app_access(caller, app_id)
    new = await handlers.add_public_key(services, app_id, body.public_key, body.alg, body.kid)
    target = f"apps/{app_id}/keys/{new.record.kid}"
    await audited(request, caller, "key.register", target, {"alg": new.record.alg})
    return JSON(key_view(new.record), status_code=201)


@router.post("/generate", status_code=201, response_model=Key, responses=WRITE_ERRORS)
async def generate_key(
    app_id: str, body: KeyGenerate, caller: Platform, services: ServicesDep, request: Request
) -> JSON:
    """A key pair (``private_key_pem`` in this answer only) or an HS256 ``secret``."""
    require_app_access(caller, app_id)
    if body.kind == "hmac_secret":
        new = await handlers.add_secret(services, app_id)
    else:
        new = await handlers.generate_key(services, app_id, body.alg)
    view = {**key_view(new.record), "private_key_pem": new.private_key_pem, "secret": new.secret}
    target = f"apps/{app_id}/keys/{new.record.kid}"
    await audited(request, caller, f"key.generate.{body.kind}", target, {"alg": new.record.alg})
    return JSON(view, status_code=201)


@router.get("/{kid}/secret", response_model=KeySecret, responses=READ_ERRORS)
async def read_secret(
    app_id: str, kid: str, caller: Platform, services: ServicesDep, request: Request
) -> JSON:
    """An HS256 key's secret (admin key only; every read is in the audit log)."""
    require_app_access(caller, app_id)
    require_admin(caller, "Reading an HMAC secret")
    record = await handlers.get_secret(services, app_id, kid)
    await audited(request, caller, "key.secret_read", f"apps/{app_id}/keys/{kid}")
    return JSON({"kid": record.kid, "alg": record.alg, "secret": record.secret})


async def _set_enabled(
    app_id: str, kid: str, enabled: bool, caller: Platform, services: Services, request: Request
) -> JSON:
    require_app_access(caller, app_id)
    record = await handlers.set_key_enabled(services, app_id, kid, enabled)
    action = "key.enable" if enabled else "key.disable"
    await audited(request, caller, action, f"apps/{app_id}/keys/{kid}")
    return JSON(key_view(record))


@router.post("/{kid}/disable", response_model=Key, responses=WRITE_ERRORS)
async def disable_key(
    app_id: str, kid: str, caller: Platform, services: ServicesDep, request: Request
) -> JSON:
    """Tokens signed with it are refused from now on (sessions already open stay)."""
    return await _set_enabled(app_id, kid, False, caller, services, request)


@router.post("/{kid}/enable", response_model=Key, responses=WRITE_ERRORS)
async def enable_key(
    app_id: str, kid: str, caller: Platform, services: ServicesDep, request: Request
) -> JSON:
    return await _set_enabled(app_id, kid, True, caller, services, request)


@router.delete("/{kid}", status_code=204, responses=WRITE_ERRORS)
async def delete_key(
    app_id: str, kid: str, caller: Platform, services: ServicesDep, request: Request
) -> Response:
    require_app_access(caller, app_id)
    await handlers.delete_key(services, app_id, kid)
    await audited(request, caller, "key.delete", f"apps/{app_id}/keys/{kid}")
    return Response(status_code=204)
