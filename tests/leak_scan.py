"""Collect everything the bot left behind (logs, Discord, database, files) and look for secrets.

A *needle* is a labelled byte string that must appear nowhere: a token, a window of
a photo's raw bytes, or that window's base64. A *haystack* is a labelled blob of
bytes: one log line, one Discord message, one database row, one file.
"""

from __future__ import annotations

import base64
import logging
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import simcord

WINDOW = 48  # bytes; a multiple of 3, so its base64 is a substring of the whole's base64


@dataclass(frozen=True)
class Needle:
    label: str
    data: bytes


@dataclass(frozen=True)
class Haystack:
    source: str
    data: bytes


def token_needles(name: str, token: str) -> list[Needle]:
    """The token, and its middle (a truncated or partly redacted copy is a leak too)."""
    middle = token[4:-4]
    return [Needle(name, token.encode()), Needle(f"{name} (middle)", middle.encode())]


def photo_needles(name: str, data: bytes) -> list[Needle]:
    """A distinctive window from the middle of ``data``: raw, and as base64 (both paddings)."""
    start = (len(data) // 2) // 3 * 3
    window = data[start : start + WINDOW]
    assert len(window) == WINDOW, f"{name} is too short for a {WINDOW}-byte window"
    assert base64.b64encode(window) in base64.b64encode(data)
    return [
        Needle(f"{name} raw bytes", window),
        Needle(f"{name} base64", base64.b64encode(window)),
        Needle(f"{name} urlsafe base64", base64.urlsafe_b64encode(window)),
    ]


def find_leaks(needles: Iterable[Needle], haystacks: Iterable[Haystack]) -> list[str]:
    needles = list(needles)
    return [
        f"{needle.label} found in {haystack.source}"
        for haystack in haystacks
        for needle in needles
        if needle.data in haystack.data
    ]


def text(source: str, value: object) -> Haystack:
    return Haystack(source, str(value).encode("utf-8", "surrogatepass"))


# --- logs --------------------------------------------------------------------------


class RawRecords(logging.Handler):
    """Renders every record as it arrives, before any other handler's filter touches it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        line = f"{record.name} {record.levelname} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + logging.Formatter().formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + record.stack_info
        self.lines.append(line)


def log_haystacks(source: str, lines: Iterable[str]) -> Iterator[Haystack]:
    for number, line in enumerate(lines, 1):
        yield text(f"{source} line {number}", line)


# --- SimCord -----------------------------------------------------------------------


def discord_haystacks(
    env: simcord.Env, results: Iterable[simcord.InteractionResult] = ()
) -> list[Haystack]:
    """Every message SimCord holds (all channels, threads and DMs), every REST body the bot
    sent (including edits and deleted messages), and the given interaction results."""
    found: list[Haystack] = []
    for channel_id, messages in env.backend.messages.items():
        for message in messages.values():
            found.append(
                text(
                    f"message {message.id} in channel {channel_id}",
                    (message.content, message.embeds, message.components, message.attachments),
                )
            )
    for number, request in enumerate(env.http_requests, 1):
        found.append(
            text(f"REST request {number} {request.method} {request.path}", (request.json, request))
        )
    return found + result_haystacks(results)


def result_haystacks(results: Iterable[simcord.InteractionResult]) -> list[Haystack]:
    """What the member saw of each interaction: the response and the follow-ups."""
    found: list[Haystack] = []
    for number, result in enumerate(results, 1):
        for message in [result.response, *result.followups]:
            if message is not None:
                embeds = [e.to_dict() for e in message.embeds]
                found.append(text(f"interaction result {number}", (message.content, embeds)))
    return found


# --- database and files ------------------------------------------------------------


def sqlite_rows(path: Path) -> list[Haystack]:
    """Every row of every table, read with the sqlite3 module after the bot closed."""
    found: list[Haystack] = []
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for number, row in enumerate(db.execute(f'SELECT * FROM "{table}"'), 1):
                blob = b"".join(
                    cell if isinstance(cell, bytes) else str(cell).encode("utf-8", "surrogatepass")
                    for cell in row
                )
                found.append(Haystack(f"table {table} row {number}", blob + repr(row).encode()))
    return found


def sqlite_tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def file_haystacks(*roots: Path) -> list[Haystack]:
    return [
        Haystack(f"file {path}", path.read_bytes())
        for root in roots
        if root.exists()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    ]
