"""The catalogs: complete, faithful to the English texts' fields and markdown, within Discord's
limits; the loader, locale resolution and Babel formatting; the synced, localised schema."""

from __future__ import annotations

import os
import re
import string
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path

import discord
import pytest
from babel.messages.catalog import Catalog as PoCatalog
from babel.messages.catalog import Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract
from babel.messages.pofile import read_po, write_po

from avatar_api import AvatarRequest, PhotoError, ValidationError
from avatar_api.photos import check_photo_size
from avatarbot.i18n import (
    ENGLISH,
    LOCALE_DIR,
    N_,
    SUPPORTED_LOCALES,
    Catalog,
    compile_po,
    for_locale,
    language_name,
    offered_languages,
    po_dir_name,
    resolve_locale,
)
from tests.bot_world import World

POT = LOCALE_DIR / "avatarbot.pot"
# Discord's limits for each kind of text (a msgid's "#. kind:" comment names its kind).
LIMITS = {
    "description": 100,
    "choice": 100,
    "button": 80,
    "modal": 45,
    "title": 256,
    "field-name": 256,
    "field-value": 1024,
    "footer": 2048,
    "message": 2000,
}
# Room left for what a field is filled with (a name, a channel list...): a message with
# fields must still fit when the values are long-ish.
FIELD_ALLOWANCE = 40


def read(path: Path) -> PoCatalog:
    with path.open("rb") as handle:
        return read_po(handle)


def entries(catalog: PoCatalog) -> list[Message]:
    return [m for m in catalog if m.id]


TEMPLATE = read(POT)
TEMPLATE_IDS = {m.id for m in entries(TEMPLATE)}
CATALOGS = {
    tag: read(LOCALE_DIR / po_dir_name(tag) / "LC_MESSAGES" / "avatarbot.po")
    for tag in SUPPORTED_LOCALES
}


# --- the code and the catalog agree ---------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
I18N_SOURCES = ("bot.py", "cogs", "avatarbot", "avatar_api")  # as `make messages` scans
KEYWORDS = {**DEFAULT_KEYWORDS, "N_": None, "N_plural": (1, 2), "locale_str": None}


def marked_in_code(keywords: dict[str, object] = KEYWORDS) -> set[str]:
    found: set[str] = set()
    for source in I18N_SOURCES:
        path = ROOT / source
        files = [path] if path.is_file() else sorted(path.rglob("*.py"))
        for file in files:
            with file.open("rb") as handle:
                for _, message, _, _ in extract("python", handle, keywords=keywords):
                    found.add(message[0] if isinstance(message, tuple) else message)
    return found


# Texts Discord shows beside a command (descriptions, choice names): marked with locale_str.
COMMAND_TEXTS = marked_in_code({"locale_str": None})


def texts(message: Message) -> list[str]:
    return list(message.string) if isinstance(message.string, tuple | list) else [message.string]


def english_texts(message: Message) -> list[str]:
    return list(message.id) if isinstance(message.id, tuple | list) else [message.id]


def fields(text: str) -> set[str]:
    """``{name}`` / ``{name:spec}`` fields for str.format, and %-style ``%(name)s`` ones."""
    brace = {
        f"{name}:{spec}" if spec else name
        for _, name, spec, _ in string.Formatter().parse(text)
        if name is not None
    }
    return brace | set(re.findall(r"%\(\w+\)[sdif]", text))


def kinds(message: Message) -> list[str]:
    """Where a text is shown: a "#. kind:" comment, a command's text, else a message."""
    named = [c.split(":", 1)[1].strip() for c in message.auto_comments if c.startswith("kind:")]
    if message.id in COMMAND_TEXTS:
        named.append("description")
    return named or ["message"]


def limit(message: Message) -> int:
    return min(LIMITS[kind] for kind in kinds(message))


def code_spans(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


def leading_symbol(text: str) -> str:
    """The emoji a message starts with (⚠️, ⏳, ✅, 🔒), which says its tone in every language."""
    return text[:1] if text[:1] and unicodedata.category(text[0]) == "So" else ""


@pytest.mark.parametrize("tag", SUPPORTED_LOCALES)
def test_every_locale_translates_every_message_and_nothing_is_fuzzy(tag: str) -> None:
    catalog = CATALOGS[tag]
    ids = {m.id for m in entries(catalog)}
    assert ids >= TEMPLATE_IDS, f"{tag} lacks {sorted(map(str, TEMPLATE_IDS - ids))[:5]}"
    for message in entries(catalog):
        if message.id not in TEMPLATE_IDS:
            continue
        assert not message.fuzzy, f"{tag}: fuzzy entry for {message.id!r}"
        assert all(t.strip() for t in texts(message)), f"{tag}: empty entry for {message.id!r}"
        assert len(texts(message)) == catalog.num_plurals if message.pluralizable else 1


@pytest.mark.parametrize("tag", SUPPORTED_LOCALES)
def test_translations_keep_the_fields_markdown_and_emoji_of_the_english_text(tag: str) -> None:
    for message in entries(CATALOGS[tag]):
        if message.id not in TEMPLATE_IDS:
            continue
        english = english_texts(message)
        for text in texts(message):
            # A plural's singular may say "1" where English says {count}; every form keeps
            # the fields the plural English text has, except that count.
            expected = fields(english[-1])
            assert fields(text) in (expected, expected - {"count", "jobs"}), (tag, message.id)
            assert code_spans(text) == code_spans(english[-1]), (tag, message.id)
            assert text.count("**") == english[-1].count("**"), (tag, message.id)
            assert text.count("\n") == english[-1].count("\n"), (tag, message.id)
            assert leading_symbol(text) == leading_symbol(english[-1]), (tag, message.id)


def test_every_kind_named_in_the_code_is_known() -> None:
    for message in entries(TEMPLATE):
        assert set(kinds(message)) <= set(LIMITS), message.id


@pytest.mark.parametrize("tag", [ENGLISH, *SUPPORTED_LOCALES])
def test_every_text_fits_discords_limit_for_its_kind(tag: str) -> None:
    catalog = TEMPLATE if tag == ENGLISH else CATALOGS[tag]
    for message in entries(catalog):
        if message.id not in TEMPLATE_IDS:
            continue
        source = next(m for m in entries(TEMPLATE) if m.id == message.id)
        shown = english_texts(message) if tag == ENGLISH else texts(message)
        for text in shown:
            allowance = FIELD_ALLOWANCE * len(fields(text))
            assert len(text) + allowance <= limit(source), (tag, text, limit(source))


def test_the_consent_statement_is_translated_for_every_language() -> None:
    consent = next(m.id for m in entries(TEMPLATE) if str(m.id).startswith("**Before your first"))
    shown = {tag: for_locale(tag).gettext(consent) for tag in SUPPORTED_LOCALES}
    assert all(text != consent for text in shown.values())
    assert len(set(shown.values())) == len(SUPPORTED_LOCALES)


# --- the loader and locale resolution ------------------------------------------------


@pytest.mark.parametrize(
    ("discord_locale", "catalog"),
    [
        ("de", "de"),
        ("fr", "fr"),
        ("es-ES", "es-ES"),
        ("es-419", "es-ES"),
        ("pt-BR", "pt-BR"),
        ("ja", "ja"),
        ("en-US", ENGLISH),
        ("en-GB", ENGLISH),
        ("ko", ENGLISH),
        ("zh-CN", ENGLISH),
        ("", ENGLISH),
        (None, ENGLISH),
    ],
)
def test_discord_locales_resolve_to_a_catalog_or_english(
    discord_locale: str | None, catalog: str
) -> None:
    assert resolve_locale(discord_locale) == catalog
    assert for_locale(discord_locale).locale == catalog


def test_a_member_reads_their_language_and_an_unknown_one_reads_english() -> None:
    message = "Nothing was deleted."
    assert for_locale("de").gettext(message) == "Nichts wurde gelöscht."
    assert for_locale("ja").gettext(message) == "何も削除していません。"
    assert for_locale("ko").gettext(message) == message
    assert for_locale(discord.Locale.korean.value).gettext(message) == message


def test_fields_are_filled_in_and_plurals_follow_the_language() -> None:
    singular, plural = "{count} blocked word.", "{count} blocked words."
    assert for_locale("en-US").ngettext(singular, plural, 1, count=1) == "1 blocked word."
    assert for_locale("en-US").ngettext(singular, plural, 3, count=3) == "3 blocked words."
    assert for_locale("de").ngettext(singular, plural, 3, count=3) == "3 verbotene Wörter."
    assert for_locale("fr").ngettext(singular, plural, 0, count=0) == "0 mot interdit."
    assert for_locale("ja").ngettext(singular, plural, 3, count=3) == "禁止語は 3 語です。"


def test_lazy_texts_render_per_reader_and_nest() -> None:
    text = N_("photo {index}: {problem}", index=2, problem=N_("this photo cannot be read"))
    assert str(text) == "photo 2: this photo cannot be read"
    assert for_locale("de").render(text) == "Foto 2: dieses Foto kann nicht gelesen werden"
    assert for_locale("ko").render(text) == str(text)


def _write_po(directory: Path, tag: str, entries_: list[tuple[str, str, bool]]) -> Path:
    catalog = PoCatalog(locale=po_dir_name(tag))
    for msgid, msgstr, fuzzy in entries_:
        catalog.add(msgid, msgstr, flags=["fuzzy"] if fuzzy else [])
    path = directory / po_dir_name(tag) / "LC_MESSAGES" / "avatarbot.po"
    path.parent.mkdir(parents=True)
    with path.open("wb") as handle:
        write_po(handle, catalog)
    return path


def test_a_corrected_po_file_is_compiled_at_load_and_fuzzy_entries_read_english(
    tmp_path: Path,
) -> None:
    _write_po(tmp_path, "de", [("Cancel", "Abbruch", False), ("Keep them", "Behalt", True)])
    catalog = Catalog(tmp_path)
    german = catalog.for_locale("de")
    assert german.gettext("Cancel") == "Abbruch"
    assert german.gettext("Keep them") == "Keep them"  # fuzzy: never shown
    assert catalog.supported == ("de",)
    assert catalog.for_locale("fr").gettext("Cancel") == "Cancel"  # no fr catalog here


def test_a_new_language_is_one_new_po_file(tmp_path: Path) -> None:
    _write_po(tmp_path, "it", [("Cancel", "Annulla", False)])
    _write_po(tmp_path, "pt-BR", [("Cancel", "Cancelar", False)])
    catalog = Catalog(tmp_path)
    assert catalog.supported == ("it", "pt-BR")
    assert catalog.for_locale("it").gettext("Cancel") == "Annulla"
    assert catalog.for_locale("pt-PT").gettext("Cancel") == "Cancelar"


def test_the_shipped_languages() -> None:
    assert set(SUPPORTED_LOCALES) == {"de", "fr", "es-ES", "pt-BR", "ja"}


def test_a_compiled_catalog_is_used_until_its_po_file_is_newer(tmp_path: Path) -> None:
    po = _write_po(tmp_path, "fr", [("Cancel", "Annuler", False)])
    mo = po.with_suffix(".mo")
    mo.write_bytes(compile_po(po).getvalue())
    assert Catalog(tmp_path).for_locale("fr").gettext("Cancel") == "Annuler"
    corrected = PoCatalog(locale="fr")
    corrected.add("Cancel", "Abandonner")
    with po.open("wb") as handle:
        write_po(handle, corrected)
    later = mo.stat().st_mtime + 10
    os.utime(po, (later, later))
    assert Catalog(tmp_path).for_locale("fr").gettext("Cancel") == "Abandonner"


# --- Babel formatting ------------------------------------------------------------------


def test_numbers_dates_and_relative_times_follow_the_locale() -> None:
    when = datetime(2026, 12, 1, 23, 5, tzinfo=UTC)
    assert for_locale("en-US").number(12345.5) == "12,345.5"
    assert for_locale("de").number(12345.5) == "12.345,5"
    assert for_locale("fr").number(12345.5).replace("\u202f", " ") == "12 345,5"
    assert for_locale("de").datetime(when).startswith("01.12.2026")
    assert for_locale("ja").datetime(when).startswith("2026/12/01")
    assert for_locale("en-US").relative(timedelta(minutes=5)) == "in 5 minutes"
    assert for_locale("de").relative(timedelta(minutes=5)) == "in 5 Minuten"
    assert for_locale("es-ES").relative(timedelta(hours=-2)) == "hace 2 horas"
    assert for_locale("ja").relative(timedelta(minutes=5)) == "5 分後"
    assert for_locale("pt-BR").about(130) == "2 minutos"
    assert for_locale("de").duration(4.25) == "4,2 Sek."
    assert for_locale("ko").number(1234) == "1,234"  # English, like its texts


def test_each_language_is_offered_under_its_own_name() -> None:
    names = {tag: language_name(tag) for tag in (ENGLISH, *SUPPORTED_LOCALES)}
    assert names == {
        ENGLISH: "English",
        "de": "Deutsch",
        "fr": "Français",
        "es-ES": "Español (España)",
        "pt-BR": "Português (Brasil)",
        "ja": "日本語",
    }


# --- the synced schema -------------------------------------------------------------------


LANGUAGE_NAMES = {language_name(tag) for tag in offered_languages()}


def _walk(options: list[discord.app_commands.AppCommand | discord.app_commands.Argument]):
    for option in options:
        yield option
        yield from _walk(getattr(option, "options", []))


async def test_synced_schema_carries_descriptions_and_choice_names_in_every_language(
    world: World,
) -> None:
    commands = await world.bot.tree.fetch_commands()
    described = 0
    for item in _walk(commands):
        assert not item.name_localizations, f"{item.name}: names stay as documented"
        if item.description and item.description != "…":
            described += 1
            localised = {str(k): v for k, v in item.description_localizations.items()}
            assert set(localised) >= set(SUPPORTED_LOCALES), item.name
            for tag, text in localised.items():
                assert 1 <= len(text) <= 100, (item.name, tag, text)
                assert text != item.description or resolve_locale(tag) == ENGLISH
        for choice in getattr(item, "choices", []):
            if choice.name in LANGUAGE_NAMES:
                continue  # a language is offered under its own name, in every language
            names = {str(k): v for k, v in choice.name_localizations.items()}
            assert set(names) >= set(SUPPORTED_LOCALES), (item.name, choice.name)
            assert all(1 <= len(n) <= 100 for n in names.values()), choice.name
    assert described > 40
    generate = next(c for c in commands if c.name == "avatar").options[0]
    pose = next(o for o in generate.options if o.name == "pose")
    half = pose.choices[0]
    assert (half.name, half.value) == ("Half body", "half_body")
    assert half.name_localizations[discord.Locale.german] == "Halbkörper"
    assert half.name_localizations[discord.Locale.japanese] == "上半身"
    assert discord.Locale.korean not in half.name_localizations


def test_photo_and_name_refusals_render_in_the_readers_language() -> None:
    with pytest.raises(PhotoError) as caught:
        check_photo_size(0, index=2)
    assert str(caught.value) == "photo 2: the file is empty — attach the photo again"
    german = for_locale("de").render(caught.value.text)
    assert german == "Foto 2: die Datei ist leer — hänge das Foto erneut an"
    with pytest.raises(ValidationError) as named:
        AvatarRequest.generate(name="x" * 101)
    assert for_locale("ja").render(named.value.text) == (
        "アバターの名前が 101 文字です。100 文字までにしてください"
    )


def test_every_text_marked_in_the_code_is_in_the_catalog() -> None:
    template = {m.id[0] if isinstance(m.id, tuple) else m.id for m in entries(TEMPLATE)}
    missing = sorted(marked_in_code() - template)
    assert not missing, f"run `make messages` and translate: {missing[:5]}"


def test_the_catalog_holds_no_text_the_code_no_longer_marks() -> None:
    template = {m.id[0] if isinstance(m.id, tuple) else m.id for m in entries(TEMPLATE)}
    stale = sorted(template - marked_in_code())
    assert not stale, f"run `make messages`: {stale[:5]}"
