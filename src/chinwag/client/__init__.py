"""The chinwag Python client SDK (asyncio).

Everything an app needs is exported here; the submodules are implementation. See
docs/sdk.md for the three ways to sign in (challenge, token provider, log-in JWT).
"""

from chinwag.client.auth import STOP, ChallengeHandler, StopAuthentication, TokenProvider
from chinwag.client.client import Client
from chinwag.client.emitter import ClientEvent
from chinwag.client.errors import (
    AlreadyAuthenticated,
    AuthenticationStopped,
    ClientError,
    IllegalTransition,
    MessageRejected,
    NotAuthenticated,
    OfflineError,
    ServerError,
    SessionRevoked,
    Suspended,
    UsageError,
)
from chinwag.client.models import (
    LOGIN_REQUEST_MIME_TYPE,
    Announcement,
    AnonymousData,
    Conversation,
    Message,
    MessagePart,
    MessageState,
    Receipt,
    Typing,
    User,
)
from chinwag.client.sync import SyncProgress
from chinwag.core.backoff import Backoff
from chinwag.core.client_states import AuthState, ConnectionState
from chinwag.core.sync_cursor import HistoryPolicy, SyncPolicy
from chinwag.core.typing import TypingState

__all__ = [
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
]
