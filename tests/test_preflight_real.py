"""Preflight on labelled real photos: accuracy floors, and the goals on every photo.

The floors are the figures measured with the thresholds of each level (see
docs/preflight.md); a change that refuses one more clear face, or lets one more
group or empty photo through, fails here. Held-out photos were never used to
choose a threshold. ``faces-dev`` lives beside the repository and its tests skip,
with the reason, where it is absent; the openly licensed ``commons`` set is in the
repository and always runs.
"""

from __future__ import annotations

import hashlib
from functools import cache

import numpy as np
import pytest

from avatar_api.preflight import (
    Check,
    FaceBox,
    PhotoReport,
    PreflightConfig,
    ProblemKind,
    Strictness,
    default_detector,
    preflight_photos,
)
from tests.real_faces import (
    COMMONS,
    FACES_DEV,
    GOALS,
    HELD_OUT,
    PHOTO_SETS,
    PhotoSet,
    RealPhoto,
    Tally,
    real_set,
    tally,
)

needs_faces_dev = pytest.mark.skipif(not FACES_DEV.available(), reason=FACES_DEV.missing_reason)

#: Right verdicts at ``standard``: (bucket, right, out of), held-out half and whole set.
STANDARD_HELD_OUT = {
    "single/light": (15, 15),
    "single/medium": (8, 8),
    "single/dark": (9, 9),
    "group": (8, 8),
    "noface": (8, 9),  # the miss: a marble bust, a face in all but life
    "small": (2, 3),  # the miss: a skater whose face is 19 % of the frame
}
STANDARD_ALL = {
    "single/light": (31, 31),
    "single/medium": (16, 16),
    "single/dark": (18, 18),
    "group": (17, 17),
    "noface": (17, 18),
    "small": (6, 7),
}
#: The openly licensed set, held out as a whole (added after every threshold was fixed).
COMMONS_STANDARD = {
    "group": (5, 5),
    "noface": (115, 116),  # the miss: a kitten looking at the camera (score 0.81)
}


class MemoDetector:
    """The real detector, run once per distinct image: the levels share its output."""

    def __init__(self) -> None:
        self._seen: dict[str, list[FaceBox]] = {}

    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        key = hashlib.sha256(rgb.tobytes()).hexdigest() + str(rgb.shape)
        if key not in self._seen:
            self._seen[key] = default_detector().detect(rgb)
        return self._seen[key]


_DETECTOR = MemoDetector()


@cache
def reports(
    level: Strictness, photo_set: PhotoSet = FACES_DEV
) -> tuple[tuple[RealPhoto, PhotoReport], ...]:
    config = PreflightConfig.for_strictness(level)
    return tuple(
        (p, preflight_photos([p.photo], config, detector=_DETECTOR).photos[0])
        for p in real_set(photo_set)
    )


def assert_floors(result: Tally, floors: dict[str, tuple[int, int]]) -> None:
    for bucket, (right, total) in floors.items():
        assert result.total[bucket] == total, bucket
        assert result.right[bucket] >= right, (bucket, result.line(), result.wrong)


@needs_faces_dev
def test_standard_held_out_floors() -> None:
    held_out = tally(pair for pair in reports(Strictness.STANDARD) if pair[0].part == HELD_OUT)
    assert_floors(held_out, STANDARD_HELD_OUT)


@needs_faces_dev
def test_standard_whole_set_floors() -> None:
    assert_floors(tally(reports(Strictness.STANDARD)), STANDARD_ALL)


def test_commons_floors_at_every_level() -> None:
    standard = tally(reports(Strictness.STANDARD, COMMONS))
    assert_floors(standard, COMMONS_STANDARD)
    assert tally(reports(Strictness.RELAXED, COMMONS)).right == standard.right
    strict = tally(reports(Strictness.STRICT, COMMONS))
    assert (strict.right["noface"], strict.right["group"]) == (116, 5)  # the kitten too


@needs_faces_dev
def test_goals_on_every_labelled_photo() -> None:
    result = tally(pair for s in PHOTO_SETS for pair in reports(Strictness.STANDARD, s))
    assert set(GOALS) == {
        "single",
        "single/light",
        "single/medium",
        "single/dark",
        "group",
        "noface",
    }
    for bucket, goal in GOALS.items():
        assert result.total[bucket] > 0, bucket
        assert result.rate(bucket) >= goal, (bucket, result.line(), result.wrong)
    assert (result.right["noface"], result.total["noface"]) == (132, 134)


def test_refusals_name_the_photo_and_a_face_reason() -> None:
    available = (s for s in PHOTO_SETS if s.available())
    for photo, report in (pair for s in available for pair in reports(Strictness.STANDARD, s)):
        for problem in report.problems:
            assert problem.message.startswith("Photo 1")
            assert len(problem.message) < 160
        if photo.label == "group" and report.problems and photo.source == FACES_DEV.name:
            assert "faces" in report.problems[0].message
        if photo.label == "small" and not report.ok:
            face = next(p for p in report.problems if p.check is Check.FACE)
            assert "too small" in face.message or "can't find" in face.message


def test_crowds_too_far_to_see_are_refused_for_no_face_and_other_groups_for_their_count() -> None:
    groups = {p.name: r for p, r in reports(Strictness.STANDARD, COMMONS) if p.label == "group"}
    kinds = {name: report.problems[0].kind for name, report in groups.items()}
    for crowd in ("world-music__japan.webp", "world-music__orchestra.webp"):
        assert kinds.pop(crowd) is ProblemKind.NO_FACE
    assert set(kinds.values()) == {ProblemKind.MANY_FACES}
    assert all("faces" in groups[name].problems[0].message for name in kinds)


@needs_faces_dev
def test_relaxed_accepts_all_standard_does_and_strict_refuses_all_standard_does() -> None:
    relaxed, standard, strict = ({p.name: r.ok for p, r in reports(level)} for level in Strictness)
    assert all(relaxed[name] for name, ok in standard.items() if ok)
    assert all(not strict[name] for name, ok in standard.items() if not ok)
    # What each level changes, measured: relaxed lets 2 tiny faces through (11-12 %
    # of the frame); strict refuses 4 clear faces (small, bright or soft), the bust
    # and the skater (19 %).
    assert sum(relaxed.values()) - sum(standard.values()) == 2
    assert sum(standard.values()) - sum(strict.values()) == 6
