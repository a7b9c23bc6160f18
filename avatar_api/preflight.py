"""Preflight: catch the photos HeyGen will refuse before they cost a request.

Every prepared photo (see :mod:`avatar_api.photos`) is checked for one clearly
visible face, sharpness, exposure, and duplicates within the upload. The work is
plain CPU work on a small grayscale copy; :func:`preflight_photos_async` runs it
off the event loop. Nothing here knows about Discord: the bot turns
:attr:`PreflightReport.problems` into a reply.

The face detector is libfacedetection's CNN (the YuNet family), whose weights are
compiled into the ``yuface`` wheel: nothing is downloaded at run time. Sharpness
and exposure are judged on the face, resampled to :data:`FACE_SIDE` pixels, so the
figures do not depend on the photo's size. Every threshold comes in three
:class:`Strictness` levels measured on labelled real photos. Why this detector and
how every threshold was chosen: ``docs/preflight.md`` and
``benchmarks/preflight_bench.py``.
"""

from __future__ import annotations

import importlib
import io
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import ModuleType
from typing import Any, Protocol

import cv2
import numpy as np
from PIL import Image

from .exceptions import PhotoError
from .models import MimeType, Photo
from .text import N_, LazyText
from .workers import run_photo_work

log = logging.getLogger(__name__)

#: Long side of the colour copy every check works on. The detector finds faces
#: down to about 10 px there (1.5 % of the short side), far below the size
#: refused as too small, and a 12 MP photo stays fast.
WORKING_LONG_SIDE = 640
#: Side of the square the face is resampled to before sharpness and exposure are
#: measured: the smallest face that passes (14 % of 480 px) is about 67 px, so the
#: face is almost always shrunk to it and the scores do not depend on photo size.
FACE_SIDE = 64


class Check(StrEnum):
    FACE = "face"
    SHARPNESS = "sharpness"
    EXPOSURE = "exposure"
    DUPLICATE = "duplicate"


class Strictness(StrEnum):
    """How hard the checks are on borderline photos; the value is what admins pick.

    ``relaxed`` lets dimmer, softer, smaller and fainter faces through;
    ``strict`` asks for a closer, sharper, better lit face. ``standard`` is the
    default: no clear real face refused in the measured set.
    """

    RELAXED = "relaxed"
    STANDARD = "standard"
    STRICT = "strict"


#: The thresholds each level changes (every other field keeps its default).
#: Measured on the tuning half of the labelled real photos: see docs/preflight.md.
STRICTNESS_THRESHOLDS: dict[Strictness, dict[str, float]] = {
    Strictness.RELAXED: {
        "max_turn": 1.25,
        "min_face_score": 0.70,
        "min_face_fraction": 0.10,
        "blur_threshold": 0.04,
        "dark_limit": 75.0,
        "bright_limit": 225.0,
        "max_clipped_fraction": 0.6,
    },
    Strictness.STANDARD: {
        "max_turn": 1.0,
        "min_face_score": 0.75,
        "min_face_fraction": 0.14,
        "blur_threshold": 0.08,
        "dark_limit": 100.0,
        "bright_limit": 210.0,
        "max_clipped_fraction": 0.4,
    },
    Strictness.STRICT: {
        "max_turn": 0.8,
        "min_face_score": 0.85,
        "min_face_fraction": 0.20,
        "blur_threshold": 0.12,
        "dark_limit": 115.0,
        "bright_limit": 200.0,
        "max_clipped_fraction": 0.25,
    },
}


def parse_strictness(value: str | Strictness | None) -> Strictness:
    """The stored level, ``standard`` when absent or unknown (logged), never an error."""
    if value is None:
        return Strictness.STANDARD
    try:
        return Strictness(value)
    except ValueError:
        log.warning("ignoring unknown preflight strictness %r; using standard", value)
        return Strictness.STANDARD


@dataclass(frozen=True, slots=True)
class PreflightConfig:
    """Which checks run and every threshold they use (defaults: ``Strictness.STANDARD``).

    ``min_face_score``: the detector's confidence (0–1) a face needs to count.
    ``max_turn``: how far the face may be turned (0 frontal, 1 the nose level with
    an eye: a head in profile).
    ``min_face_fraction``: the face box's side over the photo's short side.
    ``secondary_face_ratio``: another face counts as a second person when its side
    is at least this share of the largest face's (a stranger far behind does not).
    ``blur_threshold``: variance of the Laplacian over the variance of the pixels,
    on the face resampled to ``FACE_SIDE`` px; below it the photo is blurry. The
    ratio does not change with brightness or contrast, only with detail.
    ``dark_limit``: the face's bright end (95th percentile, 0–255) below which the
    photo is far too dark; the bright end, not the mean, so dark skin in normal
    light is never "too dark".
    ``bright_limit``: the face's mean brightness above which it is washed out.
    ``max_clipped_fraction``: share of the face's pixels at pure white (>= 250)
    above which it is washed out even if its mean is not (a blown-out face).
    ``duplicate_distance``: largest Hamming distance between two 64-bit dHashes
    that still counts as the same photo.
    """

    enabled: frozenset[Check] = frozenset(Check)
    min_face_score: float = 0.75
    max_turn: float = 1.0
    min_face_fraction: float = 0.14
    secondary_face_ratio: float = 0.5
    blur_threshold: float = 0.08
    dark_limit: float = 100.0
    bright_limit: float = 210.0
    max_clipped_fraction: float = 0.4
    duplicate_distance: int = 6

    def __post_init__(self) -> None:
        object.__setattr__(self, "enabled", frozenset(Check(c) for c in self.enabled))
        if not 0 <= self.min_face_score <= 1:
            raise ValueError("min_face_score must be between 0 and 1")
        if self.max_turn <= 0:
            raise ValueError("max_turn must be positive")
        if not 0 < self.min_face_fraction < 1:
            raise ValueError("min_face_fraction must be between 0 and 1")
        if not 0 < self.secondary_face_ratio <= 1:
            raise ValueError("secondary_face_ratio must be in (0, 1]")
        if not 0 <= self.dark_limit < self.bright_limit <= 255:
            raise ValueError("need 0 <= dark_limit < bright_limit <= 255")
        if not 0 < self.max_clipped_fraction <= 1:
            raise ValueError("max_clipped_fraction must be in (0, 1]")
        if self.blur_threshold < 0 or not 0 <= self.duplicate_distance <= 64:
            raise ValueError("blur_threshold must be >= 0 and duplicate_distance in 0..64")

    @classmethod
    def for_strictness(
        cls, strictness: Strictness | str | None = None, **overrides: Any
    ) -> PreflightConfig:
        """The thresholds of one :class:`Strictness` level; keyword overrides win."""
        level = parse_strictness(strictness)
        return cls(**{**STRICTNESS_THRESHOLDS[level], **overrides})

    @classmethod
    def from_disabled(
        cls,
        disabled: Iterable[str],
        strictness: Strictness | str | None = None,
        **thresholds: Any,
    ) -> PreflightConfig:
        """A config from a server's settings: ``disabled_checks`` (Check values) and level.

        Unknown check names and an unknown level are ignored (logged), so a stored
        setting from a newer or older version never breaks an upload.
        """
        known = {c.value for c in Check}
        unknown = sorted(set(disabled) - known)
        if unknown:
            log.warning("ignoring unknown preflight checks: %s", ", ".join(unknown))
        off = {Check(name) for name in disabled if name in known}
        return cls.for_strictness(strictness, enabled=frozenset(Check) - off, **thresholds)

    def is_on(self, check: Check) -> bool:
        return check in self.enabled


class ProblemKind(StrEnum):
    """What exactly is wrong, so a reply can group the same problem of several photos."""

    NO_FACE = "no_face"
    MANY_FACES = "many_faces"
    TURNED_AWAY = "turned_away"
    SMALL_FACE = "small_face"
    BLURRY = "blurry"
    DARK = "dark"
    WASHED_OUT = "washed_out"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason to refuse; ``photo_index`` is 1-based, as members number photos.

    ``detail`` is the number behind the problem: faces seen, the face's share of the
    photo, or the photo this one duplicates.
    """

    check: Check
    photo_index: int
    text: LazyText
    kind: ProblemKind | None = None
    detail: float | None = None

    @property
    def message(self) -> str:
        return str(self.text)


@dataclass(frozen=True, slots=True)
class FaceBox:
    """A face in working-copy pixels: top-left corner, side, detector confidence 0–1,
    and ``turn``: 0 facing the camera, 1 or more turned to the side (see ``_turn``)."""

    x: int
    y: int
    size: int
    score: float = 1.0
    turn: float = 0.0


@dataclass(frozen=True, slots=True)
class PhotoReport:
    """Verdict and measurements for one photo (None: that check did not run).

    ``faces`` counts people (see ``secondary_face_ratio``); ``face_fraction`` is the
    largest face's side over the short side of the photo. ``blur_score``,
    ``brightness`` (mean), ``highlights`` (95th percentile) and ``clipped_fraction``
    are measured on the face, or on the photo's central square when none was found.
    """

    index: int
    width: int
    height: int
    faces: int | None
    face_fraction: float | None
    blur_score: float | None
    brightness: float | None
    highlights: float | None
    clipped_fraction: float | None
    dhash: int
    problems: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True, slots=True)
class PreflightReport:
    photos: tuple[PhotoReport, ...]
    duplicates: tuple[Problem, ...] = ()
    elapsed_ms: float = field(default=0.0, compare=False)

    @property
    def problems(self) -> tuple[Problem, ...]:
        """Every problem of every photo, in photo order, duplicates last."""
        per_photo = tuple(p for report in self.photos for p in report.problems)
        return per_photo + self.duplicates

    @property
    def ok(self) -> bool:
        return not self.problems


class FaceDetector(Protocol):
    """Finds faces in an 8-bit RGB image (H×W×3); boxes in its pixels, any score."""

    def detect(self, rgb: np.ndarray) -> list[FaceBox]: ...


class CnnFaceDetector:
    """libfacedetection's CNN face detector (YuNet family), from the ``yuface`` wheel.

    The weights are compiled into the library: no model file, no download. One
    instance serves every photo thread (``test_detector_is_safe_from_several_threads``
    runs it from four at once). It returns every candidate with its score and how
    far it is turned (from the eyes and the nose); :class:`PreflightConfig`
    decides which count.
    """

    def __init__(self) -> None:
        self._yuface = _load_yuface()

    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        scores, boxes, landmarks = self._yuface.detect(bgr, conf=0.0)
        return [
            FaceBox(int(x), int(y), int(max(w, h)), float(score) / 100, _turn(points))
            for score, (x, y, w, h), points in zip(scores, boxes, landmarks, strict=True)
        ]


def _load_yuface() -> ModuleType:
    """Import the detector with its OpenMP runtime at one thread, unless set otherwise.

    The wheel's libgomp reads OMP_NUM_THREADS once, when it loads. Its default (a
    thread per core, spinning at each barrier) made detection 6× slower on a busy
    2-core host (p50 240 ms against 40 ms); photos already run in parallel in the
    photo pool, one per thread.
    """
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return importlib.import_module("yuface")


def _turn(points: np.ndarray) -> float:
    """0 when the nose is midway between the eyes, 1 when it is level with one eye.

    ``points`` are the detector's five landmarks: right eye, left eye, nose tip,
    mouth corners (x, y each). A head in profile puts the nose beyond both eyes.
    """
    eye_a, eye_b, nose = float(points[0]), float(points[2]), float(points[4])
    half_span = abs(eye_b - eye_a) / 2
    return abs(nose - (eye_a + eye_b) / 2) / max(half_span, 1.0)


_default_detector = CnnFaceDetector()


def default_detector() -> FaceDetector:
    return _default_detector


# --- measurements -------------------------------------------------------------


def load_working(photo: Photo, long_side: int = WORKING_LONG_SIDE) -> tuple[np.ndarray, int, int]:
    """An RGB copy with its long side at most ``long_side``, plus the full size.

    For JPEG, ``draft`` makes libjpeg decode straight at 1/2–1/8 scale: a 12 MP
    photo decodes at 1/4 (1000×750), a fraction of the cost of a full decode.
    """
    with Image.open(io.BytesIO(photo.data)) as image:
        width, height = image.size
        if photo.mime_type is MimeType.JPEG:
            scale = long_side / max(width, height)
            image.draft("RGB", (max(1, round(width * scale)), max(1, round(height * scale))))
        rgb = image.convert("RGB")
    rgb.thumbnail((long_side, long_side), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8), width, height


def sharpness(face: np.ndarray) -> float:
    """Variance of the Laplacian over variance of the pixels: detail, whatever the light."""
    pixels = face.astype(np.float64)
    return float(cv2.Laplacian(pixels, cv2.CV_64F).var() / max(pixels.var(), 1.0))


def dhash(gray: np.ndarray) -> int:
    """64-bit difference hash: brightness gradients of a 9×8 thumbnail.

    Survives re-encoding, resizing and brightness changes; a different photo of
    the same scene differs in many bits.
    """
    small = cv2.resize(gray, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def face_region(gray: np.ndarray, face: FaceBox | None) -> np.ndarray:
    """The face (or, without one, the central square) resampled to FACE_SIDE × FACE_SIDE."""
    height, width = gray.shape
    if face is None:
        side = min(height, width)
        x, y = (width - side) // 2, (height - side) // 2
    else:
        side = face.size
        x, y = face.x, face.y
    region = gray[max(0, y) : max(0, y + side), max(0, x) : max(0, x + side)]
    if region.size == 0:
        return face_region(gray, None)
    shrinking = region.shape[0] >= FACE_SIDE and region.shape[1] >= FACE_SIDE
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(region, (FACE_SIDE, FACE_SIDE), interpolation=interpolation)


# --- one photo ----------------------------------------------------------------


def _people(found: list[FaceBox], config: PreflightConfig) -> list[FaceBox]:
    """The faces that count as people: confident enough, the largest and any nearly as large."""
    faces = [f for f in found if f.score >= config.min_face_score]
    if not faces:
        return []
    largest = max(f.size for f in faces)
    return sorted(
        (f for f in faces if f.size >= config.secondary_face_ratio * largest),
        key=lambda f: -f.size,
    )


def _face_problems(
    index: int, people: list[FaceBox], fraction: float | None, config: PreflightConfig
) -> list[Problem]:
    if not people:
        return [
            Problem(
                Check.FACE,
                index,
                N_(
                    "Photo {index}: I can't find a face. Send one of you facing the camera, "
                    "face uncovered and well lit.",
                    index=index,
                ),
                ProblemKind.NO_FACE,
            )
        ]
    if len(people) > 1:
        return [
            Problem(
                Check.FACE,
                index,
                N_(
                    "Photo {index}: I see {count} faces. An avatar needs one person: "
                    "crop the photo to just you.",
                    index=index,
                    count=len(people),
                ),
                ProblemKind.MANY_FACES,
                len(people),
            )
        ]
    if people[0].turn > config.max_turn:
        return [
            Problem(
                Check.FACE,
                index,
                N_(
                    "Photo {index}: your face is turned away. Look straight at the camera.",
                    index=index,
                ),
                ProblemKind.TURNED_AWAY,
            )
        ]
    if fraction is not None and fraction < config.min_face_fraction:
        return [
            Problem(
                Check.FACE,
                index,
                N_(
                    "Photo {index}: your face is too small ({fraction} of the photo's "
                    "width or height, at least {minimum} needed). "
                    "Move closer or crop to your head and shoulders.",
                    index=index,
                    fraction=f"{fraction:.0%}",
                    minimum=f"{config.min_face_fraction:.0%}",
                ),
                ProblemKind.SMALL_FACE,
                fraction,
            )
        ]
    return []


_REGION_CHECKS = frozenset({Check.FACE, Check.SHARPNESS, Check.EXPOSURE})


def check_photo(
    index: int, photo: Photo, config: PreflightConfig, detector: FaceDetector | None
) -> PhotoReport:
    rgb, width, height = load_working(photo)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    problems: list[Problem] = []

    # The face is also where sharpness and exposure are measured, so it is looked
    # for whenever one of them runs; it is judged only when the face check is on.
    people: list[FaceBox] = []
    if detector is not None and config.enabled & _REGION_CHECKS:
        people = _people(detector.detect(rgb), config)
    main_face = people[0] if people else None

    faces: int | None = None
    fraction: float | None = None
    if config.is_on(Check.FACE):
        faces = len(people)
        fraction = main_face.size / min(gray.shape) if main_face else None
        problems += _face_problems(index, people, fraction, config)

    # On the face, so a portrait-mode background (blurred on purpose) or a dark
    # room behind a well-lit face does not count against the photo.
    region = face_region(gray, main_face)
    blur: float | None = None
    if config.is_on(Check.SHARPNESS):
        blur = sharpness(region)
        if blur < config.blur_threshold:
            problems.append(
                Problem(
                    Check.SHARPNESS,
                    index,
                    N_(
                        "Photo {index} is blurry. Hold the phone still and tap your face to "
                        "focus; don't send a zoomed-in or screenshot copy.",
                        index=index,
                    ),
                    ProblemKind.BLURRY,
                )
            )

    brightness: float | None = None
    highlights: float | None = None
    clipped: float | None = None
    if config.is_on(Check.EXPOSURE):
        brightness = float(region.mean())
        highlights = float(np.percentile(region, 95))
        clipped = float(np.count_nonzero(region >= 250)) / region.size
        problems += _exposure_problems(index, brightness, highlights, clipped, config)

    return PhotoReport(
        index=index,
        width=width,
        height=height,
        faces=faces,
        face_fraction=fraction,
        blur_score=blur,
        brightness=brightness,
        highlights=highlights,
        clipped_fraction=clipped,
        dhash=dhash(gray),
        problems=tuple(problems),
    )


def _exposure_problems(
    index: int, mean: float, highlights: float, clipped: float, config: PreflightConfig
) -> list[Problem]:
    if highlights < config.dark_limit:
        return [
            Problem(
                Check.EXPOSURE,
                index,
                N_(
                    "Photo {index}: your face is far too dark. Face a window or a lamp, "
                    "with the light in front of you rather than behind.",
                    index=index,
                ),
                ProblemKind.DARK,
            )
        ]
    if mean > config.bright_limit or clipped > config.max_clipped_fraction:
        return [
            Problem(
                Check.EXPOSURE,
                index,
                N_(
                    "Photo {index}: your face is washed out (too bright). Avoid direct sun "
                    "or flash, and filters that fade the colours.",
                    index=index,
                ),
                ProblemKind.WASHED_OUT,
            )
        ]
    return []


def _duplicate_problems(reports: Sequence[PhotoReport], config: PreflightConfig) -> list[Problem]:
    problems: list[Problem] = []
    flagged: set[int] = set()
    for later in reports:
        for earlier in reports:
            if earlier.index >= later.index or later.index in flagged:
                continue
            if hamming(earlier.dhash, later.dhash) <= config.duplicate_distance:
                flagged.add(later.index)
                problems.append(
                    Problem(
                        Check.DUPLICATE,
                        later.index,
                        N_(
                            "Photo {later} is the same picture as photo {earlier}. "
                            "Send different photos: another angle, expression or outfit helps "
                            "the avatar more.",
                            later=later.index,
                            earlier=earlier.index,
                        ),
                        ProblemKind.DUPLICATE,
                        earlier.index,
                    )
                )
    return problems


# --- the whole upload ---------------------------------------------------------


def preflight_photos(
    photos: Sequence[Photo],
    config: PreflightConfig | None = None,
    *,
    detector: FaceDetector | None = None,
) -> PreflightReport:
    """Check every photo and report every problem at once (CPU-bound: call off-loop)."""
    config = config or PreflightConfig()
    started = time.perf_counter()
    if detector is None and config.enabled & _REGION_CHECKS:
        detector = default_detector()
    reports: list[PhotoReport] = []
    for index, photo in enumerate(photos, start=1):
        try:
            reports.append(check_photo(index, photo, config, detector))
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise PhotoError(
                N_("this photo cannot be read"), photo_index=index, reason="undecodable"
            ) from exc
    duplicates = _duplicate_problems(reports, config) if config.is_on(Check.DUPLICATE) else []
    elapsed = (time.perf_counter() - started) * 1000
    report = PreflightReport(tuple(reports), tuple(duplicates), elapsed)
    log.info(
        "preflight of %d photo(s): %d problem(s) [%s] in %.0f ms",
        len(photos),
        len(report.problems),
        ", ".join(sorted({p.check.value for p in report.problems})) or "none",
        elapsed,
    )
    return report


async def preflight_photos_async(
    photos: Sequence[Photo],
    config: PreflightConfig | None = None,
    *,
    detector: FaceDetector | None = None,
) -> PreflightReport:
    """:func:`preflight_photos` in a worker thread, so the event loop keeps running."""
    return await run_photo_work(preflight_photos, photos, config, detector=detector)
