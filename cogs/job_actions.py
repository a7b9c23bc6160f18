"""Answers to the buttons on a job's messages and to Edit's modal, on any process.

Every press is acknowledged before the database is touched: a private "thinking"
reply for Re-roll and for an edit's submission, a deferred update for Delete and
Cancel (which then change their own message through the press's token), and the
modal itself for Edit (prefilled by one read, bounded in time). Re-roll and Edit are
new requests under every rule of the server the avatar came from, also when its
result was delivered by DM.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from avatar_api import ValidationError
from avatar_api.text import LazyText
from avatarbot.policy import JOB_GONE, NOT_REPEATABLE, ButtonAction, Requester, may_press
from avatarbot.store.base import CancelOutcome, SourceType

from .delivery import (
    DeliveryCog,
    acknowledge,
    acknowledge_press,
    delivery_of,
    edit_reply,
    gated_ack,
)
from .errors import refuse, report_unexpected, send_ephemeral
from .job_buttons import (
    EDIT_MODAL_TEMPLATE,
    PRESS_HANDLER_COG,
    JobButton,
    JobKey,
    buttons_except,
    edit_modal,
    submitted_texts,
)
from .language import member_language
from .requesters import requester_in, requester_of
from .ui import (
    DELETED,
    EDIT_UNAVAILABLE,
    MEMBER_GONE,
    NOT_DELETED,
    NOT_YOUR_JOB,
    NOT_YOUR_POST,
    SERVER_GONE,
    cancel_text,
    safe,
    with_history_line,
)

if TYPE_CHECKING:
    from bot import AvatarBot

log = logging.getLogger(__name__)

# The modal must open within Discord's 3 s; the prefill read gets half of that.
EDIT_PREFILL_SECONDS = 1.5


class JobActions(commands.Cog):
    def __init__(self, bot: AvatarBot) -> None:
        self.bot = bot

    @property
    def delivery(self) -> DeliveryCog:
        return delivery_of(self.bot)

    async def pressed(
        self, interaction: discord.Interaction, action: ButtonAction, key: JobKey
    ) -> None:
        try:
            if not self._may_press(interaction, action, key):
                denial = NOT_YOUR_POST if action is ButtonAction.DELETE else NOT_YOUR_JOB
                await refuse(interaction, denial)
                return
            match action:
                case ButtonAction.REROLL:
                    await self._make_again(interaction, key, edits=None)
                case ButtonAction.EDIT:
                    await self._open_editor(interaction, key)
                case ButtonAction.DELETE:
                    await self._delete(interaction)
                case ButtonAction.CANCEL:
                    await self._cancel(interaction, key)
        except Exception as error:
            await report_unexpected(interaction, error)

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Edit's modal, matched by its custom id: discord.py keeps modals only in memory."""
        if interaction.type is not discord.InteractionType.modal_submit:
            return
        match = EDIT_MODAL_TEMPLATE.fullmatch(str((interaction.data or {}).get("custom_id", "")))
        if match is None:
            return
        key = JobKey.from_match(match)
        try:
            if interaction.user.id != key.user_id:
                await refuse(interaction, NOT_YOUR_JOB)
                return
            await self._make_again(interaction, key, edits=submitted_texts(interaction.data))
        except Exception as error:
            await report_unexpected(interaction, error)

    def _may_press(
        self, interaction: discord.Interaction, action: ButtonAction, key: JobKey
    ) -> bool:
        moderator = interaction.guild_id == key.guild_id and interaction.permissions.manage_guild
        return may_press(action, key.user_id, interaction.user.id, presser_manages_guild=moderator)

    # --- Re-roll and Edit ---------------------------------------------------------------
    async def _make_again(
        self, interaction: discord.Interaction, key: JobKey, *, edits: Mapping[str, str] | None
    ) -> None:
        """A new request under every rule of the job's server; progress private, result public."""
        received_at = self.bot.clock()
        await acknowledge(interaction)
        t = member_language(interaction)
        requester = await self._requester(interaction, key, received_at)
        if isinstance(requester, str):
            await edit_reply(interaction, content=f"⚠️ {t.render(requester)}")
            return
        try:
            admission = await self.bot.service.remake(requester, key.job_id, edits)
        except ValidationError as error:
            await edit_reply(interaction, content=f"⚠️ {safe(t.render(error.text))}")
            return
        if admission.refusal is not None:
            await edit_reply(interaction, content=f"⚠️ {t.render(admission.refusal.text)}")
            return
        assert admission.job is not None
        await self.delivery.track(interaction, admission.job)

    async def _requester(
        self, interaction: discord.Interaction, key: JobKey, received_at: datetime
    ) -> Requester | LazyText:
        """Who asks, under the rules of the server the avatar came from (also from a DM),
        with the press's interaction sealed so that any process answers in it."""
        if interaction.guild_id is not None:
            return requester_of(interaction, self.bot.sealer, received_at)
        job = await self.bot.service.past_job(key.user_id, key.guild_id, key.job_id)
        if job is None:
            return JOB_GONE.text
        guild = self.bot.get_guild(key.guild_id)
        if guild is None:
            return SERVER_GONE
        try:
            member = guild.get_member(key.user_id) or await guild.fetch_member(key.user_id)
        except discord.NotFound:
            return MEMBER_GONE
        channel = guild.get_channel_or_thread(job.channel_id)
        return requester_in(
            key.guild_id,
            job.channel_id,
            member,
            channel,
            interaction,
            self.bot.sealer,
            received_at,
        )

    async def _open_editor(self, interaction: discord.Interaction, key: JobKey) -> None:
        """The modal is the acknowledgement: prefill it with one read, bounded in time."""
        try:
            job = await asyncio.wait_for(
                self.bot.service.past_job(key.user_id, key.guild_id, key.job_id),
                timeout=EDIT_PREFILL_SECONDS,
            )
        except TimeoutError:
            log.warning("job %d: the edit prefill read took too long", key.job_id)
            await refuse(interaction, EDIT_UNAVAILABLE)
            return
        if job is None or job.mode is not SourceType.GENERATE:
            await refuse(interaction, (JOB_GONE if job is None else NOT_REPEATABLE).text)
            return
        modal = edit_modal(job, member_language(interaction))
        await gated_ack(interaction, interaction.response.send_modal(modal))

    # --- Delete and Cancel ----------------------------------------------------------------
    async def _delete(self, interaction: discord.Interaction) -> None:
        """Remove the public post through the press's own token; the record stays."""
        await acknowledge_press(interaction)
        try:
            await interaction.delete_original_response()
        except discord.HTTPException as error:
            log.info("could not delete a result post: %s", error)
            await send_ephemeral(interaction, member_language(interaction).render(NOT_DELETED))
            return
        await send_ephemeral(interaction, member_language(interaction).render(DELETED))

    async def _cancel(self, interaction: discord.Interaction, key: JobKey) -> None:
        """Withdraw a queued job; the pressed message loses its Cancel either way."""
        await acknowledge_press(interaction)
        result = await self.bot.service.cancel(key.user_id, key.job_id)
        t = member_language(interaction)
        rest = buttons_except(interaction.message, key.custom_id(ButtonAction.CANCEL.value), t)
        text = cancel_text(result, key.job_id, t)
        if result.outcome is not CancelOutcome.CANCELLED or result.job is None:
            await edit_reply(interaction, view=rest)
            await send_ephemeral(interaction, text)
            return
        await self.delivery.untrack(key.job_id)
        embeds = interaction.message.embeds if interaction.message else []
        if embeds:  # a history: the job's line shows the cancel too
            embeds = [with_history_line(embeds[0], result.job, t), *embeds[1:]]
        await edit_reply(interaction, content=text, view=rest, embeds=embeds)


async def setup(bot: AvatarBot) -> None:
    assert JobActions.__cog_name__ == PRESS_HANDLER_COG
    bot.add_dynamic_items(JobButton)
    await bot.add_cog(JobActions(bot))


async def teardown(bot: AvatarBot) -> None:
    bot.remove_dynamic_items(JobButton)
