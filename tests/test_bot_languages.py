"""The bot in the member's language and the server's, through SimCord: members whose
Discord client is set to German, Japanese or Korean, and servers with their own language."""

from __future__ import annotations

from datetime import timedelta

import discord
import pytest

from avatarbot.i18n import for_locale
from cogs.delivery import DONE_TEXT
from cogs.errors import AvatarError
from tests.bot_world import World, face_photo, outcome, restart
from tests.fake_agent_ai import Reply
from tests.locale_world import Languages, guild_in


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


QUEUED = {
    "de": "⏳ Du bist Nr. 1 in der Warteschlange (Auftrag #1).",
    "ja": "⏳ 順番待ちの 1 番目です（作成 #1）。",
    "ko": "⏳ You are #1 in line (job #1).",
}
BUSY = {
    "de": "⚠️ Du hast schon einen Avatar in Arbeit. Warte, bis er fertig ist, "
    "und versuche es dann erneut.",
    "ja": "⚠️ 作成中のアバターがすでにあります。終わるまで待ってから、もう一度お試しください。",
    "ko": "⚠️ You already have an avatar in the works. Wait for it to finish, then try again.",
}
DONE = {
    "de": "✅ Fertig: Die Gruppen-ID deines Avatars steht im Kanal.",
    "ja": "✅ 完了: アバターのグループ ID をチャンネルに投稿しました。",
    "ko": "✅ Done: your avatar's group id is posted in the channel.",
}
FAILED = {
    "de": ("Dein Avatar konnte nicht erstellt werden", "Modus", "generieren"),
    "ja": ("アバターを作成できませんでした", "モード", "生成"),
    "ko": ("Your avatar could not be created", "Mode", "generate"),
}


async def first_upload(world: World):
    """Alice's first /avatar upload: it answers with the consent statement."""
    return await world.alice.slash(
        world.channel, "avatar upload", photo1=("me.jpg", face_photo("JPEG"))
    )


@pytest.mark.parametrize("locale", ["de", "ja", "ko"])
async def test_a_member_reads_the_queue_a_refusal_and_the_result_in_their_language(
    world: World, languages: Languages, locale: str
) -> None:
    languages.speak(world.alice, locale)
    await world.bot.store.pause_dispatch(world.bot.clock() + timedelta(seconds=60))

    queued = await world.alice.slash(world.channel, "avatar generate", name="Ada")
    assert queued.response.content == QUEUED[locale]
    busy = await world.alice.slash(world.channel, "avatar generate")
    assert busy.ephemeral
    assert busy.response.content == BUSY[locale]

    await world.env.advance_time(90)
    assert world.fake.calls == 1
    assert queued.response.content == DONE[locale]
    public = outcome(queued)
    assert not public.ephemeral  # the channel reads the server's language: English here
    assert public.embeds[0].title == "Your avatar is on its way"

    world.fake.script(Reply(status=401, body={}))
    await world.env.advance_time(31)  # the server's cooldown
    failed = await world.alice.slash(world.channel, "avatar generate")
    embed = outcome(failed).embeds[0]
    title, mode, generate = FAILED[locale]
    assert outcome(failed).ephemeral
    assert embed.title == title
    assert {f.name: f.value for f in embed.fields}[mode] == generate


async def test_the_consent_statement_its_buttons_and_the_upload_result_are_in_japanese(
    world: World, languages: Languages
) -> None:
    languages.speak(world.alice, "ja")

    asked = await first_upload(world)

    assert asked.response.content.startswith("**初めてのアップロードの前に**\n")
    assert "**写真があなた自身のもの**" in asked.response.content
    assert world.fake.calls == 0
    accepted = await world.alice.click(
        asked.response, label="自分の写真です / 本人の同意があります"
    )
    assert world.fake.calls == 1
    result = outcome(accepted)
    assert result.ephemeral  # an upload's result stays private: the member's language
    assert result.embeds[0].title == "アバターを作成中です"
    fields = {f.name: f.value for f in result.embeds[0].fields}
    assert "grp_000001" in fields["グループ ID"]


async def test_a_german_member_can_decline_with_the_german_button(
    world: World, languages: Languages
) -> None:
    languages.speak(world.alice, "de")
    asked = await first_upload(world)
    declined = await world.alice.click(asked.response, label="Abbrechen")
    assert declined.response.content == "Abgebrochen; nichts wurde gesendet."
    assert world.fake.calls == 0


async def test_public_posts_and_the_log_use_the_servers_discord_language(
    world: World, languages: Languages
) -> None:
    guild = guild_in(world.env, "de")
    channel = guild.create_text_channel("avatare")
    log_channel = guild.create_text_channel("protokoll")
    mods = guild.create_role("Mods", permissions=discord.Permissions(manage_guild=True))
    mod = languages.speak(guild.add_member(world.env.create_user("moni"), roles=[mods]), "en-US")
    member = languages.speak(guild.add_member(world.env.create_user("kenji")), "ja")
    await mod.slash(channel, "avatar-admin log-channel", channel=log_channel)

    result = await member.slash(channel, "avatar generate", name="Ken")

    assert result.response.content == DONE["ja"]  # the member's own language
    public = outcome(result)
    assert not public.ephemeral
    assert public.content == f"Neuer Avatar von <@{member.id}>:"
    assert public.embeds[0].title == "Dein Avatar ist unterwegs"
    (entry,) = [m for m in log_channel.history() if m.embeds]
    assert entry.embeds[0].title == "Avatar-Auftrag #1: erfolgreich"
    assert {f.name for f in entry.embeds[0].fields} >= {"Mitglied", "Kanal", "Modus"}


async def test_avatar_admin_language_sets_the_language_of_public_posts(
    world: World, languages: Languages
) -> None:
    languages.speak(world.admin, "de")
    chosen = await world.admin.slash(world.channel, "avatar-admin language", locale="ja")
    assert outcome(chosen).content == (
        "✅ Öffentliche Beiträge und der Protokollkanal sind jetzt auf 日本語."
    )
    assert (await world.bot.store.get_guild_settings(world.guild.id)).language == "ja"

    languages.speak(world.alice, "fr")
    result = await world.alice.slash(world.channel, "avatar generate")
    assert result.response.content.startswith("✅ Terminé")  # the member reads French
    public = outcome(result)
    assert public.content == f"{world.alice.mention} さんの新しいアバター:"
    assert public.embeds[0].title == "アバターを作成中です"

    shown = await world.admin.slash(world.channel, "avatar-admin show")
    assert {f.name: f.value for f in outcome(shown).embeds[0].fields}["Sprache"] == "日本語"

    back = await world.admin.slash(world.channel, "avatar-admin language", locale="server")
    assert "Discord-Sprache des Servers (English)" in outcome(back).content
    assert (await world.bot.store.get_guild_settings(world.guild.id)).language is None
    shown = await world.admin.slash(world.channel, "avatar-admin show")
    fields = {f.name: f.value for f in outcome(shown).embeds[0].fields}
    assert fields["Sprache"] == "English (die Discord-Sprache des Servers)"


async def test_the_language_choice_offers_each_language_under_its_own_name(world: World) -> None:
    (admin,) = [c for c in await world.bot.tree.fetch_commands() if c.name == "avatar-admin"]
    (language,) = [o for o in admin.options if o.name == "language"]
    (locale,) = language.options
    assert [(c.name, c.value) for c in locale.choices] == [
        ("The server's Discord language", "server"),
        ("English", "en-US"),
        ("Deutsch", "de"),
        ("Español (España)", "es-ES"),
        ("Français", "fr"),
        ("日本語", "ja"),
        ("Português (Brasil)", "pt-BR"),
    ]
    assert locale.choices[0].name_localizations[discord.Locale.german] == (
        "Die Discord-Sprache des Servers"
    )


async def test_an_outcome_told_after_a_restart_is_in_the_members_language(
    world: World, languages: Languages
) -> None:
    languages.speak(world.alice, "pt-BR")
    await world.bot.store.pause_dispatch(world.bot.clock() + timedelta(minutes=2))
    asked = await world.alice.slash(world.channel, "avatar generate", name="Kept")

    await restart(world)
    await world.env.advance_time(180)

    # Still within the interaction's 15 minutes: the restarted process answers in it,
    # in the member's language (kept with the job), not by DM.
    assert asked.response.content == for_locale("pt-BR").render(DONE_TEXT)
    assert not [m for m in world.alice.user.dm_channel.history() if m.embeds]


async def test_an_outcome_told_by_dm_after_the_interaction_is_in_the_members_language(
    world: World, languages: Languages
) -> None:
    languages.speak(world.alice, "pt-BR")
    await world.bot.store.pause_dispatch(world.bot.clock() + timedelta(minutes=20))
    await world.alice.slash(world.channel, "avatar generate", name="Kept")

    await restart(world)
    await world.env.advance_time(20 * 60 + 30)

    (dm,) = [m for m in world.alice.user.dm_channel.history() if m.embeds]
    assert dm.content == "Aqui está o resultado do seu pedido de avatar:"
    assert dm.embeds[0].title == "Seu avatar está a caminho"


async def test_a_jobs_buttons_speak_the_servers_and_the_members_language(
    world: World, languages: Languages
) -> None:
    """A public post's buttons read the server's language; the presser reads their own."""
    await world.admin.slash(world.channel, "avatar-admin language", locale="fr")
    languages.speak(world.alice, "de")
    result = await world.alice.slash(world.channel, "avatar generate", name="Nova")
    post = outcome(result)
    assert [b["label"] for row in post.components for b in row["components"]] == [
        "Relancer",
        "Modifier",
        "Supprimer",
    ]
    assert "HeyGen" in post.embeds[0].description

    shown = await world.alice.click(post, label="Modifier")
    assert shown.modal is not None
    assert shown.modal["title"] == "Bearbeiten und neu erstellen"
    assert shown.modal["components"][0]["content"].startswith("**Das bleibt, wie es war:**")

    bob = world.member("bob")
    languages.speak(bob, "ja")
    refused = await bob.click(post, label="Relancer")
    assert refused.response.content == (
        "⚠️ このボタンは、このアバターを依頼したメンバーだけが使えます。"
    )
