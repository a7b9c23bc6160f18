"""Which language a reply is written in: the member's for replies, the server's for posts.

Not an extension: the cogs import it.
"""

from __future__ import annotations

import discord

from avatarbot.i18n import Translation, for_locale


def member_language(interaction: discord.Interaction) -> Translation:
    """The language of the member's Discord client (English where there is no catalog)."""
    return for_locale(interaction.locale.value)
