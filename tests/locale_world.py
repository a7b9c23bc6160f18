"""Members and servers with a language, as Discord reports them to the bot.

Discord puts the member's language (``locale``) and the server's (``guild_locale``,
the server's preferred locale) on every interaction; SimCord always sends
``en-US`` for both. :class:`Languages` patches SimCord's interaction payload so
that each member's interactions carry the locale the test gave them and the
server's carries its preferred locale, as Discord does.
"""

from __future__ import annotations

from typing import Any

import pytest
import simcord
import simcord.interactions

DISCORD_DEFAULT_LOCALE = "en-US"


class Languages:
    def __init__(self) -> None:
        self._members: dict[int, str] = {}

    def speak(self, member: simcord.MemberActor, locale: str) -> simcord.MemberActor:
        """From now on, ``member``'s Discord client is set to ``locale``."""
        self._members[member.id] = locale
        return member

    def locale_of(self, user_id: int) -> str:
        return self._members.get(user_id, DISCORD_DEFAULT_LOCALE)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original = simcord.interactions.base_payload

        def base_payload(backend: Any, **fields: Any) -> tuple[Any, dict[str, Any]]:
            record, payload = original(backend, **fields)
            payload["locale"] = self.locale_of(fields["user_id"])
            guild_id = fields.get("guild_id")
            if guild_id is not None:
                payload["guild_locale"] = backend.get_guild(guild_id).preferred_locale
            return record, payload

        monkeypatch.setattr(simcord.interactions, "base_payload", base_payload)


def guild_in(env: simcord.Env, locale: str, name: str = "Club") -> simcord.GuildHandle:
    """A server whose Discord language (Server Settings → Community) is ``locale``."""
    return env.create_guild(name=name, preferred_locale=locale)
