"""What members see: option choices, result embeds and the words for every failure.

Not an extension: the cogs import it. User-supplied text is always escaped
before it is shown, and every message is sent with no mentions allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum

import discord
from discord import app_commands

from avatar_api.preflight import PreflightReport, ProblemKind
from avatarbot.failures import FailureKind
from avatarbot.store.base import JobRecord, JobState, SourceType

SUCCESS = discord.Colour.green()
FAILURE = discord.Colour.red()
WORKING = discord.Colour.blurple()
NO_MENTIONS = discord.AllowedMentions.none()

_LABELS = {"Young Adult": "Young adult", "Middle-Aged": "Middle-aged", "Non-Binary": "Non-binary"}
_OPTION_TITLES = {
    "name": "Name",
    "age": "Age",
    "gender": "Gender",
    "ethnicity": "Ethnicity",
    "orientation": "Orientation",
    "pose": "Pose",
    "style": "Style",
    "appearance": "Appearance",
    "photos": "Photos",
}


def choice_label(value: str) -> str:
    """ "half_body" -> "Half body", "Middle-Aged" -> "Middle-aged"."""
    label = _LABELS.get(value, value.replace("_", " "))
    return label[:1].upper() + label[1:]


def enum_choices(enum: type[StrEnum]) -> list[app_commands.Choice[str]]:
    """Discord choices whose values are the API's strings and whose names read well."""
    return [app_commands.Choice(name=choice_label(m.value), value=m.value) for m in enum]


def safe(text: str, limit: int = 1024) -> str:
    """User text made inert: no markdown, no mentions, no invisible tricks, bounded."""
    visible = "".join(c for c in text if c.isprintable() or c == " ")
    cleaned = discord.utils.escape_mentions(discord.utils.escape_markdown(visible))
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def describe_options(options: Mapping[str, str]) -> str:
    lines = []
    for key, value in options.items():
        title = _OPTION_TITLES.get(key, key)
        shown = choice_label(value) if key not in {"name", "appearance", "photos"} else value
        lines.append(f"**{title}:** {safe(shown, 300)}")
    return "\n".join(lines) or "defaults"


def result_embed(job: JobRecord) -> discord.Embed:
    if job.state is JobState.SUCCEEDED:
        embed = discord.Embed(title="Your avatar is on its way", colour=SUCCESS)
        embed.add_field(name="Group ID", value=f"```\n{job.group_id}\n```", inline=False)
        embed.add_field(name="Status", value=safe(job.avatar_status or "unknown"), inline=True)
    else:
        embed = discord.Embed(title="Your avatar could not be created", colour=FAILURE)
        embed.description = failure_text(job)
    embed.add_field(name="Mode", value=job.mode.value, inline=True)
    took = _duration(job.created_at, job.finished_at)
    if took:
        embed.add_field(name="Took", value=took, inline=True)
    embed.add_field(name="Options", value=describe_options(job.options)[:1024], inline=False)
    embed.set_footer(text=f"Job #{job.id}")
    return embed


def progress_text(job_id: int, position: int | None, eta_seconds: float | None) -> str:
    if position is None:
        return f"⏳ Creating your avatar… (job #{job_id})"
    eta = f" — about {_human_seconds(eta_seconds)}" if eta_seconds and eta_seconds > 1 else ""
    return f"⏳ You are #{position} in line{eta} (job #{job_id})."


_PROBLEM_LABELS: dict[ProblemKind, str] = {
    ProblemKind.NO_FACE: "no face found",
    ProblemKind.MANY_FACES: "{detail:.0f} faces",
    ProblemKind.SMALL_FACE: "face too small ({detail:.0%})",
    ProblemKind.BLURRY: "blurry",
    ProblemKind.DARK: "too dark",
    ProblemKind.WASHED_OUT: "washed out",
    ProblemKind.DUPLICATE: "same as photo {detail:.0f}",
}
_PROBLEM_ADVICE: dict[ProblemKind, str] = {
    ProblemKind.NO_FACE: "No face: face the camera, whole face visible and well lit (no sunglasses "
    "or mask)",
    ProblemKind.MANY_FACES: "Several faces: crop the photo to one person, or take one of just you",
    ProblemKind.SMALL_FACE: "Face too small: move closer, or crop around your head and shoulders",
    ProblemKind.BLURRY: "Blurry: hold still, tap your face to focus, use good light; no zoomed-in "
    "or screenshot copies",
    ProblemKind.DARK: "Too dark: face a window or a lamp, with the light in front of you",
    ProblemKind.WASHED_OUT: "Washed out: avoid direct sun, flash and filters that fade the colours",
    ProblemKind.DUPLICATE: "Same picture twice: send different ones (another angle, "
    "expression or outfit)",
}
PREFLIGHT_INTRO = (
    "⚠️ These photos would likely be rejected by HeyGen, so nothing was sent and "
    "nothing was counted:"
)
PREFLIGHT_ADVICE = "What helps:"
CHECKING_TEXT = "Thanks. Checking your photos…"
CANCELLED_TEXT = "Cancelled; nothing was sent."
DELETING_TEXT = "Deleting your records…"
FORGOTTEN_TEXT = "Done: {count} records and your photo consent were deleted."
KEPT_TEXT = "Nothing was deleted."
FALLBACK_REPLY = "⚠️ I could not show the whole answer here. Please run the command again."


def preflight_refusal(report: PreflightReport) -> str:
    """Every problem at once, grouped: each photo named once, each piece of advice once."""
    by_labels: dict[tuple[str, ...], list[int]] = {}
    kinds: list[ProblemKind] = []
    others: list[str] = []
    for problem in report.problems:
        if problem.kind is None:
            others.append(f"• {safe(problem.message, 300)}")
        elif problem.kind not in kinds:
            kinds.append(problem.kind)
    for photo in sorted({p.photo_index for p in report.problems if p.kind is not None}):
        labels = tuple(
            _PROBLEM_LABELS[p.kind].format(detail=p.detail or 0)
            for p in report.problems
            if p.photo_index == photo and p.kind is not None
        )
        by_labels.setdefault(labels, []).append(photo)
    lines = [PREFLIGHT_INTRO]
    lines += [f"• {_photos(indexes)}: {', '.join(labels)}" for labels, indexes in by_labels.items()]
    lines += others
    if kinds:
        lines.append(PREFLIGHT_ADVICE)
        lines += [f"• {_PROBLEM_ADVICE[k]}." for k in kinds]
    return "\n".join(lines)


def _photos(indexes: list[int]) -> str:
    """[1] -> "Photo 1", [1, 2, 4] -> "Photos 1, 2 and 4"."""
    if len(indexes) == 1:
        return f"Photo {indexes[0]}"
    numbers = [str(i) for i in indexes]
    return f"Photos {', '.join(numbers[:-1])} and {numbers[-1]}"


def log_embed(job: JobRecord) -> discord.Embed:
    """The moderators' log entry for one job: who, mode, options, outcome, group id."""
    ok = job.state is JobState.SUCCEEDED
    embed = discord.Embed(
        title=f"Avatar job #{job.id}: {job.state.value}", colour=SUCCESS if ok else FAILURE
    )
    embed.add_field(name="Member", value=f"<@{job.user_id}>", inline=True)
    embed.add_field(name="Channel", value=f"<#{job.channel_id}>", inline=True)
    embed.add_field(name="Mode", value=job.mode.value, inline=True)
    if job.mode is SourceType.UPLOAD:
        embed.add_field(name="Photos", value=str(job.photo_count), inline=True)
    embed.add_field(name="Options", value=describe_options(job.options)[:1024], inline=False)
    if ok:
        embed.add_field(name="Group ID", value=f"`{job.group_id}`", inline=False)
    else:
        embed.add_field(name="Error", value=safe(job.error_kind or "unknown"), inline=False)
    return embed


_FAILURES: dict[FailureKind, str] = {
    FailureKind.AUTHENTICATION: "The bot's agent.ai token was rejected. A server admin needs to "
    "check the bot's set-up; nothing you did caused this.",
    FailureKind.PERMISSION_DENIED: "The bot's agent.ai account may not use this action (plan or "
    "credits). A server admin needs to check it.",
    FailureKind.NOT_FOUND: "The bot is pointed at the wrong agent.ai address. A server admin "
    "needs to check AGENT_AI_BASE_URL.",
    FailureKind.RATE_LIMITED: "agent.ai is over its rate limit right now. Try again in a minute.",
    FailureKind.SERVER_ERROR: "agent.ai or HeyGen failed on their side. Try again in a few "
    "minutes.",
    FailureKind.MAYBE_CREATED: "agent.ai did not answer in time, so your avatar may or may not "
    "have been created. It was not sent again; check your HeyGen account before you try again.",
    FailureKind.CONNECTION: "The bot could not reach agent.ai. Try again in a few minutes.",
    FailureKind.UNEXPECTED_RESPONSE: "agent.ai answered in a way the bot does not understand. "
    "Try again later; if it keeps happening, tell a server admin.",
    FailureKind.SERVER_LEFT: "The bot was removed from the server before your avatar was made. "
    "Nothing was sent to agent.ai.",
    FailureKind.INTERRUPTED: "The bot restarted while your avatar was in progress. It was not "
    "sent twice; please run the command again.",
}
# A job that was running when the bot stopped had been sent: it may exist.
_INTERRUPTED_WHILE_SENT = (
    "The bot restarted while your avatar was being created, so it may or may not have been "
    "created. It was not sent again; check your HeyGen account before you run the command again."
)


def failure_text(job: JobRecord) -> str:
    kind = job.error_kind
    if kind is FailureKind.BAD_REQUEST:
        text = f"agent.ai rejected the request: {safe(job.error_message or 'no reason given', 300)}"
    elif kind is FailureKind.API_STATUS:
        text = (
            f"{safe(job.error_message or 'agent.ai answered with an error', 300)}. "
            "Try again in a few minutes; if it keeps happening, tell a server admin."
        )
    elif kind is FailureKind.INTERRUPTED and job.started_at is not None:
        text = _INTERRUPTED_WHILE_SENT
    elif kind is not None and kind in _FAILURES:
        text = _FAILURES[kind]
    else:
        text = (
            "Something went wrong on our side. Try again later; a server admin can "
            f"find the details in the bot's log under job #{job.id}."
        )
    return text + "\nThis job did not count against your quota."


def _duration(start: datetime, end: datetime | None) -> str | None:
    if end is None:
        return None
    return _human_seconds((end - start).total_seconds())


def _human_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"
