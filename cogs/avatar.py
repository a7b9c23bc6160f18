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
from discord.app_commands import locale_str
from discord.ext import commands

from avatar_api import AvatarRequest, Photo, PhotoError, ValidationError
from avatar_api.models import Age, Ethnicity, Gender, Orientation, Pose, Style
from avatar_api.photos import PhotoLimits, check_photo_size, prepare_photos
from avatar_api.preflight import PreflightConfig, preflight_photos_async
from avatar_api.text import N_, LazyText
from avatarbot.i18n import Translation, for_locale
from avatarbot.policy import Requester
from avatarbot.store.base import JobMode, JobRecord, JobState

from .errors import acknowledge, refuse, reply_to_error, report_unexpected
from .language import member_language, server_language
from .ui import (
    NO_MENTIONS,
    WORKING,
    enum_choices,
    log_embed,
    mode_name,
    preflight_refusal,
    progress_text,
    result_embed,
    safe,
    state_name,
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
DONE_TEXT = N_("✅ Done: your avatar's group id is posted in the channel.")
CONSENT_TEXT = N_(
    "**Before your first upload**\n"
    "The photos you upload are sent to agent.ai and HeyGen to build an avatar of the person "
    "in them. Please confirm that **the photos are of you**, or that **the person in them "
    "has agreed** to this.\n"
    "Photos are never stored by this bot; they are held in memory only while they are sent."
)


def requester_of(interaction: discord.Interaction) -> Requester:
    if interaction.guild_id is None or interaction.channel_id is None:
        raise app_commands.NoPrivateMessage()
    user = interaction.user
    roles = frozenset(r.id for r in user.roles) if isinstance(user, discord.Member) else frozenset()
    channel = interaction.channel
    parent = channel.parent_id if isinstance(channel, discord.Thread) else None
    return Requester(
        user_id=user.id,
        guild_id=interaction.guild_id,
        channel_id=interaction.channel_id,
        role_ids=roles,
        parent_channel_id=parent,
        locale=interaction.locale.value,
    )


def declared_attachment_problem(attachments: Sequence[discord.Attachment]) -> LazyText | None:
    """What Discord's own metadata already rules out, before anything is downloaded.

    ``Attachment.size`` is Discord's measure of the stored file, not the sender's claim.
    """
    for index, attachment in enumerate(attachments, 1):
        try:
            check_photo_size(attachment.size, index=index, limits=PHOTO_LIMITS)
        except PhotoError as error:
            return error.text
        if (attachment.content_type or "").lower().startswith(NOT_IMAGE_TYPES):
            name = safe(attachment.filename, 80)
            return N_(
                "photo {index}: {problem}",
                index=index,
                problem=N_(
                    "{name} is not a photo. Attach a JPEG, PNG, HEIC or WebP picture", name=name
                ),
            )
    return None


async def download_attachment(attachment: discord.Attachment, index: int) -> bytes:
    """Download one photo; its declared size was checked first, its real size and bytes
    are checked by :func:`~avatar_api.photos.prepare_photos`."""
    try:
        return await attachment.read()
    except discord.HTTPException:
        raise PhotoError(
            N_("could not be downloaded from Discord; attach it again"), photo_index=index
        ) from None


@app_commands.allowed_contexts(guilds=True, dms=False, private_channels=False)
@app_commands.allowed_installs(guilds=True, users=False)
class AvatarCog(
    commands.GroupCog,
    group_name="avatar",
    group_description=locale_str("Create HeyGen avatars"),
):
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

    @app_commands.command(description=locale_str("Generate an avatar from a few options"))
    @app_commands.describe(
        name=locale_str("Display name for the avatar (default: My Avatar)"),
        age=locale_str("Age range"),
        gender=locale_str("Gender"),
        ethnicity=locale_str("Ethnicity"),
        orientation=locale_str("Picture orientation"),
        pose=locale_str("How much of the body is shown"),
        style=locale_str("Visual style"),
        appearance=locale_str("Describe the look you want (up to 1000 characters)"),
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
            await self._edit(
                interaction,
                content=f"⚠️ {member_language(interaction).render(admission.refusal.text)}",
            )
            return
        assert admission.job is not None
        await self._track(interaction, admission.job)

    @app_commands.command(description=locale_str("Create an avatar from 1 to 4 photos of yourself"))
    @app_commands.describe(
        photo1=locale_str("A clear photo of your face (JPEG, PNG, HEIC or WebP, up to 10 MB)"),
        photo2=locale_str("Another photo (optional)"),
        photo3=locale_str("Another photo (optional)"),
        photo4=locale_str("Another photo (optional)"),
        name=locale_str("Display name for the avatar (default: My Avatar)"),
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
            await self._edit(
                interaction, content=f"⚠️ {member_language(interaction).render(refusal.text)}"
            )
            return
        if not await self.bot.store.has_consented(requester.user_id):
            t = member_language(interaction)
            view = ConsentView(self, requester, attachments, name, t)
            await self._edit(interaction, content=t.render(CONSENT_TEXT), view=view)
            return
        await self.process_upload(interaction, requester, attachments, name)

    @app_commands.command(description=locale_str("Your recent avatar jobs and their group ids"))
    @app_commands.checks.cooldown(2, 10, key=lambda i: i.user.id)
    async def history(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        jobs = await self.bot.store.recent_jobs(interaction.user.id, interaction.guild_id, 10)
        t = member_language(interaction)
        embed = discord.Embed(title=t.gettext("Your recent avatars"), colour=WORKING)
        if not jobs:
            embed.description = t.gettext("You have no avatar jobs on this server yet.")
        for job in jobs:
            embed.add_field(name=_history_title(job, t), value=_history_line(job, t), inline=False)
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(description=locale_str("How many avatars you can still create today"))
    async def quota(self, interaction: discord.Interaction) -> None:
        status = await self.bot.service.quota(requester_of(interaction))
        t = member_language(interaction)
        lines = [
            _quota_line(_YOU, status.user_used, status.user_limit, t),
            _quota_line(_THIS_SERVER, status.guild_used, status.guild_limit, t),
        ]
        if status.cooldown_until and status.cooldown_until > self.bot.clock():
            # Discord writes the relative time in each reader's own language.
            when = discord.utils.format_dt(status.cooldown_until, "R")
            lines.append(t.gettext("Next request possible {when}.", when=when))
        lines.append(t.gettext("Counts reset at 00:00 UTC; failed jobs do not count."))
        await interaction.response.send_message("\n".join(lines), ephemeral=True)

    @app_commands.command(description=locale_str("Delete your job records and your photo consent"))
    @app_commands.checks.cooldown(1, 10, key=lambda i: i.user.id)
    async def forget(self, interaction: discord.Interaction) -> None:
        t = member_language(interaction)
        view = ForgetView(self, interaction.user.id, t)
        await interaction.response.send_message(
            t.gettext(
                "This deletes every record of your avatar jobs (on every server using this bot) "
                "and your photo consent. Group ids you have not saved will be gone. Continue?"
            ),
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
            await self._edit(
                interaction, content=f"⚠️ {safe(member_language(interaction).render(error.text))}"
            )
            return
        settings = await self.bot.store.get_guild_settings(requester.guild_id)
        report = await preflight_photos_async(
            photos, PreflightConfig.from_disabled(settings.disabled_checks)
        )
        if not report.ok:
            await self._edit(
                interaction, content=preflight_refusal(report, member_language(interaction))
            )
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
            await self._edit(
                interaction,
                content=f"⚠️ {member_language(interaction).render(admission.refusal.text)}",
            )
            return
        assert admission.job is not None
        self.bot.dispatcher.attach_photos(admission.job.id, photos)
        await self._track(interaction, admission.job)

    async def _download_and_prepare(
        self, attachments: Sequence[discord.Attachment]
    ) -> tuple[Photo, ...]:
        blobs = [await download_attachment(a, i) for i, a in enumerate(attachments, 1)]
        return await prepare_photos(blobs, limits=PHOTO_LIMITS)

    # --- telling the member (the dispatcher's listener) --------------------------

    async def _track(self, interaction: discord.Interaction, job: JobRecord) -> None:
        self._waiting[job.id] = interaction
        position = await self.bot.store.queue_position(job.id)
        if position is not None:
            self._shown_place[job.id] = (position, self.bot.clock())
        await self._edit(
            interaction, content=progress_text(job.id, position, None, member_language(interaction))
        )
        self.bot.dispatcher.wake()

    async def job_started(self, job: JobRecord) -> None:
        await self._finish_place_edit(job.id)
        interaction = self._live_interaction(job.id)
        if interaction is not None:
            await self._edit(
                interaction, content=progress_text(job.id, None, None, member_language(interaction))
            )

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
        """Failures and uploads stay private; a generated avatar is shown to the channel.

        The member reads their own language; the channel reads the server's.
        """
        member = member_language(interaction)
        try:
            if job.state is JobState.SUCCEEDED and job.mode is JobMode.GENERATE:
                server = await self._server_language(job.guild_id)
                await interaction.followup.send(
                    server.gettext("{member}'s new avatar:", member=interaction.user.mention),
                    embed=result_embed(job, server),
                    allowed_mentions=NO_MENTIONS,
                )
                await interaction.edit_original_response(
                    content=member.render(DONE_TEXT), embed=None
                )
            else:
                embed = result_embed(job, member)
                await interaction.edit_original_response(content=None, embed=embed)
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
                embed=result_embed(job, mine),
                allowed_mentions=NO_MENTIONS,
            )
            return True
        except discord.HTTPException as error:
            log.info("could not DM job %d's outcome: %s", job.id, error)
        t = await self._server_language(job.guild_id)
        embed = result_embed(job, t)
        note = t.gettext("Here is the outcome of your avatar request:")
        channel = self.bot.get_channel(job.channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            return False
        public = job.state is JobState.SUCCEEDED and job.mode is JobMode.GENERATE
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
            embed = log_embed(job, await self._server_language(job.guild_id))
            await channel.send(embed=embed, allowed_mentions=NO_MENTIONS)
        except discord.HTTPException as error:
            log.warning("could not post job %d to the log channel: %s", job.id, error)

    async def _server_language(self, guild_id: int) -> Translation:
        """The language moderators chose for the server's posts, else the server's own."""
        settings = await self.bot.store.get_guild_settings(guild_id)
        return server_language(self.bot.get_guild(guild_id), settings.language)

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
        t: Translation,
    ) -> None:
        super().__init__(timeout=300)
        self.cog = cog
        self.requester = requester
        self.attachments = list(attachments)
        self.name = name
        # kind: button
        self.accept.label = t.gettext("These are my photos / I have consent")
        # kind: button
        self.cancel.label = t.gettext("Cancel")

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return interaction.user.id == self.requester.user_id

    @discord.ui.button(style=discord.ButtonStyle.success)
    async def accept(
        self, interaction: discord.Interaction, _: discord.ui.Button[ConsentView]
    ) -> None:
        self.stop()
        await self.cog.bot.store.record_consent(self.requester.user_id)
        await interaction.response.edit_message(
            content=member_language(interaction).gettext("Thanks. Checking your photos…"),
            view=None,
        )
        await self.cog.process_upload(interaction, self.requester, self.attachments, self.name)

    @discord.ui.button(style=discord.ButtonStyle.secondary)
    async def cancel(
        self, interaction: discord.Interaction, _: discord.ui.Button[ConsentView]
    ) -> None:
        self.stop()
        await interaction.response.edit_message(
            content=member_language(interaction).gettext("Cancelled; nothing was sent."),
            view=None,
        )

    async def on_error(
        self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[ConsentView]
    ) -> None:
        await report_unexpected(interaction, error)


class ForgetView(discord.ui.View):
    def __init__(self, cog: AvatarCog, user_id: int, t: Translation) -> None:
        super().__init__(timeout=120)
        self.cog = cog
        self.user_id = user_id
        # kind: button
        self.confirm.label = t.gettext("Delete my records")
        # kind: button
        self.keep.label = t.gettext("Keep them")

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return interaction.user.id == self.user_id

    @discord.ui.button(style=discord.ButtonStyle.danger)
    async def confirm(
        self, interaction: discord.Interaction, _: discord.ui.Button[ForgetView]
    ) -> None:
        self.stop()
        deleted = await self.cog.bot.store.forget_user(self.user_id)
        t = member_language(interaction)
        text = t.ngettext(
            "Done: {count} record and your photo consent were deleted.",
            "Done: {count} records and your photo consent were deleted.",
            deleted,
            count=t.number(deleted),
        )
        await interaction.response.edit_message(content=text, view=None)

    @discord.ui.button(style=discord.ButtonStyle.secondary)
    async def keep(
        self, interaction: discord.Interaction, _: discord.ui.Button[ForgetView]
    ) -> None:
        self.stop()
        await interaction.response.edit_message(
            content=member_language(interaction).gettext("Nothing was deleted."), view=None
        )


def _value(choice: app_commands.Choice[str] | None) -> str | None:
    return None if choice is None else choice.value


# Whole sentences per subject, so that each language words them its own way.
_YOU = (N_("You: {used} today, no daily limit."), N_("You: {left} of {limit} left today."))
_THIS_SERVER = (
    N_("This server: {used} today, no daily limit."),
    N_("This server: {left} of {limit} left today."),
)


def _quota_line(who: tuple[LazyText, LazyText], used: int, limit: int, t: Translation) -> str:
    no_limit, left = who
    if limit == 0:
        return t.gettext(no_limit.message, used=t.number(used))
    return t.gettext(left.message, left=t.number(max(0, limit - used)), limit=t.number(limit))


def _history_title(job: JobRecord, t: Translation) -> str:
    when = t.datetime(job.created_at, "short") + " UTC"
    return f"#{job.id} · {mode_name(job.mode, t)} · {state_name(job.state, t)} · {when}"


def _history_line(job: JobRecord, t: Translation) -> str:
    if job.group_id:
        return t.gettext("Group ID: `{group_id}`", group_id=job.group_id)
    if job.refusal:
        return t.gettext("Refused ({reason})", reason=job.refusal)
    if job.error_kind:
        return t.gettext("Failed ({kind})", kind=safe(job.error_kind))
    return t.gettext("In progress")


async def setup(bot: AvatarBot) -> None:
    await bot.add_cog(AvatarCog(bot))
