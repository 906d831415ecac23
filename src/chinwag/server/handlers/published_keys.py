"""Sign-in's view of an app's JWKS: a key from the cache, or a request to fetch first.

Verification stays pure: ``core.identity_tokens`` is handed a key, never a URL. Finding
that key may need the network, which must never happen inside the sign-in transaction
(on SQLite it holds the whole database), so the lookup inside it only reads the cache and
raises :class:`FetchJwksFirst` when a fetch is due; ``auth.create_session`` fetches outside
and tries once more.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.core.identity_tokens import TokenKey
from chinwag.server.jwks import FETCH
from chinwag.server.services import Services
from chinwag.server.storage import jwks as jwks_store

__all__ = ["FetchJwksFirst", "published_key"]


class FetchJwksFirst(Exception):
    """The token's key may be in the app's JWKS, which must be fetched first."""

    def __init__(self, app_id: str, source: jwks_store.JwksSource) -> None:
        super().__init__(app_id)
        self.app_id = app_id
        self.source = source


async def published_key(
    services: Services, conn: AsyncConnection, app_id: str, kid: str, *, may_fetch: bool
) -> TokenKey | None:
    """The key ``kid`` from the app's JWKS (asked only when no uploaded key has that kid,
    so an uploaded key always wins). A JWKS key is never a development key."""
    source = await jwks_store.get_jwks_source(conn, app_id)
    if source is None:
        return None
    found = services.jwks.lookup(app_id, source, kid, now=services.now())
    if found is FETCH:
        if may_fetch:
            raise FetchJwksFirst(app_id, source)
        return None
    if found is None:
        return None
    return TokenKey(kid=kid, material=found, enabled=True, development=False)
