"""Which language a reply is written in: the member's for replies, the server's for posts.

Not an extension: the cogs import it.
"""

from __future__ import annotations

import discord

from avatarbot.i18n import Translation, for_locale


def member_language(interaction: discord.Interaction) -> Translation:
    """The language of the member's Discord client (English where there is no catalog)."""
    return for_locale(interaction.locale.value)


def server_language(guild: discord.Guild | None, chosen: str | None = None) -> Translation:
    """The language of the server's public posts: the one its moderators chose, else the
    server's Discord language (which Discord reports as en-US outside Community servers)."""
    if chosen:
        return for_locale(chosen)
    return for_locale(guild.preferred_locale.value if guild is not None else None)
