from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import ExifTags, Image

from avatar_api.exceptions import PhotoError
from avatar_api.models import MimeType, Photo
from avatar_api.photos import (
    DEFAULT_LIMITS,
    ImageKind,
    PhotoLimits,
    PhotoProblem,
    check_photo_count,
    check_photo_size,
    prepare_photo,
    prepare_photos,
    sniff_image_kind,
)
from tests import photo_factory as factory


def open_jpeg(photo: Photo) -> Image.Image:
    assert photo.mime_type is MimeType.JPEG
    image = Image.open(io.BytesIO(photo.data))
    assert image.format == "JPEG"
    return image


def assert_no_metadata(photo: Photo) -> None:
    image = open_jpeg(photo)
    assert len(image.getexif()) == 0
    assert not image.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    for key in ("exif", "icc_profile", "xmp", "comment", "photoshop"):
        assert key not in image.info
    for marker in (b"Exif", b"GPS", b"http://ns.adobe.com/xap", b"ICC_PROFILE", b"TestPhone"):
        assert marker not in photo.data
    assert b"\xff\xfe" not in photo.data.split(b"\xff\xda", 1)[0]  # no COM segment


def problem_of(data: bytes, *, index: int = 1, limits: PhotoLimits = DEFAULT_LIMITS) -> PhotoError:
    with pytest.raises(PhotoError) as caught:
        prepare_photo(data, index=index, limits=limits)
    return caught.value


@pytest.fixture(scope="module")
def twelve_mp_jpeg() -> bytes:
    return factory.make_12mp_jpeg()


# --- sniffing ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda: factory.make_jpeg(16, 16), ImageKind.JPEG),
        (lambda: factory.make_png(16, 16), ImageKind.PNG),
        (lambda: factory.make_webp(16, 16), ImageKind.WEBP),
        (lambda: factory.make_heic(64, 64), ImageKind.HEIF),
        (lambda: factory.make_avif(64, 64), ImageKind.AVIF),
        (lambda: factory.make_gif(16, 16), ImageKind.GIF),
        (lambda: factory.make_bmp(16, 16), ImageKind.BMP),
        (lambda: factory.make_tiff(16, 16), ImageKind.TIFF),
        (factory.make_svg, ImageKind.SVG),
        (factory.make_text, None),
        (lambda: b"", None),
        (lambda: b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", None),
    ],
)
def test_sniff_image_kind_reads_magic_numbers(
    make: Callable[[], bytes], kind: ImageKind | None
) -> None:
    assert sniff_image_kind(make()) is kind


def test_sniff_heif_by_compatible_brand() -> None:
    generic = b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1heicmiaf"
    avif = b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1avifmiaf"
    assert sniff_image_kind(generic) is ImageKind.HEIF
    assert sniff_image_kind(avif) is ImageKind.AVIF


# --- good photos ------------------------------------------------------------


@pytest.mark.parametrize(
    ("orientation", "size", "corner"),
    [
        (None, (800, 600), "top-left"),
        (1, (800, 600), "top-left"),
        (3, (800, 600), "bottom-right"),
        (6, (600, 800), "top-right"),
        (8, (600, 800), "bottom-left"),
    ],
)
def test_jpeg_orientation_is_applied(
    orientation: int | None, size: tuple[int, int], corner: str
) -> None:
    data = factory.make_jpeg(800, 600, exif_orientation=orientation, gps=True)
    photo = prepare_photo(data)
    image = open_jpeg(photo)
    assert image.size == size
    assert factory.marker_corner(image) == corner
    assert_no_metadata(photo)


def test_all_metadata_is_stripped() -> None:
    data = factory.make_jpeg(
        700,
        700,
        exif_orientation=1,
        gps=True,
        comment=b"secret comment",
        xmp=b"<x:xmpmeta>where I live</x:xmpmeta>",
        icc_profile=factory.srgb_icc_profile(),
    )
    assert b"GPS" in data or b"\x88\x25" in data  # the input really has a GPS IFD
    photo = prepare_photo(data)
    assert_no_metadata(photo)
    assert b"secret comment" not in photo.data
    assert b"where I live" not in photo.data


def test_heic_is_converted_and_oriented() -> None:
    photo = prepare_photo(factory.make_heic(800, 600, exif_orientation=6, gps=True))
    image = open_jpeg(photo)
    assert image.size == (600, 800)
    assert factory.marker_corner(image) == "top-right"
    assert_no_metadata(photo)


@pytest.mark.parametrize(
    "make",
    [
        lambda: factory.make_webp(640, 600),
        lambda: factory.make_webp(640, 600, lossless=True),
        lambda: factory.make_avif(640, 600),
        lambda: factory.make_png(640, 600),
        lambda: factory.make_cmyk_jpeg(640, 600),
        lambda: factory.png_with_zip_appended(640, 600),
        lambda: factory.make_mpo(640, 600),
    ],
    ids=["webp", "webp-lossless", "avif", "png", "cmyk-jpeg", "png+zip", "mpo"],
)
def test_other_formats_become_plain_rgb_jpeg(make: Callable[[], bytes]) -> None:
    photo = prepare_photo(make())
    image = open_jpeg(photo)
    assert (image.size, image.mode) == ((640, 600), "RGB")
    assert factory.marker_corner(image) == "top-left"
    assert b"PK\x03\x04" not in photo.data
    assert_no_metadata(photo)


@pytest.mark.parametrize(
    "make",
    [factory.make_png_with_alpha, factory.make_palette_png_with_transparency],
    ids=["rgba", "palette-transparency"],
)
def test_transparency_is_flattened_on_white(make: Callable[[int, int], bytes]) -> None:
    image = open_jpeg(prepare_photo(make(600, 600)))
    assert image.mode == "RGB"
    red, green, blue = image.getpixel((590, 590))  # type: ignore[misc]
    assert min(red, green, blue) > 245
    assert factory.marker_corner(image) == "top-left"


def test_16bit_png_keeps_its_tones() -> None:
    image = open_jpeg(prepare_photo(factory.make_png_16bit(600, 600)))
    dark, middle, bright = (image.getpixel((x, 300))[0] for x in (5, 300, 594))  # type: ignore[index]
    assert dark < 20
    assert 100 < middle < 160
    assert bright > 235


def test_large_photo_is_scaled_to_max_side(twelve_mp_jpeg: bytes) -> None:
    started = time.perf_counter()
    photo = prepare_photo(twelve_mp_jpeg)
    elapsed = time.perf_counter() - started
    image = open_jpeg(photo)
    # 4032×3024 stored, orientation 6; libjpeg's half-scale decode lands on 2016.
    assert image.size == (1512, 2016)
    assert factory.marker_corner(image) == "top-right"
    assert_no_metadata(photo)
    assert elapsed < 2.0


def test_non_jpeg_is_scaled_exactly_to_max_side() -> None:
    image = open_jpeg(prepare_photo(factory.make_png(3000, 1500, exif_orientation=8)))
    assert image.size == (1024, 2048)
    assert factory.marker_corner(image) == "bottom-left"


def test_scaling_respects_custom_limits() -> None:
    limits = PhotoLimits(min_side=256, max_side=1000)
    image = open_jpeg(prepare_photo(factory.make_jpeg(3000, 1500), limits=limits))
    assert image.size == (1000, 500)


def test_jpeg_draft_scaling_never_goes_below_target() -> None:
    limits = PhotoLimits(min_side=64, max_side=256)
    image = open_jpeg(prepare_photo(factory.make_jpeg(2100, 1100), limits=limits))
    assert image.size == (256, 134)


def test_scaling_never_shrinks_short_side_below_minimum() -> None:
    image = open_jpeg(prepare_photo(factory.make_jpeg(4000, 600)))
    assert image.size == (3413, 512)


def test_exactly_minimum_size_is_accepted() -> None:
    assert open_jpeg(prepare_photo(factory.make_jpeg(512, 512))).size == (512, 512)


# --- refused photos ---------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: b"", PhotoProblem.EMPTY),
        (factory.make_text, PhotoProblem.NOT_AN_IMAGE),
        (lambda: factory.random_bytes(5000), PhotoProblem.NOT_AN_IMAGE),
        (lambda: factory.make_gif(600, 600), PhotoProblem.UNSUPPORTED),
        (lambda: factory.make_bmp(600, 600), PhotoProblem.UNSUPPORTED),
        (lambda: factory.make_tiff(600, 600), PhotoProblem.UNSUPPORTED),
        (factory.make_svg, PhotoProblem.UNSUPPORTED),
        (lambda: factory.make_animated("GIF", 600, 600), PhotoProblem.UNSUPPORTED),
        (lambda: factory.make_animated("WEBP", 600, 600), PhotoProblem.ANIMATED),
        (lambda: factory.make_animated("PNG", 600, 600), PhotoProblem.ANIMATED),
        (
            lambda: factory.truncated(factory.make_jpeg(800, 800, photo_like=True)),
            PhotoProblem.UNDECODABLE,
        ),
        (lambda: factory.truncated(factory.make_png(800, 800)), PhotoProblem.UNDECODABLE),
        (lambda: factory.truncated(factory.make_heic(800, 800)), PhotoProblem.UNDECODABLE),
        (factory.jpeg_magic_then_garbage, PhotoProblem.UNDECODABLE),
        (lambda: b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, PhotoProblem.UNDECODABLE),
        (lambda: b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 50, PhotoProblem.UNDECODABLE),
        (lambda: factory.make_jpeg(300, 280), PhotoProblem.TOO_SMALL),
        (lambda: factory.make_webp(2000, 500), PhotoProblem.TOO_SMALL),
        (lambda: factory.make_png_header(8000, 8000), PhotoProblem.TOO_MANY_PIXELS),
        (lambda: factory.make_png_header(60000, 60000), PhotoProblem.TOO_MANY_PIXELS),
        (lambda: factory.make_jpeg_claiming(9000, 9000), PhotoProblem.TOO_MANY_PIXELS),
        (lambda: factory.make_jpeg_claiming(65000, 65000), PhotoProblem.TOO_MANY_PIXELS),
    ],
)
def test_refused_photo_names_reason_and_index(
    make: Callable[[], bytes], reason: PhotoProblem
) -> None:
    error = problem_of(make(), index=3)
    assert error.reason == reason
    assert error.photo_index == 3
    assert str(error).startswith("photo 3: ")
    assert error.field == "photos"


def test_too_small_message_shows_displayed_size_and_what_to_do() -> None:
    error = problem_of(factory.make_jpeg(300, 280, exif_orientation=6), index=2)
    assert str(error) == (
        "photo 2: it is 280×300 pixels; HeyGen needs at least 512×512 "
        "— use a larger, less cropped photo"
    )


def test_too_large_is_refused_before_reading() -> None:
    limits = PhotoLimits(max_bytes=1000)
    error = problem_of(factory.make_jpeg(600, 600), index=1, limits=limits)
    assert error.reason == PhotoProblem.TOO_LARGE
    assert "at most" in str(error)
    with pytest.raises(PhotoError):
        check_photo_size(10 * 1024 * 1024 + 1)
    check_photo_size(10 * 1024 * 1024)


def test_bomb_is_refused_without_decoding() -> None:
    started = time.perf_counter()
    error = problem_of(factory.make_png_header(7000, 7500))
    assert error.reason == PhotoProblem.TOO_MANY_PIXELS
    assert "7000×7500" in str(error)
    assert time.perf_counter() - started < 0.1


@pytest.mark.parametrize(
    ("count", "reason"), [(0, PhotoProblem.NO_PHOTOS), (5, PhotoProblem.TOO_MANY_PHOTOS)]
)
def test_photo_count(count: int, reason: PhotoProblem) -> None:
    with pytest.raises(PhotoError) as caught:
        check_photo_count(count)
    assert caught.value.reason == reason
    assert caught.value.photo_index is None


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="min_side"):
        PhotoLimits(min_side=600, max_side=500)


# --- fuzzing: any bytes give a Photo or a PhotoError ------------------------

FUZZ_LIMITS = PhotoLimits(max_bytes=64 * 1024, min_side=4, max_side=64, max_pixels=1_000_000)
SEEDS = [
    factory.make_jpeg(24, 16, exif_orientation=6),
    factory.make_png(16, 16),
    factory.make_png_with_alpha(16, 16),
    factory.make_webp(16, 16),
    factory.make_heic(16, 16),
    factory.make_animated("WEBP", 8, 8, frames=2),
]


def fuzz_prepare(data: bytes) -> None:
    """Only a JPEG Photo or a PhotoError with a known reason may come out."""
    outcome: Photo | PhotoError
    try:
        outcome = prepare_photo(data, limits=FUZZ_LIMITS)
    except PhotoError as error:
        outcome = error
    if isinstance(outcome, PhotoError):
        assert outcome.reason in set(PhotoProblem)
    else:
        assert open_jpeg(outcome).size[0] >= FUZZ_LIMITS.min_side


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            data[position] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[position : position + draw(st.integers(1, 64))]
            if not data:
                break
        else:
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


_FUZZ_SETTINGS = settings(
    max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow]
)


@_FUZZ_SETTINGS
@given(st.binary(max_size=2048))
def test_fuzz_random_bytes(data: bytes) -> None:
    fuzz_prepare(data)


@_FUZZ_SETTINGS
@given(
    st.sampled_from(
        [
            b"\xff\xd8\xff",
            b"\x89PNG\r\n\x1a\n",
            b"RIFF\x00\x00\x00\x00WEBP",
            b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic",
        ]
    ),
    st.binary(max_size=2048),
)
def test_fuzz_magic_then_random(magic: bytes, tail: bytes) -> None:
    fuzz_prepare(magic + tail)


@_FUZZ_SETTINGS
@given(mutated_images())
def test_fuzz_mutated_images(data: bytes) -> None:
    fuzz_prepare(data)


# --- async ------------------------------------------------------------------


async def test_prepare_photos_returns_all_in_order() -> None:
    blobs = [factory.make_jpeg(600, 600), factory.make_webp(700, 600), factory.make_heic(600, 800)]
    photos = await prepare_photos(blobs)
    assert [open_jpeg(photo).size for photo in photos] == [(600, 600), (700, 600), (600, 800)]


async def test_prepare_photos_names_the_bad_photo() -> None:
    blobs = [factory.make_jpeg(600, 600), factory.make_jpeg(600, 600), factory.make_text()]
    with pytest.raises(PhotoError) as caught:
        await prepare_photos(blobs)
    assert (caught.value.photo_index, caught.value.reason) == (3, PhotoProblem.NOT_AN_IMAGE)

    blobs[2] = factory.make_jpeg(200, 600)
    with pytest.raises(PhotoError) as caught:
        await prepare_photos(blobs)
    assert (caught.value.photo_index, caught.value.reason) == (3, PhotoProblem.TOO_SMALL)


async def test_prepare_photos_checks_count_first() -> None:
    with pytest.raises(PhotoError) as caught:
        await prepare_photos([factory.make_text()] * 5)
    assert caught.value.reason == PhotoProblem.TOO_MANY_PHOTOS
    with pytest.raises(PhotoError) as caught:
        await prepare_photos([])
    assert caught.value.reason == PhotoProblem.NO_PHOTOS


async def test_prepare_photos_keeps_the_event_loop_responsive(twelve_mp_jpeg: bytes) -> None:
    # No downscale: each photo is a full 12 MP decode and encode, heavy enough
    # that doing it on the loop would stall a ticker for the whole of it.
    limits = PhotoLimits(max_side=4096)
    started = time.perf_counter()
    prepare_photo(twelve_mp_jpeg, limits=limits)
    one_photo = time.perf_counter() - started

    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    photos = await prepare_photos([twelve_mp_jpeg] * 3, limits=limits)
    stop.set()
    await ticking
    assert len(photos) == 3
    assert len(gaps) >= 5
    assert max(gaps) < one_photo / 2, (
        f"the event loop stalled {max(gaps) * 1000:.0f} ms; one photo takes "
        f"{one_photo * 1000:.0f} ms"
    )
