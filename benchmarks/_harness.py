"""Shared plumbing for the benchmarks that drive the real bot through SimCord.

The real :class:`bot.AvatarBot` runs inside ``simcord.Env`` against the fake
agent.ai from ``tests/fake_agent_ai.py`` on 127.0.0.1. What SimCord's actors do
not offer, and the benchmarks need, lives here:

* :func:`fire_slash` delivers an ``INTERACTION_CREATE`` exactly as
  ``MemberActor.slash`` builds it (same option encoding, same permission and
  visibility checks) but without settling the event loop afterwards, so a
  burst of interactions arrives while the bot is still busy with earlier ones.
  It uses SimCord internals (``simcord.actors`` / ``simcord.interactions``),
  pinned by the project's requirements.
* :class:`TimedHttpLog` timestamps every REST call the bot makes to SimCord,
  so an acknowledgement (``POST /interactions/{id}/{token}/callback``) can be
  measured against the instant its interaction was dispatched.
* Jobs are read straight from the SQLite file (read-only, WAL), never through
  the bot, so measuring does not queue behind the bot's own transactions.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import gc
import json
import logging
import math
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import simcord  # noqa: E402
from simcord import _settlement as sim_settlement  # noqa: E402
from simcord import actors as sim_actors  # noqa: E402
from simcord import interactions as sim_interactions  # noqa: E402
from simcord.enums import AppCommandType, InteractionType  # noqa: E402

from avatar_api.client import RetryPolicy  # noqa: E402
from avatarbot.store.base import Budget  # noqa: E402
from bot import AvatarBot  # noqa: E402
from tests.bot_world import Bots, settings_for  # noqa: E402
from tests.fake_agent_ai import FakeAgentAI  # noqa: E402

RESULTS_DIR = ROOT / "benchmarks" / "results"
MB = 1024 * 1024
ACK_PATH_SUFFIX = "/callback"


# --- numbers ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Summary:
    """Order statistics of one series (milliseconds or seconds, as the caller says)."""

    n: int
    mean: float
    p50: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Iterable[float]) -> Summary:
        ordered = sorted(values)
        if not ordered:
            return cls(0, math.nan, math.nan, math.nan, math.nan)
        return cls(
            n=len(ordered),
            mean=statistics.fmean(ordered),
            p50=nearest_rank(ordered, 0.50),
            p99=nearest_rank(ordered, 0.99),
            max=ordered[-1],
        )

    def row(self, label: str, unit: str) -> str:
        return (
            f"  {label:44} n={self.n:<4} p50 {self.p50:8.1f} {unit}  p99 {self.p99:8.1f} {unit}"
            f"  max {self.max:8.1f} {unit}"
        )


def nearest_rank(ordered: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of an already sorted, non-empty sequence."""
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


# --- memory -------------------------------------------------------------------------------


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / MB


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) for this process; False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mb() -> float:
    """VmHWM: this process's peak RSS since start or the last :func:`reset_peak_rss`."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return math.nan
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def settled_rss_mb() -> float:
    """RSS after a full collection, so a growth figure is not just uncollected garbage."""
    gc.collect()
    return rss_mb()


# --- the event loop -----------------------------------------------------------------------


class LoopLagMonitor:
    """The longest and p99 delay of a 5 ms ticker: how long the loop was blocked."""

    def __init__(self, tick: float = 0.005) -> None:
        self.tick = tick
        self.lags_ms: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="bench:loop-lag")

    async def stop(self) -> Summary:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        return Summary.of(self.lags_ms)

    async def _run(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(self.tick)
            now = time.perf_counter()
            self.lags_ms.append(max(0.0, (now - last - self.tick) * 1000))
            last = now


# --- SimCord ------------------------------------------------------------------------------


class TimedHttpLog(list[Any]):
    """SimCord's list of REST calls, with the perf_counter instant of every append."""

    def __init__(self, existing: Iterable[Any] = ()) -> None:
        super().__init__(existing)
        self.times: list[float] = [math.nan] * len(self)

    def append(self, entry: Any) -> None:
        self.times.append(time.perf_counter())
        super().append(entry)

    def since(self, index: int) -> Iterable[tuple[float, Any]]:
        return zip(self.times[index:], self[index:], strict=True)


def install_timed_log(env: simcord.Env) -> TimedHttpLog:
    log = TimedHttpLog(env.backend.http_requests)
    env.backend.http_requests = log
    return log


@dataclass(frozen=True, slots=True)
class Fired:
    """One interaction as dispatched: ids, who sent it, and when (perf_counter seconds)."""

    interaction_id: int
    token: str
    user_id: int
    guild_id: int
    command: str
    at: float


def fire_slash(
    member: simcord.MemberActor, channel: simcord.ChannelHandle, name: str, /, **options: Any
) -> Fired:
    """``member.slash(channel, name, **options)`` without settling the loop afterwards."""
    env = member._env
    member._check(channel, "view_channel")
    sim_actors._check_actor_channel(member, channel)
    parts = name.split()
    root = sim_actors._resolve_visible_command(
        member, channel.id, parts[0], AppCommandType.CHAT_INPUT
    )
    leaf, nesting = sim_interactions.walk_to_subcommand(root, parts[1:])
    leaf_options, resolved = sim_interactions.build_options(
        member, name, leaf, options, channel_id=channel.id
    )
    data: dict[str, Any] = {
        "id": root["id"],
        "name": root["name"],
        "type": root.get("type", AppCommandType.CHAT_INPUT),
        "options": sim_interactions.nest_options(root, nesting, leaf_options),
    }
    if resolved:
        data["resolved"] = resolved
    if root.get("guild_id"):
        data["guild_id"] = root["guild_id"]
    record, payload = sim_interactions.base_payload(
        env.backend,
        type=InteractionType.APPLICATION_COMMAND,
        channel_id=channel.id,
        guild_id=member.guild.id,
        user_id=member.id,
        data=data,
    )
    env._notify_dispatch_observers(record)
    at = time.perf_counter()
    env.backend.emit("INTERACTION_CREATE", payload)
    return Fired(record.id, record.token, member.id, member.guild.id, name, at)


class ClockPump:
    """Keeps SimCord's virtual clock on real time, for benchmarks about real-time behaviour.

    SimCord runs the bot's timers (``asyncio.sleep``, timeouts) on its virtual clock
    and falls back to real time only through a settle, which a bot under steady load
    may never reach. Moving the clock every ``tick`` seconds, without settling, and
    running the timers that fell due makes every sleep of the bot end on time (within
    a tick) while ``discord.utils.utcnow`` keeps matching interaction timestamps.
    """

    def __init__(self, env: simcord.Env, tick: float = 0.02) -> None:
        self.env = env
        self.tick = tick
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="bench:clock-pump")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        env = self.env
        origin = time.perf_counter() - env._virtual_time
        while True:
            await asyncio.sleep(self.tick)
            if env._operation_task is not None:
                continue  # the driver's own settle or advance_time owns the clock now
            env._move_clock(time.perf_counter() - origin)
            deadline = asyncio.get_running_loop().time() + self.tick
            sim_settlement._run_due_virtual_callbacks(env._settlement_state(), deadline)


def ack_latencies_ms(fired: Iterable[Fired], log: TimedHttpLog) -> dict[int, float]:
    """Dispatch-to-acknowledgement time of each fired interaction that was acknowledged."""
    by_path = {f"/interactions/{f.interaction_id}/{f.token}{ACK_PATH_SUFFIX}": f for f in fired}
    acks: dict[int, float] = {}
    for at, entry in log.since(0):
        if entry.method != "POST" or not entry.path.endswith(ACK_PATH_SUFFIX):
            continue
        sent = by_path.get(entry.path)
        if sent is not None and sent.interaction_id not in acks:
            acks[sent.interaction_id] = (at - sent.at) * 1000
    return acks


def ack_kinds(fired: Iterable[Fired], log: TimedHttpLog) -> dict[str, int]:
    """How the interactions were first answered: deferred (type 5) or a message (type 4)."""
    paths = {f"/interactions/{f.interaction_id}/{f.token}{ACK_PATH_SUFFIX}" for f in fired}
    kinds: dict[str, int] = {}
    for entry in log:
        if entry.method == "POST" and entry.path in paths:
            kind = {4: "message", 5: "deferred"}.get((entry.json or {}).get("type"), "other")
            kinds[kind] = kinds.get(kind, 0) + 1
            paths.discard(entry.path)
    return kinds


# --- the bot ------------------------------------------------------------------------------


@dataclass
class BotConfig:
    budget: Budget = field(default_factory=Budget)
    clock: Callable[[], datetime] | None = None
    queue_poll_seconds: float | None = None
    api_retry: RetryPolicy | None = None
    settle_timeout: float = 5.0
    worker_id: str = "bench-worker"


@dataclass
class Sim:
    env: simcord.Env
    bot: AvatarBot
    fake: FakeAgentAI
    http: TimedHttpLog
    db_path: Path

    def jobs(self) -> list[JobRow]:
        return read_jobs(self.db_path)


@contextlib.asynccontextmanager
async def running_bot(fake: FakeAgentAI, config: BotConfig) -> AsyncIterator[Sim]:
    """The real bot on a fresh SQLite file in SimCord; closed in the right order on exit."""
    await fake.start()
    with tempfile.TemporaryDirectory(prefix="avatarbot-bench-") as tmp:
        db_path = Path(tmp) / "bench.db"
        extra: dict[str, Any] = {}
        if config.clock is not None:
            extra["clock"] = extra["budget_clock"] = config.clock
        if config.queue_poll_seconds is not None:
            extra["queue_poll_seconds"] = config.queue_poll_seconds
        bots = Bots()
        bot = await bots.open(
            settings_for(fake, f"sqlite:///{db_path}"),
            worker_id=config.worker_id,
            budget=config.budget,
            api_retry=config.api_retry,
            **extra,
        )
        env = simcord.Env(
            bot, shard_count=1, settle_timeout=config.settle_timeout, check_errors=False
        )
        await env.start()
        try:
            yield Sim(env, bot, fake, install_timed_log(env), db_path)
        finally:
            await bots.close_all()
            await env.shutdown()
            await fake.stop()


async def open_guild(
    sim: Sim, name: str, members: int, *, prefix: str
) -> tuple[simcord.GuildHandle, simcord.ChannelHandle, list[simcord.MemberActor]]:
    """A server with one channel, ``members`` members, and no cooldown or quota."""
    guild = sim.env.create_guild(name=name)
    channel = guild.create_text_channel("avatars")
    actors = [guild.add_member(sim.env.create_user(f"{prefix}{i:04d}")) for i in range(members)]
    await sim.bot.store.update_guild_settings(
        guild.id, cooldown_seconds=0, user_daily_quota=0, guild_daily_quota=0
    )
    return guild, channel, actors


async def wait_until(predicate: Callable[[], bool], *, limit: float, poll: float = 0.05) -> bool:
    """Poll ``predicate`` in real time; True once it holds, False after ``limit`` seconds."""
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        if predicate():
            return True
        await asyncio.sleep(poll)
    return predicate()


# --- jobs, read from the database ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobRow:
    id: int
    guild_id: int
    user_id: int
    mode: str
    state: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    notified: bool
    error_kind: str | None
    refusal: str | None

    @property
    def final(self) -> bool:
        return self.state in {"succeeded", "failed", "refused"}

    @property
    def accepted(self) -> bool:
        return self.state != "refused"

    @property
    def queue_wait(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.started_at - self.created_at).total_seconds()

    @property
    def run_time(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


def read_jobs(db_path: Path) -> list[JobRow]:
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as conn:
        rows = conn.execute(
            "SELECT id, guild_id, user_id, mode, state, created_at, started_at, finished_at,"
            " notified, error_kind, refusal FROM jobs ORDER BY id"
        ).fetchall()
    return [
        JobRow(
            id=r[0],
            guild_id=r[1],
            user_id=r[2],
            mode=r[3],
            state=r[4],
            created_at=_utc(r[5]),
            started_at=_utc(r[6]) if r[6] else None,
            finished_at=_utc(r[7]) if r[7] else None,
            notified=bool(r[8]),
            error_kind=r[9],
            refusal=r[10],
        )
        for r in rows
    ]


def _utc(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def max_in_window(instants: list[datetime], window: timedelta = timedelta(seconds=60)) -> int:
    """The most instants that fall in any half-open window of this length."""
    ordered = sorted(instants)
    best = 0
    for index, start in enumerate(ordered):
        end = bisect.bisect_left(ordered, start + window)
        best = max(best, end - index)
    return best


# --- results ------------------------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(asdict(value))
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 3)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def write_results(name: str, payload: Mapping[str, Any]) -> Path:
    """``benchmarks/results/<name>.json`` (latest) plus a timestamped copy."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    document = {"benchmark": name, "at": stamp, "machine": machine(), **to_jsonable(payload)}
    text = json.dumps(document, indent=2, sort_keys=False)
    (RESULTS_DIR / f"{name}-{stamp}.json").write_text(text + "\n")
    latest = RESULTS_DIR / f"{name}.json"
    latest.write_text(text + "\n")
    return latest


def machine() -> dict[str, Any]:
    return {
        "cpus": psutil.cpu_count(logical=True),
        "python": sys.version.split()[0],
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
    }


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def webhook_traffic(
    fired: Iterable[Fired], log: TimedHttpLog
) -> tuple[dict[int, float], dict[int, int]]:
    """Per interaction: when its result (a message with an embed) was last sent, and how
    many requests went to its webhook (progress edits, result, follow-ups) in all."""
    by_token = {f.token: f for f in fired}
    results: dict[int, float] = {}
    counts: dict[int, int] = {}
    for at, entry in log.since(0):
        if not entry.path.startswith("/webhooks/"):
            continue
        parts = entry.path.split("/")
        sent = by_token.get(parts[3]) if len(parts) > 3 else None
        if sent is None:
            continue
        counts[sent.interaction_id] = counts.get(sent.interaction_id, 0) + 1
        if entry.method in {"PATCH", "POST"} and (entry.json or {}).get("embeds"):
            results[sent.interaction_id] = at
    return results, counts


class LogCounter(logging.Handler):
    """Counts the bot's log records by level; prints only ERROR and worse (to stderr)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.counts: dict[str, int] = {}
        self.messages: dict[str, int] = {}
        self._printer = logging.StreamHandler()
        self._printer.setLevel(logging.ERROR)

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[record.levelname] = self.counts.get(record.levelname, 0) + 1
        if record.levelno >= logging.WARNING:
            key = f"{record.name}: {record.msg}"
            self.messages[key] = self.messages.get(key, 0) + 1
        if record.levelno >= self._printer.level:
            self._printer.handle(record)


def count_logs(level: int = logging.INFO) -> LogCounter:
    """Route every log record through one :class:`LogCounter` (replacing other handlers)."""
    counter = LogCounter()
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(counter)
    root.setLevel(level)
    return counter
