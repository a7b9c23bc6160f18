"""The buttons members press: the first-upload consent and the forget confirmation.

Labels and texts are in the language of the member the view is shown to. Every
button acknowledges first (:func:`~cogs.delivery.acknowledge_press`), then works.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import discord

from avatar_api.text import N_
from avatarbot.i18n import Translation

from .delivery import acknowledge_press, edit_reply
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


class MemberView(discord.ui.View):
    """Buttons only the member they were shown to may press; a failure gets an error id."""

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

    def __init__(self, user_id: int, on_accept: OnConsent, t: Translation) -> None:
        super().__init__(user_id, timeout=300)
        self.on_accept = on_accept
        # kind: button
        self.accept.label = t.gettext("These are my photos / I have consent")
        # kind: button
        self.cancel.label = t.gettext("Cancel")

    @discord.ui.button(style=discord.ButtonStyle.success)
    async def accept(
        self, interaction: discord.Interaction, _: discord.ui.Button[ConsentView]
    ) -> None:
        self.stop()
        text = member_language(interaction).gettext("Thanks. Checking your photos…")
        await acknowledge_press(interaction, content=text, view=None)
        await self.on_accept(interaction)

    @discord.ui.button(style=discord.ButtonStyle.secondary)
    async def cancel(
        self, interaction: discord.Interaction, _: discord.ui.Button[ConsentView]
    ) -> None:
        self.stop()
        text = member_language(interaction).gettext("Cancelled; nothing was sent.")
        await acknowledge_press(interaction, content=text, view=None)


class ForgetView(MemberView):
    def __init__(self, user_id: int, forget: Forget, t: Translation) -> None:
        super().__init__(user_id, timeout=120)
        self.forget = forget
        # kind: button
        self.confirm.label = t.gettext("Delete my records")
        # kind: button
        self.keep.label = t.gettext("Keep them")

    @discord.ui.button(style=discord.ButtonStyle.danger)
    async def confirm(
        self, interaction: discord.Interaction, _: discord.ui.Button[ForgetView]
    ) -> None:
        self.stop()
        t = member_language(interaction)
        await acknowledge_press(interaction, content=t.gettext("Deleting your records…"), view=None)
        deleted = await self.forget()
        text = t.ngettext(
            "Done: {count} record and your photo consent were deleted.",
            "Done: {count} records and your photo consent were deleted.",
            deleted,
            count=t.number(deleted),
        )
        await edit_reply(interaction, content=text)

    @discord.ui.button(style=discord.ButtonStyle.secondary)
    async def keep(
        self, interaction: discord.Interaction, _: discord.ui.Button[ForgetView]
    ) -> None:
        self.stop()
        text = member_language(interaction).gettext("Nothing was deleted.")
        await acknowledge_press(interaction, content=text, view=None)
