"""Labelled real photos, as members send them: two sets, each a ``labels.csv`` and images.

:data:`FACES_DEV` is ``../shared/faces-dev`` beside the repository: real selfies,
portraits, groups and photos without a person. Most carry no licence that allows
copying them in, so tests skip with its :attr:`PhotoSet.missing_reason` where the
folder is absent. :data:`COMMONS` is ``tests/real_photos``: openly licensed
Wikimedia Commons photos (monuments and statues, animals, objects, groups of
musicians) with their authors, licences and origins, kept in the repository.

Each row of ``labels.csv`` says ``single`` (one clear face; ``skin``
light/medium/dark), ``group``, ``small`` (one face far too small in the frame) or
``noface`` (no real human face).

Every threshold in :mod:`avatar_api.preflight` was chosen on the tuning half of
:data:`FACES_DEV`. Its split is fixed: within each label (and skin tone, for
``single``) the photos are ordered by the SHA-256 of their file name and every
second one, starting with the second, is held out. :data:`COMMONS` was added
after the thresholds were fixed and is held out as a whole.

A photo under 512 px on its short side would be refused by ``prepare_photo`` before
preflight ever saw it, so it is upscaled (Lanczos, 768 px short side) the way a
member would have to; the photo then goes through the bot's own preparation.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from PIL import Image, ImageOps

from avatar_api.models import Photo
from avatar_api.photos import prepare_photo
from avatar_api.preflight import Check, PhotoReport

LABELS = ("single", "group", "small", "noface")
SKIN_TONES = ("light", "medium", "dark")
TUNE, HELD_OUT = "tune", "held-out"
#: The least share of right verdicts per bucket: at most 1 in 100 clear faces refused,
#: no skin tone worse than 1 in 20, and 95 % of groups and of photos without a person
#: refused.
GOALS = {
    "single": 0.99,
    **{f"single/{tone}": 0.95 for tone in SKIN_TONES},
    "group": 0.95,
    "noface": 0.95,
}


@dataclass(frozen=True)
class PhotoSet:
    """A folder with ``labels.csv`` and the images it names; ``tuned``: split in halves."""

    name: str
    directory: Path
    tuned: bool

    def available(self) -> bool:
        return (self.directory / "labels.csv").is_file()

    @property
    def missing_reason(self) -> str:
        outside = "" if self.directory.is_relative_to(REPO_ROOT) else " (kept outside the repo)"
        return f"labelled real photos not found at {self.directory}{outside}"


REPO_ROOT = Path(__file__).resolve().parents[1]
FACES_DEV = PhotoSet("faces-dev", REPO_ROOT.parent / "shared" / "faces-dev", tuned=True)
COMMONS = PhotoSet("commons", REPO_ROOT / "tests" / "real_photos", tuned=False)
PHOTO_SETS = (FACES_DEV, COMMONS)


@dataclass(frozen=True)
class RealPhoto:
    name: str
    label: str
    skin: str
    part: str
    photo: Photo
    source: str = FACES_DEV.name
    kind: str = ""  # commons only: scene, animal, object, statue, people

    @property
    def group(self) -> str:
        """``single/dark``-style bucket for single faces, the label otherwise."""
        return f"{self.label}/{self.skin}" if self.skin else self.label


def _rows(photo_set: PhotoSet) -> list[dict[str, str]]:
    with (photo_set.directory / "labels.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _split(rows: Iterable[dict[str, str]]) -> dict[str, str]:
    strata: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        strata.setdefault((row["label"], row["skin"]), []).append(row["file"])
    part: dict[str, str] = {}
    for files in strata.values():
        files.sort(key=lambda f: hashlib.sha256(Path(f).name.encode()).hexdigest())
        for rank, file in enumerate(files):
            part[file] = TUNE if rank % 2 == 0 else HELD_OUT
    return part


def member_copy(raw: bytes, min_side: int = 512, upscale_to: int = 768) -> bytes:
    """The file as a member could send it: small ones upscaled past the 512 px minimum."""
    with Image.open(io.BytesIO(raw)) as image:
        if min(image.size) >= min_side:
            return raw
        upright = ImageOps.exif_transpose(image).convert("RGB")
    factor = upscale_to / min(upright.size)
    size = (round(upright.width * factor), round(upright.height * factor))
    buffer = io.BytesIO()
    upright.resize(size, Image.Resampling.LANCZOS).save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


@cache
def real_set(photo_set: PhotoSet = FACES_DEV) -> tuple[RealPhoto, ...]:
    """Every labelled photo of one set, prepared exactly as the bot prepares an upload."""
    rows = _rows(photo_set)
    part = _split(rows) if photo_set.tuned else dict.fromkeys((r["file"] for r in rows), HELD_OUT)
    photos = []
    for row in rows:
        raw = (photo_set.directory / row["file"]).read_bytes()
        photos.append(
            RealPhoto(
                name=Path(row["file"]).name,
                label=row["label"],
                skin=row["skin"],
                part=part[row["file"]],
                photo=prepare_photo(member_copy(raw)),
                source=photo_set.name,
                kind=row.get("kind", ""),
            )
        )
    return tuple(photos)


def verdict_is_right(photo: RealPhoto, report: PhotoReport) -> bool:
    """A clear single face passes every check; the others are refused by the face check."""
    if photo.label == "single":
        return report.ok
    return any(p.check is Check.FACE for p in report.problems)


@dataclass(frozen=True)
class Tally:
    right: Counter[str]
    total: Counter[str]
    wrong: tuple[str, ...]

    def rate(self, group: str) -> float:
        return self.right[group] / self.total[group] if self.total[group] else 1.0

    def line(self) -> str:
        return ", ".join(f"{g} {self.right[g]}/{self.total[g]}" for g in sorted(self.total))


def tally(pairs: Iterable[tuple[RealPhoto, PhotoReport]]) -> Tally:
    """Right verdicts per bucket: single/<skin>, single, group, small, noface."""
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    wrong: list[str] = []
    for photo, report in pairs:
        ok = verdict_is_right(photo, report)
        buckets = {photo.group, photo.label}
        for bucket in buckets:
            total[bucket] += 1
            right[bucket] += ok
        if not ok:
            reasons = "; ".join(p.message for p in report.problems) or "accepted"
            wrong.append(f"{photo.name} ({photo.group}): {reasons}")
    return Tally(right, total, tuple(wrong))
