"""Preflight on the synthetic labelled set (tests/preflight_set.py); real photos: see *_real.py."""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import ImageEnhance, ImageFilter

from avatar_api.preflight import (
    STRICTNESS_THRESHOLDS,
    Check,
    PhotoReport,
    PreflightConfig,
    PreflightReport,
    Strictness,
    default_detector,
    preflight_photos,
    preflight_photos_async,
)
from tests.preflight_set import (
    Case,
    astronaut,
    jpeg,
    labelled_set,
    portrait_in_scene,
    scaled,
    upload_set,
)

CASES = labelled_set()


def by_category(category: str) -> list[Case]:
    return [c for c in CASES if c.category == category]


@pytest.fixture(scope="module")
def reports() -> dict[str, PhotoReport]:
    """Each labelled photo checked alone, once for the whole module."""
    return {c.name: preflight_photos([c.photo]).photos[0] for c in CASES}


def failed(report: PhotoReport) -> set[Check]:
    return {p.check for p in report.problems}


@pytest.mark.parametrize("case", by_category("clear_face"), ids=lambda c: c.name)
def test_clear_single_face_is_never_refused(case: Case, reports: dict[str, PhotoReport]) -> None:
    report = reports[case.name]
    assert report.ok, [p.message for p in report.problems]
    assert report.faces == 1


@pytest.mark.parametrize(
    "category", ["no_face", "group", "small_face", "blurred", "dark", "washed_out"]
)
def test_every_bad_photo_is_caught(category: str, reports: dict[str, PhotoReport]) -> None:
    cases = by_category(category)
    assert cases
    missed = [c.name for c in cases if not c.expect <= failed(reports[c.name])]
    assert not missed


def test_group_shot_asks_to_crop(reports: dict[str, PhotoReport]) -> None:
    for case in by_category("group"):
        report = reports[case.name]
        assert report.faces is not None
        assert report.faces >= 2
        assert "crop" in report.problems[0].message


def test_small_face_says_the_size_it_needs() -> None:
    config = PreflightConfig(min_face_fraction=0.25)
    report = preflight_photos([jpeg(astronaut())], config).photos[0]
    (problem,) = report.problems
    assert problem.check is Check.FACE
    assert "too small" in problem.message
    assert "25%" in problem.message
    assert report.face_fraction is not None
    assert 0.15 < report.face_fraction < 0.25


@pytest.mark.parametrize("case", upload_set(), ids=lambda u: u.name)
def test_duplicates_within_an_upload(case: object) -> None:
    report = preflight_photos(case.photos)  # type: ignore[attr-defined]
    duplicates = [p for p in report.problems if p.check is Check.DUPLICATE]
    assert bool(duplicates) is case.duplicate  # type: ignore[attr-defined]


def test_duplicate_names_both_photos() -> None:
    photo = jpeg(scaled(astronaut(), 1.5))
    report = preflight_photos([photo, jpeg(scaled(astronaut(), 1.5), 60)])
    (problem,) = report.problems
    assert problem.photo_index == 2
    assert "photo 1" in problem.message
    assert "Photo 2" in problem.message


def test_one_report_lists_every_problem_of_every_photo() -> None:
    group, dark, blurred = (
        next(c for c in CASES if c.name == name)
        for name in ("group of 2", "brightness x0.15", "gaussian r=5 at 1024")
    )
    good = next(c for c in CASES if c.name == "astronaut 1024")
    report = preflight_photos([good.photo, group.photo, dark.photo, blurred.photo, good.photo])
    assert not report.ok
    assert report.photos[0].ok
    assert {(p.photo_index, p.check) for p in report.problems} >= {
        (2, Check.FACE),
        (3, Check.EXPOSURE),
        (4, Check.SHARPNESS),
        (5, Check.DUPLICATE),
    }
    for problem in report.problems:
        assert f"hoto {problem.photo_index}" in problem.message


def test_disabling_a_check_skips_it() -> None:
    dark = next(c for c in CASES if c.name == "brightness x0.15")
    config = PreflightConfig.from_disabled({"exposure", "sharpness"})
    report = preflight_photos([dark.photo, dark.photo], config)
    assert Check.EXPOSURE not in config.enabled
    assert report.photos[0].brightness is None
    assert report.photos[0].blur_score is None
    assert {p.check for p in report.problems} == {Check.DUPLICATE}

    nothing = PreflightConfig.from_disabled([c.value for c in Check])
    group = next(c for c in CASES if c.name == "group of 3")
    report = preflight_photos([group.photo, group.photo], nothing)
    assert report.ok
    assert report.photos[0].faces is None


def test_unknown_disabled_name_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="avatar_api.preflight"):
        config = PreflightConfig.from_disabled({"face", "glasses"})
    assert config.enabled == frozenset(Check) - {Check.FACE}
    assert "glasses" in caplog.text


def test_thresholds_are_configurable() -> None:
    photo = next(c for c in CASES if c.name == "astronaut 1024").photo
    measured = preflight_photos([photo]).photos[0]
    assert measured.blur_score is not None
    assert measured.brightness is not None

    strict = PreflightConfig(
        blur_threshold=measured.blur_score + 1, bright_limit=measured.brightness - 1
    )
    assert {p.check for p in preflight_photos([photo], strict).problems} == {
        Check.SHARPNESS,
        Check.EXPOSURE,
    }
    dark = next(c for c in CASES if c.name == "brightness x0.25")
    lenient = PreflightConfig(dark_limit=10, blur_threshold=0.01)
    assert preflight_photos([dark.photo], lenient).ok

    copy = jpeg(scaled(astronaut(), 1.5).rotate(8, fillcolor="gray"))
    original = jpeg(scaled(astronaut(), 1.5))
    assert preflight_photos([original, copy]).ok
    assert not preflight_photos([original, copy], PreflightConfig(duplicate_distance=40)).ok


def test_from_disabled_passes_thresholds_through() -> None:
    config = PreflightConfig.from_disabled(set(), blur_threshold=12.5, duplicate_distance=3)
    assert config.blur_threshold == 12.5
    assert config.duplicate_distance == 3
    assert config.enabled == frozenset(Check)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_face_fraction": 0},
        {"dark_limit": 200, "bright_limit": 100},
        {"duplicate_distance": 65},
        {"min_face_score": 1.5},
        {"max_turn": 0},
        {"max_clipped_fraction": 0},
    ],
)
def test_nonsense_thresholds_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"must|need"):
        PreflightConfig(**kwargs)  # type: ignore[arg-type]


async def test_async_runs_off_the_event_loop() -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []

    class Spy:
        def detect(self, gray):  # type: ignore[no-untyped-def]
            seen.append(threading.get_ident())
            return default_detector().detect(gray)

    photo = next(c for c in CASES if c.name == "astronaut 512").photo
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    report = await preflight_photos_async([photo] * 3, detector=Spy())
    task.cancel()
    assert isinstance(report, PreflightReport)
    assert seen
    assert loop_thread not in seen
    assert ticks > 1


@pytest.mark.slow
def test_detector_is_safe_from_several_threads() -> None:
    photos = [c.photo for c in by_category("clear_face")[:4]]
    expected = [preflight_photos([p]).photos[0].faces for p in photos]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda p: preflight_photos([p]).photos[0].faces, photos * 3))
    assert results == expected * 3


def test_logs_never_hold_photo_bytes(caplog: pytest.LogCaptureFixture) -> None:
    photo = next(c for c in CASES if c.name == "astronaut 512").photo
    with caplog.at_level(logging.DEBUG, logger="avatar_api.preflight"):
        preflight_photos([photo])
    assert caplog.records
    text = caplog.text
    assert "\\xff\\xd8" not in text
    assert len(text) < 2000


# --- strictness (what an admin picks per server) ------------------------------


def test_strictness_values_are_the_words_admins_pick() -> None:
    assert [s.value for s in Strictness] == ["relaxed", "standard", "strict"]
    assert PreflightConfig() == PreflightConfig.for_strictness(Strictness.STANDARD)
    assert PreflightConfig.for_strictness("strict") == PreflightConfig.for_strictness(
        Strictness.STRICT
    )


def test_each_level_is_at_least_as_demanding_as_the_one_below() -> None:
    relaxed, standard, strict = (PreflightConfig.for_strictness(s) for s in Strictness)
    demands_more = ("min_face_score", "min_face_fraction", "blur_threshold", "dark_limit")
    demands_less = ("max_turn", "bright_limit", "max_clipped_fraction")
    for name in demands_more:
        assert getattr(relaxed, name) < getattr(standard, name) < getattr(strict, name), name
    for name in demands_less:
        assert getattr(relaxed, name) > getattr(standard, name) > getattr(strict, name), name
    changed = {name for level in STRICTNESS_THRESHOLDS.values() for name in level}
    assert changed == set(demands_more) | set(demands_less)


def test_from_disabled_takes_the_servers_level_and_overrides_win() -> None:
    config = PreflightConfig.from_disabled({"sharpness"}, "strict", dark_limit=20.0)
    assert Check.SHARPNESS not in config.enabled
    assert config.min_face_fraction == STRICTNESS_THRESHOLDS[Strictness.STRICT]["min_face_fraction"]
    assert config.dark_limit == 20.0


@pytest.mark.parametrize("stored", ["paranoid", "", None])
def test_unknown_or_missing_level_is_standard(
    stored: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="avatar_api.preflight"):
        config = PreflightConfig.from_disabled(set(), stored)
    assert config == PreflightConfig()
    assert ("paranoid" in caplog.text) is (stored == "paranoid")


def test_relaxed_accepts_a_smaller_face_and_a_dimmer_photo_that_standard_refuses() -> None:
    small = jpeg(portrait_in_scene((2048, 1536), 0.10, "rocket"))
    dim = jpeg(ImageEnhance.Brightness(scaled(astronaut(), 1.5)).enhance(0.4))
    relaxed, standard = (PreflightConfig.for_strictness(s) for s in ("relaxed", "standard"))
    for photo, check, words in ((small, Check.FACE, "too small"), (dim, Check.EXPOSURE, "dark")):
        assert preflight_photos([photo], relaxed).ok
        (problem,) = preflight_photos([photo], standard).problems
        assert problem.check is check
        assert words in problem.message


def test_strict_refuses_a_soft_face_that_standard_accepts() -> None:
    soft = jpeg(scaled(astronaut(), 2).filter(ImageFilter.GaussianBlur(2)))
    measured = preflight_photos([soft]).photos[0]
    assert measured.ok
    assert measured.blur_score is not None
    assert measured.blur_score < PreflightConfig.for_strictness("strict").blur_threshold
    (problem,) = preflight_photos([soft], PreflightConfig.for_strictness("strict")).problems
    assert problem.check is Check.SHARPNESS


def test_a_head_in_profile_is_turned_away() -> None:
    profile = next(c for c in CASES if c.name == "cameraman in profile")
    (problem,) = preflight_photos([profile.photo]).problems
    assert "turned away" in problem.message


@pytest.mark.parametrize("radius", [1, 2, 4])
def test_sharpness_does_not_depend_on_the_photos_size(radius: int) -> None:
    """The same blur relative to the face scores the same at 512 and at 2048 px."""
    scores = [
        preflight_photos(
            [jpeg(scaled(astronaut(), f).filter(ImageFilter.GaussianBlur(radius * f)))]
        )
        .photos[0]
        .blur_score
        for f in (1, 2, 4)
    ]
    assert None not in scores
    assert max(scores) / min(scores) < 1.2, scores  # type: ignore[type-var, operator]
