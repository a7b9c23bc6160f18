"""The client against the fake agent.ai over real HTTP: bodies, statuses, retries, shapes."""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from pathlib import Path

import aiohttp
import pytest

from avatar_api import (
    AmbiguousOutcomeError,
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    AvatarClient,
    AvatarRequest,
    BadRequestError,
    ConnectionLostError,
    NotFoundError,
    PermissionDeniedError,
    Photo,
    RateLimitError,
    RetryPolicy,
    ServerError,
    UnexpectedResponseError,
    ValidationError,
)
from avatar_api.models import Age, Ethnicity, Gender, Orientation, Pose, Style
from avatarbot.settings import Settings, SettingsError
from bot import open_services
from tests.bot_world import DISCORD_TOKEN, settings_for, sqlite_url
from tests.conftest import FAST_RETRY
from tests.fake_agent_ai import TOKEN, FakeAgentAI, Reply
from tests.tcp_proxy import TcpProxy

PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
JPEG_HEAD = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40


async def test_generate_sends_every_option_as_the_api_string(
    avatar_client: AvatarClient, fake_agent_ai: FakeAgentAI
) -> None:
    request = AvatarRequest.generate(
        name="Ada",
        age=Age.SENIOR,
        gender=Gender.NON_BINARY,
        ethnicity=Ethnicity.MIDDLE_EASTERN,
        orientation=Orientation.LANDSCAPE,
        pose=Pose.FULL_BODY,
        style=Style.PROFESSIONAL,
        appearance="silver hair, round glasses",
    )
    result = await avatar_client.create_avatar(request)

    assert result.group_id == "grp_000001"
    assert result.status == "pending"
    assert fake_agent_ai.requests[0].body == {
        "source_type": "generate",
        "output_variable_name": "avatar_result",
        "name": "Ada",
        "age": "Senior",
        "gender": "Non-Binary",
        "ethnicity": "Middle Eastern",
        "orientation": "landscape",
        "pose": "full_body",
        "style": "Professional",
        "appearance": "silver hair, round glasses",
    }
    assert fake_agent_ai.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"


async def test_omitted_options_take_the_api_defaults(
    avatar_client: AvatarClient, fake_agent_ai: FakeAgentAI
) -> None:
    await avatar_client.create_avatar(AvatarRequest.generate())

    body = fake_agent_ai.requests[0].body
    assert body["name"] == "My Avatar"
    assert (body["age"], body["gender"], body["ethnicity"]) == (
        "Young Adult",
        "Unspecified",
        "Unspecified",
    )
    assert (body["orientation"], body["pose"], body["style"]) == (
        "square",
        "half_body",
        "Realistic",
    )
    assert "appearance" not in body
    assert "photos_json" not in body


async def test_upload_photos_json_decodes_to_the_bytes_sent(
    avatar_client: AvatarClient, fake_agent_ai: FakeAgentAI
) -> None:
    photos = [Photo.from_bytes(JPEG_HEAD), Photo.from_bytes(PNG_1PX)]
    await avatar_client.create_avatar(AvatarRequest.upload(photos, name="Me"))

    recorded = fake_agent_ai.requests[0]
    assert isinstance(recorded.body["photos_json"], str)
    assert recorded.body["source_type"] == "upload"
    assert [p["mimeType"] for p in recorded.photos] == ["image/jpeg", "image/png"]
    assert recorded.photo_bytes() == [JPEG_HEAD, PNG_1PX]


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, APIStatusError),
        (418, APIStatusError),
        (422, BadRequestError),
    ],
)
async def test_client_errors_are_typed_and_never_retried(
    avatar_client: AvatarClient, fake_agent_ai: FakeAgentAI, status: int, error_type: type
) -> None:
    fake_agent_ai.script(Reply(status=status, body={"error": "nope"}))

    with pytest.raises(error_type) as caught:
        await avatar_client.create_avatar(AvatarRequest.generate())

    assert type(caught.value) is error_type
    assert caught.value.status == status
    assert caught.value.action_status is None
    assert "nope" in (caught.value.body_excerpt or "")
    assert fake_agent_ai.calls == 1


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_transient_statuses_are_retried_then_succeed(
    avatar_client: AvatarClient, fake_agent_ai: FakeAgentAI, status: int
) -> None:
    fake_agent_ai.script(Reply(status=status, body={"error": "busy"}))

    result = await avatar_client.create_avatar(AvatarRequest.generate())

    assert result.group_id
    assert fake_agent_ai.calls == 2


@pytest.mark.parametrize(("status", "error_type"), [(429, RateLimitError), (503, ServerError)])
async def test_retries_are_bounded(
    avatar_client: AvatarClient, fake_agent_ai: FakeAgentAI, status: int, error_type: type
) -> None:
    fake_agent_ai.script(*[Reply(status=status, body={"error": "x"}) for _ in range(5)])

    with pytest.raises(error_type):
        await avatar_client.create_avatar(AvatarRequest.generate())

    assert fake_agent_ai.calls == FAST_RETRY.max_retries + 1


async def test_retry_after_is_honoured_and_capped(
    fake_agent_ai: FakeAgentAI, http_session: aiohttp.ClientSession
) -> None:
    policy = RetryPolicy(max_retries=1, initial_delay=0.0, max_delay=0.0, max_retry_after=0.3)
    client = AvatarClient(
        TOKEN, base_url=fake_agent_ai.base_url, session=http_session, retry=policy
    )
    fake_agent_ai.script(Reply(status=429, body={}, headers={"Retry-After": "3600"}))

    started = time.monotonic()
    await client.create_avatar(AvatarRequest.generate())

    waited = fake_agent_ai.requests[1].at - fake_agent_ai.requests[0].at
    assert 0.25 <= waited < 2.0
    assert time.monotonic() - started < 2.0


async def test_rate_limit_error_carries_retry_after(
    fake_agent_ai: FakeAgentAI, http_session: aiohttp.ClientSession
) -> None:
    client = AvatarClient(
        TOKEN,
        base_url=fake_agent_ai.base_url,
        session=http_session,
        retry=RetryPolicy(max_retries=0),
    )
    fake_agent_ai.script(Reply(status=429, body={}, headers={"Retry-After": "42"}))

    with pytest.raises(RateLimitError) as caught:
        await client.create_avatar(AvatarRequest.generate())

    assert caught.value.retry_after == 42
    assert caught.value.status == 429


@pytest.mark.parametrize(
    ("action_status", "error_type", "calls"),
    [(401, AuthenticationError, 1), (400, BadRequestError, 1), (500, ServerError, 3)],
)
async def test_action_level_failure_inside_http_200(
    avatar_client: AvatarClient,
    fake_agent_ai: FakeAgentAI,
    action_status: int,
    error_type: type,
    calls: int,
) -> None:
    fake_agent_ai.script(
        *[Reply(body={"status": action_status, "response": {"error": "heygen says no"}})] * 3
    )

    with pytest.raises(error_type) as caught:
        await avatar_client.create_avatar(AvatarRequest.generate())

    assert caught.value.action_status == action_status
    assert caught.value.status is None
    assert "action status" in str(caught.value)
    assert fake_agent_ai.calls == calls


async def test_a_response_that_never_comes_times_out_and_is_not_sent_again(
    fake_agent_ai: FakeAgentAI, http_session: aiohttp.ClientSession
) -> None:
    client = AvatarClient(
        TOKEN, base_url=fake_agent_ai.base_url, session=http_session, timeout=0.3, retry=FAST_RETRY
    )
    fake_agent_ai.script(*[Reply(kind="hang")] * 3)

    started = time.monotonic()
    with pytest.raises(APITimeoutError) as caught:
        await client.create_avatar(AvatarRequest.generate())
    waited = time.monotonic() - started

    assert fake_agent_ai.calls == 1  # it may have created an avatar: never a second credit
    error = caught.value
    assert isinstance(error, AmbiguousOutcomeError)
    assert not isinstance(error, APIConnectionError)
    assert 0.25 <= error.elapsed <= waited < 2.0
    assert "TimeoutError" in error.cause
    assert "may or may not have been created" in str(error)
    assert "not sent again" in str(error)


async def test_a_transient_status_then_no_answer_stops_at_the_unanswered_request(
    fake_agent_ai: FakeAgentAI, http_session: aiohttp.ClientSession
) -> None:
    client = AvatarClient(
        TOKEN, base_url=fake_agent_ai.base_url, session=http_session, timeout=0.3, retry=FAST_RETRY
    )
    fake_agent_ai.script(Reply(status=503, body={}), Reply(kind="hang"), Reply(kind="hang"))

    with pytest.raises(APITimeoutError):
        await client.create_avatar(AvatarRequest.generate())

    assert fake_agent_ai.calls == 2


async def test_a_connection_broken_after_sending_is_not_sent_again(
    avatar_client: AvatarClient, fake_agent_ai: FakeAgentAI
) -> None:
    fake_agent_ai.script(*[Reply(kind="reset")] * 3)

    with pytest.raises(ConnectionLostError) as caught:
        await avatar_client.create_avatar(AvatarRequest.generate())

    assert fake_agent_ai.calls == 1
    assert isinstance(caught.value, AmbiguousOutcomeError)
    assert caught.value.cause in {"ClientPayloadError", "ServerDisconnectedError"}
    assert "may or may not have been created" in str(caught.value)


async def test_an_upload_broken_after_sending_is_not_sent_again(
    avatar_client: AvatarClient, fake_agent_ai: FakeAgentAI
) -> None:
    fake_agent_ai.script(*[Reply(kind="reset")] * 3)

    with pytest.raises(ConnectionLostError):
        await avatar_client.create_avatar(
            AvatarRequest.upload([Photo.from_bytes(JPEG_HEAD * 200)], name="big")
        )

    assert fake_agent_ai.calls == 1


async def test_a_refused_connection_sent_nothing_and_is_retried(
    fake_agent_ai: FakeAgentAI, http_session: aiohttp.ClientSession
) -> None:
    port = int(fake_agent_ai.base_url.rsplit(":", 1)[1].split("/")[0])
    proxy = TcpProxy("127.0.0.1", port)
    await proxy.start()
    await proxy.cut()  # the port now refuses connections; restarting it listens again
    client = AvatarClient(
        TOKEN, base_url=f"http://127.0.0.1:{proxy.port}/v1", session=http_session, retry=FAST_RETRY
    )

    async def listen_again_before_the_retry(attempt: int) -> None:
        if attempt > 0:
            await proxy.start()

    try:
        result = await client.create_avatar(
            AvatarRequest.generate(), before_attempt=listen_again_before_the_retry
        )
    finally:
        await proxy.cut()

    assert result.group_id == "grp_000001"
    assert fake_agent_ai.calls == 1


async def test_nothing_listening_is_a_connection_error(http_session: aiohttp.ClientSession) -> None:
    client = AvatarClient(
        TOKEN, base_url="http://127.0.0.1:9/v1", session=http_session, retry=FAST_RETRY
    )
    with pytest.raises(APIConnectionError, match=r"could not reach agent\.ai") as caught:
        await client.create_avatar(AvatarRequest.generate())
    assert not isinstance(caught.value, AmbiguousOutcomeError)


def test_the_default_timeout_is_agent_ai_timeouts_default() -> None:
    assert AvatarClient(TOKEN)._timeout.total == 90


@pytest.mark.parametrize(("value", "seconds"), [("", 90.0), ("12.5", 12.5), (" 3 ", 3.0)])
def test_agent_ai_timeout_is_read_from_the_environment(value: str, seconds: float) -> None:
    env = {"DISCORD_TOKEN": DISCORD_TOKEN, "AGENT_AI_TOKEN": TOKEN, "AGENT_AI_TIMEOUT": value}
    assert Settings.from_env(env).agent_ai_timeout == seconds


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "ninety", "1e999"])
def test_a_malformed_agent_ai_timeout_is_one_clear_settings_error(value: str) -> None:
    env = {"DISCORD_TOKEN": DISCORD_TOKEN, "AGENT_AI_TOKEN": TOKEN, "AGENT_AI_TIMEOUT": value}
    with pytest.raises(SettingsError, match=r"^AGENT_AI_TIMEOUT is not a positive number"):
        Settings.from_env(env)


async def test_the_bot_gives_its_client_agent_ai_timeout(
    fake_agent_ai: FakeAgentAI, tmp_path: Path
) -> None:
    settings = dataclasses.replace(
        settings_for(fake_agent_ai, sqlite_url(tmp_path)), agent_ai_timeout=7.0
    )
    async with open_services(settings) as services:
        assert services.avatar_client._timeout.total == 7.0


@pytest.mark.parametrize(
    "raw",
    [
        b"<html><body>502 Bad Gateway</body></html>",
        b'{"status": 200, "respo',
        b"",
        b"[1, 2]",
        b'{"status": "ok", "response": {}}',
    ],
    ids=["html", "truncated", "empty", "array", "string-status"],
)
async def test_unreadable_200_bodies_are_unexpected_and_not_retried(
    avatar_client: AvatarClient, fake_agent_ai: FakeAgentAI, raw: bytes
) -> None:
    fake_agent_ai.script(Reply(kind="raw", raw=raw, headers={"Content-Type": "text/html"}))

    with pytest.raises(UnexpectedResponseError):
        await avatar_client.create_avatar(AvatarRequest.generate())

    assert fake_agent_ai.calls == 1


async def test_a_body_of_many_megabytes_is_refused(
    avatar_client: AvatarClient, fake_agent_ai: FakeAgentAI
) -> None:
    fake_agent_ai.script(Reply(kind="raw", raw=b'{"x": "' + b"a" * 5_000_000 + b'"}'))

    with pytest.raises(UnexpectedResponseError, match=r"too large|larger than"):
        await avatar_client.create_avatar(AvatarRequest.generate())


@pytest.mark.parametrize(
    "response",
    [
        {"group_id": "g-direct", "status": "completed"},
        {"avatar_result": {"group_id": "g-direct", "status": "completed"}},
        json.dumps({"avatar_result": {"group_id": "g-direct", "status": "completed"}}),
        json.dumps({"group_id": "g-direct", "status": "completed"}),
    ],
    ids=["direct", "nested", "string-nested", "string-direct"],
)
async def test_both_documented_result_shapes_parse(
    avatar_client: AvatarClient, fake_agent_ai: FakeAgentAI, response: object
) -> None:
    fake_agent_ai.script(Reply(body={"status": 200, "response": response}))

    result = await avatar_client.create_avatar(AvatarRequest.generate())

    assert (result.group_id, result.status) == ("g-direct", "completed")
    assert result.raw["response"] == response


@pytest.mark.parametrize(
    "response",
    [{}, {"avatar_result": {"status": "x"}}, "not json", None, [1], {"group_id": ""}],
    ids=["empty", "no-group", "bad-string", "null", "list", "blank-group"],
)
async def test_results_without_a_group_id_are_unexpected(
    avatar_client: AvatarClient, fake_agent_ai: FakeAgentAI, response: object
) -> None:
    fake_agent_ai.script(Reply(body={"status": 200, "response": response}))

    with pytest.raises(UnexpectedResponseError):
        await avatar_client.create_avatar(AvatarRequest.generate())


async def test_rate_limit_headers_are_exposed(
    avatar_client: AvatarClient, fake_agent_ai: FakeAgentAI
) -> None:
    fake_agent_ai.script(
        Reply(
            body={"status": 200, "response": {"group_id": "g", "status": "s"}},
            headers={"ratelimit-limit": "20", "ratelimit-remaining": "3", "ratelimit-reset": "17"},
        )
    )

    result = await avatar_client.create_avatar(AvatarRequest.generate())

    assert result.rate_limit.limit == 20
    assert result.rate_limit.remaining == 3
    assert result.rate_limit.reset_after == 17


async def test_error_messages_never_hold_the_token_or_photo_data(
    avatar_client: AvatarClient, fake_agent_ai: FakeAgentAI
) -> None:
    photo_b64 = base64.b64encode(JPEG_HEAD).decode()
    echoed = {"error": f"bad token Bearer {TOKEN}", "token": TOKEN, "echo": photo_b64}
    fake_agent_ai.script(Reply(status=400, body=echoed))

    with pytest.raises(BadRequestError) as caught:
        await avatar_client.create_avatar(
            AvatarRequest.upload([Photo.from_bytes(JPEG_HEAD)], name="x")
        )

    text = f"{caught.value} {caught.value.body_excerpt} {caught.value!r}"
    assert TOKEN not in text
    assert photo_b64[:64] not in text
    assert len(caught.value.body_excerpt or "") <= 200


async def test_wrong_token_is_an_authentication_error(
    fake_agent_ai: FakeAgentAI, http_session: aiohttp.ClientSession
) -> None:
    client = AvatarClient("wrong", base_url=fake_agent_ai.base_url, session=http_session)

    with pytest.raises(AuthenticationError, match="rejected the API token"):
        await client.create_avatar(AvatarRequest.generate())


async def test_an_injected_session_is_left_open_and_an_own_one_closed(
    fake_agent_ai: FakeAgentAI, http_session: aiohttp.ClientSession
) -> None:
    async with AvatarClient(TOKEN, base_url=fake_agent_ai.base_url, session=http_session) as c:
        await c.create_avatar(AvatarRequest.generate())
    assert not http_session.closed

    own = AvatarClient(TOKEN, base_url=fake_agent_ai.base_url)
    await own.create_avatar(AvatarRequest.generate())
    session = own._session
    await own.close()
    assert session is not None
    assert session.closed


@pytest.mark.parametrize("token", ["", " padded ", "two words", "line\nbreak"])
def test_malformed_tokens_are_refused_before_sending(token: str) -> None:
    with pytest.raises(ValidationError, match="token"):
        AvatarClient(token)


def test_client_repr_hides_the_token() -> None:
    assert TOKEN not in repr(AvatarClient(TOKEN))
