"""Logging set-up: one format, and a filter that keeps secrets out of every record."""

from __future__ import annotations

import logging
from collections.abc import Iterable

REDACTED = "[redacted]"
LOG_FORMAT = "%(asctime)s %(levelname)-8s %(name)s: %(message)s"


class SecretFilter(logging.Filter):
    """Replace known secrets in a record's rendered message, arguments and traceback.

    Defence in depth: no code logs a token on purpose, but a library might echo one.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = tuple(s for s in secrets if s and len(s) >= 8)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args = self._scrub(message), None
        if record.exc_text:
            record.exc_text = self._scrub(record.exc_text)
        return True

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text


def setup_logging(level: int, *, secrets: Iterable[str] = ()) -> logging.Handler:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(SecretFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Both echo request payloads at DEBUG: member-written text has no place in the log.
    for chatty in ("discord.http", "aiosqlite", "asyncpg"):
        logging.getLogger(chatty).setLevel(max(level, logging.INFO))
    return handler
