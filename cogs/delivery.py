"""Telling members what happens to their jobs: the dispatcher's listener, as a cog.

It keeps each job's interaction while it lives (about 15 minutes) and edits it
with the job's place, its start and its outcome; once the interaction is gone it
falls back to a DM, else the channel. The moderators' log entry is posted here too.
A member reads their own language (kept with the job for a later DM); the
channel and the log read the server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import discord
from discord.ext import commands

from avatar_api.text import N_
from avatarbot.i18n import Translation, for_locale
from avatarbot.store.base import JobRecord, JobState, SourceType

from .errors import acknowledged, timed_ack
from .job_buttons import cancel_buttons, result_buttons, with_view
from .language import member_language, server_language
from .limits import INVALID_FORM_BODY, fit_content, fit_embed, fit_message, plain_text
from .replies import InteractionReply, reply_for
from .ui import NO_MENTIONS, log_embed, progress_text, result_embed, state_name

if TYPE_CHECKING:
    from avatarbot.queue import QueuePlace
    from bot import AvatarBot

log = logging.getLogger(__name__)
_T = TypeVar("_T")

INTERACTION_LIFETIME = timedelta(minutes=14, seconds=30)
# Each place edit is a Discord request; a long queue moves every few seconds.
PLACE_EDIT_INTERVAL = timedelta(seconds=15)
DONE_TEXT = N_("✅ Done: your avatar's group id is posted in the channel.")


class DeliveryCog(commands.Cog):
    def __init__(self, bot: AvatarBot) -> None:
        self.bot = bot
        self._waiting: dict[int, discord.Interaction] = {}
        self._shown_place: dict[int, tuple[int, datetime]] = {}
        self._logged: set[int] = set()  # logged, but the member not told yet
        self._place_edits: dict[int, asyncio.Task[None]] = {}
        self._cancels: dict[int, discord.ui.View] = {}  # Cancel, while the job waits

    async def cog_load(self) -> None:
        self.bot.job_relay.target = self

    async def cog_unload(self) -> None:
        self.bot.job_relay.target = None

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        """The bot left (or was removed from) a server: its queued jobs must not spend credits."""
        await self.bot.dispatcher.server_left(guild.id)

    async def track(self, interaction: discord.Interaction, job: JobRecord) -> None:
        """Keep the interaction of a just-queued job and show its place (with Cancel)."""
        self._waiting[job.id] = interaction
        t = member_language(interaction)
        position = await self.bot.store.queue_position(job.id)
        cancel = None
        if position is not None:
            self._shown_place[job.id] = (position, self.bot.clock())
            cancel = self._cancels[job.id] = cancel_buttons([job], t)
        await show_progress(interaction, progress_text(job.id, position, None, t), view=cancel)
        self.bot.dispatcher.wake()

    async def untrack(self, job_id: int) -> None:
        """The job was cancelled: its reply is no longer ours to edit."""
        await self._finish_place_edit(job_id)
        self._waiting.pop(job_id, None)

    # --- the dispatcher's listener ------------------------------------------------

    async def job_started(self, job: JobRecord) -> None:
        await self._finish_place_edit(job.id)
        interaction = self._live_interaction(job.id)
        if interaction is not None:
            content = progress_text(job.id, None, None, member_language(interaction))
            await show_progress(interaction, content)
            return
        reply = self._reply_elsewhere(job)  # another process received the interaction
        if reply is not None:
            content = progress_text(job.id, None, None, for_locale(job.locale))
            with contextlib.suppress(discord.HTTPException):
                await reply.edit(content=fit_content(content), embed=None, view=None)

    async def positions_changed(self, positions: Mapping[int, QueuePlace]) -> None:
        """Edit the places that moved (at most every 15 s each), without holding up the queue."""
        now = self.bot.clock()
        for job_id, place in positions.items():
            interaction = self._live_interaction(job_id)
            pending = self._place_edits.get(job_id)
            if interaction is None or (pending is not None and not pending.done()):
                continue
            shown, shown_at = self._shown_place.get(job_id, (None, None))
            if shown == place.position or (shown_at and now - shown_at < PLACE_EDIT_INTERVAL):
                continue
            self._shown_place[job_id] = (place.position, now)
            eta = (place.estimated_start - now).total_seconds()
            content = progress_text(job_id, place.position, eta, member_language(interaction))
            cancel = self._cancels.get(job_id)
            self._place_edits[job_id] = asyncio.create_task(
                show_progress(interaction, content, view=cancel)
            )

    async def job_finished(self, job: JobRecord) -> bool:
        if job.id not in self._logged:
            self._logged.add(job.id)
            await self._post_log_entry(job)
        await self._finish_place_edit(job.id)
        interaction = self._live_interaction(job.id)
        self._waiting.pop(job.id, None)
        if interaction is not None:
            reply = InteractionReply.open(self.bot, interaction.application_id, interaction.token)
            member = member_language(interaction)
        else:
            reply, member = self._reply_elsewhere(job), for_locale(job.locale)
        told = (reply is not None and await self._reply(reply, job, member)) or (
            await self._tell_elsewhere(job)
        )
        if told:
            self._logged.discard(job.id)
        return told

    # --- helpers --------------------------------------------------------------------

    async def _finish_place_edit(self, job_id: int) -> None:
        """Let a queued-place edit land first, so it never overwrites a later state."""
        self._shown_place.pop(job_id, None)
        self._cancels.pop(job_id, None)
        pending = self._place_edits.pop(job_id, None)
        if pending is not None:
            await pending

    def _live_interaction(self, job_id: int) -> discord.Interaction | None:
        interaction = self._waiting.get(job_id)
        if interaction is None:
            return None
        if discord.utils.utcnow() - interaction.created_at > INTERACTION_LIFETIME:
            return None
        return interaction

    def _reply_elsewhere(self, job: JobRecord) -> InteractionReply | None:
        """The member's interaction through the job's sealed token, while it is open:
        how the process that runs (or adopted) a job answers in an interaction another
        process received."""
        return reply_for(self.bot, job, self.bot.sealer, self.bot.clock)

    async def _reply(self, reply: InteractionReply, job: JobRecord, member: Translation) -> bool:
        """Failures and uploads stay private; a generated avatar is shown to the channel.

        Through the interaction's token, whichever process received it. The member
        reads their own language; the channel reads the server's.
        """
        try:
            if job.state is JobState.SUCCEEDED and job.mode is SourceType.GENERATE:
                server = await self._server_language(job.guild_id)
                await reply.follow_up(
                    server.gettext("{member}'s new avatar:", member=f"<@{job.user_id}>"),
                    embed=fit_embed(result_embed(job, server)),
                    **with_view(result_buttons(job, server)),
                )
                await reply.edit(content=member.render(DONE_TEXT), embed=None, view=None)
            else:
                embed = fit_embed(result_embed(job, member))
                await reply.edit(content=None, embed=embed, view=None)
            return True
        except discord.HTTPException as error:
            log.warning("could not reply to job %d in its interaction: %s", job.id, error)
            return False

    async def _tell_elsewhere(self, job: JobRecord) -> bool:
        """The interaction is gone (expired, or a restart): a DM, else the channel.

        The DM is in the member's language (kept with the job); the channel reads the server's.
        """
        mine = for_locale(job.locale) if job.locale else await self._server_language(job.guild_id)
        try:
            user = self.bot.get_user(job.user_id) or await self.bot.fetch_user(job.user_id)
            await user.send(
                mine.gettext("Here is the outcome of your avatar request:"),
                embed=fit_embed(result_embed(job, mine)),
                allowed_mentions=NO_MENTIONS,
                view=result_buttons(job, mine),
            )
            return True
        except discord.HTTPException as error:
            log.info("could not DM job %d's outcome: %s", job.id, error)
        t = await self._server_language(job.guild_id)
        embed = fit_embed(result_embed(job, t))
        note = t.gettext("Here is the outcome of your avatar request:")
        channel = self.bot.get_channel(job.channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            return False
        public = job.state is JobState.SUCCEEDED and job.mode is SourceType.GENERATE
        content = f"<@{job.user_id}> " + (
            note
            if public
            else t.gettext(
                "your avatar job #{job_id} ended ({state}). "
                "I could not DM you the details; run `/avatar history` to see them.",
                job_id=job.id,
                state=state_name(job.state, t),
            )
        )
        try:
            await channel.send(
                content,
                embed=embed if public else None,
                view=result_buttons(job, t) if public else None,
                allowed_mentions=discord.AllowedMentions(
                    everyone=False, roles=False, users=[discord.Object(job.user_id)]
                ),
            )
            return True
        except discord.HTTPException as error:
            log.warning("could not tell anyone about job %d: %s", job.id, error)
            return False

    async def _post_log_entry(self, job: JobRecord) -> None:
        settings = await self.bot.store.get_guild_settings(job.guild_id)
        if settings.log_channel_id is None:
            return
        channel = self.bot.get_channel(settings.log_channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            log.warning("log channel %d of guild %d is gone", settings.log_channel_id, job.guild_id)
            return
        t = server_language(self.bot.get_guild(job.guild_id), settings.language)
        try:
            await channel.send(embed=fit_embed(log_embed(job, t)), allowed_mentions=NO_MENTIONS)
        except discord.HTTPException as error:
            log.warning("could not post job %d to the log channel: %s", job.id, error)

    async def _server_language(self, guild_id: int) -> Translation:
        """The language moderators chose for the server's posts, else the server's own."""
        settings = await self.bot.store.get_guild_settings(guild_id)
        return server_language(self.bot.get_guild(guild_id), settings.language)


class AckGate:
    """Acknowledgements first: work that follows one waits while others are in flight.

    A burst of interactions arrives within milliseconds. Each acknowledgement is a few
    loop turns of HTTP; each admission after it is a few dozen database hand-offs to
    another thread, and every one of those turns is shared with the acknowledgements
    still on their way. So an admission starts once no acknowledgement is pending (or
    after ``MAX_WAIT``, should one hang), and the burst is acknowledged at the speed
    of a bot that does nothing else.
    """

    MAX_WAIT = 0.5  # seconds

    def __init__(self) -> None:
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def acknowledge(self, ack: Awaitable[_T]) -> _T:
        self._pending += 1
        self._idle.clear()
        try:
            return await ack
        finally:
            self._pending -= 1
            if self._pending == 0:
                self._idle.set()

    async def after_the_others(self) -> None:
        if self._idle.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), self.MAX_WAIT)


_GATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AckGate] = weakref.WeakKeyDictionary()


def ack_gate() -> AckGate:
    """The running loop's gate (one per bot; tests run a loop each)."""
    loop = asyncio.get_running_loop()
    gate = _GATES.get(loop)
    if gate is None:
        gate = _GATES[loop] = AckGate()
    return gate


async def gated_ack(interaction: discord.Interaction, ack: Awaitable[_T]) -> _T:
    """Acknowledge (timed), then wait for the other acknowledgements in flight."""
    gate = ack_gate()
    result = await gate.acknowledge(timed_ack(interaction, ack))
    await gate.after_the_others()
    return result


def delivery_of(bot: commands.Bot) -> DeliveryCog:
    """The loaded delivery cog (the cogs that queue jobs hand them to it)."""
    cog = bot.get_cog(DeliveryCog.__cog_name__)
    assert isinstance(cog, DeliveryCog), "the cogs.delivery extension is loaded first"
    return cog


async def acknowledge(interaction: discord.Interaction) -> None:
    """The one place a request's interaction is acknowledged (privately, "thinking").

    Called before anything else is awaited: no database, download or Discord fetch
    comes before it, so the acknowledgement never waits behind them; and what the
    caller does next waits for the other acknowledgements in flight (:class:`AckGate`).
    """
    await gated_ack(interaction, interaction.response.defer(ephemeral=True, thinking=True))


async def acknowledge_if_ours(interaction: discord.Interaction) -> bool:
    """:func:`acknowledge`, False when another process answered the interaction first
    (or it expired): the caller stops there, having written nothing."""
    return await acknowledged(interaction, acknowledge(interaction))


async def acknowledge_press(interaction: discord.Interaction, **fields: Any) -> None:
    """Acknowledge a component press (a button, a select) before any other I/O.

    With ``fields`` the pressed message is edited in the same callback (a "please
    wait" text, or the view removed); without, the press is a deferred update and
    the message is edited later with :func:`edit_reply`.
    """
    if fields:
        ack = interaction.response.edit_message(**fit_message(fields))
    else:
        ack = interaction.response.defer()
    await gated_ack(interaction, ack)


async def edit_reply(interaction: discord.Interaction, **fields: Any) -> bool:
    """Edit the interaction's reply; never raises, and a refused edit is never silence.

    The message is fitted to Discord's limits first. When Discord refuses it anyway,
    a short plain version replaces it (form-body errors) or comes as a follow-up.
    Returns whether the member was shown something.
    """
    fields = fit_message(fields)
    try:
        await interaction.edit_original_response(allowed_mentions=NO_MENTIONS, **fields)
        return True
    except discord.HTTPException as error:
        log.warning("could not update an interaction (%s); falling back", error)
        short = plain_text(fields) or member_language(interaction).gettext(
            "⚠️ I could not show the whole answer here. Please run the command again."
        )
        if error.code == INVALID_FORM_BODY and await _quiet_edit(interaction, short):
            return True
    try:
        await interaction.followup.send(short, ephemeral=True, allowed_mentions=NO_MENTIONS)
        return True
    except discord.HTTPException as error:
        log.warning("could not tell a member in their interaction: %s", error)
        return False


async def show_progress(
    interaction: discord.Interaction, content: str, *, view: discord.ui.View | None = None
) -> None:
    """A progress edit ("#3 in line", with Cancel while the job waits): a failure is
    logged only; the outcome follows."""
    await _quiet_edit(interaction, content, view=view)


async def _quiet_edit(
    interaction: discord.Interaction, content: str, *, view: discord.ui.View | None = None
) -> bool:
    try:
        await interaction.edit_original_response(
            content=fit_content(content), embed=None, view=view, allowed_mentions=NO_MENTIONS
        )
        return True
    except discord.HTTPException as error:
        log.info("could not update an interaction: %s", error)
        return False


async def setup(bot: AvatarBot) -> None:
    await bot.add_cog(DeliveryCog(bot))
