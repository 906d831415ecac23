"""Identifier types and their syntax rules.

NewTypes keep ids from being swapped by accident (a conversation id where a message id was
meant). The validators are byte-exact: user ids are opaque and never normalised, so two
spellings can never collapse into one account.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from typing import NewType

__all__ = [
    "AppId",
    "ConversationId",
    "KeyId",
    "MessageId",
    "SessionId",
    "StreamPos",
    "UserId",
    "has_control",
    "is_valid_kid",
    "is_valid_uuid",
    "unstorable",
    "user_id_problem",
]

AppId = NewType("AppId", str)
KeyId = NewType("KeyId", str)
UserId = NewType("UserId", str)
SessionId = NewType("SessionId", str)
ConversationId = NewType("ConversationId", str)
MessageId = NewType("MessageId", str)
StreamPos = NewType("StreamPos", int)

MAX_USER_ID_LENGTH = 256
_KID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def has_control(value: str) -> bool:
    """Whether ``value`` holds a control character, NUL or a lone surrogate (which no
    database should be asked to store as text: PostgreSQL refuses NUL outright)."""
    return any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value)


def unstorable(value: str) -> bool:
    """Whether ``value`` holds NUL or a lone surrogate, which no database stores as text.
    (Other control characters are stored; the CLI escapes them when it shows them.)"""
    return any(ch == "\x00" or unicodedata.category(ch) == "Cs" for ch in value)


def user_id_problem(value: object) -> str | None:
    """Return why ``value`` is not an acceptable user id, or None when it is."""
    if not isinstance(value, str):
        return "must be a string"
    if not 1 <= len(value) <= MAX_USER_ID_LENGTH:
        return f"must be 1 to {MAX_USER_ID_LENGTH} characters"
    for ch in value:
        category = unicodedata.category(ch)
        if category in ("Cc", "Cs"):
            return "must not contain control characters, NUL or lone surrogates"
    return None


def is_valid_kid(value: object) -> bool:
    return isinstance(value, str) and _KID.fullmatch(value) is not None


def is_valid_uuid(value: object) -> bool:
    """Canonical lower-case hyphenated UUID text only (one spelling per id)."""
    if not isinstance(value, str) or _UUID.fullmatch(value) is None:
        return False
    return str(uuid.UUID(value)) == value
