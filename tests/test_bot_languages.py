"""The bot in the member's language and the server's, through SimCord: members whose
Discord client is set to German, Japanese or Korean, and servers with their own language."""

from __future__ import annotations

import discord
import pytest

from cogs.errors import AvatarError
from tests.bot_world import World, outcome
from tests.locale_world import Languages


@pytest.fixture
def languages(world: World, monkeypatch: pytest.MonkeyPatch) -> Languages:
    languages = Languages()
    languages.install(monkeypatch)
    return languages


async def test_a_moderator_reads_admin_replies_and_embeds_in_their_language(
    world: World, languages: Languages
) -> None:
    languages.speak(world.admin, "de")
    enabled = await world.admin.slash(world.channel, "avatar-admin enable")
    assert outcome(enabled).content == "✅ Avatar Bot ist eingeschaltet."

    cooldown = await world.admin.slash(world.channel, "avatar-admin cooldown", seconds=0)
    assert outcome(cooldown).content == "✅ Wartezeit auf aus gesetzt."

    languages.speak(world.admin, "ja")
    shown = await world.admin.slash(world.channel, "avatar-admin show")
    embed = outcome(shown).embeds[0]
    assert embed.title == "Avatar Bot の設定"
    fields = {f.name: f.value for f in embed.fields}
    assert fields["有効"] == "はい"
    assert fields["待ち時間"] == "オフ"

    languages.speak(world.admin, "ko")
    words = await world.admin.slash(world.channel, "avatar-admin words", action="add")
    assert outcome(words).content == "⚠️ Give one or more words, separated by commas."
    assert any(isinstance(getattr(e, "original", e), AvatarError) for e in world.env.errors)


async def test_a_refused_permission_is_explained_in_the_members_language(
    world: World, languages: Languages
) -> None:
    (command,) = [c for c in await world.bot.tree.fetch_commands() if c.name == "avatar-admin"]
    world.guild.set_command_permissions(command, {world.alice: True})
    languages.speak(world.alice, "fr")

    result = await world.alice.slash(world.channel, "avatar-admin disable")

    assert outcome(result).content == (
        "🔒 Cette commande demande l'autorisation **Gérer le serveur**."
    )
    assert any(isinstance(e, discord.app_commands.MissingPermissions) for e in world.env.errors)
