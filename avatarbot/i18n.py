"""The bot's languages: gettext catalogs, locale resolution and Babel formatting.

English texts are the message ids; ``locales/<locale>/LC_MESSAGES/avatarbot.po``
holds each other language. A ``.po`` file is compiled with Babel when the
catalog loads (in memory; a ``.mo`` from ``make compile`` is used when it is
newer), so a corrected translation takes effect on the next start. Nothing
here knows Discord: locales are Discord's tags (``de``, ``pt-BR``, ``en-US``…)
passed in as strings.

Message ids use ``str.format`` fields (``{name}``); translations keep the same
fields. Texts whose wording is decided far from where they are shown (a policy
refusal, an error) travel as :class:`LazyText` and are rendered per reader.
"""

from __future__ import annotations

import gettext as gettext_module
import io
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime, format_timedelta
from babel.lists import format_list
from babel.messages.catalog import Catalog as BabelCatalog
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent
from babel.units import format_unit

from avatar_api.text import N_, LazyText

log = logging.getLogger(__name__)

DOMAIN = "avatarbot"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locales"
ENGLISH = "en-US"
# Discord's tags for the languages with a catalog; every other locale reads English.


def discover_locales(directory: Path, domain: str = DOMAIN) -> tuple[str, ...]:
    """Discord's tags for the languages that have a catalog: ``pt_BR/`` is ``pt-BR``.

    A new language is one new ``<locale>/LC_MESSAGES/avatarbot.po``: nothing else lists them.
    """
    if not directory.is_dir():
        return ()
    found = (
        path.parent.parent.name.replace("_", "-")
        for path in directory.glob(f"*/LC_MESSAGES/{domain}.po")
    )
    return tuple(sorted(tag for tag in found if tag != ENGLISH))


def pick_locale(tag: str | None, supported: Iterable[str]) -> str:
    """Exact match first, then the same language (``es-419`` reads ``es-ES``), else English."""
    if not tag:
        return ENGLISH
    tag = str(tag)
    supported = tuple(supported)
    if tag in supported:
        return tag
    language = tag.split("-", 1)[0].lower()
    for candidate in supported:
        if candidate.split("-", 1)[0].lower() == language:
            return candidate
    return ENGLISH


SUPPORTED_LOCALES: tuple[str, ...] = discover_locales(LOCALE_DIR)


def offered_languages() -> tuple[str, ...]:
    """The languages a server may choose for its posts: English and every catalog's."""
    return (ENGLISH, *SUPPORTED_LOCALES)


def resolve_locale(tag: str | None) -> str:
    """The catalog Discord's locale ``tag`` reads; ``ko``, ``en-GB`` or nothing read English."""
    return pick_locale(tag, SUPPORTED_LOCALES)


def babel_locale(tag: str) -> Locale:
    try:
        return Locale.parse(tag, sep="-")
    except (ValueError, UnknownLocaleError):
        return Locale.parse("en_US")


def language_name(tag: str) -> str:
    """A language's own name for itself ("Deutsch", "日本語"), for choosing it."""
    locale = babel_locale("en" if tag == ENGLISH else tag)
    name = locale.get_display_name(locale) or tag
    return name[:1].upper() + name[1:]


class Translation:
    """One language: its messages and its ways of writing numbers, dates and durations."""

    def __init__(
        self,
        tag: str,
        messages: gettext_module.NullTranslations,
        known: frozenset[str] = frozenset(),
    ) -> None:
        self.locale = tag
        self.babel = babel_locale(tag)
        self._messages = messages
        self._known = known

    def gettext(self, message: str, /, **params: object) -> str:
        """The translation of ``message``; given fields are filled in with ``str.format``."""
        text = self._messages.gettext(message)
        return text.format(**params) if params else text

    def ngettext(self, singular: str, plural: str, n: int, /, **params: object) -> str:
        text = self._messages.ngettext(singular, plural, n)
        return text.format(**params) if params else text

    def render(self, text: LazyText | str) -> str:
        """A :class:`LazyText` in this language; a plain string as it is."""
        return text.render(self) if isinstance(text, LazyText) else text

    def lookup(self, message: str) -> str | None:
        """This catalog's own translation of ``message``; None where it has none."""
        return self._messages.gettext(message) if message in self._known else None

    def number(self, value: float) -> str:
        return format_decimal(value, locale=self.babel)

    def percent(self, value: float) -> str:
        return format_percent(value, locale=self.babel)

    def listing(self, items: Sequence[str]) -> str:
        """ "1, 2 and 4" / "1, 2 und 4" / "1、2、4"."""
        return format_list(list(items), locale=self.babel)

    def datetime(self, value: datetime, fmt: str = "medium") -> str:
        """A date and time as this language writes it, in UTC (Discord has no member time zone)."""
        return format_datetime(value, fmt, tzinfo=value.tzinfo, locale=self.babel)

    def relative(self, delta: timedelta) -> str:
        """ "in 5 minutes" / "vor 2 Stunden"."""
        return format_timedelta(delta, add_direction=True, locale=self.babel)

    def duration(self, seconds: float) -> str:
        """A measured duration: "12 s", "1.5 s", "3 min" in this language's short units."""
        if seconds < 60:
            shown = round(seconds, 1) if seconds < 10 else round(seconds)
            return format_unit(shown, "duration-second", length="short", locale=self.babel)
        return format_timedelta(
            timedelta(seconds=seconds), format="short", threshold=1.0, locale=self.babel
        )

    def about(self, seconds: float) -> str:
        """An estimate: "2 minutes", rounded as people say it."""
        return format_timedelta(timedelta(seconds=seconds), locale=self.babel)


class Catalog:
    """Every language's messages, loaded once; :meth:`for_locale` picks one for a reader."""

    def __init__(self, directory: Path = LOCALE_DIR, *, domain: str = DOMAIN) -> None:
        self.directory = directory
        self.domain = domain
        self.supported = discover_locales(directory, domain)
        self._translations: dict[str, Translation] = {
            ENGLISH: Translation(ENGLISH, gettext_module.NullTranslations())
        }
        for tag in self.supported:
            self._translations[tag] = self._load(tag)

    @property
    def locales(self) -> tuple[str, ...]:
        """English first, then every language with a catalog."""
        return (ENGLISH, *self.supported)

    def resolve(self, tag: str | None) -> str:
        return pick_locale(tag, self.supported)

    def for_locale(self, tag: str | None) -> Translation:
        return self._translations[self.resolve(tag)]

    def po_path(self, tag: str) -> Path:
        return self.directory / po_dir_name(tag) / "LC_MESSAGES" / f"{self.domain}.po"

    def _load(self, tag: str) -> Translation:
        po = self.po_path(tag)
        mo = po.with_suffix(".mo")
        if mo.is_file() and mo.stat().st_mtime >= po.stat().st_mtime:
            with mo.open("rb") as handle:
                catalog = read_mo(handle)
        else:
            with po.open("rb") as handle:
                catalog = read_po(handle)
        return Translation(
            tag, gettext_module.GNUTranslations(compile_catalog(catalog)), known_ids(catalog)
        )


def compile_catalog(catalog: BabelCatalog) -> io.BytesIO:
    """A catalog compiled in memory (fuzzy entries left out, as gettext does)."""
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return buffer


def compile_po(po: Path) -> io.BytesIO:
    with po.open("rb") as handle:
        return compile_catalog(read_po(handle))


def known_ids(catalog: BabelCatalog) -> frozenset[str]:
    """The message ids with a usable translation (a plural by its singular)."""
    return frozenset(
        message.id[0] if isinstance(message.id, tuple | list) else message.id
        for message in catalog
        if message.id and message.string and not message.fuzzy
    )


def po_dir_name(tag: str) -> str:
    """Discord's ``pt-BR`` is gettext's ``pt_BR``."""
    return tag.replace("-", "_")


_default: Catalog | None = None


def default_catalog() -> Catalog:
    """The catalog under ``locales/``, loaded on first use and shared."""
    global _default
    if _default is None:
        _default = Catalog()
    return _default


def english() -> Translation:
    return default_catalog().for_locale(ENGLISH)


def for_locale(tag: str | None) -> Translation:
    return default_catalog().for_locale(tag)


__all__ = [
    "ENGLISH",
    "N_",
    "SUPPORTED_LOCALES",
    "Catalog",
    "LazyText",
    "Translation",
    "for_locale",
    "language_name",
    "resolve_locale",
]
