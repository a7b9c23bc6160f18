"""Re-roll, Edit, Delete and Cancel through SimCord and the real discord.py client.

Every button is pressed by its requester and by someone else, before and after the
bot restarts on the same database, in the channel and in a DM.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import discord
import pytest
import simcord

from avatarbot.store import open_store
from avatarbot.store.base import Budget, JobState
from cogs.job_buttons import (
    BUTTON_TEMPLATE,
    EDIT_MODAL,
    EDIT_MODAL_TEMPLATE,
    JobKey,
    submitted_texts,
)
from tests.bot_world import World, face_photo, outcome, restart

COOLDOWN = 31  # the default server cooldown is 30 s


def labels(message: Any) -> list[str]:
    """Button labels of a SimCord response (raw rows) or a ``discord.Message``."""
    if isinstance(message, discord.Message):
        return [b.label for row in message.components for b in getattr(row, "children", ())]
    return [b["label"] for row in message.components for b in row["components"] if b["type"] == 2]


def channel_ids(world: World) -> set[int]:
    return {m.id for m in world.channel.history()}


async def generated(world: World, **options: str) -> Any:
    """Alice's generated avatar, posted publicly; the cooldown is over afterwards."""
    result = await world.alice.slash(world.channel, "avatar generate", **options)
    await world.env.advance_time(COOLDOWN)
    return outcome(result)


async def queued(world: World) -> Any:
    """Alice's private progress reply for a job held in the queue by a pause."""
    await world.bot.store.pause_dispatch(world.bot.clock() + timedelta(minutes=5))
    result = await world.alice.slash(world.channel, "avatar generate", name="Waiting")
    assert "#1 in line" in result.response.content
    return result


async def job_states(world: World) -> list[JobState]:
    jobs = await world.bot.store.recent_jobs(world.alice.id, world.guild.id, 50)
    return [j.state for j in reversed(jobs)]


# --- what the messages carry ---------------------------------------------------------------


async def test_a_generated_avatar_carries_re_roll_edit_and_delete(world: World) -> None:
    post = await generated(world, name="Nova")

    assert labels(post) == ["Re-roll", "Edit", "Delete"]
    custom_ids = [b["custom_id"] for row in post.components for b in row["components"]]
    assert all(len(c) <= 100 for c in custom_ids)
    assert f":{world.alice.id}:{world.guild.id}" in custom_ids[0]
    embed = post.embeds[0]
    assert "HeyGen" in embed.description
    assert "agent.ai" in embed.description
    assert "group id" in embed.description


async def test_an_upload_result_has_no_re_roll_or_edit_and_says_why(world: World) -> None:
    await world.bot.store.record_consent(world.alice.id)
    result = await world.alice.slash(
        world.channel, "avatar upload", photo1=("me.jpg", face_photo("JPEG"))
    )

    shown = outcome(result)
    assert shown.ephemeral
    assert labels(shown) == []
    assert "No Re-roll or Edit for uploads" in shown.embeds[0].description


# --- Re-roll -------------------------------------------------------------------------------


async def test_re_roll_makes_a_new_public_post_with_the_same_options(world: World) -> None:
    post = await generated(world, name="Nova", age="Senior", style="Artistic", appearance="hat")

    again = await world.alice.click(post, label="Re-roll")

    assert again.ephemeral  # the progress is private to the presser
    new_post = outcome(again)
    assert not new_post.ephemeral
    assert new_post.id != post.id
    assert "grp_000002" in new_post.embeds[0].fields[0].value
    assert labels(new_post) == ["Re-roll", "Edit", "Delete"]
    first, second = world.fake.requests
    assert first.body == second.body
    assert await job_states(world) == [JobState.SUCCEEDED, JobState.SUCCEEDED]


async def test_a_re_roll_carries_its_press_like_a_command_so_any_process_answers_in_it(
    world: World,
) -> None:
    import contextlib
    import sqlite3

    post = await generated(world, name="Nova")
    await world.alice.click(post, label="Re-roll")

    path = world.bot.settings.database_url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as db:
        ids = [row[0] for row in db.execute("SELECT interaction_id FROM jobs ORDER BY id")]
    assert len(ids) == 2
    assert None not in ids  # under the unique constraint: one press, one job
    assert ids[0] != ids[1]


async def test_re_roll_by_someone_else_is_refused_privately(world: World) -> None:
    post = await generated(world)
    bob = world.member("bob")

    refused = await bob.click(post, label="Re-roll")

    assert refused.ephemeral
    assert "Only the member who asked" in refused.response.content
    assert world.fake.calls == 1
    assert await world.bot.store.recent_jobs(bob.id, world.guild.id) == []


async def test_re_roll_is_refused_by_the_cooldown(world: World) -> None:
    result = await world.alice.slash(world.channel, "avatar generate")

    refused = await world.alice.click(outcome(result), label="Re-roll")

    assert refused.ephemeral
    assert "Please wait" in refused.response.content
    assert world.fake.calls == 1


async def test_re_roll_is_refused_by_the_daily_quota(world: World) -> None:
    await world.bot.store.update_guild_settings(world.guild.id, user_daily_quota=1)
    post = await generated(world)

    refused = await world.alice.click(post, label="Re-roll")

    assert "used all 1 of your avatars" in refused.response.content
    assert world.fake.calls == 1


async def test_re_roll_is_refused_by_a_block(world: World) -> None:
    post = await generated(world)
    await world.admin.slash(world.channel, "avatar-admin block", user=world.alice, reason="spam")

    refused = await world.alice.click(post, label="Re-roll")

    assert "blocked you" in refused.response.content
    assert world.fake.calls == 1


async def test_re_roll_of_a_forgotten_job_says_so_and_delete_still_works(world: World) -> None:
    post = await generated(world)
    asked = await world.alice.slash(world.channel, "avatar forget")
    await world.alice.click(asked.response, label="Delete my records")

    refused = await world.alice.click(post, label="Re-roll")
    edit = await world.alice.click(post, label="Edit")
    deleted = await world.alice.click(post, label="Delete")

    assert "/avatar forget" in refused.response.content
    assert edit.modal is None
    assert "/avatar forget" in edit.response.content
    assert deleted.deferred
    assert post.id not in channel_ids(world)
    assert world.fake.calls == 1


# --- Edit ----------------------------------------------------------------------------------


def modal_inputs(shown: Any) -> dict[str, dict[str, Any]]:
    return {
        c["component"]["custom_id"]: c["component"]
        for c in shown.modal["components"]
        if c["type"] == 18
    }


async def test_edit_opens_a_prefilled_modal_that_shows_what_stays(world: World) -> None:
    post = await generated(world, name="Nova", pose="close_up", appearance="red scarf")

    shown = await world.alice.click(post, label="Edit")

    assert shown.modal is not None
    assert shown.modal["custom_id"].startswith("avatar:edit-modal:1:")
    inputs = modal_inputs(shown)
    assert inputs["name"]["value"] == "Nova"
    assert inputs["appearance"]["value"] == "red scarf"
    kept = shown.modal["components"][0]["content"]
    assert "Close up" in kept
    assert "Nova" not in kept
    assert world.fake.calls == 1


async def test_submitting_an_edit_makes_a_new_request_with_the_new_texts(world: World) -> None:
    post = await generated(world, name="Nova", gender="Female", appearance="red scarf")
    shown = await world.alice.click(post, label="Edit")

    submitted = await world.alice.submit_modal(
        shown, {"name": "Nova II", "appearance": "a blue hat"}
    )

    assert submitted.ephemeral
    assert not outcome(submitted).ephemeral
    first, second = (r.body for r in world.fake.requests)
    assert (second["name"], second["appearance"]) == ("Nova II", "a blue hat")
    assert {k: v for k, v in second.items() if k not in {"name", "appearance"}} == {
        k: v for k, v in first.items() if k not in {"name", "appearance"}
    }


async def test_edit_by_someone_else_opens_no_modal(world: World) -> None:
    post = await generated(world)
    bob = world.member("bob")

    refused = await bob.click(post, label="Edit")

    assert refused.modal is None
    assert refused.ephemeral
    assert "Only the member who asked" in refused.response.content


async def test_an_edit_with_a_blocked_word_is_refused(world: World) -> None:
    post = await generated(world, name="Nova")
    await world.admin.slash(world.channel, "avatar-admin words", action="add", words="villain")
    shown = await world.alice.click(post, label="Edit")

    refused = await world.alice.submit_modal(shown, {"name": "Nova", "appearance": "a VILLAIN"})

    assert refused.ephemeral
    assert "word this server does not allow" in refused.response.content
    assert world.fake.calls == 1


async def test_an_edit_submitted_after_a_restart_is_honoured(world: World) -> None:
    post = await generated(world, name="Nova")
    shown = await world.alice.click(post, label="Edit")

    await restart(world)
    submitted = await world.alice.submit_modal(shown, {"name": "Nova II", "appearance": ""})

    assert "grp_000002" in outcome(submitted).embeds[0].fields[0].value
    assert world.fake.requests[1].body["name"] == "Nova II"
    assert "appearance" not in world.fake.requests[1].body


# --- Delete --------------------------------------------------------------------------------


async def test_delete_by_the_requester_removes_the_post_and_keeps_the_record(
    world: World,
) -> None:
    post = await generated(world)

    deleted = await world.alice.click(post, label="Delete")

    assert deleted.deferred  # a deferred update, then the press's own token
    assert post.id not in channel_ids(world)
    assert "stays in `/avatar history`" in deleted.followups[0].content
    assert deleted.followups[0].ephemeral
    history = await world.alice.slash(world.channel, "avatar history")
    assert "grp_000001" in outcome(history).embeds[0].fields[0].value


async def test_delete_by_a_moderator_but_not_by_another_member(world: World) -> None:
    post = await generated(world)
    bob = world.member("bob")

    refused = await bob.click(post, label="Delete")
    assert "Manage Server" in refused.response.content
    assert post.id in channel_ids(world)

    await world.admin.click(post, label="Delete")
    assert post.id not in channel_ids(world)


# --- Cancel --------------------------------------------------------------------------------


async def test_cancel_on_the_progress_reply_withdraws_the_job(world: World) -> None:
    waiting = await queued(world)
    assert labels(waiting.response) == ["Cancel"]

    cancelled = await world.alice.click(waiting.response, label="Cancel")

    assert cancelled.deferred
    assert "cancelled" in waiting.response.content
    assert labels(waiting.response) == []
    await world.env.advance_time(6 * 60)
    assert world.fake.calls == 0
    assert await job_states(world) == [JobState.CANCELLED]
    quota = await world.alice.slash(world.channel, "avatar quota")
    assert "You: 10 of 10 left today." in quota.response.content


async def test_cancel_on_the_history_line(world: World) -> None:
    await queued(world)
    history = await world.alice.slash(world.channel, "avatar history")
    assert labels(history.response) == ["Cancel"]

    await world.alice.click(history.response, label="Cancel")

    assert "cancelled" in history.response.content
    assert labels(history.response) == []
    (line,) = history.response.embeds[0].fields
    assert "· cancelled ·" in line.name
    assert line.value == "Cancelled: nothing was sent"
    assert await job_states(world) == [JobState.CANCELLED]
    # Free again at once: a cancelled job holds no cooldown and no place.
    again = await world.alice.slash(world.channel, "avatar generate")
    assert "#1 in line" in again.response.content


async def test_cancel_of_a_job_a_worker_has_claimed_says_so(world: World) -> None:
    waiting = await queued(world)
    later = world.bot.clock() + timedelta(minutes=6)
    # Another process, whose clock is already past the pause, claims it.
    other = await open_store(world.bot.settings.database_url, budget_clock=lambda: later)
    try:
        claimed = await other.claim_next_job("another-process", Budget(), later)
    finally:
        await other.close()
    assert claimed is not None

    pressed = await world.alice.click(waiting.response, label="Cancel")

    assert "Too late to cancel" in pressed.followups[0].content
    assert labels(waiting.response) == []
    assert await job_states(world) == [JobState.RUNNING]


async def test_nobody_else_can_even_reach_a_cancel_button(world: World) -> None:
    """The progress reply and the history are ephemeral: only the requester sees them."""
    waiting = await queued(world)
    bob = world.member("bob")
    with pytest.raises(simcord.SetupError, match="not visible"):
        await bob.click(waiting.response, label="Cancel")


# --- after a restart, and from a DM -------------------------------------------------------


async def test_every_button_works_after_a_restart(world: World) -> None:
    post = await generated(world, name="Nova")
    await restart(world)

    again = await world.alice.click(post, label="Re-roll")
    assert "grp_000002" in outcome(again).embeds[0].fields[0].value
    await world.env.advance_time(COOLDOWN)
    shown = await world.alice.click(post, label="Edit")
    assert modal_inputs(shown)["name"]["value"] == "Nova"
    await world.alice.click(post, label="Delete")
    assert post.id not in channel_ids(world)

    waiting = await queued(world)
    await restart(world)
    await world.alice.click(waiting.response, label="Cancel")
    assert "cancelled" in waiting.response.content
    await world.env.advance_time(6 * 60)
    assert world.fake.calls == 2


async def test_a_result_delivered_by_dm_keeps_working_buttons(world: World) -> None:
    """Outlived its interaction, the result comes by DM; its buttons follow the server's rules."""
    await world.bot.store.pause_dispatch(world.bot.clock() + timedelta(minutes=16))
    await world.alice.slash(world.channel, "avatar generate", name="Late")
    await world.env.advance_time(17 * 60)
    dm = world.alice.user
    (delivered,) = [m for m in dm.dm_channel.history() if m.embeds]
    assert labels(delivered) == ["Re-roll", "Edit", "Delete"]

    again = await dm.click(delivered, label="Re-roll")
    assert "grp_000002" in outcome(again).embeds[0].fields[0].value
    assert world.fake.requests[1].body["name"] == "Late"

    await world.env.advance_time(COOLDOWN)
    shown = await dm.click(delivered, label="Edit")
    assert modal_inputs(shown)["name"]["value"] == "Late"
    edited = await dm.submit_modal(shown, {"name": "Later"})
    assert "grp_000003" in outcome(edited).embeds[0].fields[0].value
    assert world.fake.requests[2].body["name"] == "Later"

    await world.env.advance_time(COOLDOWN)
    await world.admin.slash(world.channel, "avatar-admin block", user=world.alice, reason="spam")
    refused = await dm.click(delivered, label="Re-roll")
    assert "blocked you" in refused.response.content
    assert world.fake.calls == 3

    await dm.click(delivered, label="Delete")
    assert delivered.id not in {m.id for m in dm.dm_channel.history()}


# --- acknowledgement first -----------------------------------------------------------------

STORE_CALLS = ("get_job", "get_guild_settings", "get_block", "enqueue_job", "record_refused")


def watch_store(world: World) -> list[tuple[str, bool]]:
    """Each store call a press makes, and whether the press was acknowledged by then."""
    seen: list[tuple[str, bool]] = []
    store = world.bot.store
    for name in (*STORE_CALLS, "cancel_job"):
        original = getattr(store, name)

        async def watched(*args: Any, _name: str = name, _call: Any = original, **kw: Any) -> Any:
            latest = max(world.env.backend.interactions.values(), key=lambda i: i.id)
            seen.append((_name, latest.responded))
            return await _call(*args, **kw)

        setattr(store, name, watched)
    return seen


async def test_every_press_is_acknowledged_before_the_database_is_touched(
    world: World,
) -> None:
    post = await generated(world, name="Nova")
    seen = watch_store(world)

    await world.alice.click(post, label="Re-roll")
    assert seen
    assert all(acknowledged for _, acknowledged in seen), seen
    await world.env.advance_time(COOLDOWN)

    seen.clear()
    shown = await world.alice.click(post, label="Edit")
    # The modal is the acknowledgement: one read (which writers cannot block) may precede it.
    assert seen == [("get_job", False)]
    seen.clear()
    await world.alice.submit_modal(shown, {"name": "Nova II"})
    assert seen
    assert all(acknowledged for _, acknowledged in seen), seen

    await world.env.advance_time(COOLDOWN)
    waiting = await queued(world)
    seen.clear()
    await world.alice.click(waiting.response, label="Cancel")
    assert seen == [("cancel_job", True)]


# --- the custom ids and the modal's payload, on their own ---------------------------------


@pytest.mark.parametrize("action", ["reroll", "edit", "delete", "cancel", EDIT_MODAL])
def test_custom_ids_fit_discord_and_match_their_templates(action: str) -> None:
    biggest = JobKey(2**63 - 1, 2**64 - 1, 2**64 - 1)
    custom_id = biggest.custom_id(action)
    template = EDIT_MODAL_TEMPLATE if action == EDIT_MODAL else BUTTON_TEMPLATE
    match = template.fullmatch(custom_id)
    assert len(custom_id) <= 100
    assert match is not None
    assert JobKey.from_match(match) == biggest


def test_modal_values_are_read_from_labels_and_rows_and_nothing_else() -> None:
    data = {
        "custom_id": "avatar:edit-modal:1:2:3",
        "components": [
            {"type": 10, "id": 1},
            {"type": 18, "component": {"type": 4, "custom_id": "name", "value": "A"}},
            {"type": 1, "components": [{"type": 4, "custom_id": "appearance", "value": "B"}]},
            {"type": 18, "component": {"type": 4, "custom_id": "style", "value": "x"}},
        ],
    }
    assert submitted_texts(data) == {"name": "A", "appearance": "B"}


async def test_cancel_stays_on_the_reply_while_its_place_in_line_moves(world: World) -> None:
    await world.bot.store.pause_dispatch(world.bot.clock() + timedelta(minutes=5))
    bob = world.member("bob")
    first = await world.alice.slash(world.channel, "avatar generate")
    second = await bob.slash(world.channel, "avatar generate")
    assert "#2 in line" in second.response.content

    await world.alice.click(first.response, label="Cancel")
    await world.env.advance_time(40)  # the queue's next look at the places

    assert "#1 in line" in second.response.content
    assert labels(second.response) == ["Cancel"]
