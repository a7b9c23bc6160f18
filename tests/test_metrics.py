"""/healthz and /metrics of the real bot (SimCord), scraped over loopback HTTP.

The bot serves them on ``METRICS_PORT`` (port 0 here: any free port); they are
scraped while jobs wait and finish, while the Discord gateway is down and while
PostgreSQL is unreachable (a TCP proxy cut in front of it).
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import discord
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from avatarbot.metrics import BotMetrics
from avatarbot.settings import Settings, SettingsError
from bot import AvatarBot
from tests.bot_world import (
    DISCORD_TOKEN,
    QUEUE_POLL_SECONDS,
    Bots,
    World,
    outcome_fields,
    settings_for,
    sqlite_url,
)
from tests.fake_agent_ai import TOKEN, FakeAgentAI, Reply
from tests.store_fixtures import POSTGRES_SKIP_REASON, POSTGRES_URL_ENV
from tests.tcp_proxy import TcpProxy
from tests.test_faults_process import pg_execute

REQUIRED_METRICS = {
    "avatarbot_jobs",
    "avatarbot_queue_length",
    "avatarbot_agent_ai_requests",
    "avatarbot_agent_ai_request_seconds",
    "avatarbot_interaction_ack_seconds",
    "avatarbot_unknown_interactions",
}
UNKNOWN_INTERACTION = {"status": 404, "code": 10062, "message": "Unknown interaction"}


@dataclasses.dataclass
class BotDatabase:
    url: str
    proxy: TcpProxy | None = None


@pytest.fixture
async def bot_database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[BotDatabase]:
    """SQLite by default; ``postgresql`` (indirect): a fresh database behind a TcpProxy."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield BotDatabase(sqlite_url(tmp_path))
        return
    base = os.environ.get(POSTGRES_URL_ENV)
    if not base:
        pytest.skip(POSTGRES_SKIP_REASON)
    target = make_url(base)
    name = f"health_{uuid.uuid4().hex[:12]}"
    await pg_execute(base, f'CREATE DATABASE "{name}"')
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    port = await proxy.start()
    try:
        url = target.set(port=port, database=name).render_as_string(hide_password=False)
        yield BotDatabase(url, proxy)
    finally:
        await proxy.stop()
        await pg_execute(base, f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest_asyncio.fixture
async def simcord_bot(
    fake_agent_ai: FakeAgentAI, bot_database: BotDatabase, bots: Bots
) -> AvatarBot:
    """The conftest's bot, with METRICS_PORT set (0: any free port on 127.0.0.1)."""
    settings = dataclasses.replace(settings_for(fake_agent_ai, bot_database.url), metrics_port=0)
    return await bots.open(
        settings,
        worker_id="metrics-worker",
        queue_poll_seconds=QUEUE_POLL_SECONDS,
        clock=discord.utils.utcnow,
        budget_clock=discord.utils.utcnow,
    )


@pytest.fixture
async def scrape(world: World) -> AsyncIterator[Scraper]:
    # One connection per scrape: an idle keep-alive connection would be a task of the
    # bot's that SimCord cannot account for when it settles.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        yield Scraper(world.bot, session)


class Scraper:
    def __init__(self, bot: AvatarBot, session: aiohttp.ClientSession) -> None:
        assert bot.metrics_server is not None, "METRICS_PORT was set but nothing listens"
        self.base = f"http://127.0.0.1:{bot.metrics_server.port}"
        self.session = session

    async def health(self) -> tuple[int, dict[str, object]]:
        async with self.session.get(f"{self.base}/healthz") as response:
            assert response.content_type == "application/json"
            return response.status, await response.json()

    async def metrics(self) -> dict[str, float]:
        """Every sample of the exposition, keyed as Prometheus prints it (name{labels})."""
        async with self.session.get(f"{self.base}/metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = await response.text()
        families = {family.name for family in text_string_to_metric_families(text)}
        assert families >= REQUIRED_METRICS, REQUIRED_METRICS - families
        samples: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return samples


async def pause_queue(world: World, minutes: float) -> None:
    await world.bot.store.pause_dispatch(world.env.now() + timedelta(minutes=minutes))


async def test_health_and_metrics_follow_jobs_as_they_wait_and_finish(
    world: World, scrape: Scraper
) -> None:
    assert await scrape.health() == (200, {"status": "ok", "discord": True, "database": True})
    before = await scrape.metrics()
    assert before["avatarbot_queue_length"] == 0
    assert before.get('avatarbot_jobs_total{state="succeeded"}', 0) == 0

    await pause_queue(world, 2)
    waiting = await world.alice.slash(world.channel, "avatar generate", name="Queued")
    assert "in line" in waiting.response.content
    queued = await scrape.metrics()
    assert queued["avatarbot_queue_length"] == 1
    assert queued["avatarbot_interaction_ack_seconds_count"] == 1
    assert (await scrape.health())[0] == 200

    await world.env.advance_time(2 * 60 + QUEUE_POLL_SECONDS + 1)
    bob = world.member("bob")
    served = await bob.slash(world.channel, "avatar generate", name="Now")
    assert "grp_" in outcome_fields(served)["Group ID"]

    after = await scrape.metrics()
    assert after["avatarbot_queue_length"] == 0
    assert after['avatarbot_jobs_total{state="succeeded"}'] == 2
    assert after['avatarbot_agent_ai_requests_total{outcome="200"}'] == world.fake.calls == 2
    assert after["avatarbot_agent_ai_request_seconds_count"] == 2
    assert after["avatarbot_interaction_ack_seconds_count"] == 2
    assert after["avatarbot_unknown_interactions_total"] == 0


async def test_a_failed_agent_ai_call_is_counted_by_its_status(
    world: World, scrape: Scraper
) -> None:
    world.fake.script(Reply(status=400, body={"error": "bad request"}))
    await world.alice.slash(world.channel, "avatar generate")

    samples = await scrape.metrics()
    assert samples['avatarbot_agent_ai_requests_total{outcome="400"}'] == 1
    assert samples['avatarbot_jobs_total{state="failed"}'] == 1
    assert samples.get('avatarbot_jobs_total{state="succeeded"}', 0) == 0


async def test_an_acknowledgement_discord_calls_unknown_is_counted(
    world: World, scrape: Scraper
) -> None:
    world.env.inject_error("POST", "/interactions/*/*/callback", times=None, **UNKNOWN_INTERACTION)

    await world.alice.slash(world.channel, "avatar generate")

    samples = await scrape.metrics()
    assert samples["avatarbot_unknown_interactions_total"] >= 1
    assert samples["avatarbot_interaction_ack_seconds_count"] == 0
    assert world.fake.calls == 0  # nothing was queued for an interaction nobody saw answered
    assert not world.env.errors, "a late acknowledgement is a warning, never an error"
    world.env.backend.faults.clear()


async def test_health_is_503_while_the_discord_gateway_is_down(
    world: World, scrape: Scraper
) -> None:
    gateway = world.bot.get_shard(0)
    assert gateway is not None
    await gateway.disconnect()
    status, body = await scrape.health()
    assert status == 503
    assert body == {"status": "degraded", "discord": False, "database": True}
    assert (await scrape.metrics())["avatarbot_queue_length"] == 0  # /metrics still answers

    await gateway.reconnect()
    assert (await scrape.health())[0] == 200


@pytest.mark.postgres
@pytest.mark.parametrize("bot_database", ["postgresql"], indirect=True)
async def test_health_is_503_while_the_database_is_unreachable(
    world: World, scrape: Scraper, bot_database: BotDatabase
) -> None:
    assert bot_database.proxy is not None
    await world.alice.slash(world.channel, "avatar generate", name="Before")
    assert (await scrape.health())[0] == 200

    await bot_database.proxy.cut()
    status, body = await scrape.health()
    assert status == 503
    assert body == {"status": "degraded", "discord": True, "database": False}
    samples = await scrape.metrics()
    assert samples['avatarbot_jobs_total{state="succeeded"}'] == 1

    await bot_database.proxy.restore()
    assert await scrape.health() == (200, {"status": "ok", "discord": True, "database": True})


# --- settings and the registry --------------------------------------------------------

VALID = {"DISCORD_TOKEN": DISCORD_TOKEN, "AGENT_AI_TOKEN": TOKEN}


def test_without_metrics_port_no_port_is_opened() -> None:
    settings = Settings.from_env(VALID)
    assert (settings.metrics_port, settings.metrics_host) == (None, "127.0.0.1")


def test_metrics_port_and_host_are_read() -> None:
    settings = Settings.from_env({**VALID, "METRICS_PORT": " 9108 ", "METRICS_HOST": "0.0.0.0"})
    assert (settings.metrics_port, settings.metrics_host) == (9108, "0.0.0.0")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("METRICS_PORT", "http"),
        ("METRICS_PORT", "0"),
        ("METRICS_PORT", "65536"),
        ("METRICS_PORT", "-1"),
        ("METRICS_PORT", "٩١"),  # Arabic-Indic digits: isdigit() but not a port
        ("METRICS_HOST", "http://example.org"),
        ("METRICS_HOST", "two words"),
    ],
)
def test_a_bad_metrics_setting_is_one_clear_line(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({**VALID, variable: value})
    message = str(raised.value)
    assert raised.value.variable == variable
    assert message.startswith(variable)
    assert "\n" not in message
    assert value not in message


def test_each_bot_has_its_own_registry() -> None:
    first, second = BotMetrics(), BotMetrics()
    first.job_ended("succeeded")
    assert b'avatarbot_jobs_total{state="succeeded"} 1.0' in first.exposition()
    assert b"avatarbot_jobs_total{" not in second.exposition()
