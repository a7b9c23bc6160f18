"""The use cases: one method each, one straight path from a member's request to a queued job.

Each method screens once (one read of the server's settings: access, blocked
words), prepares what the job needs, and enqueues it *with* its validated
request, photos included, through the dispatcher, atomically within the quotas.
The cog calls these with plain facts about the requester and maps the
:class:`Admission` to a reply. Nothing here knows Discord.

A new use case is one more method that builds its
:class:`~avatar_api.AvatarRequest` and admits it (as :meth:`AvatarService.remake` does
for a re-roll or an edit, through :meth:`AvatarService.generate`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from avatar_api.models import AvatarRequest, SourceType, avatar_name
from avatar_api.photos import PhotoLimits, prepare_photos
from avatar_api.preflight import PreflightConfig, PreflightReport, preflight_photos_async

from .policy import (
    JOB_GONE,
    NOT_REPEATABLE,
    Refusal,
    RefusalReason,
    Requester,
    check_access,
    check_words,
    limits_for,
    refusal_for_quota,
)
from .store.base import (
    CancelResult,
    EnqueueResult,
    GuildSettings,
    JobRecord,
    Limits,
    NewJob,
    QuotaStatus,
    Screening,
    Store,
)
from .timeutil import utc_now

log = logging.getLogger(__name__)

CHECKED_TEXTS = ("name", "appearance")
PhotoFetcher = Callable[[], Awaitable[Sequence[bytes]]]


class JobIntake(Protocol):
    """Where admitted jobs go: :class:`~avatarbot.queue.Dispatcher` in the bot."""

    async def enqueue(
        self, job: NewJob, request: AvatarRequest, limits: Limits, now: datetime
    ) -> EnqueueResult: ...


@dataclass(frozen=True, slots=True)
class Admission:
    """What became of a request: exactly one field is set."""

    job: JobRecord | None = None
    refusal: Refusal | None = None
    consent_needed: bool = False
    preflight: PreflightReport | None = None
    """The photos would likely be rejected by HeyGen: nothing was sent or counted."""
    duplicate: bool = False
    """Another process already queued this interaction: this one must say nothing."""


@dataclass(frozen=True, slots=True)
class UploadDraft:
    """An upload as the member asked for it, before its photos are fetched.

    Building one validates the name, so a bad name is refused before anything else.
    """

    name: str
    photo_count: int
    fetch: PhotoFetcher

    @classmethod
    def create(cls, name: str | None, photo_count: int, fetch: PhotoFetcher) -> UploadDraft:
        return cls(avatar_name(name), photo_count, fetch)

    def options(self) -> dict[str, str]:
        """The options an upload job records (as :meth:`AvatarRequest.options`)."""
        return {"name": self.name, "photos": str(self.photo_count)}


class AvatarService:
    def __init__(
        self,
        store: Store,
        intake: JobIntake,
        *,
        owner: str,
        clock: Callable[[], datetime] = utc_now,
        max_active_per_user: int = 1,
        photo_limits: PhotoLimits | None = None,
    ) -> None:
        self.store = store
        self._intake = intake
        self._owner = owner
        self._clock = clock
        self._max_active_per_user = max_active_per_user
        self._photo_limits = photo_limits or PhotoLimits()

    async def generate(self, requester: Requester, request: AvatarRequest) -> Admission:
        """``/avatar generate``: screen, then queue."""
        screening, refusal = await self._screen(requester, request.source_type, request.options())
        if refusal is not None:
            return Admission(refusal=refusal)
        return await self._admit(requester, screening.settings, request)

    async def upload(
        self, requester: Requester, draft: UploadDraft, *, consent_given: bool = False
    ) -> Admission:
        """``/avatar upload``: screen, consent, fetch and prepare the photos, preflight, queue.

        A :class:`~avatar_api.ValidationError` (a photo that cannot be used) propagates.
        """
        screening, refusal = await self._screen(requester, SourceType.UPLOAD, draft.options())
        if refusal is not None:
            return Admission(refusal=refusal)
        if consent_given and not screening.consented:
            await self.store.record_consent(requester.user_id)
        elif not screening.consented:
            return Admission(consent_needed=True)
        settings = screening.settings
        photos = await prepare_photos(await draft.fetch(), limits=self._photo_limits)
        config = PreflightConfig.from_disabled(settings.disabled_checks, settings.photo_strictness)
        report = await preflight_photos_async(photos, config)
        if not report.ok:
            return Admission(preflight=report)
        return await self._admit(requester, settings, AvatarRequest.upload(photos, name=draft.name))

    async def remake(
        self, requester: Requester, job_id: int, edits: Mapping[str, str] | None = None
    ) -> Admission:
        """A re-roll (the member's past generate job's options again) or an edit (with
        some texts replaced): a new request, screened and counted like any other.

        An edited text that is not valid raises :class:`~avatar_api.ValidationError`.
        """
        job = await self.past_job(requester.user_id, requester.guild_id, job_id)
        if job is None:
            return Admission(refusal=JOB_GONE)
        if job.mode is not SourceType.GENERATE:
            return Admission(refusal=NOT_REPEATABLE)
        options = {**job.options, **(edits or {})}
        return await self.generate(requester, AvatarRequest.from_options(job.mode, options))

    async def past_job(self, user_id: int, guild_id: int, job_id: int) -> JobRecord | None:
        """The member's own job on this server, unless ``/avatar forget`` removed it."""
        job = await self.store.get_job(job_id)
        if job is None or job.forgotten or job.user_id != user_id or job.guild_id != guild_id:
            return None
        return job

    async def cancel(self, user_id: int, job_id: int) -> CancelResult:
        """Withdraw the member's queued job; one already claimed by a worker stays."""
        return await self.store.cancel_job(job_id, user_id, self._clock())

    async def quota(self, requester: Requester) -> QuotaStatus:
        settings = await self.store.get_guild_settings(requester.guild_id)
        return await self.store.quota_status(
            requester.guild_id, requester.user_id, limits_for(settings), self._clock()
        )

    async def _admit(
        self, requester: Requester, settings: GuildSettings, request: AvatarRequest
    ) -> Admission:
        """Queue a screened request atomically within the server's quotas."""
        limits = limits_for(settings, max_active_per_user=self._max_active_per_user)
        now = self._clock()
        job = self._new_job(requester, request.source_type, request.options(), request)
        result = await self._intake.enqueue(job, request, limits, now)
        if result.job is not None:
            log.info(
                "job %d queued: %s by user %d in guild %d",
                result.job.id,
                request.source_type.value,
                requester.user_id,
                requester.guild_id,
            )
            return Admission(job=result.job)
        if result.duplicate:
            log.debug("interaction of user %d already has a job", requester.user_id)
            return Admission(duplicate=True)
        refusal = refusal_for_quota(result, limits, now)
        await self.store.record_refused(job, refusal.reason.value, now)
        return Admission(refusal=refusal)

    async def _screen(
        self, requester: Requester, mode: SourceType, options: Mapping[str, str]
    ) -> tuple[Screening, Refusal | None]:
        """The server's settings, the member's block and consent (one read), and the
        refusal they or a word call for."""
        screening = await self.store.screening(requester.guild_id, requester.user_id)
        settings = screening.settings
        texts = {name: options.get(name) for name in CHECKED_TEXTS}
        refusal = check_access(settings, requester, mode, screening.block) or check_words(
            settings, texts
        )
        if refusal is not None:
            if refusal.reason is RefusalReason.BLOCKED_WORD:
                options = {k: v for k, v in options.items() if k not in CHECKED_TEXTS}
            job = self._new_job(requester, mode, options, None)
            await self.store.record_refused(job, refusal.reason.value, self._clock())
        return screening, refusal

    def _new_job(
        self,
        requester: Requester,
        mode: SourceType,
        options: Mapping[str, str],
        request: AvatarRequest | None,
    ) -> NewJob:
        return NewJob(
            guild_id=requester.guild_id,
            channel_id=requester.channel_id,
            user_id=requester.user_id,
            mode=mode,
            options=dict(options),
            owner=self._owner if request is not None else "",
            photo_sizes=tuple(p.size for p in request.photos) if request else (),
            interaction=requester.interaction if request is not None else None,
            locale=requester.locale,
        )
