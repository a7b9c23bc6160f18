"""Two real bot processes on one PostgreSQL database are one bot.

Both are ``bot.main()`` in subprocesses, logged in to the loopback fake Discord
as two sessions of the same shard, so Discord sends every interaction to both
(as during a rolling restart); the fake agent.ai refuses (429) a request past the
limit in any window, measured on arrival. The window is short here (the limit
itself is measured by ``benchmarks/multiprocess_bench.py``).
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest

from tests.fake_agent_ai import FakeAgentAI
from tests.fake_discord import Channel, FakeDiscord, InteractionRecord, Member
from tests.fleet import BotProcess, Fleet, running_fleet
from tests.store_fixtures import POSTGRES_SKIP_REASON, POSTGRES_URL_ENV

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

PER_WINDOW = 4
WINDOW_SECONDS = 2.0
BUDGET = f"{PER_WINDOW},{WINDOW_SECONDS},0.1"
DONE = "Done"


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    server_url = os.environ.get(POSTGRES_URL_ENV)
    if not server_url:
        pytest.skip(POSTGRES_SKIP_REASON)
    agent = FakeAgentAI(per_minute=PER_WINDOW, window=WINDOW_SECONDS, report_remaining=False)
    agent.delay = 0.3
    async with running_fleet(server_url, tmp_path, agent=agent, budget=BUDGET) as fleet:
        yield fleet


async def two_sessions_of_one_shard(fleet: Fleet) -> list[BotProcess]:
    bots = [await fleet.start_process(name) for name in ("first", "second")]
    for bot in bots:
        await fleet.wait_until_logged(bot, "ready to serve")
    sessions = await fleet.discord.wait_for_sessions(2, within=30)
    assert {(s.shard_id, s.shard_count) for s in sessions} == {(0, 1)}
    return bots


def server(discord: FakeDiscord, members: int) -> tuple[Channel, list[Member]]:
    guild = discord.create_guild("Avatar Club")
    channel = discord.create_channel(guild, "avatars")
    return channel, [discord.create_member(guild, f"member{i}") for i in range(members)]


def ask_everyone(
    discord: FakeDiscord, channel: Channel, members: list[Member]
) -> list[InteractionRecord]:
    """Every member runs ``/avatar generate`` at once, named after their place."""
    return [
        discord.slash(m, channel, "avatar generate", {"name": f"m{i}"})
        for i, m in enumerate(members)
    ]


def told(record: InteractionRecord) -> bool:
    """The member's own reply shows the outcome (a success also posts a follow-up)."""
    original = record.original
    if original is None or original.loading:
        return False
    return DONE in original.content or bool(original.embeds)


async def job_rows(database_url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch("SELECT id, user_id, state, owner, notified FROM jobs")
    finally:
        await conn.close()


async def job_rows_once(
    database_url: str, ready: Callable[[list[asyncpg.Record]], bool], within: float = 10.0
) -> list[asyncpg.Record]:
    """The job rows as soon as ``ready(rows)`` holds, or as they are after ``within`` s.

    A process records a job as told only once Discord accepted the reply, so the
    rows trail what the fake Discord shows by a database write.
    """
    deadline = asyncio.get_running_loop().time() + within
    while not ready(rows := await job_rows(database_url)):
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.05)
    return rows


def all_told(count: int) -> Callable[[list[asyncpg.Record]], bool]:
    return lambda rows: len(rows) == count and all(r["notified"] for r in rows)


def worker_of(bot: BotProcess, workers: Counter[str]) -> str:
    """The worker id (host:pid:nonce) of ``bot`` among ``workers``."""
    return next((w for w in workers if w.split(":")[1] == str(bot.pid)), "")


def assert_sent_once(agent: FakeAgentAI, count: int) -> None:
    calls = Counter(r.body["name"] for r in agent.requests)
    assert calls == Counter(f"m{i}" for i in range(count)), "each member's request, once"
    assert agent.rate_limited == 0


async def test_each_interaction_is_one_job_one_call_one_charge(fleet: Fleet) -> None:
    bots = await two_sessions_of_one_shard(fleet)
    channel, members = server(fleet.discord, 10)
    records = ask_everyone(fleet.discord, channel, members)
    await fleet.discord.wait_until(lambda: all(told(r) for r in records), within=60)

    for record in records:
        assert len(record.delivered_to) == 2, "both sessions received it"
        assert sum(200 <= c.status < 300 for c in record.callbacks) == 1
        assert [c.code for c in record.refused_callbacks] in ([], [40060])
        assert len(record.followups) == 1, "the avatar was posted once"
    assert fleet.agent.calls == len(members)
    assert_sent_once(fleet.agent, len(members))
    rows = await job_rows_once(fleet.database_url, all_told(len(members)))
    assert len(rows) == len(members)
    assert Counter(r["user_id"] for r in rows) == Counter(m.user.id for m in members)
    assert all(r["state"] == "succeeded" and r["notified"] for r in rows)
    for bot in bots:
        assert bot.error_lines() == [], bot.log()[-3000:]


async def test_a_killed_process_loses_nothing_and_sends_nothing_twice(fleet: Fleet) -> None:
    bots = await two_sessions_of_one_shard(fleet)
    channel, members = server(fleet.discord, 12)
    records = ask_everyone(fleet.discord, channel, members)
    for record in records:
        await fleet.discord.wait_for_ack(record)
    await fleet.discord.wait_until(lambda: fleet.agent.calls >= PER_WINDOW, within=20)
    # Killed mid-queue: every request is a job (a process that dies between its
    # acknowledgement and that write leaves nothing any other process could know of).
    rows = await job_rows_once(fleet.database_url, lambda rows: len(rows) == len(members), 5)
    owners = Counter(r["owner"] for r in rows)
    victim = max(bots, key=lambda bot: owners[worker_of(bot, owners)])
    survivor = next(bot for bot in bots if bot is not victim)
    assert owners[worker_of(victim, owners)] >= 3, owners
    await victim.kill()

    try:
        await fleet.discord.wait_until(lambda: all(told(r) for r in records), within=60)
    except TimeoutError:
        stuck = [r.original.content if r.original else None for r in records if not told(r)]
        rows = await job_rows(fleet.database_url)
        raise AssertionError(f"not told: {stuck}\n{rows}\n{survivor.log()[-4000:]}") from None
    assert_sent_once(fleet.agent, len(members))
    rows = await job_rows_once(fleet.database_url, all_told(len(members)))
    assert len(rows) == len(members)
    assert all(r["notified"] for r in rows), "every member was told, in their interaction"
    assert {r["owner"] for r in rows} == {worker_of(survivor, Counter(r["owner"] for r in rows))}
    assert not any(fleet.discord.dms_to(m.user) for m in members), "no DM: interactions were open"
    assert survivor.error_lines() == [], survivor.log()[-3000:]
