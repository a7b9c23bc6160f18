"""Avatar Bot's entry point: it owns every lifetime.

Settings, logging, one shared aiohttp session, the agent.ai client, the store,
the job dispatcher, the extensions and the command sync are created here, in
that order, and closed here in reverse.
"""

from __future__ import annotations

import asyncio
import contextlib
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

INITIAL_EXTENSIONS: tuple[str, ...] = ("cogs.avatar", "cogs.admin", "cogs.job_actions")
SHUTDOWN_GRACE_SECONDS = 20.0
QUEUE_POLL_SECONDS = 5.0
DEFAULT_BUDGET = Budget(per_minute=20, per_day=1000)  # agent.ai's published limits per token


# The bot never joins voice: no warnings about voice libraries at start-up.
discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False


class AvatarBot(commands.Bot):
    """The bot. Build it with :class:`Settings`; everything else is made in :meth:`setup_hook`."""

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
        clock: Callable[[], datetime] = utc_now,
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
        )
        self.settings = settings
        self.extensions_to_load = tuple(extensions)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.job_relay = JobRelay()
        self.queue_poll_seconds = queue_poll_seconds
        self.clock = clock
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
        self.store = await open_store(self.settings.database_url)
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
        ws = self.ws
        return self.is_ready() and not self.is_closed() and ws is not None and ws.open

    async def database_answers(self) -> bool:
        if not hasattr(self, "store"):
            return False
        return await probe(lambda: self.store.get_job(0), "the database")

    async def sync_commands(self) -> None:
        guild_id = self.settings.dev_guild_id
        if guild_id is None:
            synced = await self.tree.sync()
            log.info("synced %d commands globally (may take up to an hour to appear)", len(synced))
            return
        guild = discord.Object(id=guild_id)
        self.tree.copy_global_to(guild=guild)
        synced = await self.tree.sync(guild=guild)
        log.info("synced %d commands to server %d", len(synced), guild_id)

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
