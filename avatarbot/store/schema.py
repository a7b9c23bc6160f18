"""The schema: SQLAlchemy Core tables, indexes and constraints, the one description of it.

Queries are built from these tables, a new database is created from them
(``metadata.create_all``), and a database upgraded by the delta steps of
:mod:`avatarbot.store.migrations` must equal them: ``tests/test_schema.py``
compares both with these tables on SQLite and PostgreSQL (Alembic's autogenerate
comparison) and, on a difference, prints the operations a new migration needs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
)
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on every backend.

    SQLite stores naive text (which sorts correctly only if every value is UTC),
    PostgreSQL ``timestamptz``; naive values are refused rather than guessed.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError("the store takes only timezone-aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# Row ids: BIGINT identity on PostgreSQL; on SQLite INTEGER PRIMARY KEY AUTOINCREMENT
# (``sqlite_autoincrement``), so an id is never reused after its row is deleted.
Id = BigInteger().with_variant(Integer, "sqlite")

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("description", Text, nullable=False),
    Column("applied_at", UTCDateTime, nullable=False),
)

guild_settings = Table(
    "guild_settings",
    metadata,
    Column("guild_id", BigInteger, primary_key=True),
    Column("enabled", Boolean, nullable=False),
    Column("uploads_allowed", Boolean, nullable=False),
    Column("cooldown_seconds", Integer, nullable=False),
    Column("user_daily_quota", Integer, nullable=False),
    Column("guild_daily_quota", Integer, nullable=False),
    Column("log_channel_id", BigInteger),
    Column("allowed_channel_ids", Text, nullable=False),
    Column("required_role_ids", Text, nullable=False),
    Column("blocked_words", Text, nullable=False),
    Column("disabled_checks", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("language", Text),
    Column("photo_strictness", Text, nullable=False, server_default="standard"),
)

blocks = Table(
    "blocks",
    metadata,
    Column("guild_id", BigInteger, primary_key=True),
    Column("user_id", BigInteger, primary_key=True),
    Column("reason", Text, nullable=False),
    Column("blocked_by", BigInteger, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

consents = Table(
    "consents",
    metadata,
    Column("user_id", BigInteger, primary_key=True),
    Column("consented_at", UTCDateTime, nullable=False),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Id, Identity(), primary_key=True, autoincrement=True),
    Column("guild_id", BigInteger, nullable=False),
    Column("channel_id", BigInteger, nullable=False),
    Column("user_id", BigInteger, nullable=False),
    Column("mode", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("options", Text, nullable=False),
    Column("owner", Text, nullable=False),
    Column("photo_sizes", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("group_id", Text),
    Column("avatar_status", Text),
    Column("error_kind", Text),
    Column("error_message", Text),
    Column("refusal", Text),
    Column("notified", Boolean, nullable=False),
    Column("guild_turn", BigInteger),
    Column("member_turn", BigInteger),
    Column("forgotten", Boolean, nullable=False),
    Column("claimed_by", Text),
    Column("locale", Text),
    # The member's interaction: one job per interaction, whatever the timing; its token
    # (sealed, see avatarbot.sealing) lets any process answer in it until reply_until.
    Column("interaction_id", BigInteger),
    Column("application_id", BigInteger),
    Column("reply_token", Text),
    Column("reply_until", UTCDateTime),
    Index("ix_jobs_active", "state", "guild_id"),
    Index("ix_jobs_member", "guild_id", "user_id", "created_at"),
    Index("ix_jobs_guild", "guild_id", "created_at"),
    Index("ix_jobs_user", "user_id"),
    Index("ix_jobs_owner", "owner", "notified"),
    Index("ix_jobs_guild_turn", "guild_id", "guild_turn"),
    Index("ix_jobs_member_turn", "guild_id", "user_id", "member_turn"),
    Index("ux_jobs_interaction", "interaction_id", unique=True),
    sqlite_autoincrement=True,
)

quota_resets = Table(
    "quota_resets",
    metadata,
    Column("id", Id, Identity(), primary_key=True, autoincrement=True),
    Column("guild_id", BigInteger, nullable=False),
    Column("user_id", BigInteger, nullable=False),
    Column("reset_at", UTCDateTime, nullable=False),
    Index("ix_quota_resets_member", "guild_id", "user_id", "reset_at"),
    sqlite_autoincrement=True,
)

dispatch_state = Table(
    "dispatch_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("paused_until", UTCDateTime),
    Column("guild_clock", BigInteger, nullable=False),
    CheckConstraint("id = 1"),  # one row: the global budget lock
)

guild_clocks = Table(
    "guild_clocks",
    metadata,
    Column("guild_id", BigInteger, primary_key=True),
    Column("member_clock", BigInteger, nullable=False),
)

claims = Table(
    "claims",
    metadata,
    Column("id", Id, Identity(), primary_key=True, autoincrement=True),
    Column("claimed_at", UTCDateTime, nullable=False),
    Column("worker", Text, nullable=False),
    Column("job_id", BigInteger),  # the job whose request took (or holds) this slot
    Index("ix_claims_at", "claimed_at"),
    Index("ix_claims_job", "job_id"),
    sqlite_autoincrement=True,
)

workers = Table(
    "workers",
    metadata,
    Column("worker_id", Text, primary_key=True),
    Column("last_seen", UTCDateTime, nullable=False),
)

fleet_state = Table(
    "fleet_state",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)
