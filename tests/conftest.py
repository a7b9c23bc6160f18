"""Shared fixtures: the fake agent.ai on loopback and a client pointed at it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
import simcord

from avatar_api.client import AvatarClient, RetryPolicy
from bot import AvatarBot
from tests.bot_world import Bots, World, populate, sqlite_url
from tests.fake_agent_ai import TOKEN, FakeAgentAI
from tests.store_fixtures import (
    POSTGRES_URL_ENV,
    create_worker_database,
    drop_worker_database,
    worker_database_url,
)

FAST_RETRY = RetryPolicy(max_retries=2, initial_delay=0.01, max_delay=0.05, max_retry_after=0.2)
_WORKER_DATABASE = pytest.StashKey[tuple[str, str]]()  # (base URL, this worker's URL)


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, point this worker at a PostgreSQL database of its own."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    base_url = os.environ.get(POSTGRES_URL_ENV)
    if not worker or not base_url:
        return
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID", "")
    worker_url = worker_database_url(base_url, worker, run)
    asyncio.run(create_worker_database(base_url, worker_url))
    os.environ[POSTGRES_URL_ENV] = worker_url
    config.stash[_WORKER_DATABASE] = (base_url, worker_url)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first: under pytest-xdist they start at once, and the other worker and
    then both share the rest, instead of one long test ending the run alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_unconfigure(config: pytest.Config) -> None:
    urls = config.stash.get(_WORKER_DATABASE, None)
    if urls is not None:
        base_url, worker_url = urls
        asyncio.run(drop_worker_database(base_url, worker_url))
        os.environ[POSTGRES_URL_ENV] = base_url


@pytest.fixture
async def fake_agent_ai() -> AsyncIterator[FakeAgentAI]:
    fake = FakeAgentAI()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
        assert not fake.violations, f"requests broke the spec: {fake.violations}"


@pytest.fixture
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def avatar_client(
    fake_agent_ai: FakeAgentAI, http_session: aiohttp.ClientSession
) -> AvatarClient:
    return AvatarClient(
        TOKEN, base_url=fake_agent_ai.base_url, session=http_session, timeout=5, retry=FAST_RETRY
    )


@pytest_asyncio.fixture
async def bots() -> AsyncIterator[Bots]:
    bots = Bots()
    try:
        yield bots
    finally:
        await bots.close_all()


@pytest_asyncio.fixture
async def simcord_bot(fake_agent_ai: FakeAgentAI, tmp_path: Path, bots: Bots) -> AvatarBot:
    """The real bot on a fresh SQLite file, pointed at the fake agent.ai (SimCord's hook)."""
    return await bots.make(fake_agent_ai, sqlite_url(tmp_path))


@pytest_asyncio.fixture
async def simcord_env(
    simcord_bot: AvatarBot, bots: Bots, request: pytest.FixtureRequest
) -> AsyncIterator[simcord.Env]:
    """SimCord's own fixture, plus closing what the bot owns (SimCord never calls close())."""
    marker = request.node.get_closest_marker("simcord")
    env = simcord.Env(simcord_bot, **({"shard_count": 1} | (marker.kwargs if marker else {})))
    await env.start()
    try:
        yield env
    finally:
        await bots.close_all()
        await env.shutdown()
        if env.check_errors:
            env._raise_errors_since(env._errors_acknowledged)  # as SimCord's own fixture


@pytest_asyncio.fixture
async def world(
    simcord_env: simcord.Env, simcord_bot: AvatarBot, fake_agent_ai: FakeAgentAI, bots: Bots
) -> World:
    """A server with a channel, a moderator and a member, and the bot running in it."""
    return populate(simcord_env, simcord_bot, fake_agent_ai, bots)
