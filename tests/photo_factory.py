"""Build test photos in memory, good and hostile, for tests and benchmarks.

Every function returns the encoded bytes; nothing touches the disk. The "good"
images carry a red marker block in their stored top-left corner on a grey
background, so a test can tell where that corner ended up after orientation
(see :func:`marker_corner`).
"""

from __future__ import annotations

import io
import random
import struct
import zipfile
import zlib
from collections.abc import Sequence

import pillow_heif
from PIL import ExifTags, Image, ImageCms

MARKER = (220, 20, 20)
BACKGROUND = (128, 128, 128)
GPS_LATITUDE = (52.0, 31.0, 12.0)
# x265's default preset takes ~20 s for a 12 MP photo; decoding cost is much the same.
_FAST_X265 = {"preset": "ultrafast"}


# --- pixels -----------------------------------------------------------------


def marked_image(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """Grey with a red block over the top-left quarter (by each side) of the image."""
    image = Image.new("RGB", (width, height), BACKGROUND)
    image.paste(MARKER, (0, 0, max(1, width // 4), max(1, height // 4)))
    return image if mode == "RGB" else image.convert(mode)


def photo_like_image(width: int, height: int, *, noise: float = 12.0) -> Image.Image:
    """Gradients plus sensor-like noise: compresses and decodes like a real photo."""
    size = (width, height)
    red = Image.linear_gradient("L").resize(size)
    green = Image.radial_gradient("L").resize(size)
    blue = Image.effect_noise(size, noise)
    image = Image.merge("RGB", (red, green, blue))
    image.paste(MARKER, (0, 0, max(1, width // 4), max(1, height // 4)))
    return image


def marker_corner(image: Image.Image) -> str:
    """Which corner holds the red marker: "top-left", "top-right", "bottom-left"…"""
    rgb = image.convert("RGB")
    width, height = rgb.size
    corners = {
        "top-left": (width // 16, height // 16),
        "top-right": (width - 1 - width // 16, height // 16),
        "bottom-left": (width // 16, height - 1 - height // 16),
        "bottom-right": (width - 1 - width // 16, height - 1 - height // 16),
    }
    found = [name for name, xy in corners.items() if _is_marker(rgb.getpixel(xy))]
    return found[0] if len(found) == 1 else f"unclear: {found}"


def _is_marker(pixel: object) -> bool:
    assert isinstance(pixel, tuple)
    red, green, blue = pixel[:3]
    return red > 150 and green < 90 and blue < 90


# --- metadata ---------------------------------------------------------------


def exif_bytes(*, orientation: int | None = None, gps: bool = False) -> bytes:
    """An EXIF block with an orientation tag and/or GPS position, camera-style."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "TestPhone"
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    if gps:
        gps_ifd = exif.get_ifd(ExifTags.IFD.GPSInfo)
        gps_ifd[ExifTags.GPS.GPSLatitudeRef] = "N"
        gps_ifd[ExifTags.GPS.GPSLatitude] = GPS_LATITUDE
        gps_ifd[ExifTags.GPS.GPSLongitudeRef] = "E"
        gps_ifd[ExifTags.GPS.GPSLongitude] = (13.0, 24.0, 36.0)
    return exif.tobytes()


def corrupt_exif_bytes() -> bytes:
    """An EXIF block like Pillow's own ``hopper_bad_exif.jpg``: a tag points past its end.

    Reading it makes Pillow warn (``UserWarning``) and carry on without the tag.
    """
    make, ascii_type, count, offset_past_the_end = 0x010F, 2, 8, 0x7FFF
    ifd = struct.pack("<HHHLLL", 1, make, ascii_type, count, offset_past_the_end, 0)
    return b"Exif\x00\x00" + b"II*\x00" + struct.pack("<L", 8) + ifd + bytes(32)


def jpeg_with_corrupt_exif(image: Image.Image) -> bytes:
    return encode(image, "JPEG", quality=90, exif=corrupt_exif_bytes())


def srgb_icc_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


# --- good photos ------------------------------------------------------------


def encode(image: Image.Image, format: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **params)
    return buffer.getvalue()


def make_jpeg(
    width: int,
    height: int,
    *,
    exif_orientation: int | None = None,
    gps: bool = False,
    comment: bytes | None = None,
    xmp: bytes | None = None,
    icc_profile: bytes | None = None,
    photo_like: bool = False,
    noise: float = 12.0,
    quality: int = 90,
) -> bytes:
    """A JPEG whose stored pixels carry the marker; metadata only as asked."""
    image = (
        photo_like_image(width, height, noise=noise) if photo_like else marked_image(width, height)
    )
    params: dict[str, object] = {"quality": quality}
    if exif_orientation is not None or gps:
        params["exif"] = exif_bytes(orientation=exif_orientation, gps=gps)
    if comment is not None:
        params["comment"] = comment
    if xmp is not None:
        params["xmp"] = xmp
    if icc_profile is not None:
        params["icc_profile"] = icc_profile
    return encode(image, "JPEG", **params)


def make_cmyk_jpeg(width: int, height: int) -> bytes:
    return encode(marked_image(width, height, "CMYK"), "JPEG", quality=90)


def make_grayscale_jpeg(width: int, height: int) -> bytes:
    return encode(marked_image(width, height, "L"), "JPEG", quality=90)


def make_png(
    width: int, height: int, *, mode: str = "RGB", exif_orientation: int | None = None
) -> bytes:
    params: dict[str, object] = {}
    if exif_orientation is not None:
        params["exif"] = exif_bytes(orientation=exif_orientation)
    return encode(marked_image(width, height, mode), "PNG", **params)


def make_png_with_alpha(width: int, height: int) -> bytes:
    """Marker opaque, the rest fully transparent: the background must come out white."""
    image = marked_image(width, height).convert("RGBA")
    alpha = Image.new("L", (width, height), 0)
    alpha.paste(255, (0, 0, max(1, width // 4), max(1, height // 4)))
    image.putalpha(alpha)
    return encode(image, "PNG")


def make_palette_png_with_transparency(width: int, height: int) -> bytes:
    image = marked_image(width, height).convert("P")
    transparent_index = image.getpixel((width - 1, height - 1))
    return encode(image, "PNG", transparency=transparent_index)


def make_png_16bit(width: int, height: int) -> bytes:
    """16-bit greyscale: a horizontal ramp 0..65535 (naive conversion clips it to white)."""
    ramp = Image.linear_gradient("L").rotate(90).resize((width, height))
    wide = ramp.point(lambda value: value * 257, mode="I")
    return encode(wide.convert("I;16"), "PNG")


def make_webp(width: int, height: int, *, lossless: bool = False) -> bytes:
    return encode(marked_image(width, height), "WEBP", quality=90, lossless=lossless)


def make_heic(
    width: int, height: int, *, exif_orientation: int | None = None, gps: bool = False
) -> bytes:
    exif = exif_bytes(orientation=exif_orientation, gps=gps) if exif_orientation or gps else None
    return encode_heic(marked_image(width, height), exif=exif)


def make_photo_like_heic(width: int, height: int) -> bytes:
    return encode_heic(photo_like_image(width, height))


def encode_heic(image: Image.Image, *, exif: bytes | None = None) -> bytes:
    # Straight through pillow_heif: registering its Pillow plugin here would
    # change the plugin options avatar_api.photos registered it with.
    buffer = io.BytesIO()
    heif = pillow_heif.from_pillow(image)
    heif.save(buffer, quality=80, exif=exif, enc_params=_FAST_X265)
    return buffer.getvalue()


def make_avif(width: int, height: int) -> bytes:
    return encode(marked_image(width, height), "AVIF", quality=80)


def make_12mp_jpeg() -> bytes:
    """4032×3024 and about 3 MB, like most phone photos; rotated and geotagged."""
    return make_jpeg(4032, 3024, photo_like=True, noise=30, exif_orientation=6, gps=True)


def make_12mp_heic() -> bytes:
    return make_photo_like_heic(4032, 3024)


# --- refused or hostile -----------------------------------------------------


def make_animated(format: str, width: int, height: int, frames: int = 3) -> bytes:
    """An animation ("WEBP", "GIF" or "PNG" for APNG) whose frames differ."""
    images = [Image.new("RGB", (width, height), (40 * i, 90, 160)) for i in range(frames)]
    return encode(images[0], format, save_all=True, append_images=images[1:], duration=100, loop=0)


def make_mpo(width: int, height: int) -> bytes:
    """A JPEG with a second picture appended (MPO), as many phone cameras write."""
    second = Image.new("RGB", (width // 2, height // 2), (0, 0, 255))
    return encode(marked_image(width, height), "MPO", save_all=True, append_images=[second])


def make_gif(width: int, height: int) -> bytes:
    return encode(marked_image(width, height), "GIF")


def make_bmp(width: int, height: int) -> bytes:
    return encode(marked_image(width, height), "BMP")


def make_tiff(width: int, height: int) -> bytes:
    return encode(marked_image(width, height), "TIFF")


def make_svg() -> bytes:
    return (
        b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="800" '
        b'height="800"><rect width="800" height="800" fill="red"/></svg>\n'
    )


def make_text() -> bytes:
    return b"This is not a photo, just some text in a file named selfie.jpg.\n" * 4


def make_png_header(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width``×``height``: a decompression bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + (_png_chunk(b"IEND", b""))
    )


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def make_jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header is patched to claim another size."""
    data = bytearray(make_jpeg(64, 64))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    return data[: max(1, int(len(data) * keep))]


def jpeg_magic_then_garbage(size: int = 4096, *, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    return b"\xff\xd8\xff\xe0" + rng.randbytes(size)


def png_with_zip_appended(width: int, height: int) -> bytes:
    """A valid PNG followed by a ZIP archive (a polyglot): decoding must drop the ZIP."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("payload.txt", "not for HeyGen")
    return make_png(width, height) + archive.getvalue()


def random_bytes(size: int, *, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def fake_jpeg_blob(size: int, *, seed: int = 0) -> bytes:
    """``size`` bytes that only *start* like a JPEG: enough for encoding benchmarks."""
    return b"\xff\xd8\xff\xe0" + random_bytes(size - 4, seed=seed)


def sample_photos(sizes: Sequence[tuple[int, int]] = ((1024, 768),) * 4) -> list[bytes]:
    return [make_jpeg(width, height, photo_like=True) for width, height in sizes]
