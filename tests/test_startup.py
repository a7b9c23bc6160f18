"""Starting the bot: bad settings stop it with one line; the real start path syncs commands."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import sys
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import discord
import pytest
import simcord
from aiohttp import web

from avatarbot import __version__
from avatarbot.settings import Settings
from avatarbot.store import open_store
from avatarbot.store.migrations import LATEST_VERSION
from tests.bot_world import DISCORD_TOKEN, QUEUE_POLL_SECONDS, Bots, outcome
from tests.fake_agent_ai import TOKEN, FakeAgentAI
from tests.processes import run_python

ROOT = Path(__file__).resolve().parents[1]


async def run_bot_process(
    env: dict[str, str], cwd: Path, discord_api: str | None = None, *args: str
) -> tuple[int, str, str]:
    """``python bot.py ARGS`` as an admin runs it; optionally aimed at a fake Discord API."""
    done = await run_python("-c", bot_code(discord_api, *args), env=env, cwd=cwd)
    return done.code, done.stdout, done.stderr


VALID = {"DISCORD_TOKEN": DISCORD_TOKEN, "AGENT_AI_TOKEN": TOKEN}


@pytest.mark.parametrize(
    ("env", "variable", "hint"),
    [
        ({}, "DISCORD_TOKEN", "discord.com/developers"),
        ({"DISCORD_TOKEN": "not-a-token"}, "DISCORD_TOKEN", "does not look like"),
        ({"DISCORD_TOKEN": DISCORD_TOKEN}, "AGENT_AI_TOKEN", "agent.ai/user/integrations"),
        ({**VALID, "AGENT_AI_BASE_URL": "ftp://x"}, "AGENT_AI_BASE_URL", "http(s)"),
        ({**VALID, "DATABASE_URL": "mysql://x"}, "DATABASE_URL", "postgresql://"),
        ({**VALID, "DISCORD_DEV_GUILD_ID": "abc"}, "DISCORD_DEV_GUILD_ID", "server id"),
        ({**VALID, "LOG_LEVEL": "LOUD"}, "LOG_LEVEL", "DEBUG, INFO"),
        ({**VALID, "SHARD_COUNT": "2", "SHARD_IDS": "0"}, "SHARD_IDS", "not SQLite"),
        ({**VALID, "AGENT_AI_TIMEOUT": "soon"}, "AGENT_AI_TIMEOUT", "positive number of seconds"),
    ],
)
async def test_bad_settings_stop_start_up_with_one_line(
    tmp_path: Path, env: dict[str, str], variable: str, hint: str
) -> None:
    code, out, err = await run_bot_process(env, tmp_path)

    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"error: {variable}")
    assert hint in err
    assert "Traceback" not in err
    assert DISCORD_TOKEN not in err
    assert TOKEN not in err


async def test_dotenv_is_read_and_the_real_environment_wins(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"DISCORD_TOKEN={DISCORD_TOKEN}\nAGENT_AI_TOKEN=from-file\n")

    settings = Settings.from_env({**_dotenv(tmp_path), "AGENT_AI_TOKEN": "from-environment"})

    assert settings.discord_token == DISCORD_TOKEN
    assert settings.agent_ai_token == "from-environment"
    assert DISCORD_TOKEN not in repr(settings)


def _dotenv(folder: Path) -> dict[str, str]:
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(folder / ".env").items() if v is not None}


@pytest.fixture
async def rejecting_discord() -> AsyncIterator[str]:
    """A fake Discord API on loopback that answers the login like Discord does for a bad token."""

    async def unauthorized(request: web.Request) -> web.Response:
        return web.json_response({"message": "401: Unauthorized", "code": 0}, status=401)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", unauthorized)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/api/v10"
    finally:
        await runner.cleanup()


async def test_a_token_discord_rejects_stops_start_up_with_one_line(
    tmp_path: Path, rejecting_discord: str
) -> None:
    code, out, err = await run_bot_process(VALID, tmp_path, rejecting_discord)

    assert code == 2
    assert err.strip().splitlines()[-1].startswith("error: DISCORD_TOKEN was rejected by Discord")
    assert "Traceback" not in err
    assert DISCORD_TOKEN not in err + out


async def test_the_real_start_path_logs_in_syncs_and_serves(
    fake_agent_ai: FakeAgentAI, tmp_path: Path, bots: Bots
) -> None:
    """settings -> migrations -> login -> extensions -> sync, then one command served."""
    settings = Settings.from_env(
        {
            **VALID,
            "AGENT_AI_BASE_URL": fake_agent_ai.base_url,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh' / 'bot.db'}",
            "LOG_LEVEL": "DEBUG",
        }
    )
    bot = await bots.open(settings, queue_poll_seconds=QUEUE_POLL_SECONDS)
    env = simcord.Env(bot, shard_count=1)
    await env.start()
    try:
        with env.time_context():
            synced = [r for r in env.http_requests if "/commands" in str(r)]
            assert synced, "the command tree was synced at start-up"
            assert (tmp_path / "fresh" / "bot.db").exists()
            channel = env.create_guild().create_text_channel("avatars")
            member = env.guild.add_member(env.create_user("ann"))
            result = await member.slash(channel, "avatar generate", name="First")
            assert "grp_000001" in outcome(result).embeds[0].fields[0].value
    finally:
        await bots.close(bot)
        await env.shutdown()


async def test_dev_guild_sync_puts_the_commands_in_that_server(
    fake_agent_ai: FakeAgentAI, tmp_path: Path, bots: Bots
) -> None:
    bot = await bots.open(_settings(fake_agent_ai, tmp_path), queue_poll_seconds=QUEUE_POLL_SECONDS)
    env = simcord.Env(bot, shard_count=1)
    guild = env.create_guild(name="Dev")
    bot.settings = dataclasses.replace(bot.settings, dev_guild_id=guild.id)
    await env.start()
    try:
        with env.time_context():
            assert await bot.tree.fetch_commands() == []
            names = {c.name for c in await bot.tree.fetch_commands(guild=discord.Object(guild.id))}
            assert names == {"avatar", "avatar-admin"}
    finally:
        await bots.close(bot)
        await env.shutdown()


def _settings(fake: FakeAgentAI, tmp_path: Path) -> Settings:
    return Settings(
        discord_token=DISCORD_TOKEN,
        agent_ai_token=TOKEN,
        agent_ai_base_url=fake.base_url,
        database_url=f"sqlite:///{tmp_path / 'dev.db'}",
    )


# --- --version, --check, the database before the login, signals ---------------------


def test_the_version_is_one_number_in_the_package_and_in_pyproject() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["version"] == __version__ == "0.2.0"


async def test_version_prints_the_version(tmp_path: Path) -> None:
    done = await run_python(str(ROOT / "bot.py"), "--version", env={}, cwd=tmp_path)

    assert (done.code, done.stdout.strip(), done.stderr) == (0, f"avatarbot {__version__}", "")


async def test_check_migrates_the_database_and_never_logs_in(
    tmp_path: Path, rejecting_discord: str
) -> None:
    database = tmp_path / "data" / "check.db"
    env = {**VALID, "DATABASE_URL": f"sqlite:///{database}"}
    code, out, err = await run_bot_process(env, tmp_path, rejecting_discord, "--check")

    assert code == 0, err
    assert out.count("\n") == 1
    assert out.startswith("ok: ")
    assert "schema version" in out
    assert "error:" not in err
    assert "Traceback" not in err
    store = await open_store(f"sqlite:///{database}")
    try:
        assert await store.schema_version() == LATEST_VERSION
    finally:
        await store.close()


async def test_check_reports_bad_settings_with_one_line(tmp_path: Path) -> None:
    code, out, err = await run_bot_process({}, tmp_path, None, "--check")

    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert err.startswith("error: DISCORD_TOKEN")


@pytest.mark.parametrize("flag", [(), ("--check",)])
async def test_an_unreachable_database_stops_start_up_before_the_login(
    tmp_path: Path, rejecting_discord: str, flag: tuple[str, ...]
) -> None:
    env = {**VALID, "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{closed_port()}/avatarbot"}
    code, out, err = await run_bot_process(env, tmp_path, rejecting_discord, *flag)

    assert (code, out) == (2, "")
    assert err.count("\n") == 1, err
    assert err.startswith("error: DATABASE_URL: cannot open the database: ")
    assert "refused" in err.lower() or "connect call failed" in err.lower()
    assert "Traceback" not in err


@pytest.fixture
async def hanging_discord() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A fake Discord API that never answers: the bot is stuck logging in."""
    asked = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        asked.set()
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hang)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/api/v10", asked
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("moment", ["importing", "opening the database", "logging in"])
async def test_a_signal_at_any_moment_exits_0_quietly(
    tmp_path: Path, hanging_discord: tuple[str, asyncio.Event], signum: int, moment: str
) -> None:
    api, asked = hanging_discord
    env = {**VALID, "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}", "LOG_LEVEL": "DEBUG"}
    if moment == "importing":
        process = await start_python([str(ROOT / "bot.py")], env, tmp_path)
        await asyncio.sleep(0.3)  # inside the imports of discord.py and SQLAlchemy
    else:
        process = await start_python(["-c", bot_code(api)], env, tmp_path)
        if moment == "logging in":
            await asyncio.wait_for(asked.wait(), timeout=30)
        else:
            await wait_for_file(tmp_path / "bot.db")
    process.send_signal(signum)
    _, err = await asyncio.wait_for(process.communicate(), timeout=30)

    assert process.returncode == 0, err.decode()
    assert "Traceback" not in err.decode()
    assert "Unclosed" not in err.decode()


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bot_code(discord_api: str | None, *args: str) -> str:
    code = f"import sys, bot; sys.exit(bot.main({list(args)!r}))"
    if discord_api is not None:
        code = f"import discord.http; discord.http.Route.BASE = {discord_api!r}; " + code
    return code


async def start_python(
    args: list[str], env: dict[str, str], cwd: Path
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **env},
        cwd=cwd,
    )


async def wait_for_file(path: Path) -> None:
    async with asyncio.timeout(30):
        while not os.path.exists(path):  # noqa: ASYNC110, ASYNC240 - another process makes it
            await asyncio.sleep(0.01)
