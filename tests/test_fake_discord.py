"""The loopback fake Discord, driven by the real discord.py client over HTTP and a websocket."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import discord
import pytest
from discord import app_commands
from discord.ext import commands

from tests.fake_agent_ai import TOKEN as AGENT_AI_TOKEN
from tests.fake_agent_ai import FakeAgentAI
from tests.fake_discord import (
    BOT_TOKEN,
    CallbackType,
    FakeDiscord,
    File,
    InteractionRecord,
    Limit,
    Member,
    RateLimits,
)
from tests.fake_discord.client import restore_real_discord, use_fake_discord
from tests.fake_discord.model import LOADING
from tests.fake_discord.process import bot_process
from tests.fake_discord.rest import ALREADY_ACKNOWLEDGED, UNKNOWN_INTERACTION

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(callback_deadline=0.5) as fake:
        use_fake_discord(fake.base_url)
        try:
            yield fake
        finally:
            restore_real_discord()


class Outcomes:
    """What each client saw: who handled which interaction, and the errors it got."""

    def __init__(self) -> None:
        self.handled: list[tuple[str, int]] = []
        self.errors: list[tuple[str, int]] = []


class GoView(discord.ui.View):
    @discord.ui.button(label="Go")
    async def go(self, interaction: discord.Interaction, _: discord.ui.Button[GoView]) -> None:
        await interaction.response.edit_message(content="pressed", view=None)


class NameModal(discord.ui.Modal, title="Your name"):
    name: discord.ui.TextInput[NameModal] = discord.ui.TextInput(label="Name", custom_id="name")

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"hello {self.name.value}", ephemeral=True)


def tiny_bot(
    label: str,
    outcomes: Outcomes,
    *,
    factory: Callable[..., commands.Bot] = commands.Bot,
    delay: float = 0.0,
    **options: Any,
) -> commands.Bot:
    intents = discord.Intents.none()
    intents.guilds = True
    bot = factory(command_prefix="!", intents=intents, guild_ready_timeout=0.05, **options)

    @bot.tree.command(description="Defers, then edits its reply")
    async def ping(interaction: discord.Interaction) -> None:
        await asyncio.sleep(delay)
        try:
            await interaction.response.defer(ephemeral=True, thinking=True)
        except discord.HTTPException as error:
            outcomes.errors.append((label, error.code))
            return
        outcomes.handled.append((label, interaction.id))
        await interaction.edit_original_response(content=f"pong from {label}")

    @bot.tree.command(description="Shows a button")
    async def button(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("press it", view=GoView(), ephemeral=True)

    @bot.tree.command(description="Shows a modal")
    async def ask(interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(NameModal())

    @bot.tree.command(description="Reads a photo")
    @app_commands.describe(photo="a photo", note="a note")
    async def size(
        interaction: discord.Interaction, photo: discord.Attachment, note: str | None = None
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        data = await photo.read()
        await interaction.followup.send(f"{photo.filename}: {len(data)} bytes ({note})")

    async def setup_hook() -> None:
        await bot.tree.sync()

    bot.setup_hook = setup_hook  # type: ignore[method-assign]
    return bot


@contextlib.asynccontextmanager
async def running(*bots: commands.Bot) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(bot.start(BOT_TOKEN)) for bot in bots]
    try:
        yield
    finally:
        for bot in bots:
            await bot.close()
        for task in tasks:
            with contextlib.suppress(Exception):
                await task


async def edited(fake: FakeDiscord, *records: InteractionRecord) -> None:
    """Wait until each deferred reply has been edited (the command has finished)."""
    await fake.wait_until(
        lambda: all(r.original is not None and not r.original.loading for r in records)
    )


def world(fake: FakeDiscord) -> tuple[Any, Any, Member]:
    guild = fake.create_guild("Club", locale="fr")
    channel = fake.create_channel(guild, "general")
    return guild, channel, fake.create_member(guild, "alice", locale="de")


async def test_slash_command_is_deferred_then_edited(fake: FakeDiscord) -> None:
    _, channel, alice = world(fake)
    outcomes = Outcomes()
    bot = tiny_bot("a", outcomes)
    async with running(bot):
        await fake.wait_for_sessions(1)
        await fake.wait_until(lambda: "ping" in fake.commands[None])
        record = fake.slash(alice, channel, "ping")
        await edited(fake, record)

    assert record.callback_type is CallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
    assert record.ack_latency is not None
    assert 0 < record.ack_latency < record.ack.at - record.created_at + 1  # type: ignore[union-attr]
    assert record.original is not None
    assert record.original.ephemeral
    assert record.original.content == "pong from a"
    assert record.original.edits[-1]["content"] == "pong from a"
    assert outcomes.handled == [("a", record.id)]
    payload = record.payload
    assert payload["guild_locale"] == "fr"
    assert payload["locale"] == "de"
    assert payload["version"] == 1
    assert payload["member"]["user"]["id"] == str(alice.id)
    callback = fake.calls("POST", "/interactions/{interaction_id}/{interaction_token}/callback")
    assert len(callback) == 1
    assert callback[0].json["type"] == 5
    assert callback[0].query == {"with_response": "1"}
    assert fake.calls("PUT", "/applications/{application_id}/commands")
    assert not any(c.status >= 400 for c in fake.rest_calls)


async def test_second_callback_is_refused_with_40060(fake: FakeDiscord) -> None:
    _, channel, alice = world(fake)
    bot = tiny_bot("a", Outcomes())
    async with running(bot):
        await fake.wait_for_sessions(1)
        await fake.wait_until(lambda: "ping" in fake.commands[None])
        record = fake.slash(alice, channel, "ping")
        await fake.wait_for_ack(record)
        async with bot.http._HTTPClient__session.post(  # type: ignore[attr-defined]
            f"{fake.api_base}/interactions/{record.id}/{record.token}/callback",
            json={"type": 4, "data": {"content": "again"}},
        ) as response:
            assert response.status == 400
            assert (await response.json())["code"] == ALREADY_ACKNOWLEDGED

    assert [c.code for c in record.refused_callbacks] == [ALREADY_ACKNOWLEDGED]
    assert record.callback_type is CallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE


async def test_late_callback_is_refused_with_10062(fake: FakeDiscord) -> None:
    _, channel, alice = world(fake)
    outcomes = Outcomes()
    bot = tiny_bot("slow", outcomes, delay=fake.callback_deadline + 0.2)
    async with running(bot):
        await fake.wait_for_sessions(1)
        await fake.wait_until(lambda: "ping" in fake.commands[None])
        record = fake.slash(alice, channel, "ping")
        await fake.wait_until(lambda: bool(outcomes.errors))

    assert outcomes.errors == [("slow", UNKNOWN_INTERACTION)]
    assert record.ack is None
    assert record.original is None


async def test_two_sessions_on_one_shard_both_get_it_and_one_ack_wins(fake: FakeDiscord) -> None:
    _, channel, alice = world(fake)
    outcomes = Outcomes()
    first, second = tiny_bot("first", outcomes), tiny_bot("second", outcomes)
    async with running(first, second):
        sessions = await fake.wait_for_sessions(2)
        await fake.wait_until(lambda: "ping" in fake.commands[None])
        record = fake.slash(alice, channel, "ping")
        await fake.wait_until(lambda: len(outcomes.handled) + len(outcomes.errors) == 2)
        await edited(fake, record)
        assert record.ack is not None
        assert fake.pid_of(record.ack.peer) == os.getpid()  # the REST socket is still open

    assert {(s.shard_id, s.shard_count) for s in sessions} == {(0, 1)}
    assert sorted(record.delivered_to) == sorted(s.id for s in sessions)
    assert len(outcomes.handled) == 1
    winner = outcomes.handled[0][0]
    assert outcomes.errors == [("second" if winner == "first" else "first", ALREADY_ACKNOWLEDGED)]
    assert len(record.callbacks) == 2
    assert record.original is not None
    assert record.original.content == f"pong from {winner}"


async def test_two_shards_get_only_their_guilds_events(fake: FakeDiscord) -> None:
    guilds = [fake.create_guild(f"shard {n}", shard=(n, 2)) for n in (0, 1)]
    channels = [fake.create_channel(g, "general") for g in guilds]
    members = [fake.create_member(g, f"member {n}") for n, g in enumerate(guilds)]
    outcomes = Outcomes()
    bots = [
        tiny_bot(
            f"shard{n}", outcomes, factory=commands.AutoShardedBot, shard_count=2, shard_ids=[n]
        )
        for n in (0, 1)
    ]
    async with running(*bots):
        await fake.wait_for_sessions(2)
        await fake.wait_until(lambda: "ping" in fake.commands[None])
        records = [fake.slash(m, c, "ping") for m, c in zip(members, channels, strict=True)]
        await edited(fake, *records)
        assert [len(b.guilds) for b in bots] == [1, 1]
        assert [b.guilds[0].id for b in bots] == [g.id for g in guilds]

    by_shard = {s.id: s.shard_id for s in fake.sessions}
    assert [[by_shard[s] for s in r.delivered_to] for r in records] == [[0], [1]]
    assert sorted(outcomes.handled) == [("shard0", records[0].id), ("shard1", records[1].id)]
    assert not outcomes.errors


async def test_auto_sharded_bot_runs_every_shard_it_is_given(fake: FakeDiscord) -> None:
    fake.recommended_shards = 2
    guilds = [fake.create_guild(f"shard {n}", shard=(n, 2)) for n in (0, 1)]
    channels = [fake.create_channel(g, "general") for g in guilds]
    members = [fake.create_member(g, f"member {n}") for n, g in enumerate(guilds)]
    outcomes = Outcomes()
    bot = tiny_bot("all", outcomes, factory=commands.AutoShardedBot)  # asks GET /gateway/bot

    async def identify_at_once(shard_id: int | None, *, initial: bool = False) -> None:
        pass  # discord.py waits 5 s between IDENTIFYs by default, as Discord requires

    bot.before_identify_hook = identify_at_once  # type: ignore[method-assign]
    async with running(bot):
        await fake.wait_for_sessions(2)
        await fake.wait_until(lambda: "ping" in fake.commands[None])
        records = [fake.slash(m, c, "ping") for m, c in zip(members, channels, strict=True)]
        await edited(fake, *records)
        assert sorted(bot.shards) == [0, 1]

    assert fake.calls("GET", "/gateway/bot")
    assert sorted(s.shard_id for s in fake.sessions) == [0, 1]
    assert all(r.ack is not None for r in records)


async def test_button_modal_and_attachment(fake: FakeDiscord) -> None:
    _, channel, alice = world(fake)
    bot = tiny_bot("a", Outcomes())
    photo = b"\xff\xd8\xff" + bytes(5000)
    async with running(bot):
        await fake.wait_for_sessions(1)
        await fake.wait_until(lambda: "button" in fake.commands[None])

        shown = fake.slash(alice, channel, "button")
        await fake.wait_for_ack(shown)
        assert shown.original is not None
        pressed = fake.press_button(alice, shown.original, label="Go")
        await fake.wait_for_ack(pressed)

        asked = fake.slash(alice, channel, "ask")
        await fake.wait_for_ack(asked)
        submitted = fake.submit_modal(alice, asked, {"name": "Ada"})
        await fake.wait_for_ack(submitted)

        sized = fake.slash(alice, channel, "size", {"photo": File("me.jpg", photo), "note": "hi"})
        await fake.wait_until(lambda: bool(sized.followups))

    assert pressed.callback_type is CallbackType.UPDATE_MESSAGE
    assert shown.original.content == "pressed"
    assert shown.original.components == []
    assert asked.callback_type is CallbackType.MODAL
    assert submitted.original is not None
    assert submitted.original.content == "hello Ada"
    assert sized.followups[0].content == f"me.jpg: {len(photo)} bytes (hi)"
    assert sized.original is not None
    assert sized.original.flags & LOADING


async def test_resume_after_a_dropped_connection_replays_nothing_twice(fake: FakeDiscord) -> None:
    _, channel, alice = world(fake)
    outcomes = Outcomes()
    bot = tiny_bot("a", outcomes)
    async with running(bot):
        [session] = await fake.wait_for_sessions(1)
        await fake.wait_until(lambda: "ping" in fake.commands[None])
        await fake.drop_connection(session)
        await fake.wait_until(lambda: session.resumes == 1 and session.connected)
        record = fake.slash(alice, channel, "ping")
        await edited(fake, record)

    assert fake.identifies == 1
    assert record.delivered_to == [session.id]


async def test_avatar_bot_process_generates_through_the_fake(
    fake: FakeDiscord, fake_agent_ai: FakeAgentAI, tmp_path: Path
) -> None:
    """Avatar Bot's own bot.main(), as a process, end to end: the shim, the login,
    the command sync, the acknowledgement, the queue, the public result."""
    _, channel, alice = world(fake)
    env = {
        "AGENT_AI_TOKEN": AGENT_AI_TOKEN,
        "AGENT_AI_BASE_URL": fake_agent_ai.base_url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
    }
    async with bot_process(fake, tmp_path, env=env) as bot:
        record = fake.slash(alice, channel, "avatar generate", {"name": "Ada", "pose": "close_up"})
        await fake.wait_until(lambda: bool(fake.channel_messages(channel)), within=15)
        log = bot.log_text()

    assert record.callback_type is CallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
    assert record.original is not None
    assert record.original.ephemeral
    [result] = fake.channel_messages(channel)
    assert result in record.followups
    assert "grp_000001" in str(result.embeds)
    assert fake_agent_ai.calls == 1
    assert " ERROR " not in log
    assert "Traceback" not in log


async def test_channel_messages_dms_and_rate_limit_buckets() -> None:
    limits = RateLimits(per_route={"POST /channels/{channel_id}/messages": Limit(2, 0.3)})
    async with FakeDiscord(rate_limits=limits) as fake:
        use_fake_discord(fake.base_url)
        try:
            guild, channel, alice = world(fake)
            closed = fake.create_member(guild, "bob")
            closed.user.dms_open = False
            bot = tiny_bot("a", Outcomes())
            async with running(bot):
                await fake.wait_for_sessions(1)
                target = await bot.fetch_channel(channel.id)
                assert isinstance(target, discord.TextChannel)
                started = time.perf_counter()
                for n in range(3):
                    await target.send(f"message {n}")
                took = time.perf_counter() - started
                await (await bot.fetch_user(alice.id)).send("hello")
                with pytest.raises(discord.Forbidden) as refused:
                    await (await bot.fetch_user(closed.id)).send("hello")
        finally:
            restore_real_discord()

    assert [m.content for m in fake.channel_messages(channel)] == [f"message {n}" for n in range(3)]
    assert took >= 0.2  # discord.py waited for the bucket's reset, as the headers said
    sent = fake.calls("POST", "/channels/{channel_id}/messages")
    assert sent[0].status == 200
    assert [m.content for m in fake.dms_to(alice.user)] == ["hello"]
    assert refused.value.code == 50007
