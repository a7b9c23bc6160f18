"""The seam between the dispatcher (no Discord) and the delivery cog that tells members."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .store.base import JobRecord

if TYPE_CHECKING:
    from .queue import JobListener, QueuePlace

log = logging.getLogger(__name__)


class JobRelay:
    """Forwards job events to whichever listener is attached (the delivery cog, once loaded).

    With no listener attached nobody is told, so :meth:`job_finished` says False and
    the dispatcher keeps the job for a later delivery.
    """

    def __init__(self) -> None:
        self.target: JobListener | None = None

    async def job_started(self, job: JobRecord) -> None:
        if self.target is not None:
            await self.target.job_started(job)

    async def job_finished(self, job: JobRecord) -> bool:
        if self.target is None:
            log.debug("job %d finished with no listener attached", job.id)
            return False
        return await self.target.job_finished(job)

    async def positions_changed(self, positions: Mapping[int, QueuePlace]) -> None:
        if self.target is not None:
            await self.target.positions_changed(positions)
