"""Starting the bot: bad settings stop it with one line; the real start path syncs commands."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import discord
import pytest
import simcord
from aiohttp import web

from avatarbot.settings import Settings
from bot import AvatarBot
from tests.bot_world import DISCORD_TOKEN, QUEUE_POLL_SECONDS, outcome
from tests.fake_agent_ai import TOKEN, FakeAgentAI
from tests.processes import run_python

ROOT = Path(__file__).resolve().parents[1]


async def run_bot_process(
    env: dict[str, str], cwd: Path, *, discord_api: str | None = None
) -> tuple[int, str, str]:
    """``python bot.py`` as an admin runs it; optionally aimed at a fake Discord API."""
    code = "import sys, bot; sys.exit(bot.main())"
    if discord_api is not None:
        code = f"import discord.http; discord.http.Route.BASE = {discord_api!r}; " + code
    done = await run_python("-c", code, env=env, cwd=cwd)
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
    code, out, err = await run_bot_process(VALID, tmp_path, discord_api=rejecting_discord)

    assert code == 2
    assert err.strip().splitlines()[-1].startswith("error: DISCORD_TOKEN was rejected by Discord")
    assert "Traceback" not in err
    assert DISCORD_TOKEN not in err + out


async def test_the_real_start_path_logs_in_syncs_and_serves(
    fake_agent_ai: FakeAgentAI, tmp_path: Path
) -> None:
    """settings -> login -> migrations -> extensions -> sync, then one command served."""
    settings = Settings.from_env(
        {
            **VALID,
            "AGENT_AI_BASE_URL": fake_agent_ai.base_url,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh' / 'bot.db'}",
            "LOG_LEVEL": "DEBUG",
        }
    )
    bot = AvatarBot(settings, queue_poll_seconds=QUEUE_POLL_SECONDS)
    env = simcord.Env(bot)
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
        await bot.close_services()
        await env.shutdown()


async def test_dev_guild_sync_puts_the_commands_in_that_server(
    fake_agent_ai: FakeAgentAI, tmp_path: Path
) -> None:
    bot = _bot(fake_agent_ai, tmp_path, dev_guild_id=None)
    env = simcord.Env(bot)
    guild = env.create_guild(name="Dev")
    bot.settings = dataclasses.replace(bot.settings, dev_guild_id=guild.id)
    await env.start()
    try:
        with env.time_context():
            assert await bot.tree.fetch_commands() == []
            names = {c.name for c in await bot.tree.fetch_commands(guild=discord.Object(guild.id))}
            assert names == {"avatar", "avatar-admin"}
    finally:
        await bot.close_services()
        await env.shutdown()


def _bot(fake: FakeAgentAI, tmp_path: Path, *, dev_guild_id: int | None) -> AvatarBot:
    settings = Settings(
        discord_token=DISCORD_TOKEN,
        agent_ai_token=TOKEN,
        agent_ai_base_url=fake.base_url,
        database_url=f"sqlite:///{tmp_path / 'dev.db'}",
        dev_guild_id=dev_guild_id,
    )
    return AvatarBot(settings, queue_poll_seconds=QUEUE_POLL_SECONDS)
