"""What the fake Discord knows: users, guilds, channels, roles, members, messages,
interactions, and every REST call it answered.

Plain dataclasses; the JSON Discord sends is built from them in :mod:`.payloads`.
Times are ``time.perf_counter()`` seconds (``*_at``) so a benchmark can subtract
them, plus wall-clock ISO strings where Discord shows a timestamp.
"""

from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

DISCORD_EPOCH_MS = 1_420_070_400_000
ALL_PERMISSIONS = (1 << 53) - 1
ADMINISTRATOR = 1 << 3
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
# What @everyone may do in a new server: invite, react, view, send, embed, attach,
# history, external emoji, connect, speak, nickname, slash commands, thread messages.
DEFAULT_EVERYONE_PERMISSIONS = (
    1
    | 1 << 6
    | 1 << 10
    | 1 << 11
    | 1 << 14
    | 1 << 15
    | 1 << 16
    | 1 << 18
    | 1 << 20
    | 1 << 21
    | 1 << 26
    | 1 << 31
    | 1 << 38
)
EPHEMERAL = 1 << 6
LOADING = 1 << 7


class ChannelType(IntEnum):
    GUILD_TEXT = 0
    DM = 1
    GUILD_VOICE = 2
    GUILD_CATEGORY = 4
    PUBLIC_THREAD = 11


class InteractionType(IntEnum):
    PING = 1
    APPLICATION_COMMAND = 2
    MESSAGE_COMPONENT = 3
    AUTOCOMPLETE = 4
    MODAL_SUBMIT = 5


class CallbackType(IntEnum):
    PONG = 1
    CHANNEL_MESSAGE_WITH_SOURCE = 4
    DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE = 5
    DEFERRED_UPDATE_MESSAGE = 6
    UPDATE_MESSAGE = 7
    APPLICATION_COMMAND_AUTOCOMPLETE_RESULT = 8
    MODAL = 9


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


class Snowflakes:
    """Snowflakes whose timestamp is now, as Discord's are (discord.py reads ``created_at``)."""

    def __init__(self) -> None:
        self._counter = itertools.count()

    def next(self) -> int:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        return (ms << 22) | (next(self._counter) & 0x3FFFFF)

    def on_shard(self, shard_id: int, shard_count: int) -> int:
        """A fresh id that routes to ``shard_id`` of ``shard_count``: ``(id >> 22) % count``."""
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        ms += (shard_id - ms) % shard_count
        return (ms << 22) | (next(self._counter) & 0x3FFFFF)


def shard_of(guild_id: int, shard_count: int) -> int:
    return (guild_id >> 22) % shard_count


@dataclass
class User:
    id: int
    name: str
    bot: bool = False
    locale: str = "en-US"
    dms_open: bool = True  # False: Discord answers 50007 to a DM


@dataclass
class Role:
    id: int
    name: str
    permissions: int
    position: int = 1


@dataclass
class Overwrite:
    target_id: int
    type: int  # 0 role, 1 member
    allow: int = 0
    deny: int = 0


@dataclass
class Channel:
    id: int
    name: str | None
    type: ChannelType
    guild_id: int | None = None
    position: int = 0
    parent_id: int | None = None
    overwrites: list[Overwrite] = field(default_factory=list)
    recipient_ids: tuple[int, ...] = ()


@dataclass
class Member:
    user: User
    guild_id: int
    role_ids: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: str = field(default_factory=now_iso)

    @property
    def id(self) -> int:
        return self.user.id


@dataclass
class Guild:
    id: int
    name: str
    owner_id: int
    locale: str = "en-US"
    roles: dict[int, Role] = field(default_factory=dict)
    channels: dict[int, Channel] = field(default_factory=dict)
    members: dict[int, Member] = field(default_factory=dict)

    @property
    def everyone(self) -> Role:
        return self.roles[self.id]

    def base_permissions(self, member: Member) -> int:
        if member.id == self.owner_id:
            return ALL_PERMISSIONS
        permissions = self.everyone.permissions
        for role_id in member.role_ids:
            permissions |= self.roles[role_id].permissions
        return ALL_PERMISSIONS if permissions & ADMINISTRATOR else permissions

    def permissions_in(self, member: Member, channel: Channel) -> int:
        """Discord's order: base, then @everyone's overwrite, roles' overwrites, the member's."""
        permissions = self.base_permissions(member)
        if permissions & ADMINISTRATOR:
            return ALL_PERMISSIONS
        by_target = {o.target_id: o for o in channel.overwrites}
        everyone = by_target.get(self.id)
        if everyone is not None:
            permissions = (permissions & ~everyone.deny) | everyone.allow
        allow = deny = 0
        for role_id in member.role_ids:
            overwrite = by_target.get(role_id)
            if overwrite is not None:
                allow |= overwrite.allow
                deny |= overwrite.deny
        permissions = (permissions & ~deny) | allow
        own = by_target.get(member.id)
        if own is not None and own.type == 1:
            permissions = (permissions & ~own.deny) | own.allow
        return permissions


@dataclass
class Attachment:
    id: int
    filename: str
    data: bytes
    content_type: str | None
    url: str
    width: int | None = None
    height: int | None = None

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass
class Message:
    """A message as Discord stores it; ``edits`` keeps what each PATCH set."""

    id: int
    channel_id: int
    author: User
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    flags: int = 0
    guild_id: int | None = None
    webhook_id: int | None = None
    interaction_id: int | None = None
    timestamp: str = field(default_factory=now_iso)
    edited_timestamp: str | None = None
    created_at: float = field(default_factory=time.perf_counter)
    deleted: bool = False
    edits: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        return bool(self.flags & LOADING)

    def buttons(self) -> list[dict[str, Any]]:
        """Every button (type 2) in the message's action rows."""
        found: list[dict[str, Any]] = []
        for row in self.components:
            found.extend(c for c in row.get("components", []) if c.get("type") == 2)
        return found


@dataclass(frozen=True)
class CallbackAttempt:
    """One ``POST /interactions/{id}/{token}/callback`` and what the fake answered."""

    at: float
    type: int
    status: int
    code: int | None  # Discord's JSON error code when refused
    peer: tuple[str, int] | None
    data: dict[str, Any]


@dataclass
class InteractionRecord:
    """An INTERACTION_CREATE the fake sent, and everything that answered it."""

    id: int
    token: str
    type: InteractionType
    guild_id: int | None
    channel_id: int
    user: User
    payload: dict[str, Any]
    created_at: float = field(default_factory=time.perf_counter)
    dispatched_at: float | None = None  # just before the first session's frame was written
    delivered_to: list[str] = field(default_factory=list)  # session ids
    callbacks: list[CallbackAttempt] = field(default_factory=list)
    original: Message | None = None
    followups: list[Message] = field(default_factory=list)
    source_message: Message | None = None  # the message a pressed component is on
    modal: dict[str, Any] | None = None

    @property
    def ack(self) -> CallbackAttempt | None:
        """The callback Discord accepted (the first one in time), if any."""
        return next((c for c in self.callbacks if 200 <= c.status < 300), None)

    @property
    def ack_latency(self) -> float | None:
        """Seconds from dispatch to the accepted callback's arrival."""
        ack = self.ack
        if ack is None or self.dispatched_at is None:
            return None
        return ack.at - self.dispatched_at

    @property
    def callback_type(self) -> CallbackType | None:
        ack = self.ack
        return None if ack is None else CallbackType(ack.type)

    @property
    def refused_callbacks(self) -> list[CallbackAttempt]:
        return [c for c in self.callbacks if c.status >= 400]


def new_token() -> str:
    """Interaction tokens are long opaque strings."""
    return "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(120)


@dataclass(frozen=True)
class RestCall:
    """One REST request, when it arrived, and the answer."""

    method: str
    path: str  # as requested, without /api/v10 and the query
    route: str  # the template, e.g. "/channels/{channel_id}/messages"
    at: float
    status: int
    json: Any
    files: int
    peer: tuple[str, int] | None
    query: dict[str, str] = field(default_factory=dict)
