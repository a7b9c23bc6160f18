"""Command descriptions and choice names in the member's language, from the gettext catalogs.

Not an extension: :mod:`bot` installs it on the command tree before the sync.
Command, group and option names are never translated (members type them as
documented) and choice values stay the API's strings: only what Discord shows
beside them is localised.
"""

from __future__ import annotations

import discord
from discord import app_commands

from avatarbot.i18n import ENGLISH, Catalog, default_catalog

_Location = app_commands.TranslationContextLocation
TRANSLATED_LOCATIONS = frozenset(
    {
        _Location.command_description,
        _Location.group_description,
        _Location.parameter_description,
        _Location.choice_name,
    }
)


class CatalogTranslator(app_commands.Translator):
    def __init__(self, catalog: Catalog | None = None) -> None:
        self.catalog = catalog or default_catalog()

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        if context.location not in TRANSLATED_LOCATIONS:
            return None
        tag = self.catalog.resolve(locale.value)
        if tag == ENGLISH:
            return None
        return self.catalog.for_locale(tag).lookup(string.message)
