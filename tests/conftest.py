"""Shared fixtures: the fake agent.ai on loopback and a client pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from avatar_api.client import AvatarClient, RetryPolicy
from tests.fake_agent_ai import TOKEN, FakeAgentAI

FAST_RETRY = RetryPolicy(max_retries=2, initial_delay=0.01, max_delay=0.05, max_retry_after=0.2)


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
