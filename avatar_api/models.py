"""Typed options, the validated request and the parsed result of the action.

Every enum's *value* is the exact string agent.ai expects; the first member of
each option enum is the API's default.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from .exceptions import UnexpectedResponseError, ValidationError
from .magic import ImageKind, sniff_image_kind
from .text import N_

OUTPUT_VARIABLE_PATTERN = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]*$")
DEFAULT_OUTPUT_VARIABLE = "avatar_result"
DEFAULT_NAME = "My Avatar"
MAX_NAME_LENGTH = 100
MAX_APPEARANCE_LENGTH = 1000
MAX_PHOTOS = 4
MAX_OUTPUT_VARIABLE_LENGTH = 64


E = TypeVar("E", bound=StrEnum)


class SourceType(StrEnum):
    GENERATE = "generate"
    UPLOAD = "upload"


class Age(StrEnum):
    YOUNG_ADULT = "Young Adult"
    MIDDLE_AGED = "Middle-Aged"
    SENIOR = "Senior"


class Gender(StrEnum):
    UNSPECIFIED = "Unspecified"
    MALE = "Male"
    FEMALE = "Female"
    NON_BINARY = "Non-Binary"


class Ethnicity(StrEnum):
    UNSPECIFIED = "Unspecified"
    ASIAN = "Asian"
    BLACK = "Black"
    CAUCASIAN = "Caucasian"
    HISPANIC = "Hispanic"
    MIDDLE_EASTERN = "Middle Eastern"
    MIXED = "Mixed"


class Orientation(StrEnum):
    SQUARE = "square"
    PORTRAIT = "portrait"
    LANDSCAPE = "landscape"


class Pose(StrEnum):
    HALF_BODY = "half_body"
    CLOSE_UP = "close_up"
    FULL_BODY = "full_body"


class Style(StrEnum):
    REALISTIC = "Realistic"
    ARTISTIC = "Artistic"
    PROFESSIONAL = "Professional"


class MimeType(StrEnum):
    """The only photo types HeyGen accepts; everything else is converted first."""

    JPEG = "image/jpeg"
    PNG = "image/png"


_MIME_TYPES = {ImageKind.JPEG: MimeType.JPEG, ImageKind.PNG: MimeType.PNG}


def sniff_mime_type(data: bytes | memoryview) -> MimeType | None:
    """The photo's real type from its magic number, never from a name or a header."""
    kind = sniff_image_kind(data)
    return None if kind is None else _MIME_TYPES.get(kind)


@dataclass(frozen=True, slots=True, repr=False)
class Photo:
    """One photo ready to send: JPEG or PNG bytes, checked by their magic number.

    The repr never shows the bytes, so a photo cannot leak into a log line.
    """

    data: bytes
    mime_type: MimeType

    def __post_init__(self) -> None:
        if sniff_mime_type(self.data) is not self.mime_type:
            raise ValidationError(
                N_("photo bytes are not {mime_type}", mime_type=self.mime_type.value)
            )

    @classmethod
    def from_bytes(cls, data: bytes) -> Photo:
        mime = sniff_mime_type(data)
        if mime is None:
            raise ValidationError(N_("photo is neither JPEG nor PNG (checked by its bytes)"))
        return cls(data, mime)

    @property
    def size(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"Photo(mime_type={self.mime_type.value!r}, size={self.size})"


def encode_photos_json(photos: Sequence[Photo]) -> str:
    """``photos_json`` as the spec wants it: a JSON *string* holding an array.

    Base64 output is pure ASCII, so it is spliced in without ``json.dumps``
    re-scanning megabytes of it for characters to escape.
    """
    parts = [
        '{"base64": "'
        + base64.b64encode(p.data).decode("ascii")
        + '", "mimeType": "'
        + p.mime_type.value
        + '"}'
        for p in photos
    ]
    return "[" + ", ".join(parts) + "]"


@dataclass(frozen=True, slots=True)
class AvatarRequest:
    """A validated request for the action. Construct with :meth:`generate` or :meth:`upload`."""

    source_type: SourceType = SourceType.GENERATE
    name: str = DEFAULT_NAME
    age: Age = Age.YOUNG_ADULT
    gender: Gender = Gender.UNSPECIFIED
    ethnicity: Ethnicity = Ethnicity.UNSPECIFIED
    orientation: Orientation = Orientation.SQUARE
    pose: Pose = Pose.HALF_BODY
    style: Style = Style.REALISTIC
    appearance: str | None = None
    photos: tuple[Photo, ...] = ()
    output_variable_name: str = DEFAULT_OUTPUT_VARIABLE

    def __post_init__(self) -> None:
        self._validate_output_variable()
        self._validate_name()
        self._validate_appearance()
        self._validate_photos()

    @classmethod
    def generate(
        cls,
        *,
        name: str | None = None,
        age: Age | str | None = None,
        gender: Gender | str | None = None,
        ethnicity: Ethnicity | str | None = None,
        orientation: Orientation | str | None = None,
        pose: Pose | str | None = None,
        style: Style | str | None = None,
        appearance: str | None = None,
    ) -> AvatarRequest:
        """A generate request; omitted options take the API's defaults."""
        return cls(
            source_type=SourceType.GENERATE,
            name=_default_name(name),
            age=_coerce(Age, age, "age"),
            gender=_coerce(Gender, gender, "gender"),
            ethnicity=_coerce(Ethnicity, ethnicity, "ethnicity"),
            orientation=_coerce(Orientation, orientation, "orientation"),
            pose=_coerce(Pose, pose, "pose"),
            style=_coerce(Style, style, "style"),
            appearance=appearance.strip() if appearance and appearance.strip() else None,
        )

    @classmethod
    def upload(cls, photos: Sequence[Photo], *, name: str | None = None) -> AvatarRequest:
        return cls(source_type=SourceType.UPLOAD, name=_default_name(name), photos=tuple(photos))

    @classmethod
    def from_options(
        cls, source_type: SourceType | str, options: Mapping[str, str], photos: Sequence[Photo] = ()
    ) -> AvatarRequest:
        """Rebuild a request from :meth:`options` (a stored job) plus, for uploads, its photos."""
        if SourceType(source_type) is SourceType.UPLOAD:
            return cls.upload(photos, name=options.get("name"))
        return cls.generate(**{k: v for k, v in options.items() if k in _GENERATE_OPTIONS})

    def _validate_output_variable(self) -> None:
        value = self.output_variable_name
        if len(value) > MAX_OUTPUT_VARIABLE_LENGTH or not OUTPUT_VARIABLE_PATTERN.match(value):
            raise ValidationError(
                N_(
                    "output_variable_name must start with a letter and hold only letters, digits "
                    "and underscores (at most {max_length})",
                    max_length=MAX_OUTPUT_VARIABLE_LENGTH,
                ),
                field="output_variable_name",
            )

    def _validate_name(self) -> None:
        check_name(self.name)

    def _validate_appearance(self) -> None:
        if self.appearance is not None and len(self.appearance) > MAX_APPEARANCE_LENGTH:
            raise ValidationError(
                N_(
                    "the appearance text is {length} characters; HeyGen takes at most {max_length}",
                    length=len(self.appearance),
                    max_length=MAX_APPEARANCE_LENGTH,
                ),
                field="appearance",
            )

    def _validate_photos(self) -> None:
        count = len(self.photos)
        if self.source_type is SourceType.GENERATE and count:
            raise ValidationError(N_("generate mode takes no photos"), field="photos")
        if self.source_type is SourceType.UPLOAD and not 1 <= count <= MAX_PHOTOS:
            raise ValidationError(
                N_(
                    "upload mode needs 1 to {max_photos} photos, got {count}",
                    max_photos=MAX_PHOTOS,
                    count=count,
                ),
                field="photos",
            )

    def options(self) -> dict[str, str]:
        """The user-facing options, for replies, job records and logs (never photos)."""
        opts: dict[str, str] = {"name": self.name}
        if self.source_type is SourceType.GENERATE:
            opts |= {
                "age": self.age.value,
                "gender": self.gender.value,
                "ethnicity": self.ethnicity.value,
                "orientation": self.orientation.value,
                "pose": self.pose.value,
                "style": self.style.value,
            }
            if self.appearance:
                opts["appearance"] = self.appearance
        else:
            opts["photos"] = str(len(self.photos))
        return opts

    def to_payload(self) -> dict[str, str]:
        """The JSON body, exactly as the spec names its fields."""
        payload = self._scalar_payload()
        if self.source_type is SourceType.UPLOAD:
            payload["photos_json"] = encode_photos_json(self.photos)
            return payload
        payload |= {
            "age": self.age.value,
            "gender": self.gender.value,
            "ethnicity": self.ethnicity.value,
            "orientation": self.orientation.value,
            "pose": self.pose.value,
            "style": self.style.value,
        }
        if self.appearance:
            payload["appearance"] = self.appearance
        return payload

    def to_body(self) -> bytes:
        """The exact JSON bytes of :meth:`to_payload`, built without re-scanning the photos.

        ``json.dumps`` would scan megabytes of base64 for characters to escape and
        hold several copies at once; base64 and the MIME types never need escaping,
        so the photos are spliced in as bytes (peak about 2.7x the photo bytes).
        """
        payload = self.to_payload() if not self.photos else self._scalar_payload()
        head = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        if not self.photos:
            return head
        parts = [head[:-1], b', "photos_json": "[']
        for index, photo in enumerate(self.photos):
            if index:
                parts.append(b", ")
            parts += [
                b'{\\"base64\\": \\"',
                base64.b64encode(photo.data),
                b'\\", \\"mimeType\\": \\"' + photo.mime_type.value.encode("ascii") + b'\\"}',
            ]
        parts.append(b']"}')
        return b"".join(parts)

    def _scalar_payload(self) -> dict[str, str]:
        return {
            "source_type": self.source_type.value,
            "output_variable_name": self.output_variable_name,
            "name": self.name,
        }

    def __repr__(self) -> str:
        return f"AvatarRequest({self.source_type.value}, options={self.options()!r})"


_GENERATE_OPTIONS = frozenset(
    {"name", "age", "gender", "ethnicity", "orientation", "pose", "style", "appearance"}
)


def _default_name(name: str | None) -> str:
    return name.strip() if name and name.strip() else DEFAULT_NAME


def avatar_name(name: str | None) -> str:
    """The name a request will carry (the default when none is given), validated."""
    chosen = _default_name(name)
    check_name(chosen)
    return chosen


def check_name(name: str) -> None:
    if not name.strip():
        raise ValidationError(N_("the avatar name is empty"), field="name")
    if len(name) > MAX_NAME_LENGTH:
        raise ValidationError(
            N_(
                "the avatar name is {length} characters; at most {max_length}",
                length=len(name),
                max_length=MAX_NAME_LENGTH,
            ),
            field="name",
        )
    if any(_is_control(c) for c in name):
        raise ValidationError(N_("the avatar name holds control characters"), field="name")


def _coerce(enum: type[E], value: E | str | None, field_name: str) -> E:
    if value is None:
        return next(iter(enum))
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        raise ValidationError(
            N_("{field} must be one of: {allowed}", field=field_name, allowed=allowed),
            field=field_name,
        ) from None


def _is_control(char: str) -> bool:
    return ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """What agent.ai's rate-limit headers said about the token's budget."""

    limit: int | None = None
    remaining: int | None = None
    reset_after: float | None = None
    retry_after: float | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimitInfo:
        return cls(
            limit=_parse_int(headers.get("ratelimit-limit")),
            remaining=_parse_int(headers.get("ratelimit-remaining")),
            reset_after=_parse_seconds(headers.get("ratelimit-reset")),
            retry_after=parse_retry_after(headers.get("retry-after")),
        )


def _parse_int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return max(0, int(value.split(",")[0].strip()))
    except ValueError:
        return None


def _parse_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 and seconds == seconds and seconds != float("inf") else None


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date."""
    if value is None:
        return None
    seconds = _parse_seconds(value)
    if seconds is not None:
        return seconds
    from datetime import UTC, datetime
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@dataclass(frozen=True, slots=True)
class AvatarResult:
    """What the action returned: the new avatar group's id and its status."""

    group_id: str
    status: str
    action_status: int
    raw: Mapping[str, Any] = field(repr=False)
    rate_limit: RateLimitInfo = field(default_factory=RateLimitInfo)

    @classmethod
    def from_response(
        cls,
        body: Mapping[str, Any],
        *,
        output_variable_name: str = DEFAULT_OUTPUT_VARIABLE,
        rate_limit: RateLimitInfo | None = None,
        excerpt: str = "",
    ) -> AvatarResult:
        """Parse ``{"status": int, "response": {...}}`` in either documented shape."""
        response = body.get("response")
        if isinstance(response, str):
            try:
                response = json.loads(response)
            except ValueError:
                raise UnexpectedResponseError(
                    "the action's response is a string that is not JSON", body_excerpt=excerpt
                ) from None
        if not isinstance(response, Mapping):
            raise UnexpectedResponseError("the action returned no result", body_excerpt=excerpt)
        nested = response.get(output_variable_name)
        if isinstance(nested, str):
            try:
                nested = json.loads(nested)
            except ValueError:
                nested = None
        result = nested if isinstance(nested, Mapping) and "group_id" in nested else response
        group_id = result.get("group_id")
        if not isinstance(group_id, str | int) or isinstance(group_id, bool) or not str(group_id):
            raise UnexpectedResponseError(
                "the action's result has no group_id", body_excerpt=excerpt
            )
        status = result.get("status")
        return cls(
            group_id=str(group_id),
            status="unknown" if status is None else str(status),
            action_status=int(body.get("status") or 200),
            raw=dict(body),
            rate_limit=rate_limit or RateLimitInfo(),
        )
