"""The fake Discord: an aiohttp server on 127.0.0.1 with REST, a CDN and the gateway,
and the driver API tests and benchmarks use to act as Discord's members.

See ``tests/fake_discord/__init__.py`` for an example.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import mimetypes
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import psutil
from aiohttp import WSMsgType, web

from . import payloads
from .gateway import (
    GUILD_MEMBERS_INTENT,
    GUILDS_INTENT,
    Close,
    Connection,
    Op,
    Session,
    _Compressor,
)
from .model import (
    DEFAULT_EVERYONE_PERMISSIONS,
    EPHEMERAL,
    LOADING,
    SEND_MESSAGES,
    VIEW_CHANNEL,
    Attachment,
    CallbackAttempt,
    CallbackType,
    Channel,
    ChannelType,
    Guild,
    InteractionRecord,
    InteractionType,
    Member,
    Message,
    Overwrite,
    RestCall,
    Role,
    Snowflakes,
    User,
    new_token,
    now_iso,
    shard_of,
)
from .rest import (
    ALREADY_ACKNOWLEDGED,
    API_PREFIX,
    CANNOT_DM,
    EMPTY_MESSAGE,
    INVALID_FORM_BODY,
    INVALID_WEBHOOK_TOKEN,
    MISSING_PERMISSIONS,
    UNKNOWN_CHANNEL,
    UNKNOWN_INTERACTION,
    UNKNOWN_MESSAGE,
    UNKNOWN_USER,
    UNKNOWN_WEBHOOK,
    DiscordError,
    RateLimits,
    Request,
    Route,
    message_errors,
    parse_body,
    unknown,
)

log = logging.getLogger(__name__)

# Shaped like a bot token, never a real one.
BOT_TOKEN = "MTAwMDAwMDAwMDAwMDAwMDAw.GfAkEd.loopback-fake-discord-token-000000000"
CALLBACK_DEADLINE = 3.0  # seconds Discord waits for the first callback
TOKEN_LIFETIME = 15 * 60.0  # an interaction token's webhook works this long
RESUME_WINDOW = 60.0  # a disconnected session can be resumed this long
GUILDS_PER_SHARD = 2500  # above this Discord closes with 4011 "sharding required"
OPTION_SUB_COMMAND, OPTION_GROUP, OPTION_ATTACHMENT = 1, 2, 11
OPTION_USER, OPTION_CHANNEL, OPTION_ROLE, OPTION_MENTIONABLE = 6, 7, 8, 9


@dataclass(frozen=True)
class File:
    """An attachment a member adds to a slash command option."""

    filename: str
    data: bytes
    content_type: str | None = None
    width: int | None = None
    height: int | None = None


class FakeDiscord:
    """Discord on loopback, for the real discord.py client.

    Build the world (``create_guild``, ``create_channel``, ``create_role``,
    ``create_member``), point discord.py at :attr:`api_base` and :attr:`gateway_url`
    (:func:`tests.fake_discord.client.use_fake_discord` does both), then act:
    :meth:`slash`, :meth:`press_button`, :meth:`submit_modal`. Everything the bot
    did is in :attr:`rest_calls`, :attr:`interactions` and :attr:`messages`.
    """

    def __init__(
        self,
        *,
        token: str = BOT_TOKEN,
        bot_name: str = "Avatar Bot",
        callback_deadline: float = CALLBACK_DEADLINE,
        token_lifetime: float = TOKEN_LIFETIME,
        heartbeat_interval: float = 41.25,
        recommended_shards: int | None = None,
        rate_limits: RateLimits | None = None,
    ) -> None:
        self.token = token
        self.callback_deadline = callback_deadline
        self.token_lifetime = token_lifetime
        self.heartbeat_interval = heartbeat_interval
        self.recommended_shards = recommended_shards
        self.rate_limits = rate_limits or RateLimits()
        self.ids = Snowflakes()
        self.bot_user = User(self.ids.next(), bot_name, bot=True)
        self.application_id = self.bot_user.id
        self.owner = User(self.ids.next(), "owner")
        self.users: dict[int, User] = {self.bot_user.id: self.bot_user, self.owner.id: self.owner}
        self.guilds: dict[int, Guild] = {}
        self.channels: dict[int, Channel] = {}
        self.messages: dict[int, Message] = {}
        self.attachments: dict[int, Attachment] = {}
        self.interactions: dict[int, InteractionRecord] = {}
        self._by_token: dict[str, InteractionRecord] = {}
        self.commands: dict[int | None, dict[str, dict[str, Any]]] = {None: {}}
        self.rest_calls: list[RestCall] = []
        self.sessions: list[Session] = []
        self.connections: list[Connection] = []
        self.identifies = 0
        self._routes = self._build_routes()
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Event()
        self.base_url = ""

    # --- lifetime -------------------------------------------------------------------

    async def start(self, port: int = 0) -> str:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/attachments/{channel_id}/{attachment_id}/{filename}", self._cdn)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        server = site._server
        assert server is not None
        bound = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{bound}"
        return self.base_url

    async def stop(self) -> None:
        for connection in list(self.connections):
            if not connection.ws.closed:
                with contextlib.suppress(Exception):
                    await connection.close(code=1001, message="going away")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    @property
    def api_base(self) -> str:
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/gateway"

    # --- building the world ---------------------------------------------------------

    def create_user(self, name: str, *, locale: str = "en-US", dms_open: bool = True) -> User:
        user = User(self.ids.next(), name, locale=locale, dms_open=dms_open)
        self.users[user.id] = user
        return user

    def create_guild(
        self,
        name: str = "Test Server",
        *,
        locale: str = "en-US",
        shard: tuple[int, int] | None = None,
        everyone_permissions: int = DEFAULT_EVERYONE_PERMISSIONS,
        bot_permissions: int = 0,
    ) -> Guild:
        """A server the bot is in. ``shard=(id, count)`` picks an id that routes there.
        The bot gets a managed role with ``bot_permissions`` (on top of @everyone's)."""
        guild_id = self.ids.on_shard(*shard) if shard else self.ids.next()
        guild = Guild(guild_id, name, owner_id=self.owner.id, locale=locale)
        guild.roles[guild_id] = Role(guild_id, "@everyone", everyone_permissions, position=0)
        guild.members[self.owner.id] = Member(self.owner, guild_id)
        bot_roles = []
        if bot_permissions:
            bot_roles.append(self.create_role(guild, self.bot_user.name, bot_permissions).id)
        guild.members[self.bot_user.id] = Member(self.bot_user, guild_id, role_ids=bot_roles)
        self.guilds[guild_id] = guild
        self._to_shard(guild_id, "GUILD_CREATE", lambda s: self._guild_payload(guild, s))
        return guild

    def create_channel(
        self,
        guild: Guild,
        name: str,
        *,
        type: ChannelType = ChannelType.GUILD_TEXT,
        overwrites: Iterable[Overwrite] = (),
    ) -> Channel:
        channel = Channel(
            self.ids.next(),
            name,
            type,
            guild_id=guild.id,
            position=len(guild.channels),
            overwrites=list(overwrites),
        )
        guild.channels[channel.id] = channel
        self.channels[channel.id] = channel
        self._to_shard(guild.id, "CHANNEL_CREATE", lambda _: payloads.channel(channel))
        return channel

    def create_role(self, guild: Guild, name: str, permissions: int = 0) -> Role:
        role = Role(self.ids.next(), name, permissions, position=len(guild.roles))
        guild.roles[role.id] = role
        self._to_shard(
            guild.id,
            "GUILD_ROLE_CREATE",
            lambda _: {"guild_id": str(guild.id), "role": payloads.role(role)},
        )
        return role

    def create_member(
        self,
        guild: Guild,
        name: str,
        *,
        roles: Iterable[Role] = (),
        locale: str = "en-US",
        nick: str | None = None,
    ) -> Member:
        """A new user who joins ``guild``."""
        return self.add_member(guild, self.create_user(name, locale=locale), roles=roles, nick=nick)

    def add_member(
        self, guild: Guild, user: User, *, roles: Iterable[Role] = (), nick: str | None = None
    ) -> Member:
        member = Member(user, guild.id, role_ids=[r.id for r in roles], nick=nick)
        guild.members[user.id] = member
        self._to_shard(
            guild.id,
            "GUILD_MEMBER_ADD",
            lambda _: {**payloads.member(member), "guild_id": str(guild.id)},
            intent=GUILD_MEMBERS_INTENT,
        )
        return member

    def remove_guild(self, guild: Guild) -> None:
        """The bot was removed from ``guild`` (GUILD_DELETE without ``unavailable``)."""
        self.guilds.pop(guild.id, None)
        self._to_shard(guild.id, "GUILD_DELETE", lambda _: {"id": str(guild.id)})

    # --- acting as members ----------------------------------------------------------

    def slash(
        self,
        member: Member,
        channel: Channel,
        command: str,
        options: Mapping[str, Any] | None = None,
    ) -> InteractionRecord:
        """``/command [sub [sub]]`` with ``options`` (str/int/float/bool, a :class:`File`,
        a User/Member/Role/Channel). Sent at once to every session of the guild's shard."""
        guild = self.guilds[member.guild_id]
        path = command.split()
        spec = self._registered(path[0], guild.id)
        leaf, nesting = spec, []
        for name in path[1:]:
            leaf = next(
                (
                    o
                    for o in leaf.get("options", [])
                    if o["name"] == name and o["type"] in (OPTION_SUB_COMMAND, OPTION_GROUP)
                ),
                None,
            ) or _raise(LookupError(f"/{command}: no subcommand {name!r}"))
            nesting.append(leaf)
        resolved: dict[str, dict[str, Any]] = {}
        values = self._option_values(leaf, dict(options or {}), channel, resolved)
        for node in reversed(nesting):
            values = [{"name": node["name"], "type": node["type"], "options": values}]
        data: dict[str, Any] = {
            "id": spec["id"],
            "name": spec["name"],
            "type": spec.get("type", 1),
            "options": values,
        }
        if resolved:
            data["resolved"] = resolved
        if spec.get("guild_id"):
            data["guild_id"] = spec["guild_id"]
        return self._interact(InteractionType.APPLICATION_COMMAND, member, channel, data)

    def press_button(
        self,
        member: Member,
        message: Message,
        *,
        label: str | None = None,
        custom_id: str | None = None,
    ) -> InteractionRecord:
        """Press the button with this ``label`` (or ``custom_id``) on ``message``."""
        button = next(
            (
                b
                for b in message.buttons()
                if (custom_id is not None and b.get("custom_id") == custom_id)
                or (label is not None and b.get("label") == label)
            ),
            None,
        )
        if button is None:
            labels = [b.get("label") for b in message.buttons()]
            raise LookupError(f"no button {label or custom_id!r} on the message; has {labels}")
        if button.get("disabled"):
            raise LookupError(f"button {label or custom_id!r} is disabled")
        data = {"custom_id": button["custom_id"], "component_type": 2}
        channel = self.channels[message.channel_id]
        return self._interact(
            InteractionType.MESSAGE_COMPONENT, member, channel, data, source=message
        )

    def submit_modal(
        self, member: Member, shown_by: InteractionRecord, values: Mapping[str, str]
    ) -> InteractionRecord:
        """Submit the modal ``shown_by`` answered with, its text inputs set by custom_id."""
        modal = shown_by.modal
        if modal is None:
            raise LookupError("that interaction did not answer with a modal")
        components = [_submitted(c, values) for c in modal.get("components", [])]
        data = {"custom_id": modal["custom_id"], "components": components}
        channel = self.channels[shown_by.channel_id]
        return self._interact(
            InteractionType.MODAL_SUBMIT, member, channel, data, source=shown_by.source_message
        )

    # --- waiting and reading ------------------------------------------------------------

    async def wait_until(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        """Wait until ``predicate()`` holds (checked on every REST call and gateway frame)."""
        deadline = time.monotonic() + within
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the fake Discord did not reach the expected state")
            event = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(remaining, 0.25))

    async def wait_for_sessions(self, count: int = 1, within: float = 10.0) -> list[Session]:
        """Wait until ``count`` sessions are connected and have had their guilds."""
        await self.wait_until(lambda: len(self.ready_sessions()) >= count, within)
        return self.ready_sessions()

    async def wait_for_ack(self, record: InteractionRecord, within: float = 5.0) -> None:
        await self.wait_until(lambda: record.ack is not None, within)

    def ready_sessions(self) -> list[Session]:
        return [s for s in self.sessions if s.ready_sent and s.connected]

    def channel_messages(self, channel: Channel) -> list[Message]:
        """What members see in the channel (no ephemeral messages, no deleted ones)."""
        return [
            m
            for m in self.messages.values()
            if m.channel_id == channel.id and not m.ephemeral and not m.deleted
        ]

    def dms_to(self, user: User) -> list[Message]:
        dm_ids = {c.id for c in self.channels.values() if c.recipient_ids == (user.id,)}
        return [m for m in self.messages.values() if m.channel_id in dm_ids and not m.deleted]

    def calls(self, method: str | None = None, route: str | None = None) -> list[RestCall]:
        return [
            c
            for c in self.rest_calls
            if (method is None or c.method == method) and (route is None or c.route == route)
        ]

    @staticmethod
    def pid_of(peer: tuple[str, int] | None) -> int | None:
        """The local process whose socket is ``peer`` (a REST call's or a connection's),
        while that socket is open: which bot process sent an acknowledgement."""
        if peer is None:
            return None
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and (conn.laddr.ip, conn.laddr.port) == tuple(peer[:2]):
                return conn.pid
        return None

    def session_of_pid(self, pid: int | None) -> Session | None:
        """The one connected session opened by process ``pid`` (None if none or several)."""
        found = [
            s
            for s in self.sessions
            if s.connection is not None and s.connected and self.pid_of(s.connection.peer) == pid
        ]
        return found[0] if len(found) == 1 else None

    def sessions_on(self, shard_id: int, shard_count: int) -> list[Session]:
        return [s for s in self.sessions if (s.shard_id, s.shard_count) == (shard_id, shard_count)]

    # --- gateway faults -------------------------------------------------------------

    async def drop_connection(self, session: Session, code: int = 4000) -> None:
        """Close the session's websocket as a network fault would; discord.py RESUMEs."""
        if session.connection is not None:
            await session.connection.close(code=code, message="connection dropped")

    def request_reconnect(self, session: Session) -> None:
        """Op 7 RECONNECT: the client closes and RESUMEs."""
        if session.connection is not None:
            session.connection.send({"op": Op.RECONNECT, "d": None})

    # --- internals: the world to the gateway ------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _to_shard(
        self,
        guild_id: int | None,
        event: str,
        build: Callable[[Session], Any],
        *,
        intent: int | None = GUILDS_INTENT,
        on_sent: Callable[[Session], None] | None = None,
    ) -> list[Session]:
        """Send ``event`` to every session of the guild's shard (that has ``intent``;
        ``None`` for events every session gets, such as INTERACTION_CREATE)."""
        targets = [
            s
            for s in self.sessions
            if s.ready_sent
            and not s.invalidated
            and s.covers(guild_id)
            and (intent is None or s.intents & intent)
        ]
        for session in targets:
            session.dispatch(event, build(session), on_sent)
        return targets

    def _guild_payload(self, guild: Guild, session: Session) -> dict[str, Any]:
        me = guild.members[self.bot_user.id]
        return payloads.guild_create(
            guild, me=me, with_members=bool(session.intents & GUILD_MEMBERS_INTENT)
        )

    def _registered(self, name: str, guild_id: int) -> dict[str, Any]:
        spec = self.commands.get(guild_id, {}).get(name) or self.commands[None].get(name)
        if spec is None:
            raise LookupError(f"/{name} is not registered (has the bot synced its commands?)")
        return spec

    def _option_values(
        self,
        leaf: dict[str, Any],
        given: dict[str, Any],
        channel: Channel,
        resolved: dict[str, dict[str, Any]],
    ) -> list[dict[str, Any]]:
        specs = {o["name"]: o for o in leaf.get("options", [])}
        unknown_names = set(given) - set(specs)
        if unknown_names:
            raise LookupError(f"no option {sorted(unknown_names)} on /{leaf['name']}")
        missing = [n for n, o in specs.items() if o.get("required") and n not in given]
        if missing:
            raise LookupError(f"Discord's client requires {missing}")
        values = []
        for name, value in given.items():
            spec = specs[name]
            choices = [c["value"] for c in spec.get("choices", [])]
            if choices and value not in choices:
                raise LookupError(f"{name}={value!r} is not one of the choices {choices}")
            values.append(
                {
                    "name": name,
                    "type": spec["type"],
                    "value": self._wire_value(spec["type"], value, channel, resolved),
                }
            )
        return values

    def _wire_value(
        self, kind: int, value: Any, channel: Channel, resolved: dict[str, dict[str, Any]]
    ) -> Any:
        if kind == OPTION_ATTACHMENT:
            attachment = self._store_attachment(channel.id, value)
            resolved.setdefault("attachments", {})[str(attachment.id)] = payloads.attachment(
                attachment
            )
            return str(attachment.id)
        if isinstance(value, Member):
            resolved.setdefault("users", {})[str(value.id)] = payloads.user(value.user)
            resolved.setdefault("members", {})[str(value.id)] = payloads.member(
                value, with_user=False
            )
            return str(value.id)
        if isinstance(value, User):
            resolved.setdefault("users", {})[str(value.id)] = payloads.user(value)
            return str(value.id)
        if isinstance(value, Role):
            resolved.setdefault("roles", {})[str(value.id)] = payloads.role(value)
            return str(value.id)
        if isinstance(value, Channel):
            resolved.setdefault("channels", {})[str(value.id)] = {
                **payloads.channel(value),
                "permissions": str(VIEW_CHANNEL | SEND_MESSAGES),
            }
            return str(value.id)
        return value

    def _store_attachment(self, channel_id: int, file: File) -> Attachment:
        attachment_id = self.ids.next()
        content_type = file.content_type or mimetypes.guess_type(file.filename)[0]
        url = f"{self.base_url}/attachments/{channel_id}/{attachment_id}/{file.filename}"
        attachment = Attachment(
            attachment_id, file.filename, file.data, content_type, url, file.width, file.height
        )
        self.attachments[attachment_id] = attachment
        return attachment

    def _interact(
        self,
        kind: InteractionType,
        member: Member,
        channel: Channel,
        data: dict[str, Any],
        *,
        source: Message | None = None,
    ) -> InteractionRecord:
        guild = self.guilds[member.guild_id]
        interaction_id = self.ids.next()
        token = new_token()
        bot_member = guild.members[self.bot_user.id]
        payload = payloads.interaction(
            interaction_id=interaction_id,
            token=token,
            kind=kind,
            application_id=self.application_id,
            data=data,
            guild=guild,
            channel_=channel,
            actor=member,
            app_permissions=guild.permissions_in(bot_member, channel),
            member_permissions=guild.permissions_in(member, channel),
            message_=source,
        )
        record = InteractionRecord(
            interaction_id, token, kind, guild.id, channel.id, member.user, payload
        )
        record.source_message = source
        self.interactions[interaction_id] = record
        self._by_token[token] = record

        def sent(session: Session) -> None:
            if record.dispatched_at is None:
                record.dispatched_at = time.perf_counter()
            record.delivered_to.append(session.id)
            self._notify()

        self._to_shard(guild.id, "INTERACTION_CREATE", lambda _: payload, intent=None, on_sent=sent)
        return record

    # --- the gateway --------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0, autoping=True)
        await ws.prepare(request)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        connection = Connection(ws, peer, _Compressor(request.query.get("compress")))
        self.connections.append(connection)
        connection.start()
        if request.query.get("encoding", "json") != "json":
            await connection.close(Close.DECODE_ERROR, "this fake speaks JSON only")
            return ws
        if request.query.get("v", "10") not in ("9", "10"):
            await connection.close(Close.INVALID_API_VERSION, "Invalid API version")
            return ws
        connection.send(
            {"op": Op.HELLO, "d": {"heartbeat_interval": self.heartbeat_interval * 1000}}
        )
        try:
            async for frame in ws:
                if frame.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break
                try:
                    message = json.loads(frame.data)
                except ValueError:
                    await connection.close(Close.DECODE_ERROR, "Error while decoding payload")
                    break
                await self._on_gateway_message(connection, message)
                self._notify()
        finally:
            await connection.stop_writer()
            session = connection.session
            if session is not None and session.connection is connection:
                session.connection = None
            self._notify()
        return ws

    async def _on_gateway_message(self, connection: Connection, message: dict[str, Any]) -> None:
        op, data = message.get("op"), message.get("d")
        if op == Op.HEARTBEAT:
            connection.heartbeats += 1
            connection.send({"op": Op.HEARTBEAT_ACK})
        elif op == Op.IDENTIFY:
            await self._identify(connection, data or {})
        elif op == Op.RESUME:
            await self._resume(connection, data or {})
        elif op == Op.REQUEST_GUILD_MEMBERS:
            self._guild_members(connection, data or {})
        elif op in (Op.PRESENCE_UPDATE, Op.VOICE_STATE_UPDATE):
            if connection.session is None:
                await connection.close(Close.NOT_AUTHENTICATED, "Not authenticated.")
        else:
            await connection.close(Close.UNKNOWN_OPCODE, "Unknown opcode.")

    async def _identify(self, connection: Connection, data: dict[str, Any]) -> None:
        if data.get("token") != self.token:
            await connection.close(Close.AUTHENTICATION_FAILED, "Authentication failed.")
            return
        if connection.session is not None:
            await connection.close(Close.ALREADY_AUTHENTICATED, "Already authenticated.")
            return
        shard_id, shard_count = data.get("shard") or [0, 1]
        if not 0 <= shard_id < shard_count:
            await connection.close(Close.INVALID_SHARD, "Invalid shard.")
            return
        mine = [g for g in self.guilds.values() if shard_of(g.id, shard_count) == shard_id]
        if len(mine) > GUILDS_PER_SHARD:
            await connection.close(Close.SHARDING_REQUIRED, "Sharding is required.")
            return
        self.identifies += 1
        session = Session(shard_id, shard_count, int(data.get("intents", 0)), connection=connection)
        connection.session = session
        self.sessions.append(session)
        session.dispatch("READY", self._ready_payload(session, mine))
        if session.intents & GUILDS_INTENT:
            for guild in mine:
                session.dispatch("GUILD_CREATE", self._guild_payload(guild, session))
        session.ready_sent = True

    def _ready_payload(self, session: Session, guilds: list[Guild]) -> dict[str, Any]:
        return {
            "v": 10,
            "user": {**payloads.user(self.bot_user), "verified": True, "mfa_enabled": False},
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "shard": [session.shard_id, session.shard_count],
            "application": {"id": str(self.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["rotterdam"],
            "user_settings": {},
            "_trace": ['["gateway-fake-discord",{"micros":0}]'],
        }

    async def _resume(self, connection: Connection, data: dict[str, Any]) -> None:
        if data.get("token") != self.token:
            await connection.close(Close.AUTHENTICATION_FAILED, "Authentication failed.")
            return
        session = next((s for s in self.sessions if s.id == data.get("session_id")), None)
        if session is None or session.invalidated:
            connection.send({"op": Op.INVALID_SESSION, "d": False})
            return
        old = session.connection
        session.connection = connection
        connection.session = session
        session.resumes += 1
        if old is not None and old is not connection and not old.ws.closed:
            await old.close(code=4009, message="Session replaced")
        for frame in session.replay_after(int(data.get("seq") or 0)):
            connection.send(frame)
        session.dispatch("RESUMED", {"_trace": ["fake-discord"]})

    def _guild_members(self, connection: Connection, data: dict[str, Any]) -> None:
        session = connection.session
        guild = self.guilds.get(int(data.get("guild_id", 0)))
        if session is None or guild is None:
            return
        wanted = {int(u) for u in data.get("user_ids") or []}
        query = (data.get("query") or "").lower()
        members = [
            m
            for m in guild.members.values()
            if (m.id in wanted) or (not wanted and m.user.name.lower().startswith(query))
        ]
        limit = int(data.get("limit") or 0)
        if limit:
            members = members[:limit]
        chunk: dict[str, Any] = {
            "guild_id": str(guild.id),
            "members": [payloads.member(m) for m in members],
            "chunk_index": 0,
            "chunk_count": 1,
        }
        if data.get("nonce") is not None:
            chunk["nonce"] = data["nonce"]
        session.dispatch("GUILD_MEMBERS_CHUNK", chunk)

    # --- the CDN ----------------------------------------------------------------------------

    async def _cdn(self, request: web.Request) -> web.Response:
        attachment = self.attachments.get(int(request.match_info["attachment_id"]))
        if attachment is None or attachment.filename != request.match_info["filename"]:
            return web.Response(status=404, text="Not Found")
        return web.Response(
            body=attachment.data, content_type=attachment.content_type or "application/octet-stream"
        )

    # --- REST -----------------------------------------------------------------------------

    def _build_routes(self) -> list[Route]:
        r = Route
        commands = "/applications/{application_id}/commands"
        guild_commands = "/applications/{application_id}/guilds/{guild_id}/commands"
        webhook = "/webhooks/{application_id}/{interaction_token}"
        return [
            r("GET", "/gateway", self._get_gateway, needs_auth=False),
            r("GET", "/gateway/bot", self._get_gateway_bot),
            r("GET", "/users/@me", self._get_me),
            r("POST", "/users/@me/channels", self._open_dm),
            r("GET", "/users/{user_id}", self._get_user),
            r("GET", "/oauth2/applications/@me", self._get_application),
            r("GET", "/applications/@me", self._get_application),
            r("GET", commands, self._get_commands),
            r("PUT", commands, self._put_commands),
            r("POST", commands, self._post_command),
            r("GET", guild_commands, self._get_commands),
            r("PUT", guild_commands, self._put_commands),
            r("POST", guild_commands, self._post_command),
            r(
                "POST",
                "/interactions/{interaction_id}/{interaction_token}/callback",
                self._callback,
                needs_auth=False,
            ),
            r("POST", webhook, self._followup, needs_auth=False),
            r(
                "GET",
                webhook + "/messages/{message_id}",
                self._get_webhook_message,
                needs_auth=False,
            ),
            r(
                "PATCH",
                webhook + "/messages/{message_id}",
                self._edit_webhook_message,
                needs_auth=False,
            ),
            r(
                "DELETE",
                webhook + "/messages/{message_id}",
                self._delete_webhook_message,
                needs_auth=False,
            ),
            r("GET", "/channels/{channel_id}", self._get_channel),
            r("POST", "/channels/{channel_id}/messages", self._create_message),
            r("GET", "/channels/{channel_id}/messages/{message_id}", self._get_message),
            r("PATCH", "/channels/{channel_id}/messages/{message_id}", self._edit_message),
            r("DELETE", "/channels/{channel_id}/messages/{message_id}", self._delete_message),
            r("GET", "/guilds/{guild_id}/members/{user_id}", self._get_member),
        ]

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        at = time.perf_counter()
        path = "/" + request.match_info["tail"]
        peer = request.transport.get_extra_info("peername") if request.transport else None
        matches = [(route, route.pattern.match(path)) for route in self._routes]
        matching = [(route, m) for route, m in matches if m is not None]
        route_match = next(((ro, m) for ro, m in matching if ro.method == request.method), None)
        body, files = await parse_body(request)
        headers: dict[str, str] = {}
        status: int
        answer: Any
        template = route_match[0].template if route_match else path
        if route_match is None:
            status, answer = (
                (405, {"message": "405: Method Not Allowed", "code": 0})
                if matching
                else (404, {"message": "404: Not Found", "code": 0})
            )
        else:
            route, match = route_match
            authorized = request.headers.get("Authorization") == f"Bot {self.token}"
            parsed = Request(
                request.method,
                path,
                match.groupdict(),
                dict(request.query),
                body,
                files,
                peer,
                at,
                authorized,
            )
            headers, retry_after = self.rate_limits.take(route, parsed.params)
            if route.needs_auth and not authorized:
                status, answer = 401, {"message": "401: Unauthorized", "code": 0}
            elif retry_after is not None:
                status = 429
                answer = {
                    "message": "You are being rate limited.",
                    "retry_after": round(retry_after, 3),
                    "global": headers.get("X-RateLimit-Global") == "true",
                }
                headers["Retry-After"] = str(math.ceil(retry_after))
            else:
                try:
                    status, answer = await route.handler(parsed)
                except DiscordError as error:
                    status, answer = error.status, error.body()
        self.rest_calls.append(
            RestCall(
                request.method,
                path,
                template,
                at,
                status,
                body,
                len(files),
                peer,
                dict(request.query),
            )
        )
        self._notify()
        if status == 204:
            return web.Response(status=204, headers=headers)
        # discord.py compares the content type exactly: no "; charset=utf-8".
        headers["Content-Type"] = "application/json"
        return web.Response(body=json.dumps(answer).encode(), status=status, headers=headers)

    # --- REST: the bot and its application ----------------------------------------

    async def _get_gateway(self, _: Request) -> tuple[int, Any]:
        return 200, {"url": self.gateway_url}

    async def _get_gateway_bot(self, _: Request) -> tuple[int, Any]:
        shards = self.recommended_shards or max(1, math.ceil(len(self.guilds) / 1000))
        return 200, {
            "url": self.gateway_url,
            "shards": shards,
            "session_start_limit": {
                "total": 1000,
                "remaining": max(0, 1000 - self.identifies),
                "reset_after": 14_400_000,
                "max_concurrency": 1,
            },
        }

    async def _get_me(self, _: Request) -> tuple[int, Any]:
        return 200, {**payloads.user(self.bot_user), "verified": True, "mfa_enabled": False}

    async def _get_user(self, request: Request) -> tuple[int, Any]:
        user = self.users.get(int(request.params["user_id"]))
        if user is None:
            raise unknown("User", UNKNOWN_USER)
        return 200, payloads.user(user)

    async def _get_application(self, _: Request) -> tuple[int, Any]:
        return 200, {
            "id": str(self.application_id),
            "name": self.bot_user.name,
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "owner": payloads.user(self.owner),
            "team": None,
            "flags": 0,
            "interactions_endpoint_url": None,
            "redirect_uris": [],
            "approximate_guild_count": len(self.guilds),
            "bot": payloads.user(self.bot_user),
        }

    def _command_scope(self, request: Request) -> int | None:
        if int(request.params["application_id"]) != self.application_id:
            raise DiscordError(403, 50001, "Missing Access")
        guild_id = request.params.get("guild_id")
        if guild_id is not None and int(guild_id) not in self.guilds:
            raise DiscordError(403, 50001, "Missing Access")
        return None if guild_id is None else int(guild_id)

    def _registered_command(self, spec: dict[str, Any], scope: int | None) -> dict[str, Any]:
        existing = self.commands.setdefault(scope, {}).get(spec["name"])
        command = {
            "type": 1,
            "description": "",
            "options": [],
            "default_member_permissions": None,
            "nsfw": False,
            **spec,
            "id": existing["id"] if existing else str(self.ids.next()),
            "application_id": str(self.application_id),
            "version": str(self.ids.next()),
        }
        if scope is not None:
            command["guild_id"] = str(scope)
        return command

    async def _get_commands(self, request: Request) -> tuple[int, Any]:
        return 200, list(self.commands.get(self._command_scope(request), {}).values())

    async def _put_commands(self, request: Request) -> tuple[int, Any]:
        scope = self._command_scope(request)
        specs = request.json or []
        if len(specs) > 100:
            raise DiscordError(400, INVALID_FORM_BODY, "Invalid Form Body")
        registered = [self._registered_command(spec, scope) for spec in specs]
        self.commands[scope] = {c["name"]: c for c in registered}
        return 200, registered

    async def _post_command(self, request: Request) -> tuple[int, Any]:
        scope = self._command_scope(request)
        command = self._registered_command(request.json, scope)
        self.commands.setdefault(scope, {})[command["name"]] = command
        return 201, command

    # --- REST: interactions -----------------------------------------------------------

    async def _callback(self, request: Request) -> tuple[int, Any]:
        record = self.interactions.get(int(request.params["interaction_id"]))
        body = request.json or {}
        kind = int(body.get("type", 0))

        def refuse(error: DiscordError) -> DiscordError:
            if record is not None:
                record.callbacks.append(
                    CallbackAttempt(request.at, kind, error.status, error.code, request.peer, body)
                )
            return error

        if record is None or record.token != request.params["interaction_token"]:
            raise refuse(unknown("interaction", UNKNOWN_INTERACTION))
        if record.ack is not None:
            raise refuse(
                DiscordError(
                    400, ALREADY_ACKNOWLEDGED, "Interaction has already been acknowledged."
                )
            )
        if (
            record.dispatched_at is None
            or request.at - record.dispatched_at > self.callback_deadline
        ):
            raise refuse(unknown("interaction", UNKNOWN_INTERACTION))
        if not self._callback_allowed(record, kind):
            raise refuse(DiscordError(400, INVALID_FORM_BODY, "Invalid Form Body"))
        data = body.get("data") or {}
        if kind in (CallbackType.CHANNEL_MESSAGE_WITH_SOURCE, CallbackType.UPDATE_MESSAGE):
            errors = message_errors(data)
            if errors:
                raise refuse(DiscordError(400, INVALID_FORM_BODY, "Invalid Form Body", errors))
        record.callbacks.append(CallbackAttempt(request.at, kind, 204, None, request.peer, body))
        message = self._apply_callback(record, kind, data, request.files)
        if request.query.get("with_response") not in ("1", "true", "True"):
            return 204, None
        response: dict[str, Any] = {"interaction": {"id": str(record.id), "type": int(record.type)}}
        if message is not None:
            response["interaction"].update(
                response_message_id=str(message.id),
                response_message_loading=message.loading,
                response_message_ephemeral=message.ephemeral,
            )
            response["resource"] = {"type": kind, "message": payloads.message(message)}
        else:
            response["resource"] = {"type": kind}
        return 200, response

    @staticmethod
    def _callback_allowed(record: InteractionRecord, kind: int) -> bool:
        allowed = {
            InteractionType.PING: {CallbackType.PONG},
            InteractionType.APPLICATION_COMMAND: {4, 5, 9},
            InteractionType.MESSAGE_COMPONENT: {4, 5, 6, 7, 9},
            InteractionType.AUTOCOMPLETE: {8},
            InteractionType.MODAL_SUBMIT: {4, 5, 6, 7} if record.source_message else {4, 5},
        }[record.type]
        return kind in allowed

    def _apply_callback(
        self,
        record: InteractionRecord,
        kind: int,
        data: dict[str, Any],
        files: list[tuple[str, bytes, str | None]],
    ) -> Message | None:
        if kind == CallbackType.CHANNEL_MESSAGE_WITH_SOURCE:
            record.original = self._new_message(record.channel_id, data, files, record=record)
            return record.original
        if kind == CallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE:
            flags = LOADING | (int(data.get("flags", 0)) & EPHEMERAL)
            record.original = self._new_message(
                record.channel_id, {"flags": flags}, [], record=record
            )
            return record.original
        if kind in (CallbackType.DEFERRED_UPDATE_MESSAGE, CallbackType.UPDATE_MESSAGE):
            record.original = record.source_message
            if kind == CallbackType.UPDATE_MESSAGE and record.original is not None:
                self._edit(record.original, data, files)
            return record.original
        if kind == CallbackType.MODAL:
            record.modal = data
        return None

    def _interaction_for_webhook(self, request: Request) -> InteractionRecord:
        token = request.params["interaction_token"]
        record = self._by_token.get(token)
        if record is None or int(request.params["application_id"]) != self.application_id:
            raise unknown("Webhook", UNKNOWN_WEBHOOK)
        if time.perf_counter() - record.created_at > self.token_lifetime:
            raise DiscordError(401, INVALID_WEBHOOK_TOKEN, "Invalid Webhook Token")
        if record.ack is None:
            raise unknown("Webhook", UNKNOWN_WEBHOOK)
        return record

    def _webhook_message(self, record: InteractionRecord, message_id: str) -> Message:
        if message_id == "@original":
            message = record.original
        else:
            message = next((m for m in record.followups if str(m.id) == message_id), None)
            if (
                message is None
                and record.original is not None
                and str(record.original.id) == message_id
            ):
                message = record.original
        if message is None or message.deleted:
            raise unknown("Message", UNKNOWN_MESSAGE)
        return message

    async def _followup(self, request: Request) -> tuple[int, Any]:
        record = self._interaction_for_webhook(request)
        message = self._new_message(
            record.channel_id, request.json or {}, request.files, record=record
        )
        record.followups.append(message)
        if request.query.get("wait") in ("true", "True", "1"):
            return 200, payloads.message(message)
        return 204, None

    async def _get_webhook_message(self, request: Request) -> tuple[int, Any]:
        record = self._interaction_for_webhook(request)
        return 200, payloads.message(self._webhook_message(record, request.params["message_id"]))

    async def _edit_webhook_message(self, request: Request) -> tuple[int, Any]:
        record = self._interaction_for_webhook(request)
        message = self._webhook_message(record, request.params["message_id"])
        self._edit(message, request.json or {}, request.files)
        return 200, payloads.message(message)

    async def _delete_webhook_message(self, request: Request) -> tuple[int, Any]:
        record = self._interaction_for_webhook(request)
        self._webhook_message(record, request.params["message_id"]).deleted = True
        return 204, None

    # --- REST: channels, messages, DMs ------------------------------------------------------

    def _channel(self, request: Request) -> Channel:
        channel = self.channels.get(int(request.params["channel_id"]))
        if channel is None:
            raise unknown("Channel", UNKNOWN_CHANNEL)
        return channel

    def _check_can_send(self, channel: Channel) -> None:
        if channel.type is ChannelType.DM:
            recipient = self.users[channel.recipient_ids[0]]
            if not recipient.dms_open:
                raise DiscordError(403, CANNOT_DM, "Cannot send messages to this user")
            return
        guild = self.guilds.get(channel.guild_id or 0)
        if guild is None:
            raise unknown("Channel", UNKNOWN_CHANNEL)
        permissions = guild.permissions_in(guild.members[self.bot_user.id], channel)
        if permissions & (VIEW_CHANNEL | SEND_MESSAGES) != VIEW_CHANNEL | SEND_MESSAGES:
            raise DiscordError(403, MISSING_PERMISSIONS, "Missing Permissions")

    async def _get_channel(self, request: Request) -> tuple[int, Any]:
        return 200, payloads.channel(self._channel(request), self.users)

    async def _create_message(self, request: Request) -> tuple[int, Any]:
        channel = self._channel(request)
        self._check_can_send(channel)
        message = self._new_message(channel.id, request.json or {}, request.files)
        return 200, payloads.message(message)

    def _channel_message(self, request: Request) -> Message:
        channel = self._channel(request)
        message = self.messages.get(int(request.params["message_id"]))
        if message is None or message.channel_id != channel.id or message.deleted:
            raise unknown("Message", UNKNOWN_MESSAGE)
        return message

    async def _get_message(self, request: Request) -> tuple[int, Any]:
        return 200, payloads.message(self._channel_message(request))

    async def _edit_message(self, request: Request) -> tuple[int, Any]:
        message = self._channel_message(request)
        if message.author is not self.bot_user or message.webhook_id is not None:
            raise DiscordError(403, 50005, "Cannot edit a message authored by another user")
        self._edit(message, request.json or {}, request.files)
        return 200, payloads.message(message)

    async def _delete_message(self, request: Request) -> tuple[int, Any]:
        self._channel_message(request).deleted = True
        return 204, None

    async def _open_dm(self, request: Request) -> tuple[int, Any]:
        recipient_id = int((request.json or {}).get("recipient_id", 0))
        if recipient_id not in self.users:
            raise unknown("User", UNKNOWN_USER)
        channel = next(
            (c for c in self.channels.values() if c.recipient_ids == (recipient_id,)), None
        )
        if channel is None:
            channel = Channel(self.ids.next(), None, ChannelType.DM, recipient_ids=(recipient_id,))
            self.channels[channel.id] = channel
        return 200, payloads.channel(channel, self.users)

    async def _get_member(self, request: Request) -> tuple[int, Any]:
        guild = self.guilds.get(int(request.params["guild_id"]))
        if guild is None:
            raise DiscordError(403, 50001, "Missing Access")
        member = guild.members.get(int(request.params["user_id"]))
        if member is None:
            raise DiscordError(404, 10007, "Unknown Member")
        return 200, payloads.member(member)

    # --- messages ---------------------------------------------------------------------------

    def _new_message(
        self,
        channel_id: int,
        body: dict[str, Any],
        files: list[tuple[str, bytes, str | None]],
        *,
        record: InteractionRecord | None = None,
    ) -> Message:
        errors = message_errors(body)
        if errors:
            raise DiscordError(400, INVALID_FORM_BODY, "Invalid Form Body", errors)
        loading = int(body.get("flags", 0)) & LOADING
        if not (
            loading or body.get("content") or body.get("embeds") or files or body.get("components")
        ):
            raise DiscordError(400, EMPTY_MESSAGE, "Cannot send an empty message")
        channel = self.channels[channel_id]
        message = Message(
            self.ids.next(),
            channel_id,
            self.bot_user,
            content=body.get("content") or "",
            embeds=list(body.get("embeds") or []),
            components=list(body.get("components") or []),
            attachments=[self._store_attachment(channel_id, File(n, d, t)) for n, d, t in files],
            flags=int(body.get("flags", 0)) & (EPHEMERAL | LOADING | 1 << 2 | 1 << 12 | 1 << 15),
            guild_id=channel.guild_id,
            webhook_id=None if record is None else self.application_id,
            interaction_id=None if record is None else record.id,
        )
        self.messages[message.id] = message
        return message

    def _edit(
        self, message: Message, body: dict[str, Any], files: list[tuple[str, bytes, str | None]]
    ) -> None:
        errors = message_errors(body)
        if errors:
            raise DiscordError(400, INVALID_FORM_BODY, "Invalid Form Body", errors)
        content = body.get("content", message.content) or ""
        embeds = body.get("embeds", message.embeds) or []
        components = body.get("components", message.components) or []
        if not (content or embeds or components or message.attachments or files):
            raise DiscordError(400, EMPTY_MESSAGE, "Cannot send an empty message")
        message.edits.append(body)
        if "content" in body:
            message.content = body["content"] or ""
        if "embeds" in body:
            message.embeds = list(body["embeds"] or [])
        if "components" in body:
            message.components = list(body["components"] or [])
        if "attachments" in body or files:
            keep = {str(a.get("id")) for a in body.get("attachments") or []}
            message.attachments = [a for a in message.attachments if str(a.id) in keep]
            message.attachments += [
                self._store_attachment(message.channel_id, File(n, d, t)) for n, d, t in files
            ]
        message.flags &= ~LOADING
        message.edited_timestamp = now_iso()


def _raise(error: Exception) -> Any:
    raise error


def _submitted(component: dict[str, Any], values: Mapping[str, str]) -> dict[str, Any]:
    """A modal component as the member's client submits it (rows or labels of text inputs)."""
    if component.get("type") == 1:
        return {"type": 1, "components": [_submitted(c, values) for c in component["components"]]}
    if component.get("type") == 18:
        return {"type": 18, "component": _submitted(component["component"], values)}
    custom_id = component.get("custom_id", "")
    return {
        "type": component.get("type", 4),
        "custom_id": custom_id,
        "value": values.get(custom_id, ""),
    }
