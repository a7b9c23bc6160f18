"""The gateway side: one :class:`Connection` per websocket, one :class:`Session` per IDENTIFY.

A session belongs to a shard ``[id, count]`` and outlives its connection for a while
so that a RESUME can replay what it missed. Every event of a shard is sent to
every session identified on that shard, as Discord does when two processes run
the same shard (rolling restarts).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, web

from .model import shard_of

log = logging.getLogger(__name__)

try:  # discord.py prefers zstd-stream when a zstd module is installed
    from zstandard import ZstdCompressor
except ImportError:  # pragma: no cover - depends on the environment
    ZstdCompressor = None

HISTORY = 1000  # events kept per session for RESUME
GUILDS_INTENT = 1 << 0
GUILD_MEMBERS_INTENT = 1 << 1

OnSent = Callable[["Session"], None]


class Op:
    DISPATCH = 0
    HEARTBEAT = 1
    IDENTIFY = 2
    PRESENCE_UPDATE = 3
    VOICE_STATE_UPDATE = 4
    RESUME = 6
    RECONNECT = 7
    REQUEST_GUILD_MEMBERS = 8
    INVALID_SESSION = 9
    HELLO = 10
    HEARTBEAT_ACK = 11


class Close:
    UNKNOWN_OPCODE = 4001
    DECODE_ERROR = 4002
    NOT_AUTHENTICATED = 4003
    AUTHENTICATION_FAILED = 4004
    ALREADY_AUTHENTICATED = 4005
    INVALID_SHARD = 4010
    SHARDING_REQUIRED = 4011
    INVALID_API_VERSION = 4012


class _Compressor:
    """zlib-stream (one context per connection, Z_SYNC_FLUSH per message) or zstd-stream."""

    def __init__(self, kind: str | None) -> None:
        self.kind = kind
        self._zlib = zlib.compressobj() if kind == "zlib-stream" else None
        self._zstd = (
            ZstdCompressor().compressobj()
            if kind == "zstd-stream" and ZstdCompressor is not None
            else None
        )

    def encode(self, text: str) -> str | bytes:
        raw = text.encode()
        if self._zlib is not None:
            return self._zlib.compress(raw) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
        if self._zstd is not None:
            from zstandard import COMPRESSOBJ_FLUSH_BLOCK

            return self._zstd.compress(raw) + self._zstd.flush(COMPRESSOBJ_FLUSH_BLOCK)
        return text


@dataclass
class Connection:
    """One websocket. Frames go out in order through a writer task."""

    ws: web.WebSocketResponse = field(repr=False)
    peer: tuple[str, int] | None
    compressor: _Compressor = field(repr=False)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    session: Session | None = field(default=None, repr=False)
    heartbeats: int = 0
    opened_at: float = field(default_factory=time.perf_counter)
    _outbox: asyncio.Queue[tuple[dict[str, Any], Callable[[], None] | None] | None] = field(
        default_factory=asyncio.Queue, repr=False
    )
    _writer: asyncio.Task[None] | None = field(default=None, repr=False)

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop())

    def send(self, payload: dict[str, Any], on_sent: Callable[[], None] | None = None) -> None:
        self._outbox.put_nowait((payload, on_sent))

    async def _write_loop(self) -> None:
        while True:
            item = await self._outbox.get()
            if item is None or self.ws.closed:
                return
            payload, on_sent = item
            frame = self.compressor.encode(json.dumps(payload, separators=(",", ":")))
            if on_sent is not None:
                on_sent()
            try:
                if isinstance(frame, bytes):
                    await self.ws.send_bytes(frame)
                else:
                    await self.ws.send_str(frame)
            except (ConnectionError, RuntimeError):
                return

    async def close(self, code: int = WSCloseCode.OK, message: str = "") -> None:
        await self.stop_writer()
        await self.ws.close(code=code, message=message.encode())

    async def stop_writer(self) -> None:
        if self._writer is not None and not self._writer.done():
            self._outbox.put_nowait(None)
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(self._writer, 1.0)


@dataclass
class Session:
    """What an IDENTIFY created: a shard, a sequence, the events for a RESUME."""

    shard_id: int
    shard_count: int
    intents: int
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    seq: int = 0
    connection: Connection | None = field(default=None, repr=False)
    identified_at: float = field(default_factory=time.perf_counter)
    ready_sent: bool = False
    history: deque[dict[str, Any]] = field(
        default_factory=lambda: deque(maxlen=HISTORY), repr=False
    )
    invalidated: bool = False
    resumes: int = 0

    @property
    def connected(self) -> bool:
        return self.connection is not None and not self.connection.ws.closed

    def covers(self, guild_id: int | None) -> bool:
        """Events without a guild (DMs) go to shard 0, as on Discord."""
        if guild_id is None:
            return self.shard_id == 0
        return shard_of(guild_id, self.shard_count) == self.shard_id

    def dispatch(self, event: str, data: Any, on_sent: OnSent | None = None) -> None:
        self.seq += 1
        frame = {"op": Op.DISPATCH, "t": event, "s": self.seq, "d": data}
        self.history.append(frame)
        if self.connected:
            assert self.connection is not None
            callback = None if on_sent is None else (lambda: on_sent(self))
            self.connection.send(frame, callback)

    def replay_after(self, seq: int) -> list[dict[str, Any]]:
        return [frame for frame in self.history if frame["s"] > seq]
