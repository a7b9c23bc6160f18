"""The buttons on a job's messages (Re-roll, Edit, Delete, Cancel) and Edit's modal.

A job's buttons must outlive the process: each is a :class:`discord.ui.DynamicItem`
whose custom id names the action, the job, its requester and its server
(``avatar:reroll:<job>:<user>:<guild>``), so any process, also one started after the
message was sent, answers it (:mod:`cogs.job_actions`). Edit's modal is never kept in
memory either: its custom id (``avatar:edit-modal:<job>:<user>:<guild>``) is matched
in an interaction listener. Labels are in the language of whoever the message is
shown to (a public post's, in the server's).

A plain module (not an extension), so every cog shares one class of each item.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

import discord

from avatar_api.text import LazyText
from avatarbot.i18n import Translation
from avatarbot.policy import ButtonAction
from avatarbot.store.base import JobRecord, JobState, SourceType

from .language import member_language
from .ui import (
    CANCEL_LABEL,
    DELETE_LABEL,
    EDIT_APPEARANCE_HINT,
    EDIT_APPEARANCE_LABEL,
    EDIT_LABEL,
    EDIT_NAME_LABEL,
    EDIT_TITLE,
    REROLL_LABEL,
    kept_options_text,
)

log = logging.getLogger(__name__)

_ID = r"[0-9]{1,20}"
_KEY = rf"(?P<job>{_ID}):(?P<user>{_ID}):(?P<guild>{_ID})"
BUTTON_TEMPLATE = re.compile(rf"avatar:(?P<action>reroll|edit|delete|cancel):{_KEY}")
EDIT_MODAL_TEMPLATE = re.compile(rf"avatar:edit-modal:{_KEY}")
EDIT_MODAL = "edit-modal"
EDITED_TEXTS = {"name": 100, "appearance": 1000}  # the modal's fields and their limits
MAX_BUTTONS = 25  # five rows of five

_LOOKS: dict[ButtonAction, tuple[LazyText, discord.ButtonStyle, str]] = {
    ButtonAction.REROLL: (REROLL_LABEL, discord.ButtonStyle.primary, "🎲"),
    ButtonAction.EDIT: (EDIT_LABEL, discord.ButtonStyle.secondary, "✏️"),
    ButtonAction.DELETE: (DELETE_LABEL, discord.ButtonStyle.danger, "🗑️"),
    ButtonAction.CANCEL: (CANCEL_LABEL, discord.ButtonStyle.secondary, "🛑"),
}


@dataclass(frozen=True, slots=True)
class JobKey:
    """What a button's custom id carries: the job, who asked for it, and where."""

    job_id: int
    user_id: int
    guild_id: int

    @classmethod
    def of(cls, job: JobRecord) -> JobKey:
        return cls(job.id, job.user_id, job.guild_id)

    @classmethod
    def from_match(cls, match: re.Match[str]) -> JobKey:
        return cls(int(match["job"]), int(match["user"]), int(match["guild"]))

    def custom_id(self, action: str) -> str:
        return f"avatar:{action}:{self.job_id}:{self.user_id}:{self.guild_id}"


class JobButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=BUTTON_TEMPLATE):
    def __init__(self, action: ButtonAction, key: JobKey, t: Translation) -> None:
        label, style, emoji = _LOOKS[action]
        button: discord.ui.Button[Any] = discord.ui.Button(
            label=t.render(label), style=style, emoji=emoji, custom_id=key.custom_id(action.value)
        )
        super().__init__(button)
        self.action = action
        self.key = key

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> JobButton:
        action, key = ButtonAction(match["action"]), JobKey.from_match(match)
        return cls(action, key, member_language(interaction))

    async def callback(self, interaction: discord.Interaction) -> None:
        handler = interaction.client.get_cog(PRESS_HANDLER_COG)
        if handler is None:
            log.error("a %s button was pressed with no cog to answer it", self.action.value)
            return
        await cast(PressHandler, handler).pressed(interaction, self.action, self.key)


class PressHandler(Protocol):
    """The cog that answers presses (:class:`cogs.job_actions.JobActions`)."""

    async def pressed(
        self, interaction: discord.Interaction, action: ButtonAction, key: JobKey
    ) -> None: ...


PRESS_HANDLER_COG = "JobActions"


# --- which messages carry which buttons ----------------------------------------------------
def result_buttons(job: JobRecord, t: Translation) -> discord.ui.View | None:
    """Re-roll, Edit and Delete on a generated avatar; uploads and failures carry none."""
    if job.state is not JobState.SUCCEEDED or job.mode is not SourceType.GENERATE:
        return None
    actions = (ButtonAction.REROLL, ButtonAction.EDIT, ButtonAction.DELETE)
    return _view(JobButton(action, JobKey.of(job), t) for action in actions)


def cancel_buttons(jobs: Iterable[JobRecord], t: Translation) -> discord.ui.View | None:
    """Cancel for each job still queued (a progress reply, or a history's lines)."""
    queued = [j for j in jobs if j.state is JobState.QUEUED][:MAX_BUTTONS]
    return _view(JobButton(ButtonAction.CANCEL, JobKey.of(j), t) for j in queued)


def with_view(view: discord.ui.View | None) -> dict[str, discord.ui.View]:
    """``view=`` for a send that takes no None (followups, first responses)."""
    return {} if view is None else {"view": view}


def _view(items: Iterable[discord.ui.Item[Any]]) -> discord.ui.View | None:
    view = discord.ui.View(timeout=None)
    for item in items:
        view.add_item(item)
    return view if view.children else None


def buttons_except(
    message: discord.Message | None, pressed: str, t: Translation
) -> discord.ui.View | None:
    """The job buttons of ``message`` without the one pressed, rebuilt from their ids."""
    kept: list[JobButton] = []
    for row in message.components if message is not None else ():
        for child in getattr(row, "children", ()):
            custom_id = getattr(child, "custom_id", None) or ""
            match = BUTTON_TEMPLATE.fullmatch(custom_id)
            if match is not None and custom_id != pressed:
                action, key = ButtonAction(match["action"]), JobKey.from_match(match)
                kept.append(JobButton(action, key, t))
    return _view(kept)


def edit_modal(job: JobRecord, t: Translation) -> discord.ui.Modal:
    """The Edit form, prefilled with the job's texts; it shows what stays as it was."""
    key = JobKey.of(job)
    modal = discord.ui.Modal(title=t.render(EDIT_TITLE), custom_id=key.custom_id(EDIT_MODAL))
    modal.add_item(discord.ui.TextDisplay(kept_options_text(job.options, t)[:4000]))
    modal.add_item(
        discord.ui.Label(
            text=t.render(EDIT_NAME_LABEL),
            component=discord.ui.TextInput(
                custom_id="name",
                default=job.options.get("name"),
                max_length=EDITED_TEXTS["name"],
                required=False,
            ),
        )
    )
    modal.add_item(
        discord.ui.Label(
            text=t.render(EDIT_APPEARANCE_LABEL),
            description=t.render(EDIT_APPEARANCE_HINT),
            component=discord.ui.TextInput(
                custom_id="appearance",
                style=discord.TextStyle.paragraph,
                default=job.options.get("appearance"),
                max_length=EDITED_TEXTS["appearance"],
                required=False,
            ),
        )
    )
    # Stopped before it is sent, so discord.py does not keep it: the listener answers
    # every submission, on any process and after a restart alike.
    modal.stop()
    return modal


def submitted_texts(data: Mapping[str, Any] | None) -> dict[str, str]:
    """The edited texts of a modal submission (raw payload: it may outlive our process)."""
    values: dict[str, str] = {}
    pending = list((data or {}).get("components", ()))
    while pending:
        component = pending.pop()
        if not isinstance(component, Mapping):
            continue
        custom_id, value = component.get("custom_id"), component.get("value")
        if custom_id in EDITED_TEXTS and isinstance(value, str):
            values[custom_id] = value[: EDITED_TEXTS[custom_id]]
        pending.extend(component.get("components", ()))
        if isinstance(component.get("component"), Mapping):
            pending.append(component["component"])
    return values
