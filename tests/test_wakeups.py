"""Processes wake each other through PostgreSQL LISTEN/NOTIFY instead of waiting for a poll."""

from __future__ import annotations

import asyncio
import os

import pytest
from sqlalchemy import text

from avatar_api.client import AvatarClient
from avatarbot.queue import Dispatcher
from avatarbot.store import SqlStore
from avatarbot.store.base import Budget, JobState
from avatarbot.store.notify import Notice, StoreEvent
from tests.store_fixtures import POSTGRES_URL_ENV, Clock, StoreFactory, clock, store_factory
from tests.test_queue import NO_LIMITS, RecordingListener, eventually, job

__all__ = ["clock", "store_factory"]  # fixtures, imported for pytest

pytestmark = pytest.mark.postgres
SLOW_POLL = 30.0  # far longer than any wait below: only a notification can explain speed


@pytest.fixture
async def pg_factory(store_factory: StoreFactory) -> StoreFactory:
    if store_factory.backend != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite runs one process")
    return store_factory


class Heard:
    def __init__(self) -> None:
        self.notices: list[Notice] = []

    def __call__(self, notice: Notice) -> None:
        self.notices.append(notice)

    def events(self) -> list[StoreEvent]:
        return [n.event for n in self.notices]


async def test_a_queued_and_a_finished_job_are_announced(
    pg_factory: StoreFactory, clock: Clock
) -> None:
    here, there = await pg_factory.open(), await pg_factory.open()
    heard = Heard()
    await there.listen(heard)
    queued = (await here.enqueue_job(job(1), NO_LIMITS, clock.now)).job
    assert queued is not None
    await eventually(lambda: Notice(StoreEvent.QUEUED, queued.id) in heard.notices, within=2)
    assert (
        await here.claim_next_job("w1", Budget(per_minute=100, per_day=1000), clock.now) is not None
    )
    await here.finish_job(queued.id, JobState.SUCCEEDED, clock.now, group_id="grp")
    await eventually(lambda: Notice(StoreEvent.FINISHED, queued.id) in heard.notices, within=2)
    await here.retire_worker("w1")
    await eventually(lambda: StoreEvent.WORKER_LEFT in heard.events(), within=2)


async def test_another_process_claims_a_new_job_at_once_not_at_its_next_poll(
    pg_factory: StoreFactory, clock: Clock, avatar_client: AvatarClient
) -> None:
    enqueuer, worker_store = await pg_factory.open(), await pg_factory.open()
    listener = RecordingListener()
    dispatcher = Dispatcher(
        worker_store,
        avatar_client,
        worker_id="w1",
        listener=listener,
        poll_interval=SLOW_POLL,
        heartbeat_interval=SLOW_POLL,
        clock=clock,
    )
    await dispatcher.start()
    try:
        await asyncio.sleep(0.2)  # the dispatcher is idle, asleep for 30 s
        queued = (await enqueuer.enqueue_job(job(1), NO_LIMITS, clock.now)).job
        assert queued is not None
        await eventually(lambda: listener.started == [queued.id], within=3)
    finally:
        await dispatcher.stop(timeout=1)


async def test_listening_survives_a_lost_connection(pg_factory: StoreFactory, clock: Clock) -> None:
    here, there = await pg_factory.open(), await pg_factory.open()
    heard = Heard()
    await there.listen(heard)
    await kill_listening_connections(here)
    await eventually(lambda: StoreEvent.RESYNC in heard.events(), within=5)
    queued = (await here.enqueue_job(job(1), NO_LIMITS, clock.now)).job
    assert queued is not None
    await eventually(lambda: Notice(StoreEvent.QUEUED, queued.id) in heard.notices, within=2)


async def kill_listening_connections(store: SqlStore) -> None:
    assert os.environ.get(POSTGRES_URL_ENV)
    async with store._transaction(write=True) as conn:
        await conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid <> pg_backend_pid() AND query LIKE 'LISTEN%'"
            )
        )
