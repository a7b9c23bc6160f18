"""Preflight on labelled real photos (``../shared/faces-dev``): accuracy floors.

The floors are the figures measured with the thresholds of each level (see
docs/preflight.md); a change that refuses one more clear face, or lets one more
group or empty photo through, fails here. Held-out photos were never used to
choose a threshold. Skipped, with the reason, where the photos are absent.
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
    Strictness,
    default_detector,
    preflight_photos,
)
from tests import real_faces
from tests.real_faces import HELD_OUT, RealPhoto, Tally, real_set, tally

pytestmark = pytest.mark.skipif(not real_faces.available(), reason=real_faces.MISSING_REASON)

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
def reports(level: Strictness) -> tuple[tuple[RealPhoto, PhotoReport], ...]:
    config = PreflightConfig.for_strictness(level)
    return tuple(
        (p, preflight_photos([p.photo], config, detector=_DETECTOR).photos[0]) for p in real_set()
    )


def assert_floors(result: Tally, floors: dict[str, tuple[int, int]]) -> None:
    for bucket, (right, total) in floors.items():
        assert result.total[bucket] == total, bucket
        assert result.right[bucket] >= right, (bucket, result.line(), result.wrong)


def test_standard_held_out_floors() -> None:
    held_out = tally(pair for pair in reports(Strictness.STANDARD) if pair[0].part == HELD_OUT)
    assert_floors(held_out, STANDARD_HELD_OUT)


def test_standard_whole_set_floors_and_goals() -> None:
    result = tally(reports(Strictness.STANDARD))
    assert_floors(result, STANDARD_ALL)
    # The goals: at most 1 in 100 clear faces refused (none here), no skin tone
    # worse than 1 in 20, and 95 % of group photos refused.
    assert result.rate("single") >= 0.99
    assert all(result.rate(f"single/{tone}") >= 0.95 for tone in real_faces.SKIN_TONES)
    assert result.rate("group") >= 0.95


def test_refusals_name_the_photo_and_a_face_reason() -> None:
    for photo, report in reports(Strictness.STANDARD):
        for problem in report.problems:
            assert problem.message.startswith("Photo 1")
            assert len(problem.message) < 160
        if photo.label == "group" and report.problems:
            assert "faces" in report.problems[0].message
        if photo.label == "small" and not report.ok:
            face = next(p for p in report.problems if p.check is Check.FACE)
            assert "too small" in face.message or "can't find" in face.message


def test_relaxed_accepts_all_standard_does_and_strict_refuses_all_standard_does() -> None:
    relaxed, standard, strict = ({p.name: r.ok for p, r in reports(level)} for level in Strictness)
    assert all(relaxed[name] for name, ok in standard.items() if ok)
    assert all(not strict[name] for name, ok in standard.items() if not ok)
    # What each level changes, measured: relaxed lets 2 tiny faces through (11-12 %
    # of the frame); strict refuses 4 clear faces (small, bright or soft), the bust
    # and the skater (19 %).
    assert sum(relaxed.values()) - sum(standard.values()) == 2
    assert sum(standard.values()) - sum(strict.values()) == 6
