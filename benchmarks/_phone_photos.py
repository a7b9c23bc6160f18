"""Four distinct 12-megapixel phone photos of one face, built once per process.

Each is the astronaut from ``tests/preflight_set.py`` (the face preflight's own
"clear face" material) pasted into a different 4000×3000 scene or mirrored, so
no two are duplicates, saved as a quality-92 JPEG carrying EXIF with a GPS
position, like a phone writes it, with some sensor grain (about 3 MB each).
:func:`check_upload` proves in advance that the set passes the bot's photo
pipeline and preflight.
"""

from __future__ import annotations

import io
from functools import cache

import numpy as np
from PIL import Image, ImageOps

from avatar_api.photos import PhotoLimits, prepare_photo
from avatar_api.preflight import preflight_photos
from tests.photo_factory import exif_bytes
from tests.preflight_set import portrait_in_scene

SIZE = (4000, 3000)
SENSOR_NOISE = 6.0  # grain brings the files to about 3 MB each, like real phone photos
# (background, face as a fraction of the short side, mirrored)
VARIANTS: tuple[tuple[str, float, bool], ...] = (
    ("rocket", 0.18, False),
    ("coffee", 0.20, False),
    ("rocket", 0.16, True),
    ("coffee", 0.18, True),
)


def _with_grain(image: Image.Image, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    pixels = np.asarray(image, dtype=np.int16)
    pixels = pixels + rng.normal(0, SENSOR_NOISE, pixels.shape).astype(np.int16)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _jpeg_with_exif(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92, exif=exif_bytes(orientation=1, gps=True))
    return buffer.getvalue()


@cache
def phone_photos() -> tuple[tuple[str, bytes], ...]:
    """``(filename, bytes)`` pairs, as SimCord takes attachment options."""
    photos = []
    for number, (scene, fraction, mirrored) in enumerate(VARIANTS, start=1):
        image = portrait_in_scene(SIZE, fraction, scene)
        if mirrored:
            image = ImageOps.mirror(image)
        photos.append((f"IMG_{number:04d}.jpg", _jpeg_with_exif(_with_grain(image, number))))
    return tuple(photos)


def check_upload(photos: tuple[tuple[str, bytes], ...]) -> None:
    """Raise if the set would not pass the bot's preparation and preflight."""
    limits = PhotoLimits()
    for name, data in photos:
        if len(data) > limits.max_bytes:
            raise RuntimeError(f"{name} is {len(data)} bytes, over the upload limit")
    prepared = [
        prepare_photo(data, index=i, limits=limits) for i, (_, data) in enumerate(photos, 1)
    ]
    report = preflight_photos(prepared)
    if not report.ok:
        problems = "; ".join(p.message for p in report.problems)
        raise RuntimeError(f"the benchmark's photos fail preflight: {problems}")
