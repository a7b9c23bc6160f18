"""A bot as a real process, logged in to a :class:`~tests.fake_discord.FakeDiscord`.

``module`` is run with ``python -m`` from the repository root with the fake's
URL in ``FAKE_DISCORD_URL`` (see :mod:`tests.fake_discord.client`) and the bot
token in ``DISCORD_TOKEN``; ``benchmarks.run_on_fake_discord`` runs Avatar Bot's
own ``bot.main()`` that way. Several processes may share one fake: each gets its
own gateway session(s), on the same shard unless their ``SHARD_*`` say otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from .client import BASE_URL_VARIABLE
from .gateway import Session
from .server import FakeDiscord

ROOT = Path(__file__).resolve().parents[2]
AVATAR_BOT = "benchmarks.run_on_fake_discord"


@dataclass
class BotProcess:
    name: str
    process: asyncio.subprocess.Process
    log_path: Path
    sessions: list[Session]

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def stop(self, signum: int = signal.SIGTERM, grace: float = 30.0) -> int:
        """Send ``signum`` (SIGKILL to simulate a crash) and wait; kill after ``grace``."""
        if self.process.returncode is None:
            self.process.send_signal(signum)
            try:
                await asyncio.wait_for(self.process.wait(), grace)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        assert self.process.returncode is not None
        return self.process.returncode


@contextlib.asynccontextmanager
async def bot_process(
    fake: FakeDiscord,
    log_dir: Path,
    *,
    name: str = "bot",
    module: str = AVATAR_BOT,
    env: Mapping[str, str] | None = None,
    sessions: int = 1,
    start_timeout: float = 90.0,
) -> AsyncIterator[BotProcess]:
    """Start the process, wait until it has ``sessions`` ready gateway sessions and has
    registered its commands; stop it (SIGTERM) on exit."""
    log_path = log_dir / f"{name}.log"
    environment = {
        **os.environ,
        BASE_URL_VARIABLE: fake.base_url,
        "DISCORD_TOKEN": fake.token,
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    known = len(fake.sessions)
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", module, cwd=ROOT, env=environment, stdout=log, stderr=log
        )
    bot = BotProcess(name, process, log_path, [])

    def started() -> bool:
        if process.returncode is not None:
            raise RuntimeError(f"{name} exited at start-up:\n{bot.log_text()[-3000:]}")
        bot.sessions = [s for s in fake.sessions[known:] if s.ready_sent and s.connected]
        return len(bot.sessions) >= sessions and any(fake.commands.values())

    try:
        await fake.wait_until(started, within=start_timeout)
        yield bot
    finally:
        await bot.stop()
