"""Async client for agent.ai's "[PA1] Create Photo Avatar" action."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import aiohttp

from .exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    ConnectionLostError,
    UnexpectedResponseError,
    ValidationError,
    make_status_error,
    redact_excerpt,
)
from .models import AvatarRequest, AvatarResult, RateLimitInfo

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api-lr.agent.ai/v1"
ACTION_PATH = "/action/heygen_photo_avatar_create_avatar_action"
DEFAULT_TIMEOUT = 90.0  # seconds for one agent.ai answer (AGENT_AI_TIMEOUT)
MAX_RESPONSE_BYTES = 1024 * 1024
RETRYABLE_STATUSES = frozenset({408, 429})
USER_AGENT = "AvatarBot/0.1 (+aiohttp)"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries with exponential back-off and "equal" jitter (half fixed, half random).

    Retried: failures before the request left (connect errors, DNS, refused), 408, 429
    and 5xx (HTTP or action status). Never retried: any other 4xx, answers this client
    cannot read, and a request that left without a whole answer coming back (timed out,
    or the connection broke): agent.ai may have created the avatar, and a second request
    would spend a second credit.
    """

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0

    def should_retry(self, error: APIError, attempt: int) -> bool:
        return attempt < self.max_retries and is_retryable(error)

    def delay(self, error: APIError, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt + 1``."""
        if error.retry_after is not None:
            return min(error.retry_after, self.max_retry_after)
        backoff = min(self.initial_delay * 2**attempt, self.max_delay)
        return random.uniform(backoff / 2, backoff)


def is_retryable(error: APIError) -> bool:
    if isinstance(error, APIConnectionError):
        return True
    if isinstance(error, APIStatusError):
        status = error.status if error.status is not None else error.action_status
        return status is not None and (status in RETRYABLE_STATUSES or status >= 500)
    return False


def timeout_from_text(value: str) -> float:
    """``AGENT_AI_TIMEOUT`` as seconds (blank: the default); ValueError unless positive."""
    value = value.strip()
    if not value:
        return DEFAULT_TIMEOUT
    seconds = float(value)
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"not a positive number of seconds: {value!r}")
    return seconds


class AvatarClient:
    """Creates photo avatars. A ``session`` made here (none passed in) is closed by close()."""

    def __init__(
        self,
        token: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        session: aiohttp.ClientSession | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        if not token or token != token.strip() or any(c.isspace() for c in token):
            raise ValidationError("the agent.ai token is empty or holds whitespace", field="token")
        self._token = token
        self._url = base_url.rstrip("/") + ACTION_PATH
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retry = retry or RetryPolicy()
        self._max_response_bytes = max_response_bytes

    def __repr__(self) -> str:
        return f"AvatarClient(url={self._url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def create_avatar(
        self,
        request: AvatarRequest,
        *,
        before_attempt: Callable[[int], Awaitable[None]] | None = None,
    ) -> AvatarResult:
        """Send the request, retrying what the policy allows; raise an :class:`APIError`.

        ``before_attempt(n)`` is awaited right before attempt ``n`` (0 first) is sent,
        after the body is built and any back-off: a caller that shares a request
        budget counted at send time (the bot's queue) takes its slot there.
        """
        body = await _encode_body(request)
        attempt = 0
        while True:
            try:
                if before_attempt is not None:
                    await before_attempt(attempt)
                return await self._attempt(body, request.output_variable_name)
            except APIError as error:
                if not self._retry.should_retry(error, attempt):
                    raise
                delay = self._retry.delay(error, attempt)
                attempt += 1
                log.warning(
                    "agent.ai attempt %d failed (%s); retrying in %.1fs",
                    attempt,
                    type(error).__name__,
                    delay,
                )
                await asyncio.sleep(delay)

    async def _attempt(self, body: bytes, output_variable_name: str) -> AvatarResult:
        """One request, bounded as a whole by the timeout (connect, send, answer)."""
        session = self._get_session()
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        loop = asyncio.get_running_loop()
        started = loop.time()
        # Counts the body bytes handed to the kernel: more than none means agent.ai may
        # have the whole request, whatever breaks afterwards.
        upload = aiohttp.UploadTracker()
        try:
            async with session.post(
                self._url, data=body, headers=headers, timeout=self._timeout, upload_tracker=upload
            ) as response:
                raw = await self._read_limited(response)
                return self._parse(response.status, response.headers, raw, output_variable_name)
        except (TimeoutError, aiohttp.ClientError) as error:
            raise self._transport_error(
                error, sent=upload.bytes_written > 0, elapsed=loop.time() - started
            ) from None

    def _transport_error(self, error: Exception, *, sent: bool, elapsed: float) -> APIError:
        """What a failed attempt means: retryable if nothing left, ambiguous if it did."""
        cause = type(error).__name__
        if not sent:
            when = " in time" if isinstance(error, TimeoutError) else ""
            return APIConnectionError(f"could not reach agent.ai{when} ({cause})")
        if isinstance(error, TimeoutError):
            return APITimeoutError(
                f"agent.ai did not answer within {self._timeout.total:g} s; the avatar may or "
                "may not have been created, so the request was not sent again",
                elapsed=elapsed,
                cause=cause,
            )
        return ConnectionLostError(
            f"the connection to agent.ai broke after the request was sent ({cause}); the "
            "avatar may or may not have been created, so the request was not sent again",
            elapsed=elapsed,
            cause=cause,
        )

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            if not self._owns_session:
                raise APIConnectionError("the HTTP session was closed")
            self._session = aiohttp.ClientSession()
        return self._session

    async def _read_limited(self, response: aiohttp.ClientResponse) -> bytes:
        declared = response.content_length
        if declared is not None and declared > self._max_response_bytes:
            raise UnexpectedResponseError(
                f"agent.ai's answer is too large ({declared} bytes)", status=response.status
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > self._max_response_bytes:
                raise UnexpectedResponseError(
                    f"agent.ai's answer is larger than {self._max_response_bytes} bytes",
                    status=response.status,
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _parse(
        self,
        http_status: int,
        headers: Any,
        raw: bytes,
        output_variable_name: str,
    ) -> AvatarResult:
        rate_limit = RateLimitInfo.from_headers(headers)
        excerpt = redact_excerpt(raw.decode("utf-8", "replace"), secrets=(self._token,))
        if http_status >= 400:
            raise make_status_error(
                http_status,
                action_level=False,
                retry_after=rate_limit.retry_after,
                body_excerpt=excerpt,
            )
        data = _load_json_object(raw, http_status, excerpt)
        action_status = data.get("status")
        if isinstance(action_status, int) and not isinstance(action_status, bool):
            if action_status >= 400:
                raise make_status_error(
                    action_status,
                    action_level=True,
                    retry_after=rate_limit.retry_after,
                    body_excerpt=excerpt,
                )
        elif action_status is not None:
            raise UnexpectedResponseError(
                "agent.ai's answer has a non-numeric status",
                status=http_status,
                body_excerpt=excerpt,
            )
        return AvatarResult.from_response(
            data,
            output_variable_name=output_variable_name,
            rate_limit=rate_limit,
            excerpt=excerpt,
        )


def _load_json_object(raw: bytes, http_status: int, excerpt: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        raise UnexpectedResponseError(
            f"agent.ai's answer is not JSON: {excerpt or '(empty)'}",
            status=http_status,
            body_excerpt=excerpt,
        ) from None
    if not isinstance(data, dict):
        raise UnexpectedResponseError(
            f"agent.ai's answer is not a JSON object: {excerpt}",
            status=http_status,
            body_excerpt=excerpt,
        )
    return data


async def _encode_body(request: AvatarRequest) -> bytes:
    """The JSON body. Upload bodies hold megabytes of base64, so they are built off the loop."""
    if request.photos:
        return await asyncio.to_thread(request.to_body)
    return request.to_body()
