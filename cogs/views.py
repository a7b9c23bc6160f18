"""The buttons members press: the first-upload consent and the forget confirmation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import discord

from .errors import report_unexpected

CONSENT_TEXT = (
    "**Before your first upload**\n"
    "The photos you upload are sent to agent.ai and HeyGen to build an avatar of the person "
    "in them. Please confirm that **the photos are of you**, or that **the person in them "
    "has agreed** to this.\n"
    "Photos are never stored by this bot; they are held in memory only while they are sent."
)
FORGET_TEXT = (
    "This deletes every record of your avatar jobs (on every server using this bot) "
    "and your photo consent. Group ids you have not saved will be gone. Continue?"
)
OnConsent = Callable[[discord.Interaction], Awaitable[None]]
Forget = Callable[[], Awaitable[int]]


class ConsentView(discord.ui.View):
    """The one-time statement on a member's first upload; accepting carries on with it."""

    def __init__(self, user_id: int, on_accept: OnConsent) -> None:
        super().__init__(timeout=300)
        self.user_id = user_id
        self.on_accept = on_accept

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return interaction.user.id == self.user_id

    @discord.ui.button(
        label="These are my photos / I have consent", style=discord.ButtonStyle.success
    )
    async def accept(
        self, interaction: discord.Interaction, _: discord.ui.Button[ConsentView]
    ) -> None:
        self.stop()
        await interaction.response.edit_message(content="Thanks. Checking your photos…", view=None)
        await self.on_accept(interaction)

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
    def __init__(self, user_id: int, forget: Forget) -> None:
        super().__init__(timeout=120)
        self.user_id = user_id
        self.forget = forget

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return interaction.user.id == self.user_id

    @discord.ui.button(label="Delete my records", style=discord.ButtonStyle.danger)
    async def confirm(
        self, interaction: discord.Interaction, _: discord.ui.Button[ForgetView]
    ) -> None:
        self.stop()
        deleted = await self.forget()
        await interaction.response.edit_message(
            content=f"Done: {deleted} records and your photo consent were deleted.", view=None
        )

    @discord.ui.button(label="Keep them", style=discord.ButtonStyle.secondary)
    async def keep(
        self, interaction: discord.Interaction, _: discord.ui.Button[ForgetView]
    ) -> None:
        self.stop()
        await interaction.response.edit_message(content="Nothing was deleted.", view=None)
