"""Bot identities: users the app's server creates and speaks as, marked ``bot: true``.

A bot is an ordinary user row with ``bot`` set, so it joins conversations and sends
messages through the same rules as anyone; its profile and every message it sends say
``bot: true`` so no person mistakes it for one. Creating a bot is idempotent by user id:
the same id again updates the profile fields given (the others stay); an id a person
already uses is 409 ``id_in_use`` (a person never silently becomes a bot). A profile
change goes through :func:`~chinwag.server.handlers.identities.apply_profile`, as a
person's does, so those who share a conversation with the bot hear ``identity.updated``
and their devices stop showing the old name.
"""

from __future__ import annotations

from chinwag.core.errors import IdInUse
from chinwag.core.identity_tokens import is_http_url
from chinwag.core.ids import has_control, user_id_problem
from chinwag.server.handlers.actors import AuditHook, FanoutCharge, audited
from chinwag.server.handlers.conversations import invalid
from chinwag.server.handlers.identities import apply_profile, charge_profile_change, user_json
from chinwag.server.services import Services
from chinwag.server.storage import users as user_store

__all__ = ["MAX_AVATAR_URL", "MAX_DISPLAY_NAME", "put_bot"]

MAX_DISPLAY_NAME = 128
MAX_AVATAR_URL = 1024


_LIMITS = {"display_name": MAX_DISPLAY_NAME, "avatar_url": MAX_AVATAR_URL}


def _check_profile(profile: dict[str, str | None]) -> None:
    for name, value in profile.items():
        if name not in _LIMITS:
            raise invalid(name, "expected display_name or avatar_url")
        if value is not None and not 1 <= len(value) <= _LIMITS[name]:
            raise invalid(name, f"expected 1 to {_LIMITS[name]} characters")
        if value is not None and has_control(value):
            # As PATCH …/users: a name with a newline or an escape sequence would be shown
            # as it is in every participant's list and terminal.
            raise invalid(name, "must not contain control characters")
    avatar_url = profile.get("avatar_url")
    if avatar_url is not None and not is_http_url(avatar_url):
        raise invalid("avatar_url", "expected an http(s) URL")


async def put_bot(
    services: Services,
    app_id: str,
    user_id: str,
    profile: dict[str, str | None],
    *,
    audit: AuditHook | None = None,
    charge: FanoutCharge | None = None,
) -> tuple[dict[str, object], bool]:
    """Create the bot ``user_id`` or update its profile; returns (profile, created).
    ``charge``: the platform key's recipients budget, for an update's ``identity.updated``.

    ``profile`` holds only the fields the caller gave (``None`` clears one): an update
    leaves the others as they were, so a backend that only changes the avatar does not
    wipe the name it set before.
    """
    problem = user_id_problem(user_id)
    if problem is not None:
        raise invalid("user_id", f"the user id {problem}")
    _check_profile(profile)
    if charge is not None:
        async with services.db.read() as conn:
            existing = await user_store.get_user(conn, app_id, user_id)
        if existing is not None and existing.bot:
            await charge_profile_change(services, existing, profile, charge)
    now = services.now()
    async with services.db.transaction() as tx:
        found = await user_store.get_user(tx.conn, app_id, user_id)
        if found is not None and not found.bot:
            raise IdInUse("That user id belongs to a user who is not a bot.")
        if found is None:
            user = await user_store.insert_user(
                tx.conn, app_id=app_id, user_id=user_id, anonymous=False,
                profile=profile, now=now, bot=True,
            )  # fmt: skip
        else:
            user = await apply_profile(services, tx, found, profile)
        await audited(tx, audit)
    return user_json(user, private=False), found is None
