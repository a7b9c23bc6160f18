"""Every error and refusal becomes one ephemeral message; never a trace, never a ping.

A plain module (not an extension), so both cogs and the tests share one class of each.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable
from typing import TypeVar

import discord
from discord import app_commands

from avatar_api import ValidationError
from avatar_api.text import LazyText

from .language import member_language
from .limits import CONTENT, clip
from .ui import NO_MENTIONS, safe

log = logging.getLogger(__name__)
_T = TypeVar("_T")
UNKNOWN_INTERACTION = 10062  # Discord's code for an acknowledgement that came too late


class AvatarError(app_commands.AppCommandError):
    """A refusal decided in a command body, shown to the member in their language."""

    def __init__(self, message: LazyText | str) -> None:
        self.text = message if isinstance(message, LazyText) else LazyText(message)
        self.message = str(self.text)
        super().__init__(self.message)


async def timed_ack(interaction: discord.Interaction, ack: Awaitable[_T]) -> _T:
    """Await an interaction's first response, timing it for the bot's metrics."""
    metrics = getattr(interaction.client, "metrics", None)
    try:
        result = await ack
    except discord.NotFound as error:
        if metrics is not None and error.code == UNKNOWN_INTERACTION:
            metrics.interaction_unknown()
        raise
    if metrics is not None:
        waited = discord.utils.utcnow() - interaction.created_at
        metrics.interaction_acked(waited.total_seconds())
    return result


async def refuse(interaction: discord.Interaction, message: LazyText | str) -> None:
    """An expected refusal: an ephemeral reply, not an error."""
    await send_ephemeral(interaction, f"⚠️ {member_language(interaction).render(message)}")


async def reply_to_error(
    interaction: discord.Interaction, error: app_commands.AppCommandError
) -> None:
    """Every error becomes one ephemeral message; unexpected ones get an id to quote."""
    original = getattr(error, "original", error)
    t = member_language(interaction)
    if isinstance(original, AvatarError):
        message = f"⚠️ {t.render(original.text)}"
    elif isinstance(original, ValidationError):
        message = f"⚠️ {safe(t.render(original.text))}"
    elif isinstance(error, app_commands.CommandOnCooldown):
        seconds = t.number(round(error.retry_after))
        message = t.gettext("⏳ Slow down: try again in {seconds} s.", seconds=seconds)
    elif isinstance(error, app_commands.MissingPermissions):
        message = t.gettext("🔒 You need the **Manage Server** permission for this command.")
    elif isinstance(error, app_commands.NoPrivateMessage):
        message = t.gettext("Avatar Bot works inside servers only.")
    elif isinstance(error, app_commands.CheckFailure):
        message = t.gettext("🔒 You cannot use this command here.")
    else:
        await report_unexpected(interaction, original)
        return
    await send_ephemeral(interaction, message)


async def report_unexpected(interaction: discord.Interaction, error: BaseException) -> None:
    """Log the trace under a short id and give the member only that id."""
    error_id = uuid.uuid4().hex[:8]
    log.error("interaction failed (error id %s)", error_id, exc_info=error)
    await send_ephemeral(
        interaction,
        member_language(interaction).gettext(
            "Something went wrong on our side. Quote error id `{error_id}` to a server admin.",
            error_id=error_id,
        ),
    )


async def send_ephemeral(interaction: discord.Interaction, message: str) -> None:
    """One private message: the first response, else the deferred reply, else a follow-up."""
    message = clip(message, CONTENT)
    try:
        if not interaction.response.is_done():
            await timed_ack(
                interaction,
                interaction.response.send_message(
                    message, ephemeral=True, allowed_mentions=NO_MENTIONS
                ),
            )
        elif interaction.response.type is discord.InteractionResponseType.deferred_channel_message:
            await interaction.edit_original_response(
                content=message, embed=None, view=None, allowed_mentions=NO_MENTIONS
            )
        else:
            await interaction.followup.send(message, ephemeral=True, allowed_mentions=NO_MENTIONS)
    except discord.HTTPException as error:
        log.info("could not send an error reply: %s", error)
