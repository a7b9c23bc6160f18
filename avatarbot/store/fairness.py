"""Fair order of the queue: round-robin across guilds, then across members.

Start-time fair queueing on two levels. At enqueue every job gets two virtual
"turns": a *guild turn* (one per job of its guild) and a *member turn* (one per
job of its member within the guild), each ``max(clock, own last turn + 1)``,
where the clock is the turn last served, so an idle guild or member joins the
current round instead of jumping ahead or lagging behind.

A guild's jobs are served in member-turn order, and the k-th of them takes the
guild's k-th smallest guild turn: which job holds which guild turn does not
matter, only how many turns a guild has queued. The global order sorts those
slots by (guild turn, creation time).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from .base import SourceType


@dataclass(frozen=True, slots=True)
class QueuedEntry:
    job_id: int
    guild_id: int
    user_id: int
    mode: SourceType
    owner: str
    guild_turn: int
    member_turn: int
    created_at: datetime

    def claimable_by(self, worker: str) -> bool:
        # Only the owner's memory holds an upload job's photos.
        return self.mode is SourceType.GENERATE or self.owner == worker


@dataclass(frozen=True, slots=True)
class Slot:
    """A queued job and the guild turn it is served in."""

    entry: QueuedEntry
    turn: int


def next_turn(clock: int, last_turn: int | None) -> int:
    return clock if last_turn is None else max(clock, last_turn + 1)


def fair_order(entries: Iterable[QueuedEntry]) -> list[Slot]:
    """Every queued job in the order it should be served."""
    by_guild: dict[int, list[QueuedEntry]] = defaultdict(list)
    for entry in entries:
        by_guild[entry.guild_id].append(entry)
    slots: list[Slot] = []
    for guild_entries in by_guild.values():
        members_first = sorted(guild_entries, key=lambda e: (e.member_turn, e.created_at, e.job_id))
        turns = sorted(e.guild_turn for e in guild_entries)
        slots.extend(Slot(e, t) for e, t in zip(members_first, turns, strict=True))
    slots.sort(key=lambda s: (s.turn, s.entry.created_at, s.entry.job_id))
    return slots


def turn_swap(slot: Slot, entries: Iterable[QueuedEntry]) -> QueuedEntry | None:
    """The queued job of the same guild that holds ``slot.turn`` when the served job does not.

    Serving a job consumes its slot's turn; swapping the two jobs' guild turns keeps
    every other job of the guild on the turns it was ordered by.
    """
    if slot.entry.guild_turn == slot.turn:
        return None
    for entry in entries:
        if entry.guild_id == slot.entry.guild_id and entry.guild_turn == slot.turn:
            return entry
    return None


def positions(order: list[Slot]) -> dict[int, int]:
    """1-based place of each queued job."""
    return {slot.entry.job_id: index for index, slot in enumerate(order, start=1)}
