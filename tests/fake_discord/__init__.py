"""A loopback Discord for the real discord.py client: REST, CDN and gateway on 127.0.0.1.

Unlike SimCord, discord.py here logs in over HTTP, opens a real (zlib-compressed)
gateway websocket, and every acknowledgement is a real ``POST .../callback``.
It models what matters to a bot under load: several sessions per shard (each
gets every event of its shard), shard routing ``(guild_id >> 22) % count``, the
first callback wins (40060 after), 3 s to answer (10062 after), 15-minute
interaction tokens, rate-limit buckets, Discord's message limits.

Example (the client runs in the same event loop here; a subprocess works the same
way with ``FAKE_DISCORD_URL`` and :func:`client.use_fake_discord_from_env`)::

    fake = FakeDiscord()
    await fake.start()
    use_fake_discord(fake.base_url)          # discord.http.Route.BASE + gateway URL
    guild = fake.create_guild("Club")
    channel = fake.create_channel(guild, "general")
    alice = fake.create_member(guild, "alice", locale="de")
    asyncio.create_task(bot.start(BOT_TOKEN))
    await fake.wait_for_sessions(1)
    await fake.wait_until(lambda: fake.commands[None])   # the bot synced its tree
    record = fake.slash(alice, channel, "avatar generate", {"name": "Me"})
    await fake.wait_for_ack(record)
    record.ack_latency, record.callback_type, record.original.content
"""

from __future__ import annotations

from .model import (
    Attachment,
    CallbackAttempt,
    CallbackType,
    Channel,
    ChannelType,
    Guild,
    InteractionRecord,
    InteractionType,
    Member,
    Message,
    Overwrite,
    RestCall,
    Role,
    User,
    shard_of,
)
from .rest import Limit, RateLimits
from .server import BOT_TOKEN, FakeDiscord, File

__all__ = [
    "BOT_TOKEN",
    "Attachment",
    "CallbackAttempt",
    "CallbackType",
    "Channel",
    "ChannelType",
    "FakeDiscord",
    "File",
    "Guild",
    "InteractionRecord",
    "InteractionType",
    "Limit",
    "Member",
    "Message",
    "Overwrite",
    "RateLimits",
    "RestCall",
    "Role",
    "User",
    "shard_of",
]
