"""Who asks, taken from an interaction: the plain facts :mod:`avatarbot.policy` needs.

A plain module (not an extension), shared by the command cog and the buttons.
"""

from __future__ import annotations

from datetime import datetime

import discord
from discord import app_commands

from avatarbot.policy import Requester
from avatarbot.sealing import TokenSealer

from .replies import interaction_ref


def requester_of(
    interaction: discord.Interaction,
    sealer: TokenSealer | None = None,
    received_at: datetime | None = None,
) -> Requester:
    """The policy's view of the interaction; with ``sealer``, the interaction itself too
    (its token sealed), so that whichever process runs the job answers in it."""
    if interaction.guild_id is None or interaction.channel_id is None:
        raise app_commands.NoPrivateMessage()
    return requester_in(
        interaction.guild_id,
        interaction.channel_id,
        interaction.user,
        interaction.channel,
        interaction,
        sealer,
        received_at,
    )


def requester_in(
    guild_id: int,
    channel_id: int,
    user: discord.abc.User,
    channel: object,
    interaction: discord.Interaction,
    sealer: TokenSealer | None = None,
    received_at: datetime | None = None,
) -> Requester:
    """Who asks in ``channel_id`` of ``guild_id``: also for a press that came by DM,
    where the server and the channel are the job's rather than the interaction's."""
    roles = frozenset(r.id for r in user.roles) if isinstance(user, discord.Member) else frozenset()
    parent = channel.parent_id if isinstance(channel, discord.Thread) else None
    return Requester(
        user_id=user.id,
        guild_id=guild_id,
        channel_id=channel_id,
        role_ids=roles,
        parent_channel_id=parent,
        locale=interaction.locale.value,
        interaction=None
        if sealer is None
        else interaction_ref(interaction, sealer, received_at or interaction.created_at),
    )
