"""Versioned schema migrations, applied at start-up, one transaction each.

:mod:`avatarbot.store.schema` is the schema; these are the frozen steps that take
any database made by an earlier release to it. Change the schema by editing the
tables there and appending the migration that ``tests/test_schema.py`` prints
(it compares a migrated database with the tables on both backends), never by
editing a released one. ``schema_version`` holds one row per applied migration.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from . import dialect
from .schema import schema_version
from .url import Backend

log = logging.getLogger(__name__)

DdlFor = Callable[[Backend], Sequence[str]]


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: DdlFor


def _v1_statements(backend: Backend) -> list[str]:
    id_pk = dialect.identity_primary_key(backend)
    ts = "TIMESTAMP WITH TIME ZONE"
    return [
        f"""CREATE TABLE guild_settings (
            guild_id BIGINT PRIMARY KEY,
            enabled BOOLEAN NOT NULL,
            uploads_allowed BOOLEAN NOT NULL,
            cooldown_seconds INTEGER NOT NULL,
            user_daily_quota INTEGER NOT NULL,
            guild_daily_quota INTEGER NOT NULL,
            log_channel_id BIGINT,
            allowed_channel_ids TEXT NOT NULL,
            required_role_ids TEXT NOT NULL,
            blocked_words TEXT NOT NULL,
            disabled_checks TEXT NOT NULL,
            updated_at {ts} NOT NULL
        )""",
        f"""CREATE TABLE blocks (
            guild_id BIGINT NOT NULL,
            user_id BIGINT NOT NULL,
            reason TEXT NOT NULL,
            blocked_by BIGINT NOT NULL,
            created_at {ts} NOT NULL,
            PRIMARY KEY (guild_id, user_id)
        )""",
        f"""CREATE TABLE consents (
            user_id BIGINT PRIMARY KEY,
            consented_at {ts} NOT NULL
        )""",
        f"""CREATE TABLE jobs (
            id {id_pk},
            guild_id BIGINT NOT NULL,
            channel_id BIGINT NOT NULL,
            user_id BIGINT NOT NULL,
            mode TEXT NOT NULL,
            state TEXT NOT NULL,
            options TEXT NOT NULL,
            owner TEXT NOT NULL,
            photo_sizes TEXT NOT NULL,
            created_at {ts} NOT NULL,
            started_at {ts},
            finished_at {ts},
            group_id TEXT,
            avatar_status TEXT,
            error_kind TEXT,
            error_message TEXT,
            refusal TEXT,
            notified BOOLEAN NOT NULL,
            guild_turn BIGINT,
            member_turn BIGINT,
            forgotten BOOLEAN NOT NULL,
            claimed_by TEXT
        )""",
        "CREATE INDEX ix_jobs_active ON jobs (state, guild_id)",
        "CREATE INDEX ix_jobs_member ON jobs (guild_id, user_id, created_at)",
        "CREATE INDEX ix_jobs_guild ON jobs (guild_id, created_at)",
        "CREATE INDEX ix_jobs_user ON jobs (user_id)",
        "CREATE INDEX ix_jobs_owner ON jobs (owner, notified)",
        "CREATE INDEX ix_jobs_guild_turn ON jobs (guild_id, guild_turn)",
        "CREATE INDEX ix_jobs_member_turn ON jobs (guild_id, user_id, member_turn)",
        f"""CREATE TABLE quota_resets (
            id {id_pk},
            guild_id BIGINT NOT NULL,
            user_id BIGINT NOT NULL,
            reset_at {ts} NOT NULL
        )""",
        "CREATE INDEX ix_quota_resets_member ON quota_resets (guild_id, user_id, reset_at)",
        f"""CREATE TABLE dispatch_state (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            paused_until {ts},
            guild_clock BIGINT NOT NULL
        )""",
        "INSERT INTO dispatch_state (id, paused_until, guild_clock) VALUES (1, NULL, 0)",
        """CREATE TABLE guild_clocks (
            guild_id BIGINT PRIMARY KEY,
            member_clock BIGINT NOT NULL
        )""",
        f"""CREATE TABLE claims (
            id {id_pk},
            claimed_at {ts} NOT NULL,
            worker TEXT NOT NULL
        )""",
        "CREATE INDEX ix_claims_at ON claims (claimed_at)",
        f"""CREATE TABLE workers (
            worker_id TEXT PRIMARY KEY,
            last_seen {ts} NOT NULL
        )""",
    ]


# Version 1 stored an error's class name; version 2 stores a FailureKind value.
_V2_FAILURE_KINDS = (
    ("BadRequestError", "bad_request"),
    ("AuthenticationError", "authentication"),
    ("PermissionDeniedError", "permission_denied"),
    ("NotFoundError", "not_found"),
    ("RateLimitError", "rate_limited"),
    ("ServerError", "server_error"),
    ("APIStatusError", "api_status"),
    ("APIConnectionError", "connection"),
    ("APITimeoutError", "maybe_created"),
    ("UnexpectedResponseError", "unexpected_response"),
    ("Interrupted", "interrupted"),
    ("ServerLeft", "server_left"),
    ("InternalError", "internal"),
)


def _v2_statements(backend: Backend) -> list[str]:
    # Fixed identifiers, never user input: inlining them is safe.
    return [
        f"UPDATE jobs SET error_kind = '{kind}' WHERE error_kind = '{code}'"
        for code, kind in _V2_FAILURE_KINDS
    ]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "settings, blocks, consent, jobs, quota resets, dispatch", _v1_statements),
    Migration(2, "typed failure kinds", _v2_statements),
)

_SCHEMA_VERSION_DDL = """CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at TIMESTAMP WITH TIME ZONE NOT NULL
)"""


async def current_version(conn: AsyncConnection) -> int:
    version = await conn.scalar(
        select(schema_version.c.version).order_by(schema_version.c.version.desc()).limit(1)
    )
    return int(version or 0)


async def migrate_step(
    conn: AsyncConnection,
    backend: Backend,
    now: datetime,
    migrations: Sequence[Migration] = MIGRATIONS,
) -> Migration | None:
    """Apply the next pending migration inside the caller's transaction; None when up to date.

    The caller's transaction must hold the migration lock (see :func:`dialect.lock_migrations`),
    so concurrent starters apply each migration exactly once.
    """
    await conn.execute(text(_SCHEMA_VERSION_DDL))
    version = await current_version(conn)
    pending = [m for m in migrations if m.version > version]
    if not pending:
        return None
    migration = min(pending, key=lambda m: m.version)
    for statement in migration.statements(backend):
        await conn.execute(text(statement))
    await conn.execute(
        insert(schema_version).values(
            version=migration.version,
            description=migration.description,
            applied_at=now,
        )
    )
    log.info("applied schema migration %d: %s", migration.version, migration.description)
    return migration
