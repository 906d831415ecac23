"""An app's JWKS URL: register (fetched and checked at once), show, remove.

Registering fetches the set before storing the URL, so a typo, an http:// URL, a redirect,
an oversized or slow endpoint, or a set with no usable key is answered right away
(``invalid_request``, 422, saying why) instead of surfacing as failed sign-ins later. The
fetched set primes this process's cache; other nodes fetch on their first sign-in.

Registering the URL that is already registered is not a no-op: every node drops its cached
copy at its next sign-in (the registration time is part of what the cache is keyed by), the
way to make a removed, leaked key stop working everywhere now rather than at expiry.

Uploaded keys keep working beside a JWKS; on a ``kid`` present in both, the uploaded key
wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chinwag.core.errors import AppNotFound, InvalidRequest, NotFound
from chinwag.core.jwks import RejectedJwk
from chinwag.core.jwks_url import check_jwks_url
from chinwag.server.handlers import audit
from chinwag.server.handlers.apps import get_app
from chinwag.server.jwks import CachedSet, JwksFetchError
from chinwag.server.services import Services
from chinwag.server.storage import apps as app_store
from chinwag.server.storage import jwks as jwks_store
from chinwag.server.storage.jwks import JwksSource

__all__ = ["JwksStatus", "jwks_status", "registered_url", "remove_jwks_url", "set_jwks_url"]


@dataclass(frozen=True, slots=True)
class JwksStatus:
    """What this process holds of an app's set (no key material, only kids and algs)."""

    app_id: str
    url: str
    keys: dict[str, str]
    rejected: tuple[RejectedJwk, ...]
    fetched_at: float | None
    expires_at: float | None
    last_error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "app_id": self.app_id,
            "url": self.url,
            "keys": [{"kid": kid, "alg": alg} for kid, alg in self.keys.items()],
            "rejected": [{"kid": r.kid, "reason": r.reason} for r in self.rejected],
            "fetched_at": self.fetched_at,
            "expires_at": self.expires_at,
            "last_error": self.last_error,
        }


def _status(app_id: str, source: JwksSource, entry: CachedSet | None) -> JwksStatus:
    held = entry.keys if entry is not None else None
    return JwksStatus(
        app_id=app_id,
        url=source.url,
        keys={kid: str(alg) for kid, alg in held.algs().items()} if held else {},
        rejected=held.rejected if held else (),
        fetched_at=entry.fetched_at if entry else None,
        expires_at=entry.expires_at if entry and entry.fetched_at is not None else None,
        last_error=entry.last_error if entry else None,
    )


async def set_jwks_url(
    services: Services, app_id: str, url: str, *, caller: Any, address: str | None = None
) -> JwksStatus:
    await get_app(services, app_id)
    check_jwks_url(url, allow_insecure=services.settings.allow_insecure_jwks)
    try:
        fetched = await services.jwks.fetcher.fetch(url)
    except JwksFetchError as exc:
        raise InvalidRequest(
            f"The JWKS at that URL cannot be used: {exc}.",
            data={"property": "jwks_url"},
            status=422,
        ) from None
    now = services.now()
    async with services.db.transaction() as tx:
        if await app_store.get_app(tx.conn, app_id) is None:
            raise AppNotFound(data={"app_id": app_id[:64]})
        await jwks_store.set_jwks_url(tx.conn, app_id, url, now)
        await audit.record(tx, caller, "app.jwks.set", f"apps/{app_id}/jwks", address)
    source = JwksSource(url, now)
    return _status(app_id, source, services.jwks.store(app_id, source, fetched, now=now))


async def jwks_status(services: Services, app_id: str) -> JwksStatus:
    await get_app(services, app_id)
    async with services.db.read() as conn:
        source = await jwks_store.get_jwks_source(conn, app_id)
    if source is None:
        raise NotFound("This app has no JWKS URL.", data={"app_id": app_id[:64]})
    return _status(app_id, source, services.jwks.status(app_id, source))


async def registered_url(services: Services, app_id: str) -> str | None:
    async with services.db.read() as conn:
        return await jwks_store.get_jwks_url(conn, app_id)


async def remove_jwks_url(
    services: Services, app_id: str, *, caller: Any, address: str | None = None
) -> bool:
    """Stop trusting the app's JWKS (at once on this node; on others at their next
    sign-in, which reads the URL). Uploaded keys are untouched. True if there was one."""
    await get_app(services, app_id)
    async with services.db.transaction() as tx:
        removed = await jwks_store.delete_jwks_url(tx.conn, app_id)
        if removed:
            await audit.record(tx, caller, "app.jwks.remove", f"apps/{app_id}/jwks", address)
    services.jwks.forget(app_id)
    return removed
