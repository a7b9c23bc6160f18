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
from discord.ext import commands

from avatar_api.preflight import Check
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
from avatarbot.store.base import GuildSettings, Store

from .delivery import acknowledge, edit_reply
from .errors import AvatarError, reply_to_error
from .ui import WORKING, choice_label, safe

if TYPE_CHECKING:
    from bot import AvatarBot

log = logging.getLogger(__name__)


class ListAction(StrEnum):
    ADD = "add"
    REMOVE = "remove"
    CLEAR = "clear"


def describe_settings(settings: GuildSettings, log_channel_problem: str | None) -> discord.Embed:
    embed = discord.Embed(title="Avatar Bot settings", colour=WORKING)
    embed.add_field(name="Enabled", value=_yes_no(settings.enabled))
    embed.add_field(name="Uploads", value="allowed" if settings.uploads_allowed else "off")
    embed.add_field(name="Cooldown", value=_limit(settings.cooldown_seconds, " s"))
    embed.add_field(name="Per member per day", value=_limit(settings.user_daily_quota))
    embed.add_field(name="Per server per day", value=_limit(settings.guild_daily_quota))
    log_value = f"<#{settings.log_channel_id}>" if settings.log_channel_id else "none"
    if log_channel_problem:
        log_value += f"\n⚠️ {log_channel_problem}"
    embed.add_field(name="Log channel", value=log_value)
    embed.add_field(
        name="Channels",
        value=" ".join(f"<#{c}>" for c in sorted(settings.allowed_channel_ids)) or "all",
        inline=False,
    )
    embed.add_field(
        name="Required roles",
        value=" ".join(f"<@&{r}>" for r in sorted(settings.required_role_ids)) or "none",
        inline=False,
    )
    words = ", ".join(safe(w, 50) for w in settings.blocked_words)
    embed.add_field(name="Blocked words", value=(words or "none")[:1024], inline=False)
    off = ", ".join(sorted(settings.disabled_checks))
    embed.add_field(name="Photo checks turned off", value=off or "none", inline=False)
    return embed


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class AdminCog(
    commands.GroupCog, group_name="avatar-admin", group_description="Moderate Avatar Bot"
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
        self, interaction: discord.Interaction, summary: str, **changes: object
    ) -> None:
        assert interaction.guild_id is not None
        await self._acknowledge(interaction)
        await self.store.update_guild_settings(interaction.guild_id, **changes)
        log.info("guild %d: %s by %d", interaction.guild_id, summary, interaction.user.id)
        await edit_reply(interaction, content=f"✅ {summary}")

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

    @app_commands.command(description="Show this server's Avatar Bot settings")
    async def show(self, interaction: discord.Interaction) -> None:
        settings = await self._settings(interaction)
        problem = self._log_channel_problem(interaction.guild, settings.log_channel_id)
        await edit_reply(interaction, embed=describe_settings(settings, problem))

    @app_commands.command(description="Turn Avatar Bot on for this server")
    async def enable(self, interaction: discord.Interaction) -> None:
        await self._update(interaction, "Avatar Bot is on.", enabled=True)

    @app_commands.command(description="Turn Avatar Bot off for this server")
    async def disable(self, interaction: discord.Interaction) -> None:
        await self._update(interaction, "Avatar Bot is off.", enabled=False)

    @app_commands.command(description="Seconds a member waits between two requests (0: none)")
    @app_commands.describe(seconds="0 turns the cooldown off")
    async def cooldown(
        self,
        interaction: discord.Interaction,
        seconds: app_commands.Range[int, 0, MAX_COOLDOWN_SECONDS],
    ) -> None:
        await self._update(
            interaction, f"Cooldown set to {_limit(seconds, ' s')}.", cooldown_seconds=seconds
        )

    @app_commands.command(description="Daily limits (0: no limit); only the options given change")
    @app_commands.describe(
        user_daily="Avatars each member may create per day",
        guild_daily="Avatars per server per day",
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
            raise AvatarError("Give `user_daily`, `guild_daily` or both.")
        settings = await self._settings(interaction)
        merged = {
            "user_daily_quota": settings.user_daily_quota,
            "guild_daily_quota": settings.guild_daily_quota,
        } | changes
        summary = (
            f"Daily limits: {_limit(merged['user_daily_quota'])} per member, "
            f"{_limit(merged['guild_daily_quota'])} per server."
        )
        await self._update(interaction, summary, **changes)

    @app_commands.command(description="Limit the bot to some channels (none listed: everywhere)")
    @app_commands.describe(action="add, remove or clear", channel="The channel (not for clear)")
    async def channels(
        self,
        interaction: discord.Interaction,
        action: ListAction,
        channel: discord.TextChannel | discord.ForumChannel | None = None,
    ) -> None:
        settings = await self._settings(interaction)
        ids = _apply(action, settings.allowed_channel_ids, channel, "channel")
        listed = " ".join(f"<#{c}>" for c in sorted(ids)) or "every channel"
        await self._update(interaction, f"Avatar Bot works in: {listed}.", allowed_channel_ids=ids)

    @app_commands.command(description="Require one of some roles (none listed: everyone)")
    @app_commands.describe(action="add, remove or clear", role="The role (not for clear)")
    async def roles(
        self, interaction: discord.Interaction, action: ListAction, role: discord.Role | None = None
    ) -> None:
        settings = await self._settings(interaction)
        ids = _apply(action, settings.required_role_ids, role, "role")
        listed = " ".join(f"<@&{r}>" for r in sorted(ids)) or "no role needed"
        await self._update(interaction, f"Required roles: {listed}.", required_role_ids=ids)

    @app_commands.command(description="Allow or forbid photo uploads")
    async def uploads(self, interaction: discord.Interaction, allowed: bool) -> None:
        summary = "Uploads are allowed." if allowed else "Uploads are off."
        await self._update(interaction, summary, uploads_allowed=allowed)

    @app_commands.command(name="log-channel", description="Where one entry per job is posted")
    @app_commands.describe(channel="Leave empty to stop logging")
    async def log_channel(
        self, interaction: discord.Interaction, channel: discord.TextChannel | None = None
    ) -> None:
        if channel is None:
            await self._update(interaction, "Job log turned off.", log_channel_id=None)
            return
        problem = self._log_channel_problem(interaction.guild, channel.id)
        if problem:
            raise AvatarError(f"{problem} Fix that, then set the log channel again.")
        await self._update(
            interaction, f"Jobs are logged in {channel.mention}.", log_channel_id=channel.id
        )

    @app_commands.command(description="Block a member from using Avatar Bot")
    async def block(
        self,
        interaction: discord.Interaction,
        user: discord.User,
        reason: app_commands.Range[str, 1, MAX_BLOCK_REASON],
    ) -> None:
        assert interaction.guild_id is not None
        if user.bot:
            raise AvatarError("Bots cannot use Avatar Bot anyway.")
        await self._acknowledge(interaction)
        await self.store.block_user(
            interaction.guild_id, user.id, reason.strip(), interaction.user.id
        )
        await edit_reply(interaction, content=f"✅ {user.mention} is blocked: {safe(reason, 200)}")

    @app_commands.command(description="Lift a member's block")
    async def unblock(self, interaction: discord.Interaction, user: discord.User) -> None:
        assert interaction.guild_id is not None
        await self._acknowledge(interaction)
        lifted = await self.store.unblock_user(interaction.guild_id, user.id)
        text = f"{user.mention} is unblocked." if lifted else f"{user.mention} was not blocked."
        await edit_reply(interaction, content=text)

    @app_commands.command(description="Words refused in avatar names and appearance texts")
    @app_commands.describe(action="add, remove or clear", words="Comma-separated words")
    async def words(
        self,
        interaction: discord.Interaction,
        action: ListAction,
        words: app_commands.Range[str, 1, MAX_WORDS_INPUT] | None = None,
    ) -> None:
        settings = await self._settings(interaction)
        given = normalize_blocked_words(words or "")
        if action is not ListAction.CLEAR and not given:
            raise AvatarError("Give one or more words, separated by commas.")
        current = list(settings.blocked_words)
        if action is ListAction.ADD:
            current += [w for w in given if w not in current]
        elif action is ListAction.REMOVE:
            current = [w for w in current if w not in given]
        else:
            current = []
        if len(current) > MAX_BLOCKED_WORDS:
            raise AvatarError(f"At most {MAX_BLOCKED_WORDS} blocked words.")
        await self._update(
            interaction, f"{len(current)} blocked words.", blocked_words=tuple(current)
        )

    @app_commands.command(name="photo-checks", description="Turn a photo check on or off")
    @app_commands.choices(
        check=[app_commands.Choice(name=choice_label(c.value), value=c.value) for c in Check]
    )
    async def photo_checks(
        self,
        interaction: discord.Interaction,
        check: app_commands.Choice[str],
        enabled: bool,
    ) -> None:
        settings = await self._settings(interaction)
        disabled = set(settings.disabled_checks)
        (disabled.discard if enabled else disabled.add)(check.value)
        state = "on" if enabled else "off"
        await self._update(
            interaction,
            f"The {check.name.lower()} check is {state}.",
            disabled_checks=frozenset(disabled),
        )

    @app_commands.command(description="Jobs today and this week, and who made them")
    async def usage(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        settings = await self._settings(interaction)
        stats = await self.store.usage_stats(interaction.guild_id, self.bot.clock())
        embed = discord.Embed(title="Avatar Bot usage", colour=WORKING)
        embed.add_field(
            name="Today (UTC)",
            value=f"{stats.jobs_today} jobs: {stats.succeeded_today} succeeded, "
            f"{stats.failed_today} failed, {stats.refused_today} refused",
            inline=False,
        )
        embed.add_field(
            name="Last 7 days",
            value=f"{stats.jobs_7d} jobs: {stats.succeeded_7d} succeeded, {stats.failed_7d} failed",
            inline=False,
        )
        top = "\n".join(f"<@{user}>: {count}" for user, count in stats.top_members_7d) or "nobody"
        embed.add_field(name="Top members (7 days)", value=top, inline=False)
        if settings.guild_daily_quota:
            left = max(0, settings.guild_daily_quota - stats.guild_used_today)
            budget = f"{left} of {settings.guild_daily_quota} left today"
        else:
            budget = f"{stats.guild_used_today} used today, no daily limit"
        embed.add_field(name="Server budget", value=budget, inline=False)
        await edit_reply(interaction, embed=embed)

    @app_commands.command(name="reset-quota", description="Give a member their daily quota back")
    async def reset_quota(self, interaction: discord.Interaction, user: discord.User) -> None:
        assert interaction.guild_id is not None
        await self._acknowledge(interaction)
        await self.store.reset_user_quota(interaction.guild_id, user.id, self.bot.clock())
        await edit_reply(interaction, content=f"✅ {user.mention}'s quota for today is reset.")

    def _log_channel_problem(
        self, guild: discord.Guild | None, channel_id: int | None
    ) -> str | None:
        if guild is None or channel_id is None:
            return None
        channel = guild.get_channel(channel_id)
        if channel is None:
            return "The log channel no longer exists."
        perms = channel.permissions_for(guild.me)
        missing = [
            label
            for label, ok in (
                ("View Channel", perms.view_channel),
                ("Send Messages", perms.send_messages),
                ("Embed Links", perms.embed_links),
            )
            if not ok
        ]
        if missing:
            return f"The bot lacks {', '.join(missing)} in {channel.mention}."
        return None


def _apply(
    action: ListAction, current: frozenset[int], item: discord.abc.Snowflake | None, what: str
) -> frozenset[int]:
    if action is ListAction.CLEAR:
        return frozenset()
    if item is None:
        raise AvatarError(f"Choose a {what} to {action.value}.")
    if action is ListAction.ADD:
        if len(current) >= MAX_LIST_ENTRIES and item.id not in current:
            raise AvatarError(f"At most {MAX_LIST_ENTRIES} entries.")
        return current | {item.id}
    return current - {item.id}


def _limit(value: int, unit: str = "") -> str:
    return "off" if value == 0 else f"{value}{unit}"


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


async def setup(bot: AvatarBot) -> None:
    await bot.add_cog(AdminCog(bot))
