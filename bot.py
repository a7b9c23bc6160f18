"""Avatar Bot's entry point: :func:`main` owns every lifetime.

Settings and logging first; then, under ``async with``, one aiohttp session,
the store (opened and migrated before the Discord login), the dispatcher and
the bot that is handed them. Leaving the ``async with`` blocks closes them in
reverse: the bot stops the dispatcher (in-flight calls finish, bounded) before
it disconnects, then the store and the session close.
"""

from __future__ import annotations

import os
import signal
import sys

if __name__ == "__main__":
    # Before the slow imports: a signal while they run ends the process quietly too;
    # nothing is open yet. main() installs the real handlers.
    for _signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_signum, lambda *_: os._exit(0))

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import FrameType
from typing import TypeVar

import aiohttp
import discord
from discord.ext import commands

from avatar_api import AvatarClient, RetryPolicy
from avatarbot import __version__
from avatarbot.jobs import JobRelay
from avatarbot.logs import setup_logging
from avatarbot.metrics import BotMetrics, HealthChecks, MetricsServer, probe
from avatarbot.queue import Dispatcher
from avatarbot.sealing import TokenSealer
from avatarbot.service import AvatarService
from avatarbot.settings import Settings, SettingsError
from avatarbot.store import StoreConfigError, StoreUnavailableError, open_store
from avatarbot.store.base import Budget, Store
from avatarbot.timeutil import utc_now
from cogs.translator import CatalogTranslator

log = logging.getLogger(__name__)
T = TypeVar("T")

INITIAL_EXTENSIONS: tuple[str, ...] = (
    "cogs.delivery",
    "cogs.avatar",
    "cogs.admin",
    "cogs.job_actions",
)
SHUTDOWN_GRACE_SECONDS = 20.0
QUEUE_POLL_SECONDS = 5.0
# agent.ai's published limits per token, kept with a 1 s margin (see Budget.margin).
DEFAULT_BUDGET = Budget(per_minute=20, per_day=1000)


# The bot never joins voice: no warnings about voice libraries at start-up.
discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False


@dataclass(frozen=True, slots=True)
class Services:
    """What the bot is handed: made and closed by :func:`open_services`."""

    settings: Settings
    avatar_client: AvatarClient
    store: Store
    dispatcher: Dispatcher
    service: AvatarService
    job_relay: JobRelay
    worker_id: str
    clock: Callable[[], datetime]
    metrics: BotMetrics
    sealer: TokenSealer


@contextlib.asynccontextmanager
async def open_services(
    settings: Settings,
    *,
    worker_id: str | None = None,
    queue_poll_seconds: float = QUEUE_POLL_SECONDS,
    clock: Callable[[], datetime] = utc_now,
    budget_clock: Callable[[], datetime] | None = None,
    budget: Budget = DEFAULT_BUDGET,
    api_retry: RetryPolicy | None = None,
) -> AsyncIterator[Services]:
    """One HTTP session, the migrated store and the (not yet started) dispatcher.

    ``budget_clock`` (tests on virtual time) replaces the database's clock, which
    every process of a fleet otherwise shares for the agent.ai budget.
    """
    worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    metrics = BotMetrics()
    trace = metrics.agent_ai_trace(settings.agent_ai_base_url)
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        client = AvatarClient(
            settings.agent_ai_token,
            base_url=settings.agent_ai_base_url,
            session=session,
            timeout=settings.agent_ai_timeout,
            retry=api_retry,
        )
        store = await open_store(settings.database_url, clock=clock, budget_clock=budget_clock)
        try:
            relay = JobRelay()
            dispatcher = Dispatcher(
                store,
                client,
                worker_id=worker_id,
                listener=relay,
                budget=budget,
                poll_interval=queue_poll_seconds,
                clock=clock,
                on_job_end=metrics.job_ended,
                on_queue_length=metrics.queue_length_is,
            )
            service = AvatarService(store, dispatcher, owner=worker_id, clock=clock)
            sealer = TokenSealer(settings.discord_token, clock=lambda: clock().timestamp())
            yield Services(
                settings,
                client,
                store,
                dispatcher,
                service,
                relay,
                worker_id,
                clock,
                metrics,
                sealer,
            )
        finally:
            await store.close()


class AvatarBot(commands.AutoShardedBot):
    """The bot, handed its :class:`Services`; it starts the dispatcher and stops it once.

    Always sharded: with ``SHARD_COUNT`` unset, one process runs as many shards as
    Discord recommends (a bot in more than 2,500 servers needs several); with
    ``SHARD_IDS``, this process runs only those of ``SHARD_COUNT``.
    """

    def __init__(
        self, services: Services, *, extensions: Sequence[str] = INITIAL_EXTENSIONS
    ) -> None:
        intents = discord.Intents.none()
        intents.guilds = True  # channels, roles and permissions; nothing else is needed
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            allowed_mentions=discord.AllowedMentions.none(),
            help_command=None,
            shard_count=services.settings.shard_count,
            shard_ids=_shard_ids(services.settings),
        )
        self.settings = services.settings
        self.avatar_client = services.avatar_client
        self.store = services.store
        self.dispatcher = services.dispatcher
        self.service = services.service
        self.job_relay = services.job_relay
        self.worker_id = services.worker_id
        self.clock = services.clock
        self.metrics = services.metrics
        self.sealer = services.sealer
        self.metrics_server: MetricsServer | None = None
        self.extensions_to_load = tuple(extensions)

    async def setup_hook(self) -> None:
        for extension in self.extensions_to_load:
            await self.load_extension(extension)
        await self.tree.set_translator(CatalogTranslator())
        await self.sync_commands()
        await self.dispatcher.start()
        log.info("ready to serve as worker %s", self.worker_id)

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
        return await probe(lambda: self.store.get_job(0), "the database")

    async def close(self) -> None:
        """Stop taking jobs and let in-flight calls finish (bounded), then disconnect."""
        if not self.is_closed():
            await self.dispatcher.stop(timeout=SHUTDOWN_GRACE_SECONDS)
        await super().close()


@contextlib.asynccontextmanager
async def serving_metrics(bot: AvatarBot) -> AsyncIterator[None]:
    """Serve /healthz and /metrics for ``bot`` while inside, when METRICS_PORT is set."""
    settings = bot.settings
    if settings.metrics_port is None:
        yield
        return
    health = HealthChecks(bot.discord_connected, bot.database_answers)
    server = MetricsServer(bot.metrics, health, settings.metrics_host, settings.metrics_port)
    await server.start()
    bot.metrics_server = server
    try:
        yield
    finally:
        bot.metrics_server = None
        await server.close()


def _shard_ids(settings: Settings) -> list[int] | None:
    return list(settings.shard_ids) if settings.shard_ids is not None else None


async def run_bot(settings: Settings) -> None:
    async with (
        open_services(settings, budget=DEFAULT_BUDGET) as services,
        AvatarBot(services) as bot,
        serving_metrics(bot),
    ):
        await bot.start(settings.discord_token)


async def check(settings: Settings) -> str:
    """What ``--check`` reports: the database is reachable and its schema up to date."""
    store = await open_store(settings.database_url)
    try:
        version = await store.schema_version()
    finally:
        await store.close()
    return f"settings read; {store.backend.value} database at schema version {version}"


class _Stop(Exception):
    """SIGTERM, raised where SIGINT raises KeyboardInterrupt."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def _run(work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work()``; SIGINT or SIGTERM cancel it, so every ``async with`` unwinds."""

    async def runner() -> T:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, _cancel, task, signum)
        return await work()

    return asyncio.run(runner())


def _cancel(task: asyncio.Task[T], signum: int) -> None:
    log.info("received %s; finishing in-flight jobs and shutting down", signal.Signals(signum).name)
    task.cancel()


def main(argv: Sequence[str] | None = None) -> int:
    # Until the event loop takes over, both signals unwind like Ctrl-C.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_stop)
    try:
        return _main(argv)
    except (KeyboardInterrupt, _Stop, asyncio.CancelledError):
        return 0
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)


def _main(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="bot.py", description="Run Avatar Bot.")
    parser.add_argument("--version", action="version", version=f"avatarbot {__version__}")
    parser.add_argument(
        "--check",
        action="store_true",
        help="check the settings and the database (and apply migrations), then exit",
    )
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        return _fail(str(error))
    setup_logging(settings.log_level, secrets=(settings.discord_token, settings.agent_ai_token))
    try:
        if args.check:
            print(f"ok: {_run(lambda: check(settings))}")
        else:
            _run(lambda: run_bot(settings))
    except discord.LoginFailure:
        return _fail(
            "DISCORD_TOKEN was rejected by Discord: reset it at "
            "https://discord.com/developers/applications (your app -> Bot) and update .env"
        )
    except discord.PrivilegedIntentsRequired:
        return _fail("Discord refused the bot's intents; check the bot's settings in the portal")
    except aiohttp.ClientConnectionError:
        return _fail("could not reach Discord; check the machine's network connection")
    except (StoreConfigError, StoreUnavailableError) as error:
        return _fail(f"DATABASE_URL: {error}")
    except (KeyboardInterrupt, _Stop, asyncio.CancelledError):
        return 0
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
