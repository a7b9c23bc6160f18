"""Preflight on a labelled set of real photos (see tests/preflight_set.py)."""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from avatar_api.preflight import (
    Check,
    PhotoReport,
    PreflightConfig,
    PreflightReport,
    default_detector,
    preflight_photos,
    preflight_photos_async,
)
from tests.preflight_set import Case, astronaut, jpeg, labelled_set, scaled, upload_set

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
    lenient = PreflightConfig(dark_limit=10, blur_threshold=5)
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
