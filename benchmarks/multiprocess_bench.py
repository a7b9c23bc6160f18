"""Several bot processes as one bot: the budget, duplicates, delivery and hand-off.

Run: ``.venv/bin/python -m benchmarks.multiprocess_bench [--members 200] [--window 60]``
with ``AVATARBOT_TEST_POSTGRES_URL`` set (a database on the server it names is
created for the run and dropped after).

Three real bot processes (``bot.main()``) share one PostgreSQL database, logged
in to the loopback fake Discord as one bot over three shards (``SHARD_COUNT=3``,
``SHARD_IDS=0``, ``1``, ``2``), with one server on each shard. Every member of
every server runs ``/avatar generate`` at once. The fake agent.ai answers in
``--agent-delay`` seconds and refuses (429) a request past ``--per-window`` in any
``--window`` seconds, measured when requests arrive. ``--window 6`` runs the
same scenario ten times faster (the bot is given the same short window).

With ``--kill-after N`` one process is killed (SIGKILL) once N avatars are
out; the survivors adopt its queued jobs and answer in their interactions.

Reported: requests in the busiest window (must be at most ``--per-window``),
429s (must be 0), duplicates (agent.ai calls per member, accepted
acknowledgements per interaction, jobs per interaction; must be 0 extra),
outcome delivery after agent.ai answered (p50/p99: the time from agent.ai's
answer to the public follow-up in the member's interaction) and the hand-off
time (from the kill to the last orphaned job adopted by a survivor).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from tests.fake_agent_ai import FakeAgentAI
from tests.fake_discord import FakeDiscord, InteractionRecord, shard_of
from tests.fleet import BotProcess, Fleet, running_fleet

SHARDS = 3


@dataclass
class Report:
    members: int
    delivered: int
    busiest_window: int
    rate_limited: int
    duplicate_calls: int
    duplicate_acks: int
    duplicate_jobs: int
    delivery_p50: float
    delivery_p99: float
    handoff_seconds: float | None
    errors: int
    wall_seconds: float


def busiest(arrivals: list[float], window: float) -> int:
    return max((sum(a <= t <= a + window for t in arrivals) for a in arrivals), default=0)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def servers_on_each_shard(discord: FakeDiscord) -> list:
    """Create servers until each shard has one (routing is ``(guild_id >> 22) % count``)."""
    chosen: dict[int, object] = {}
    while len(chosen) < SHARDS:
        guild = discord.create_guild(f"Server {len(chosen) + 1}")
        chosen.setdefault(shard_of(guild.id, SHARDS), guild)
    return [chosen[s] for s in range(SHARDS)]


async def start_fleet(fleet: Fleet) -> list[BotProcess]:
    bots = [
        await fleet.start_process(f"bot{s}", SHARD_COUNT=str(SHARDS), SHARD_IDS=str(s))
        for s in range(SHARDS)
    ]
    for bot in bots:
        await fleet.wait_until_logged(bot, "ready to serve", within=60)
    await fleet.discord.wait_for_sessions(SHARDS, within=60)
    return bots


def done(record: InteractionRecord) -> bool:
    return bool(record.followups) or (
        record.original is not None and not record.original.loading and bool(record.original.embeds)
    )


async def orphans_adopted(database_url: str, dead: set[str]) -> bool:
    conn = await asyncpg.connect(database_url)
    try:
        left = await conn.fetchval(
            "SELECT count(*) FROM jobs WHERE owner = ANY($1::text[]) AND NOT notified",
            list(dead),
        )
    finally:
        await conn.close()
    return int(left) == 0


async def worker_ids(database_url: str) -> dict[int, str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT worker_id FROM workers")
    finally:
        await conn.close()
    return {int(r["worker_id"].split(":")[1]): r["worker_id"] for r in rows}


async def duplicate_jobs(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT user_id, count(*) AS n FROM jobs GROUP BY user_id")
    finally:
        await conn.close()
    return sum(int(r["n"]) - 1 for r in rows)


async def run(args: argparse.Namespace, server_url: str) -> Report:
    agent = FakeAgentAI(
        per_minute=args.per_window, window=args.window, keep_photos=False, report_remaining=True
    )
    agent.delay = args.agent_delay
    discord = FakeDiscord(recommended_shards=SHARDS)
    servers = servers_on_each_shard(discord)
    channels = [discord.create_channel(g, "avatars") for g in servers]
    members = [
        (discord.create_member(servers[i % SHARDS], f"member{i}"), channels[i % SHARDS])
        for i in range(args.members)
    ]
    budget = f"{args.per_window},{args.window},{args.margin}"
    with tempfile.TemporaryDirectory(prefix="avatarbot-fleet-") as logs:
        async with running_fleet(
            server_url, Path(logs), agent=agent, discord=discord, budget=budget
        ) as fleet:
            bots = await start_fleet(fleet)
            started = time.perf_counter()
            records = [
                discord.slash(m, c, "avatar generate", {"name": f"m{i}"})
                for i, (m, c) in enumerate(members)
            ]
            handoff = None
            if args.kill_after is not None:
                handoff = await kill_one(fleet, bots, agent, args.kill_after)
            deadline = args.members / args.per_window * (args.window + args.margin) * 1.5 + 60
            try:
                await discord.wait_until(lambda: all(done(r) for r in records), within=deadline)
            except TimeoutError:
                stuck = [r for r in records if not done(r)]
                print(f"{len(stuck)} interactions not answered; agent.ai calls {agent.calls}")
                for bot in bots:
                    print(f"--- {bot.name}\n{bot.log()[-2500:]}")
                raise
            wall = time.perf_counter() - started
            delays = [
                r.followups[0].created_at - agent.answered_at[f"m{i}"]
                for i, r in enumerate(records)
                if r.followups and f"m{i}" in agent.answered_at
            ]
            calls = Counter(r.body.get("name") for r in agent.requests)
            errors = sum(len(b.error_lines()) for b in bots if b.process.returncode is None)
            return Report(
                members=args.members,
                delivered=sum(done(r) for r in records),
                busiest_window=busiest(agent.arrivals, args.window),
                rate_limited=agent.rate_limited,
                duplicate_calls=sum(n - 1 for n in calls.values()),
                duplicate_acks=sum(
                    max(0, sum(200 <= c.status < 300 for c in r.callbacks) - 1) for r in records
                ),
                duplicate_jobs=await duplicate_jobs(fleet.database_url),
                delivery_p50=percentile(delays, 0.5),
                delivery_p99=percentile(delays, 0.99),
                handoff_seconds=handoff,
                errors=errors,
                wall_seconds=wall,
            )


async def kill_one(fleet: Fleet, bots: list[BotProcess], agent: FakeAgentAI, after: int) -> float:
    await poll(lambda: agent.calls >= after)
    victim = bots[-1]
    ids = await worker_ids(fleet.database_url)
    await victim.kill()
    killed_at = time.perf_counter()
    dead = {ids[victim.pid]} if victim.pid in ids else set()
    while True:
        if await orphans_adopted(fleet.database_url, dead):
            return time.perf_counter() - killed_at
        await asyncio.sleep(0.1)


async def poll(condition: Callable[[], bool]) -> None:
    while True:
        if condition():
            return
        await asyncio.sleep(0.05)


def print_report(report: Report, args: argparse.Namespace) -> None:
    print(
        f"{SHARDS} processes (one shard each), {SHARDS} servers, {report.members} members; "
        f"agent.ai answers in {args.agent_delay:.1f} s, "
        f"limit {args.per_window} per {args.window:g} s"
    )
    print(f"  delivered in their interactions: {report.delivered}/{report.members}")
    print(f"  requests in the busiest {args.window:g} s window: {report.busiest_window}")
    print(f"  429s: {report.rate_limited}")
    print(
        f"  duplicates: agent.ai calls {report.duplicate_calls}, "
        f"accepted acknowledgements {report.duplicate_acks}, jobs {report.duplicate_jobs}"
    )
    print(
        f"  outcome delivery after agent.ai answered: p50 {report.delivery_p50 * 1000:.0f} ms, "
        f"p99 {report.delivery_p99 * 1000:.0f} ms"
    )
    if report.handoff_seconds is not None:
        print(f"  hand-off after a SIGKILL: {report.handoff_seconds:.1f} s")
    print(f"  ERROR lines in the survivors' logs: {report.errors}")
    print(f"  wall time: {report.wall_seconds:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--per-window", type=int, default=20)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--margin", type=float, default=1.0)
    parser.add_argument("--agent-delay", type=float, default=1.0)
    parser.add_argument("--kill-after", type=int, default=None)
    args = parser.parse_args()
    server_url = os.environ.get("AVATARBOT_TEST_POSTGRES_URL")
    if not server_url:
        print("error: set AVATARBOT_TEST_POSTGRES_URL to a PostgreSQL database", file=sys.stderr)
        return 2
    report = asyncio.run(run(args, server_url))
    print_report(report, args)
    ok = report.busiest_window <= args.per_window and report.rate_limited == 0
    ok = ok and report.delivered == report.members
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
