"""The one :class:`~avatarbot.store.base.Store`: SQLAlchemy Core on SQLite or PostgreSQL.

Each part lives in its own module: settings (:mod:`.settings_sql`), jobs and
quotas (:mod:`.jobs_sql`), the shared queue and budget (:mod:`.dispatch_sql`),
over the plumbing they share (:mod:`.sql_base`).
"""

from __future__ import annotations

from .dispatch_sql import DispatchStore
from .jobs_sql import JobStore
from .settings_sql import SettingsStore
from .sql_base import WORKER_TIMEOUT, day_start, job_from_row, next_day_start

__all__ = ["WORKER_TIMEOUT", "SqlStore", "day_start", "job_from_row", "next_day_start"]


class SqlStore(SettingsStore, JobStore, DispatchStore):
    """Every method is one transaction; see :class:`~avatarbot.store.base.Store`."""
