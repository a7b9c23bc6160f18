"""agent.ai misbehaving, through the real bot: every error ends in one ephemeral explanation,
a failed job in the store, the quota given back, and only the retries the policy allows.

After each fault another member's ``/avatar generate`` succeeds: one failure never stalls
the queue. The client's timeout and back-off are shrunk (see ``make_api_fast``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp
import pytest

from avatarbot.failures import FailureKind
from avatarbot.store.base import JobState
from tests.bot_world import QUEUE_POLL_SECONDS, World, outcome
from tests.fake_agent_ai import Reply
from tests.fault_helpers import (
    ATTEMPTS,
    FAST_RETRY,
    FAST_TIMEOUT_SECONDS,
    assert_another_member_is_served,
    declare_agent_ai_calls_external,
    make_api_fast,
    only_job_of,
    quota_of,
)

MANY_MEGABYTES = 5 * 1024 * 1024
DEFAULT_PAUSE_SECONDS = 60  # the dispatcher's pause after a 429 without Retry-After
QUOTA_NOTE = "did not count against your quota"


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour and everything the bot should make of it."""

    reply: Reply
    error_kind: FailureKind
    fragment: str
    calls: int
    pause_seconds: float = 0.0


def status(code: int, **headers: str) -> Reply:
    return Reply(status=code, body={"error": f"scripted {code}"}, headers=headers)


FAULTS: dict[str, Fault] = {
    "http-400": Fault(status(400), FailureKind.BAD_REQUEST, "rejected the request", 1),
    "http-401": Fault(status(401), FailureKind.AUTHENTICATION, "token was rejected", 1),
    "http-403": Fault(status(403), FailureKind.PERMISSION_DENIED, "may not use this action", 1),
    "http-404": Fault(status(404), FailureKind.NOT_FOUND, "AGENT_AI_BASE_URL", 1),
    "http-408": Fault(
        status(408), FailureKind.API_STATUS, "answered with an error (HTTP 408)", ATTEMPTS
    ),
    "http-409": Fault(status(409), FailureKind.API_STATUS, "answered with an error (HTTP 409)", 1),
    "http-422": Fault(status(422), FailureKind.BAD_REQUEST, "rejected the request", 1),
    "http-429-retry-after": Fault(
        status(429, **{"Retry-After": "7"}), FailureKind.RATE_LIMITED, "rate limit", ATTEMPTS, 7
    ),
    "http-429-bare": Fault(
        status(429), FailureKind.RATE_LIMITED, "rate limit", ATTEMPTS, DEFAULT_PAUSE_SECONDS
    ),
    "http-500": Fault(status(500), FailureKind.SERVER_ERROR, "failed on their side", ATTEMPTS),
    "http-502": Fault(status(502), FailureKind.SERVER_ERROR, "failed on their side", ATTEMPTS),
    "http-503": Fault(status(503), FailureKind.SERVER_ERROR, "failed on their side", ATTEMPTS),
    "http-504": Fault(status(504), FailureKind.SERVER_ERROR, "failed on their side", ATTEMPTS),
    "reset-mid-body": Fault(
        Reply(kind="reset"), FailureKind.CONNECTION_LOST, "may or may not have been created", 1
    ),
    "html-200": Fault(
        Reply(kind="raw", raw=b"<html><body>Bad gateway</body></html>"),
        FailureKind.UNEXPECTED_RESPONSE,
        "does not understand",
        1,
    ),
    "truncated-200": Fault(
        Reply(kind="raw", raw=b'{"status": 200, "response": {"avatar_result": {"gro'),
        FailureKind.UNEXPECTED_RESPONSE,
        "does not understand",
        1,
    ),
    "many-megabytes": Fault(
        Reply(
            kind="raw",
            raw=b'{"status": 200, "response": {"pad": "' + b"x" * MANY_MEGABYTES + b'"}}',
        ),
        FailureKind.UNEXPECTED_RESPONSE,
        "does not understand",
        1,
    ),
    "action-500-in-200": Fault(
        Reply(body={"status": 500, "response": {"error": "HeyGen is down"}}),
        FailureKind.SERVER_ERROR,
        "failed on their side",
        ATTEMPTS,
    ),
    "action-422-in-200": Fault(
        Reply(body={"status": 422, "response": {"error": "appearance not allowed"}}),
        FailureKind.BAD_REQUEST,
        "rejected the request",
        1,
    ),
    "action-403-in-200": Fault(
        Reply(body={"status": 403, "response": {"error": "out of credits"}}),
        FailureKind.PERMISSION_DENIED,
        "may not use this action",
        1,
    ),
}


@pytest.fixture
def fast_world(world: World) -> World:
    make_api_fast(world)
    return world


@pytest.mark.parametrize("fault", list(FAULTS.values()), ids=list(FAULTS))
async def test_agent_ai_fault_is_explained_refunded_and_not_repeated(
    fast_world: World, fault: Fault
) -> None:
    world = fast_world
    world.fake.script(*[fault.reply] * fault.calls)

    result = await world.alice.slash(world.channel, "avatar generate", name="Faulty")

    failure = outcome(result)
    assert failure.ephemeral
    text = failure.embeds[0].description or ""
    assert fault.fragment in text
    assert QUOTA_NOTE in text
    assert "Traceback" not in text
    assert world.fake.calls == fault.calls  # only the retries the policy allows

    job = await only_job_of(world, world.alice)
    assert job.state is JobState.FAILED
    assert job.error_kind == fault.error_kind
    assert job.notified
    status_now = await quota_of(world, world.alice)
    assert (status_now.user_used, status_now.guild_used) == (0, 0)

    # A job queued during a pause starts at the dispatcher's next poll after the pause.
    wait = max(fault.pause_seconds, QUEUE_POLL_SECONDS) + 1 if fault.pause_seconds else 0
    await assert_another_member_is_served(world, wait_seconds=wait)


async def test_an_answer_that_never_comes_is_not_sent_again(fast_world: World) -> None:
    """The client's timeout is a timer: SimCord fires it when told that the (loopback) agent.ai
    call is external input, so virtual time moves past it without waiting in real time."""
    world = fast_world
    declare_agent_ai_calls_external(world)
    world.fake.script(Reply(kind="hang"))  # a re-send would get the next, real answer

    result = await world.alice.slash(world.channel, "avatar generate")
    await world.env.advance_time(ATTEMPTS * (FAST_TIMEOUT_SECONDS + 0.1) + 1)

    text = outcome(result).embeds[0].description or ""
    assert outcome(result).ephemeral
    assert "did not answer in time" in text
    assert "may or may not have been created" in text
    assert "not sent again" in text
    assert QUOTA_NOTE in text
    assert world.fake.calls == 1  # it may have spent a credit: never a second one
    job = await only_job_of(world, world.alice)
    assert (job.state, job.error_kind) == (JobState.FAILED, FailureKind.MAYBE_CREATED)
    assert (await quota_of(world, world.alice)).user_used == 0
    await assert_another_member_is_served(world, wait_seconds=1)


async def test_the_member_hears_within_the_timeout_plus_ten_seconds_of_sending(
    world: World,
) -> None:
    world.bot.avatar_client._retry = FAST_RETRY
    timeout = 5.0
    world.bot.avatar_client._timeout = aiohttp.ClientTimeout(total=timeout)
    declare_agent_ai_calls_external(world)
    world.fake.script(Reply(kind="hang"))

    result = await world.alice.slash(world.channel, "avatar generate")
    # In real time: the request may still be on its way over loopback.
    await asyncio.wait_for(world.fake.received.wait(), timeout=10)
    assert world.fake.calls == 1
    sent = world.env.now()
    progress = outcome(result).content or ""

    await world.env.advance_time(timeout - 1)
    assert (outcome(result).content or "") == progress, "told before the timeout"
    assert not outcome(result).embeds

    await world.env.advance_time(2)
    told = world.env.now()
    assert (told - sent).total_seconds() <= timeout + 10
    reply = outcome(result)
    assert reply.ephemeral
    text = reply.embeds[0].description or ""
    assert text.startswith("agent.ai did not answer in time")
    assert "may or may not have been created" in text
    assert "not sent again" in text
    assert QUOTA_NOTE in text
    assert world.fake.calls == 1
    job = await only_job_of(world, world.alice)
    assert (job.state, job.error_kind, job.notified) == (
        JobState.FAILED,
        FailureKind.MAYBE_CREATED,
        True,
    )
    assert (await quota_of(world, world.alice)).user_used == 0


async def test_a_429_pauses_the_queue_for_its_retry_after(fast_world: World) -> None:
    world = fast_world
    world.fake.script(*[status(429, **{"Retry-After": "40"})] * ATTEMPTS)
    await world.alice.slash(world.channel, "avatar generate")
    bob = world.member("bob")

    waiting = await bob.slash(world.channel, "avatar generate")

    assert world.fake.calls == ATTEMPTS  # nothing sent while agent.ai asked us to wait
    assert "in line" in waiting.response.content
    await world.env.advance_time(30)
    assert world.fake.calls == ATTEMPTS
    await world.env.advance_time(15)
    assert world.fake.calls == ATTEMPTS + 1
    assert outcome(waiting).embeds


async def test_a_fault_then_recovery_is_not_retried_for_the_failed_member(
    fast_world: World,
) -> None:
    world = fast_world
    world.fake.script(status(503), status(503))  # the third attempt gets the real answer

    result = await world.alice.slash(world.channel, "avatar generate")

    assert world.fake.calls == ATTEMPTS
    assert "grp_" in outcome(result).embeds[0].fields[0].value
    job = await only_job_of(world, world.alice)
    assert job.state is JobState.SUCCEEDED
    assert (await quota_of(world, world.alice)).user_used == 1
