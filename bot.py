"""Avatar Bot's entry point: it owns every lifetime.

Settings, logging, one shared aiohttp session, the agent.ai client, the store,
the job dispatcher, the extensions and the command sync are created here, in
that order, and closed here in reverse.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import signal
import socket
import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime

import aiohttp
import discord
from discord.ext import commands

from avatar_api import AvatarClient, RetryPolicy
from avatar_api.client import DEFAULT_TIMEOUT
from avatarbot.jobs import JobRelay
from avatarbot.logs import setup_logging
from avatarbot.metrics import BotMetrics, HealthChecks, MetricsServer, probe
from avatarbot.queue import Dispatcher
from avatarbot.service import AvatarService, utc_now
from avatarbot.settings import Settings, SettingsError
from avatarbot.store import StoreConfigError, open_store
from avatarbot.store.base import Budget, Store

log = logging.getLogger(__name__)

INITIAL_EXTENSIONS: tuple[str, ...] = ("cogs.avatar", "cogs.admin")
SHUTDOWN_GRACE_SECONDS = 20.0
QUEUE_POLL_SECONDS = 5.0
# agent.ai's published limits per token, kept with a 1 s margin (see Budget.margin).
DEFAULT_BUDGET = Budget(per_minute=20, per_day=1000)


# The bot never joins voice: no warnings about voice libraries at start-up.
discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False


class AvatarBot(commands.AutoShardedBot):
    """The bot. Build it with :class:`Settings`; everything else is made in :meth:`setup_hook`.

    Always sharded: with ``SHARD_COUNT`` unset, one process runs as many shards as
    Discord recommends (a bot in more than 2,500 servers needs several); with
    ``SHARD_IDS``, this process runs only those of ``SHARD_COUNT``.
    """

    http_session: aiohttp.ClientSession
    avatar_client: AvatarClient
    store: Store
    dispatcher: Dispatcher
    service: AvatarService
    metrics_server: MetricsServer | None = None

    def __init__(
        self,
        settings: Settings,
        *,
        extensions: Sequence[str] = INITIAL_EXTENSIONS,
        worker_id: str | None = None,
        queue_poll_seconds: float = QUEUE_POLL_SECONDS,
        clock: Callable[[], datetime] | None = None,
        budget: Budget = DEFAULT_BUDGET,
        api_timeout: float = DEFAULT_TIMEOUT,
        api_retry: RetryPolicy | None = None,
    ) -> None:
        intents = discord.Intents.none()
        intents.guilds = True  # channels, roles and permissions; nothing else is needed
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            allowed_mentions=discord.AllowedMentions.none(),
            help_command=None,
            shard_count=settings.shard_count,
            shard_ids=list(settings.shard_ids) if settings.shard_ids is not None else None,
        )
        self.settings = settings
        self.extensions_to_load = tuple(extensions)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.job_relay = JobRelay()
        self.queue_poll_seconds = queue_poll_seconds
        # An injected clock (tests on virtual time) is the only clock, the budget's too;
        # none: the process clock, and the database's clock for the shared budget.
        self.clock = clock or utc_now
        self._store_clock = clock
        self.budget = budget
        self.api_timeout = api_timeout
        self.api_retry = api_retry
        self.metrics = BotMetrics()

    async def setup_hook(self) -> None:
        self.http_session = aiohttp.ClientSession(
            trace_configs=[self.metrics.agent_ai_trace(self.settings.agent_ai_base_url)]
        )
        await self.start_metrics_server()
        self.avatar_client = AvatarClient(
            self.settings.agent_ai_token,
            base_url=self.settings.agent_ai_base_url,
            session=self.http_session,
            timeout=self.api_timeout,
            retry=self.api_retry,
        )
        self.store = await open_store(self.settings.database_url, clock=self._store_clock)
        self.service = AvatarService(self.store, clock=self.clock)
        self.dispatcher = Dispatcher(
            self.store,
            self.avatar_client,
            worker_id=self.worker_id,
            listener=self.job_relay,
            budget=self.budget,
            poll_interval=self.queue_poll_seconds,
            clock=self.clock,
            on_job_end=self.metrics.job_ended,
            on_queue_length=self.metrics.queue_length_is,
        )
        for extension in self.extensions_to_load:
            await self.load_extension(extension)
        await self.sync_commands()
        await self.dispatcher.start()
        log.info("ready to serve as worker %s", self.worker_id)

    async def start_metrics_server(self) -> None:
        """Serve /healthz and /metrics when METRICS_PORT is set (before the database opens)."""
        if self.settings.metrics_port is None:
            return
        health = HealthChecks(self.discord_connected, self.database_answers)
        server = MetricsServer(
            self.metrics, health, self.settings.metrics_host, self.settings.metrics_port
        )
        await server.start()
        self.metrics_server = server

    def discord_connected(self) -> bool:
        """Ready, and every shard this process runs has its gateway connection open."""
        shards = self.shards.values()
        return (
            self.is_ready()
            and not self.is_closed()
            and bool(shards)
            and not any(s.is_closed() for s in shards)
        )

    async def database_answers(self) -> bool:
        if not hasattr(self, "store"):
            return False
        return await probe(lambda: self.store.get_job(0), "the database")

    async def sync_commands(self) -> None:
        """Sync the command tree, once per version of it across the whole fleet."""
        guild_id = self.settings.dev_guild_id
        guild = None if guild_id is None else discord.Object(id=guild_id)
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        scope = "global" if guild_id is None else str(guild_id)
        async with self.store.command_sync(scope, self.command_fingerprint(guild)) as mine:
            if not mine:
                log.info("commands already synced (same version); not syncing again")
                return
            synced = await self.tree.sync(guild=guild)
        if guild_id is None:
            log.info("synced %d commands globally (may take up to an hour to appear)", len(synced))
        else:
            log.info("synced %d commands to server %d", len(synced), guild_id)

    def command_fingerprint(self, guild: discord.abc.Snowflake | None) -> str:
        """A hash of exactly what :meth:`CommandTree.sync` would send."""
        payload = [command.to_dict(self.tree) for command in self.tree.get_commands(guild=guild)]
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    async def close(self) -> None:
        """Stop taking jobs, let in-flight calls finish (bounded), then close in reverse."""
        if hasattr(self, "dispatcher"):
            await self.dispatcher.stop(timeout=SHUTDOWN_GRACE_SECONDS)
        await super().close()
        await self.close_services()

    async def close_services(self) -> None:
        """Stop the dispatcher, then close the store and the HTTP session; safe to repeat."""
        if hasattr(self, "dispatcher"):
            await self.dispatcher.stop(timeout=SHUTDOWN_GRACE_SECONDS)
        if self.metrics_server is not None:
            await self.metrics_server.close()
            self.metrics_server = None
        if hasattr(self, "store"):
            await self.store.close()
        if hasattr(self, "http_session") and not self.http_session.closed:
            await self.http_session.close()


async def run_bot(settings: Settings) -> None:
    bot = AvatarBot(settings)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, lambda s=signum: _request_shutdown(bot, s))
    async with bot:
        await bot.start(settings.discord_token)


def _request_shutdown(bot: AvatarBot, signum: int) -> None:
    log.info("received %s; finishing in-flight jobs and shutting down", signal.Signals(signum).name)
    bot.loop.create_task(bot.close())


def main() -> int:
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        return _fail(str(error))
    setup_logging(settings.log_level, secrets=(settings.discord_token, settings.agent_ai_token))
    try:
        asyncio.run(run_bot(settings))
    except discord.LoginFailure:
        return _fail(
            "DISCORD_TOKEN was rejected by Discord: reset it at "
            "https://discord.com/developers/applications (your app -> Bot) and update .env"
        )
    except discord.PrivilegedIntentsRequired:
        return _fail("Discord refused the bot's intents; check the bot's settings in the portal")
    except aiohttp.ClientConnectionError:
        return _fail("could not reach Discord; check the machine's network connection")
    except StoreConfigError as error:
        return _fail(f"DATABASE_URL: {error}")
    except KeyboardInterrupt:
        pass
    except Exception as error:
        log.debug("start-up failed", exc_info=True)
        return _fail(
            f"could not start ({type(error).__name__}); run with LOG_LEVEL=DEBUG for details"
        )
    return 0


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
