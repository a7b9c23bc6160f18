"""Prompt wake-ups between bot processes: PostgreSQL ``LISTEN``/``NOTIFY``.

Store transactions that change what another process should act on send a
notification (delivered when they commit): a job was queued, a job is final and
its requester must be told, a worker left. Each process listens on one dedicated
asyncpg connection, outside the pool, and reconnects on its own if it drops;
after a reconnect it reports :attr:`StoreEvent.RESYNC`, since notifications sent
meanwhile are lost. Polling stays the safety net. SQLite has one process, so it
needs no wake-ups at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "avatarbot"
RECONNECT_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0)
CONNECTION_CHECK_SECONDS = 1.0


class StoreEvent(StrEnum):
    QUEUED = "queued"
    """A job was queued: an idle process may claim it."""
    FINISHED = "finished"
    """A job is final and its requester has not been told yet."""
    WORKER_LEFT = "worker_left"
    """A worker stopped: its queued jobs and undelivered outcomes are free to adopt."""
    RESYNC = "resync"
    """Local only: notifications may have been missed; look at everything again."""


@dataclass(frozen=True, slots=True)
class Notice:
    event: StoreEvent
    job_id: int | None = None

    def payload(self) -> str:
        return self.event.value if self.job_id is None else f"{self.event.value}:{self.job_id}"

    @classmethod
    def parse(cls, payload: str) -> Notice | None:
        name, _, job = payload.partition(":")
        try:
            return cls(StoreEvent(name), int(job) if job else None)
        except ValueError:
            return None


NoticeHandler = Callable[[Notice], None]


def channel_name(schema: str | None) -> str:
    """One channel per schema, so that tests isolated by schema never hear each other."""
    return f"{CHANNEL_PREFIX}:{schema or 'public'}"


async def notify(conn: AsyncConnection, channel: str, notice: Notice) -> None:
    """Send ``notice`` when the caller's transaction commits (PostgreSQL only)."""
    await conn.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {"channel": channel, "payload": notice.payload()},
    )


class Listener:
    """Hears a channel on a dedicated connection and hands each notice to a handler."""

    def __init__(self, url: URL, channel: str, handler: NoticeHandler) -> None:
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._channel = channel
        self._handler = handler
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    def __repr__(self) -> str:
        return f"Listener(channel={self._channel!r})"  # never the DSN: it may hold a password

    async def start(self, *, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - a start-up bound
        """Listen from now on; returns once listening (or after ``timeout``, retrying on)."""
        self._task = asyncio.create_task(self._run(), name=f"listen:{self._channel}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        import asyncpg

        failures = 0
        while True:
            try:
                conn = await asyncpg.connect(self._dsn)
            except (OSError, asyncpg.PostgresError) as error:
                delay = RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
                failures += 1
                log.warning(
                    "could not listen for other processes (%s); retrying in %.1f s",
                    type(error).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            try:
                await conn.add_listener(self._channel, self._on_notification)
                if failures or self._connected.is_set():
                    self._handler(Notice(StoreEvent.RESYNC))
                failures = 0
                self._connected.set()
                await _until_closed(conn)
                log.warning("lost the connection that listens for other processes; reconnecting")
            except (OSError, asyncpg.PostgresError) as error:
                log.warning("listening for other processes failed (%s)", type(error).__name__)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 2)

    def _on_notification(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        notice = Notice.parse(payload)
        if notice is None:
            log.debug("ignored a notification this version does not know")
            return
        try:
            self._handler(notice)
        except Exception:
            log.exception("handling a notification failed")


async def _until_closed(conn: Any) -> None:
    """Return once the connection is gone. A plain sleep, not a future: event-loop harnesses
    (SimCord) see a sleeping task as parked, and the dispatcher polls the same way."""
    while True:
        if conn.is_closed():
            return
        await asyncio.sleep(CONNECTION_CHECK_SECONDS)
