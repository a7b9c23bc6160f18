"""Server settings, blocks and photo consent."""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

from sqlalchemy import (
    delete,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from avatar_api.preflight import Strictness
from avatarbot import guild_rules

from .base import (
    Block,
    GuildSettings,
    Screening,
)
from .schema import (
    blocks,
    consents,
    guild_settings,
)
from .sql_base import (
    SqlBase,
)

log = logging.getLogger(__name__)


class SettingsStore(SqlBase):
    """Settings, blocks and consent; see :class:`~avatarbot.store.base.Store`."""

    async def get_guild_settings(self, guild_id: int) -> GuildSettings:
        async with self._transaction(write=False) as conn:
            return await _load_settings(conn, guild_id)

    async def update_guild_settings(self, guild_id: int, /, **changes: object) -> GuildSettings:
        normalized = guild_rules.validate_changes(changes)
        async with self._transaction(write=True) as conn:
            current = await _load_settings(conn, guild_id)
            updated = dataclasses.replace(current, **normalized)  # type: ignore[arg-type]
            values = _settings_values(updated) | {"updated_at": self._clock()}
            stmt = self._insert(guild_settings).values(**values)
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[guild_settings.c.guild_id],
                    set_={k: v for k, v in values.items() if k != "guild_id"},
                )
            )
        return updated

    async def block_user(self, guild_id: int, user_id: int, reason: str, blocked_by: int) -> Block:
        block = Block(guild_id, user_id, reason, blocked_by, self._clock())
        values = dataclasses.asdict(block)
        async with self._transaction(write=True) as conn:
            stmt = self._insert(blocks).values(**values)
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[blocks.c.guild_id, blocks.c.user_id],
                    set_={
                        "reason": reason,
                        "blocked_by": blocked_by,
                        "created_at": block.created_at,
                    },
                )
            )
        return block

    async def unblock_user(self, guild_id: int, user_id: int) -> bool:
        async with self._transaction(write=True) as conn:
            result = await conn.execute(
                delete(blocks).where(blocks.c.guild_id == guild_id, blocks.c.user_id == user_id)
            )
            return bool(result.rowcount)

    async def get_block(self, guild_id: int, user_id: int) -> Block | None:
        async with self._transaction(write=False) as conn:
            return await _load_block(conn, guild_id, user_id)

    async def has_consented(self, user_id: int) -> bool:
        async with self._transaction(write=False) as conn:
            return await _has_consented(conn, user_id)

    async def screening(self, guild_id: int, user_id: int) -> Screening:
        async with self._transaction(write=False) as conn:
            return Screening(
                settings=await _load_settings(conn, guild_id),
                block=await _load_block(conn, guild_id, user_id),
                consented=await _has_consented(conn, user_id),
            )

    async def record_consent(self, user_id: int) -> None:
        async with self._transaction(write=True) as conn:
            stmt = self._insert(consents).values(user_id=user_id, consented_at=self._clock())
            await conn.execute(stmt.on_conflict_do_nothing(index_elements=[consents.c.user_id]))


async def _load_block(conn: AsyncConnection, guild_id: int, user_id: int) -> Block | None:
    row = (
        await conn.execute(
            select(blocks).where(blocks.c.guild_id == guild_id, blocks.c.user_id == user_id)
        )
    ).first()
    if row is None:
        return None
    return Block(row.guild_id, row.user_id, row.reason, row.blocked_by, row.created_at)


async def _has_consented(conn: AsyncConnection, user_id: int) -> bool:
    found = await conn.scalar(select(consents.c.user_id).where(consents.c.user_id == user_id))
    return found is not None


async def _load_settings(conn: AsyncConnection, guild_id: int) -> GuildSettings:
    row = (
        await conn.execute(select(guild_settings).where(guild_settings.c.guild_id == guild_id))
    ).first()
    if row is None:
        return GuildSettings(guild_id)
    return GuildSettings(
        guild_id=row.guild_id,
        enabled=bool(row.enabled),
        uploads_allowed=bool(row.uploads_allowed),
        cooldown_seconds=row.cooldown_seconds,
        user_daily_quota=row.user_daily_quota,
        guild_daily_quota=row.guild_daily_quota,
        log_channel_id=row.log_channel_id,
        allowed_channel_ids=frozenset(json.loads(row.allowed_channel_ids)),
        required_role_ids=frozenset(json.loads(row.required_role_ids)),
        blocked_words=tuple(json.loads(row.blocked_words)),
        disabled_checks=frozenset(json.loads(row.disabled_checks)),
        language=row.language,
        photo_strictness=_strictness(row.photo_strictness),
    )


def _settings_values(settings: GuildSettings) -> dict[str, Any]:
    return {
        "guild_id": settings.guild_id,
        "enabled": settings.enabled,
        "uploads_allowed": settings.uploads_allowed,
        "cooldown_seconds": settings.cooldown_seconds,
        "user_daily_quota": settings.user_daily_quota,
        "guild_daily_quota": settings.guild_daily_quota,
        "log_channel_id": settings.log_channel_id,
        "allowed_channel_ids": json.dumps(sorted(settings.allowed_channel_ids)),
        "required_role_ids": json.dumps(sorted(settings.required_role_ids)),
        "blocked_words": json.dumps(list(settings.blocked_words)),
        "disabled_checks": json.dumps(sorted(settings.disabled_checks)),
        "language": settings.language,
        "photo_strictness": settings.photo_strictness.value,
    }


def _strictness(stored: str) -> Strictness:
    """A level written by a newer release reads as the default rather than failing."""
    try:
        return Strictness(stored)
    except ValueError:
        log.warning("unknown photo strictness %r in the database; using standard", stored)
        return Strictness.STANDARD
