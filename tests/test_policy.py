"""The moderation policy on its own: plain functions over settings, no Discord, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from avatarbot.guild_rules import normalize, normalize_blocked_words
from avatarbot.policy import (
    ButtonAction,
    Requester,
    channel_allowed,
    check_access,
    check_words,
    find_blocked_word,
    limits_for,
    may_press,
    refusal_for_quota,
)
from avatarbot.store.base import (
    Block,
    EnqueueResult,
    GuildSettings,
    Limits,
    RefusalReason,
    SourceType,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
GUILD, CHANNEL, THREAD_PARENT, USER, ROLE = 1, 10, 11, 100, 1000


def requester(**changes: object) -> Requester:
    base = {"user_id": USER, "guild_id": GUILD, "channel_id": CHANNEL}
    return Requester(**(base | changes))  # type: ignore[arg-type]


def settings(**changes: object) -> GuildSettings:
    return GuildSettings(guild_id=GUILD, **changes)  # type: ignore[arg-type]


def test_a_new_server_allows_everything() -> None:
    assert check_access(settings(), requester(), SourceType.UPLOAD, None) is None


def test_a_block_comes_first_and_names_its_reason() -> None:
    block = Block(GUILD, USER, "spam", 5, NOW)
    refusal = check_access(settings(enabled=False), requester(), SourceType.GENERATE, block)
    assert refusal is not None
    assert refusal.reason is RefusalReason.BLOCKED
    assert "spam" in refusal.message


def test_disabled_server() -> None:
    refusal = check_access(settings(enabled=False), requester(), SourceType.GENERATE, None)
    assert refusal is not None
    assert refusal.reason is RefusalReason.DISABLED
    assert "/avatar-admin enable" in refusal.message


def test_channel_allow_list_covers_threads_of_allowed_channels() -> None:
    allowed = settings(allowed_channel_ids=frozenset({THREAD_PARENT}))
    assert not channel_allowed(allowed, requester())
    assert channel_allowed(allowed, requester(channel_id=THREAD_PARENT))
    assert channel_allowed(allowed, requester(channel_id=999, parent_channel_id=THREAD_PARENT))
    refusal = check_access(allowed, requester(), SourceType.GENERATE, None)
    assert refusal is not None
    assert refusal.reason is RefusalReason.CHANNEL
    assert f"<#{THREAD_PARENT}>" in refusal.message


def test_required_roles_need_any_one_of_them() -> None:
    gated = settings(required_role_ids=frozenset({ROLE, ROLE + 1}))
    refusal = check_access(gated, requester(), SourceType.GENERATE, None)
    assert refusal is not None
    assert refusal.reason is RefusalReason.ROLE
    assert (
        check_access(gated, requester(role_ids=frozenset({ROLE + 1})), SourceType.GENERATE, None)
        is None
    )


def test_uploads_off_only_refuses_uploads() -> None:
    off = settings(uploads_allowed=False)
    assert check_access(off, requester(), SourceType.GENERATE, None) is None
    refusal = check_access(off, requester(), SourceType.UPLOAD, None)
    assert refusal is not None
    assert refusal.reason is RefusalReason.UPLOADS_OFF


@pytest.mark.parametrize(
    "text",
    [
        "a BADWORD here",
        "b\u200bad\u200bword",  # zero-width spaces
        "ｂａｄｗｏｒｄ",  # full-width
        "b a d w o r d",  # spaced out
        "bad\u202eword",  # right-to-left override
        "BadWord!",
    ],
)
def test_blocked_words_survive_the_usual_evasions(text: str) -> None:
    assert find_blocked_word(text, ("badword",)) == "badword"


def test_blocked_words_do_not_refuse_clean_text() -> None:
    assert find_blocked_word("a good avatar", ("badword",)) is None
    assert check_words(settings(blocked_words=("x",)), {"name": None, "appearance": ""}) is None


def test_check_words_names_the_field_without_echoing_the_word() -> None:
    refusal = check_words(settings(blocked_words=("secret",)), {"appearance": "a SECRET look"})
    assert refusal is not None
    assert refusal.reason is RefusalReason.BLOCKED_WORD
    assert "appearance" in refusal.message
    assert "secret" not in refusal.message.lower()


def test_admin_word_lists_are_normalised_and_deduplicated() -> None:
    assert normalize_blocked_words(" Foo, foo ,BAR,, ｂａｚ ") == ("foo", "bar", "baz")


@given(st.text(max_size=200))
def test_normalize_is_idempotent_and_drops_invisible_characters(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once
    assert "\u200b" not in once
    assert "\u202e" not in once


@given(st.text(min_size=1, max_size=20), st.text(max_size=40), st.text(max_size=40))
def test_a_word_is_found_wherever_it_is_embedded(word: str, before: str, after: str) -> None:
    if not normalize(word).replace(" ", ""):
        return
    assert find_blocked_word(before + word + after, (word,)) is not None


def test_limits_follow_the_settings() -> None:
    limits = limits_for(settings(cooldown_seconds=0, user_daily_quota=3), max_active_per_user=2)
    assert limits == Limits(
        user_daily_quota=3, guild_daily_quota=200, cooldown_seconds=0, max_active_per_user=2
    )


@pytest.mark.parametrize(
    ("refusal", "reason", "fragment"),
    [
        (RefusalReason.COOLDOWN, RefusalReason.COOLDOWN, "Please wait 12 s"),
        (RefusalReason.BUSY, RefusalReason.BUSY, "already have an avatar"),
        (RefusalReason.USER_DAILY, RefusalReason.USER_DAILY, "all 10 of your avatars"),
        (RefusalReason.GUILD_DAILY, RefusalReason.GUILD_DAILY, "all 200 avatars"),
    ],
)
def test_quota_refusals_say_what_to_do(
    refusal: RefusalReason, reason: RefusalReason, fragment: str
) -> None:
    result = EnqueueResult(refusal=refusal, retry_at=NOW + timedelta(seconds=11.2))
    explained = refusal_for_quota(result, Limits(), NOW)
    assert explained.reason is reason
    assert fragment in explained.message


# --- who may press a job's buttons ---------------------------------------------------------
@pytest.mark.parametrize("action", list(ButtonAction))
def test_the_requester_may_press_every_button(action: ButtonAction) -> None:
    assert may_press(action, 7, 7, presser_manages_guild=False)


@pytest.mark.parametrize("action", list(ButtonAction))
def test_someone_else_may_press_none(action: ButtonAction) -> None:
    assert not may_press(action, 7, 8, presser_manages_guild=False)


def test_a_moderator_may_only_delete_someone_elses_result() -> None:
    allowed = {a for a in ButtonAction if may_press(a, 7, 8, presser_manages_guild=True)}
    assert allowed == {ButtonAction.DELETE}
