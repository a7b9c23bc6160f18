"""A bot process without Discord, for the crash tests: ``python -m tests.worker_process SPEC``.

SPEC is JSON: database_url, schema (PostgreSQL only, or null), base_url, token, worker_id,
clock_start (ISO; the process's clock runs on from it in real time, so that it agrees with
SimCord's virtual clock), guild_id, channel_id, and jobs: a list of
{"mode": "generate"|"upload", "user_id": int, "name": str}.

It enqueues the jobs (uploads with their photos in memory), then runs the real
Dispatcher against agent.ai until it is killed. It prints one line per event, flushed:
``enqueued <job id> <name>``, ``ready``, ``started <job id>``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from avatar_api import AvatarClient, RetryPolicy
from avatar_api.models import AvatarRequest, Photo
from avatarbot.queue import Dispatcher, QueuePlace
from avatarbot.store import open_store
from avatarbot.store.base import JobRecord, Limits, NewJob, SourceType

PHOTO = Photo.from_bytes(b"\xff\xd8\xff\xe0" + bytes(256))
NO_LIMITS = Limits(user_daily_quota=0, guild_daily_quota=0, cooldown_seconds=0)


def say(line: str) -> None:
    print(line, flush=True)


def running_clock(start: datetime) -> Callable[[], datetime]:
    origin = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - origin)


class PrintingListener:
    async def job_started(self, job: JobRecord) -> None:
        say(f"started {job.id}")

    async def job_finished(self, job: JobRecord) -> bool:
        say(f"finished {job.id} {job.state.value}")
        return False  # this process has no Discord: the requester is told after the restart

    async def positions_changed(self, positions: Mapping[int, QueuePlace]) -> None:
        return None


async def enqueue(
    dispatcher: Dispatcher, spec: Mapping[str, Any], clock: Callable[[], datetime]
) -> None:
    """Every job through the dispatcher, which keeps each request (an upload's photo) with it."""
    for entry in spec["jobs"]:
        mode = SourceType(entry["mode"])
        if mode is SourceType.UPLOAD:
            request = AvatarRequest.upload((PHOTO,), name=entry["name"])
        else:
            request = AvatarRequest.generate(name=entry["name"])
        result = await dispatcher.enqueue(
            NewJob(
                guild_id=spec["guild_id"],
                channel_id=spec["channel_id"],
                user_id=entry["user_id"],
                mode=mode,
                options=request.options(),
                owner=spec["worker_id"],
                photo_sizes=tuple(p.size for p in request.photos),
            ),
            request,
            NO_LIMITS,
            clock(),
        )
        assert result.job is not None, result.refusal
        say(f"enqueued {result.job.id} {entry['name']}")


async def main(spec: Mapping[str, Any]) -> None:
    clock = running_clock(datetime.fromisoformat(spec["clock_start"]))
    store = await open_store(
        spec["database_url"], schema=spec.get("schema"), clock=clock, budget_clock=clock
    )
    client = AvatarClient(
        spec["token"], base_url=spec["base_url"], timeout=300, retry=RetryPolicy(max_retries=0)
    )
    dispatcher = Dispatcher(
        store,
        client,
        worker_id=spec["worker_id"],
        listener=PrintingListener(),
        max_concurrency=2,
        poll_interval=0.2,
        clock=clock,
    )
    await enqueue(dispatcher, spec, clock)
    await dispatcher.start()
    say("ready")
    await asyncio.Event().wait()  # until SIGKILL


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
