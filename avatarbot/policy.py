"""Moderation policy: may this member run this request here and now?

Plain functions over a server's settings and what the store knows; no discord.py
and no I/O, so every rule is unit-tested on its own (the messages do use Discord's
``<#channel>`` and ``<@&role>`` mention syntax, which clients render). Every refusal carries a
message that says what happened and what the member can do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from avatar_api.text import N_, LazyText

from .guild_rules import normalize
from .store.base import (
    Block,
    EnqueueResult,
    GuildSettings,
    InteractionRef,
    Limits,
    RefusalReason,
    SourceType,
)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is refused, and what to tell the member (in their language, when shown)."""

    reason: RefusalReason
    text: LazyText

    @property
    def message(self) -> str:
        """The English text (logs, tests); members see ``text`` rendered in their language."""
        return str(self.text)


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asks, and where: the facts the policy needs, taken from the interaction."""

    user_id: int
    guild_id: int
    channel_id: int
    role_ids: frozenset[int] = frozenset()
    parent_channel_id: int | None = None
    interaction: InteractionRef | None = None
    """The interaction the request came in (its token sealed), for the job to answer in."""
    locale: str | None = None
    """Discord's tag for the language of the requester's client."""


class ButtonAction(StrEnum):
    """The buttons on results, progress replies and history lines."""

    REROLL = "reroll"
    EDIT = "edit"
    DELETE = "delete"
    CANCEL = "cancel"


def may_press(
    action: ButtonAction, requester_id: int, presser_id: int, *, presser_manages_guild: bool
) -> bool:
    """Only the requester acts on a job; a moderator may also take a public result down."""
    if presser_id == requester_id:
        return True
    return action is ButtonAction.DELETE and presser_manages_guild


def limits_for(settings: GuildSettings, *, max_active_per_user: int = 1) -> Limits:
    return Limits(
        user_daily_quota=settings.user_daily_quota,
        guild_daily_quota=settings.guild_daily_quota,
        cooldown_seconds=settings.cooldown_seconds,
        max_active_per_user=max_active_per_user,
    )


def check_access(
    settings: GuildSettings, requester: Requester, mode: SourceType, block: Block | None
) -> Refusal | None:
    """The rules that need no counting: enabled, block, channel, roles, uploads."""
    if block is not None:
        return Refusal(RefusalReason.BLOCKED, _blocked_text(block))
    if not settings.enabled:
        return Refusal(
            RefusalReason.DISABLED,
            N_(
                "Avatar Bot is turned off on this server. A moderator can turn it on "
                "with `/avatar-admin enable`."
            ),
        )
    if not channel_allowed(settings, requester):
        channels = ", ".join(f"<#{c}>" for c in sorted(settings.allowed_channel_ids))
        return Refusal(
            RefusalReason.CHANNEL,
            N_("Avatar Bot only works in these channels here: {channels}.", channels=channels),
        )
    if settings.required_role_ids and not settings.required_role_ids & requester.role_ids:
        roles = ", ".join(f"<@&{r}>" for r in sorted(settings.required_role_ids))
        return Refusal(
            RefusalReason.ROLE,
            N_("You need one of these roles to use Avatar Bot here: {roles}.", roles=roles),
        )
    if mode is SourceType.UPLOAD and not settings.uploads_allowed:
        return Refusal(
            RefusalReason.UPLOADS_OFF,
            N_(
                "Photo uploads are turned off on this server. You can still use `/avatar generate`."
            ),
        )
    return None


def channel_allowed(settings: GuildSettings, requester: Requester) -> bool:
    """An allowed channel also allows the threads inside it."""
    allowed = settings.allowed_channel_ids
    return (
        not allowed
        or requester.channel_id in allowed
        or (requester.parent_channel_id is not None and requester.parent_channel_id in allowed)
    )


def check_words(settings: GuildSettings, texts: Mapping[str, str | None]) -> Refusal | None:
    """Refuse a name or appearance that holds one of the server's blocked words."""
    for field_name, text in texts.items():
        if not text:
            continue
        word = find_blocked_word(text, settings.blocked_words)
        if word is not None:
            return Refusal(RefusalReason.BLOCKED_WORD, _blocked_word_text(field_name))
    return None


def find_blocked_word(text: str, blocked_words: tuple[str, ...]) -> str | None:
    """The first blocked word found in ``text``, compared after :func:`normalize`."""
    haystack = normalize(text)
    squeezed = haystack.replace(" ", "")
    for word in blocked_words:
        needle = normalize(word)
        if needle and (needle in haystack or needle.replace(" ", "") in squeezed):
            return word
    return None


JOB_GONE = Refusal(
    RefusalReason.JOB_GONE,
    N_(
        "That avatar's record was deleted with `/avatar forget`, so it cannot be made again. "
        "Use `/avatar generate` instead."
    ),
)
NOT_REPEATABLE = Refusal(
    RefusalReason.NOT_REPEATABLE,
    N_(
        "Uploaded avatars cannot be made again: their photos are never kept. "
        "Run `/avatar upload` again instead."
    ),
)


def refusal_for_quota(result: EnqueueResult, limits: Limits, now: datetime) -> Refusal:
    """Explain why the store refused to queue a request."""
    match result.refusal:
        case RefusalReason.COOLDOWN:
            wait = _seconds_until(result.retry_at, now)
            return Refusal(
                RefusalReason.COOLDOWN,
                N_(
                    "Please wait {wait} s before your next avatar (this server's cooldown is "
                    "{cooldown} s).",
                    wait=wait,
                    cooldown=limits.cooldown_seconds,
                ),
            )
        case RefusalReason.BUSY:
            return Refusal(
                RefusalReason.BUSY,
                N_(
                    "You already have an avatar in the works. "
                    "Wait for it to finish, then try again."
                ),
            )
        case RefusalReason.GUILD_DAILY:
            return Refusal(
                RefusalReason.GUILD_DAILY,
                N_(
                    "This server has used all {limit} avatars for today. "
                    "The count resets at 00:00 UTC.",
                    limit=limits.guild_daily_quota,
                ),
            )
        case _:
            return Refusal(
                RefusalReason.USER_DAILY,
                N_(
                    "You have used all {limit} of your avatars for today. "
                    "The count resets at 00:00 UTC; see `/avatar quota`.",
                    limit=limits.user_daily_quota,
                ),
            )


def _blocked_text(block: Block) -> LazyText:
    if block.reason:
        return N_(
            "A moderator has blocked you from using Avatar Bot on this server "
            "(reason: {reason}). Ask a moderator if you think this is a mistake.",
            reason=block.reason,
        )
    return N_(
        "A moderator has blocked you from using Avatar Bot on this server. "
        "Ask a moderator if you think this is a mistake."
    )


def _blocked_word_text(field_name: str) -> LazyText:
    # One whole sentence per field, so that each language can word it its own way.
    if field_name == "appearance":
        return N_(
            "Your appearance contains a word this server does not allow. "
            "Please rephrase it and try again."
        )
    return N_(
        "Your name contains a word this server does not allow. Please rephrase it and try again."
    )


def _seconds_until(when: datetime | None, now: datetime) -> int:
    if when is None:
        return 1
    return max(1, int((when - now).total_seconds() + 0.999))
