"""Photo preparation shared by the CLI and the bot: check, normalise, re-encode.

Every photo a user sends goes through :func:`prepare_photo`: size cap, real type
from its magic number (never the file name or a declared type), then from the
header alone the decompression-bomb guard, animation and minimum-size checks;
only then decode (JPEGs at a reduced scale when they are to be shrunk), scale
down, turn upright per EXIF orientation, convert to 8-bit sRGB (alpha flattened
onto white), and write a fresh JPEG with no metadata at all (no EXIF, GPS, XMP,
ICC profile or comments). Only :class:`PhotoError` ever leaves, whatever the bytes.

Policies worth knowing:

* Multi-image files: a JPEG with extra MPO pictures (many phones write these)
  and a HEIC/HEIF with several images use their primary image. Animated WebP
  and animated PNG are refused (:attr:`PhotoProblem.ANIMATED`): an animation is
  rarely a photo of the user and its first frame is often blank.
* Pillow's own ``Image.MAX_IMAGE_PIXELS`` is never changed; :class:`PhotoLimits`
  carries a stricter per-call limit checked on the header. Pillow still refuses
  anything past twice its global limit (reported the same way) and warns, once,
  between its limit and twice it (~89-179 MP), for files we then refuse.
* Scaling keeps the short side at least ``min_side``: a panorama longer than
  max_side:min_side (4:1 by default) keeps a long side above ``max_side``.

Photos are never written to disk or logged; log lines hold sizes and dimensions.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

import pillow_heif
from PIL import Image, ImageCms, features

from .exceptions import PhotoError
from .magic import ImageKind, sniff_image_kind
from .models import MAX_PHOTOS, MimeType, Photo
from .text import N_
from .workers import run_photo_work

__all__ = ["ImageKind", "sniff_image_kind"]  # re-exported: the photo pipeline's vocabulary

log = logging.getLogger(__name__)

# Depth maps, auxiliary images and embedded thumbnails are never used; skipping
# them saves decode work (and stops a thumbnail being used in place of the photo).
pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class PhotoLimits:
    """What a photo must satisfy, and the size photos are scaled to."""

    max_bytes: int = 10 * MIB
    min_side: int = 512
    max_side: int = 2048
    # 50 MP admits 48/50-megapixel phone photos; a bigger header is a likely bomb.
    max_pixels: int = 50_000_000
    jpeg_quality: int = 90
    max_photos: int = MAX_PHOTOS

    def __post_init__(self) -> None:
        if not 1 <= self.min_side <= self.max_side:
            raise ValueError("PhotoLimits needs 1 <= min_side <= max_side")
        if self.max_pixels < self.min_side * self.min_side:
            raise ValueError("PhotoLimits.max_pixels is below min_side²")
        if not 1 <= self.jpeg_quality <= 95:
            raise ValueError("PhotoLimits.jpeg_quality must be within 1..95")
        if not 1 <= self.max_photos <= MAX_PHOTOS:
            raise ValueError(f"PhotoLimits.max_photos must be within 1..{MAX_PHOTOS}")
        if self.max_bytes < 1:
            raise ValueError("PhotoLimits.max_bytes must be positive")


DEFAULT_LIMITS = PhotoLimits()


class PhotoProblem(StrEnum):
    """Why a photo was refused; the value is :attr:`PhotoError.reason`."""

    TOO_LARGE = "too_large"
    EMPTY = "empty"
    NOT_AN_IMAGE = "not_an_image"
    UNSUPPORTED = "unsupported"
    UNDECODABLE = "undecodable"
    TOO_SMALL = "too_small"
    TOO_MANY_PIXELS = "too_many_pixels"
    ANIMATED = "animated"
    NO_PHOTOS = "no_photos"
    TOO_MANY_PHOTOS = "too_many_photos"


_PILLOW_FORMATS: dict[ImageKind, str] = {
    ImageKind.JPEG: "JPEG",
    ImageKind.PNG: "PNG",
    ImageKind.WEBP: "WEBP",
    ImageKind.HEIF: "HEIF",
}
if features.check("avif"):
    _PILLOW_FORMATS[ImageKind.AVIF] = "AVIF"

SUPPORTED_KINDS: frozenset[ImageKind] = frozenset(_PILLOW_FORMATS)

_ANIMATABLE_KINDS = frozenset({ImageKind.WEBP, ImageKind.PNG})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "La", "RGBa"})
_EXIF_ORIENTATION = 0x0112
# What turns a stored image upright for each EXIF orientation (as ImageOps.exif_transpose).
_ORIENTATION_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_DRAFT_SLACK = 0.95
_HIGH_DEPTH_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N", "F"})


def check_photo_count(count: int, *, limits: PhotoLimits = DEFAULT_LIMITS) -> None:
    """Refuse a request with no photo or too many, before anything is downloaded."""
    if count < 1:
        raise PhotoError(
            N_(
                "no photo was attached — attach 1 to {max_photos} photos of yourself",
                max_photos=limits.max_photos,
            ),
            reason=PhotoProblem.NO_PHOTOS,
        )
    if count > limits.max_photos:
        raise PhotoError(
            N_(
                "{count} photos were attached; at most {max_photos} are accepted "
                "— leave some out and try again",
                count=count,
                max_photos=limits.max_photos,
            ),
            reason=PhotoProblem.TOO_MANY_PHOTOS,
        )


def check_photo_size(size: int, *, index: int = 1, limits: PhotoLimits = DEFAULT_LIMITS) -> None:
    """Refuse an empty or oversized photo; usable on a declared size before download."""
    if size <= 0:
        raise PhotoError(
            N_("the file is empty — attach the photo again"),
            photo_index=index,
            reason=PhotoProblem.EMPTY,
        )
    if size > limits.max_bytes:
        raise PhotoError(
            N_(
                "it is {size}; photos can be at most {max_size} "
                "— send a smaller or compressed copy",
                size=_megabytes(size),
                max_size=_megabytes(limits.max_bytes),
            ),
            photo_index=index,
            reason=PhotoProblem.TOO_LARGE,
        )


def check_photo_kind(data: bytes, *, index: int = 1) -> ImageKind:
    """The photo's real format, or a PhotoError if it is not one we can use."""
    kind = sniff_image_kind(data)
    if kind is None:
        raise PhotoError(
            N_("it is not a photo file — send a JPEG, PNG, WebP or HEIC photo"),
            photo_index=index,
            reason=PhotoProblem.NOT_AN_IMAGE,
        )
    if kind not in SUPPORTED_KINDS:
        raise PhotoError(
            N_(
                "{kind} images are not supported — send a JPEG, PNG, WebP or HEIC photo instead",
                kind=kind.value,
            ),
            photo_index=index,
            reason=PhotoProblem.UNSUPPORTED,
        )
    return kind


def check_photo_bytes(
    data: bytes, *, index: int = 1, limits: PhotoLimits = DEFAULT_LIMITS
) -> ImageKind:
    """The cheap checks of a downloaded photo (its real size, its magic number)."""
    check_photo_size(len(data), index=index, limits=limits)
    return check_photo_kind(data, index=index)


def prepare_photo(data: bytes, *, index: int = 1, limits: PhotoLimits = DEFAULT_LIMITS) -> Photo:
    """Check one photo and return it as a clean, bounded JPEG.

    CPU-bound and synchronous: call it through :func:`prepare_photos` (or
    :func:`~avatar_api.workers.run_photo_work`) from async code. Raises only :class:`PhotoError`,
    whatever the bytes; ``index`` (1-based) names the photo in messages.
    """
    kind = check_photo_bytes(data, index=index, limits=limits)
    started = time.perf_counter()
    try:
        photo = _reencode(data, kind, index, limits)
    except PhotoError as exc:
        log.info("photo %d refused (%s): %d bytes of %s", index, exc.reason, len(data), kind)
        raise
    except Image.DecompressionBombError:
        log.info("photo %d refused by Pillow's bomb guard: %d bytes", index, len(data))
        raise PhotoError(
            N_("it has far too many pixels to be a normal photo — send a smaller copy"),
            photo_index=index,
            reason=PhotoProblem.TOO_MANY_PIXELS,
        ) from None
    except Exception as exc:  # any decoder failure on hostile or damaged bytes
        log.info(
            "photo %d undecodable (%s): %d bytes of %s",
            index,
            type(exc).__name__,
            len(data),
            kind,
        )
        raise PhotoError(
            N_(
                "it could not be read; the file may be damaged or incomplete "
                "— send it again or use another photo"
            ),
            photo_index=index,
            reason=PhotoProblem.UNDECODABLE,
        ) from exc
    log.debug(
        "photo %d prepared: %d bytes of %s -> %d bytes of JPEG in %.0f ms",
        index,
        len(data),
        kind,
        photo.size,
        (time.perf_counter() - started) * 1000,
    )
    return photo


async def prepare_photos(
    blobs: Sequence[bytes], *, limits: PhotoLimits = DEFAULT_LIMITS
) -> tuple[Photo, ...]:
    """Prepare every photo off the event loop; errors name the 1-based photo index.

    The cheap checks (count, sizes, magic numbers) run first for all photos, so
    a wrong file is reported before any decoding. Photos are then decoded one
    after another in a worker thread, which bounds a request's memory to one
    decoded image at a time.
    """
    check_photo_count(len(blobs), limits=limits)
    for index, data in enumerate(blobs, start=1):
        check_photo_bytes(data, index=index, limits=limits)
    photos: list[Photo] = []
    for index, data in enumerate(blobs, start=1):
        photo = await run_photo_work(prepare_photo, data, index=index, limits=limits)
        photos.append(photo)
    return tuple(photos)


def _reencode(data: bytes, kind: ImageKind, index: int, limits: PhotoLimits) -> Photo:
    pillow_format = _PILLOW_FORMATS.get(kind)
    assert pillow_format is not None
    with Image.open(io.BytesIO(data), formats=[pillow_format]) as opened:
        # Nothing is decoded yet: these checks read only the header.
        _check_pixels(opened.size, index, limits)
        _check_still(opened, kind, index)
        _check_min_side(opened, index, limits)
        if kind is ImageKind.JPEG:
            _draft_jpeg(opened, limits)
        opened.load()
        image = _normalise(opened, _orientation(opened), limits)
    try:
        body = _encode_jpeg(image, limits.jpeg_quality)
    finally:
        image.close()
    return Photo(body, MimeType.JPEG)


def _draft_jpeg(image: Image.Image, limits: PhotoLimits) -> None:
    """Let libjpeg decode at 1/2, 1/4 or 1/8 scale when that still fills the limits.

    A scaled decode may land up to ``_DRAFT_SLACK`` below max_side (a 4032 px
    phone photo decodes at 2016 px): four times fewer pixels to decode and hold
    for an invisible difference. The short side never drops below min_side.
    """
    slack_side = max(limits.min_side, int(limits.max_side * _DRAFT_SLACK))
    target = _fit(image.size, replace(limits, max_side=slack_side))
    if target is not None:
        image.draft(None, target)


def _check_pixels(size: tuple[int, int], index: int, limits: PhotoLimits) -> None:
    width, height = size
    if width * height > limits.max_pixels:
        raise PhotoError(
            N_(
                "it is {width}×{height} pixels ({megapixels} megapixels); at most "
                "{max_megapixels} megapixels are accepted — send a smaller copy",
                width=width,
                height=height,
                megapixels=_megapixels(width * height),
                max_megapixels=_megapixels(limits.max_pixels),
            ),
            photo_index=index,
            reason=PhotoProblem.TOO_MANY_PIXELS,
        )


def _check_still(image: Image.Image, kind: ImageKind, index: int) -> None:
    if kind in _ANIMATABLE_KINDS and getattr(image, "n_frames", 1) > 1:
        raise PhotoError(
            N_("it is an animation — send a still photo instead"),
            photo_index=index,
            reason=PhotoProblem.ANIMATED,
        )


def _check_min_side(image: Image.Image, index: int, limits: PhotoLimits) -> None:
    # The shortest side is the same whatever the EXIF orientation, so the header
    # suffices; only the message needs the size as the user sees the photo.
    if min(image.size) >= limits.min_side:
        return
    width, height = _oriented_size(image)
    raise PhotoError(
        N_(
            "it is {width}×{height} pixels; HeyGen needs at least "
            "{min_side}×{min_side} — use a larger, less cropped photo",
            width=width,
            height=height,
            min_side=limits.min_side,
        ),
        photo_index=index,
        reason=PhotoProblem.TOO_SMALL,
    )


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation, 1 (upright) if absent or not a number."""
    value = image.getexif().get(_EXIF_ORIENTATION)
    return value if isinstance(value, int) else 1


def _oriented_size(image: Image.Image) -> tuple[int, int]:
    """The size as displayed: EXIF orientations 5 to 8 swap width and height."""
    width, height = image.size
    return (height, width) if _orientation(image) in (5, 6, 7, 8) else (width, height)


def _fit(size: tuple[int, int], limits: PhotoLimits) -> tuple[int, int] | None:
    """The size to scale down to, or None if the photo is already within ``max_side``.

    The long side goes down to ``max_side``, but the short side never below
    ``min_side``: a panorama beyond max_side:min_side keeps a longer long side.
    """
    width, height = size
    longest, shortest = max(width, height), min(width, height)
    if longest <= limits.max_side:
        return None
    scale = max(limits.max_side / longest, min(1.0, limits.min_side / shortest))
    if scale >= 1.0:
        return None
    return max(1, round(width * scale)), max(1, round(height * scale))


def _normalise(image: Image.Image, orientation: int, limits: PhotoLimits) -> Image.Image:
    """A new upright 8-bit sRGB ``RGB`` image scaled to the limits, with an empty ``info``.

    It is scaled before it is turned upright (the fit does not depend on the
    orientation), so the transpose copies the small image, not the decoded one.
    Each step's input is closed once its output exists; ``image`` is the caller's.
    """
    icc_profile = image.info.get("icc_profile")
    working = image

    def step(new: Image.Image) -> Image.Image:
        if new is not working and working is not image:
            working.close()
        return new

    working = step(_resizable_mode(working))
    target = _fit(working.size, limits)
    if target is not None:
        working = step(working.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0))
    transpose = _ORIENTATION_TRANSPOSE.get(orientation)
    if transpose is not None:
        working = step(working.transpose(transpose))
    if icc_profile:
        working = step(_to_srgb(working, icc_profile))
    if working.mode in _ALPHA_MODES:
        working = step(_flatten_on_white(working))
    if working.mode != "RGB" or working is image:
        working = step(working.convert("RGB"))
    working.info.clear()
    return working


def _resizable_mode(image: Image.Image) -> Image.Image:
    """The image in a mode LANCZOS resizes and ICC transforms read: L, RGB, RGBA or CMYK."""
    mode = image.mode
    if mode in _HIGH_DEPTH_MODES:
        return _to_8bit_gray(image)
    if mode in _ALPHA_MODES or "transparency" in image.info:
        return image if mode == "RGBA" else image.convert("RGBA")
    if mode in ("RGB", "L", "CMYK"):
        return image
    return image.convert("RGB")


def _to_8bit_gray(image: Image.Image) -> Image.Image:
    """16-bit (or 32-bit) grey to 8 bits by scaling; Pillow's convert would clip at 255."""
    wide = image if image.mode == "I" else image.convert("I")
    return wide.point(lambda value: value * (1 / 256)).convert("L")


def _to_srgb(image: Image.Image, icc_profile: bytes) -> Image.Image:
    """Colours converted from the embedded profile to sRGB; unchanged if it cannot be read."""
    out_mode = "RGBA" if image.mode == "RGBA" else "RGB"
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        if _is_srgb(source) and image.mode == out_mode:
            return image
        converted = ImageCms.profileToProfile(
            image, source, _SRGB, outputMode=out_mode, renderingIntent=ImageCms.Intent.PERCEPTUAL
        )
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        # A broken or mismatched profile is not worth refusing a photo for.
        log.debug("embedded ICC profile (%d bytes) ignored", len(icc_profile))
        return image
    assert converted is not None
    return converted


def _is_srgb(profile: ImageCms.ImageCmsProfile) -> bool:
    description = profile.profile.profile_description or ""
    return "srgb" in description.lower()


_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _flatten_on_white(image: Image.Image) -> Image.Image:
    rgba = image if image.mode == "RGBA" else image.convert("RGBA")
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _encode_jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    # No exif/icc_profile/xmp/comment arguments and an empty info: nothing but pixels.
    image.save(buffer, format="JPEG", quality=quality, optimize=False, progressive=False)
    return buffer.getvalue()


def _megabytes(size: int) -> str:
    return f"{size / MIB:.1f} MB".replace(".0 MB", " MB")


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1_000_000:.0f}"
