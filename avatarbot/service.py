"""Admission of avatar requests: policy, blocked words and atomic quota, in one place.

The cog calls this with plain facts about the requester and gets back either a
queued job or a :class:`~avatarbot.policy.Refusal` to show. Nothing here knows Discord.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from avatar_api.models import AvatarRequest

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
    GuildSettings,
    JobMode,
    JobRecord,
    NewJob,
    QuotaStatus,
    Store,
)

log = logging.getLogger(__name__)

CHECKED_TEXTS = ("name", "appearance")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Admission:
    job: JobRecord | None = None
    refusal: Refusal | None = None


class AvatarService:
    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], datetime] = utc_now,
        max_active_per_user: int = 1,
    ) -> None:
        self.store = store
        self._clock = clock
        self._max_active_per_user = max_active_per_user

    async def check(
        self, requester: Requester, mode: JobMode, options: Mapping[str, str]
    ) -> Refusal | None:
        """Everything that can refuse a request without counting: settings, block, words."""
        _, refusal = await self._screen(requester, mode, options)
        return refusal

    async def submit(
        self,
        requester: Requester,
        mode: JobMode,
        options: Mapping[str, str],
        *,
        owner: str,
        photo_sizes: tuple[int, ...] = (),
    ) -> Admission:
        """Check again (settings may have changed) and queue atomically within the quotas."""
        settings, refusal = await self._screen(requester, mode, options)
        if refusal is not None:
            return Admission(refusal=refusal)
        limits = limits_for(settings, max_active_per_user=self._max_active_per_user)
        now = self._clock()
        job = _new_job(requester, mode, options, owner, photo_sizes)
        result = await self.store.enqueue_job(job, limits, now)
        if result.job is not None:
            log.info(
                "job %d queued: %s by user %d in guild %d",
                result.job.id,
                mode.value,
                requester.user_id,
                requester.guild_id,
            )
            return Admission(job=result.job)
        refusal = refusal_for_quota(result, limits, now)
        await self.store.record_refused(job, refusal.reason.value, now)
        return Admission(refusal=refusal)

    async def resubmit(
        self,
        requester: Requester,
        job_id: int,
        *,
        owner: str,
        edits: Mapping[str, str] | None = None,
    ) -> Admission:
        """A new request with the options of the member's past generate job (a re-roll),
        or with some texts replaced (an edit): screened and counted like any request.

        An edited text that is not valid raises :class:`~avatar_api.ValidationError`.
        """
        job = await self.past_job(requester.user_id, requester.guild_id, job_id)
        if job is None:
            return Admission(refusal=JOB_GONE)
        if job.mode is not JobMode.GENERATE:
            return Admission(refusal=NOT_REPEATABLE)
        wanted = {**job.options, **(edits or {})}
        options = AvatarRequest.from_options(JobMode.GENERATE.value, wanted).options()
        return await self.submit(requester, JobMode.GENERATE, options, owner=owner)

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

    async def _screen(
        self, requester: Requester, mode: JobMode, options: Mapping[str, str]
    ) -> tuple[GuildSettings, Refusal | None]:
        """The server's settings, and the refusal they (or a block, or a word) call for."""
        settings = await self.store.get_guild_settings(requester.guild_id)
        block = await self.store.get_block(requester.guild_id, requester.user_id)
        texts = {name: options.get(name) for name in CHECKED_TEXTS}
        refusal = check_access(settings, requester, mode, block) or check_words(settings, texts)
        if refusal is not None:
            await self._record_refusal(requester, mode, options, refusal)
        return settings, refusal

    async def _record_refusal(
        self,
        requester: Requester,
        mode: JobMode,
        options: Mapping[str, str],
        refusal: Refusal,
    ) -> None:
        if refusal.reason is RefusalReason.BLOCKED_WORD:
            options = {k: v for k, v in options.items() if k not in CHECKED_TEXTS}
        job = _new_job(requester, mode, options, "", ())
        await self.store.record_refused(job, refusal.reason.value, self._clock())


def _new_job(
    requester: Requester,
    mode: JobMode,
    options: Mapping[str, str],
    owner: str,
    photo_sizes: tuple[int, ...],
) -> NewJob:
    return NewJob(
        guild_id=requester.guild_id,
        channel_id=requester.channel_id,
        user_id=requester.user_id,
        mode=mode,
        options=dict(options),
        owner=owner,
        photo_sizes=photo_sizes,
    )
