"""Load: 60 concurrent ``/avatar generate`` and 8 concurrent ``/avatar upload`` (issue 3).

Run: ``.venv/bin/python benchmarks/load_bench.py [--generates 60] [--uploads 8]
[--api-delay 1.0] [--spread 2.0] [--quick]``

The real bot runs in SimCord against the fake agent.ai on 127.0.0.1, which
answers every call after ``--api-delay`` seconds. Each upload carries four
12-megapixel phone photos (about 3 MB each, EXIF with GPS) that pass the
preflight, so every upload is downloaded, normalised and face-checked in
worker threads while the generates arrive. Consent is pre-recorded, cooldown
and quotas are off, and the agent.ai budget is set high enough that the queue
never waits for it, so what is measured is the bot itself.

Three phases, each on a fresh bot:

* ``burst``: all interactions dispatched in the same instant.
* ``during-uploads``: the uploads first, then the generates evenly over
  ``--spread`` seconds, so they arrive while the photos are being processed.
* ``memory``: ``during-uploads`` again under tracemalloc (slower; its latency
  figures are not the ones to quote), for peak traced memory.

Measured: dispatch → acknowledgement (the bot's first
``POST /interactions/{id}/{token}/callback`` reaching SimCord), the bot's own
time per job on top of the API's delay (``finished_at - started_at - delay``),
upload preparation (dispatch → job queued), result delivery (job finished →
result message), the longest event-loop stall, and peak RSS growth (VmHWM,
reset at the start of each phase) and traced memory.

Goal: acknowledgement p99 < 100 ms while uploads are processed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avatarbot.store.base import Budget
from benchmarks._harness import (
    BotConfig,
    ClockPump,
    Fired,
    JobRow,
    LoopLagMonitor,
    Sim,
    Summary,
    ack_kinds,
    ack_latencies_ms,
    fire_slash,
    open_guild,
    peak_rss_mb,
    reset_peak_rss,
    rss_mb,
    running_bot,
    verdict,
    wait_until,
    webhook_traffic,
    write_results,
)
from benchmarks._phone_photos import check_upload, phone_photos
from tests.fake_agent_ai import FakeAgentAI

ACK_P99_GOAL_MS = 100.0
UNTHROTTLED = Budget(per_minute=100_000, per_day=1_000_000)
GENERATE_OPTIONS = {"age": "Senior", "pose": "close_up", "style": "Artistic"}


@dataclass(frozen=True)
class LoadConfig:
    generates: int = 60
    uploads: int = 8
    api_delay: float = 1.0
    spread: float = 2.0
    timeout: float = 150.0


@dataclass
class PhaseReport:
    name: str
    wall_seconds: float
    ack_ms: Summary
    ack_generate_ms: Summary
    ack_upload_ms: Summary
    ack_kinds: dict[str, int]
    unacknowledged: int
    overhead_generate_ms: Summary
    pre_call_ms: Summary
    post_call_ms: Summary
    overhead_upload_ms: Summary
    upload_prepare_s: Summary
    delivery_ms: Summary
    end_to_end_s: Summary
    queue_wait_s: Summary
    loop_lag_ms: Summary
    webhook_requests_per_job: Summary
    jobs: dict[str, int]
    rss_start_mb: float
    rss_peak_mb: float
    rss_end_mb: float
    traced_peak_mb: float | None
    api_calls: int
    api_max_in_flight: int
    provoked_429: int
    spec_violations: list[str] = field(default_factory=list)

    @property
    def ack_goal_met(self) -> bool:
        return self.ack_ms.p99 < ACK_P99_GOAL_MS


async def run_phase(name: str, config: LoadConfig, *, spread: float, trace: bool) -> PhaseReport:
    photos = phone_photos()
    fake = FakeAgentAI(keep_photos=False)
    fake.delay = config.api_delay
    async with running_bot(fake, BotConfig(budget=UNTHROTTLED)) as sim:
        _, channel, members = await open_guild(
            sim, "Load", config.generates + config.uploads, prefix="load"
        )
        uploaders, generators = members[: config.uploads], members[config.uploads :]
        for member in uploaders:
            await sim.bot.store.record_consent(member.id)
        reset_peak_rss()
        rss_start = rss_mb()
        if trace:
            tracemalloc.start()
        lag = LoopLagMonitor()
        lag.start()
        pump = ClockPump(sim.env)
        pump.start()
        wall0, perf0, mono0 = datetime.now(UTC), time.perf_counter(), time.monotonic()
        fired: list[Fired] = []
        for member in uploaders:
            upload = {f"photo{i}": photo for i, photo in enumerate(photos, start=1)}
            fired.append(fire_slash(member, channel, "avatar upload", **upload, name=member.name))
        for index, member in enumerate(generators):
            await _pause_until(perf0 + spread * index / max(1, len(generators)))
            fired.append(
                fire_slash(member, channel, "avatar generate", name=member.name, **GENERATE_OPTIONS)
            )
        expected = len(fired)
        done = await wait_until(lambda: _all_told(sim, expected), limit=config.timeout)
        wall = time.perf_counter() - perf0
        loop_lag = await lag.stop()
        await pump.stop()
        traced_peak = None
        if trace:
            traced_peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
        if not done:
            print(f"  warning: {name}: not every job was finished and told in time")
        return _report(
            name,
            sim,
            fired,
            config,
            wall=wall,
            to_wall=lambda at: wall0 + timedelta(seconds=at - perf0),
            arrivals={
                r.body["name"]: wall0 + timedelta(seconds=r.at - mono0) for r in fake.requests
            },
            names={m.id: m.name for m in members},
            loop_lag=loop_lag,
            rss=(rss_start, peak_rss_mb(), rss_mb()),
            traced_peak=traced_peak,
        )


async def _pause_until(instant: float) -> None:
    delay = instant - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


def _all_told(sim: Sim, expected: int) -> bool:
    jobs = sim.jobs()
    return len(jobs) >= expected and all(j.final and j.notified for j in jobs)


def _report(
    name: str,
    sim: Sim,
    fired: list[Fired],
    config: LoadConfig,
    *,
    wall: float,
    to_wall: Callable[[float], datetime],
    arrivals: dict[str, datetime],
    names: dict[int, str],
    loop_lag: Summary,
    rss: tuple[float, float, float],
    traced_peak: float | None,
) -> PhaseReport:
    jobs = sim.jobs()
    by_user = {j.user_id: j for j in jobs}
    acks = ack_latencies_ms(fired, sim.http)
    results, webhook_counts = webhook_traffic(fired, sim.http)
    modes = {f.interaction_id: f.command.split()[-1] for f in fired}
    delivery, e2e, prepare = [], [], []
    for sent in fired:
        job = by_user.get(sent.user_id)
        if job is None:
            continue
        dispatched = to_wall(sent.at)
        if modes[sent.interaction_id] == "upload":
            prepare.append((job.created_at - dispatched).total_seconds())
        if sent.interaction_id in results and job.finished_at is not None:
            told = to_wall(results[sent.interaction_id])
            delivery.append((told - job.finished_at).total_seconds() * 1000)
            e2e.append((told - dispatched).total_seconds())
    return PhaseReport(
        name=name,
        wall_seconds=wall,
        ack_ms=Summary.of(acks.values()),
        ack_generate_ms=Summary.of(v for k, v in acks.items() if modes[k] == "generate"),
        ack_upload_ms=Summary.of(v for k, v in acks.items() if modes[k] == "upload"),
        ack_kinds=ack_kinds(fired, sim.http),
        unacknowledged=len(fired) - len(acks),
        overhead_generate_ms=_overheads(jobs, "generate", config.api_delay),
        overhead_upload_ms=_overheads(jobs, "upload", config.api_delay),
        pre_call_ms=Summary.of(
            (arrivals[names[j.user_id]] - j.started_at).total_seconds() * 1000
            for j in jobs
            if j.started_at is not None and names.get(j.user_id) in arrivals
        ),
        post_call_ms=Summary.of(
            (j.finished_at - arrivals[names[j.user_id]]).total_seconds() * 1000
            - config.api_delay * 1000
            for j in jobs
            if j.finished_at is not None and names.get(j.user_id) in arrivals
        ),
        upload_prepare_s=Summary.of(prepare),
        delivery_ms=Summary.of(delivery),
        end_to_end_s=Summary.of(e2e),
        queue_wait_s=Summary.of(w for j in jobs if (w := j.queue_wait) is not None),
        loop_lag_ms=loop_lag,
        webhook_requests_per_job=Summary.of(float(c) for c in webhook_counts.values()),
        jobs=_states(jobs),
        rss_start_mb=rss[0],
        rss_peak_mb=rss[1],
        rss_end_mb=rss[2],
        traced_peak_mb=traced_peak,
        api_calls=sim.fake.calls,
        api_max_in_flight=sim.fake.max_in_flight,
        provoked_429=sim.fake.rate_limited,
        spec_violations=list(sim.fake.violations),
    )


def _overheads(jobs: list[JobRow], mode: str, api_delay: float) -> Summary:
    return Summary.of(
        (run - api_delay) * 1000
        for j in jobs
        if j.mode == mode and j.state == "succeeded" and (run := j.run_time) is not None
    )


def _states(jobs: list[JobRow]) -> dict[str, int]:
    states: dict[str, int] = {}
    for job in jobs:
        states[job.state] = states.get(job.state, 0) + 1
    states["told"] = sum(1 for j in jobs if j.notified)
    return states


def print_phase(report: PhaseReport, config: LoadConfig) -> None:
    print(f"\nphase {report.name}: {report.wall_seconds:.1f} s wall, jobs {report.jobs}")
    print(report.ack_ms.row("ack: dispatch → defer/first response", "ms"))
    print(report.ack_generate_ms.row("  of which /avatar generate", "ms"))
    print(report.ack_upload_ms.row("  of which /avatar upload", "ms"))
    print(report.overhead_generate_ms.row("bot's time per generate job beyond the API", "ms"))
    print(report.overhead_upload_ms.row("bot's time per upload job beyond the API", "ms"))
    print(report.pre_call_ms.row("  claimed → request reaches agent.ai", "ms"))
    print(report.post_call_ms.row("  agent.ai answered → outcome recorded", "ms"))
    print(report.upload_prepare_s.row("upload: dispatch → queued (photo work)", "s"))
    print(report.delivery_ms.row("delivery: job finished → result message", "ms"))
    print(report.end_to_end_s.row("end to end: dispatch → result message", "s"))
    print(report.queue_wait_s.row("queue wait (created → started)", "s"))
    print(report.loop_lag_ms.row("event-loop lag (5 ms ticker)", "ms"))
    print(report.webhook_requests_per_job.row("webhook requests per interaction", ""))
    traced = f", traced peak {report.traced_peak_mb:.0f} MB" if report.traced_peak_mb else ""
    print(
        f"  RSS {report.rss_start_mb:.0f} MB at start, peak {report.rss_peak_mb:.0f} MB, "
        f"{report.rss_end_mb:.0f} MB at end{traced}"
    )
    print(
        f"  agent.ai: {report.api_calls} calls, at most {report.api_max_in_flight} at once, "
        f"{report.provoked_429} provoked 429s; unacknowledged interactions: "
        f"{report.unacknowledged}; first answers {report.ack_kinds}"
    )
    if report.name != "memory":
        print(
            f"  goal ack p99 < {ACK_P99_GOAL_MS:g} ms: {verdict(report.ack_goal_met)} "
            f"({report.ack_ms.p99:.1f} ms)"
        )


async def run_load(config: LoadConfig, *, memory_phase: bool = True) -> list[PhaseReport]:
    check_upload(phone_photos())
    phases = [("burst", 0.0, False), ("during-uploads", config.spread, False)]
    if memory_phase:
        phases.append(("memory", config.spread, True))
    reports = []
    for name, spread, trace in phases:
        report = await run_phase(name, config, spread=spread, trace=trace)
        print_phase(report, config)
        reports.append(report)
    return reports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generates", type=int, default=60)
    parser.add_argument("--uploads", type=int, default=8)
    parser.add_argument("--api-delay", type=float, default=1.0)
    parser.add_argument("--spread", type=float, default=2.0)
    parser.add_argument("--quick", action="store_true", help="skip the tracemalloc phase")
    args = parser.parse_args()
    config = LoadConfig(args.generates, args.uploads, args.api_delay, args.spread)
    print(
        f"load: {config.generates} × /avatar generate + {config.uploads} × /avatar upload "
        f"(4 × 12 MP photos each), agent.ai answering after {config.api_delay:g} s"
    )
    reports = asyncio.run(run_load(config, memory_phase=not args.quick))
    path = write_results("load", {"config": config, "phases": reports})
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
