"""Measure preflight: per-category catch rate, false refusals, time per 12 MP photo,
and a comparison of the face detectors that were candidates.

    .venv/bin/python -m benchmarks.preflight_bench

Needs the dev requirements (scikit-image supplies the photos). Candidates that
are not installed are skipped; MediaPipe's bundled BlazeFace model was measured
the same way in a separate virtualenv (it needs numpy < 2 and opencv-contrib,
which clash with this project's pins): see docs/preflight.md.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from avatar_api.preflight import (
    FaceBox,
    FaceDetector,
    HaarFaceDetector,
    PreflightConfig,
    load_gray,
    preflight_photos,
)
from tests.preflight_set import Case, jpeg, labelled_set, twelve_megapixel

CATEGORIES = ("clear_face", "no_face", "group", "small_face", "blurred", "dark", "washed_out")


@dataclass
class Candidate:
    name: str
    make: Callable[[], FaceDetector]


class SkimageLBP:
    """scikit-image's own LBP cascade (its XML does not load in OpenCV 4.13)."""

    def __init__(self) -> None:
        from skimage import data
        from skimage.feature import Cascade

        self.cascade = Cascade(data.lbp_frontal_face_cascade_filename())

    def detect(self, gray: np.ndarray) -> list[FaceBox]:
        found = self.cascade.detect_multi_scale(
            gray, scale_factor=1.2, step_ratio=1, min_size=(24, 24), max_size=(480, 480)
        )
        return [FaceBox(f["c"], f["r"], max(f["width"], f["height"])) for f in found]


class MediaPipeBlazeFace:
    """BlazeFace short-range, bundled in mediapipe<=0.10.21 (legacy solutions API)."""

    def __init__(self) -> None:
        import mediapipe as mp

        self.model = mp.solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=0.5
        )

    def detect(self, gray: np.ndarray) -> list[FaceBox]:
        h, w = gray.shape
        result = self.model.process(cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB))
        boxes = []
        for det in result.detections or []:
            box = det.location_data.relative_bounding_box
            side = int(max(box.width * w, box.height * h))
            boxes.append(FaceBox(int(box.xmin * w), int(box.ymin * h), side))
        return boxes


CANDIDATES = [
    Candidate("haar alt2 (chosen)", HaarFaceDetector),
    Candidate("haar default", lambda: HaarFaceDetector("haarcascade_frontalface_default.xml")),
    Candidate("haar alt2 scale 1.2", lambda: HaarFaceDetector(scale_factor=1.2)),
    Candidate("skimage LBP", SkimageLBP),
    Candidate("mediapipe BlazeFace", MediaPipeBlazeFace),
]


def lfw_patches() -> list[tuple[bool, np.ndarray]]:
    """scikit-image's LFW subset: 100 faces, 100 non-faces, 25 px, padded to 160."""
    from skimage import data

    patches = []
    for i, patch in enumerate(data.lfw_subset()):
        gray = cv2.resize((patch * 255).astype(np.uint8), (96, 96), interpolation=cv2.INTER_CUBIC)
        patches.append((i < 100, cv2.copyMakeBorder(gray, 32, 32, 32, 32, cv2.BORDER_REPLICATE)))
    return patches


def caught(case: Case, checks: set[str]) -> bool:
    return {c.value for c in case.expect} <= checks if case.expect else not checks


def category_table(cases: tuple[Case, ...], detector: FaceDetector) -> dict[str, tuple[int, int]]:
    table: dict[str, tuple[int, int]] = {}
    for case in cases:
        report = preflight_photos([case.photo], PreflightConfig(), detector=detector)
        got = {p.check.value for p in report.problems}
        hits, total = table.get(case.category, (0, 0))
        table[case.category] = (hits + caught(case, got), total + 1)
    return table


def time_12mp(detector: FaceDetector, runs: int = 7) -> float:
    photo = jpeg(twelve_megapixel())
    preflight_photos([photo], detector=detector)  # warm-up: cascade load
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        preflight_photos([photo], detector=detector)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def decode_ms(runs: int = 7) -> float:
    photo = jpeg(twelve_megapixel())
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        load_gray(photo)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    cases = labelled_set()
    patches = lfw_patches()
    print(f"labelled set: {len(cases)} photos; LFW patches: {len(patches)}")
    print(f"decode of a 12 MP JPEG to the 640 px gray copy: {decode_ms():.1f} ms\n")
    header = " ".join(f"{c[:10]:>10}" for c in CATEGORIES)
    print(f"{'detector':22} {header} {'false ref.':>10} {'LFW TP':>7} {'LFW FP':>7} {'ms/12MP':>8}")
    for candidate in CANDIDATES:
        try:
            detector = candidate.make()
        except ImportError as exc:
            print(f"{candidate.name:22} skipped ({exc.name} not installed)")
            continue
        table = category_table(cases, detector)
        cells = " ".join(
            f"{table[c][0]:>4}/{table[c][1]:<5}" if c in table else f"{'-':>10}" for c in CATEGORIES
        )
        hits, total = table["clear_face"]
        lfw_tp = sum(1 for face, g in patches if face and detector.detect(g))
        lfw_fp = sum(1 for face, g in patches if not face and detector.detect(g))
        print(
            f"{candidate.name:22} {cells} {total - hits:>10} {lfw_tp:>7} {lfw_fp:>7}"
            f" {time_12mp(detector):>8.0f}"
        )
    print("\ncells: photos whose verdict matched the label / photos in the category")
    print("false ref.: clear single-face photos refused for any reason")


if __name__ == "__main__":
    main()
