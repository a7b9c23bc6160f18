"""Preflight: catch the photos HeyGen will refuse before they cost a request.

Every prepared photo (see :mod:`avatar_api.photos`) is checked for one clearly
visible face, sharpness, exposure, and duplicates within the upload. The work is
plain CPU work on a small grayscale copy; :func:`preflight_photos_async` runs it
off the event loop. Nothing here knows about Discord: the bot turns
:attr:`PreflightReport.problems` into a reply.

The face detector is OpenCV's Haar cascade ``haarcascade_frontalface_alt2``,
which ships inside ``opencv-python-headless`` 4.x and loads offline. Why this one
and how every threshold was chosen: ``docs/preflight.md`` and
``benchmarks/preflight_bench.py``.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import cv2
import numpy as np
from PIL import Image

from .exceptions import PhotoError
from .models import MimeType, Photo
from .workers import run_photo_work

log = logging.getLogger(__name__)

#: Long side of the grayscale copy every check works on. Cascades on full-size
#: photos find "faces" in hair and fabric; 640 keeps faces of 5 % of the short
#: side detectable (24 px, the cascade's window) and keeps a 12 MP photo fast.
WORKING_LONG_SIDE = 640
HAAR_CASCADE = "haarcascade_frontalface_alt2.xml"


class Check(StrEnum):
    FACE = "face"
    SHARPNESS = "sharpness"
    EXPOSURE = "exposure"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class PreflightConfig:
    """Which checks run and every threshold they use (defaults from measurements).

    ``min_face_fraction``: the face box's side over the photo's short side.
    ``secondary_face_ratio``: another face counts as a second person when its side
    is at least this share of the largest face's (a stranger far behind does not).
    ``blur_threshold``: variance of the Laplacian over the face (or whole photo)
    at the working size; below it the photo is refused as blurry.
    ``dark_limit``/``bright_limit``: mean brightness 0–255 of the working copy.
    ``max_clipped_fraction``: share of pure-white pixels (>= 250) above which the
    photo is washed out even if its mean is not (a blown-out face).
    ``duplicate_distance``: largest Hamming distance between two 64-bit dHashes
    that still counts as the same photo.
    """

    enabled: frozenset[Check] = frozenset(Check)
    min_face_fraction: float = 0.10
    secondary_face_ratio: float = 0.5
    blur_threshold: float = 35.0
    dark_limit: float = 45.0
    bright_limit: float = 225.0
    max_clipped_fraction: float = 0.4
    duplicate_distance: int = 6

    def __post_init__(self) -> None:
        object.__setattr__(self, "enabled", frozenset(Check(c) for c in self.enabled))
        if not 0 < self.min_face_fraction < 1:
            raise ValueError("min_face_fraction must be between 0 and 1")
        if not 0 < self.secondary_face_ratio <= 1:
            raise ValueError("secondary_face_ratio must be in (0, 1]")
        if not 0 <= self.dark_limit < self.bright_limit <= 255:
            raise ValueError("need 0 <= dark_limit < bright_limit <= 255")
        if self.blur_threshold < 0 or not 0 <= self.duplicate_distance <= 64:
            raise ValueError("blur_threshold must be >= 0 and duplicate_distance in 0..64")

    @classmethod
    def from_disabled(cls, disabled: Iterable[str], **thresholds: Any) -> PreflightConfig:
        """A config with the server's ``disabled_checks`` (Check values) turned off.

        Unknown names are ignored (logged), so a stored setting from a newer or
        older version never breaks an upload.
        """
        known = {c.value for c in Check}
        unknown = sorted(set(disabled) - known)
        if unknown:
            log.warning("ignoring unknown preflight checks: %s", ", ".join(unknown))
        off = {Check(name) for name in disabled if name in known}
        return cls(enabled=frozenset(Check) - off, **thresholds)

    def is_on(self, check: Check) -> bool:
        return check in self.enabled


class ProblemKind(StrEnum):
    """What exactly is wrong, so a reply can group the same problem of several photos."""

    NO_FACE = "no_face"
    MANY_FACES = "many_faces"
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
    message: str
    kind: ProblemKind | None = None
    detail: float | None = None


@dataclass(frozen=True, slots=True)
class FaceBox:
    x: int
    y: int
    size: int


@dataclass(frozen=True, slots=True)
class PhotoReport:
    """Verdict and measurements for one photo (None: that check did not run).

    ``faces`` counts people (see ``secondary_face_ratio``); ``face_fraction`` is the
    largest face's side over the short side of the photo.
    """

    index: int
    width: int
    height: int
    faces: int | None
    face_fraction: float | None
    blur_score: float | None
    brightness: float | None
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
    """Finds frontal faces in an 8-bit grayscale image; boxes in its pixels."""

    def detect(self, gray: np.ndarray) -> list[FaceBox]: ...


class HaarFaceDetector:
    """OpenCV Haar cascade from the opencv-python-headless wheel, one per thread.

    ``CascadeClassifier.detectMultiScale`` is not documented as thread-safe, so
    each worker thread lazily loads its own classifier (a few ms, once).
    """

    def __init__(
        self,
        cascade: str = HAAR_CASCADE,
        *,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: int = 24,
    ) -> None:
        self.path = cv2.data.haarcascades + cascade
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size
        self._local = threading.local()

    def _classifier(self) -> cv2.CascadeClassifier:
        classifier = getattr(self._local, "classifier", None)
        if classifier is None:
            classifier = cv2.CascadeClassifier(self.path)
            if classifier.empty():
                raise RuntimeError(f"cannot load the face cascade {self.path}")
            self._local.classifier = classifier
            log.debug("loaded face cascade %s in thread %s", self.path, threading.get_ident())
        return classifier

    def detect(self, gray: np.ndarray) -> list[FaceBox]:
        found = self._classifier().detectMultiScale(
            cv2.equalizeHist(gray),
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size),
        )
        return [FaceBox(int(x), int(y), int(max(w, h))) for x, y, w, h in found]


_default_detector: FaceDetector | None = None
_default_lock = threading.Lock()


def default_detector() -> FaceDetector:
    global _default_detector
    with _default_lock:
        if _default_detector is None:
            _default_detector = HaarFaceDetector()
        return _default_detector


# --- measurements -------------------------------------------------------------


def load_gray(photo: Photo, long_side: int = WORKING_LONG_SIDE) -> tuple[np.ndarray, int, int]:
    """A grayscale copy with its long side at most ``long_side``, plus the full size.

    For JPEG, ``draft`` makes libjpeg decode straight to luma at 1/2–1/8 scale:
    a 12 MP photo decodes in a few ms instead of ~100.
    """
    with Image.open(io.BytesIO(photo.data)) as image:
        width, height = image.size
        if photo.mime_type is MimeType.JPEG:
            scale = long_side / max(width, height)
            image.draft("L", (max(1, round(width * scale)), max(1, round(height * scale))))
        gray = image.convert("L")
    gray.thumbnail((long_side, long_side), Image.Resampling.BILINEAR)
    return np.asarray(gray, dtype=np.uint8), width, height


def laplacian_variance(gray: np.ndarray) -> float:
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


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


def _face_region(gray: np.ndarray, face: FaceBox) -> np.ndarray:
    return gray[face.y : face.y + face.size, face.x : face.x + face.size]


# --- one photo ----------------------------------------------------------------


def _people(faces: list[FaceBox], config: PreflightConfig) -> list[FaceBox]:
    """The faces that count as people: the largest, and any nearly as large."""
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
                f"Photo {index}: I can't find a face. Use a photo of you facing the camera, "
                "with your whole face visible and well lit (no sunglasses or mask).",
                ProblemKind.NO_FACE,
            )
        ]
    if len(people) > 1:
        return [
            Problem(
                Check.FACE,
                index,
                f"Photo {index}: I see {len(people)} faces. An avatar needs exactly one "
                "person: crop the photo to one person, or take one of just you.",
                ProblemKind.MANY_FACES,
                len(people),
            )
        ]
    if fraction is not None and fraction < config.min_face_fraction:
        return [
            Problem(
                Check.FACE,
                index,
                f"Photo {index}: your face is too small ({fraction:.0%} of the photo's height"
                f" or width; it needs at least {config.min_face_fraction:.0%}). Move closer"
                " or crop the photo around your head and shoulders.",
                ProblemKind.SMALL_FACE,
                fraction,
            )
        ]
    return []


def check_photo(
    index: int, photo: Photo, config: PreflightConfig, detector: FaceDetector
) -> PhotoReport:
    gray, width, height = load_gray(photo)
    problems: list[Problem] = []

    faces: int | None = None
    fraction: float | None = None
    main_face: FaceBox | None = None
    if config.is_on(Check.FACE):
        people = _people(detector.detect(gray), config)
        faces = len(people)
        if people:
            main_face = people[0]
            fraction = main_face.size / min(gray.shape)
        problems += _face_problems(index, people, fraction, config)

    blur: float | None = None
    if config.is_on(Check.SHARPNESS):
        # On the face when there is one: portrait-mode backgrounds are blurred on purpose.
        region = _face_region(gray, main_face) if main_face else gray
        blur = laplacian_variance(region)
        if blur < config.blur_threshold:
            problems.append(
                Problem(
                    Check.SHARPNESS,
                    index,
                    f"Photo {index} is blurry. Hold the phone still, tap your face to focus, "
                    "and take it in good light; don't use a zoomed-in or screenshot copy.",
                    ProblemKind.BLURRY,
                )
            )

    brightness: float | None = None
    clipped: float | None = None
    if config.is_on(Check.EXPOSURE):
        brightness = float(gray.mean())
        clipped = float(np.count_nonzero(gray >= 250)) / gray.size
        if brightness < config.dark_limit:
            problems.append(
                Problem(
                    Check.EXPOSURE,
                    index,
                    f"Photo {index} is far too dark. Take it facing a window or a lamp, "
                    "with the light in front of you rather than behind.",
                    ProblemKind.DARK,
                )
            )
        elif brightness > config.bright_limit or clipped > config.max_clipped_fraction:
            problems.append(
                Problem(
                    Check.EXPOSURE,
                    index,
                    f"Photo {index} is washed out (too bright). Avoid direct sun or flash "
                    "on your face and don't use a filter that fades the colours.",
                    ProblemKind.WASHED_OUT,
                )
            )

    return PhotoReport(
        index=index,
        width=width,
        height=height,
        faces=faces,
        face_fraction=fraction,
        blur_score=blur,
        brightness=brightness,
        clipped_fraction=clipped,
        dhash=dhash(gray),
        problems=tuple(problems),
    )


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
                        f"Photo {later.index} is the same picture as photo {earlier.index}. "
                        "Send different photos: another angle, expression or outfit helps "
                        "the avatar more.",
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
    if detector is None and config.is_on(Check.FACE):
        detector = default_detector()
    reports: list[PhotoReport] = []
    for index, photo in enumerate(photos, start=1):
        try:
            reports.append(check_photo(index, photo, config, detector))  # type: ignore[arg-type]
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise PhotoError(
                "this photo cannot be read", photo_index=index, reason="undecodable"
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
