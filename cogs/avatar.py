"""``/avatar``: members create avatars and look after their own records.

This cog turns interactions into calls on the service, the photo pipeline and
the dispatcher, and turns their results and errors into replies; the rules
live in :mod:`avatarbot.policy` and :mod:`avatarbot.service`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from avatar_api import AvatarRequest, Photo, PhotoError, ValidationError
from avatar_api.models import Age, Ethnicity, Gender, Orientation, Pose, Style
from avatar_api.photos import PhotoLimits, check_photo_size, prepare_photos
from avatar_api.preflight import PreflightConfig, preflight_photos_async
from avatarbot.policy import Requester
from avatarbot.store.base import JobMode, JobRecord, JobState

from .buttons import cancel_buttons, result_buttons
from .errors import acknowledge, refuse, reply_to_error, report_unexpected
from .requesters import requester_of
from .ui import (
    NO_MENTIONS,
    WORKING,
    enum_choices,
    log_embed,
    preflight_refusal,
    progress_text,
    result_embed,
    safe,
)

if TYPE_CHECKING:
    from avatarbot.queue import QueuePlace
    from bot import AvatarBot

log = logging.getLogger(__name__)

INTERACTION_LIFETIME = timedelta(minutes=14, seconds=30)
# Each place edit is a Discord request; a long queue moves every few seconds.
PLACE_EDIT_INTERVAL = timedelta(seconds=15)
PHOTO_LIMITS = PhotoLimits()
NOT_IMAGE_TYPES = ("text/", "video/", "audio/", "application/pdf", "application/zip")
DONE_TEXT = "✅ Done: your avatar's group id is posted in the channel."
CONSENT_TEXT = (
    "**Before your first upload**\n"
    "The photos you upload are sent to agent.ai and HeyGen to build an avatar of the person "
    "in them. Please confirm that **the photos are of you**, or that **the person in them "
    "has agreed** to this.\n"
    "Photos are never stored by this bot; they are held in memory only while they are sent."
)


def declared_attachment_problem(attachments: Sequence[discord.Attachment]) -> str | None:
    """What Discord's own metadata already rules out, before anything is downloaded.

    ``Attachment.size`` is Discord's measure of the stored file, not the sender's claim.
    """
    for index, attachment in enumerate(attachments, 1):
        try:
            check_photo_size(attachment.size, index=index, limits=PHOTO_LIMITS)
        except PhotoError as error:
            return str(error)
        if (attachment.content_type or "").lower().startswith(NOT_IMAGE_TYPES):
            name = safe(attachment.filename, 80)
            return f"photo {index}: {name} is not a photo. Attach a JPEG, PNG, HEIC or WebP picture"
    return None


async def download_attachment(attachment: discord.Attachment, index: int) -> bytes:
    """Download one photo; its declared size was checked first, its real size and bytes
    are checked by :func:`~avatar_api.photos.prepare_photos`."""
    try:
        return await attachment.read()
    except discord.HTTPException:
        raise PhotoError(
            "could not be downloaded from Discord; attach it again", photo_index=index
        ) from None


@app_commands.allowed_contexts(guilds=True, dms=False, private_channels=False)
@app_commands.allowed_installs(guilds=True, users=False)
class AvatarCog(commands.GroupCog, group_name="avatar", group_description="Create HeyGen avatars"):
    def __init__(self, bot: AvatarBot) -> None:
        self.bot = bot
        self._waiting: dict[int, discord.Interaction] = {}
        self._shown_place: dict[int, tuple[int, datetime]] = {}
        self._logged: set[int] = set()  # logged, but the member not told yet
        self._place_edits: dict[int, asyncio.Task[None]] = {}

    async def cog_load(self) -> None:
        self.bot.job_relay.target = self

    async def cog_unload(self) -> None:
        self.bot.job_relay.target = None

    # --- commands ---------------------------------------------------------------

    @app_commands.command(description="Generate an avatar from a few options")
    @app_commands.describe(
        name="Display name for the avatar (default: My Avatar)",
        age="Age range",
        gender="Gender",
        ethnicity="Ethnicity",
        orientation="Picture orientation",
        pose="How much of the body is shown",
        style="Visual style",
        appearance="Describe the look you want (up to 1000 characters)",
    )
    @app_commands.choices(
        age=enum_choices(Age),
        gender=enum_choices(Gender),
        ethnicity=enum_choices(Ethnicity),
        orientation=enum_choices(Orientation),
        pose=enum_choices(Pose),
        style=enum_choices(Style),
    )
    async def generate(
        self,
        interaction: discord.Interaction,
        name: app_commands.Range[str, 1, 100] | None = None,
        age: app_commands.Choice[str] | None = None,
        gender: app_commands.Choice[str] | None = None,
        ethnicity: app_commands.Choice[str] | None = None,
        orientation: app_commands.Choice[str] | None = None,
        pose: app_commands.Choice[str] | None = None,
        style: app_commands.Choice[str] | None = None,
        appearance: app_commands.Range[str, 1, 1000] | None = None,
    ) -> None:
        request = AvatarRequest.generate(
            name=name,
            age=_value(age),
            gender=_value(gender),
            ethnicity=_value(ethnicity),
            orientation=_value(orientation),
            pose=_value(pose),
            style=_value(style),
            appearance=appearance,
        )
        requester = requester_of(interaction)
        await acknowledge(interaction, interaction.response.defer(ephemeral=True, thinking=True))
        admission = await self.bot.service.submit(
            requester, JobMode.GENERATE, request.options(), owner=self.bot.worker_id
        )
        if admission.refusal is not None:
            await self._edit(interaction, content=f"⚠️ {admission.refusal.message}")
            return
        assert admission.job is not None
        await self.track(interaction, admission.job)

    @app_commands.command(description="Create an avatar from 1 to 4 photos of yourself")
    @app_commands.describe(
        photo1="A clear photo of your face (JPEG, PNG, HEIC or WebP, up to 10 MB)",
        photo2="Another photo (optional)",
        photo3="Another photo (optional)",
        photo4="Another photo (optional)",
        name="Display name for the avatar (default: My Avatar)",
    )
    async def upload(
        self,
        interaction: discord.Interaction,
        photo1: discord.Attachment,
        photo2: discord.Attachment | None = None,
        photo3: discord.Attachment | None = None,
        photo4: discord.Attachment | None = None,
        name: app_commands.Range[str, 1, 100] | None = None,
    ) -> None:
        attachments = [a for a in (photo1, photo2, photo3, photo4) if a is not None]
        problem = declared_attachment_problem(attachments)
        if problem is not None:
            await refuse(interaction, problem)
            return
        AvatarRequest.generate(name=name)  # validates the name before anything else
        requester = requester_of(interaction)
        await acknowledge(interaction, interaction.response.defer(ephemeral=True, thinking=True))
        options = {"name": name or "My Avatar", "photos": str(len(attachments))}
        refusal = await self.bot.service.check(requester, JobMode.UPLOAD, options)
        if refusal is not None:
            await self._edit(interaction, content=f"⚠️ {refusal.message}")
            return
        if not await self.bot.store.has_consented(requester.user_id):
            view = ConsentView(self, requester, attachments, name)
            await self._edit(interaction, content=CONSENT_TEXT, view=view)
            return
        await self.process_upload(interaction, requester, attachments, name)

    @app_commands.command(description="Your recent avatar jobs and their group ids")
    @app_commands.checks.cooldown(2, 10, key=lambda i: i.user.id)
    async def history(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        jobs = await self.bot.store.recent_jobs(interaction.user.id, interaction.guild_id, 10)
        embed = discord.Embed(title="Your recent avatars", colour=WORKING)
        if not jobs:
            embed.description = "You have no avatar jobs on this server yet."
        for job in jobs:
            embed.add_field(name=_history_title(job), value=_history_line(job), inline=False)
        await interaction.response.send_message(
            embed=embed, ephemeral=True, **_with_view(cancel_buttons(jobs))
        )

    @app_commands.command(description="How many avatars you can still create today")
    async def quota(self, interaction: discord.Interaction) -> None:
        status = await self.bot.service.quota(requester_of(interaction))
        lines = [
            _quota_line("You", status.user_used, status.user_limit),
            _quota_line("This server", status.guild_used, status.guild_limit),
        ]
        if status.cooldown_until and status.cooldown_until > self.bot.clock():
            lines.append(
                f"Next request possible {discord.utils.format_dt(status.cooldown_until, 'R')}."
            )
        lines.append("Counts reset at 00:00 UTC; failed jobs do not count.")
        await interaction.response.send_message("\n".join(lines), ephemeral=True)

    @app_commands.command(description="Delete your job records and your photo consent")
    @app_commands.checks.cooldown(1, 10, key=lambda i: i.user.id)
    async def forget(self, interaction: discord.Interaction) -> None:
        view = ForgetView(self, interaction.user.id)
        await interaction.response.send_message(
            "This deletes every record of your avatar jobs (on every server using this bot) "
            "and your photo consent. Group ids you have not saved will be gone. Continue?",
            view=view,
            ephemeral=True,
        )

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        """The bot left (or was removed from) a server: its queued jobs must not spend credits."""
        failed = await self.bot.store.fail_queued_jobs(
            guild.id,
            self.bot.clock(),
            error_kind="ServerLeft",
            error_message="the bot is no longer in this server",
        )
        for job in failed:
            await self.bot.dispatcher.deliver(job)

    # --- the upload pipeline ----------------------------------------------------

    async def process_upload(
        self,
        interaction: discord.Interaction,
        requester: Requester,
        attachments: Sequence[discord.Attachment],
        name: str | None,
    ) -> None:
        """Download, prepare and preflight the photos, then queue the job (already acknowledged)."""
        try:
            photos = await self._download_and_prepare(attachments)
        except ValidationError as error:
            await self._edit(interaction, content=f"⚠️ {safe(str(error))}")
            return
        settings = await self.bot.store.get_guild_settings(requester.guild_id)
        report = await preflight_photos_async(
            photos, PreflightConfig.from_disabled(settings.disabled_checks)
        )
        if not report.ok:
            await self._edit(interaction, content=preflight_refusal(report))
            return
        request = AvatarRequest.upload(photos, name=name)
        admission = await self.bot.service.submit(
            requester,
            JobMode.UPLOAD,
            request.options(),
            owner=self.bot.worker_id,
            photo_sizes=tuple(p.size for p in photos),
        )
        if admission.refusal is not None:
            await self._edit(interaction, content=f"⚠️ {admission.refusal.message}")
            return
        assert admission.job is not None
        self.bot.dispatcher.attach_photos(admission.job.id, photos)
        await self.track(interaction, admission.job)

    async def _download_and_prepare(
        self, attachments: Sequence[discord.Attachment]
    ) -> tuple[Photo, ...]:
        blobs = [await download_attachment(a, i) for i, a in enumerate(attachments, 1)]
        return await prepare_photos(blobs, limits=PHOTO_LIMITS)

    # --- telling the member (the dispatcher's listener) --------------------------

    async def track(self, interaction: discord.Interaction, job: JobRecord) -> None:
        """Show the job's progress in the member's private reply (Cancel while it waits)."""
        self._waiting[job.id] = interaction
        position = await self.bot.store.queue_position(job.id)
        if position is not None:
            self._shown_place[job.id] = (position, self.bot.clock())
        cancel = cancel_buttons([job]) if position is not None else None
        await self._edit(interaction, content=progress_text(job.id, position, None), view=cancel)
        self.bot.dispatcher.wake()

    async def untrack(self, job_id: int) -> None:
        """The job was cancelled: its reply is no longer this cog's to edit."""
        await self._finish_place_edit(job_id)
        self._waiting.pop(job_id, None)

    async def job_started(self, job: JobRecord) -> None:
        await self._finish_place_edit(job.id)
        interaction = self._live_interaction(job.id)
        if interaction is not None:
            await self._edit(interaction, content=progress_text(job.id, None, None), view=None)

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
            content = progress_text(job_id, place.position, eta)
            self._place_edits[job_id] = asyncio.create_task(
                self._edit(interaction, content=content)
            )

    async def _finish_place_edit(self, job_id: int) -> None:
        """Let a queued-place edit land first, so it never overwrites a later state."""
        self._shown_place.pop(job_id, None)
        pending = self._place_edits.pop(job_id, None)
        if pending is not None:
            await pending

    async def job_finished(self, job: JobRecord) -> bool:
        if job.id not in self._logged:
            self._logged.add(job.id)
            await self._post_log_entry(job)
        await self._finish_place_edit(job.id)
        interaction = self._live_interaction(job.id)
        self._waiting.pop(job.id, None)
        told = (
            interaction is not None and await self._reply_in_interaction(interaction, job)
        ) or await self._tell_elsewhere(job)
        if told:
            self._logged.discard(job.id)
        return told

    def _live_interaction(self, job_id: int) -> discord.Interaction | None:
        interaction = self._waiting.get(job_id)
        if interaction is None:
            return None
        if discord.utils.utcnow() - interaction.created_at > INTERACTION_LIFETIME:
            return None
        return interaction

    async def _reply_in_interaction(self, interaction: discord.Interaction, job: JobRecord) -> bool:
        """Failures and uploads stay private; a generated avatar is shown to the channel."""
        embed = result_embed(job)
        try:
            if job.state is JobState.SUCCEEDED and job.mode is JobMode.GENERATE:
                await interaction.followup.send(
                    f"{interaction.user.mention}'s new avatar:",
                    embed=embed,
                    allowed_mentions=NO_MENTIONS,
                    **_with_view(result_buttons(job)),
                )
                await interaction.edit_original_response(content=DONE_TEXT, embed=None, view=None)
            else:
                await interaction.edit_original_response(content=None, embed=embed, view=None)
            return True
        except discord.HTTPException as error:
            log.warning("could not reply to job %d in its interaction: %s", job.id, error)
            return False

    async def _tell_elsewhere(self, job: JobRecord) -> bool:
        """The interaction is gone (expired, or a restart): a DM, else the channel."""
        embed = result_embed(job)
        buttons = result_buttons(job)
        note = "Here is the outcome of your avatar request:"
        try:
            user = self.bot.get_user(job.user_id) or await self.bot.fetch_user(job.user_id)
            await user.send(note, embed=embed, allowed_mentions=NO_MENTIONS, view=buttons)
            return True
        except discord.HTTPException as error:
            log.info("could not DM job %d's outcome: %s", job.id, error)
        channel = self.bot.get_channel(job.channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            return False
        public = job.state is JobState.SUCCEEDED and job.mode is JobMode.GENERATE
        content = f"<@{job.user_id}> " + (
            note
            if public
            else f"your avatar job #{job.id} ended ({job.state.value}). "
            "I could not DM you the details; run `/avatar history` to see them."
        )
        try:
            await channel.send(
                content,
                embed=embed if public else None,
                view=buttons if public else None,
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
        try:
            await channel.send(embed=log_embed(job), allowed_mentions=NO_MENTIONS)
        except discord.HTTPException as error:
            log.warning("could not post job %d to the log channel: %s", job.id, error)

    async def _edit(self, interaction: discord.Interaction, **fields: object) -> None:
        try:
            await interaction.edit_original_response(allowed_mentions=NO_MENTIONS, **fields)
        except discord.HTTPException as error:
            log.info("could not update an interaction: %s", error)

    # --- errors -------------------------------------------------------------------

    async def cog_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        await reply_to_error(interaction, error)


class ConsentView(discord.ui.View):
    """The one-time statement on a member's first upload; accepting carries on with it."""

    def __init__(
        self,
        cog: AvatarCog,
        requester: Requester,
        attachments: Sequence[discord.Attachment],
        name: str | None,
    ) -> None:
        super().__init__(timeout=300)
        self.cog = cog
        self.requester = requester
        self.attachments = list(attachments)
        self.name = name

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return interaction.user.id == self.requester.user_id

    @discord.ui.button(
        label="These are my photos / I have consent", style=discord.ButtonStyle.success
    )
    async def accept(
        self, interaction: discord.Interaction, _: discord.ui.Button[ConsentView]
    ) -> None:
        self.stop()
        await self.cog.bot.store.record_consent(self.requester.user_id)
        await interaction.response.edit_message(content="Thanks. Checking your photos…", view=None)
        await self.cog.process_upload(interaction, self.requester, self.attachments, self.name)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(
        self, interaction: discord.Interaction, _: discord.ui.Button[ConsentView]
    ) -> None:
        self.stop()
        await interaction.response.edit_message(content="Cancelled; nothing was sent.", view=None)

    async def on_error(
        self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[ConsentView]
    ) -> None:
        await report_unexpected(interaction, error)


class ForgetView(discord.ui.View):
    def __init__(self, cog: AvatarCog, user_id: int) -> None:
        super().__init__(timeout=120)
        self.cog = cog
        self.user_id = user_id

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return interaction.user.id == self.user_id

    @discord.ui.button(label="Delete my records", style=discord.ButtonStyle.danger)
    async def confirm(
        self, interaction: discord.Interaction, _: discord.ui.Button[ForgetView]
    ) -> None:
        self.stop()
        deleted = await self.cog.bot.store.forget_user(self.user_id)
        await interaction.response.edit_message(
            content=f"Done: {deleted} records and your photo consent were deleted.", view=None
        )

    @discord.ui.button(label="Keep them", style=discord.ButtonStyle.secondary)
    async def keep(
        self, interaction: discord.Interaction, _: discord.ui.Button[ForgetView]
    ) -> None:
        self.stop()
        await interaction.response.edit_message(content="Nothing was deleted.", view=None)


def _with_view(view: discord.ui.View | None) -> dict[str, discord.ui.View]:
    """``view=`` for a send that takes no None (followups, first responses)."""
    return {} if view is None else {"view": view}


def _value(choice: app_commands.Choice[str] | None) -> str | None:
    return None if choice is None else choice.value


def _quota_line(who: str, used: int, limit: int) -> str:
    if limit == 0:
        return f"{who}: {used} today, no daily limit."
    return f"{who}: {max(0, limit - used)} of {limit} left today."


def _history_title(job: JobRecord) -> str:
    when = job.created_at.strftime("%Y-%m-%d %H:%M UTC")
    return f"#{job.id} · {job.mode.value} · {job.state.value} · {when}"


def _history_line(job: JobRecord) -> str:
    if job.group_id:
        return f"Group ID: `{job.group_id}`"
    if job.refusal:
        return f"Refused ({job.refusal})"
    if job.error_kind:
        return f"Failed ({safe(job.error_kind)})"
    if job.state is JobState.CANCELLED:
        return "Cancelled: nothing was sent"
    return "In progress"


async def setup(bot: AvatarBot) -> None:
    await bot.add_cog(AvatarCog(bot))
