"""Texts meant for people, kept as a message and its fields until someone reads them.

The English message is the gettext message id (see :mod:`avatarbot.i18n`, which
renders a :class:`LazyText` in the reader's language); ``str()`` gives the
English text, so the CLI and the logs need nothing more. :func:`N_` also marks
the message for the catalog's extraction (``make messages``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol


class Renderer(Protocol):
    def gettext(self, message: str, /, **params: object) -> str: ...

    def ngettext(self, singular: str, plural: str, n: int, /, **params: object) -> str: ...


@dataclass(frozen=True, slots=True)
class LazyText:
    """A message id and its fields (which may be LazyTexts too), rendered when shown."""

    message: str
    params: Mapping[str, object] = field(default_factory=dict)

    def render(self, translation: Renderer) -> str:
        params = {
            key: value.render(translation) if isinstance(value, LazyText) else value
            for key, value in self.params.items()
        }
        return translation.gettext(self.message, **params)

    def __str__(self) -> str:
        if not self.params:
            return self.message
        return self.message.format(**{key: str(value) for key, value in self.params.items()})


@dataclass(frozen=True, slots=True)
class LazyPlural(LazyText):
    """A message whose wording depends on a count ("1 word" / "3 words")."""

    plural: str = ""
    count: int = 0

    def render(self, translation: Renderer) -> str:
        params = {
            key: value.render(translation) if isinstance(value, LazyText) else value
            for key, value in self.params.items()
        }
        return translation.ngettext(self.message, self.plural, self.count, **params)

    def __str__(self) -> str:
        chosen = self.message if self.count == 1 else self.plural
        return chosen.format(**{key: str(value) for key, value in self.params.items()})


def N_plural(singular: str, plural: str, count: int, /, **params: object) -> LazyPlural:
    """:func:`N_` for a message with a plural form, chosen by ``count`` in each language."""
    return LazyPlural(singular, MappingProxyType(dict(params)), plural, count)


def N_(message: str, /, **params: object) -> LazyText:
    """Mark ``message`` for the catalog and keep it, with its fields, for rendering later."""
    return LazyText(message, MappingProxyType(dict(params)))


def sentences(*texts: LazyText) -> LazyText:
    """Several texts shown as one, each rendered in the reader's language.

    The joining pattern holds only fields, so it needs no entry in the catalog.
    """
    fields = {f"part{i}": text for i, text in enumerate(texts)}
    return LazyText(" ".join(f"{{{name}}}" for name in fields), MappingProxyType(fields))
