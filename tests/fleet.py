"""A fleet of real bot processes on one PostgreSQL database, for tests and benchmarks.

Each process is ``python -m tests.fleet_bot`` (the real ``bot.main()``), logged in
to the loopback fake Discord and talking to the fake agent.ai, both served from
the calling process. Every fleet gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.fake_agent_ai import TOKEN, FakeAgentAI
from tests.fake_discord import BOT_TOKEN, FakeDiscord
from tests.store_fixtures import _pg_execute as pg_execute

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class BotProcess:
    name: str
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def error_lines(self) -> list[str]:
        """Lines at ERROR or above, and tracebacks: a healthy fleet logs none."""
        return [
            line
            for line in self.log().splitlines()
            if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")
        ]

    async def kill(self) -> None:
        """SIGKILL: no shutdown at all, as a crash or an OOM kill."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self, timeout: float = 30.0) -> int:  # noqa: ASYNC109 - a shutdown bound
        """SIGTERM, as systemd or Docker stop it; returns the exit status."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            await self.kill()
            return -9


@dataclass
class Fleet:
    discord: FakeDiscord
    agent: FakeAgentAI
    database_url: str
    logs: Path
    budget: str = ""
    processes: list[BotProcess] = field(default_factory=list)

    def environment(self, **extra: str) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT),
            "DISCORD_TOKEN": BOT_TOKEN,
            "AGENT_AI_TOKEN": TOKEN,
            "AGENT_AI_BASE_URL": self.agent.base_url,
            "DATABASE_URL": self.database_url,
            "FAKE_DISCORD_URL": self.discord.base_url,
            "LOG_LEVEL": "INFO",
            **({"FLEET_BUDGET": self.budget} if self.budget else {}),
            **extra,
        }

    async def start_process(self, name: str, **extra: str) -> BotProcess:
        log_path = self.logs / f"{name}.log"
        with log_path.open("wb") as log_file:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.fleet_bot",
                cwd=self.logs,
                env=self.environment(**extra),
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
            )
        bot = BotProcess(name, process, log_path)
        self.processes.append(bot)
        return bot

    async def wait_until_logged(self, bot: BotProcess, text: str, within: float = 30.0) -> None:
        deadline = asyncio.get_running_loop().time() + within
        while text not in bot.log():
            if bot.process.returncode is not None:
                raise AssertionError(f"{bot.name} exited {bot.process.returncode}:\n{bot.log()}")
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{bot.name} never logged {text!r}:\n{bot.log()[-3000:]}")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        for bot in self.processes:
            await bot.stop()


@contextlib.asynccontextmanager
async def fresh_database(server_url: str) -> AsyncIterator[str]:
    """A new, empty database next to the one ``server_url`` names; dropped on exit."""
    base = make_url(server_url)
    name = f"{base.database}_fleet_{uuid.uuid4().hex[:8]}"
    admin = base.render_as_string(hide_password=False)
    await pg_execute(admin, f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        await pg_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.asynccontextmanager
async def running_fleet(
    server_url: str,
    logs: Path,
    *,
    agent: FakeAgentAI,
    discord: FakeDiscord | None = None,
    budget: str = "",
) -> AsyncIterator[Fleet]:
    """The fakes started, a fresh database; every process stopped and all closed on exit."""
    discord = discord or FakeDiscord()
    await discord.start()
    await agent.start()
    try:
        async with fresh_database(server_url) as database_url:
            fleet = Fleet(discord, agent, database_url, logs, budget)
            try:
                yield fleet
            finally:
                await fleet.close()
    finally:
        await agent.stop()
        await discord.stop()
