"""The process dies (SIGKILL) mid-work, or the database goes away for a moment.

(a) A real bot process (``tests/worker_process.py``: the real store and Dispatcher, no
Discord) is killed while jobs are queued and running; the real bot started on the same
database tells every requester the end of their job exactly once, carries on with the
queued generate jobs, fails the running and upload ones as "Interrupted", and sends
nothing twice. (b) PostgreSQL unreachable for ~2 s under a running dispatcher: it logs,
keeps going, and every job completes afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest
import simcord
from sqlalchemy.engine import make_url

import bot as bot_module
from avatar_api import AvatarClient, RetryPolicy
from avatarbot.failures import FailureKind
from avatarbot.queue import Dispatcher
from avatarbot.store import SqlStore, open_store
from avatarbot.store.base import JobRecord, JobState, Limits, NewJob, SourceType
from tests.bot_world import QUEUE_POLL_SECONDS, World
from tests.fake_agent_ai import TOKEN, FakeAgentAI
from tests.store_fixtures import POSTGRES_SKIP_REASON, POSTGRES_URL_ENV
from tests.tcp_proxy import TcpProxy

REPO = Path(__file__).resolve().parent.parent
RECOVERY_WORKER = "after-restart"
CRASHED_WORKER = "crashed-worker"
SLOW_AGENT_AI_SECONDS = 30.0  # long enough that the first calls are mid-flight at the kill
RUNNING_AT_KILL = 2  # the worker's max_concurrency


@dataclass(frozen=True)
class CrashDatabase:
    url: str
    schema: str | None = None


async def pg_execute(url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def postgres_url() -> str:
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        pytest.skip(POSTGRES_SKIP_REASON)
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def crash_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CrashDatabase]:
    if request.param == "sqlite":
        yield CrashDatabase(f"sqlite:///{tmp_path / 'crash.db'}")
        return
    url = postgres_url()
    schema = f"crash_{uuid.uuid4().hex[:12]}"
    await pg_execute(url, f'CREATE SCHEMA "{schema}"')
    try:
        yield CrashDatabase(url, schema)
    finally:
        await pg_execute(url, f'DROP SCHEMA "{schema}" CASCADE')


# --- (a) SIGKILL -----------------------------------------------------------------------


@dataclass
class Requested:
    member: simcord.MemberActor
    mode: SourceType
    name: str


class WorkerProcess:
    """``tests/worker_process.py`` in a real subprocess, read line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []

    @classmethod
    async def start(cls, spec: dict[str, object]) -> WorkerProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.worker_process",
            json.dumps(spec),
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def wait_for(self, prefix: str, count: int, timeout: float = 20.0) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while sum(line.startswith(prefix) for line in self.lines) < count:
                assert self.process.stdout is not None
                raw = await self.process.stdout.readline()
                if not raw:
                    stderr = await self.process.stderr.read() if self.process.stderr else b""
                    raise AssertionError(f"worker exited: {stderr.decode()[-2000:]}")
                self.lines.append(raw.decode().strip())

    def ids(self, prefix: str) -> list[int]:
        return [int(line.split()[1]) for line in self.lines if line.startswith(prefix)]

    def job_names(self) -> dict[int, str]:
        return {
            int(line.split()[1]): line.split()[2]
            for line in self.lines
            if line.startswith("enqueued")
        }

    async def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        assert self.process.returncode == -signal.SIGKILL


def requests_for(world: World) -> list[Requested]:
    plan = [
        ("gen-a", SourceType.GENERATE),
        ("up-a", SourceType.UPLOAD),
        ("gen-b", SourceType.GENERATE),
        ("gen-c", SourceType.GENERATE),
        ("up-b", SourceType.UPLOAD),
        ("gen-d", SourceType.GENERATE),
    ]
    return [Requested(world.member(name), mode, name) for name, mode in plan]


def worker_spec(world: World, db: CrashDatabase, requested: list[Requested]) -> dict[str, object]:
    return {
        "database_url": db.url,
        "schema": db.schema,
        "base_url": world.fake.base_url,
        "token": TOKEN,
        "worker_id": CRASHED_WORKER,
        "clock_start": world.env.now().isoformat(),
        "guild_id": world.guild.id,
        "channel_id": world.channel.id,
        "jobs": [{"mode": r.mode.value, "user_id": r.member.id, "name": r.name} for r in requested],
    }


async def restart_bot_on(
    world: World, db: CrashDatabase, monkeypatch: pytest.MonkeyPatch
) -> bot_module.AvatarBot:
    if db.schema is not None:
        monkeypatch.setattr(bot_module, "open_store", partial(open_store, schema=db.schema))
    restarted = await world.bots.make(world.fake, db.url, worker_id=RECOVERY_WORKER)
    await world.env.restart_bot(restarted)
    return restarted


async def settle_all(restarted: bot_module.AvatarBot, job_ids: list[int], env: simcord.Env) -> None:
    """Move virtual time on until every job is final and its requester was told."""
    for _ in range(8):
        jobs = [await restarted.store.get_job(job_id) for job_id in job_ids]
        if all(job is not None and job.state.is_final and job.notified for job in jobs):
            return
        await env.advance_time(QUEUE_POLL_SECONDS + 1)
    raise AssertionError(f"jobs not settled: {jobs}")


async def test_sigkill_with_jobs_queued_and_running_then_restart(
    world: World, crash_db: CrashDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    requested = requests_for(world)
    world.fake.delay = SLOW_AGENT_AI_SECONDS
    worker = await WorkerProcess.start(worker_spec(world, crash_db, requested))
    try:
        await worker.wait_for("started", RUNNING_AT_KILL)
        async with asyncio.timeout(10):
            while world.fake.in_flight < RUNNING_AT_KILL:  # noqa: ASYNC110 - mid-flight calls
                await asyncio.sleep(0.02)
    finally:
        await worker.kill()
    world.fake.delay = 0.0
    names = worker.job_names()
    running = set(worker.ids("started"))
    sent_before_restart = Counter(r.body["name"] for r in world.fake.requests)
    assert len(running) == RUNNING_AT_KILL
    assert sent_before_restart == Counter(names[i] for i in running)

    restarted = await restart_bot_on(world, crash_db, monkeypatch)
    try:
        await settle_all(restarted, list(names), world.env)
        jobs = {job_id: await restarted.store.get_job(job_id) for job_id in names}
    finally:
        await world.bots.close(restarted)

    by_name = {r.name: r for r in requested}
    for job_id, job in jobs.items():
        assert job is not None
        expect_interrupted = job_id in running or job.mode is SourceType.UPLOAD
        assert_final_state(job, interrupted=expect_interrupted)
        assert_told_once(by_name[names[job_id]].member, job)
    sent = Counter(r.body["name"] for r in world.fake.requests)
    expected = Counter(names[i] for i in running) + Counter(
        names[i] for i, job in jobs.items() if job and job.state is JobState.SUCCEEDED
    )
    assert sent == expected  # nothing sent twice, nothing interrupted sent again
    assert max(sent.values()) == 1


def assert_final_state(job: JobRecord, *, interrupted: bool) -> None:
    if interrupted:
        assert (job.state, job.error_kind) == (JobState.FAILED, FailureKind.INTERRUPTED), job
    else:
        assert job.state is JobState.SUCCEEDED, job
        assert job.group_id


def assert_told_once(member: simcord.MemberActor, job: JobRecord) -> None:
    dms = member.user.dm_channel.history()
    assert len(dms) == 1, f"{member.name} got {len(dms)} DMs for job {job.id}"
    embed = dms[0].embeds[0]
    if job.state is JobState.SUCCEEDED:
        assert any(job.group_id in str(f.value) for f in embed.fields)
    else:
        assert "restarted" in (embed.description or "")


# --- (b) the database briefly unreachable ------------------------------------------------


class RecordingListener:
    def __init__(self) -> None:
        self.finished: list[JobRecord] = []

    async def job_started(self, job: JobRecord) -> None:
        return None

    async def job_finished(self, job: JobRecord) -> bool:
        self.finished.append(job)
        return True

    async def positions_changed(self, positions: object) -> None:
        return None


@pytest.fixture
async def proxied_postgres() -> AsyncIterator[tuple[str, str, TcpProxy]]:
    from tests.tcp_proxy import TcpProxy

    url = postgres_url()
    target = make_url(url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    port = await proxy.start()
    schema = f"outage_{uuid.uuid4().hex[:12]}"
    await pg_execute(url, f'CREATE SCHEMA "{schema}"')
    try:
        yield target.set(port=port).render_as_string(hide_password=False), schema, proxy
    finally:
        await proxy.stop()
        await pg_execute(url, f'DROP SCHEMA "{schema}" CASCADE')


OUTAGE_SECONDS = 2.0
OUTAGE_JOBS = 6


@pytest.mark.slow
async def test_a_brief_database_outage_loses_nothing(
    proxied_postgres: tuple[str, str, TcpProxy],
    fake_agent_ai: FakeAgentAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, schema, proxy = proxied_postgres
    store = await open_store(url, schema=schema)
    listener = RecordingListener()
    fake_agent_ai.delay = 0.4
    async with AvatarClient(
        TOKEN, base_url=fake_agent_ai.base_url, timeout=10, retry=RetryPolicy(max_retries=0)
    ) as client:
        dispatcher = Dispatcher(
            store,
            client,
            worker_id="outage-worker",
            listener=listener,
            max_concurrency=2,
            poll_interval=0.1,
            heartbeat_interval=0.5,
        )
        job_ids = [await enqueue_generate(store, user_id) for user_id in range(1, OUTAGE_JOBS + 1)]
        await dispatcher.start()
        try:
            for _ in range(500):  # until the first calls are in flight
                if fake_agent_ai.in_flight >= 2:
                    break
                await asyncio.sleep(0.01)
            await proxy.cut()
            await asyncio.sleep(OUTAGE_SECONDS)
            assert dispatcher.running
            await proxy.restore()
            await wait_until_done(store, job_ids, timeout=20)
            assert dispatcher.running
        finally:
            await dispatcher.stop(timeout=5)
            await store.close()

    jobs = listener.finished
    assert sorted(j.id for j in jobs) == sorted(job_ids)  # each told exactly once
    assert all(j.state is JobState.SUCCEEDED for j in jobs), jobs
    assert fake_agent_ai.calls == OUTAGE_JOBS  # nothing sent twice
    assert "loop step failed; retrying" in caplog.text  # it noticed, logged and kept going
    assert "recording its outcome failed" in caplog.text


async def enqueue_generate(store: SqlStore, user_id: int) -> int:
    result = await store.enqueue_job(
        NewJob(
            guild_id=1,
            channel_id=2,
            user_id=user_id,
            mode=SourceType.GENERATE,
            options={"name": f"outage-{user_id}"},
            owner="outage-worker",
        ),
        Limits(),
        datetime.now(UTC),
    )
    assert result.job is not None
    return result.job.id


async def wait_until_done(store: SqlStore, job_ids: list[int], timeout: float) -> None:  # noqa: ASYNC109
    async with asyncio.timeout(timeout):
        while True:
            try:
                jobs = [await store.get_job(i) for i in job_ids]
            except Exception:
                jobs = []
            if jobs and all(j is not None and j.state.is_final and j.notified for j in jobs):
                return
            await asyncio.sleep(0.1)
