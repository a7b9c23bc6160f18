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
ALREADY_ACKNOWLEDGED = 40060  # another process (a session of the same shard) answered first


class AvatarError(app_commands.AppCommandError):
    """A refusal decided in a command body, shown to the member in their language."""

    def __init__(self, message: LazyText | str) -> None:
        self.text = message if isinstance(message, LazyText) else LazyText(message)
        self.message = str(self.text)
        super().__init__(self.message)


async def timed_ack(interaction: discord.Interaction, ack: Awaitable[_T]) -> _T:
    """Await an interaction's first response, timing it for the bot's metrics."""
    metrics = getattr(interaction.client, "metrics", None)
    result = await ack  # a lost interaction raises; reply_to_error drops it (see is_lost)
    if metrics is not None:
        waited = discord.utils.utcnow() - interaction.created_at
        metrics.interaction_acked(waited.total_seconds())
    return result


async def acknowledged(interaction: discord.Interaction, ack: Awaitable[object]) -> bool:
    """Await the acknowledgement; False (after one log line) when the interaction is not
    ours. A command that gets False stops there: no reply, no database write, no job.
    """
    try:
        await ack
    except discord.HTTPException as error:
        if is_lost(interaction, error):
            return False
        raise
    return True


async def refuse(interaction: discord.Interaction, message: LazyText | str) -> None:
    """An expected refusal: an ephemeral reply, not an error."""
    await send_ephemeral(interaction, f"⚠️ {member_language(interaction).render(message)}")


async def reply_to_error(
    interaction: discord.Interaction, error: app_commands.AppCommandError
) -> None:
    """Every error becomes one ephemeral message; unexpected ones get an id to quote.

    An interaction this process lost (see :func:`is_lost`) gets no message at all.
    """
    original = getattr(error, "original", error)
    if is_lost(interaction, original):
        return
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


def is_lost(interaction: discord.Interaction, error: BaseException) -> bool:
    """True, after one log line, when the interaction is not this process's to answer.

    40060: another process of the bot answered it first (two sessions of one shard, as
    during a rolling restart). Discord takes one answer only, so this process lost and
    drops it: a DEBUG line, no reply. 10062: nobody answered within Discord's 3 s; a
    WARNING and a counted metric, never a trace, and no reply (there is nothing to
    reply to).
    """
    if not isinstance(error, discord.HTTPException):
        return False
    if error.code == ALREADY_ACKNOWLEDGED:
        log.debug("interaction %d was answered by another process", interaction.id)
        return True
    if error.code == UNKNOWN_INTERACTION:
        log.warning("interaction %d expired before it was acknowledged (3 s)", interaction.id)
        metrics = getattr(interaction.client, "metrics", None)
        if metrics is not None:
            metrics.interaction_unknown()
        return True
    return False


async def report_unexpected(interaction: discord.Interaction, error: BaseException) -> None:
    """Log the trace under a short id and give the member only that id (unless the
    interaction is not ours to answer: :func:`is_lost`)."""
    if is_lost(interaction, error):
        return
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
