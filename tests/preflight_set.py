"""A labelled photo set for preflight, built in memory from photos scikit-image ships.

Only two bundled photographs show people: ``astronaut`` (a frontal portrait,
face box about 93 px in 512) and ``camera`` (a cameraman in profile, looking
into his viewfinder: no frontal face, which HeyGen would not accept either).
Everything else is derived with Pillow: crops, rotations, rescaling up to
12 MP, group shots, small faces in big scenes, blur, bad exposure, re-encoded
duplicates. Nothing is downloaded; the set is built once per process.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps
from skimage import data

from avatar_api.models import Photo
from avatar_api.preflight import Check

# Where the astronaut's face is in the 512×512 original (x, y, side): the scale every
# derived photo is built to. Measured with a Haar cascade; the CNN's box is 1.2× larger.
ASTRONAUT_FACE = (177, 67, 93)


@dataclass(frozen=True)
class Case:
    """One labelled photo; ``expect`` holds the checks that must refuse it (empty: pass)."""

    name: str
    category: str
    photo: Photo
    expect: frozenset[Check]

    @property
    def should_pass(self) -> bool:
        return not self.expect


@dataclass(frozen=True)
class UploadCase:
    """Several photos sent together; ``duplicate`` says whether one repeats another."""

    name: str
    photos: tuple[Photo, ...]
    duplicate: bool


def jpeg(image: Image.Image, quality: int = 90) -> Photo:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return Photo.from_bytes(buffer.getvalue())


def rgb(array: np.ndarray) -> Image.Image:
    return Image.fromarray(array).convert("RGB")


@cache
def astronaut() -> Image.Image:
    return rgb(data.astronaut())


def scene(name: str, size: tuple[int, int]) -> Image.Image:
    """A face-free background scaled (and cropped) to cover ``size``."""
    return ImageOps.fit(rgb(getattr(data, name)()), size, Image.Resampling.LANCZOS)


def scaled(image: Image.Image, factor: float) -> Image.Image:
    w, h = image.size
    return image.resize((round(w * factor), round(h * factor)), Image.Resampling.LANCZOS)


def portrait_in_scene(canvas: tuple[int, int], face_fraction: float, bg: str) -> Image.Image:
    """The astronaut pasted into a scene so her face is ``face_fraction`` of the short side."""
    factor = face_fraction * min(canvas) / ASTRONAUT_FACE[2]
    person = scaled(astronaut(), factor)
    image = scene(bg, canvas)
    image.paste(person, ((canvas[0] - person.width) // 2, canvas[1] - person.height))
    return image


def group(count: int, size: int = 512) -> Image.Image:
    """``count`` people side by side (alternately mirrored), like a group selfie."""
    people = [astronaut() if i % 2 == 0 else ImageOps.mirror(astronaut()) for i in range(count)]
    canvas = Image.new("RGB", (size * count, size))
    for i, person in enumerate(people):
        canvas.paste(person.resize((size, size), Image.Resampling.LANCZOS), (i * size, 0))
    return canvas


def twelve_megapixel() -> Image.Image:
    """A 4000×3000 phone-sized shot: the astronaut filling the height of a wide frame."""
    return portrait_in_scene((4000, 3000), 0.18, "rocket")


def _clear_faces() -> list[tuple[str, Image.Image]]:
    a = astronaut()
    x, y, side = ASTRONAUT_FACE
    head_and_shoulders = a.crop((x - side, max(0, y - side // 2), x + 2 * side, y + 3 * side))
    return [
        ("astronaut 512", a),
        ("astronaut 1024", scaled(a, 2)),
        ("astronaut 2048", scaled(a, 4)),
        ("mirrored", ImageOps.mirror(scaled(a, 1.5))),
        ("rotated +8", scaled(a, 1.5).rotate(8, Image.Resampling.BICUBIC, fillcolor="gray")),
        ("rotated -8", scaled(a, 1.5).rotate(-8, Image.Resampling.BICUBIC, fillcolor="gray")),
        ("head and shoulders", scaled(head_and_shoulders, 2)),
        ("jpeg quality 50", Image.open(io.BytesIO(jpeg(scaled(a, 1.5), 50).data))),
        ("a bit dark", ImageEnhance.Brightness(scaled(a, 1.5)).enhance(0.6)),
        ("a bit bright", ImageEnhance.Brightness(scaled(a, 1.5)).enhance(1.3)),
        ("in a landscape 2048x1536", portrait_in_scene((2048, 1536), 0.2, "coffee")),
        ("portrait 1536x2048", portrait_in_scene((1536, 2048), 0.16, "rocket")),
        ("12 MP", twelve_megapixel()),
    ]


_NO_FACE_SCENES = (
    "coffee",
    "rocket",
    "chelsea",
    "brick",
    "grass",
    "gravel",
    "coins",
    "clock",
    "hubble_deep_field",
    "retina",
    "immunohistochemistry",
    "page",
    "colorwheel",
)


def _no_faces() -> list[tuple[str, Image.Image]]:
    cases = [(name, scene(name, (1024, 768))) for name in _NO_FACE_SCENES]
    cases.append(("cameraman in profile", rgb(data.camera())))
    motorcycle = rgb(data.stereo_motorcycle()[0])
    cases.append(("motorcycle", ImageOps.fit(motorcycle, (1024, 768), Image.Resampling.LANCZOS)))
    return cases


def _blurred() -> list[tuple[str, Image.Image]]:
    big = scaled(astronaut(), 2)
    return [
        (f"gaussian r={r} at 1024", big.filter(ImageFilter.GaussianBlur(r))) for r in (3, 5, 8)
    ] + [
        ("gaussian r=2 at 512", astronaut().filter(ImageFilter.GaussianBlur(2))),
        ("12 MP gaussian r=20", twelve_megapixel().filter(ImageFilter.GaussianBlur(20))),
    ]


def _exposure() -> list[tuple[str, str, Image.Image]]:
    base = scaled(astronaut(), 1.5)
    white = Image.new("RGB", base.size, "white")
    return [
        ("dark", "brightness x0.15", ImageEnhance.Brightness(base).enhance(0.15)),
        ("dark", "brightness x0.25", ImageEnhance.Brightness(base).enhance(0.25)),
        ("dark", "brightness x0.3", ImageEnhance.Brightness(base).enhance(0.3)),
        ("washed_out", "80% white haze", Image.blend(base, white, 0.8)),
        ("washed_out", "90% white haze", Image.blend(base, white, 0.9)),
        ("washed_out", "brightness x3 (blown out)", ImageEnhance.Brightness(base).enhance(3)),
    ]


@cache
def labelled_set() -> tuple[Case, ...]:
    face, sharp, exposure = (
        frozenset({Check.FACE}),
        frozenset({Check.SHARPNESS}),
        frozenset({Check.EXPOSURE}),
    )
    cases = [Case(n, "clear_face", jpeg(i), frozenset()) for n, i in _clear_faces()]
    cases += [Case(n, "no_face", jpeg(i), face) for n, i in _no_faces()]
    cases += [Case(f"group of {n}", "group", jpeg(group(n)), face) for n in (2, 3, 4)]
    cases.append(Case("group, one half size", "group", jpeg(_front_and_back()), face))
    cases += [
        Case(
            f"face {f:.0%} of 2048x1536",
            "small_face",
            jpeg(portrait_in_scene((2048, 1536), f, "rocket")),
            face,
        )
        for f in (0.04, 0.06, 0.08)
    ]
    cases.append(
        Case(
            "face 6% of 12 MP",
            "small_face",
            jpeg(portrait_in_scene((4000, 3000), 0.06, "coffee")),
            face,
        )
    )
    cases += [Case(n, "blurred", jpeg(i), sharp) for n, i in _blurred()]
    cases += [Case(n, cat, jpeg(i), exposure) for cat, n, i in _exposure()]
    return tuple(cases)


def _front_and_back() -> Image.Image:
    canvas = scene("coffee", (1536, 1024))
    canvas.paste(scaled(astronaut(), 1.6), (0, 1024 - 819))
    canvas.paste(scaled(ImageOps.mirror(astronaut()), 1.0), (1000, 1024 - 512))
    return canvas


def _reencoded(image: Image.Image, quality: int) -> Photo:
    return jpeg(image, quality)


@cache
def upload_set() -> tuple[UploadCase, ...]:
    a = scaled(astronaut(), 1.5)
    original = jpeg(a)
    return (
        UploadCase("same photo twice", (original, original), True),
        UploadCase("re-encoded at quality 60", (original, _reencoded(a, 60)), True),
        UploadCase("resized to 70%", (original, jpeg(scaled(a, 0.7))), True),
        UploadCase(
            "brightened copy", (original, jpeg(ImageEnhance.Brightness(a).enhance(1.2))), True
        ),
        UploadCase(
            "third photo repeats first",
            (original, jpeg(ImageOps.mirror(a)), _reencoded(a, 75)),
            True,
        ),
        UploadCase("mirrored", (original, jpeg(ImageOps.mirror(a))), False),
        UploadCase(
            "rotated 8 degrees",
            (original, jpeg(a.rotate(8, Image.Resampling.BICUBIC, fillcolor="gray"))),
            False,
        ),
        UploadCase("head-and-shoulders crop", (original, labelled_set()[6].photo), False),
        UploadCase(
            "different scenes",
            (jpeg(scene("coffee", (1024, 768))), jpeg(scene("rocket", (1024, 768)))),
            False,
        ),
    )
