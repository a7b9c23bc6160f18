"""Sealed interaction tokens: what the database holds reveals nothing, and opens for 15 minutes."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from avatarbot.sealing import TokenSealer, derive_key

DISCORD_TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB"
INTERACTION_TOKEN = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5MDEyMzQ1Njc4OnNlY3JldC10b2tlbi12YWx1ZQ"


class FakeTime:
    def __init__(self, at: float = 1_700_000_000.0) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


def test_a_sealed_token_opens_with_the_same_key() -> None:
    clock = FakeTime()
    sealed = TokenSealer(DISCORD_TOKEN, clock=clock).seal(INTERACTION_TOKEN)
    assert TokenSealer(DISCORD_TOKEN, clock=clock).unseal(sealed) == INTERACTION_TOKEN


def test_the_key_depends_on_the_secret_only_and_is_not_the_secret() -> None:
    assert derive_key(DISCORD_TOKEN) == derive_key(DISCORD_TOKEN)
    assert derive_key(DISCORD_TOKEN) != derive_key(DISCORD_TOKEN + "x")
    assert DISCORD_TOKEN.encode() not in derive_key(DISCORD_TOKEN)
    with pytest.raises(ValueError, match="must not be empty"):
        derive_key("")


def test_a_copy_of_the_database_alone_reveals_nothing(tmp_path: Path) -> None:
    sealer = TokenSealer(DISCORD_TOKEN)
    sealed = sealer.seal(INTERACTION_TOKEN)
    database = tmp_path / "copy.db"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, interaction_token TEXT)")
        conn.execute("INSERT INTO jobs (interaction_token) VALUES (?)", (sealed,))
    raw = database.read_bytes()
    assert INTERACTION_TOKEN.encode() not in raw
    assert DISCORD_TOKEN.encode() not in raw
    assert derive_key(DISCORD_TOKEN) not in raw
    # Two seals of one token differ (random IV): rows cannot even be matched to each other.
    assert sealer.seal(INTERACTION_TOKEN) != sealed


def test_another_key_fails_cleanly(caplog: pytest.LogCaptureFixture) -> None:
    sealed = TokenSealer(DISCORD_TOKEN).seal(INTERACTION_TOKEN)
    with caplog.at_level(logging.DEBUG):
        assert TokenSealer("some-other-bot-token").unseal(sealed) is None
    assert INTERACTION_TOKEN not in caplog.text
    assert sealed not in caplog.text


@pytest.mark.parametrize("damaged", ["", "not a fernet token", "gAAAAA" + "A" * 80, "é"])
def test_garbage_fails_cleanly(damaged: str) -> None:
    assert TokenSealer(DISCORD_TOKEN).unseal(damaged) is None


def test_an_altered_token_fails_cleanly() -> None:
    sealed = TokenSealer(DISCORD_TOKEN).seal(INTERACTION_TOKEN)
    middle = len(sealed) // 2
    flipped = sealed[:middle] + ("A" if sealed[middle] != "A" else "B") + sealed[middle + 1 :]
    assert TokenSealer(DISCORD_TOKEN).unseal(flipped) is None


def test_it_opens_for_fifteen_minutes_from_the_interaction() -> None:
    clock = FakeTime()
    sealer = TokenSealer(DISCORD_TOKEN, clock=clock)
    issued = clock.at - 60  # the interaction was created a minute before it was sealed
    sealed = sealer.seal(INTERACTION_TOKEN, issued_at=issued)
    clock.at = issued + 15 * 60
    assert sealer.unseal(sealed) == INTERACTION_TOKEN
    clock.at = issued + 15 * 60 + 1
    assert sealer.unseal(sealed) is None


def test_the_sealer_never_shows_its_key() -> None:
    sealer = TokenSealer(DISCORD_TOKEN)
    assert DISCORD_TOKEN not in repr(sealer)
    assert derive_key(DISCORD_TOKEN).decode() not in repr(sealer)
