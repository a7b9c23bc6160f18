"""Where an event loop's time goes: cProfile stats or py-spy samples of the main thread,
summed by category (SQLAlchemy, the database driver, discord.py, aiohttp, JSON, logging…),
plus per-interaction counts of database round trips and the top functions."""

from __future__ import annotations

import io
import pstats
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

# First match wins, on "<file>:<function>" (cProfile gives absolute paths, py-spy paths
# relative to site-packages or the standard library); what matches nothing is "other".
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("idle: waiting for I/O (epoll)", ("select.epoll", "selectors.py:")),
    ("SQLAlchemy", ("sqlalchemy/",)),
    ("database driver and its thread hand-off", ("aiosqlite/", "asyncpg/", "SimpleQueue")),
    ("greenlet (SQLAlchemy's async bridge)", ("greenlet",)),
    ("discord.py", ("discord/",)),
    ("aiohttp / yarl / multidict", ("aiohttp/", "yarl/", "multidict/")),
    ("json", ("json/", "orjson")),
    ("logging", ("logging/",)),
    ("asyncio", ("asyncio/",)),
    ("sockets", ("_socket.socket", "socket.py:")),
    ("locks and threads (thread hand-offs)", ("_thread.lock", "threading.py:", "concurrent/")),
    ("zlib (gateway frames)", ("zlib", "Decompress")),
    ("Avatar Bot's own code", ("cogs/", "avatarbot/", "avatar_api/", "bot.py:")),
)
ROUND_TRIP_MARKS = (
    ("SQL statements executed", "sqlalchemy/engine/base.py", "_execute_context"),
    ("transactions (connection check-outs)", "sqlalchemy/pool/base.py", "_checkout"),
    ("calls handed to the aiosqlite thread", "aiosqlite/core.py", "_execute"),
    ("log records", "logging/__init__.py", "_log"),
    ("json.dumps", "json/__init__.py", "dumps"),
    ("json.loads", "json/__init__.py", "loads"),
)


def category_of(where: str) -> str:
    return next((name for name, marks in CATEGORIES if any(m in where for m in marks)), "other")


def category_table(rows: Iterable[tuple[str, float]], unit: str, heading: str) -> str:
    sums: Counter[str] = Counter()
    for where, amount in rows:
        sums[category_of(where)] += amount
    total = sum(sums.values()) or 1.0
    lines = [f"| {heading} | {unit} | share |", "| --- | --- | --- |"]
    for name, amount in sums.most_common():
        shown = f"{amount:.2f}" if isinstance(amount, float) else str(amount)
        lines.append(f"| {name} | {shown} | {amount / total:.0%} |")
    return "\n".join(lines) + "\n\n"


def cprofile_report(path: Path, window: float, interactions: int, top: int = 20) -> str:
    """Self time by category, round trips per interaction, then the top functions."""
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    entries = stats.stats.items()  # type: ignore[attr-defined]
    total = stats.total_tt  # type: ignore[attr-defined]
    out.write(f"cProfile: burst {window:.2f} s; main thread profiled {total:.2f} s\n\n")
    rows = [(f"{filename}:{function}", row[2]) for (filename, _, function), row in entries]
    out.write(category_table(rows, "s (self)", "main thread, cProfile self time"))
    lines = [
        f"| per interaction ({interactions} interactions) | calls | per interaction |",
        "| --- | --- | --- |",
    ]
    for label, file_mark, function in ROUND_TRIP_MARKS:
        calls = sum(
            row[1]
            for (filename, _, name), row in entries
            if file_mark in filename and name == function
        )
        lines.append(f"| {label} | {calls} | {calls / max(interactions, 1):.1f} |")
    out.write("\n".join(lines) + "\n")
    for key in ("cumulative", "tottime"):
        out.write(f"\n--- top {top} by {key} ---\n")
        stats.sort_stats(key).print_stats(top)
    return out.getvalue()


def parse_py_spy(path: Path, main_tid: int) -> list[tuple[list[str], int]]:
    """py-spy ``--format raw --threads`` lines of the main thread: ``(frames, samples)``,
    each frame as ``<file>:<function>``, outermost first."""
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not frames or not frames[0].startswith(f"thread ({main_tid})"):
            continue
        stacks.append(([_frame(f) for f in frames[1:]], int(count)))
    return stacks


def _frame(text: str) -> str:
    """``"run (asyncio/events.py:80)"`` -> ``"asyncio/events.py:run"``."""
    function, _, where = text.partition(" (")
    filename = where.rstrip(")").rsplit(":", 1)[0]
    return f"{filename}:{function}"


def py_spy_report(path: Path, main_tid: int, rate: int, top: int = 20) -> str:
    stacks = parse_py_spy(path, main_tid)
    samples = sum(count for _, count in stacks)
    out = io.StringIO()
    out.write(f"py-spy: {samples} samples of the main thread at {rate}/s (idle included)\n\n")
    out.write(
        category_table(
            ((frames[-1], count) for frames, count in stacks if frames),
            "samples (leaf)",
            "main thread, py-spy leaf frames",
        )
    )
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    for frames, count in stacks:
        for frame in set(frames):
            inclusive[frame] += count
        if frames:
            leaf[frames[-1]] += count
    busy = samples - sum(c for f, c in leaf.items() if category_of(f).startswith("idle"))
    out.write(f"busy samples: {busy} of {samples} ({busy / max(samples, 1):.0%})\n")
    # The frames every sample shares (runpy, asyncio.run, bot.main) say nothing.
    inclusive = Counter({f: c for f, c in inclusive.items() if c < 0.95 * samples})
    own = Counter({f: c for f, c in inclusive.items() if category_of(f) == CATEGORIES[-1][0]})
    for title, counter in (
        ("inclusive", inclusive),
        ("inclusive, Avatar Bot's code", own),
        ("self (leaf)", leaf),
    ):
        out.write(f"\n--- top {top} {title}, share of all samples ---\n")
        for frame, count in counter.most_common(top):
            out.write(f"{count / max(samples, 1):6.1%}  {_short(frame)}\n")
    return out.getvalue()


def _short(frame: str) -> str:
    for marker in ("site-packages/", "/lib/python3.11/", "/wtgw/", "/work/"):
        if marker in frame:
            return frame.split(marker, 1)[1]
    return frame
