"""Acknowledgement latency through a real gateway websocket and real REST, bot vs bare.

``python -m benchmarks.gateway_ack_bench [--repetitions 3] [--generates 60] [--uploads 8]
[--api-delay 1.0] [--profile] [--py-spy] [--keep-logs]``

Each repetition starts two processes, each logged in to its own loopback fake
Discord (``tests/fake_discord``) over HTTP and a zlib-compressed gateway
websocket, exactly as they would log in to Discord:

* the bare bot (``benchmarks/bare_bot.py``): Avatar Bot's commands, each only
  deferring; its upload shows the consent button, whose press only acknowledges;
* Avatar Bot itself, started through its own ``bot.main()``
  (``benchmarks/run_on_fake_discord.py``) on a fresh SQLite file, with the
  fake agent.ai (``tests/fake_agent_ai.py``) answering after ``--api-delay``.

Each receives the same burst in a fresh server: ``--generates`` ``/avatar generate``
and ``--uploads`` ``/avatar upload`` (four 12 MP phone photos each, served by the
fake's CDN) from as many members, all dispatched at once, then each uploader
presses the consent button as soon as it appears. The bare bot's burst runs
first and the bare bot is stopped before Avatar Bot's burst, so the two never
share the CPU. Latency is from the fake writing INTERACTION_CREATE to the
websocket to the first ``POST .../callback`` arriving at its REST (accepted or
not: a callback after 3 s is refused with 10062, and counted).

``--profile`` adds one more burst on Avatar Bot under cProfile (the event loop's
thread only, from the burst to the last consent acknowledgement) and prints
where its time went and the top entries; ``--py-spy`` adds one sampled by
py-spy (``--py-spy-seconds`` from the burst, idle included, no tracing
overhead). Neither run is in the table. The stats are kept in
``benchmarks/results/`` (``gateway_ack_bot.prof``, ``gateway_ack_bot_py_spy.txt``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._harness import Summary, write_results  # noqa: E402
from benchmarks._loop_profile import cprofile_report, py_spy_report  # noqa: E402
from benchmarks._phone_photos import check_upload, phone_photos  # noqa: E402
from benchmarks.bare_bot import CONSENT_LABEL  # noqa: E402
from tests.fake_agent_ai import TOKEN as AGENT_AI_TOKEN  # noqa: E402
from tests.fake_agent_ai import FakeAgentAI  # noqa: E402
from tests.fake_discord import (  # noqa: E402
    BOT_TOKEN,
    FakeDiscord,
    File,
    InteractionRecord,
    Member,
)
from tests.fake_discord.process import BotProcess, bot_process  # noqa: E402

START_TIMEOUT = 90.0
ACK_TIMEOUT = 20.0
GUILD_SETTLE = 0.5  # the bot's cache takes the new server's GUILD_CREATE
RESULTS = ROOT / "benchmarks" / "results"
PY_SPY_RATE = 500  # samples per second
REACTION_SECONDS = 0.25  # a member sees the consent button before pressing it


@dataclass
class Contender:
    """One bot process and the fake Discord it is logged in to."""

    name: str
    fake: FakeDiscord
    bot: BotProcess

    @property
    def process(self) -> asyncio.subprocess.Process:
        return self.bot.process

    def log_text(self) -> str:
        return self.bot.log_text()


@dataclass
class Burst:
    slash: list[InteractionRecord]
    buttons: list[InteractionRecord]
    seconds: float

    @property
    def dispatch_spread_ms(self) -> float:
        """How long the fake took to write the whole burst to the websocket."""
        sent = [r.dispatched_at for r in self.slash if r.dispatched_at is not None]
        return (max(sent) - min(sent)) * 1000 if sent else 0.0


@dataclass
class Figures:
    slash_ms: list[float] = field(default_factory=list)
    button_ms: list[float] = field(default_factory=list)
    unanswered: int = 0
    unanswered_kinds: list[str] = field(default_factory=list)
    refused: dict[int, int] = field(default_factory=dict)  # Discord error code -> count
    error_lines: int = 0
    dispatch_spread_ms: list[float] = field(default_factory=list)

    def add(self, burst: Burst) -> None:
        self.dispatch_spread_ms.append(burst.dispatch_spread_ms)
        for records, series in ((burst.slash, self.slash_ms), (burst.buttons, self.button_ms)):
            for record in records:
                latency = first_callback_ms(record)
                if latency is None:
                    self.unanswered += 1
                    self.unanswered_kinds.append(
                        f"{record.type.name}{'' if record.dispatched_at else ' (never dispatched)'}"
                    )
                else:
                    series.append(latency)
                for attempt in record.refused_callbacks:
                    self.refused[attempt.code or 0] = self.refused.get(attempt.code or 0, 0) + 1


def first_callback_ms(record: InteractionRecord) -> float | None:
    if not record.callbacks or record.dispatched_at is None:
        return None
    return (record.callbacks[0].at - record.dispatched_at) * 1000


@contextlib.asynccontextmanager
async def contender(
    name: str, module: str, workdir: Path, extra_env: dict[str, str]
) -> AsyncIterator[Contender]:
    async with (
        FakeDiscord(token=BOT_TOKEN) as fake,
        bot_process(
            fake, workdir, name=name, module=module, env=extra_env, start_timeout=START_TIMEOUT
        ) as bot,
    ):
        yield Contender(name, fake, bot)


def interleaved(generates: int, uploads: int) -> list[bool]:
    """Where the uploads fall in the burst (True), spread evenly among the generates."""
    total = generates + uploads
    slots = {round((i + 0.5) * total / uploads) for i in range(uploads)} if uploads else set()
    order = [i in slots for i in range(total)]
    while sum(order) < uploads:  # rounding collisions
        order[order.index(False)] = True
    return order


async def burst(
    fake: FakeDiscord, repetition: str, generates: int, uploads: int, photos: Sequence[File]
) -> Burst:
    guild = fake.create_guild(f"Burst {repetition}")
    channel = fake.create_channel(guild, "avatars")
    order = interleaved(generates, uploads)
    members = [fake.create_member(guild, f"member-{repetition}-{i:03d}") for i in range(len(order))]
    await asyncio.sleep(GUILD_SETTLE)
    started = time.perf_counter()
    slash: list[InteractionRecord] = []
    uploaders: list[tuple[Member, InteractionRecord]] = []
    for index, (member, is_upload) in enumerate(zip(members, order, strict=True)):
        if is_upload:
            options: dict[str, Any] = {f"photo{n}": photo for n, photo in enumerate(photos, 1)}
            record = fake.slash(member, channel, "avatar upload", options)
            uploaders.append((member, record))
        else:
            options = {"name": f"Avatar {index}", "style": "Realistic", "pose": "half_body"}
            record = fake.slash(member, channel, "avatar generate", options)
        slash.append(record)
    presses = await asyncio.gather(*(press_consent(fake, m, r) for m, r in uploaders))
    buttons = [p for p in presses if p is not None]
    everything = slash + buttons
    with contextlib.suppress(TimeoutError):
        await fake.wait_until(lambda: all(r.callbacks for r in everything), within=ACK_TIMEOUT)
    return Burst(slash, buttons, time.perf_counter() - started)


async def press_consent(
    fake: FakeDiscord, member: Member, upload: InteractionRecord
) -> InteractionRecord | None:
    def shown() -> bool:
        original = upload.original
        return original is not None and any(
            b.get("label") == CONSENT_LABEL for b in original.buttons()
        )

    try:
        await fake.wait_until(shown, within=ACK_TIMEOUT)
    except TimeoutError:
        return None
    await asyncio.sleep(REACTION_SECONDS)
    assert upload.original is not None
    return fake.press_button(member, upload.original, label=CONSENT_LABEL)


def bot_env(agent: FakeAgentAI, workdir: Path, tag: str) -> dict[str, str]:
    return {
        "AGENT_AI_TOKEN": AGENT_AI_TOKEN,
        "AGENT_AI_BASE_URL": agent.base_url,
        "DATABASE_URL": f"sqlite:///{workdir / f'bot-{tag}.db'}",
    }


def keep_logs(workdir: Path) -> None:
    keep = RESULTS / "gateway_ack_logs"
    keep.mkdir(parents=True, exist_ok=True)
    for log in workdir.glob("*.log"):
        log.replace(keep / log.name)


def error_lines(text: str) -> int:
    return sum(1 for line in text.splitlines() if " ERROR " in line or "Traceback" in line)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    photo_bytes = phone_photos()
    check_upload(photo_bytes)
    photos = [File(name, data, "image/jpeg", 4000, 3000) for name, data in photo_bytes]
    agent = FakeAgentAI(keep_photos=False)
    agent.delay = args.api_delay
    await agent.start()
    figures = {"bare": Figures(), "bot": Figures()}
    per_run: list[dict[str, Any]] = []
    profile_text = ""
    try:
        with tempfile.TemporaryDirectory(prefix="gateway-ack-") as tmp:
            workdir = Path(tmp)
            for repetition in range(1, args.repetitions + 1):
                row = await one_repetition(args, agent, workdir, repetition, photos, figures)
                per_run.append(row)
                print_run(row)
            if args.profile:
                profile_text = await profiled_burst(args, agent, workdir, photos)
            if args.py_spy:
                profile_text += "\n" + await sampled_burst(args, agent, workdir, photos)
            if args.keep_logs:
                keep_logs(workdir)
    finally:
        await agent.stop()
    return {
        "config": vars(args),
        "runs": per_run,
        "pooled": {name: summarize(f) for name, f in figures.items()},
        "profile": profile_text,
    }


async def one_repetition(
    args: argparse.Namespace,
    agent: FakeAgentAI,
    workdir: Path,
    repetition: int,
    photos: Sequence[File],
    figures: dict[str, Figures],
) -> dict[str, Any]:
    row: dict[str, Any] = {"repetition": repetition}
    tag = str(repetition)
    async with contender(f"bare-{tag}", "benchmarks.bare_bot", workdir, {}) as bare:
        done = await burst(bare.fake, f"bare{tag}", args.generates, args.uploads, photos)
        await asyncio.sleep(0.5)
        run_figures = Figures()
        run_figures.add(done)
        figures["bare"].add(done)
        row["bare"] = summarize(run_figures)
    environment = bot_env(agent, workdir, tag)
    async with contender(
        f"bot-{tag}", "benchmarks.run_on_fake_discord", workdir, environment
    ) as bot:
        done = await burst(bot.fake, f"bot{tag}", args.generates, args.uploads, photos)
        await asyncio.sleep(0.5)
        run_figures = Figures()
        run_figures.add(done)
        run_figures.error_lines = error_lines(bot.log_text())
        figures["bot"].add(done)
        figures["bot"].error_lines += run_figures.error_lines
        row["bot"] = summarize(run_figures)
    return row


async def profiled_burst(
    args: argparse.Namespace, agent: FakeAgentAI, workdir: Path, photos: Sequence[File]
) -> str:
    """One burst with cProfile on the bot's main thread, from just before the burst to
    its last acknowledgement."""
    stats_path = workdir / "bot.prof"
    environment = {**bot_env(agent, workdir, "profile"), "PROFILE_TO": str(stats_path)}
    async with contender(
        "bot-profile", "benchmarks.run_on_fake_discord", workdir, environment
    ) as bot:
        bot.process.send_signal(signal.SIGUSR1)
        await asyncio.sleep(0.2)
        done = await burst(bot.fake, "profile", args.generates, args.uploads, photos)
        bot.process.send_signal(signal.SIGUSR2)
        await bot.fake.wait_until(stats_path.exists, within=30)
        await asyncio.sleep(0.5)  # dump_stats finishes writing
    keep_file(stats_path, "gateway_ack_bot.prof")
    interactions = len(done.slash) + len(done.buttons)
    text = cprofile_report(stats_path, done.seconds, interactions)
    print(text)
    return text


async def sampled_burst(
    args: argparse.Namespace, agent: FakeAgentAI, workdir: Path, photos: Sequence[File]
) -> str:
    """One burst sampled by py-spy (no tracing overhead), idle time included."""
    raw = workdir / "bot-py-spy.txt"
    py_spy = Path(sys.executable).with_name("py-spy")
    if not py_spy.exists():
        return "py-spy is not installed (make test installs requirements-dev.txt)\n"
    async with contender(
        "bot-py-spy", "benchmarks.run_on_fake_discord", workdir, bot_env(agent, workdir, "spy")
    ) as bot:
        pid = bot.process.pid
        sampler = await asyncio.create_subprocess_exec(
            str(py_spy), "record", "--pid", str(pid), "--rate", str(PY_SPY_RATE),
            "--duration", str(args.py_spy_seconds), "--format", "raw", "--threads",
            "--idle", "--nonblocking", "--output", str(raw),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        await asyncio.sleep(0.5)
        await burst(bot.fake, "spy", args.generates, args.uploads, photos)
        said, _ = await sampler.communicate()
    if not raw.exists():
        text = f"py-spy failed: {said.decode(errors='replace')}\n"
        print(text)
        return text
    keep_file(raw, "gateway_ack_bot_py_spy.txt")
    text = py_spy_report(raw, pid, PY_SPY_RATE)
    print(text)
    return text


def keep_file(path: Path, name: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    if path.exists():
        (RESULTS / name).write_bytes(path.read_bytes())


def summarize(figures: Figures) -> dict[str, Any]:
    return {
        "slash_ms": Summary.of(figures.slash_ms),
        "button_ms": Summary.of(figures.button_ms),
        "unanswered": figures.unanswered,
        "unanswered_kinds": figures.unanswered_kinds,
        "refused": figures.refused,
        "error_lines": figures.error_lines,
        "dispatch_spread_ms": figures.dispatch_spread_ms,
    }


def cell(summary: Summary) -> str:
    if summary.n == 0:
        return "—"
    return f"{summary.p50:.0f} / {summary.p99:.0f} / {summary.max:.0f} ms"


def print_run(row: dict[str, Any]) -> None:
    bare, bot = row["bare"], row["bot"]
    print(
        f"run {row['repetition']}: slash bare {cell(bare['slash_ms'])}, bot {cell(bot['slash_ms'])}"
        f"; button bare {cell(bare['button_ms'])}, bot {cell(bot['button_ms'])}"
        f"; bot refused {bot['refused'] or 'none'}, unanswered {bot['unanswered']},"
        f" ERROR/traceback lines {bot['error_lines']};"
        f" burst written in {bare['dispatch_spread_ms'][0]:.0f} (bare)"
        f" / {bot['dispatch_spread_ms'][0]:.0f} ms",
        flush=True,
    )


def ratio(bot: Summary, bare: Summary) -> str:
    if bot.n == 0 or bare.n == 0:
        return "—"
    return f"{bot.p99 / bare.p99:.1f}×"


def print_table(result: dict[str, Any]) -> None:
    bare, bot = result["pooled"]["bare"], result["pooled"]["bot"]
    floor = max(bare["slash_ms"].p99, 100.0)
    print()
    print("| p50 / p99 / max | bare discord.py bot | Avatar Bot | bot p99 / bare p99 |")
    print("| --- | --- | --- | --- |")
    print(
        f"| slash ack | {cell(bare['slash_ms'])} | {cell(bot['slash_ms'])} "
        f"| {ratio(bot['slash_ms'], bare['slash_ms'])} |"
    )
    button_vs_floor = bot["button_ms"].max / floor if bot["button_ms"].n else float("nan")
    print(
        f"| consent-button ack | {cell(bare['button_ms'])} | {cell(bot['button_ms'])} "
        f"| {ratio(bot['button_ms'], bare['button_ms'])} (slowest vs bare slash p99:"
        f" {button_vs_floor:.1f}×) |"
    )
    print(
        f"\nAvatar Bot: callbacks refused {bot['refused'] or 'none'}, unanswered"
        f" {bot['unanswered']}, ERROR/traceback log lines {bot['error_lines']};"
        f" bare: refused {bare['refused'] or 'none'}, unanswered {bare['unanswered']}"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--generates", type=int, default=60)
    parser.add_argument("--uploads", type=int, default=8)
    parser.add_argument("--api-delay", type=float, default=1.0)
    parser.add_argument("--profile", action="store_true", help="one more burst under cProfile")
    parser.add_argument("--py-spy", action="store_true", help="one more burst under py-spy")
    parser.add_argument("--py-spy-seconds", type=int, default=8)
    parser.add_argument("--keep-logs", action="store_true", help="keep the bots' logs")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    result = asyncio.run(run(args))
    print_table(result)
    path = write_results("gateway_ack_bench", result)
    print(f"\nresults: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
