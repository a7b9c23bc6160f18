"""What members see: option choices, result embeds and the words for every failure.

Not an extension: the cogs import it. User-supplied text is always escaped
before it is shown, and every message is sent with no mentions allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

import discord
from discord import app_commands
from discord.app_commands import locale_str

from avatar_api.preflight import PreflightReport, ProblemKind
from avatar_api.text import N_, LazyText
from avatarbot.failures import FailureKind
from avatarbot.i18n import Translation
from avatarbot.store.base import (
    CancelOutcome,
    CancelResult,
    JobRecord,
    JobState,
    RefusalReason,
    SourceType,
)

SUCCESS = discord.Colour.green()
FAILURE = discord.Colour.red()
WORKING = discord.Colour.blurple()
NO_MENTIONS = discord.AllowedMentions.none()

_LABELS = {"Young Adult": "Young adult", "Middle-Aged": "Middle-aged", "Non-Binary": "Non-binary"}
_OPTION_TITLES = {
    "name": N_("Name"),
    "age": N_("Age"),
    "gender": N_("Gender"),
    "ethnicity": N_("Ethnicity"),
    "orientation": N_("Orientation"),
    "pose": N_("Pose"),
    "style": N_("Style"),
    "appearance": N_("Appearance"),
    "photos": N_("Photos"),
}
_MODE_NAMES = {"generate": N_("generate"), "upload": N_("upload")}
_STATE_NAMES = {
    "queued": N_("queued"),
    "running": N_("running"),
    "succeeded": N_("succeeded"),
    "failed": N_("failed"),
    "refused": N_("refused"),
    "cancelled": N_("cancelled"),
}


def choice_label(value: str) -> str:
    """ "half_body" -> "Half body", "Middle-Aged" -> "Middle-aged"."""
    label = _LABELS.get(value, value.replace("_", " "))
    return label[:1].upper() + label[1:]


# What Discord shows for each API value (a choice's value stays the API's string).
_CHOICE_NAMES = {
    "Young Adult": locale_str("Young adult"),
    "Middle-Aged": locale_str("Middle-aged"),
    "Senior": locale_str("Senior"),
    "Unspecified": locale_str("Unspecified"),
    "Male": locale_str("Male"),
    "Female": locale_str("Female"),
    "Non-Binary": locale_str("Non-binary"),
    "Asian": locale_str("Asian"),
    "Black": locale_str("Black"),
    "Caucasian": locale_str("Caucasian"),
    "Hispanic": locale_str("Hispanic"),
    "Middle Eastern": locale_str("Middle Eastern"),
    "Mixed": locale_str("Mixed"),
    "square": locale_str("Square"),
    "portrait": locale_str("Portrait"),
    "landscape": locale_str("Landscape"),
    "half_body": locale_str("Half body"),
    "close_up": locale_str("Close up"),
    "full_body": locale_str("Full body"),
    "Realistic": locale_str("Realistic"),
    "Artistic": locale_str("Artistic"),
    "Professional": locale_str("Professional"),
    "face": locale_str("Face"),
    "sharpness": locale_str("Sharpness"),
    "exposure": locale_str("Exposure"),
    "duplicate": locale_str("Duplicate"),
}


def choice_name(value: str) -> locale_str:
    """The name of an API value as a choice, translated by the command tree's translator."""
    return _CHOICE_NAMES.get(value) or locale_str(choice_label(value))


def enum_choices(enum: type[StrEnum]) -> list[app_commands.Choice[str]]:
    """Discord choices whose values are the API's strings and whose names read well."""
    return [app_commands.Choice(name=choice_name(m.value), value=m.value) for m in enum]


def safe(text: str, limit: int = 1024) -> str:
    """User text made inert: no markdown, no mentions, no invisible tricks, bounded."""
    visible = "".join(c for c in text if c.isprintable() or c == " ")
    cleaned = discord.utils.escape_mentions(discord.utils.escape_markdown(visible))
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def describe_options(options: Mapping[str, str], t: Translation) -> str:
    lines = []
    for key, value in options.items():
        title = t.render(_OPTION_TITLES[key]) if key in _OPTION_TITLES else key
        if key in {"name", "appearance", "photos"}:
            shown = value
        else:
            shown = t.gettext(choice_name(value).message)
        lines.append(f"**{title}:** {safe(shown, 300)}")
    return "\n".join(lines) or t.gettext("defaults")


def _named(names: Mapping[str, LazyText], code: str, t: Translation) -> str:
    """A stored code in a few words of the reader's language; a code from another
    release, which has no words here, as it is (made inert)."""
    name = names.get(code)
    return t.render(name) if name is not None else safe(code)


def mode_name(mode: StrEnum, t: Translation) -> str:
    return _named(_MODE_NAMES, mode.value, t)


def state_name(state: StrEnum, t: Translation) -> str:
    return _named(_STATE_NAMES, state.value, t)


def result_embed(job: JobRecord, t: Translation) -> discord.Embed:
    if job.state is JobState.SUCCEEDED:
        embed = discord.Embed(title=t.gettext("Your avatar is on its way"), colour=SUCCESS)
        embed.description = t.render(GROUP_ID_NOTE)
        if job.mode is SourceType.UPLOAD:
            embed.description += "\n" + t.render(UPLOAD_NOT_REPEATABLE)
        embed.add_field(name=t.gettext("Group ID"), value=f"```\n{job.group_id}\n```", inline=False)
        status = safe(job.avatar_status) if job.avatar_status else t.gettext("unknown")
        embed.add_field(name=t.gettext("Status"), value=status, inline=True)
    else:
        embed = discord.Embed(title=t.gettext("Your avatar could not be created"), colour=FAILURE)
        embed.description = failure_text(job, t)
    embed.add_field(name=t.gettext("Mode"), value=mode_name(job.mode, t), inline=True)
    if job.finished_at is not None:
        took = t.duration((job.finished_at - job.created_at).total_seconds())
        embed.add_field(name=t.gettext("Took"), value=took, inline=True)
    options = describe_options(job.options, t)[:1024]
    embed.add_field(name=t.gettext("Options"), value=options, inline=False)
    embed.set_footer(text=t.gettext("Job #{job_id}", job_id=job.id))
    return embed


_REFUSAL_NAMES: dict[str, LazyText] = {
    RefusalReason.DISABLED: N_("bot off here"),
    RefusalReason.CHANNEL: N_("wrong channel"),
    RefusalReason.ROLE: N_("role needed"),
    RefusalReason.BLOCKED: N_("blocked"),
    RefusalReason.UPLOADS_OFF: N_("uploads off"),
    RefusalReason.BLOCKED_WORD: N_("blocked word"),
    RefusalReason.USER_DAILY: N_("daily limit"),
    RefusalReason.GUILD_DAILY: N_("server's daily limit"),
    RefusalReason.COOLDOWN: N_("cooldown"),
    RefusalReason.BUSY: N_("a job already waiting"),
}
_FAILURE_NAMES: dict[str, LazyText] = {
    FailureKind.BAD_REQUEST: N_("request refused"),
    FailureKind.AUTHENTICATION: N_("token rejected"),
    FailureKind.PERMISSION_DENIED: N_("not allowed"),
    FailureKind.NOT_FOUND: N_("wrong address"),
    FailureKind.RATE_LIMITED: N_("rate limit"),
    FailureKind.SERVER_ERROR: N_("agent.ai error"),
    FailureKind.API_STATUS: N_("agent.ai error"),
    FailureKind.CONNECTION: N_("no connection"),
    FailureKind.MAYBE_CREATED: N_("no answer in time"),
    FailureKind.CONNECTION_LOST: N_("connection lost"),
    FailureKind.UNEXPECTED_RESPONSE: N_("unexpected answer"),
    FailureKind.INTERRUPTED: N_("bot restarted"),
    FailureKind.SERVER_LEFT: N_("bot left the server"),
    FailureKind.INTERNAL: N_("internal error"),
}


def refusal_name(code: str, t: Translation) -> str:
    return _named(_REFUSAL_NAMES, code, t)


def failure_name(code: str, t: Translation) -> str:
    return _named(_FAILURE_NAMES, code, t)


def history_title(job: JobRecord, t: Translation) -> str:
    when = t.datetime(job.created_at, "short") + " UTC"
    return f"#{job.id} · {mode_name(job.mode, t)} · {state_name(job.state, t)} · {when}"


def history_line(job: JobRecord, t: Translation) -> str:
    if job.group_id:
        return t.gettext("Group ID: `{group_id}`", group_id=job.group_id)
    if job.refusal:
        return t.gettext("Refused ({reason})", reason=refusal_name(job.refusal, t))
    if job.error_kind:
        return t.gettext("Failed ({kind})", kind=failure_name(job.error_kind, t))
    if job.state is JobState.CANCELLED:
        return t.gettext("Cancelled: nothing was sent")
    return t.gettext("In progress")


def with_history_line(embed: discord.Embed, job: JobRecord, t: Translation) -> discord.Embed:
    """A history embed whose line for ``job`` shows the job as it is now."""
    for index, line in enumerate(embed.fields):
        if (line.name or "").startswith(f"#{job.id} ·"):
            embed.set_field_at(
                index, name=history_title(job, t), value=history_line(job, t), inline=False
            )
    return embed


def progress_text(
    job_id: int, position: int | None, eta_seconds: float | None, t: Translation
) -> str:
    if position is None:
        return t.gettext("⏳ Creating your avatar… (job #{job_id})", job_id=job_id)
    if eta_seconds and eta_seconds > 1:
        return t.gettext(
            "⏳ You are #{position} in line — about {eta} (job #{job_id}).",
            position=t.number(position),
            eta=t.about(eta_seconds),
            job_id=job_id,
        )
    return t.gettext(
        "⏳ You are #{position} in line (job #{job_id}).",
        position=t.number(position),
        job_id=job_id,
    )


_PROBLEM_LABELS: dict[ProblemKind, LazyText] = {
    ProblemKind.NO_FACE: N_("no face found"),
    ProblemKind.MANY_FACES: N_("{count} faces"),
    ProblemKind.TURNED_AWAY: N_("face turned away"),
    ProblemKind.SMALL_FACE: N_("face too small ({fraction})"),
    ProblemKind.BLURRY: N_("blurry"),
    ProblemKind.DARK: N_("too dark"),
    ProblemKind.WASHED_OUT: N_("washed out"),
    ProblemKind.DUPLICATE: N_("same as photo {photo}"),
}
_PROBLEM_ADVICE: dict[ProblemKind, LazyText] = {
    ProblemKind.NO_FACE: N_("No face: face the camera, face uncovered and well lit."),
    ProblemKind.MANY_FACES: N_("Several faces: crop the photo to just you."),
    ProblemKind.TURNED_AWAY: N_("Turned away: look straight at the camera."),
    ProblemKind.SMALL_FACE: N_("Face too small: move closer, or crop to your head and shoulders."),
    ProblemKind.BLURRY: N_("Blurry: hold still and tap your face to focus; no screenshots."),
    ProblemKind.DARK: N_("Too dark: face a window or a lamp, with the light in front of you."),
    ProblemKind.WASHED_OUT: N_("Washed out: avoid direct sun, flash and fading filters."),
    ProblemKind.DUPLICATE: N_("Same picture twice: send different ones."),
}


def preflight_refusal(report: PreflightReport, t: Translation) -> str:
    """Every problem at once, grouped: each photo named once, each piece of advice once."""
    photos_by_labels: dict[tuple[str, ...], list[int]] = {}
    kinds: list[ProblemKind] = []
    others: list[str] = []
    for problem in report.problems:
        if problem.kind is None:
            others.append(f"• {safe(t.render(problem.text), 300)}")
        elif problem.kind not in kinds:
            kinds.append(problem.kind)
    for photo in sorted({p.photo_index for p in report.problems if p.kind is not None}):
        labels = tuple(
            _problem_label(p.kind, p.detail, t)
            for p in report.problems
            if p.photo_index == photo and p.kind is not None
        )
        photos_by_labels.setdefault(labels, []).append(photo)
    lines = [
        t.gettext(
            "⚠️ These photos would likely be rejected by HeyGen, so nothing was sent and "
            "nothing was counted:"
        )
    ]
    lines += [
        f"• {_photo_names(indexes, t)}: {', '.join(labels)}"
        for labels, indexes in photos_by_labels.items()
    ]
    lines += others
    if kinds:
        lines.append(t.gettext("What helps:"))
        lines += [f"• {t.render(_PROBLEM_ADVICE[kind])}" for kind in kinds]
    return "\n".join(lines)


def _problem_label(kind: ProblemKind, detail: float | None, t: Translation) -> str:
    value = detail or 0
    return t.gettext(
        _PROBLEM_LABELS[kind].message,
        count=t.number(int(value)),
        fraction=t.percent(value),
        photo=t.number(int(value)),
    )


def _photo_names(indexes: list[int], t: Translation) -> str:
    """[1] -> "Photo 1", [1, 2, 4] -> "Photos 1, 2 and 4", as the language lists things."""
    if len(indexes) == 1:
        return t.gettext("Photo {number}", number=indexes[0])
    listed = t.listing([str(i) for i in indexes])
    return t.gettext("Photos {numbers}", numbers=listed)


def log_embed(job: JobRecord, t: Translation) -> discord.Embed:
    """The moderators' log entry for one job: who, mode, options, outcome, group id."""
    ok = job.state is JobState.SUCCEEDED
    title = t.gettext(
        "Avatar job #{job_id}: {state}", job_id=job.id, state=state_name(job.state, t)
    )
    embed = discord.Embed(title=title, colour=SUCCESS if ok else FAILURE)
    embed.add_field(name=t.gettext("Member"), value=f"<@{job.user_id}>", inline=True)
    embed.add_field(name=t.gettext("Channel"), value=f"<#{job.channel_id}>", inline=True)
    embed.add_field(name=t.gettext("Mode"), value=mode_name(job.mode, t), inline=True)
    if job.mode is SourceType.UPLOAD:
        embed.add_field(name=t.gettext("Photos"), value=t.number(job.photo_count), inline=True)
    options = describe_options(job.options, t)[:1024]
    embed.add_field(name=t.gettext("Options"), value=options, inline=False)
    if ok:
        embed.add_field(name=t.gettext("Group ID"), value=f"`{job.group_id}`", inline=False)
    else:
        error = failure_name(job.error_kind, t) if job.error_kind else t.gettext("unknown")
        embed.add_field(name=t.gettext("Error"), value=error, inline=False)
    return embed


# --- buttons ------------------------------------------------------------------------------
# kind: button
REROLL_LABEL = N_("Re-roll")
# kind: button
EDIT_LABEL = N_("Edit")
# kind: button
DELETE_LABEL = N_("Delete")
# kind: button
CANCEL_LABEL = N_("Cancel")
GROUP_ID_NOTE = N_(
    "The avatar lives in HeyGen, in the bot operator's agent.ai account; "
    "the group id is how to find it there."
)
UPLOAD_NOT_REPEATABLE = N_("No Re-roll or Edit for uploads: the photos are never kept.")
NOT_YOUR_JOB = N_("Only the member who asked for this avatar can use this button.")
NOT_YOUR_POST = N_(
    "Only the member who asked for this avatar, or a moderator with Manage Server, can delete it."
)
# kind: modal
EDIT_TITLE = N_("Edit and make again")
# kind: modal
EDIT_NAME_LABEL = N_("Name")
# kind: modal
EDIT_APPEARANCE_LABEL = N_("Appearance")
# kind: description
EDIT_APPEARANCE_HINT = N_("Describe the look you want (up to 1000 characters)")
EDIT_KEPT = N_("**These stay as they were:**")
EDIT_UNAVAILABLE = N_("The editor could not be opened just now. Press Edit again in a moment.")
DELETED = N_("Deleted. The job stays in `/avatar history`.")
NOT_DELETED = N_("The post could not be deleted; it may be gone already.")
SERVER_GONE = N_("The bot is no longer in the server this avatar came from.")
MEMBER_GONE = N_("You are no longer a member of the server this avatar came from.")


def cancel_text(result: CancelResult, job_id: int, t: Translation) -> str:
    match result.outcome:
        case CancelOutcome.CANCELLED:
            return t.gettext(
                "🛑 Job #{job_id} is cancelled: nothing was sent and nothing was counted.",
                job_id=job_id,
            )
        case CancelOutcome.ALREADY_STARTED:
            return t.gettext(
                "⏳ Too late to cancel job #{job_id}: it is already being created.", job_id=job_id
            )
        case CancelOutcome.ALREADY_ENDED:
            state = state_name(result.job.state, t) if result.job else ""
            return t.gettext(
                "Job #{job_id} has already ended ({state}).", job_id=job_id, state=state
            )
        case _:
            return t.gettext("Job #{job_id} is no longer on record.", job_id=job_id)


def kept_options_text(options: Mapping[str, str], t: Translation) -> str:
    """What an edit keeps: every option but the texts the modal changes."""
    kept = {k: v for k, v in options.items() if k not in {"name", "appearance"}}
    return t.render(EDIT_KEPT) + "\n" + describe_options(kept, t)


_FAILURES: dict[FailureKind, LazyText] = {
    FailureKind.AUTHENTICATION: N_(
        "The bot's agent.ai token was rejected. A server admin needs to "
        "check the bot's set-up; nothing you did caused this."
    ),
    FailureKind.PERMISSION_DENIED: N_(
        "The bot's agent.ai account may not use this action (plan or "
        "credits). A server admin needs to check it."
    ),
    FailureKind.NOT_FOUND: N_(
        "The bot is pointed at the wrong agent.ai address. A server admin "
        "needs to check AGENT_AI_BASE_URL."
    ),
    FailureKind.RATE_LIMITED: N_(
        "agent.ai is over its rate limit right now. Try again in a minute."
    ),
    FailureKind.SERVER_ERROR: N_(
        "agent.ai or HeyGen failed on their side. Try again in a few minutes."
    ),
    FailureKind.MAYBE_CREATED: N_(
        "agent.ai did not answer in time, so your avatar may or may not "
        "have been created. It was not sent again; check your HeyGen account before you try again."
    ),
    FailureKind.CONNECTION_LOST: N_(
        "The connection to agent.ai broke after your request was sent. Your avatar may or may "
        "not have been created. It was not sent again; check your HeyGen account before you try "
        "again."
    ),
    FailureKind.CONNECTION: N_("The bot could not reach agent.ai. Try again in a few minutes."),
    FailureKind.UNEXPECTED_RESPONSE: N_(
        "agent.ai answered in a way the bot does not understand. "
        "Try again later; if it keeps happening, tell a server admin."
    ),
    FailureKind.SERVER_LEFT: N_(
        "The bot was removed from the server before your avatar was made. "
        "Nothing was sent to agent.ai."
    ),
    FailureKind.INTERRUPTED: N_(
        "The bot restarted while your avatar was in progress. It was not "
        "sent twice; please run the command again."
    ),
}
# A job that was running when the bot stopped had been sent: it may exist.
_INTERRUPTED_WHILE_SENT = N_(
    "The bot restarted while your avatar was being created, so it may or may not have been "
    "created. It was not sent again; check your HeyGen account before you run the command again."
)


def failure_text(job: JobRecord, t: Translation) -> str:
    kind = job.error_kind
    if kind is FailureKind.BAD_REQUEST:
        reason = safe(job.error_message, 300) if job.error_message else t.gettext("no reason given")
        text = t.gettext("agent.ai rejected the request: {reason}", reason=reason)
    elif kind is FailureKind.API_STATUS:
        message = (
            safe(job.error_message, 300)
            if job.error_message
            else t.gettext("agent.ai answered with an error")
        )
        text = t.gettext(
            "{message}. Try again in a few minutes; if it keeps happening, tell a server admin.",
            message=message,
        )
    elif kind is FailureKind.INTERRUPTED and job.started_at is not None:
        text = t.render(_INTERRUPTED_WHILE_SENT)
    elif kind is not None and kind in _FAILURES:
        text = t.render(_FAILURES[kind])
    else:
        text = t.gettext(
            "Something went wrong on our side. Try again later; a server admin can "
            "find the details in the bot's log under job #{job_id}.",
            job_id=job.id,
        )
    return text + "\n" + t.gettext("This job did not count against your quota.")
