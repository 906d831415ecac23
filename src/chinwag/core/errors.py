"""chinwag's errors, one tree, each with a stable id.

::

    ChinwagError                       (status, ErrorId, message, data)
    ├── InvalidRequest                 400 / 422  invalid_request
    │   └── ProtocolViolation                     a WebSocket frame breaks core/protocol.py
    │       └── MalformedFrame                    not even a JSON object: the socket ends (4400)
    ├── PayloadTooLarge                413        payload_too_large
    ├── MessageTooLarge                413        message_too_large
    ├── MetadataTooLarge               413        metadata_too_large (data.max_bytes)
    ├── AuthenticationRequired         401        authentication_required (data.nonce)
    ├── InvalidIdentityToken           401        invalid_identity_token (data.reason)
    ├── Forbidden                      403
    │   ├── AnonymousNotAllowed                   anonymous_not_allowed
    │   ├── SampleProviderForbidden               sample_provider_forbidden
    │   ├── ParticipantsNotAllowed                participants_not_allowed
    │   ├── ParticipantsBlocked                   participants_blocked
    │   ├── AccessDenied                          access_denied
    │   ├── UserSuspended                         user_suspended
    │   └── AppSuspended                          app_suspended
    ├── NotFound                       404        not_found
    │   └── AppNotFound                           app_not_found
    ├── Conflict                       409        conflict (data = the existing object)
    │   └── IdInUse                               id_in_use
    ├── RateLimited                    429        rate_limited (retry_after)
    └── ServiceUnavailable             503        service_unavailable

Every error is the client's to fix except ``ServiceUnavailable``. Messages say what was
expected and what came instead; they never echo secrets or large inputs back.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

__all__ = [
    "AccessDenied",
    "AnonymousNotAllowed",
    "AppNotFound",
    "AppSuspended",
    "AuthenticationRequired",
    "ChinwagError",
    "Conflict",
    "ErrorId",
    "Forbidden",
    "IdInUse",
    "InvalidIdentityToken",
    "InvalidRequest",
    "MalformedFrame",
    "MessageTooLarge",
    "MetadataTooLarge",
    "NotFound",
    "ParticipantsBlocked",
    "ParticipantsNotAllowed",
    "PayloadTooLarge",
    "ProtocolViolation",
    "RateLimited",
    "SampleProviderForbidden",
    "ServiceUnavailable",
    "TokenRejection",
    "UserSuspended",
]


class ErrorId(StrEnum):
    INVALID_REQUEST = "invalid_request"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    MESSAGE_TOO_LARGE = "message_too_large"
    METADATA_TOO_LARGE = "metadata_too_large"
    AUTHENTICATION_REQUIRED = "authentication_required"
    INVALID_IDENTITY_TOKEN = "invalid_identity_token"
    ANONYMOUS_NOT_ALLOWED = "anonymous_not_allowed"
    SAMPLE_PROVIDER_FORBIDDEN = "sample_provider_forbidden"
    PARTICIPANTS_NOT_ALLOWED = "participants_not_allowed"
    PARTICIPANTS_BLOCKED = "participants_blocked"
    ACCESS_DENIED = "access_denied"
    USER_SUSPENDED = "user_suspended"
    APP_SUSPENDED = "app_suspended"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    APP_NOT_FOUND = "app_not_found"
    CONFLICT = "conflict"
    ID_IN_USE = "id_in_use"
    RATE_LIMITED = "rate_limited"
    SERVICE_UNAVAILABLE = "service_unavailable"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    INTERNAL_ERROR = "internal_error"


class TokenRejection(StrEnum):
    """Documented values of ``data.reason`` on ``invalid_identity_token``.

    Every key and signature failure (unknown ``kid``, disabled key, algorithm mismatch,
    a development key on a production app, bad signature) shares ``signature_invalid`` so
    the answer is no oracle; the precise cause is only logged server-side.
    """

    TOKEN_TOO_LARGE = "token_too_large"
    MALFORMED = "malformed"
    UNSUPPORTED_HEADER = "unsupported_header"
    SIGNATURE_INVALID = "signature_invalid"
    CLAIM_MISSING = "claim_missing"
    CLAIM_INVALID = "claim_invalid"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    ISSUED_IN_FUTURE = "issued_in_future"
    TOO_OLD = "too_old"
    ISSUER_MISMATCH = "issuer_mismatch"
    AUDIENCE_MISMATCH = "audience_mismatch"
    NONCE_REQUIRED = "nonce_required"
    NONCE_NOT_FOUND = "nonce_not_found"
    NONCE_EXPIRED = "nonce_expired"
    NONCE_USED = "nonce_used"
    JTI_USED = "jti_used"
    USER_CONFLICT = "user_conflict"


class ChinwagError(Exception):
    """Base of every error chinwag raises on purpose."""

    status: int = 400
    error_id: ErrorId = ErrorId.INVALID_REQUEST
    default_message: str = "The request could not be processed."

    def __init__(self, message: str | None = None, *, data: dict[str, Any] | None = None) -> None:
        self.message = message or self.default_message
        self.data: dict[str, Any] = dict(data or {})
        super().__init__(self.message)

    def to_json(self) -> dict[str, Any]:
        return {"error": {"id": str(self.error_id), "message": self.message, "data": self.data}}


class InvalidRequest(ChinwagError):
    status = 400
    error_id = ErrorId.INVALID_REQUEST

    def __init__(
        self,
        message: str | None = None,
        *,
        data: dict[str, Any] | None = None,
        status: int = 400,
    ) -> None:
        super().__init__(message, data=data)
        self.status = status

    @classmethod
    def of_property(cls, prop: str, problem: str) -> InvalidRequest:
        """422 naming the request property at fault (``data.property``), the shape every
        handler's own refusal of a field takes (the schema's 422 names it too)."""
        return cls(f"Invalid {prop}: {problem}.", status=422, data={"property": prop})


class ProtocolViolation(InvalidRequest):
    """A WebSocket frame that does not follow :mod:`chinwag.core.protocol`.

    ``request_id`` is the frame's own, when it carried a valid one, so the answer can name
    the request it refuses; the message says what was expected and what came.
    """

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


class MalformedFrame(ProtocolViolation):
    """Not a JSON object in a text frame: nothing in it can be answered, so the connection
    cannot go on (the server closes with 4400)."""


class PayloadTooLarge(ChinwagError):
    status = 413
    error_id = ErrorId.PAYLOAD_TOO_LARGE
    default_message = "The request body is larger than this server accepts."


class MessageTooLarge(ChinwagError):
    status = 413
    error_id = ErrorId.MESSAGE_TOO_LARGE
    default_message = "The message is larger than this server accepts."


class MetadataTooLarge(ChinwagError):
    """A conversation's metadata (or one change to it) over the server's byte budget."""

    status = 413
    error_id = ErrorId.METADATA_TOO_LARGE
    default_message = "The conversation metadata is larger than this server accepts."


class AuthenticationRequired(ChinwagError):
    status = 401
    error_id = ErrorId.AUTHENTICATION_REQUIRED
    default_message = "A valid session token is required."


class InvalidIdentityToken(ChinwagError):
    status = 401
    error_id = ErrorId.INVALID_IDENTITY_TOKEN

    def __init__(
        self,
        reason: TokenRejection,
        message: str,
        *,
        detail: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        merged = {"reason": str(reason), **(data or {})}
        super().__init__(message, data=merged)
        self.reason = reason
        # Internal-only cause (never sent to clients): which key check failed, etc.
        self.detail = detail or message


class Forbidden(ChinwagError):
    status = 403
    error_id = ErrorId.FORBIDDEN
    default_message = "This action is not allowed."


class AnonymousNotAllowed(Forbidden):
    error_id = ErrorId.ANONYMOUS_NOT_ALLOWED
    default_message = "This app does not allow anonymous users."


class SampleProviderForbidden(Forbidden):
    error_id = ErrorId.SAMPLE_PROVIDER_FORBIDDEN
    default_message = (
        "The sample identity provider signs tokens for anyone and is refused for production apps."
    )


class ParticipantsNotAllowed(Forbidden):
    """The app's conversation policy refuses these participants. One answer whether or not
    the named users exist, so it tells nothing about who does."""

    error_id = ErrorId.PARTICIPANTS_NOT_ALLOWED
    default_message = "This app does not let you start a conversation with these participants."


class ParticipantsBlocked(Forbidden):
    """One of the people named blocked another of them. The same answer whichever of them
    blocked whom, so it never says who did."""

    error_id = ErrorId.PARTICIPANTS_BLOCKED
    default_message = "A block between these participants prevents this conversation."


class AccessDenied(Forbidden):
    error_id = ErrorId.ACCESS_DENIED
    default_message = "You are no longer a participant of this conversation."


class UserSuspended(Forbidden):
    """The app suspended this user: no new session, whatever token they bring."""

    error_id = ErrorId.USER_SUSPENDED
    default_message = "This user is suspended and cannot sign in."


class AppSuspended(Forbidden):
    """The app is suspended: no sign-ins and no requests until it is unsuspended."""

    error_id = ErrorId.APP_SUSPENDED
    default_message = "This app is suspended."


class NotFound(ChinwagError):
    status = 404
    error_id = ErrorId.NOT_FOUND
    default_message = "Not found."


class AppNotFound(NotFound):
    error_id = ErrorId.APP_NOT_FOUND
    default_message = "No app with that id."


class Conflict(ChinwagError):
    status = 409
    error_id = ErrorId.CONFLICT
    default_message = "The request conflicts with an existing object."


class IdInUse(Conflict):
    error_id = ErrorId.ID_IN_USE
    default_message = "That id is already used by a different object."


class RateLimited(ChinwagError):
    status = 429
    error_id = ErrorId.RATE_LIMITED
    default_message = "Too many requests; retry later."

    def __init__(self, retry_after: float, message: str | None = None) -> None:
        super().__init__(message, data={"retry_after": retry_after})
        self.retry_after = retry_after


class ServiceUnavailable(ChinwagError):
    status = 503
    error_id = ErrorId.SERVICE_UNAVAILABLE
    default_message = "The service is temporarily unavailable; retry with back-off."
