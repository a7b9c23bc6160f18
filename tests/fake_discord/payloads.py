"""The JSON Discord sends, built from the fake's model (shapes as in Discord's API docs)."""

from __future__ import annotations

from typing import Any

from .model import (
    Attachment,
    Channel,
    ChannelType,
    Guild,
    InteractionType,
    Member,
    Message,
    Role,
    User,
)

ATTACHMENT_SIZE_LIMIT = 25 * 1024 * 1024


def user(u: User) -> dict[str, Any]:
    return {
        "id": str(u.id),
        "username": u.name,
        "discriminator": "0",
        "global_name": None if u.bot else u.name,
        "avatar": None,
        "bot": u.bot,
        "system": False,
        "public_flags": 0,
        "flags": 0,
        "banner": None,
        "accent_color": None,
        "avatar_decoration_data": None,
    }


def role(r: Role) -> dict[str, Any]:
    return {
        "id": str(r.id),
        "name": r.name,
        "permissions": str(r.permissions),
        "position": r.position,
        "color": 0,
        "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
        "hoist": False,
        "managed": False,
        "mentionable": False,
        "flags": 0,
        "icon": None,
        "unicode_emoji": None,
    }


def member(m: Member, *, with_user: bool = True) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "roles": [str(r) for r in m.role_ids],
        "nick": m.nick,
        "avatar": None,
        "banner": None,
        "joined_at": m.joined_at,
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "pending": False,
        "flags": 0,
        "communication_disabled_until": None,
    }
    if with_user:
        payload["user"] = user(m.user)
    return payload


def channel(c: Channel, users: dict[int, User] | None = None) -> dict[str, Any]:
    if c.type is ChannelType.DM:
        recipients = [user(users[u]) for u in c.recipient_ids] if users else []
        return {"id": str(c.id), "type": 1, "last_message_id": None, "recipients": recipients}
    payload: dict[str, Any] = {
        "id": str(c.id),
        "type": int(c.type),
        "name": c.name,
        "position": c.position,
        "permission_overwrites": [
            {"id": str(o.target_id), "type": o.type, "allow": str(o.allow), "deny": str(o.deny)}
            for o in c.overwrites
        ],
        "parent_id": str(c.parent_id) if c.parent_id else None,
        "nsfw": False,
        "topic": None,
        "rate_limit_per_user": 0,
        "last_message_id": None,
        "flags": 0,
    }
    if c.guild_id is not None:
        payload["guild_id"] = str(c.guild_id)
    return payload


def guild_create(g: Guild, *, me: Member, with_members: bool) -> dict[str, Any]:
    """GUILD_CREATE: without the GUILD_MEMBERS intent Discord sends only the bot's own member."""
    members = list(g.members.values()) if with_members else [me]
    return {
        "id": str(g.id),
        "name": g.name,
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "banner": None,
        "description": None,
        "owner_id": str(g.owner_id),
        "afk_channel_id": None,
        "afk_timeout": 300,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "mfa_level": 0,
        "nsfw_level": 0,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "premium_progress_bar_enabled": False,
        "preferred_locale": g.locale,
        "system_channel_id": None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "public_updates_channel_id": None,
        "vanity_url_code": None,
        "application_id": None,
        "max_members": 500000,
        "features": [],
        "emojis": [],
        "stickers": [],
        "roles": [role(r) for r in sorted(g.roles.values(), key=lambda r: r.id)],
        "member_count": len(g.members),
        "large": len(g.members) > 250,
        "unavailable": False,
        "lazy": True,
        "joined_at": me.joined_at,
        "members": [member(m) for m in members],
        "channels": [channel(c) for c in g.channels.values()],
        "threads": [],
        "presences": [],
        "voice_states": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
    }


def attachment(a: Attachment) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "id": str(a.id),
        "filename": a.filename,
        "size": a.size,
        "url": a.url,
        "proxy_url": a.url,
        "content_type": a.content_type,
    }
    if a.width is not None:
        payload["width"] = a.width
        payload["height"] = a.height
    return payload


def message(m: Message) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "id": str(m.id),
        "type": 0 if m.interaction_id is None else 20,
        "channel_id": str(m.channel_id),
        "author": user(m.author),
        "content": m.content,
        "timestamp": m.timestamp,
        "edited_timestamp": m.edited_timestamp,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": [attachment(a) for a in m.attachments],
        "embeds": m.embeds,
        "components": m.components,
        "pinned": False,
        "flags": m.flags,
        "nonce": None,
    }
    if m.guild_id is not None:
        payload["guild_id"] = str(m.guild_id)
    if m.webhook_id is not None:
        payload["webhook_id"] = str(m.webhook_id)
    return payload


def interaction(
    *,
    interaction_id: int,
    token: str,
    kind: InteractionType,
    application_id: int,
    data: dict[str, Any],
    guild: Guild | None,
    channel_: Channel,
    actor: Member | User,
    app_permissions: int,
    member_permissions: int,
    message_: Message | None = None,
) -> dict[str, Any]:
    """INTERACTION_CREATE's ``d``, as Discord sends it for a guild or a DM."""
    payload: dict[str, Any] = {
        "id": str(interaction_id),
        "application_id": str(application_id),
        "type": int(kind),
        "data": data,
        "channel_id": str(channel_.id),
        "channel": channel(channel_),
        "token": token,
        "version": 1,
        "app_permissions": str(app_permissions),
        "entitlements": [],
        "entitlement_sku_ids": [],
        "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
    }
    acting_user = actor.user if isinstance(actor, Member) else actor
    payload["locale"] = acting_user.locale
    if guild is not None and isinstance(actor, Member):
        payload["guild_id"] = str(guild.id)
        payload["guild"] = {"id": str(guild.id), "locale": guild.locale, "features": []}
        payload["guild_locale"] = guild.locale
        payload["member"] = {**member(actor), "permissions": str(member_permissions)}
        payload["authorizing_integration_owners"] = {"0": str(guild.id)}
        payload["context"] = 0
    else:
        payload["user"] = user(acting_user)
        payload["authorizing_integration_owners"] = {"0": "0"}
        payload["context"] = 1
    if message_ is not None:
        payload["message"] = message(message_)
    return payload
