"""Shared helpers for the fault suites: fast agent.ai client settings and "others are served"."""

from __future__ import annotations

from typing import Any

import aiohttp
import discord
import simcord

from avatar_api.client import RetryPolicy
from avatarbot.policy import Requester
from avatarbot.store.base import JobRecord, QuotaStatus
from tests.bot_world import World, outcome

MAX_RETRIES = 2
ATTEMPTS = 1 + MAX_RETRIES
FAST_TIMEOUT_SECONDS = 0.3
FAST_RETRY = RetryPolicy(
    max_retries=MAX_RETRIES, initial_delay=0.01, max_delay=0.02, max_retry_after=0.05
)


def make_api_fast(world: World, timeout: float = FAST_TIMEOUT_SECONDS) -> None:
    """Shrink the bot's agent.ai timeout and back-off (both are read per request)."""
    client = world.bot.avatar_client
    client._timeout = aiohttp.ClientTimeout(total=timeout)
    client._retry = FAST_RETRY


def declare_agent_ai_calls_external(world: World) -> None:
    """Declare each agent.ai attempt an external input (SimCord's ``external_wait``).

    A call that never answers otherwise blocks settlement, and with it the virtual
    timer that would end it; declared, its timeout fires on ``env.advance_time``.
    """
    client = world.bot.avatar_client
    attempt = client._attempt

    async def external_attempt(body: bytes, output_variable_name: str) -> Any:
        return await world.env.external_wait(
            attempt(body, output_variable_name), reason="agent.ai over loopback"
        )

    client._attempt = external_attempt  # type: ignore[method-assign]


def requester(world: World, member: simcord.MemberActor) -> Requester:
    return Requester(user_id=member.id, guild_id=world.guild.id, channel_id=world.channel.id)


async def quota_of(world: World, member: simcord.MemberActor) -> QuotaStatus:
    return await world.bot.service.quota(requester(world, member))


async def only_job_of(world: World, member: simcord.MemberActor) -> JobRecord:
    (job,) = await world.bot.store.recent_jobs(member.id, world.guild.id)
    return job


def fields_of(message: simcord.ResponseMessage | discord.Message) -> dict[str, str]:
    return {str(f.name): str(f.value) for f in message.embeds[0].fields}


async def assert_another_member_is_served(
    world: World, name: str = "bystander", *, wait_seconds: float = 0.0
) -> None:
    """A member untouched by the fault gets an avatar (after ``wait_seconds`` of virtual time)."""
    member = world.member(name)
    calls_before = world.fake.calls
    result = await member.slash(world.channel, "avatar generate", name="Still here")
    if wait_seconds:
        await world.env.advance_time(wait_seconds)
    assert result.response is not None, "the bystander got no reply"
    assert outcome(result).embeds, f"no result yet: {outcome(result).content!r}"
    assert "grp_" in fields_of(outcome(result))["Group ID"]
    assert world.fake.calls == calls_before + 1
    assert world.fake.requests[-1].body["name"] == "Still here"
