"""The buttons members press: the first-upload consent and the forget confirmation.

Labels and texts are in the language of the member the view is shown to.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import discord

from avatar_api.text import N_
from avatarbot.i18n import Translation

from .errors import report_unexpected
from .language import member_language

CONSENT_TEXT = N_(
    "**Before your first upload**\n"
    "The photos you upload are sent to agent.ai and HeyGen to build an avatar of the person "
    "in them. Please confirm that **the photos are of you**, or that **the person in them "
    "has agreed** to this.\n"
    "Photos are never stored by this bot; they are held in memory only while they are sent."
)
FORGET_TEXT = N_(
    "This deletes every record of your avatar jobs (on every server using this bot) "
    "and your photo consent. Group ids you have not saved will be gone. Continue?"
)
OnConsent = Callable[[discord.Interaction], Awaitable[None]]
Forget = Callable[[], Awaitable[int]]


class ConsentView(discord.ui.View):
    """The one-time statement on a member's first upload; accepting carries on with it."""

    def __init__(self, user_id: int, on_accept: OnConsent, t: Translation) -> None:
        super().__init__(timeout=300)
        self.user_id = user_id
        self.on_accept = on_accept
        # kind: button
        self.accept.label = t.gettext("These are my photos / I have consent")
        # kind: button
        self.cancel.label = t.gettext("Cancel")

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return interaction.user.id == self.user_id

    @discord.ui.button(style=discord.ButtonStyle.success)
    async def accept(
        self, interaction: discord.Interaction, _: discord.ui.Button[ConsentView]
    ) -> None:
        self.stop()
        await interaction.response.edit_message(
            content=member_language(interaction).gettext("Thanks. Checking your photos…"),
            view=None,
        )
        await self.on_accept(interaction)

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
    def __init__(self, user_id: int, forget: Forget, t: Translation) -> None:
        super().__init__(timeout=120)
        self.user_id = user_id
        self.forget = forget
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
        deleted = await self.forget()
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
