"""Queue: 200 members on 3 servers submitting at once under agent.ai's 20/minute (issue 4).

Run: ``.venv/bin/python benchmarks/queue_bench.py [--members 100 60 40] [--late 30]``

The real bot runs in SimCord on SimCord's virtual clock (``clock=
discord.utils.utcnow``), so ten minutes of queue drain in seconds of wall time:
``env.advance_time(60)`` moves the bot's sleeps and the store's budget window
(claims are counted by the injected clock) forward together. The fake agent.ai
enforces 20 requests a minute on the same virtual clock (a benchmark-local
subclass; the stock fake counts real ``time.monotonic`` seconds), and answers
after a short real delay.

Every member of every server submits ``/avatar generate`` in the same instant.
Once the first minute's budget is spent and 150+ jobs wait, ``--late`` more
members submit, and their acknowledgement is measured while the queue is long.

Reported: acknowledgement p50/p99/max of the burst and of the late submissions,
queue-wait fairness (max wait ÷ mean wait, overall and per server; claims per
server per minute; how often a later arrival of a server overtook an earlier
one), the most claims in any 60 s window (must be ≤ 20) and the 429s provoked
(must be 0), the progress edits the queue causes, and the virtual time to drain.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import discord

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avatarbot.store.base import Budget
from benchmarks._harness import (
    BotConfig,
    Fired,
    JobRow,
    Sim,
    Summary,
    ack_latencies_ms,
    count_logs,
    fire_slash,
    max_in_window,
    open_guild,
    running_bot,
    verdict,
    write_results,
)
from tests.bot_world import QUEUE_POLL_SECONDS
from tests.fake_agent_ai import FakeAgentAI

BUDGET = Budget(per_minute=20, per_day=1000)
API_DELAY = 0.02  # real seconds
MINUTE = timedelta(seconds=60)
MAX_MINUTES = 30
# SimCord treats a sleep as parked only beyond its settle window, so the dispatcher's
# idle poll (QUEUE_POLL_SECONDS, 30 s) must outlast it; long enough for the 200-burst.
SETTLE_SECONDS = 10.0


@dataclass(frozen=True)
class QueueConfig:
    members: tuple[int, ...] = (100, 60, 40)
    late: int = 30


@dataclass
class ServerFairness:
    guild: str
    jobs: int
    mean_wait_s: float
    max_wait_s: float
    max_over_mean: float
    overtakes: int


@dataclass
class QueueReport:
    jobs: dict[str, int]
    ack_burst_ms: Summary
    ack_late_ms: Summary
    queued_when_late_arrived: int
    wait_s: Summary
    max_over_mean: float
    servers: list[ServerFairness]
    claims_per_minute_by_server: list[dict[str, int]]
    max_claims_in_60s: int
    provoked_429: int
    api_calls: int
    drain_virtual_s: float
    wall_s: float
    progress_edits: int
    progress_edits_per_job: Summary
    longest_positions_update_ms: float
    spec_violations: list[str] = field(default_factory=list)
    warnings: dict[str, int] = field(default_factory=dict)

    @property
    def budget_respected(self) -> bool:
        return self.max_claims_in_60s <= BUDGET.per_minute and self.provoked_429 == 0


async def run_queue(config: QueueConfig) -> QueueReport:
    fake = FakeAgentAI(per_minute=BUDGET.per_minute)  # its clock: the virtual one, below
    fake.delay = API_DELAY
    bot_config = BotConfig(
        budget=BUDGET,
        clock=discord.utils.utcnow,
        queue_poll_seconds=QUEUE_POLL_SECONDS,
        settle_timeout=SETTLE_SECONDS,
    )
    started = time.perf_counter()
    async with running_bot(fake, bot_config) as sim:
        fake.clock = lambda: sim.env.backend.clock.elapsed
        positions_timer = _time_position_updates(sim)
        servers = []
        for number, count in enumerate(config.members, start=1):
            servers.append(await open_guild(sim, f"Server {number}", count, prefix=f"s{number}m"))
        late = [
            servers[i % len(servers)][0].add_member(sim.env.create_user(f"late{i:03d}"))
            for i in range(config.late)
        ]
        names = {guild.id: guild.name for guild, _, _ in servers}
        channels = {guild.id: channel for guild, channel, _ in servers}

        burst = [
            fire_slash(member, channel, "avatar generate", name=f"{member.name}")
            for _, channel, members in _interleaved(servers)
            for member in members
        ]
        await sim.env.settle()
        queued = sum(1 for j in sim.jobs() if j.state == "queued")
        late_fired = [
            fire_slash(member, channels[member.guild.id], "avatar generate", name=member.name)
            for member in late
        ]
        await sim.env.settle()
        minutes = await _drain(sim, expected=len(burst) + len(late_fired))
        print(f"  drained after advancing {minutes} virtual minute(s)")
        return _report(
            sim,
            names,
            burst,
            late_fired,
            queued_when_late=queued,
            wall=time.perf_counter() - started,
            longest_positions_update=max(positions_timer, default=0.0),
        )


def _interleaved(servers: list) -> list:
    """One member of each server in turn, so arrival order does not favour a server."""
    rounds = max(len(members) for _, _, members in servers)
    out = []
    for index in range(rounds):
        for guild, channel, members in servers:
            if index < len(members):
                out.append((guild, channel, [members[index]]))
    return out


def _time_position_updates(sim: Sim) -> list[float]:
    """Instrument (not change) the cog's queue-position updates: milliseconds per call."""
    cog = sim.bot.get_cog("DeliveryCog")
    durations: list[float] = []
    original = cog.positions_changed

    async def timed(positions: object) -> None:
        began = time.perf_counter()
        try:
            await original(positions)
        finally:
            durations.append((time.perf_counter() - began) * 1000)

    cog.positions_changed = timed
    return durations


async def _drain(sim: Sim, *, expected: int) -> int:
    for minute in range(1, MAX_MINUTES + 1):
        await sim.env.advance_time(60)
        jobs = sim.jobs()
        if len(jobs) >= expected and all(j.final and j.notified for j in jobs):
            return minute
    print(f"  warning: the queue did not drain within {MAX_MINUTES} virtual minutes")
    return MAX_MINUTES


def _fairness(jobs: list[JobRow], names: dict[int, str]) -> list[ServerFairness]:
    by_guild: dict[int, list[JobRow]] = defaultdict(list)
    for job in jobs:
        by_guild[job.guild_id].append(job)
    servers = []
    for guild_id, rows in by_guild.items():
        waits = [w for j in rows if (w := j.queue_wait) is not None]
        mean = sum(waits) / len(waits) if waits else 0.0
        servers.append(
            ServerFairness(
                guild=names.get(guild_id, str(guild_id)),
                jobs=len(rows),
                mean_wait_s=mean,
                max_wait_s=max(waits, default=0.0),
                max_over_mean=max(waits, default=0.0) / mean if mean else 0.0,
                overtakes=_overtakes(rows),
            )
        )
    return sorted(servers, key=lambda s: s.guild)


def _overtakes(rows: list[JobRow]) -> int:
    """Pairs in one server where the later request started strictly before the earlier."""
    ordered = sorted((j for j in rows if j.started_at is not None), key=lambda j: j.id)
    return sum(
        1
        for i, earlier in enumerate(ordered)
        for later in ordered[i + 1 :]
        if later.started_at < earlier.started_at  # type: ignore[operator]
    )


def _claims_per_minute(jobs: list[JobRow], names: dict[int, str]) -> list[dict[str, int]]:
    started = [j for j in jobs if j.started_at is not None]
    if not started:
        return []
    origin = min(j.started_at for j in started)  # type: ignore[type-var]
    table: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for job in started:
        minute = int((job.started_at - origin).total_seconds() // 60)  # type: ignore[operator]
        table[minute][names.get(job.guild_id, str(job.guild_id))] += 1
    return [dict(sorted(table[m].items())) for m in sorted(table)]


def _report(
    sim: Sim,
    names: dict[int, str],
    burst: list[Fired],
    late: list[Fired],
    *,
    queued_when_late: int,
    wall: float,
    longest_positions_update: float,
) -> QueueReport:
    jobs = sim.jobs()
    acks = ack_latencies_ms([*burst, *late], sim.http)
    waits = [w for j in jobs if (w := j.queue_wait) is not None]
    mean_wait = sum(waits) / len(waits) if waits else 0.0
    edits = _progress_edits(sim, [*burst, *late])
    finished = [j.finished_at for j in jobs if j.finished_at is not None]
    states: dict[str, int] = defaultdict(int)
    for job in jobs:
        states[job.state] += 1
    states["told"] = sum(1 for j in jobs if j.notified)
    return QueueReport(
        jobs=dict(states),
        ack_burst_ms=Summary.of(acks[f.interaction_id] for f in burst if f.interaction_id in acks),
        ack_late_ms=Summary.of(acks[f.interaction_id] for f in late if f.interaction_id in acks),
        queued_when_late_arrived=queued_when_late,
        wait_s=Summary.of(waits),
        max_over_mean=max(waits, default=0.0) / mean_wait if mean_wait else 0.0,
        servers=_fairness(jobs, names),
        claims_per_minute_by_server=_claims_per_minute(jobs, names),
        max_claims_in_60s=max_in_window([j.started_at for j in jobs if j.started_at]),
        provoked_429=sim.fake.rate_limited,
        api_calls=sim.fake.calls,
        drain_virtual_s=(max(finished) - min(j.created_at for j in jobs)).total_seconds()
        if finished
        else 0.0,
        wall_s=wall,
        progress_edits=sum(edits.values()),
        progress_edits_per_job=Summary.of(float(v) for v in edits.values()),
        longest_positions_update_ms=longest_positions_update,
        spec_violations=list(sim.fake.violations),
    )


def _progress_edits(sim: Sim, fired: list[Fired]) -> dict[int, int]:
    """Edits of each interaction's original response that carried no result embed."""
    by_token = {f.token: f.interaction_id for f in fired}
    counts: dict[int, int] = defaultdict(int)
    for entry in sim.http:
        if entry.method != "PATCH" or not entry.path.endswith("/messages/@original"):
            continue
        interaction_id = by_token.get(entry.path.split("/")[3])
        if interaction_id is not None and not (entry.json or {}).get("embeds"):
            counts[interaction_id] += 1
    return counts


def print_report(report: QueueReport) -> None:
    print(f"  jobs: {report.jobs}")
    print(report.ack_burst_ms.row("ack, all submitting at once", "ms"))
    print(report.ack_late_ms.row(f"ack, with {report.queued_when_late_arrived} jobs queued", "ms"))
    print(report.wait_s.row("queue wait (virtual)", "s"))
    print(f"  fairness: max wait ÷ mean wait = {report.max_over_mean:.2f} overall")
    for server in report.servers:
        print(
            f"    {server.guild}: {server.jobs} jobs, mean wait {server.mean_wait_s:6.0f} s, "
            f"max {server.max_wait_s:6.0f} s, max÷mean {server.max_over_mean:.2f}, "
            f"later arrivals served first: {server.overtakes}"
        )
    print("  claims per minute by server:")
    for minute, row in enumerate(report.claims_per_minute_by_server):
        cells = ", ".join(f"{k} {v:2d}" for k, v in row.items())
        print(f"    minute {minute:2d}: {cells}  (total {sum(row.values())})")
    print(
        f"  budget: most claims in any 60 s window {report.max_claims_in_60s} "
        f"(limit {BUDGET.per_minute}); provoked 429s {report.provoked_429}; "
        f"{verdict(report.budget_respected)}"
    )
    print(
        f"  drain: {report.drain_virtual_s / 60:.1f} virtual minutes for "
        f"{report.api_calls} calls, {report.wall_s:.0f} s of wall time"
    )
    print(
        f"  progress edits: {report.progress_edits} in all; "
        f"per job p50 {report.progress_edits_per_job.p50:.0f}, "
        f"max {report.progress_edits_per_job.max:.0f}; "
        f"longest single positions update {report.longest_positions_update_ms:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, nargs="+", default=[100, 60, 40])
    parser.add_argument("--late", type=int, default=30)
    args = parser.parse_args()
    config = QueueConfig(tuple(args.members), args.late)
    print(
        f"queue: {sum(config.members)} members on {len(config.members)} servers "
        f"{config.members} at once, then {config.late} more; budget {BUDGET.per_minute}/min"
    )
    logs = count_logs()
    report = asyncio.run(run_queue(config))
    report.warnings = dict(logs.messages)
    print_report(report)
    path = write_results("queue", {"config": config, "report": report})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
