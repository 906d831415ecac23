"""Nonces, identity tokens and sessions: the rules of signing in and out.

Order matters for security. Every pure check (token syntax, key, signature, claims, nonce
seal and age) runs before the transaction; inside it, the nonce (or ``jti``) is consumed
first, so concurrent submissions serialise on its unique key and exactly one commits. A
token that fails any check never reaches that point and so never uses up its nonce.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.core.errors import (
    AnonymousNotAllowed,
    AppNotFound,
    AppSuspended,
    AuthenticationRequired,
    ChinwagError,
    InvalidIdentityToken,
    InvalidRequest,
    SampleProviderForbidden,
    TokenRejection,
    UserSuspended,
)
from chinwag.core.identity_tokens import (
    IdentityClaims,
    ParsedToken,
    TokenKey,
    TokenPolicy,
    parse_identity_token,
    verify_identity_token,
)
from chinwag.core.ids import has_control, is_valid_uuid, user_id_problem
from chinwag.core.keys import Alg, sign_identity_token
from chinwag.core.nonces import IssuedNonce, check_nonce, issue_nonce
from chinwag.core.session_tokens import new_session_token, parse_session_token, secret_matches
from chinwag.server import metrics
from chinwag.server.handlers import suspension
from chinwag.server.handlers.apps import get_app
from chinwag.server.handlers.identities import apply_profile, user_json
from chinwag.server.handlers.published_keys import FetchJwksFirst, published_key
from chinwag.server.handlers.session_activity import touch_session
from chinwag.server.handlers.sessions import end_sessions
from chinwag.server.services import Services
from chinwag.server.storage import apps as app_store
from chinwag.server.storage import sessions as session_store
from chinwag.server.storage import users as user_store
from chinwag.server.storage.database import Transaction
from chinwag.server.storage.records import AppRecord, SessionRecord, UserRecord

__all__ = [
    "Authenticated",
    "Device",
    "NewSession",
    "authenticate",
    "create_anonymous_session",
    "create_session",
    "end_session",
    "issue_app_nonce",
    "new_nonce",
    "refuse_ended",
    "require_live_session",
    "sample_identity_token",
    "user_json",
]

log = logging.getLogger("chinwag.auth")


@dataclass(frozen=True, slots=True)
class NewSession:
    token: str
    session: SessionRecord
    user: UserRecord


@dataclass(frozen=True, slots=True)
class Authenticated:
    """The caller of an authenticated request."""

    session: SessionRecord
    user: UserRecord

    @property
    def app_id(self) -> str:
        return self.session.app_id


async def _app_exists(services: Services, app_id: str) -> bool:
    """Apps are never deleted, so an id once found is remembered (``KnownApps``) and later
    nonces for it need no database read."""
    if services.known_apps.contains(app_id):
        return True
    if not is_valid_uuid(app_id):
        return False
    async with services.db.read() as conn:
        found = await app_store.get_app(conn, app_id) is not None
    if found:
        services.known_apps.add(app_id)
    return found


def new_nonce(services: Services, app_id: str) -> IssuedNonce:
    return issue_nonce(
        app_id, secret=services.nonce_secret, now=services.now(), random=services.random(16)
    )


async def issue_app_nonce(services: Services, app_id: str) -> IssuedNonce:
    """A nonce for an existing app, else ``app_not_found``."""
    if not await _app_exists(services, app_id):
        raise AppNotFound(data={"app_id": app_id[:64]})
    return new_nonce(services, app_id)


async def _challenge(
    services: Services, app_id: str | None, ended: SessionRecord | None = None
) -> AuthenticationRequired:
    """A 401 that carries a fresh nonce when the app is known (Layer's challenge).

    ``ended`` is a session the caller proved it held (its secret matched): the answer says
    how it ended, so the device knows whether to renew it or wipe itself (``wipe``).
    """
    data: dict[str, object] = {}
    if app_id is not None and await _app_exists(services, app_id):
        nonce = new_nonce(services, app_id)
        data = {
            "nonce": nonce.value,
            "nonce_expires_at": nonce.expires_at,
            "server_time": services.now(),
        }
    if ended is not None:
        data["reason"] = "expired" if ended.revoked_at is None else ended.revoked_reason
        if ended.wipe:
            data["wipe"] = True
    return AuthenticationRequired(data=data)


async def authenticate(
    services: Services, token: str | None, *, app_hint: str | None = None
) -> Authenticated:
    parsed = parse_session_token(token) if token else None
    if parsed is None:
        raise await _challenge(services, app_hint)
    async with services.db.read() as conn:
        session = await session_store.get_session(conn, parsed.session_id)
        user = None
        if session is not None and secret_matches(session.secret_hash, parsed):
            user = await user_store.get_user_by_pk(conn, session.user_pk)
    if session is None or user is None or not secret_matches(session.secret_hash, parsed):
        raise await _challenge(services, app_hint)
    if session.revoked_at is not None or session.expires_at <= services.now():
        await suspension.refuse_if_suspended(services, session, user)
        raise await _challenge(services, session.app_id, ended=session)
    await touch_session(services, session)
    return Authenticated(session=session, user=user)


def _policy(services: Services, app: AppRecord) -> TokenPolicy:
    return TokenPolicy(
        app_id=app.id,
        production=app.production,
        require_nonce=app.require_nonce,
        max_token_age=float(app.max_token_age),
        leeway=services.settings.token_leeway_seconds,
    )


async def _app_and_claims(
    services: Services,
    conn: AsyncConnection,
    app_id: str,
    identity_token: object,
    *,
    may_fetch: bool = True,
) -> tuple[AppRecord, IdentityClaims]:
    """Read the app and the token's key, then verify (pure).

    ``app_not_found`` still wins over a malformed token: the parse error is held until the
    app is known to exist.
    """
    parsed: ParsedToken | None = None
    parse_error: InvalidIdentityToken | None = None
    try:
        parsed = parse_identity_token(identity_token)
    except InvalidIdentityToken as exc:
        parse_error = exc
    app = record = None
    if is_valid_uuid(app_id):
        if parsed is not None:
            app, record = await app_store.get_app_and_key(conn, app_id, parsed.kid)
        else:
            app = await app_store.get_app(conn, app_id)
    if app is None:
        raise AppNotFound(data={"app_id": app_id[:64]})
    if app.suspended_at is not None:
        raise AppSuspended(data={"app_id": app.id})
    if parse_error is not None:
        _log_rejection(app.id, parse_error)
        raise parse_error
    assert parsed is not None
    key = None
    if record is not None:
        key = TokenKey(
            kid=record.kid,
            material=services.keys.material(record),
            enabled=record.enabled,
            development=record.development,
        )
    else:
        key = await published_key(services, conn, app.id, parsed.kid, may_fetch=may_fetch)
    try:
        claims = verify_identity_token(
            parsed, key=key, policy=_policy(services, app), now=services.now()
        )
    except InvalidIdentityToken as exc:
        _log_rejection(app.id, exc)
        raise
    return app, claims


def _log_rejection(app_id: str, exc: InvalidIdentityToken | None) -> None:
    if exc is not None:
        log.info(
            "identity token rejected app=%s reason=%s detail=%s", app_id, exc.reason, exc.detail
        )


def _profile(claims: IdentityClaims) -> dict[str, str | None]:
    fields = {
        "display_name": claims.display_name,
        "avatar_url": claims.avatar_url,
        "email": claims.email,
        "first_name": claims.first_name,
        "last_name": claims.last_name,
    }
    return {k: v for k, v in fields.items() if v is not None}


async def _resolve_user(
    services: Services, tx: Transaction, app: AppRecord, claims: IdentityClaims
) -> UserRecord:
    now = services.now()
    profile = _profile(claims)
    user: UserRecord | None
    if claims.user_id is not None:
        user = await user_store.get_user(tx.conn, app.id, claims.user_id)
        user_id = claims.user_id
    else:
        assert claims.email is not None
        user = await user_store.find_by_email(tx.conn, app.id, claims.email)
        user_id = claims.email
        if user is None:
            user = await user_store.get_user(tx.conn, app.id, user_id)
    if user is not None and user.anonymous:
        raise InvalidIdentityToken(
            TokenRejection.USER_CONFLICT, "That user id belongs to an anonymous user of this app."
        )
    if user is None:
        return await user_store.insert_user(
            tx.conn, app_id=app.id, user_id=user_id, anonymous=False, profile=profile, now=now
        )
    if user.suspended_at is not None:
        raise UserSuspended(data={"user_id": user.user_id})
    return await apply_profile(services, tx, user, dict(profile))


@dataclass(frozen=True, slots=True)
class Device:
    """Where a sign-in comes from, as the platform API's session list shows it."""

    address: str | None = None
    label: str | None = None


async def _open_session(
    services: Services,
    tx: Transaction,
    app: AppRecord,
    user: UserRecord,
    *,
    identity_expires_at: float | None,
    device: Device | None = None,
) -> NewSession:
    now = services.now()
    expires_at = now + app.session_lifetime
    if identity_expires_at is not None:
        expires_at = min(expires_at, identity_expires_at)
    token = new_session_token(services.random(48))
    record = SessionRecord(
        id=token.session_id,
        app_id=app.id,
        user_pk=user.pk,
        secret_hash=token.secret_hash,
        created_at=now,
        expires_at=expires_at,
        revoked_at=None,
        revoked_reason=None,
        last_seen_at=now,
        address=device.address if device else None,
        device_label=device.label if device else None,
    )
    await session_store.insert_session(tx.conn, record)
    return NewSession(token=token.token, session=record, user=user)


async def create_session(
    services: Services,
    app_id: str,
    identity_token: object,
    then: Callable[[Transaction, UserRecord], Awaitable[None]] | None = None,
    device: Device | None = None,
) -> NewSession:
    """``then`` runs in the session's transaction once it is open (the anonymous upgrade).
    A suspended app or user is refused (403); the transaction rolls back, nonce and all.

    A token whose key is in the app's JWKS may need the set fetched first: the attempt is
    abandoned before anything was written, the set fetched (bounded by the fetch timeout,
    shared with concurrent sign-ins), and the sign-in tried once more without fetching.
    """
    try:
        try:
            new = await _create_session(
                services, app_id, identity_token, then, device=device, may_fetch=True
            )
        except FetchJwksFirst as need:
            await services.jwks.refresh(need.app_id, need.source, now=services.now())
            new = await _create_session(
                services, app_id, identity_token, then, device=device, may_fetch=False
            )
    except ChinwagError as refused:
        metrics.authentication(refused)
        raise
    metrics.authentication(None)
    return new


async def _create_session(
    services: Services,
    app_id: str,
    identity_token: object,
    then: Callable[[Transaction, UserRecord], Awaitable[None]] | None,
    *,
    device: Device | None,
    may_fetch: bool,
) -> NewSession:
    started = time.perf_counter()
    # One transaction for the reads and the writes: on SQLite every checkout costs more than
    # the statements. The checks between them are pure, and nothing is written until the
    # nonce is consumed, so a rejected token leaves no trace.

    async def job(tx: Transaction) -> NewSession:
        app, claims = await _app_and_claims(
            services, tx.conn, app_id, identity_token, may_fetch=may_fetch
        )
        try:
            checked = (
                check_nonce(claims.nonce, app.id, secret=services.nonce_secret, now=services.now())
                if claims.nonce is not None
                else None
            )
        except InvalidIdentityToken as exc:
            _log_rejection(app.id, exc)
            raise
        if checked is not None:
            if not await session_store.consume_nonce(
                tx.conn, key=checked.key, app_id=app.id, expires_at=checked.expires_at
            ):
                raise InvalidIdentityToken(
                    TokenRejection.NONCE_USED, "The nonce was already used; ask for a new one."
                )
        elif claims.jti is not None:
            horizon = claims.issued_at + app.max_token_age + services.settings.token_leeway_seconds
            if not await session_store.record_jti(
                tx.conn, app_id=app.id, jti=claims.jti, expires_at=float(horizon)
            ):
                raise InvalidIdentityToken(
                    TokenRejection.JTI_USED, "This token's 'jti' was already used."
                )
        user = await _resolve_user(services, tx, app, claims)
        result = await _open_session(
            services,
            tx,
            app,
            user,
            # The session ends at the token's exp, never later: the leeway only decides
            # acceptance (and exp has none, so this session is never born dead).
            identity_expires_at=(
                float(claims.expires_at) if claims.expires_at is not None else None
            ),
            device=device,
        )
        if then is not None:
            await then(tx, user)
        return result

    # Group commit (``Database.write``): sign-ins that arrive together share one transaction
    # and, with ``synchronous=FULL``, one fsync. Every refusal above comes before a write.
    result = await services.db.write(job)
    log.debug("session opened app=%s in %.1f ms", app_id, (time.perf_counter() - started) * 1e3)
    return result


async def create_anonymous_session(
    services: Services, app_id: str, device: Device | None = None
) -> NewSession:
    try:
        new = await _create_anonymous_session(services, app_id, device)
    except ChinwagError as refused:
        metrics.authentication(refused)
        raise
    metrics.authentication(None, anonymous=True)
    return new


async def _create_anonymous_session(
    services: Services, app_id: str, device: Device | None
) -> NewSession:
    app = await get_app(services, app_id)
    if app.suspended_at is not None:
        raise AppSuspended(data={"app_id": app.id})
    if not app.allow_anonymous:
        raise AnonymousNotAllowed()
    async with services.db.transaction() as tx:
        user_id = f"anon_{uuid.UUID(bytes=services.random(16), version=4).hex}"
        user = await user_store.insert_user(
            tx.conn, app_id=app.id, user_id=user_id, anonymous=True, profile={}, now=services.now()
        )
        return await _open_session(services, tx, app, user, identity_expires_at=None, device=device)


async def end_session(services: Services, caller: Authenticated, *, reason: str = "logout") -> None:
    """Revoke the session at once, tell the user's other devices, close its sockets."""
    async with services.db.transaction() as tx:
        await end_sessions(
            services,
            tx,
            app_id=caller.app_id,
            user_pk=caller.user.pk,
            session_ids=[caller.session.id],
            reason=reason,
        )


async def sample_identity_token(
    services: Services, app_id: str, user_id: str, nonce: str, display_name: str | None = None
) -> str:
    """The development-only sample identity provider: signs for anyone, so staging only.

    It refuses what ``POST /v1/sessions`` would refuse in the token it signs (a user id
    or display name with control characters): signed anyway, the caller got a 201 and a
    token that then failed as ``claim_invalid``, far from the mistake."""
    for prop, problem in (
        ("user_id", user_id_problem(user_id)),
        (
            "display_name",
            "must not contain control characters"
            if display_name and has_control(display_name)
            else None,
        ),
    ):
        if problem is not None:
            raise InvalidRequest.of_property(prop, problem)
    app = await get_app(services, app_id)
    if app.production:
        raise SampleProviderForbidden()
    async with services.db.read() as conn:
        keys = [
            k
            for k in await app_store.list_keys(conn, app.id)
            if k.development and k.enabled and k.private_key_pem
        ]
    if not keys:
        raise SampleProviderForbidden("This app has no enabled development key.")
    key = keys[0]
    now = int(services.now())
    claims: dict[str, object] = {"sub": user_id, "nce": nonce, "iat": now, "iss": app.id}
    if display_name:
        claims["display_name"] = display_name
    return sign_identity_token(
        claims, kid=key.kid, alg=Alg(key.alg), private_key_pem=key.private_key_pem
    )


async def require_live_session(conn: AsyncConnection, session_id: str, now: float) -> None:
    """Refuse a write whose session has ended, read in the write's own transaction.

    A socket authenticates once, and a revocation reaches it by doorbell, or within
    seconds by the sweep when the revoking process shares no broker (the CLI); a write
    over it in between must still be refused. One primary-key read makes it so, whichever
    process ended the session.
    """
    refuse_ended(await session_store.get_session(conn, session_id), now)


def refuse_ended(session: SessionRecord | None, now: float) -> None:
    """:func:`require_live_session` on a session already read (``None``: there is none)."""
    if session is None or session.revoked_at is not None or session.expires_at <= now:
        # Say how it ended, as the authenticating 401 does: a device racing a wiped
        # revocation must learn to wipe here, or it renews and ignores the later close.
        data: dict[str, object] = {}
        if session is not None:
            data["reason"] = "expired" if session.revoked_at is None else session.revoked_reason
            if session.wipe:
                data["wipe"] = True
        raise AuthenticationRequired("This session has ended.", data=data)
