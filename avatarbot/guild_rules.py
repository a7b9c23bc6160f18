"""A server's settings: their limits, their checks and their normalisation, in one place.

Plain functions and constants, no Discord and no I/O: the admin cog takes its
option ranges and list limits from here, the store validates every update with
:func:`validate_changes`, and the policy folds text with :func:`normalize`.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Iterable, Mapping

from avatar_api.preflight import Strictness

from .i18n import offered_languages
from .store.base import GuildSettings

MAX_COOLDOWN_SECONDS = 86_400
MAX_USER_DAILY_QUOTA = 10_000
MAX_GUILD_DAILY_QUOTA = 100_000
MAX_LIST_ENTRIES = 25  # allowed channels, required roles
MAX_BLOCKED_WORDS = 200
MAX_WORDS_INPUT = 500  # characters of one comma-separated list an admin types
MAX_BLOCK_REASON = 200

_SETTINGS_FIELDS = frozenset(f.name for f in dataclasses.fields(GuildSettings)) - {"guild_id"}
_BOOL_FIELDS = frozenset({"enabled", "uploads_allowed"})
_COUNT_FIELDS = frozenset({"cooldown_seconds", "user_daily_quota", "guild_daily_quota"})
_ID_SET_FIELDS = frozenset({"allowed_channel_ids", "required_role_ids"})
_MAX_INT = 2**31 - 1  # what a stored count may hold


def validate_changes(changes: Mapping[str, object]) -> dict[str, object]:
    """Check names and values of a settings update; raise ValueError on anything wrong."""
    unknown = sorted(set(changes) - _SETTINGS_FIELDS)
    if unknown:
        raise ValueError(f"unknown guild setting(s): {', '.join(unknown)}")
    return {name: _normalize_setting(name, value) for name, value in changes.items()}


def _normalize_setting(name: str, value: object) -> object:
    if name in _BOOL_FIELDS:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false")
        return value
    if name in _COUNT_FIELDS:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{name} must be a whole number")
        if not 0 <= value <= _MAX_INT:
            raise ValueError(f"{name} must be between 0 and {_MAX_INT}")
        return value
    if name == "log_channel_id":
        if value is not None and not _is_snowflake(value):
            raise ValueError("log_channel_id must be a channel id or None")
        return value
    if name in _ID_SET_FIELDS:
        return frozenset(_ids(name, value))
    if name == "blocked_words":
        return tuple(dict.fromkeys(w for w in _strings(name, value) if w))
    if name == "language":
        if value is not None and value not in offered_languages():
            raise ValueError(f"language must be one of {', '.join(offered_languages())} or None")
        return value
    if name == "photo_strictness":
        if not isinstance(value, str) or value not in set(Strictness):
            raise ValueError(f"photo_strictness must be one of {', '.join(Strictness)}")
        return Strictness(value)
    return frozenset(w for w in _strings(name, value) if w)  # disabled_checks


def _ids(name: str, value: object) -> list[int]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ValueError(f"{name} must be a collection of ids")
    items = list(value)
    if not all(_is_snowflake(i) for i in items):
        raise ValueError(f"{name} must hold only Discord ids")
    return items


def _is_snowflake(value: object) -> bool:
    """A Discord id: a positive integer that fits a signed 64-bit column."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63


def _strings(name: str, value: object) -> list[str]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ValueError(f"{name} must be a collection of strings")
    items = list(value)
    if any(not isinstance(i, str) for i in items):
        raise ValueError(f"{name} must hold only strings")
    return [i.strip() for i in items]


_DROPPED_CATEGORIES = frozenset({"Cf", "Cc", "Mn"})


def normalize(text: str) -> str:
    """Fold the tricks used to slip a word past a filter.

    NFKD folds full-width and styled letters and splits accented letters into
    letter and marks; casefold folds case; combining marks, format characters
    (zero-width spaces and joiners, bidi overrides) and controls are dropped.
    Decomposing first matters: NFKC would fuse "a" + U+0301 into "á", and that
    mark would survive. NFC at the end recomposes what is left (Hangul, Indic
    vowel signs), so the result is stable: ``normalize(normalize(t)) == normalize(t)``.
    """
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    kept = "".join(c for c in folded if unicodedata.category(c) not in _DROPPED_CATEGORIES)
    return " ".join(unicodedata.normalize("NFC", kept).split())


def normalize_blocked_words(words: str) -> tuple[str, ...]:
    """Parse an admin's comma-separated list into distinct, normalised words."""
    seen: dict[str, None] = {}
    for raw in words.split(","):
        word = normalize(raw)
        if word:
            seen.setdefault(word, None)
    return tuple(seen)
