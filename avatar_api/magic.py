"""Image formats told by their magic number: the one sniffer the package uses."""

from __future__ import annotations

from enum import StrEnum


class ImageKind(StrEnum):
    """An image format recognised by its magic number."""

    JPEG = "JPEG"
    PNG = "PNG"
    WEBP = "WebP"
    HEIF = "HEIC"
    AVIF = "AVIF"
    GIF = "GIF"
    BMP = "BMP"
    TIFF = "TIFF"
    SVG = "SVG"
    JPEG_XL = "JPEG XL"


_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_GENERIC_HEIF_BRANDS = frozenset({b"mif1", b"msf1", b"mif2", b"mif3"})


def sniff_image_kind(data: bytes | bytearray | memoryview) -> ImageKind | None:
    """The image format from its magic number, or None if it is not a known image."""
    head = bytes(data[:64])
    if head.startswith(b"\xff\xd8\xff"):
        return ImageKind.JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return ImageKind.PNG
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ImageKind.WEBP
    if head[4:8] == b"ftyp":
        return _sniff_ftyp(head)
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return ImageKind.GIF
    if head[:2] == b"BM" and len(head) >= 26:
        return ImageKind.BMP
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return ImageKind.TIFF
    if head[:2] == b"\xff\x0a" or head[:12] == b"\x00\x00\x00\x0cJXL \r\n\x87\n":
        return ImageKind.JPEG_XL
    if _looks_like_svg(data):
        return ImageKind.SVG
    return None


def _sniff_ftyp(head: bytes) -> ImageKind | None:
    """HEIF family by the ISO-BMFF ``ftyp`` box: major brand, then compatible brands."""
    box_size = int.from_bytes(head[:4], "big")
    end = min(max(box_size, 16), len(head))
    major = head[8:12]
    compatible = {head[i : i + 4] for i in range(16, end - 3, 4)}
    if major in _AVIF_BRANDS:
        return ImageKind.AVIF
    if major in _HEIF_BRANDS:
        return ImageKind.HEIF
    if major in _GENERIC_HEIF_BRANDS or compatible & _GENERIC_HEIF_BRANDS:
        if compatible & _AVIF_BRANDS:
            return ImageKind.AVIF
        return ImageKind.HEIF
    return None  # an MP4/MOV video or another ISO-BMFF file


def _looks_like_svg(data: bytes | bytearray | memoryview) -> bool:
    text = bytes(data[:1024]).lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text)
