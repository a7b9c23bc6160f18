"""REST under ``/api/v10``: routing, auth, rate-limit buckets, Discord's error bodies."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

API_PREFIX = "/api/v10"


class DiscordError(Exception):
    """An error answer, shaped as Discord's ``{"message", "code"[, "errors"]}``."""

    def __init__(
        self, status: int, code: int, message: str, errors: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            body["errors"] = self.errors
        return body


def unknown(what: str, code: int) -> DiscordError:
    return DiscordError(404, code, f"Unknown {what}")


UNKNOWN_CHANNEL = 10003
UNKNOWN_MESSAGE = 10008
UNKNOWN_USER = 10013
UNKNOWN_WEBHOOK = 10015
UNKNOWN_INTERACTION = 10062
UNKNOWN_COMMAND = 10063
MISSING_ACCESS = 50001
EMPTY_MESSAGE = 50006
CANNOT_DM = 50007
MISSING_PERMISSIONS = 50013
INVALID_WEBHOOK_TOKEN = 50027
INVALID_FORM_BODY = 50035
ALREADY_ACKNOWLEDGED = 40060


@dataclass
class Request:
    """A parsed REST request: route parameters, JSON body (``payload_json`` for
    multipart) and the uploaded files in form order."""

    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    json: Any
    files: list[tuple[str, bytes, str | None]]
    peer: tuple[str, int] | None
    at: float
    authorized: bool


Handler = Callable[[Request], Awaitable[tuple[int, Any]]]


@dataclass
class Route:
    method: str
    template: str
    handler: Handler
    needs_auth: bool = True
    pattern: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.template)
        self.pattern = re.compile(f"^{regex}$")

    @property
    def interaction_route(self) -> bool:
        return self.template.startswith(("/interactions/", "/webhooks/"))

    def major(self, params: dict[str, str]) -> str:
        for key in ("channel_id", "guild_id", "interaction_id"):
            if key in params:
                return params[key]
        if "interaction_token" in params:
            return params["application_id"] + params["interaction_token"]
        return ""


@dataclass(frozen=True)
class Limit:
    requests: int
    per: float


@dataclass
class Bucket:
    limit: Limit
    remaining: int
    reset_at: float
    hash: str


@dataclass
class RateLimits:
    """Discord's buckets: per route and major parameter, a fixed window from the first
    request; a global limit for the bot token that interaction routes are exempt from."""

    default: Limit = Limit(50, 1.0)
    per_route: dict[str, Limit] = field(
        default_factory=lambda: {
            "POST /channels/{channel_id}/messages": Limit(5, 5.0),
            "POST /users/@me/channels": Limit(10, 10.0),
        }
    )
    global_limit: Limit = Limit(50, 1.0)
    _buckets: dict[str, Bucket] = field(default_factory=dict)
    _global: Bucket | None = None
    hits: int = 0  # requests answered 429

    def take(self, route: Route, params: dict[str, str]) -> tuple[dict[str, str], float | None]:
        """Count one request: its headers, and ``retry_after`` if it is over a limit."""
        now = time.monotonic()
        if not route.interaction_route:
            if self._global is None or now >= self._global.reset_at:
                self._global = Bucket(
                    self.global_limit,
                    self.global_limit.requests,
                    now + self.global_limit.per,
                    "global",
                )
            if self._global.remaining <= 0:
                self.hits += 1
                return {"X-RateLimit-Global": "true", "X-RateLimit-Scope": "global"}, (
                    self._global.reset_at - now
                )
            self._global.remaining -= 1
        key = f"{route.method} {route.template}"
        limit = self.per_route.get(key, self.default)
        bucket_key = f"{key}:{route.major(params)}"
        bucket = self._buckets.get(bucket_key)
        if bucket is None or now >= bucket.reset_at:
            digest = hashlib.sha1(key.encode()).hexdigest()[:16]
            bucket = Bucket(limit, limit.requests, now + limit.per, digest)
            self._buckets[bucket_key] = bucket
        reset_after = max(bucket.reset_at - now, 0.0)
        headers = {
            "X-RateLimit-Limit": str(limit.requests),
            "X-RateLimit-Bucket": bucket.hash,
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
        }
        if bucket.remaining <= 0:
            self.hits += 1
            headers["X-RateLimit-Remaining"] = "0"
            headers["X-RateLimit-Scope"] = "user"
            return headers, reset_after
        bucket.remaining -= 1
        headers["X-RateLimit-Remaining"] = str(bucket.remaining)
        return headers, None


async def parse_body(request: web.Request) -> tuple[Any, list[tuple[str, bytes, str | None]]]:
    """JSON, or multipart with ``payload_json`` and ``files[n]`` as discord.py sends them."""
    if request.content_type.startswith("multipart/"):
        form = await request.post()
        payload = form.get("payload_json")
        body = json.loads(payload if isinstance(payload, str) else "{}")
        files: list[tuple[str, bytes, str | None]] = []
        for name, value in form.items():
            if isinstance(value, web.FileField):
                files.append((value.filename or name, value.file.read(), value.content_type))
        return body, files
    if request.can_read_body:
        raw = await request.read()
        return (json.loads(raw) if raw else None), []
    return None, []


def too_long(limit: int) -> dict[str, Any]:
    return {
        "_errors": [
            {"code": "BASE_TYPE_MAX_LENGTH", "message": f"Must be {limit} or fewer in length."}
        ]
    }


EMBED_LIMITS = {"title": 256, "description": 4096}


def message_errors(body: dict[str, Any]) -> dict[str, Any]:
    """Discord's limits: content 2,000; 10 embeds; title 256, description 4,096,
    25 fields (name 256, value 1,024), footer 2,048, author 256, 6,000 in all."""
    errors: dict[str, Any] = {}
    content = body.get("content")
    if isinstance(content, str) and len(content) > 2000:
        errors["content"] = too_long(2000)
    embeds = body.get("embeds") or []
    if len(embeds) > 10:
        errors["embeds"] = too_long(10)
    for index, embed in enumerate(embeds):
        embed_errors = _embed_errors(embed)
        if embed_errors:
            errors.setdefault("embeds", {})[str(index)] = embed_errors
    return errors


def _embed_errors(embed: dict[str, Any]) -> dict[str, Any]:
    errors: dict[str, Any] = {}
    total = 0
    for key, limit in EMBED_LIMITS.items():
        text = embed.get(key) or ""
        total += len(text)
        if len(text) > limit:
            errors[key] = too_long(limit)
    fields = embed.get("fields") or []
    if len(fields) > 25:
        errors["fields"] = too_long(25)
    for index, item in enumerate(fields):
        name, value = item.get("name") or "", item.get("value") or ""
        total += len(name) + len(value)
        if len(name) > 256 or len(value) > 1024:
            key = "name" if len(name) > 256 else "value"
            errors.setdefault("fields", {})[str(index)] = {
                key: too_long(256 if key == "name" else 1024)
            }
    footer = (embed.get("footer") or {}).get("text") or ""
    author = (embed.get("author") or {}).get("name") or ""
    total += len(footer) + len(author)
    if len(footer) > 2048:
        errors["footer"] = {"text": too_long(2048)}
    if len(author) > 256:
        errors["author"] = {"name": too_long(256)}
    if total > 6000:
        errors["_errors"] = [
            {"code": "BASE_TYPE_MAX_LENGTH", "message": "Embed size exceeds maximum size of 6000"}
        ]
    return errors
