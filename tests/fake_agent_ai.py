"""A fake agent.ai served over real HTTP on 127.0.0.1.

It checks every request against the action's spec the way the real service
would (auth, path, body fields, enums, ``photos_json``), enforces the published
per-minute limit, and can be scripted to answer any error, slowly, malformed,
oversized, or by dropping the connection.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

ACTION_PATH = "/v1/action/heygen_photo_avatar_create_avatar_action"
TOKEN = "test-agent-ai-token-5f2c9d"

_ENUMS: dict[str, frozenset[str]] = {
    "source_type": frozenset({"generate", "upload"}),
    "age": frozenset({"Young Adult", "Middle-Aged", "Senior"}),
    "gender": frozenset({"Unspecified", "Male", "Female", "Non-Binary"}),
    "ethnicity": frozenset(
        {"Unspecified", "Asian", "Black", "Caucasian", "Hispanic", "Middle Eastern", "Mixed"}
    ),
    "orientation": frozenset({"square", "portrait", "landscape"}),
    "pose": frozenset({"half_body", "close_up", "full_body"}),
    "style": frozenset({"Realistic", "Artistic", "Professional"}),
}
_STRINGS = frozenset({"output_variable_name", "name", "photos_json", "appearance"})
_OUTPUT_VARIABLE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]*$")


@dataclass
class Reply:
    """One scripted answer. ``kind``: "json" (default), "raw", "reset" (drop mid-body), "hang"."""

    status: int = 200
    body: Any = None
    raw: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    kind: str = "json"


@dataclass(frozen=True)
class RecordedRequest:
    body: dict[str, Any]
    headers: Mapping[str, str]
    at: float

    @property
    def photos(self) -> list[dict[str, str]]:
        return json.loads(self.body["photos_json"]) if "photos_json" in self.body else []

    def photo_bytes(self) -> list[bytes]:
        return [base64.b64decode(p["base64"], validate=True) for p in self.photos]


class FakeAgentAI:
    def __init__(
        self,
        *,
        token: str = TOKEN,
        per_minute: int | None = None,
        window: float = 60.0,
        report_remaining: bool = True,
        keep_photos: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``per_minute`` enforces the published limit on ``clock`` (seconds; a test may
        pass a virtual one) exactly: a request is refused when ``per_minute`` accepted
        requests arrived in the ``window`` seconds up to and including its arrival
        (tests shorten the window); ``report_remaining=False`` leaves out the
        ``ratelimit-remaining`` header, so only the bot's own budget keeps it within
        the limit. ``keep_photos=False`` records upload bodies without
        their megabytes of photo data, so long runs measure the bot's memory, not the
        fake's."""
        self.token = token
        self.clock = clock
        self.window = window
        self.report_remaining = report_remaining
        self.keep_photos = keep_photos
        self.per_minute = per_minute
        self.delay = 0.0
        self.requests: list[RecordedRequest] = []
        self.arrivals: list[float] = []  # on ``clock``, every request, refused ones included
        self.answered_at: dict[str, float] = {}  # request name -> perf_counter() of the answer
        self.violations: list[str] = []
        self.rate_limited = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._script: deque[Reply] = deque()
        self._served = 0
        self._window: deque[float] = deque()
        self._runner: web.AppRunner | None = None
        self._hang = asyncio.Event()
        self.received = asyncio.Event()  # set at each recorded request; a test may clear it
        self.base_url = ""

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post(ACTION_PATH, self._handle)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self.base_url

    async def stop(self) -> None:
        self._hang.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def script(self, *replies: Reply) -> None:
        self._script.extend(replies)

    @property
    def calls(self) -> int:
        return len(self.requests)

    async def _not_found(self, request: web.Request) -> web.Response:
        return web.json_response({"error": "Not Found"}, status=404)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": "Unauthorized"}, status=401)
        if self._over_rate_limit():
            self.rate_limited += 1
            return web.json_response(
                {"error": "Too Many Requests"},
                status=429,
                headers={"Retry-After": str(max(1, round(self.window)))},
            )
        try:
            body = await request.json()
        except ValueError:
            return self._reject("body is not JSON")
        problems = check_body(body) if isinstance(body, dict) else ["body is not an object"]
        if problems:
            return self._reject("; ".join(problems))
        if not self.keep_photos and "photos_json" in body:
            body["photos_json"] = f"<{len(body['photos_json'])} characters>"
        self.requests.append(RecordedRequest(body, dict(request.headers), time.monotonic()))
        self.received.set()
        reply = self._script.popleft() if self._script else None
        await asyncio.sleep(reply.delay if reply and reply.delay else self.delay)
        self.answered_at[str(body.get("name"))] = time.perf_counter()
        return await self._render(request, reply or self._success(body))

    def _over_rate_limit(self) -> bool:
        now = self.clock()
        self.arrivals.append(now)
        if self.per_minute is None:
            return False
        while self._window and now - self._window[0] > self.window:
            self._window.popleft()
        if len(self._window) >= self.per_minute:
            return True
        self._window.append(now)
        return False

    def _reject(self, reason: str) -> web.Response:
        self.violations.append(reason)
        return web.json_response({"status": 400, "response": {"error": reason}}, status=400)

    def _success(self, body: Mapping[str, Any]) -> Reply:
        self._served += 1
        variable = body.get("output_variable_name", "avatar_result")
        result = {"group_id": f"grp_{self._served:06d}", "status": "pending"}
        headers = {"ratelimit-limit": str(self.per_minute or 20), "ratelimit-reset": "60"}
        if self.per_minute is not None and self.report_remaining:
            headers["ratelimit-remaining"] = str(self.per_minute - len(self._window))
            # Seconds until the oldest counted request leaves the window, as the service says.
            left = self.window - (self.clock() - self._window[0]) if self._window else 0.0
            headers["ratelimit-reset"] = f"{max(0.0, left):.3f}"
        return Reply(body={"status": 200, "response": {variable: result}}, headers=headers)

    async def _render(self, request: web.Request, reply: Reply) -> web.StreamResponse:
        if reply.kind == "hang":
            await self._hang.wait()
            return web.Response(status=504)
        if reply.kind == "reset":
            response = web.StreamResponse(status=200, headers={"Content-Length": "1000"})
            await response.prepare(request)
            await response.write(b'{"status": 200, "resp')
            assert request.transport is not None
            request.transport.abort()
            return response
        if reply.kind == "raw":
            return web.Response(status=reply.status, body=reply.raw or b"", headers=reply.headers)
        return web.json_response(reply.body, status=reply.status, headers=reply.headers)


def check_body(body: Mapping[str, Any]) -> list[str]:
    """Every way ``body`` breaks the action's spec; empty when it is valid."""
    problems = [
        f"unknown field {key!r}" for key in body if key not in _ENUMS and key not in _STRINGS
    ]
    for key, allowed in _ENUMS.items():
        if key in body and body[key] not in allowed:
            problems.append(f"{key} {body[key]!r} is not one of the allowed values")
    for key in _STRINGS:
        if key in body and not isinstance(body[key], str):
            problems.append(f"{key} must be a string")
    for required in ("source_type", "output_variable_name"):
        if required not in body:
            problems.append(f"{required} is required")
    if not _OUTPUT_VARIABLE.match(str(body.get("output_variable_name", ""))):
        problems.append("output_variable_name does not match the pattern")
    if body.get("source_type") == "upload":
        problems.extend(_check_photos_json(body.get("photos_json")))
    elif "photos_json" in body:
        problems.append("photos_json is only for upload mode")
    return problems


def _check_photos_json(value: Any) -> list[str]:
    if not isinstance(value, str):
        return ["photos_json is required in upload mode and must be a JSON string"]
    try:
        photos = json.loads(value)
    except ValueError:
        return ["photos_json is not valid JSON"]
    if not isinstance(photos, list) or not photos:
        return ["photos_json must be a non-empty array"]
    problems = []
    for i, photo in enumerate(photos):
        if not isinstance(photo, dict) or set(photo) != {"base64", "mimeType"}:
            problems.append(f"photo {i} must have exactly base64 and mimeType")
            continue
        if photo["mimeType"] not in {"image/jpeg", "image/png"}:
            problems.append(f"photo {i} mimeType {photo['mimeType']!r} is not JPEG or PNG")
        try:
            base64.b64decode(photo["base64"], validate=True)
        except (binascii.Error, ValueError):
            problems.append(f"photo {i} base64 is invalid")
    return problems
