"""Point discord.py at a fake Discord: the one module here that imports discord.

discord.py builds REST URLs from ``discord.http.Route.BASE`` and connects an
unsharded client (or one given ``shard_count``) to
``DiscordWebSocket.DEFAULT_GATEWAY``; an AutoShardedClient without a count asks
``GET /gateway/bot`` for the URL. READY's ``resume_gateway_url`` covers RESUMEs.
"""

from __future__ import annotations

import os

import discord
import discord.gateway
import discord.http
import yarl

BASE_URL_VARIABLE = "FAKE_DISCORD_URL"


def use_fake_discord(base_url: str) -> None:
    """Send every REST call and gateway connection of this process to ``base_url``."""
    base = base_url.rstrip("/")
    discord.http.Route.BASE = f"{base}/api/v10"
    gateway = base.replace("http://", "ws://").replace("https://", "wss://") + "/gateway"
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)


def use_fake_discord_from_env() -> str | None:
    """:func:`use_fake_discord` with ``$FAKE_DISCORD_URL`` if it is set; returns it."""
    base_url = os.environ.get(BASE_URL_VARIABLE)
    if base_url:
        use_fake_discord(base_url)
    return base_url


def restore_real_discord() -> None:
    discord.http.Route.BASE = f"https://discord.com/api/v{discord.http.INTERNAL_API_VERSION}"
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL("wss://gateway.discord.gg/")
