"""The SDK's public surface is exactly what `chinwag.client` exports; changing it is a
decision, so this test names every export."""

from __future__ import annotations

import chinwag.client

EXPORTED = {
    "LOGIN_REQUEST_MIME_TYPE",
    "STOP",
    "AlreadyAuthenticated",
    "Announcement",
    "AnonymousData",
    "AuthState",
    "AuthenticationStopped",
    "Backoff",
    "ChallengeHandler",
    "Client",
    "ClientError",
    "ClientEvent",
    "ConnectionState",
    "Conversation",
    "HistoryPolicy",
    "IllegalTransition",
    "Message",
    "MessagePart",
    "MessageRejected",
    "MessageState",
    "NotAuthenticated",
    "OfflineError",
    "Receipt",
    "ServerError",
    "SessionRevoked",
    "StopAuthentication",
    "Suspended",
    "SyncPolicy",
    "SyncProgress",
    "TokenProvider",
    "Typing",
    "TypingState",
    "UsageError",
    "User",
}


def test_exported_names_are_pinned() -> None:
    assert set(chinwag.client.__all__) == EXPORTED
    for name in EXPORTED:
        assert hasattr(chinwag.client, name)


def test_login_request_mime_type() -> None:
    assert chinwag.client.LOGIN_REQUEST_MIME_TYPE == "application/vnd.chinwag.login-request+json"
