"""The request model validates before anything is sent; the enums are the API's strings."""

from __future__ import annotations

import base64
import json
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from avatar_api import AvatarRequest, Photo, ValidationError
from avatar_api.exceptions import redact_excerpt
from avatar_api.models import (
    MAX_APPEARANCE_LENGTH,
    MAX_NAME_LENGTH,
    OUTPUT_VARIABLE_PATTERN,
    Age,
    Ethnicity,
    Gender,
    Orientation,
    Pose,
    RateLimitInfo,
    SourceType,
    Style,
    encode_photos_json,
    parse_retry_after,
)

JPEG = b"\xff\xd8\xff\xe0" + b"x" * 100
PNG = b"\x89PNG\r\n\x1a\n" + b"y" * 100

SPEC_ENUMS = {
    SourceType: ["upload", "generate"],
    Age: ["Young Adult", "Middle-Aged", "Senior"],
    Gender: ["Unspecified", "Male", "Female", "Non-Binary"],
    Ethnicity: [
        "Unspecified",
        "Asian",
        "Black",
        "Caucasian",
        "Hispanic",
        "Middle Eastern",
        "Mixed",
    ],
    Orientation: ["square", "portrait", "landscape"],
    Pose: ["half_body", "close_up", "full_body"],
    Style: ["Realistic", "Artistic", "Professional"],
}


@pytest.mark.parametrize("enum", list(SPEC_ENUMS))
def test_enum_values_are_exactly_the_spec_strings(enum: type) -> None:
    assert {m.value for m in enum} == set(SPEC_ENUMS[enum])


def test_defaults_are_the_api_defaults() -> None:
    request = AvatarRequest.generate()
    assert request.source_type is SourceType.GENERATE
    assert (request.age, request.gender, request.ethnicity) == (
        Age.YOUNG_ADULT,
        Gender.UNSPECIFIED,
        Ethnicity.UNSPECIFIED,
    )
    assert (request.orientation, request.pose, request.style) == (
        Orientation.SQUARE,
        Pose.HALF_BODY,
        Style.REALISTIC,
    )
    assert request.name == "My Avatar"
    assert request.output_variable_name == "avatar_result"


@given(st.text(max_size=80))
def test_output_variable_name_is_checked_against_the_pattern(value: str) -> None:
    valid = bool(OUTPUT_VARIABLE_PATTERN.match(value)) and len(value) <= 64
    try:
        AvatarRequest(output_variable_name=value)
    except ValidationError as error:
        assert not valid
        assert error.field == "output_variable_name"
    else:
        assert valid


@given(st.text(alphabet=string.printable + "éß漢😀", min_size=1, max_size=200))
def test_name_length_and_control_characters(name: str) -> None:
    try:
        request = AvatarRequest.generate(name=name)
    except ValidationError as error:
        assert error.field == "name"
        assert len(name.strip()) > MAX_NAME_LENGTH or any(ord(c) < 32 for c in name.strip())
    else:
        assert len(request.name) <= MAX_NAME_LENGTH
        if name.strip():
            assert request.name == name.strip()


@given(st.integers(min_value=0, max_value=1200))
def test_appearance_is_capped_at_1000(length: int) -> None:
    text = "a" * length
    if length > MAX_APPEARANCE_LENGTH:
        with pytest.raises(ValidationError, match="at most 1000"):
            AvatarRequest.generate(appearance=text)
    else:
        request = AvatarRequest.generate(appearance=text)
        assert request.to_payload().get("appearance", "") == text


@given(st.text(max_size=30))
def test_enum_options_only_take_their_strings(value: str) -> None:
    if value in SPEC_ENUMS[Age]:
        assert AvatarRequest.generate(age=value).age.value == value
    else:
        with pytest.raises(ValidationError, match="age must be one of"):
            AvatarRequest.generate(age=value)


@pytest.mark.parametrize("count", [0, 5])
def test_upload_needs_one_to_four_photos(count: int) -> None:
    with pytest.raises(ValidationError, match="1 to 4 photos"):
        AvatarRequest.upload([Photo.from_bytes(JPEG)] * count)


def test_generate_takes_no_photos() -> None:
    with pytest.raises(ValidationError, match="no photos"):
        AvatarRequest(source_type=SourceType.GENERATE, photos=(Photo.from_bytes(JPEG),))


@pytest.mark.parametrize(
    "data", [b"", b"GIF89a....", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"hello.jpg", b"\xff\xd8"]
)
def test_photos_are_jpeg_or_png_by_their_bytes(data: bytes) -> None:
    with pytest.raises(ValidationError, match="neither JPEG nor PNG"):
        Photo.from_bytes(data)


def test_photo_repr_never_shows_bytes() -> None:
    assert "xxxx" not in repr(Photo.from_bytes(JPEG))
    assert "size=104" in repr(Photo.from_bytes(JPEG))


@given(st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=4))
def test_photos_json_round_trips(payloads: list[bytes]) -> None:
    photos = [Photo.from_bytes((JPEG if i % 2 else PNG) + p) for i, p in enumerate(payloads)]
    decoded = json.loads(encode_photos_json(photos))
    assert [base64.b64decode(d["base64"]) for d in decoded] == [p.data for p in photos]
    assert [d["mimeType"] for d in decoded] == [p.mime_type.value for p in photos]


def test_upload_payload_holds_photos_json_as_a_string() -> None:
    payload = AvatarRequest.upload([Photo.from_bytes(PNG)], name="Me").to_payload()
    assert payload["source_type"] == "upload"
    assert isinstance(payload["photos_json"], str)
    assert "age" not in payload


def test_options_round_trip_through_from_options() -> None:
    request = AvatarRequest.generate(name="A", pose="close_up", appearance="freckles")
    assert AvatarRequest.from_options("generate", request.options()) == request


@pytest.mark.parametrize(
    ("value", "seconds"), [("12", 12.0), ("0", 0.0), ("-3", None), ("soon", None), (None, None)]
)
def test_retry_after_parsing(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value) == seconds


def test_retry_after_http_date_in_the_past_is_zero() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_rate_limit_headers_tolerate_garbage() -> None:
    info = RateLimitInfo.from_headers(
        {"ratelimit-remaining": "many", "ratelimit-limit": "20, 20;w=60"}
    )
    assert info.remaining is None
    assert info.limit == 20


@given(st.text(max_size=500))
def test_redacted_excerpts_are_short(text: str) -> None:
    assert len(redact_excerpt(text)) <= 200


def test_redaction_hides_bearer_tokens_and_long_base64() -> None:
    text = 'Authorization: Bearer abc.def-123 {"api_key": "sk-live-1"} ' + "QUJD" * 40
    redacted = redact_excerpt(text, limit=1000)
    assert "abc.def-123" not in redacted
    assert "sk-live-1" not in redacted
    assert "QUJDQUJD" not in redacted


@given(
    st.lists(st.binary(max_size=200), min_size=1, max_size=4),
    st.text(alphabet=string.ascii_letters + ' "\\é漢', min_size=1, max_size=40),
)
def test_to_body_is_exactly_the_json_of_the_payload(payloads: list[bytes], name: str) -> None:
    photos = [Photo.from_bytes(JPEG + p) for p in payloads]
    request = AvatarRequest.upload(photos, name=name)
    assert json.loads(request.to_body()) == request.to_payload()
    assert request.to_body() == json.dumps(request.to_payload(), ensure_ascii=False).encode()


def test_generate_body_is_the_json_of_the_payload() -> None:
    request = AvatarRequest.generate(appearance='say "hi"')
    assert json.loads(request.to_body()) == request.to_payload()
