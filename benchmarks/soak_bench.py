"""Soak: a steady stream of requests with faults on both sides, in real time (issue 5).

Run: ``.venv/bin/python benchmarks/soak_bench.py [--duration 600] [--seed 1] [--rate 20]``
Import: ``from benchmarks.soak_bench import run_soak`` (``await run_soak(30, seed=1)``).

Members of two servers send ``/avatar generate`` (and a share of ``/avatar
upload`` with four 12-megapixel photos) at ``--rate`` requests a minute, as a
Poisson stream, for ``--duration`` seconds; then nothing new arrives and the
queue drains. The bot keeps agent.ai's real budget (20 a minute) and its
production retry policy; the fake agent.ai enforces 20 a minute in real time.

Faults, drawn from ``--seed``:

* agent.ai: a share of requests answer 500, drop the connection mid-body,
  answer 429 with ``Retry-After: 1`` (injected, counted apart from the 429s the
  fake's own limiter gives: those are *provoked* by the bot's pacing), or
  answer slowly;
* Discord: every few seconds the next edit of an original response, or the
  next follow-up, fails (500 or 404 Unknown Webhook, via ``env.inject_error``).

A share of requests use a blocked word, so some are refused; members who still
have a job waiting are refused as busy. Reported: acknowledgement p99, RSS at
the start (after a warm-up upload and generate, and 5 % of the run) and at the
end (after the drain), accepted jobs against succeeded + failed, whether every
requester was told, provoked 429s and agent.ai calls.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import simcord
from aiohttp import web

from avatarbot.store.base import Budget
from benchmarks._harness import (
    BotConfig,
    ClockPump,
    Fired,
    Sim,
    Summary,
    ack_latencies_ms,
    count_logs,
    fire_slash,
    max_in_window,
    open_guild,
    running_bot,
    settled_rss_mb,
    verdict,
    wait_until,
    write_results,
)
from benchmarks._phone_photos import phone_photos
from tests.fake_agent_ai import FakeAgentAI, Reply

BUDGET = Budget(per_minute=20, per_day=1000)
API_DELAY = 1.0
MEMBERS_PER_SERVER = 30
BLOCKED_WORD = "forbiddenword"
DRAIN_LIMIT = 240.0
ACK_P99_GOAL_MS = 100.0
RSS_SAMPLE_SECONDS = 30.0


@dataclass(frozen=True)
class SoakConfig:
    duration: float = 600.0
    seed: int = 1
    rate_per_minute: float = 20.0
    upload_share: float = 0.15
    blocked_share: float = 0.05
    api_fault_share: float = 0.15
    discord_fault_every: float = 7.0
    warmup_share: float = 0.05


@dataclass
class SoakReport:
    ack_p99_ms: float
    rss_start_mb: float
    rss_end_mb: float
    accepted: int
    completed: int
    failed: int
    refused: int
    provoked_429: int
    api_calls: int
    submitted: int = 0
    unfinished: int = 0
    untold: int = 0
    ack_ms: Summary | None = None
    rss_max_mb: float = 0.0
    injected_api_faults: dict[str, int] = field(default_factory=dict)
    injected_discord_faults: dict[str, int] = field(default_factory=dict)
    refusals: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    rss_samples_mb: list[tuple[int, float]] = field(default_factory=list)
    python_objects_start: int = 0
    python_objects_end: int = 0
    max_claims_in_60s: int = 0
    drain_seconds: float = 0.0
    wall_seconds: float = 0.0
    warnings: dict[str, int] = field(default_factory=dict)

    @property
    def every_job_told(self) -> bool:
        return self.unfinished == 0 and self.untold == 0

    @property
    def no_growth(self) -> bool:
        return self.rss_end_mb <= self.rss_start_mb * 1.10 + 10


class FaultyAgentAI(FakeAgentAI):
    """The fake agent.ai answering a random share of requests with a fault."""

    def __init__(self, *, per_minute: int, rng: random.Random, share: float) -> None:
        super().__init__(per_minute=per_minute, keep_photos=False)
        self.rng = rng
        self.share = share
        self.injected: Counter[str] = Counter()

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        if not self._script and self.rng.random() < self.share:
            kind, reply = self._fault()
            self.injected[kind] += 1
            self.script(reply)
        return await super()._answer(request)

    def _fault(self) -> tuple[str, Reply]:
        kind = self.rng.choice(("500", "reset", "429", "slow"))
        if kind == "500":
            return kind, Reply(status=500, body={"error": "Internal Server Error"})
        if kind == "reset":
            return kind, Reply(kind="reset")
        if kind == "429":
            return kind, Reply(
                status=429, body={"error": "Too Many Requests"}, headers={"Retry-After": "1"}
            )
        self._served += 1
        body = {"status": 200, "response": {"avatar_result": _result(self._served)}}
        return kind, Reply(body=body, delay=self.rng.uniform(5.0, 12.0))


def _result(number: int) -> dict[str, str]:
    return {"group_id": f"grp_slow_{number:06d}", "status": "pending"}


DISCORD_FAULTS: tuple[tuple[str, str, str, int, int], ...] = (
    ("edit-500", "PATCH", "/webhooks/*/*/messages/@original", 500, 0),
    ("edit-404", "PATCH", "/webhooks/*/*/messages/@original", 404, 10015),
    ("followup-500", "POST", "/webhooks/*/*", 500, 0),
    ("followup-404", "POST", "/webhooks/*/*", 404, 10015),
)


def _inject_discord_fault(env: simcord.Env, rng: random.Random, counts: Counter[str]) -> None:
    name, method, path, status, code = rng.choice(DISCORD_FAULTS)
    env.inject_error(method, path, status=status, code=code, message=f"injected {name}")
    counts[name] += 1


@dataclass
class _Members:
    channels: dict[int, simcord.ChannelHandle]
    members: list[simcord.MemberActor]


async def _populate(sim: Sim) -> _Members:
    channels: dict[int, simcord.ChannelHandle] = {}
    members: list[simcord.MemberActor] = []
    for number in (1, 2):
        guild, channel, actors = await open_guild(
            sim, f"Soak {number}", MEMBERS_PER_SERVER, prefix=f"soak{number}m"
        )
        await sim.bot.store.update_guild_settings(guild.id, blocked_words=[BLOCKED_WORD])
        channels[guild.id] = channel
        members.extend(actors)
    for member in members:
        await sim.bot.store.record_consent(member.id)
    return _Members(channels, members)


def _request(
    world: _Members, rng: random.Random, config: SoakConfig
) -> tuple[simcord.MemberActor, simcord.ChannelHandle, str, dict[str, Any]]:
    member = rng.choice(world.members)
    channel = world.channels[member.guild.id]
    name = BLOCKED_WORD if rng.random() < config.blocked_share else member.name
    if rng.random() < config.upload_share:
        photos = {f"photo{i}": p for i, p in enumerate(phone_photos(), start=1)}
        return member, channel, "avatar upload", {**photos, "name": name}
    return member, channel, "avatar generate", {"name": name, "pose": "close_up"}


async def run_soak(duration: float, *, seed: int, **overrides: Any) -> SoakReport:
    """Run the soak for ``duration`` seconds of arrivals, then drain; see the module doc."""
    config = SoakConfig(duration=duration, seed=seed, **overrides)
    rng = random.Random(seed)
    phone_photos()  # built before anything is measured
    fake = FaultyAgentAI(per_minute=BUDGET.per_minute, rng=random.Random(seed + 1), share=0)
    fake.delay = API_DELAY
    started = time.perf_counter()
    async with running_bot(fake, BotConfig(budget=BUDGET)) as sim:
        world = await _populate(sim)
        pump = ClockPump(sim.env)
        pump.start()
        await _warm_up(sim, world)
        baseline = {j.id for j in sim.jobs()}
        fake.share = config.api_fault_share
        try:
            objects_start = len(gc.get_objects())
            fired, rss, discord_faults, samples = await _stream(sim, world, rng, config)
            drain_began = time.perf_counter()
            await wait_until(lambda: _drained(sim), limit=DRAIN_LIMIT, poll=0.2)
            drain = time.perf_counter() - drain_began
        finally:
            await pump.stop()
        rss_end = settled_rss_mb()
        samples.append((round(time.perf_counter() - started), rss_end))
        report = _report(
            sim,
            fired,
            baseline,
            rss_start=rss[0],
            rss_max=max(rss[1], rss_end),
            rss_end=rss_end,
            discord_faults=discord_faults,
            drain=drain,
            wall=time.perf_counter() - started,
        )
        report.rss_samples_mb = samples
        report.python_objects_start = objects_start
        report.python_objects_end = len(gc.get_objects())
        return report


async def _warm_up(sim: Sim, world: _Members) -> None:
    """One upload and one generate through every code path, before RSS is first read."""
    uploader, generator = world.members[-1], world.members[-2]
    photos = {f"photo{i}": p for i, p in enumerate(phone_photos(), start=1)}
    fire_slash(uploader, world.channels[uploader.guild.id], "avatar upload", **photos)
    fire_slash(generator, world.channels[generator.guild.id], "avatar generate")
    await wait_until(lambda: len(sim.jobs()) >= 2 and _drained(sim), limit=DRAIN_LIMIT, poll=0.2)


async def _stream(
    sim: Sim, world: _Members, rng: random.Random, config: SoakConfig
) -> tuple[list[Fired], tuple[float, float], Counter[str], list[tuple[int, float]]]:
    """Poisson arrivals and periodic Discord faults for ``config.duration`` seconds."""
    fired: list[Fired] = []
    discord_faults: Counter[str] = Counter()
    began = time.perf_counter()
    next_fault = began + config.discord_fault_every
    rss_start: float | None = None
    rss_max = 0.0
    samples: list[tuple[int, float]] = []
    next_sample = began
    while (now := time.perf_counter()) - began < config.duration:
        if rss_start is None and now - began >= config.duration * config.warmup_share:
            rss_start = settled_rss_mb()
        if now >= next_sample:
            samples.append((round(now - began), settled_rss_mb()))
            next_sample += RSS_SAMPLE_SECONDS
        if now >= next_fault:
            _inject_discord_fault(sim.env, rng, discord_faults)
            next_fault += rng.expovariate(1 / config.discord_fault_every)
        member, channel, command, options = _request(world, rng, config)
        fired.append(fire_slash(member, channel, command, **options))
        if rss_start is not None:
            rss_max = max(rss_max, settled_rss_mb() if len(fired) % 20 == 0 else 0.0)
        await asyncio.sleep(rng.expovariate(config.rate_per_minute / 60))
    if rss_start is None:
        rss_start = settled_rss_mb()
    return fired, (rss_start, rss_max), discord_faults, samples


def _drained(sim: Sim) -> bool:
    return all(j.final and (j.notified or not j.accepted) for j in sim.jobs())


def _report(
    sim: Sim,
    fired: list[Fired],
    baseline: set[int],
    *,
    rss_start: float,
    rss_max: float,
    rss_end: float,
    discord_faults: Counter[str],
    drain: float,
    wall: float,
) -> SoakReport:
    jobs = [j for j in sim.jobs() if j.id not in baseline]
    acks = ack_latencies_ms(fired, sim.http)
    ack = Summary.of(acks.values())
    accepted = [j for j in jobs if j.accepted]
    states = Counter(j.state for j in jobs)
    errors = Counter(j.error_kind or "?" for j in jobs if j.state == "failed")
    refusals = Counter(j.refusal or "?" for j in jobs if j.state == "refused")
    return SoakReport(
        ack_p99_ms=ack.p99,
        rss_start_mb=rss_start,
        rss_end_mb=rss_end,
        accepted=len(accepted),
        completed=states["succeeded"],
        failed=states["failed"],
        refused=states["refused"],
        provoked_429=sim.fake.rate_limited,
        api_calls=sim.fake.calls + sim.fake.rate_limited,
        submitted=len(fired),
        unfinished=sum(1 for j in accepted if not j.final),
        untold=sum(1 for j in accepted if j.final and not j.notified),
        ack_ms=ack,
        rss_max_mb=rss_max,
        injected_api_faults=dict(sim.fake.injected),  # type: ignore[attr-defined]
        injected_discord_faults=dict(discord_faults),
        refusals=dict(refusals),
        errors=dict(errors),
        max_claims_in_60s=max_in_window([j.started_at for j in jobs if j.started_at]),
        drain_seconds=drain,
        wall_seconds=wall,
    )


def print_report(report: SoakReport) -> None:
    assert report.ack_ms is not None
    print(report.ack_ms.row("ack: dispatch → first response", "ms"))
    print(
        f"  requests {report.submitted}: accepted {report.accepted} = succeeded "
        f"{report.completed} + failed {report.failed} + unfinished {report.unfinished}; "
        f"refused {report.refused} {report.refusals}"
    )
    print(f"  failures by kind: {report.errors}")
    print(
        f"  every accepted job ended and its requester was told: "
        f"{verdict(report.every_job_told)} (untold {report.untold}, "
        f"drain {report.drain_seconds:.0f} s)"
    )
    print(
        f"  agent.ai: {report.api_calls} requests, injected faults {report.injected_api_faults}, "
        f"provoked 429s {report.provoked_429}: {verdict(report.provoked_429 == 0)}; "
        f"most claims in 60 s {report.max_claims_in_60s}"
    )
    print(f"  Discord: injected faults {report.injected_discord_faults}")
    print(
        f"  RSS {report.rss_start_mb:.0f} MB after warm-up, max {report.rss_max_mb:.0f} MB, "
        f"{report.rss_end_mb:.0f} MB at the end: no growth {verdict(report.no_growth)}"
    )
    trail = ", ".join(f"{t}s {mb:.0f}" for t, mb in report.rss_samples_mb)
    print(f"  RSS samples (s MB): {trail}")
    print(
        f"  Python objects: {report.python_objects_start} at the start of the stream, "
        f"{report.python_objects_end} after the drain"
    )
    print(
        f"  ack p99 < {ACK_P99_GOAL_MS:g} ms: {verdict(report.ack_p99_ms < ACK_P99_GOAL_MS)}; "
        f"wall {report.wall_seconds:.0f} s"
    )
    if report.warnings:
        top = sorted(report.warnings.items(), key=lambda kv: -kv[1])[:8]
        print("  most frequent warnings:")
        for message, count in top:
            print(f"    {count:5d} × {message[:110]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=20.0, help="requests per minute")
    args = parser.parse_args()
    print(
        f"soak: {args.duration:g} s of {args.rate:g} requests/min (seed {args.seed}), "
        f"faults on agent.ai and Discord, budget {BUDGET.per_minute}/min"
    )
    logs = count_logs()
    report = asyncio.run(run_soak(args.duration, seed=args.seed, rate_per_minute=args.rate))
    report.warnings = dict(logs.messages)
    print_report(report)
    path = write_results(f"soak-{int(args.duration)}s", {"report": report})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
