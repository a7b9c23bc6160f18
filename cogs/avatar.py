"""``/avatar``: members create avatars and look after their own records.

Each command turns its interaction into one call on the service and the
service's answer into a reply; the rules live in :mod:`avatarbot.service` and
:mod:`avatarbot.policy`, and what happens to a queued job is told by
:mod:`cogs.delivery`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.app_commands import locale_str
from discord.ext import commands

from avatar_api import AvatarRequest, PhotoError, ValidationError
from avatar_api.models import Age, Ethnicity, Gender, Orientation, Pose, Style
from avatar_api.photos import check_photo_size
from avatar_api.text import N_, LazyText
from avatarbot.i18n import Translation
from avatarbot.policy import Requester
from avatarbot.service import Admission, PhotoFetcher, UploadDraft

from .delivery import DeliveryCog, acknowledge, acknowledge_if_ours, delivery_of, edit_reply
from .errors import refuse, reply_to_error, timed_ack
from .job_buttons import cancel_buttons
from .language import member_language
from .requesters import requester_of
from .ui import WORKING, enum_choices, history_line, history_title, preflight_refusal, safe
from .views import CONSENT_TEXT, FORGET_TEXT, ConsentView, ForgetView

if TYPE_CHECKING:
    from bot import AvatarBot

log = logging.getLogger(__name__)

NOT_IMAGE_TYPES = ("text/", "video/", "audio/", "application/pdf", "application/zip")


def declared_attachment_problem(attachments: Sequence[discord.Attachment]) -> LazyText | None:
    """What Discord's own metadata already rules out, before anything is downloaded.

    ``Attachment.size`` is Discord's measure of the stored file, not the sender's claim.
    """
    for index, attachment in enumerate(attachments, 1):
        try:
            check_photo_size(attachment.size, index=index)
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


def photo_fetcher(attachments: Sequence[discord.Attachment]) -> PhotoFetcher:
    """Download the photos when the service asks; their bytes are checked by the service."""

    async def fetch() -> list[bytes]:
        return [await download_attachment(a, i) for i, a in enumerate(attachments, 1)]

    return fetch


async def download_attachment(attachment: discord.Attachment, index: int) -> bytes:
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

    @property
    def delivery(self) -> DeliveryCog:
        return delivery_of(self.bot)

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
        requester = requester_of(interaction, self.bot.sealer, self.bot.clock())
        if not await acknowledge_if_ours(interaction):
            return
        await self._answer(interaction, await self.bot.service.generate(requester, request))

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
        draft = UploadDraft.create(name, len(attachments), photo_fetcher(attachments))
        requester = requester_of(interaction, self.bot.sealer, self.bot.clock())
        if not await acknowledge_if_ours(interaction):
            return
        await self._upload(interaction, requester, draft, consent_given=False)

    @app_commands.command(description=locale_str("Your recent avatar jobs and their group ids"))
    @app_commands.checks.cooldown(2, 10, key=lambda i: i.user.id)
    async def history(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        await acknowledge(interaction)
        jobs = await self.bot.store.recent_jobs(interaction.user.id, interaction.guild_id, 10)
        t = member_language(interaction)
        embed = discord.Embed(title=t.gettext("Your recent avatars"), colour=WORKING)
        if not jobs:
            embed.description = t.gettext("You have no avatar jobs on this server yet.")
        for job in jobs:
            embed.add_field(name=history_title(job, t), value=history_line(job, t), inline=False)
        await edit_reply(interaction, embed=embed, view=cancel_buttons(jobs, t))

    @app_commands.command(description=locale_str("How many avatars you can still create today"))
    async def quota(self, interaction: discord.Interaction) -> None:
        requester = requester_of(interaction)
        await acknowledge(interaction)
        status = await self.bot.service.quota(requester)
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
        await edit_reply(interaction, content="\n".join(lines))

    @app_commands.command(description=locale_str("Delete your job records and your photo consent"))
    @app_commands.checks.cooldown(1, 10, key=lambda i: i.user.id)
    async def forget(self, interaction: discord.Interaction) -> None:
        user_id = interaction.user.id

        async def forget_user() -> int:
            return await self.bot.store.forget_user(user_id, self.bot.clock())

        t = member_language(interaction)
        view = ForgetView(user_id, forget_user, t)
        await timed_ack(
            interaction,
            interaction.response.send_message(t.render(FORGET_TEXT), view=view, ephemeral=True),
        )

    # --- answers ------------------------------------------------------------------

    async def _upload(
        self,
        interaction: discord.Interaction,
        requester: Requester,
        draft: UploadDraft,
        *,
        consent_given: bool,
    ) -> None:
        """One upload admission (the interaction is acknowledged); a bad photo is a reply."""
        try:
            admission = await self.bot.service.upload(requester, draft, consent_given=consent_given)
        except ValidationError as error:
            shown = safe(member_language(interaction).render(error.text))
            await edit_reply(interaction, content=f"⚠️ {shown}")
            return
        if admission.consent_needed:

            async def accepted(button_press: discord.Interaction) -> None:
                await self._upload(button_press, requester, draft, consent_given=True)

            t = member_language(interaction)
            view = ConsentView(requester.user_id, accepted, t)
            await edit_reply(interaction, content=t.render(CONSENT_TEXT), view=view)
            return
        await self._answer(interaction, admission)

    async def _answer(self, interaction: discord.Interaction, admission: Admission) -> None:
        t = member_language(interaction)
        if admission.refusal is not None:
            await edit_reply(interaction, content=f"⚠️ {t.render(admission.refusal.text)}")
        elif admission.preflight is not None:
            await edit_reply(interaction, content=preflight_refusal(admission.preflight, t))
        elif admission.duplicate:
            return  # another process answers this interaction
        else:
            assert admission.job is not None
            await self.delivery.track(interaction, admission.job)

    # --- errors -------------------------------------------------------------------

    async def cog_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        await reply_to_error(interaction, error)


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


async def setup(bot: AvatarBot) -> None:
    await bot.add_cog(AvatarCog(bot))
