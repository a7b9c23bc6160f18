"""The buttons members press: the first-upload consent and the forget confirmation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import discord

from .delivery import acknowledge_press, edit_reply
from .errors import report_unexpected
from .ui import CANCELLED_TEXT, CHECKING_TEXT, DELETING_TEXT, FORGOTTEN_TEXT, KEPT_TEXT

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


class MemberView(discord.ui.View):
    """Buttons only the member they were shown to may press; a failure gets an error id.

    Each button acknowledges first (:func:`~cogs.delivery.acknowledge_press`), then works.
    """

    def __init__(self, user_id: int, *, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.user_id = user_id

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return interaction.user.id == self.user_id

    async def on_error(
        self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[Any]
    ) -> None:
        await report_unexpected(interaction, error)


class ConsentView(MemberView):
    """The one-time statement on a member's first upload; accepting carries on with it."""

    def __init__(self, user_id: int, on_accept: OnConsent) -> None:
        super().__init__(user_id, timeout=300)
        self.on_accept = on_accept

    @discord.ui.button(
        label="These are my photos / I have consent", style=discord.ButtonStyle.success
    )
    async def accept(
        self, interaction: discord.Interaction, _: discord.ui.Button[ConsentView]
    ) -> None:
        self.stop()
        await acknowledge_press(interaction, content=CHECKING_TEXT, view=None)
        await self.on_accept(interaction)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(
        self, interaction: discord.Interaction, _: discord.ui.Button[ConsentView]
    ) -> None:
        self.stop()
        await acknowledge_press(interaction, content=CANCELLED_TEXT, view=None)


class ForgetView(MemberView):
    def __init__(self, user_id: int, forget: Forget) -> None:
        super().__init__(user_id, timeout=120)
        self.forget = forget

    @discord.ui.button(label="Delete my records", style=discord.ButtonStyle.danger)
    async def confirm(
        self, interaction: discord.Interaction, _: discord.ui.Button[ForgetView]
    ) -> None:
        self.stop()
        await acknowledge_press(interaction, content=DELETING_TEXT, view=None)
        deleted = await self.forget()
        await edit_reply(interaction, content=FORGOTTEN_TEXT.format(count=deleted))

    @discord.ui.button(label="Keep them", style=discord.ButtonStyle.secondary)
    async def keep(
        self, interaction: discord.Interaction, _: discord.ui.Button[ForgetView]
    ) -> None:
        self.stop()
        await acknowledge_press(interaction, content=KEPT_TEXT, view=None)
