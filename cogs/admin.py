"""``/avatar-admin``: moderators decide who may use the bot, how much, and where.

Hidden from members without Manage Server by the default member permissions,
and checked again by the bot on every use (command permissions can be edited
by a server, and Discord may serve stale ones).
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.app_commands import locale_str
from discord.ext import commands

from avatar_api.preflight import Check, Strictness
from avatar_api.text import N_, LazyText, N_plural, sentences
from avatarbot.guild_rules import (
    MAX_BLOCK_REASON,
    MAX_BLOCKED_WORDS,
    MAX_COOLDOWN_SECONDS,
    MAX_GUILD_DAILY_QUOTA,
    MAX_LIST_ENTRIES,
    MAX_USER_DAILY_QUOTA,
    MAX_WORDS_INPUT,
    normalize_blocked_words,
)
from avatarbot.i18n import Translation, language_name, offered_languages
from avatarbot.store.base import GuildSettings, Store

from .delivery import acknowledge, edit_reply
from .errors import AvatarError, reply_to_error
from .language import member_language, server_language
from .ui import WORKING, choice_name, safe

if TYPE_CHECKING:
    from bot import AvatarBot

log = logging.getLogger(__name__)


class ListAction(StrEnum):
    ADD = "add"
    REMOVE = "remove"
    CLEAR = "clear"


FOLLOW_SERVER = "server"
# Each language under its own name (not translated); or back to the server's Discord language.
LANGUAGE_CHOICES = [
    app_commands.Choice(name=locale_str("The server's Discord language"), value=FOLLOW_SERVER),
    *(app_commands.Choice(name=language_name(tag), value=tag) for tag in offered_languages()),
]
# The action's word as Discord shows it (translated); the value is the documented word.
ACTION_CHOICES = [
    app_commands.Choice(name=locale_str("add"), value=ListAction.ADD.value),
    app_commands.Choice(name=locale_str("remove"), value=ListAction.REMOVE.value),
    app_commands.Choice(name=locale_str("clear"), value=ListAction.CLEAR.value),
]


def describe_settings(
    settings: GuildSettings,
    log_channel_problem: str | None,
    t: Translation,
    guild: discord.Guild | None = None,
) -> discord.Embed:
    embed = discord.Embed(title=t.gettext("Avatar Bot settings"), colour=WORKING)
    embed.add_field(name=t.gettext("Enabled"), value=_yes_no(settings.enabled, t))
    embed.add_field(
        name=t.gettext("Uploads"),
        value=t.gettext("allowed") if settings.uploads_allowed else t.gettext("off"),
    )
    embed.add_field(name=t.gettext("Cooldown"), value=_seconds(settings.cooldown_seconds, t))
    embed.add_field(
        name=t.gettext("Per member per day"), value=_limit(settings.user_daily_quota, t)
    )
    embed.add_field(
        name=t.gettext("Per server per day"), value=_limit(settings.guild_daily_quota, t)
    )
    log_value = f"<#{settings.log_channel_id}>" if settings.log_channel_id else t.gettext("none")
    if log_channel_problem:
        log_value += f"\n⚠️ {log_channel_problem}"
    embed.add_field(name=t.gettext("Log channel"), value=log_value)
    embed.add_field(name=t.gettext("Language"), value=_language_value(settings, guild, t))
    embed.add_field(
        name=t.gettext("Channels"),
        value=" ".join(f"<#{c}>" for c in sorted(settings.allowed_channel_ids)) or t.gettext("all"),
        inline=False,
    )
    embed.add_field(
        name=t.gettext("Required roles"),
        value=" ".join(f"<@&{r}>" for r in sorted(settings.required_role_ids)) or t.gettext("none"),
        inline=False,
    )
    words = ", ".join(safe(w, 50) for w in settings.blocked_words)
    embed.add_field(
        name=t.gettext("Blocked words"), value=(words or t.gettext("none"))[:1024], inline=False
    )
    off = ", ".join(_check_word(c, t) for c in sorted(settings.disabled_checks))
    embed.add_field(
        name=t.gettext("Photo checks turned off"), value=off or t.gettext("none"), inline=False
    )
    embed.add_field(
        name=t.gettext("Photo check strictness"),
        value=t.render(_STRICTNESS_WORDS[settings.photo_strictness]),
        inline=False,
    )
    return embed


_STRICTNESS_WORDS = {
    Strictness.RELAXED: N_("relaxed"),
    Strictness.STANDARD: N_("standard"),
    Strictness.STRICT: N_("strict"),
}
_STRICTNESS_CHOICES = {
    Strictness.RELAXED: locale_str("Relaxed: lets softer, dimmer, smaller faces through"),
    Strictness.STANDARD: locale_str("Standard (default)"),
    Strictness.STRICT: locale_str("Strict: asks for a closer, sharper, better lit face"),
}


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class AdminCog(
    commands.GroupCog,
    group_name="avatar-admin",
    group_description=locale_str("Moderate Avatar Bot"),
):
    def __init__(self, bot: AvatarBot) -> None:
        self.bot = bot

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        member = interaction.user
        if not isinstance(member, discord.Member) or not member.guild_permissions.manage_guild:
            raise app_commands.MissingPermissions(["manage_guild"])
        return True

    async def cog_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        await reply_to_error(interaction, error)

    @property
    def store(self) -> Store:
        return self.bot.store

    async def _update(
        self, interaction: discord.Interaction, summary: LazyText, **changes: object
    ) -> None:
        assert interaction.guild_id is not None
        await self._acknowledge(interaction)
        await self.store.update_guild_settings(interaction.guild_id, **changes)
        log.info("guild %d: %s by %d", interaction.guild_id, summary, interaction.user.id)
        await edit_reply(interaction, content=f"✅ {member_language(interaction).render(summary)}")

    async def _settings(self, interaction: discord.Interaction) -> GuildSettings:
        assert interaction.guild_id is not None
        await self._acknowledge(interaction)
        return await self.store.get_guild_settings(interaction.guild_id)

    @staticmethod
    async def _acknowledge(interaction: discord.Interaction) -> None:
        """Before the first database call of a command (refusals decided earlier are the
        first response themselves)."""
        if not interaction.response.is_done():
            await acknowledge(interaction)

    @app_commands.command(description=locale_str("Show this server's Avatar Bot settings"))
    async def show(self, interaction: discord.Interaction) -> None:
        settings = await self._settings(interaction)
        t = member_language(interaction)
        problem = self._log_channel_problem(interaction.guild, settings.log_channel_id, t)
        await edit_reply(
            interaction, embed=describe_settings(settings, problem, t, interaction.guild)
        )

    @app_commands.command(description=locale_str("Turn Avatar Bot on for this server"))
    async def enable(self, interaction: discord.Interaction) -> None:
        await self._update(interaction, N_("Avatar Bot is on."), enabled=True)

    @app_commands.command(description=locale_str("Turn Avatar Bot off for this server"))
    async def disable(self, interaction: discord.Interaction) -> None:
        await self._update(interaction, N_("Avatar Bot is off."), enabled=False)

    @app_commands.command(
        description=locale_str("Seconds a member waits between two requests (0: none)")
    )
    @app_commands.describe(seconds=locale_str("0 turns the cooldown off"))
    async def cooldown(
        self,
        interaction: discord.Interaction,
        seconds: app_commands.Range[int, 0, MAX_COOLDOWN_SECONDS],
    ) -> None:
        summary = N_("Cooldown set to {cooldown}.", cooldown=_seconds_text(seconds))
        await self._update(interaction, summary, cooldown_seconds=seconds)

    @app_commands.command(
        description=locale_str("Daily limits (0: no limit); only the options given change")
    )
    @app_commands.describe(
        user_daily=locale_str("Avatars each member may create per day"),
        guild_daily=locale_str("Avatars per server per day"),
    )
    async def quota(
        self,
        interaction: discord.Interaction,
        user_daily: app_commands.Range[int, 0, MAX_USER_DAILY_QUOTA] | None = None,
        guild_daily: app_commands.Range[int, 0, MAX_GUILD_DAILY_QUOTA] | None = None,
    ) -> None:
        changes = {
            key: value
            for key, value in (("user_daily_quota", user_daily), ("guild_daily_quota", guild_daily))
            if value is not None
        }
        if not changes:
            raise AvatarError(N_("Give `user_daily`, `guild_daily` or both."))
        settings = await self._settings(interaction)
        merged = {
            "user_daily_quota": settings.user_daily_quota,
            "guild_daily_quota": settings.guild_daily_quota,
        } | changes
        summary = N_(
            "Daily limits: {per_member} per member, {per_server} per server.",
            per_member=_limit_text(merged["user_daily_quota"]),
            per_server=_limit_text(merged["guild_daily_quota"]),
        )
        await self._update(interaction, summary, **changes)

    @app_commands.command(
        description=locale_str("Limit the bot to some channels (none listed: everywhere)")
    )
    @app_commands.describe(
        action=locale_str("add, remove or clear"),
        channel=locale_str("The channel (not for clear)"),
    )
    @app_commands.choices(action=ACTION_CHOICES)
    async def channels(
        self,
        interaction: discord.Interaction,
        action: app_commands.Choice[str],
        channel: discord.TextChannel | discord.ForumChannel | None = None,
    ) -> None:
        settings = await self._settings(interaction)
        ids = _apply(
            ListAction(action.value), settings.allowed_channel_ids, channel, _CHOOSE_CHANNEL
        )
        listed = " ".join(f"<#{c}>" for c in sorted(ids)) or N_("every channel")
        summary = N_("Avatar Bot works in: {channels}.", channels=listed)
        await self._update(interaction, summary, allowed_channel_ids=ids)

    @app_commands.command(
        description=locale_str("Require one of some roles (none listed: everyone)")
    )
    @app_commands.describe(
        action=locale_str("add, remove or clear"), role=locale_str("The role (not for clear)")
    )
    @app_commands.choices(action=ACTION_CHOICES)
    async def roles(
        self,
        interaction: discord.Interaction,
        action: app_commands.Choice[str],
        role: discord.Role | None = None,
    ) -> None:
        settings = await self._settings(interaction)
        ids = _apply(ListAction(action.value), settings.required_role_ids, role, _CHOOSE_ROLE)
        listed = " ".join(f"<@&{r}>" for r in sorted(ids)) or N_("no role needed")
        await self._update(
            interaction, N_("Required roles: {roles}.", roles=listed), required_role_ids=ids
        )

    @app_commands.command(description=locale_str("Allow or forbid photo uploads"))
    @app_commands.describe(allowed=locale_str("Whether members may upload photos"))
    async def uploads(self, interaction: discord.Interaction, allowed: bool) -> None:
        summary = N_("Uploads are allowed.") if allowed else N_("Uploads are off.")
        await self._update(interaction, summary, uploads_allowed=allowed)

    @app_commands.command(
        name="log-channel", description=locale_str("Where one entry per job is posted")
    )
    @app_commands.describe(channel=locale_str("Leave empty to stop logging"))
    async def log_channel(
        self, interaction: discord.Interaction, channel: discord.TextChannel | None = None
    ) -> None:
        if channel is None:
            await self._update(interaction, N_("Job log turned off."), log_channel_id=None)
            return
        problem = self._log_channel_problem(
            interaction.guild, channel.id, member_language(interaction)
        )
        if problem:
            raise AvatarError(
                N_("{problem} Fix that, then set the log channel again.", problem=problem)
            )
        await self._update(
            interaction,
            N_("Jobs are logged in {channel}.", channel=channel.mention),
            log_channel_id=channel.id,
        )

    @app_commands.command(
        description=locale_str("The language of public posts and the log channel")
    )
    @app_commands.describe(locale=locale_str("The language to use"))
    @app_commands.choices(locale=LANGUAGE_CHOICES)
    async def language(
        self, interaction: discord.Interaction, locale: app_commands.Choice[str]
    ) -> None:
        if locale.value == FOLLOW_SERVER:
            shown = language_name(server_language(interaction.guild).locale)
            summary = N_(
                "Public posts and the log channel now follow the server's Discord language "
                "({language}).",
                language=shown,
            )
            await self._update(interaction, summary, language=None)
            return
        summary = N_(
            "Public posts and the log channel are now in {language}.", language=locale.name
        )
        await self._update(interaction, summary, language=locale.value)

    @app_commands.command(description=locale_str("Block a member from using Avatar Bot"))
    @app_commands.describe(
        user=locale_str("The member to block"), reason=locale_str("Why (the member sees this)")
    )
    async def block(
        self,
        interaction: discord.Interaction,
        user: discord.User,
        reason: app_commands.Range[str, 1, MAX_BLOCK_REASON],
    ) -> None:
        assert interaction.guild_id is not None
        if user.bot:
            raise AvatarError(N_("Bots cannot use Avatar Bot anyway."))
        await self._acknowledge(interaction)
        await self.store.block_user(
            interaction.guild_id, user.id, reason.strip(), interaction.user.id
        )
        t = member_language(interaction)
        blocked = t.gettext(
            "{member} is blocked: {reason}", member=user.mention, reason=safe(reason, 200)
        )
        await edit_reply(interaction, content=f"✅ {blocked}")

    @app_commands.command(description=locale_str("Lift a member's block"))
    @app_commands.describe(user=locale_str("The member to unblock"))
    async def unblock(self, interaction: discord.Interaction, user: discord.User) -> None:
        assert interaction.guild_id is not None
        await self._acknowledge(interaction)
        lifted = await self.store.unblock_user(interaction.guild_id, user.id)
        t = member_language(interaction)
        text = (
            t.gettext("{member} is unblocked.", member=user.mention)
            if lifted
            else t.gettext("{member} was not blocked.", member=user.mention)
        )
        await edit_reply(interaction, content=text)

    @app_commands.command(
        description=locale_str("Words refused in avatar names and appearance texts")
    )
    @app_commands.describe(
        action=locale_str("add, remove or clear"), words=locale_str("Comma-separated words")
    )
    @app_commands.choices(action=ACTION_CHOICES)
    async def words(
        self,
        interaction: discord.Interaction,
        action: app_commands.Choice[str],
        words: app_commands.Range[str, 1, MAX_WORDS_INPUT] | None = None,
    ) -> None:
        verb = ListAction(action.value)
        settings = await self._settings(interaction)
        given = normalize_blocked_words(words or "")
        if verb is not ListAction.CLEAR and not given:
            raise AvatarError(N_("Give one or more words, separated by commas."))
        current = list(settings.blocked_words)
        if verb is ListAction.ADD:
            current += [w for w in given if w not in current]
        elif verb is ListAction.REMOVE:
            current = [w for w in current if w not in given]
        else:
            current = []
        if len(current) > MAX_BLOCKED_WORDS:
            raise AvatarError(N_("At most {count} blocked words.", count=MAX_BLOCKED_WORDS))
        summary = N_plural(
            "{count} blocked word.", "{count} blocked words.", len(current), count=len(current)
        )
        await self._update(interaction, summary, blocked_words=tuple(current))

    @app_commands.command(
        name="photo-checks",
        description=locale_str("Turn a photo check on or off, or set how strict they are"),
    )
    @app_commands.describe(
        check=locale_str("The photo check"),
        enabled=locale_str("On or off"),
        strictness=locale_str("How hard the checks are on borderline photos"),
    )
    @app_commands.choices(
        check=[app_commands.Choice(name=choice_name(c.value), value=c.value) for c in Check],
        strictness=[
            app_commands.Choice(name=_STRICTNESS_CHOICES[s], value=s.value) for s in Strictness
        ],
    )
    async def photo_checks(
        self,
        interaction: discord.Interaction,
        check: app_commands.Choice[str] | None = None,
        enabled: bool | None = None,
        strictness: app_commands.Choice[str] | None = None,
    ) -> None:
        if (check is None) != (enabled is None) or (check is None and strictness is None):
            raise AvatarError(N_("Give a check and whether it is on, a strictness, or both."))
        settings = await self._settings(interaction)
        changes: dict[str, object] = {}
        summaries: list[LazyText] = []
        if check is not None and enabled is not None:
            disabled = set(settings.disabled_checks)
            (disabled.discard if enabled else disabled.add)(check.value)
            changes["disabled_checks"] = frozenset(disabled)
            label = _CHECK_WORDS[Check(check.value)]
            summaries.append(
                N_("The {check} check is on.", check=label)
                if enabled
                else N_("The {check} check is off.", check=label)
            )
        if strictness is not None:
            level = Strictness(strictness.value)
            changes["photo_strictness"] = level
            summaries.append(N_("Photo checks are {level}.", level=_STRICTNESS_WORDS[level]))
        await self._update(interaction, sentences(*summaries), **changes)

    @app_commands.command(description=locale_str("Jobs today and this week, and who made them"))
    async def usage(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        settings = await self._settings(interaction)
        stats = await self.store.usage_stats(interaction.guild_id, self.bot.clock())
        t = member_language(interaction)
        n = t.number
        embed = discord.Embed(title=t.gettext("Avatar Bot usage"), colour=WORKING)
        today = t.ngettext(
            "{jobs} job: {succeeded} succeeded, {failed} failed, {refused} refused",
            "{jobs} jobs: {succeeded} succeeded, {failed} failed, {refused} refused",
            stats.jobs_today,
            jobs=n(stats.jobs_today),
            succeeded=n(stats.succeeded_today),
            failed=n(stats.failed_today),
            refused=n(stats.refused_today),
        )
        embed.add_field(name=t.gettext("Today (UTC)"), value=today, inline=False)
        week = t.ngettext(
            "{jobs} job: {succeeded} succeeded, {failed} failed",
            "{jobs} jobs: {succeeded} succeeded, {failed} failed",
            stats.jobs_7d,
            jobs=n(stats.jobs_7d),
            succeeded=n(stats.succeeded_7d),
            failed=n(stats.failed_7d),
        )
        embed.add_field(name=t.gettext("Last 7 days"), value=week, inline=False)
        top = "\n".join(f"<@{user}>: {n(count)}" for user, count in stats.top_members_7d)
        embed.add_field(
            name=t.gettext("Top members (7 days)"), value=top or t.gettext("nobody"), inline=False
        )
        if settings.guild_daily_quota:
            left = max(0, settings.guild_daily_quota - stats.guild_used_today)
            budget = t.gettext(
                "{left} of {limit} left today", left=n(left), limit=n(settings.guild_daily_quota)
            )
        else:
            budget = t.gettext("{used} used today, no daily limit", used=n(stats.guild_used_today))
        embed.add_field(name=t.gettext("Server budget"), value=budget, inline=False)
        await edit_reply(interaction, embed=embed)

    @app_commands.command(
        name="reset-quota", description=locale_str("Give a member their daily quota back")
    )
    @app_commands.describe(user=locale_str("The member whose quota is reset"))
    async def reset_quota(self, interaction: discord.Interaction, user: discord.User) -> None:
        assert interaction.guild_id is not None
        await self._acknowledge(interaction)
        await self.store.reset_user_quota(interaction.guild_id, user.id, self.bot.clock())
        t = member_language(interaction)
        reset = t.gettext("{member}'s quota for today is reset.", member=user.mention)
        await edit_reply(interaction, content=f"✅ {reset}")

    def _log_channel_problem(
        self, guild: discord.Guild | None, channel_id: int | None, t: Translation
    ) -> str | None:
        if guild is None or channel_id is None:
            return None
        channel = guild.get_channel(channel_id)
        if channel is None:
            return t.gettext("The log channel no longer exists.")
        perms = channel.permissions_for(guild.me)
        missing = [
            t.render(label)
            for label, ok in (
                (N_("View Channel"), perms.view_channel),
                (N_("Send Messages"), perms.send_messages),
                (N_("Embed Links"), perms.embed_links),
            )
            if not ok
        ]
        if missing:
            return t.gettext(
                "The bot lacks {permissions} in {channel}.",
                permissions=", ".join(missing),
                channel=channel.mention,
            )
        return None


# Whole sentences, so that each language words them its own way.
_CHOOSE_CHANNEL = {
    ListAction.ADD: N_("Choose a channel to add."),
    ListAction.REMOVE: N_("Choose a channel to remove."),
}
_CHOOSE_ROLE = {
    ListAction.ADD: N_("Choose a role to add."),
    ListAction.REMOVE: N_("Choose a role to remove."),
}
# How a check is named inside a sentence ("The face check is off.").
_CHECK_WORDS = {
    Check.FACE: N_("face"),
    Check.SHARPNESS: N_("sharpness"),
    Check.EXPOSURE: N_("exposure"),
    Check.DUPLICATE: N_("duplicate"),
}


def _language_value(settings: GuildSettings, guild: discord.Guild | None, t: Translation) -> str:
    shown = language_name(server_language(guild, settings.language).locale)
    if settings.language:
        return shown
    return t.gettext("{language} (the server's Discord language)", language=shown)


def _check_word(value: str, t: Translation) -> str:
    known = {check.value: word for check, word in _CHECK_WORDS.items()}
    return t.render(known[value]) if value in known else value


def _apply(
    action: ListAction,
    current: frozenset[int],
    item: discord.abc.Snowflake | None,
    choose: dict[ListAction, LazyText],
) -> frozenset[int]:
    if action is ListAction.CLEAR:
        return frozenset()
    if item is None:
        raise AvatarError(choose[action])
    if action is ListAction.ADD:
        if len(current) >= MAX_LIST_ENTRIES and item.id not in current:
            raise AvatarError(N_("At most {count} entries.", count=MAX_LIST_ENTRIES))
        return current | {item.id}
    return current - {item.id}


def _seconds_text(value: int) -> LazyText:
    return N_("off") if value == 0 else N_("{seconds} s", seconds=value)


def _limit_text(value: int) -> LazyText | int:
    return N_("off") if value == 0 else value


def _seconds(value: int, t: Translation) -> str:
    return t.gettext("off") if value == 0 else t.gettext("{seconds} s", seconds=t.number(value))


def _limit(value: int, t: Translation) -> str:
    return t.gettext("off") if value == 0 else t.number(value)


def _yes_no(value: bool, t: Translation) -> str:
    return t.gettext("yes") if value else t.gettext("no")


async def setup(bot: AvatarBot) -> None:
    await bot.add_cog(AdminCog(bot))
