"""``SHARD_COUNT`` and ``SHARD_IDS``: what runs where, and one clear line for each mistake."""

from __future__ import annotations

import pytest

from avatarbot.settings import Settings, SettingsError
from tests.bot_world import DISCORD_TOKEN
from tests.fake_agent_ai import TOKEN

POSTGRES = "postgresql://bot@db.example:5432/avatarbot"
BASE = {"DISCORD_TOKEN": DISCORD_TOKEN, "AGENT_AI_TOKEN": TOKEN, "DATABASE_URL": POSTGRES}


def load(**variables: str) -> Settings:
    return Settings.from_env({**BASE, **variables})


def test_unset_means_every_shard_of_the_recommended_count() -> None:
    settings = load()
    assert (settings.shard_count, settings.shard_ids) == (None, None)


def test_a_count_alone_runs_every_shard_of_it_even_on_sqlite() -> None:
    settings = load(SHARD_COUNT="4", DATABASE_URL="sqlite:///data/avatarbot.db")
    assert (settings.shard_count, settings.shard_ids) == (4, None)


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        ("0", (0,)),
        ("0,1", (0, 1)),
        ("0-3", (0, 1, 2, 3)),
        (" 5 , 0-2 ", (0, 1, 2, 5)),
        ("7-7", (7,)),
    ],
)
def test_ids_are_lists_and_ranges(ids: str, expected: tuple[int, ...]) -> None:
    assert load(SHARD_COUNT="8", SHARD_IDS=ids).shard_ids == expected


@pytest.mark.parametrize(
    ("variables", "variable", "problem"),
    [
        ({"SHARD_COUNT": "0"}, "SHARD_COUNT", "whole number from 1"),
        ({"SHARD_COUNT": "-2"}, "SHARD_COUNT", "whole number from 1"),
        ({"SHARD_COUNT": "two"}, "SHARD_COUNT", "whole number from 1"),
        ({"SHARD_COUNT": "²"}, "SHARD_COUNT", "whole number from 1"),
        ({"SHARD_IDS": "0"}, "SHARD_IDS", "SHARD_COUNT is not"),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "4"}, "SHARD_IDS", "shard 4, but SHARD_COUNT is 4"),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "2-5"}, "SHARD_IDS", "shard 5, but SHARD_COUNT is 4"),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "3-1"}, "SHARD_IDS", "runs backwards"),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "0,,1"}, "SHARD_IDS", "neither a shard nor a range"),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "a-b"}, "SHARD_IDS", "neither a shard nor a range"),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "0-2,2"}, "SHARD_IDS", "names a shard twice"),
        (
            {"SHARD_COUNT": "2", "SHARD_IDS": "0", "DATABASE_URL": "sqlite:///x.db"},
            "SHARD_IDS",
            "needs a postgresql:// DATABASE_URL",
        ),
    ],
)
def test_each_mistake_is_one_clear_line(
    variables: dict[str, str], variable: str, problem: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load(**variables)
    message = str(caught.value)
    assert caught.value.variable == variable
    assert message.startswith(variable)
    assert problem in message
    assert "\n" not in message


def test_the_bot_runs_the_shards_it_is_given() -> None:
    from types import SimpleNamespace

    from bot import AvatarBot

    def bot_for(settings: Settings) -> AvatarBot:
        names = ("avatar_client", "store", "dispatcher", "service", "job_relay", "worker_id")
        services = SimpleNamespace(settings=settings, clock=None, metrics=None, sealer=None)
        for name in names:
            setattr(services, name, None)
        return AvatarBot(services)  # type: ignore[arg-type]

    sharded = bot_for(load(SHARD_COUNT="4", SHARD_IDS="1,3"))
    assert (sharded.shard_count, sharded.shard_ids) == (4, [1, 3])
    recommended = bot_for(load())
    assert (recommended.shard_count, recommended.shard_ids) == (None, None)
