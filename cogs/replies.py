"""Answering in a member's interaction from any bot process, with its token alone.

An interaction's token lets whoever holds it edit the member's reply and post
follow-ups for 15 minutes, through the interaction's webhook. The job row keeps
the token sealed (:mod:`avatarbot.sealing`), so the process that runs a job (or
adopts it) answers in the member's own interaction even when another process
received it. A plain module: no commands, no listeners.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import discord
from discord.webhook.async_ import async_context, handle_message_parameters

from avatarbot.sealing import INTERACTION_LIFETIME, TokenSealer
from avatarbot.store.base import InteractionRef, JobRecord

from .ui import NO_MENTIONS

log = logging.getLogger(__name__)

# Stop answering in the interaction a little before Discord does (clock skew, slow calls).
REPLY_MARGIN = timedelta(seconds=30)


def interaction_ref(
    interaction: discord.Interaction, sealer: TokenSealer, received_at: datetime
) -> InteractionRef:
    """What the job keeps of its interaction: its ids and its token, sealed.

    Its window is counted from ``received_at`` on the bot's own clock (a moment after
    Discord created it; the margin covers that), so that every later check compares
    times of one clock.
    """
    return InteractionRef(
        interaction_id=interaction.id,
        application_id=interaction.application_id,
        sealed_token=sealer.seal(interaction.token, issued_at=received_at.timestamp()),
        reply_until=received_at + INTERACTION_LIFETIME - REPLY_MARGIN,
    )


def reply_for(
    client: discord.Client, job: JobRecord, sealer: TokenSealer, now: Callable[[], datetime]
) -> InteractionReply | None:
    """The member's interaction of ``job`` while it can still be answered, else None."""
    ref = job.interaction
    if ref is None or now() >= ref.reply_until:
        return None
    token = sealer.unseal(ref.sealed_token)
    if token is None:
        log.info("job %d: its interaction token no longer opens", job.id)
        return None
    return InteractionReply.open(client, ref.application_id, token)


@dataclass(frozen=True, slots=True)
class InteractionReply:
    """The member's reply and its follow-ups, reached through the interaction's webhook."""

    webhook: discord.Webhook
    token: str = field(repr=False)
    http: Any = field(repr=False)

    @classmethod
    def open(cls, client: discord.Client, application_id: int, token: str) -> InteractionReply:
        """Uses the client's own HTTP session and state; sends nothing yet."""
        webhook = discord.Webhook.partial(application_id, token, client=client)
        return cls(webhook, token, client.http)

    async def edit(self, **fields: Any) -> None:
        """Edit the member's reply (private: the command acknowledged it ephemerally).

        The same request as :meth:`discord.Interaction.edit_original_response`, which
        needs the interaction object this process may never have received.
        """
        with handle_message_parameters(allowed_mentions=NO_MENTIONS, **fields) as params:
            await async_context.get().edit_original_interaction_response(
                self.webhook.id,
                self.token,
                session=self.webhook.session,
                proxy=self.http.proxy,
                proxy_auth=self.http.proxy_auth,
                payload=params.payload,
                multipart=params.multipart,
                files=params.files,
            )

    async def follow_up(
        self,
        content: str,
        *,
        embed: discord.Embed | None = None,
        view: discord.ui.View | None = None,
    ) -> None:
        """A public follow-up in the interaction's channel."""
        extra: dict[str, Any] = {} if view is None else {"view": view}
        await self.webhook.send(
            content,
            embed=embed if embed is not None else discord.utils.MISSING,
            allowed_mentions=NO_MENTIONS,
            **extra,
        )
