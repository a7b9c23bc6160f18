"""One owner per interaction: a process that lost the acknowledgement stays silent.

Two sessions of one shard (a rolling restart, or two processes without shard
settings) both receive every interaction; Discord accepts one answer. The loser
sees 40060 on its first callback and must drop the interaction: no reply, no job,
no ERROR. A 10062 (nobody answered within 3 s) is a WARNING, never a trace.
"""

from __future__ import annotations

import logging

import pytest

from tests.bot_world import World

ALREADY_ACKNOWLEDGED = {
    "status": 400,
    "code": 40060,
    "message": "Interaction has already been acknowledged.",
}
UNKNOWN_INTERACTION = {"status": 404, "code": 10062, "message": "Unknown interaction"}
CALLBACK = "/interactions/*/*/callback"


@pytest.mark.parametrize(
    "command", ["avatar generate", "avatar quota", "avatar history", "avatar-admin show"]
)
async def test_a_lost_acknowledgement_is_dropped_silently(
    world: World, caplog: pytest.LogCaptureFixture, command: str
) -> None:
    world.env.inject_error("POST", CALLBACK, times=None, **ALREADY_ACKNOWLEDGED)
    member = world.admin if command.startswith("avatar-admin") else world.alice
    with caplog.at_level(logging.DEBUG):
        await member.slash(world.channel, command)

    callbacks = [r for r in world.env.http_requests if "/callback" in str(r)]
    assert len(callbacks) == 1, "no second callback after 40060"
    assert not any("/webhooks/" in str(r) for r in world.env.http_requests), "no follow-up"
    assert world.fake.calls == 0
    assert await world.bot.store.recent_jobs(world.alice.id, world.guild.id) == []
    # A command that answers in one step reaches the error handler, which stays silent.
    assert all("40060" in str(e) for e in world.env.errors)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    lost = [r for r in caplog.records if "answered by another process" in r.getMessage()]
    assert len(lost) == 1
    assert lost[0].levelno == logging.DEBUG
    world.env.backend.faults.clear()


async def test_an_unknown_interaction_is_one_warning_and_no_trace(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.env.inject_error("POST", CALLBACK, times=None, **UNKNOWN_INTERACTION)
    with caplog.at_level(logging.DEBUG):
        await world.alice.slash(world.channel, "avatar generate")

    assert not world.env.errors
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warnings] == [warnings[0].getMessage()], "exactly one warning"
    assert "expired before it was acknowledged" in warnings[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)
    assert world.fake.calls == 0
    world.env.backend.faults.clear()
