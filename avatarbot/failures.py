"""Why a job failed, as a typed kind, and the one mapping from client errors to it.

The store keeps a kind's *value*; the Discord layer picks the member's words by
the member. A new exception class in :mod:`avatar_api.exceptions` maps to its
parent's kind until it gets a line of its own in ``_KIND_OF_ERROR``.
"""

from __future__ import annotations

from enum import StrEnum

from avatar_api.exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    AvatarAPIError,
    BadRequestError,
    ConnectionLostError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    UnexpectedResponseError,
)


class FailureKind(StrEnum):
    BAD_REQUEST = "bad_request"
    AUTHENTICATION = "authentication"
    PERMISSION_DENIED = "permission_denied"
    NOT_FOUND = "not_found"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    API_STATUS = "api_status"
    CONNECTION = "connection"
    MAYBE_CREATED = "maybe_created"
    """The create was sent and no answer came: never re-sent, it may or may not exist."""
    CONNECTION_LOST = "connection_lost"
    """The connection broke after the create was sent: never re-sent, it may or may not exist."""
    UNEXPECTED_RESPONSE = "unexpected_response"
    INTERRUPTED = "interrupted"
    """The bot stopped with the job queued (never sent) or running (may or may not exist)."""
    SERVER_LEFT = "server_left"
    INTERNAL = "internal"


_KIND_OF_ERROR: dict[type[AvatarAPIError], FailureKind] = {
    BadRequestError: FailureKind.BAD_REQUEST,
    AuthenticationError: FailureKind.AUTHENTICATION,
    PermissionDeniedError: FailureKind.PERMISSION_DENIED,
    NotFoundError: FailureKind.NOT_FOUND,
    RateLimitError: FailureKind.RATE_LIMITED,
    ServerError: FailureKind.SERVER_ERROR,
    APIStatusError: FailureKind.API_STATUS,
    APITimeoutError: FailureKind.MAYBE_CREATED,
    ConnectionLostError: FailureKind.CONNECTION_LOST,
    APIConnectionError: FailureKind.CONNECTION,
    UnexpectedResponseError: FailureKind.UNEXPECTED_RESPONSE,
}


def failure_kind(error: AvatarAPIError) -> FailureKind:
    """The kind of the error's class, or of its nearest mapped base class."""
    for cls in type(error).__mro__:
        kind = _KIND_OF_ERROR.get(cls)
        if kind is not None:
            return kind
    return FailureKind.INTERNAL
