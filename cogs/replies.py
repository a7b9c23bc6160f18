"""Answering in a member's interaction from any bot process, with its token alone.

An interaction's token lets whoever holds it edit the member's reply and post
follow-ups for 15 minutes, through the interaction's webhook. The job row keeps
the token sealed (:mod:`avatarbot.sealing`), so the process that runs a job (or
adopts it) answers in the member's own interaction even when another process
received it. A plain module: no commands, no listeners.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import discord

from .ui import NO_MENTIONS

log = logging.getLogger(__name__)

ORIGINAL = "@original"  # the webhook message id of an interaction's first reply


@dataclass(frozen=True, slots=True)
class InteractionReply:
    """The member's reply and its follow-ups, reached through the interaction's webhook."""

    webhook: discord.Webhook

    @classmethod
    def open(cls, client: discord.Client, application_id: int, token: str) -> InteractionReply:
        """Uses the client's own HTTP session and state; sends nothing yet."""
        return cls(discord.Webhook.partial(application_id, token, client=client))

    def __repr__(self) -> str:
        return f"InteractionReply(application={self.webhook.id})"  # never the token

    async def edit(self, **fields: Any) -> None:
        """Edit the member's reply (private: the command acknowledged it ephemerally)."""
        await self.webhook.edit_message(
            ORIGINAL,  # type: ignore[arg-type] - discord.py puts it in the route as is
            allowed_mentions=NO_MENTIONS,
            **fields,
        )

    async def follow_up(self, content: str, *, embed: discord.Embed | None = None) -> None:
        """A public follow-up in the interaction's channel."""
        await self.webhook.send(
            content,
            embed=embed if embed is not None else discord.utils.MISSING,
            allowed_mentions=NO_MENTIONS,
        )
