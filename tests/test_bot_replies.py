"""Every interaction acknowledged before any I/O; every message within Discord's limits;
a refused edit never leaves the member without an answer.

The real discord.py bot in SimCord, which refuses what Discord refuses: content over
2,000 characters and embeds over their limits (400, code 50035).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import discord
import pytest
from PIL import Image

from avatar_api.preflight import Check, PreflightReport, Problem, ProblemKind
from avatar_api.text import LazyText
from avatarbot.i18n import for_locale
from cogs import limits
from cogs.ui import log_embed, preflight_refusal, result_embed
from tests.bot_world import World, outcome
from tests.fault_helpers import only_job_of

INVALID_FORM_BODY = {"status": 400, "code": 50035, "message": "Invalid Form Body"}


def blank_photo() -> bytes:
    """A white, over-exposed frame: no face, blurry and washed out."""
    buffer = io.BytesIO()
    Image.new("RGB", (900, 900), (255, 255, 255)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def four_blank_photos() -> dict[str, tuple[str, bytes]]:
    return {f"photo{n}": (f"blank{n}.jpg", blank_photo()) for n in range(1, 5)}


def callbacks(world: World) -> int:
    return sum(1 for r in world.env.http_requests if r.path.endswith("/callback"))


def count_acks_at_calls(world: World, owner: Any, *names: str) -> list[int]:
    """Wrap ``owner``'s methods so each call records how many callbacks were made by then."""
    seen: list[int] = []
    for name in names:
        original: Callable[..., Any] = getattr(owner, name)

        async def wrapped(*args: Any, _original: Callable[..., Any] = original, **kw: Any) -> Any:
            seen.append(callbacks(world))
            return await _original(*args, **kw)

        setattr(owner, name, wrapped)
    return seen


def within_limits(message: discord.Message) -> None:
    assert len(message.content or "") <= limits.CONTENT
    for embed in message.embeds:
        within_limits_embed(embed)


def within_limits_embed(embed: discord.Embed) -> None:
    assert limits.embed_size(embed) <= limits.EMBED_TOTAL
    assert len(embed.title or "") <= limits.TITLE
    assert all(len(f.value) <= limits.FIELD_VALUE for f in embed.fields)
    assert all(len(f.name) <= limits.FIELD_NAME for f in embed.fields)


# --- acknowledged first --------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "store_methods"),
    [
        ("avatar history", ("recent_jobs",)),
        ("avatar quota", ("get_guild_settings", "quota_status")),
        ("avatar generate", ("screening", "enqueue_job")),
    ],
)
async def test_member_commands_acknowledge_before_the_database(
    world: World, command: str, store_methods: tuple[str, ...]
) -> None:
    seen = count_acks_at_calls(world, world.bot.store, *store_methods)

    result = await world.alice.slash(world.channel, command)

    assert result.acknowledged
    assert seen
    assert all(acks >= 1 for acks in seen), seen


@pytest.mark.parametrize(
    ("command", "options", "store_methods"),
    [
        ("avatar-admin show", {}, ("get_guild_settings",)),
        ("avatar-admin enable", {}, ("update_guild_settings",)),
        ("avatar-admin usage", {}, ("get_guild_settings", "usage_stats")),
        ("avatar-admin words", {"action": "add", "words": "foo"}, ("get_guild_settings",)),
    ],
)
async def test_admin_commands_acknowledge_before_the_database(
    world: World, command: str, options: dict[str, str], store_methods: tuple[str, ...]
) -> None:
    seen = count_acks_at_calls(world, world.bot.store, *store_methods)

    result = await world.admin.slash(world.channel, command, **options)

    assert result.acknowledged
    assert seen
    assert all(acks >= 1 for acks in seen), seen
    assert "✅" in (result.response.content or "") or result.response.embeds


async def test_the_forget_button_acknowledges_before_deleting(world: World) -> None:
    await world.bot.store.record_consent(world.alice.id)
    asked = await world.alice.slash(world.channel, "avatar forget")
    before = callbacks(world)
    seen = count_acks_at_calls(world, world.bot.store, "forget_user")

    done = await world.alice.click(asked.response, label="Delete my records")

    assert seen == [before + 1]
    assert "were deleted" in done.response.content
    assert not await world.bot.store.has_consented(world.alice.id)


async def test_the_consent_button_acknowledges_before_recording_consent(world: World) -> None:
    asked = await world.alice.slash(world.channel, "avatar upload", **four_blank_photos())
    before = callbacks(world)
    seen = count_acks_at_calls(world, world.bot.store, "record_consent")

    await world.alice.click(asked.response, label="These are my photos / I have consent")

    assert seen == [before + 1]


# --- within Discord's limits ------------------------------------------------------------


async def test_four_blank_photos_get_one_grouped_refusal_within_2000_characters(
    world: World,
) -> None:
    await world.bot.store.record_consent(world.alice.id)

    result = await world.alice.slash(world.channel, "avatar upload", **four_blank_photos())

    text = result.response.content
    assert len(text) <= limits.CONTENT
    assert "nothing was sent" in text
    assert "• Photo 1: no face found, blurry, washed out\n" in text
    assert "• Photos 2, 3, and 4: no face found, blurry, washed out, same as photo 1\n" in text
    for advice in ("No face:", "Blurry:", "Washed out:", "Same picture twice:"):
        assert text.count(advice) == 1
    assert world.fake.calls == 0


def test_the_grouped_refusal_names_each_photo_once() -> None:
    def problem(index: int, kind: ProblemKind, detail: float | None = None) -> Problem:
        return Problem(check_for(kind), index, LazyText("long message " * 20), kind, detail)

    report = PreflightReport(
        photos=(),
        duplicates=(
            problem(1, ProblemKind.NO_FACE),
            problem(2, ProblemKind.NO_FACE),
            problem(2, ProblemKind.BLURRY),
            problem(3, ProblemKind.MANY_FACES, 3),
            problem(4, ProblemKind.DUPLICATE, 2),
        ),
    )

    text = preflight_refusal(report, for_locale("en-US"))

    assert "• Photo 1: no face found" in text
    assert "• Photo 2: no face found, blurry" in text
    assert "• Photo 3: 3 faces" in text
    assert "• Photo 4: same as photo 2" in text
    assert "long message" not in text
    assert text.count("No face:") == 1


def check_for(kind: ProblemKind) -> Check:
    return {ProblemKind.BLURRY: Check.SHARPNESS, ProblemKind.DUPLICATE: Check.DUPLICATE}.get(
        kind, Check.FACE
    )


async def test_a_refused_edit_falls_back_to_a_shorter_reply(world: World) -> None:
    await world.bot.store.record_consent(world.alice.id)
    world.env.inject_error("PATCH", "/webhooks/*/messages/@original", times=1, **INVALID_FORM_BODY)

    result = await world.alice.slash(world.channel, "avatar upload", **four_blank_photos())

    text = result.response.content
    assert "nothing was sent" in text
    assert len(text) <= limits.SHORT
    edits = [r for r in world.env.http_requests if r.method == "PATCH" and "@original" in r.path]
    assert len(edits) == 2  # the refused one, then the short plain version


async def test_edits_that_keep_failing_end_in_a_follow_up(world: World) -> None:
    await world.bot.store.record_consent(world.alice.id)
    world.env.inject_error("PATCH", "/webhooks/*/messages/@original", status=503, times=None)

    result = await world.alice.slash(world.channel, "avatar upload", **four_blank_photos())

    # The first follow-up of a deferred reply takes the "thinking…" message's place.
    (posted,) = [
        r for r in world.env.http_requests if r.method == "POST" and "/webhooks/" in r.path
    ]
    assert "nothing was sent" in posted.json["content"]
    assert result.ephemeral
    assert "nothing was sent" in result.response.content
    assert len(result.response.content) <= limits.SHORT


async def test_a_long_name_and_appearance_fit_the_result_and_the_log_embeds(
    world: World,
) -> None:
    log_channel = world.guild.create_text_channel("avatar-log")
    await world.env.settle()
    await world.admin.slash(world.channel, "avatar-admin log-channel", channel=log_channel)
    name = "*_`~" * 25  # 100 characters, each escaped to two
    appearance = "<@&1> " + "a very *detailed* look, " * 41  # 1,000 characters
    appearance = appearance[:1000]

    result = await world.alice.slash(
        world.channel, "avatar generate", name=name, appearance=appearance
    )

    shown = outcome(result)
    within_limits(shown)
    assert "Group ID" in {f.name for f in shown.embeds[0].fields}
    (entry,) = log_channel.history()
    within_limits(entry)
    job = await only_job_of(world, world.alice)
    assert job.options["appearance"] == appearance.strip()
    english = for_locale("en-US")
    within_limits_embed(log_embed(job, english))
    within_limits_embed(result_embed(job, english))


# --- the helper itself -------------------------------------------------------------------


def test_fit_embed_brings_every_part_and_the_total_within_limits() -> None:
    embed = discord.Embed(title="t" * 300, description="d" * 5000)
    for index in range(30):
        embed.add_field(name="n" * 300, value=f"{index}" + "v" * 1100)
    embed.set_footer(text="f" * 2100)
    embed.set_author(name="a" * 300)

    fitted = limits.fit_embed(embed)

    assert len(fitted.title or "") <= limits.TITLE
    assert fitted.title.endswith("…")
    assert len(fitted.fields) == limits.FIELDS
    assert all(len(f.name) <= limits.FIELD_NAME for f in fitted.fields)
    assert all(len(f.value) <= limits.FIELD_VALUE for f in fitted.fields)
    assert len(fitted.footer.text or "") <= limits.FOOTER
    assert limits.embed_size(fitted) <= limits.EMBED_TOTAL


def test_fit_embed_cuts_the_longest_texts_first() -> None:
    embed = discord.Embed(title="Your avatar", description="d" * 4000)
    for index in range(4):
        embed.add_field(name=f"Field {index}", value=f"{index}" + "v" * 1000)

    fitted = limits.fit_embed(embed)

    assert limits.embed_size(fitted) == limits.EMBED_TOTAL
    assert fitted.title == "Your avatar"
    assert [f.value[0] for f in fitted.fields] == ["0", "1", "2", "3"]
    assert len(fitted.description or "") < 4000
    assert fitted.description.endswith("…")


def test_fit_message_clips_content_and_leaves_short_messages_alone() -> None:
    long = limits.fit_message({"content": "x" * 2500, "view": None})
    assert len(long["content"]) == limits.CONTENT
    assert long["content"].endswith("…")
    assert "view" in long
    assert limits.fit_message({"content": "short"}) == {"content": "short"}


def test_history_and_log_name_refusals_and_failures_in_the_readers_language() -> None:
    from cogs.ui import failure_name, refusal_name

    assert refusal_name("cooldown", for_locale("en-US")) == "cooldown"
    assert refusal_name("user_daily", for_locale("de")) == "Tageslimit"
    assert failure_name("maybe_created", for_locale("ja")) == "時間内に応答なし"
    assert failure_name("maybe_created", for_locale("ko")) == "no answer in time"
    assert failure_name("newer", for_locale("fr")) == "newer"  # a code from another release
