"""One error hierarchy for everything the avatar API client can raise.

Every message is fit to show a user: it never holds the token, a header or
photo data. Body excerpts are short and redacted (see :func:`redact_excerpt`).
A local refusal (a photo, a name) keeps its message as a :class:`~.text.LazyText`
in ``text``, so a caller can show it in the user's language.
"""

from __future__ import annotations

import re

from .text import N_, LazyText

EXCERPT_LENGTH = 200
_SECRETISH = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"
    r"|(\"?(?:token|authorization|api[_-]?key|secret|password)\"?\s*[:=]\s*\"?(?:bearer\s+)?)[^\s\",}]+"
    r"|[A-Za-z0-9+/]{64,}={0,2}"
)


def redact_excerpt(text: str, limit: int = EXCERPT_LENGTH, *, secrets: tuple[str, ...] = ()) -> str:
    """A short excerpt of a response body with known secrets and secret-looking runs replaced.

    Long base64 runs are cut too, so echoed photo data never reaches a message.
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    redacted = _SECRETISH.sub(_redaction, text)
    redacted = " ".join(redacted.split())
    return redacted if len(redacted) <= limit else redacted[: limit - 1] + "…"


def _redaction(match: re.Match[str]) -> str:
    prefix = match.group(1) or match.group(2)
    return f"{prefix}[redacted]" if prefix else "[data]"


class AvatarAPIError(Exception):
    """Base of every error the avatar API package raises."""

    def __init__(
        self,
        message: str | LazyText,
        *,
        status: int | None = None,
        action_status: int | None = None,
        retry_after: float | None = None,
        body_excerpt: str | None = None,
    ) -> None:
        self.text = message if isinstance(message, LazyText) else LazyText(message)
        self.message = str(self.text)
        super().__init__(self.message)
        self.status = status
        self.action_status = action_status
        self.retry_after = retry_after
        self.body_excerpt = body_excerpt

    def __str__(self) -> str:
        return self.message


class ValidationError(AvatarAPIError, ValueError):
    """The request was refused locally, before anything was sent."""

    def __init__(self, message: str | LazyText, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class PhotoError(ValidationError):
    """A photo cannot be used; ``photo_index`` is 1-based, as the user numbers them."""

    def __init__(
        self, message: str | LazyText, *, photo_index: int | None = None, reason: str = "invalid"
    ) -> None:
        if photo_index is not None:
            message = N_("photo {index}: {problem}", index=photo_index, problem=message)
        super().__init__(message, field="photos")
        self.photo_index = photo_index
        self.reason = reason


class APIError(AvatarAPIError):
    """agent.ai answered, or failed to answer, in a way that is not a result."""


class APIConnectionError(APIError):
    """agent.ai could not be reached: nothing of the request left this machine."""


class AmbiguousOutcomeError(APIError):
    """The request left, but no whole answer came back: the avatar may or may not exist.

    Creating an avatar spends a credit and has no idempotency key, so such a request is
    never sent again automatically. ``elapsed`` is the seconds from the start of the
    attempt to giving up; ``cause`` names what ended it (e.g. ``TimeoutError``,
    ``ServerDisconnectedError``), never a value from the request.
    """

    def __init__(self, message: str, *, elapsed: float, cause: str) -> None:
        super().__init__(message)
        self.elapsed = elapsed
        self.cause = cause


class APITimeoutError(AmbiguousOutcomeError):
    """agent.ai did not answer within the timeout after the request was sent."""


class ConnectionLostError(AmbiguousOutcomeError):
    """The connection broke after the request was sent, before the whole answer came."""


class UnexpectedResponseError(APIError):
    """agent.ai answered with a body this client cannot read as a result."""


class APIStatusError(APIError):
    """agent.ai answered with an error status: the HTTP one, or the action's own."""


class BadRequestError(APIStatusError):
    """400/422: agent.ai rejected the request's content."""


class AuthenticationError(APIStatusError):
    """401: the agent.ai token is missing, wrong or revoked."""


class PermissionDeniedError(APIStatusError):
    """403: the token may not use this action (plan, credits, or scope)."""


class NotFoundError(APIStatusError):
    """404: the action does not exist at the configured base URL."""


class RateLimitError(APIStatusError):
    """429: the token's request budget is spent; ``retry_after`` says for how long."""


class ServerError(APIStatusError):
    """5xx: agent.ai or HeyGen failed on their side."""


_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: BadRequestError,
    429: RateLimitError,
}

_STATUS_MESSAGES: dict[type[APIStatusError], str] = {
    BadRequestError: "agent.ai rejected the request",
    AuthenticationError: "agent.ai rejected the API token",
    PermissionDeniedError: "the agent.ai token may not use this action",
    NotFoundError: "the agent.ai action was not found at the configured base URL",
    RateLimitError: "agent.ai's rate limit was reached",
    ServerError: "agent.ai failed on its side",
    APIStatusError: "agent.ai answered with an error",
}


def status_error_class(status: int) -> type[APIStatusError]:
    if status in _STATUS_ERRORS:
        return _STATUS_ERRORS[status]
    if status >= 500:
        return ServerError
    return APIStatusError


def make_status_error(
    status: int,
    *,
    action_level: bool,
    retry_after: float | None = None,
    body_excerpt: str | None = None,
) -> APIStatusError:
    """The error for an HTTP status, or for an action status inside an HTTP 200."""
    cls = status_error_class(status)
    where = "action status" if action_level else "HTTP"
    message = f"{_STATUS_MESSAGES[cls]} ({where} {status})"
    if body_excerpt:
        message += f": {body_excerpt}"
    return cls(
        message,
        status=None if action_level else status,
        action_status=status if action_level else None,
        retry_after=retry_after,
        body_excerpt=body_excerpt,
    )
