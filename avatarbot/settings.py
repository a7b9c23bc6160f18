"""Settings from the environment (and ``.env``, which the real environment overrides)."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from dotenv import dotenv_values, find_dotenv

from avatar_api.client import DEFAULT_BASE_URL, DEFAULT_TIMEOUT, timeout_from_text

from .store.url import Backend, StoreConfigError, parse_database_url

DEFAULT_DATABASE_URL = "sqlite:///data/avatarbot.db"
DEFAULT_METRICS_HOST = "127.0.0.1"
_DISCORD_TOKEN = re.compile(r"^[A-Za-z0-9_\-]{20,}\.[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{20,}$")
_HELP = {
    "DISCORD_TOKEN": "copy it from https://discord.com/developers/applications "
    "(your app -> Bot -> Reset Token)",
    "AGENT_AI_TOKEN": "create one at https://agent.ai/user/integrations#api",
    "AGENT_AI_BASE_URL": "an http(s) URL such as https://api-lr.agent.ai/v1",
    "DATABASE_URL": "sqlite:///path/to/file.db or postgresql://user@host:port/db",
    "DISCORD_DEV_GUILD_ID": "a server id (right-click the server with Developer Mode on)",
    "LOG_LEVEL": "one of DEBUG, INFO, WARNING, ERROR",
    "SHARD_COUNT": "the number of Discord shards over all processes, a whole number from 1",
    "SHARD_IDS": "the shards this process runs, such as 0,1 or 0-3, each below SHARD_COUNT "
    "(several processes share one PostgreSQL DATABASE_URL)",
    "METRICS_PORT": "a TCP port from 1 to 65535 for /metrics and /healthz, or unset for none",
    "METRICS_HOST": "the address to serve /metrics and /healthz on, such as 127.0.0.1 or 0.0.0.0",
    "AGENT_AI_TIMEOUT": f"seconds to wait for one agent.ai answer, e.g. {DEFAULT_TIMEOUT:g}",
}
MAX_SHARD_COUNT = 100_000


class SettingsError(Exception):
    """A missing or malformed variable. The message names it and never holds its value."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable} {problem}: {_HELP[variable]} (in the environment or .env)")
        self.variable = variable


@dataclass(frozen=True, slots=True)
class Settings:
    discord_token: str = field(repr=False)
    agent_ai_token: str = field(repr=False)
    agent_ai_base_url: str = DEFAULT_BASE_URL
    database_url: str = DEFAULT_DATABASE_URL
    dev_guild_id: int | None = None
    log_level: int = logging.INFO
    shard_count: int | None = None
    """None: Discord's recommended count, every shard in this process."""
    shard_ids: tuple[int, ...] | None = None
    """None: every shard of ``shard_count``."""
    metrics_port: int | None = None  # None: no port opened; 0 (tests): any free port
    metrics_host: str = DEFAULT_METRICS_HOST
    agent_ai_timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the environment (over ``.env``); raise :class:`SettingsError` on the first fault."""
        env = dict(environ) if environ is not None else load_environment()
        database_url = _database_url(env.get("DATABASE_URL", ""))
        shard_count = _shard_count(env.get("SHARD_COUNT", ""))
        return cls(
            discord_token=_discord_token(env.get("DISCORD_TOKEN", "")),
            agent_ai_token=_agent_ai_token(env.get("AGENT_AI_TOKEN", "")),
            agent_ai_base_url=_base_url(env.get("AGENT_AI_BASE_URL", "")),
            database_url=database_url,
            dev_guild_id=_guild_id(env.get("DISCORD_DEV_GUILD_ID", "")),
            log_level=_log_level(env.get("LOG_LEVEL", "")),
            shard_count=shard_count,
            shard_ids=_shard_ids(env.get("SHARD_IDS", ""), shard_count, database_url),
            metrics_port=_metrics_port(env.get("METRICS_PORT", "")),
            metrics_host=_metrics_host(env.get("METRICS_HOST", "")),
            agent_ai_timeout=_agent_ai_timeout(env.get("AGENT_AI_TIMEOUT", "")),
        )


def load_environment() -> dict[str, str]:
    """``.env`` from the working directory, overridden by the real environment."""
    from_file = {k: v for k, v in dotenv_values(find_dotenv(usecwd=True)).items() if v is not None}
    return {**from_file, **os.environ}


def _discord_token(value: str) -> str:
    token = value.strip()
    if not token:
        raise SettingsError("DISCORD_TOKEN", "is not set")
    if not _DISCORD_TOKEN.match(token):
        raise SettingsError("DISCORD_TOKEN", "does not look like a Discord bot token")
    return token


def _agent_ai_token(value: str) -> str:
    token = value.strip()
    if not token:
        raise SettingsError("AGENT_AI_TOKEN", "is not set")
    if any(c.isspace() for c in token) or not token.isprintable():
        raise SettingsError("AGENT_AI_TOKEN", "holds spaces or control characters")
    return token


def _base_url(value: str) -> str:
    url = value.strip() or DEFAULT_BASE_URL
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed or out-of-range port
    except ValueError:
        raise SettingsError("AGENT_AI_BASE_URL", "is not an http(s) URL") from None
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise SettingsError("AGENT_AI_BASE_URL", "is not an http(s) URL")
    return url.rstrip("/")


def _database_url(value: str) -> str:
    """Checked by the store's own parser, so both accept exactly the same URLs."""
    url = value.strip() or DEFAULT_DATABASE_URL
    try:
        parse_database_url(url)
    except StoreConfigError as error:
        raise SettingsError("DATABASE_URL", f"cannot be used ({error})") from None
    return url


def _guild_id(value: str) -> int | None:
    value = value.strip()
    if not value:
        return None
    if not (value.isascii() and value.isdigit()) or not 0 < int(value) < 2**64:
        raise SettingsError("DISCORD_DEV_GUILD_ID", "is not a server id")
    return int(value)


def _log_level(value: str) -> int:
    name = value.strip().upper() or "INFO"
    level = logging.getLevelNamesMapping().get(name)
    if level is None:
        raise SettingsError("LOG_LEVEL", "is not a logging level")
    return level


def _shard_count(value: str) -> int | None:
    value = value.strip()
    if not value:
        return None
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_SHARD_COUNT:
        raise SettingsError("SHARD_COUNT", "is not a whole number from 1")
    return int(value)


def _shard_ids(value: str, shard_count: int | None, database_url: str) -> tuple[int, ...] | None:
    value = value.strip()
    if not value:
        return None
    if shard_count is None:
        raise SettingsError("SHARD_IDS", "is set but SHARD_COUNT is not")
    if parse_database_url(database_url).backend is not Backend.POSTGRESQL:
        raise SettingsError("SHARD_IDS", "needs a postgresql:// DATABASE_URL, not SQLite")
    ids: list[int] = []
    for part in value.split(","):
        ids.extend(_shard_range(part.strip(), shard_count))
    if len(set(ids)) != len(ids):
        raise SettingsError("SHARD_IDS", "names a shard twice")
    return tuple(sorted(ids))


def _shard_range(part: str, shard_count: int) -> range:
    """One item of ``SHARD_IDS``: ``3`` or ``0-3`` (inclusive)."""
    first, dash, last = part.partition("-")
    bounds = (first, last) if dash else (first, first)
    if not all(b.strip().isascii() and b.strip().isdigit() for b in bounds):
        raise SettingsError("SHARD_IDS", f"has {part[:20]!r}, which is neither a shard nor a range")
    low, high = (int(b) for b in bounds)
    if low > high:
        raise SettingsError("SHARD_IDS", f"has the range {part[:20]!r}, which runs backwards")
    if high >= shard_count:
        raise SettingsError("SHARD_IDS", f"names shard {high}, but SHARD_COUNT is {shard_count}")
    return range(low, high + 1)


def _metrics_port(value: str) -> int | None:
    value = value.strip()
    if not value:
        return None
    if not (value.isascii() and value.isdigit()) or not 0 < int(value) < 65536:
        raise SettingsError("METRICS_PORT", "is not a port number")
    return int(value)


def _metrics_host(value: str) -> str:
    host = value.strip() or DEFAULT_METRICS_HOST
    if not host.isascii() or not host.isprintable() or any(c in host for c in " /?#@"):
        raise SettingsError("METRICS_HOST", "is not a host name or address")
    return host


def _agent_ai_timeout(value: str) -> float:
    try:
        return timeout_from_text(value)
    except ValueError:
        raise SettingsError("AGENT_AI_TIMEOUT", "is not a positive number of seconds") from None
