"""Bad input: arbitrary environments, hostile text, arbitrary settings and hostile photos.

Properties run on the pure layers (settings, policy, ui.safe, the store, the photo
pipeline); a handful of SimCord examples show that the same text goes through the
bot end to end: stored verbatim, shown inert, tables intact.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from avatar_api import PhotoError
from avatar_api.models import Photo
from avatar_api.photos import prepare_photo
from avatar_api.preflight import PreflightReport, preflight_photos
from avatarbot.guild_rules import normalize, normalize_blocked_words
from avatarbot.policy import find_blocked_word
from avatarbot.settings import _HELP, Settings, SettingsError
from avatarbot.store import open_store
from avatarbot.store.base import GuildSettings
from avatarbot.store.sql import SqlStore
from cogs.ui import safe
from tests import photo_factory as factory
from tests.bot_world import DISCORD_TOKEN, World, face_photo, outcome
from tests.fake_agent_ai import TOKEN
from tests.leak_scan import sqlite_tables

PURE = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff\u180e\u00ad"
BIDI_CONTROLS = "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
INVISIBLE = ZERO_WIDTH + BIDI_CONTROLS

# Text that is hard to handle: every category, plus the characters used in tricks.
TRICKS = [
    "@everyone",
    "@here",
    "<@123456789012345678>",
    "<@!123456789012345678>",
    "<@&123456789012345678>",
    "<#123456789012345678>",
    "'); DROP TABLE jobs;--",
    "**",
    "__",
    "`",
    "||",
    "> ",
    "[link](https://example.com)",
]
tricky_text = st.lists(
    st.one_of(
        st.text(max_size=8),
        st.sampled_from(list(INVISIBLE + "@<>&#!*_~`|\\:'\";-")),
        st.sampled_from(TRICKS),
    ),
    max_size=30,
).map("".join)


# --- Settings.from_env ----------------------------------------------------------------

VARIABLES = sorted(_HELP)
VALID_ENV = {
    "DISCORD_TOKEN": DISCORD_TOKEN,
    "AGENT_AI_TOKEN": TOKEN,
    "AGENT_AI_BASE_URL": "https://api-lr.agent.ai/v1",
    "DATABASE_URL": "sqlite:///data/avatarbot.db",
    "DISCORD_DEV_GUILD_ID": "123456789012345678",
    "LOG_LEVEL": "debug",
}
env_values = st.one_of(
    st.text(max_size=60),
    st.sampled_from(list(VALID_ENV.values())),
    st.sampled_from(["", " ", "http://[::1", "https://", "²", "١٢٣", "0", "-1", str(2**64)]),
    st.builds(lambda a, b: a + b, st.sampled_from(list(VALID_ENV.values())), st.text(max_size=5)),
)
environments = st.dictionaries(
    st.one_of(st.sampled_from(VARIABLES), st.text(max_size=12)), env_values, max_size=8
)
HELP_TEXT = " ".join(_HELP.values()) + " is not set does not look like a Discord bot token"


def secret_values(env: dict[str, str]) -> list[str]:
    """The token values a message must not hold (leaving out text the message has anyway)."""
    values = [env.get("DISCORD_TOKEN", "").strip(), env.get("AGENT_AI_TOKEN", "").strip()]
    return [v for v in values if len(v) >= 4 and v not in HELP_TEXT]


@PURE
@given(environments)
@example({**VALID_ENV, "AGENT_AI_BASE_URL": "http://[::1"})
@example({**VALID_ENV, "AGENT_AI_BASE_URL": "https://host:99999/v1"})
@example({**VALID_ENV, "DISCORD_DEV_GUILD_ID": "²"})
@example({**VALID_ENV, "DISCORD_DEV_GUILD_ID": "١٢٣"})
@example({**VALID_ENV, "LOG_LEVEL": "ıNFO"})
@example({**VALID_ENV, "DISCORD_TOKEN": DISCORD_TOKEN + "\n" + "x" * 30})
def test_settings_from_any_environment_is_a_settings_or_one_clear_error(
    env: dict[str, str],
) -> None:
    try:
        loaded = Settings.from_env(env)
    except SettingsError as error:
        message = str(error)
        assert error.variable in VARIABLES
        assert message.startswith(error.variable)
        assert "\n" not in message
        for secret in secret_values(env):
            assert secret not in message
        return
    assert _valid_discord_token(loaded.discord_token)
    assert loaded.agent_ai_token.isprintable()
    assert loaded.agent_ai_token.strip()
    assert loaded.agent_ai_base_url.startswith(("http://", "https://"))
    assert loaded.database_url.startswith(("sqlite:///", "postgresql://", "postgres://"))
    assert loaded.dev_guild_id is None or 0 < loaded.dev_guild_id < 2**64
    assert isinstance(loaded.log_level, int)
    assert TOKEN not in repr(loaded)
    assert DISCORD_TOKEN not in repr(loaded)


def _valid_discord_token(token: str) -> bool:
    return re.fullmatch(r"[\w-]{20,}\.[\w-]{4,}\.[\w-]{20,}", token, re.ASCII) is not None


def test_the_valid_environment_loads() -> None:
    loaded = Settings.from_env(VALID_ENV)
    assert (loaded.dev_guild_id, loaded.log_level) == (123456789012345678, 10)


# --- policy: normalize and blocked words -------------------------------------------------


@PURE
@given(tricky_text)
def test_normalize_is_idempotent_and_drops_invisible_characters(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once
    assert not set(once) & set(INVISIBLE)
    assert once == once.strip()
    assert "  " not in once


def full_width(word: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in word)


def math_bold(word: str) -> str:
    return "".join(
        chr(0x1D400 + ord(c) - ord("A"))
        if "A" <= c <= "Z"
        else chr(0x1D41A + ord(c) - ord("a"))
        if "a" <= c <= "z"
        else c
        for c in word
    )


def interleave(word: str, junk: str) -> str:
    return junk.join(word)


EVASIONS: dict[str, Callable[[str, str], str]] = {
    "zero-width inside": lambda word, junk: interleave(word, junk),
    "full-width letters": lambda word, junk: full_width(word),
    "upper case": lambda word, junk: word.upper(),
    "mixed case and bidi": lambda word, junk: junk + word.swapcase() + junk,
    "math bold letters": lambda word, junk: math_bold(word),
    "combining marks": lambda word, junk: interleave(word, "\u0301"),
    "all at once": lambda word, junk: interleave(full_width(word.upper()), junk),
}

blocked_words_strategy = st.text(alphabet="abcdefghijklmnopqrstuvwxyzß", min_size=2, max_size=12)


@PURE
@given(
    blocked_words_strategy,
    st.sampled_from(sorted(EVASIONS)),
    st.text(alphabet=st.sampled_from(list(INVISIBLE)), min_size=1, max_size=3),
    st.text(max_size=20),
    st.text(max_size=20),
)
def test_evasions_of_a_blocked_word_are_caught(
    word: str, evasion: str, junk: str, before: str, after: str
) -> None:
    disguised = EVASIONS[evasion](word, junk)
    assert find_blocked_word(f"{before} {disguised} {after}", (word,)) == word


@PURE
@given(tricky_text, st.lists(tricky_text, max_size=5))
def test_find_blocked_word_never_crashes_and_finds_what_it_says(
    text: str, words: list[str]
) -> None:
    found = find_blocked_word(text, tuple(words))
    if found is not None:
        assert found in words
        assert normalize(found)


@PURE
@given(tricky_text)
def test_normalize_blocked_words_gives_distinct_normal_words(raw: str) -> None:
    words = normalize_blocked_words(raw)
    assert len(set(words)) == len(words)
    for word in words:
        assert word
        assert normalize(word) == word
        assert "," not in word
    assert normalize_blocked_words(", ".join(words)) == words


# --- cogs.ui.safe ------------------------------------------------------------------------

WORKING_MENTION = re.compile(r"@(everyone|here)|<@[!&]?\d{17,20}>")  # channel links never ping


def invisible_except_mention_escapes(text: str) -> set[str]:
    """Invisible characters left in ``text``; ``escape_mentions`` inserts U+200B after ``@``."""
    return set(text.replace("@\u200b", "@")) & set(INVISIBLE)


@PURE
@given(tricky_text, st.integers(min_value=1, max_value=2000))
@example("@everyone <@123456789012345678> <@&123456789012345678> @here", 1024)
@example("@\u200beveryone @\u202ehere", 1024)
@example("<@!123456789012345678>" * 60, 1024)
def test_safe_text_cannot_ping_hide_characters_or_grow(text: str, limit: int) -> None:
    shown = safe(text, limit)
    assert len(shown) <= limit
    assert WORKING_MENTION.search(shown) is None
    assert invisible_except_mention_escapes(shown) == set()
    assert all(c.isprintable() for c in shown.replace("@\u200b", "@"))


# --- store.update_guild_settings -----------------------------------------------------------

FIELD_NAMES = sorted(f for f in GuildSettings.__dataclass_fields__ if f != "guild_id")
any_value = st.deferred(
    lambda: st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.integers(min_value=-5, max_value=100_000),
        st.floats(allow_nan=True),
        st.text(max_size=20),
        st.binary(max_size=8),
        st.lists(st.integers(min_value=-5, max_value=2**62), max_size=4),
        st.frozensets(st.integers(min_value=1, max_value=2**62), max_size=4),
        st.lists(tricky_text, max_size=4),
        st.lists(st.one_of(st.integers(), st.text(max_size=5), st.none()), max_size=3),
    )
)
# Names that are parameters of update_guild_settings itself must be refused like any
# unknown name (a ValueError), not collide with the parameter (a TypeError).
PARAMETER_NAMES = ["guild_id", "self"]
settings_changes = st.dictionaries(
    st.one_of(st.sampled_from(FIELD_NAMES), st.sampled_from(PARAMETER_NAMES), st.text(max_size=10)),
    any_value,
    max_size=4,
)


@pytest.fixture(scope="module")
def store_runner() -> Iterator[tuple[asyncio.Runner, SqlStore]]:
    with asyncio.Runner() as runner:
        store = runner.run(open_store("sqlite:///:memory:"))
        yield runner, store
        runner.run(store.close())


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(min_value=1, max_value=2**62), settings_changes)
@example(7, {"guild_id": 8})
@example(7, {"self": True, "enabled": False})
def test_update_guild_settings_refuses_bad_values_and_never_corrupts(
    store_runner: tuple[asyncio.Runner, SqlStore], guild_id: int, changes: dict[str, object]
) -> None:
    runner, store = store_runner
    before = runner.run(store.get_guild_settings(guild_id))
    try:
        updated = runner.run(store.update_guild_settings(guild_id, **changes))
    except ValueError:
        assert runner.run(store.get_guild_settings(guild_id)) == before
        return
    assert not set(changes) & set(PARAMETER_NAMES)
    assert runner.run(store.get_guild_settings(guild_id)) == updated
    assert_well_formed(updated)


def assert_well_formed(stored: GuildSettings) -> None:
    assert isinstance(stored.enabled, bool)
    assert isinstance(stored.uploads_allowed, bool)
    for count in (stored.cooldown_seconds, stored.user_daily_quota, stored.guild_daily_quota):
        assert type(count) is int
        assert count >= 0
    assert stored.log_channel_id is None or type(stored.log_channel_id) is int
    assert all(type(i) is int and i > 0 for i in stored.allowed_channel_ids)
    assert all(type(i) is int and i > 0 for i in stored.required_role_ids)
    assert all(isinstance(w, str) and w for w in stored.blocked_words)
    assert all(isinstance(c, str) and c for c in stored.disabled_checks)


async def test_an_out_of_range_log_channel_id_is_a_value_error(store: SqlStore) -> None:
    with pytest.raises(ValueError, match="log_channel_id"):
        await store.update_guild_settings(1, log_channel_id=2**64)


@pytest.fixture
async def store() -> SqlStore:
    opened = await open_store("sqlite:///:memory:")
    yield opened
    await opened.close()


# --- the same text through the bot (SimCord) -------------------------------------------------

HOSTILE_REQUESTS: list[dict[str, str]] = [
    {"name": "'); DROP TABLE jobs;--", "appearance": "x'; DELETE FROM guild_settings; --"},
    {"name": "@everyone **bold** __u__", "appearance": "<@123456789012345678> <@&1> @here `c`"},
    {"name": "Nova\u200b\u202eevil\u202c", "appearance": "\u2066right\u2069 to \u200fleft ||s||"},
]
TABLES = {"jobs", "guild_settings", "blocks", "consents"}


async def admin(world: World, command: str, **options: object):
    result = await world.admin.slash(world.channel, f"avatar-admin {command}", **options)
    assert result.ephemeral, result
    return result


def displayed(result) -> str:
    message = result.response or result.followups[-1]
    return json.dumps([message.content, [e.to_dict() for e in message.embeds]])


async def test_hostile_names_are_stored_verbatim_and_shown_inert(world: World) -> None:
    await admin(world, "cooldown", seconds=0)
    for options in HOSTILE_REQUESTS:
        result = await world.alice.slash(world.channel, "avatar generate", **options)

        message = result.response.message
        assert message.mentions == []
        assert message.role_mentions == []
        assert not message.mention_everyone
        shown = json.loads(displayed(result))
        assert WORKING_MENTION.search(str(shown)) is None
        assert invisible_except_mention_escapes(str(shown)) == set()
        (job,) = await world.bot.store.recent_jobs(world.alice.id, world.guild.id, 1)
        assert (job.options["name"], job.options["appearance"]) == (
            options["name"],
            options["appearance"],
        )

    assert [r.body["name"] for r in world.fake.requests] == [o["name"] for o in HOSTILE_REQUESTS]
    database = Path(world.bot.settings.database_url.removeprefix("sqlite:///"))
    assert sqlite_tables(database) >= TABLES
    assert len(await world.bot.store.recent_jobs(world.alice.id, world.guild.id, 10)) == 3


async def test_hostile_blocked_words_are_kept_shown_inert_and_evasions_refused(
    world: World,
) -> None:
    words = "'); DROP TABLE jobs;--, @everyone, **grr**, sneaky, \u202eabc\u202c, <@&1234>"
    await admin(world, "words", action="add", words=words)
    await admin(world, "cooldown", seconds=0)

    stored = (await world.bot.store.get_guild_settings(world.guild.id)).blocked_words
    assert stored == normalize_blocked_words(words)
    assert "'); drop table jobs;--" in stored
    shown = await admin(world, "show")
    field = {f.name: f.value for f in outcome(shown).embeds[0].fields}["Blocked words"]
    assert WORKING_MENTION.search(field) is None
    assert "@\u200beveryone" in field
    assert shown.response.message.mentions == []
    assert not shown.response.message.mention_everyone

    for disguised in ("s\u200bne\u200dak\u2060y", full_width("SNEAKY"), "\u202esneaky\u202c"):
        refused = await world.alice.slash(world.channel, "avatar generate", name=disguised)
        text = refused.response.content
        assert refused.ephemeral, disguised
        assert "does not allow" in text, disguised
    refused = await world.alice.slash(
        world.channel, "avatar generate", appearance="hi '); DROP TABLE jobs;-- there"
    )
    assert "does not allow" in refused.response.content
    assert world.fake.calls == 0
    database = Path(world.bot.settings.database_url.removeprefix("sqlite:///"))
    assert sqlite_tables(database) >= TABLES


# --- hostile photos through prepare -> preflight ----------------------------------------------


def sideways_face_jpeg(*, exif_orientation: int | None) -> bytes:
    """The face stored sideways; EXIF orientation 6 says to turn it upright, as phones do."""
    from PIL import Image

    from tests.bot_world import face_image

    sideways = face_image().transpose(Image.Transpose.ROTATE_90)
    exif = factory.exif_bytes(orientation=exif_orientation) if exif_orientation else b""
    return factory.encode(sideways, "JPEG", quality=90, exif=exif)


def corrupted(data: bytes, *, flips: int = 40, seed: int = 7) -> bytes:
    import random

    rng = random.Random(seed)
    mutable = bytearray(data)
    for _ in range(flips):
        mutable[rng.randrange(len(mutable) // 4, len(mutable))] = rng.randrange(256)
    return bytes(mutable)


def png_text_bomb() -> bytes:
    """A small PNG whose zTXt chunk inflates to 64 MiB (Pillow caps text chunks)."""
    import zlib

    small = factory.make_png(600, 600)
    chunk = factory._png_chunk(b"zTXt", b"k\x00\x00" + zlib.compress(bytes(64 << 20), 9))
    return small[:33] + chunk + small[33:]


BOMB_CASES: dict[str, Callable[[], bytes]] = {
    "png header 100000x100000": lambda: factory.make_png_header(100_000, 100_000),
    "png header 12000x12000 (Pillow only warns)": lambda: factory.make_png_header(12_000, 12_000),
    "jpeg claiming 60000x60000": lambda: factory.make_jpeg_claiming(60_000, 60_000),
    "png zTXt bomb": png_text_bomb,
}
HOSTILE_PHOTOS: dict[str, Callable[[], bytes]] = {
    **BOMB_CASES,
    "zero bytes": lambda: b"",
    "one byte": lambda: b"\xff",
    "jpeg magic then garbage": factory.jpeg_magic_then_garbage,
    "face truncated to half": lambda: factory.truncated(face_photo("JPEG")),
    "face truncated to its header": lambda: face_photo("JPEG")[:700],
    "face corrupted": lambda: corrupted(face_photo("JPEG")),
    "heic truncated": lambda: factory.truncated(factory.make_heic(640, 640)),
    "png + zip polyglot": lambda: factory.png_with_zip_appended(800, 800),
    "animated webp": lambda: factory.make_animated("WEBP", 600, 600),
    "animated png": lambda: factory.make_animated("PNG", 600, 600),
    "animated gif": lambda: factory.make_animated("GIF", 600, 600),
    "cmyk jpeg": lambda: factory.make_cmyk_jpeg(800, 800),
    "16-bit png": lambda: factory.make_png_16bit(800, 800),
    "svg": factory.make_svg,
    "exif-rotated face": lambda: sideways_face_jpeg(exif_orientation=6),
    "sideways face, no exif": lambda: sideways_face_jpeg(exif_orientation=None),
}
EXPECTED_REFUSALS = {
    "png header 100000x100000": "too_many_pixels",
    "png header 12000x12000 (Pillow only warns)": "too_many_pixels",
    "jpeg claiming 60000x60000": "too_many_pixels",
    "png zTXt bomb": "undecodable",
    "zero bytes": "empty",
    "one byte": "not_an_image",
    "jpeg magic then garbage": "undecodable",
    "face truncated to half": "undecodable",
    "face truncated to its header": "undecodable",
    "heic truncated": "undecodable",
    "animated webp": "animated",
    "animated png": "animated",
    "animated gif": "unsupported",
    "svg": "unsupported",
}


def prepare_then_preflight(data: bytes) -> PhotoError | tuple[Photo, PreflightReport]:
    """The bot's pipeline for one photo; any exception but PhotoError escapes (and fails)."""
    try:
        photo = prepare_photo(data)
        return photo, preflight_photos([photo])
    except PhotoError as error:
        return error


@pytest.mark.timeout(60)
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # the 144 MP header
@pytest.mark.parametrize("case", sorted(HOSTILE_PHOTOS))
def test_hostile_photos_end_in_a_refusal_or_a_correct_result(case: str) -> None:
    outcome = prepare_then_preflight(HOSTILE_PHOTOS[case]())

    if isinstance(outcome, PhotoError):
        assert outcome.reason == EXPECTED_REFUSALS.get(case), outcome
        assert outcome.photo_index == 1
        assert str(outcome).startswith("photo 1: ")
        return
    assert case not in EXPECTED_REFUSALS, f"{case} was accepted"
    photo, report = outcome
    assert photo.data[:3] == b"\xff\xd8\xff"
    (checked,) = report.photos
    assert min(checked.width, checked.height) >= 512
    if case == "exif-rotated face":
        assert report.ok, report.problems  # turned upright, so the frontal face is found
    elif case == "sideways face, no exif":
        assert [p.check.value for p in report.problems] == ["face"]  # the control
    else:
        assert all(p.message.startswith(f"Photo {p.photo_index}") for p in report.problems)


@pytest.mark.timeout(60)
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("case", sorted(BOMB_CASES))
def test_a_bomb_is_refused_within_bounded_python_memory(case: str) -> None:
    data = BOMB_CASES[case]()
    tracemalloc.start()
    try:
        outcome = prepare_then_preflight(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(outcome, PhotoError)
    assert peak < 50 * 1024 * 1024, f"{case}: peak {peak / 1e6:.0f} MB"


CHILD = """
import resource, sys
from avatar_api import PhotoError
from avatar_api.photos import prepare_photo
from tests.test_bad_input import BOMB_CASES
bombs = [make() for make in BOMB_CASES.values()]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for data in bombs:
    try:
        prepare_photo(data)
    except PhotoError:
        pass
    else:
        sys.exit("a bomb was accepted")
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_bombs_do_not_grow_the_process_memory() -> None:
    """Pillow's C allocations escape tracemalloc: the peak RSS of a fresh process does not."""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=root, capture_output=True, text=True, timeout=50
    )
    assert done.returncode == 0, done.stderr[-2000:]
    grown_kib = int(done.stdout.strip().splitlines()[-1])
    assert grown_kib < 50 * 1024, f"peak RSS grew by {grown_kib / 1024:.0f} MiB"
