"""``python -m avatar_api`` as an operator runs it: a real process against the fake agent.ai."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tests.fake_agent_ai import TOKEN, FakeAgentAI, Reply
from tests.processes import Completed, run_python

ROOT = Path(__file__).resolve().parents[1]


async def run_cli(*args: str, env: dict[str, str], cwd: Path) -> Completed:
    return await run_python("-m", "avatar_api", *args, env=env, cwd=cwd)


@pytest.fixture
def env(fake_agent_ai: FakeAgentAI) -> dict[str, str]:
    return {"AGENT_AI_TOKEN": TOKEN, "AGENT_AI_BASE_URL": fake_agent_ai.base_url}


async def test_generate_prints_one_json_object(
    fake_agent_ai: FakeAgentAI, env: dict[str, str], tmp_path: Path
) -> None:
    done = await run_cli(
        "generate",
        "--name",
        "Ada",
        "--age",
        "Middle-Aged",
        "--ethnicity",
        "Middle Eastern",
        "--pose",
        "close_up",
        "--appearance",
        "red scarf",
        env=env,
        cwd=tmp_path,
    )

    assert done.code == 0, done.stderr
    assert json.loads(done.stdout) == {
        "group_id": "grp_000001",
        "status": "pending",
        "action_status": 200,
        "source_type": "generate",
    }
    body = fake_agent_ai.requests[0].body
    assert (body["name"], body["age"], body["ethnicity"], body["pose"]) == (
        "Ada",
        "Middle-Aged",
        "Middle Eastern",
        "close_up",
    )
    assert done.stderr == ""


async def test_missing_token_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    done = await run_cli("generate", env={}, cwd=tmp_path)

    assert done.code == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert "AGENT_AI_TOKEN" in done.stderr
    assert "agent.ai/user/integrations" in done.stderr


async def test_token_is_read_from_dotenv_but_real_env_wins(
    fake_agent_ai: FakeAgentAI, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(
        f"AGENT_AI_TOKEN={TOKEN}\nAGENT_AI_BASE_URL=http://127.0.0.1:9/v1\n"
    )

    done = await run_cli(
        "generate", env={"AGENT_AI_BASE_URL": fake_agent_ai.base_url}, cwd=tmp_path
    )

    assert done.code == 0, done.stderr
    assert fake_agent_ai.calls == 1


@pytest.mark.parametrize(
    ("reply", "fragment"),
    [
        (Reply(status=401, body={}), "rejected the API token"),
        (Reply(status=403, body={}), "may not use this action"),
        (Reply(status=404, body={}), "not found"),
        (Reply(status=400, body={"error": "bad"}), "rejected the request"),
        (Reply(body={"status": 500, "response": {}}), "failed on its side"),
        (Reply(kind="raw", raw=b"<html>oops</html>"), "not JSON"),
    ],
)
async def test_api_errors_exit_1_with_one_clear_line(
    fake_agent_ai: FakeAgentAI, env: dict[str, str], tmp_path: Path, reply: Reply, fragment: str
) -> None:
    fake_agent_ai.script(*[reply] * 3)
    env = {**env, "AGENT_AI_TOKEN": TOKEN}

    done = await run_cli("generate", env=env, cwd=tmp_path)

    assert done.code == 1
    assert done.stdout == ""
    assert fragment in done.stderr
    assert done.stderr.startswith("error: agent.ai request failed")
    assert done.stderr.count("\n") == 1
    assert TOKEN not in done.stderr
    assert "Traceback" not in done.stderr


async def test_wrong_token_exits_1(fake_agent_ai: FakeAgentAI, tmp_path: Path) -> None:
    env = {"AGENT_AI_TOKEN": "wrong-token", "AGENT_AI_BASE_URL": fake_agent_ai.base_url}
    done = await run_cli("generate", env=env, cwd=tmp_path)
    assert done.code == 1
    assert "rejected the API token" in done.stderr
    assert "wrong-token" not in done.stderr


async def test_unreachable_base_url_exits_1(tmp_path: Path) -> None:
    env = {"AGENT_AI_TOKEN": TOKEN, "AGENT_AI_BASE_URL": "http://127.0.0.1:9/v1"}
    done = await run_cli("generate", env=env, cwd=tmp_path)
    assert done.code == 1
    assert "could not reach agent.ai" in done.stderr


async def test_invalid_option_is_a_usage_error(env: dict[str, str], tmp_path: Path) -> None:
    done = await run_cli("generate", "--age", "Teen", env=env, cwd=tmp_path)
    assert done.code == 2
    assert "invalid choice" in done.stderr


async def test_overlong_appearance_is_bad_input(env: dict[str, str], tmp_path: Path) -> None:
    done = await run_cli("generate", "--appearance", "a" * 1001, env=env, cwd=tmp_path)
    assert done.code == 3
    assert "at most 1000" in done.stderr
    assert done.stderr.count("\n") == 1


async def test_a_file_that_is_not_a_photo_is_bad_input(
    fake_agent_ai: FakeAgentAI, env: dict[str, str], tmp_path: Path
) -> None:
    fake = tmp_path / "selfie.jpg"
    fake.write_text("this is a text file wearing a .jpg name")

    done = await run_cli("upload", str(fake), env=env, cwd=tmp_path)

    assert done.code == 3
    assert "photo 1" in done.stderr
    assert done.stderr.count("\n") == 1
    assert fake_agent_ai.calls == 0


async def test_a_missing_file_is_a_usage_error(env: dict[str, str], tmp_path: Path) -> None:
    done = await run_cli("upload", str(tmp_path / "nope.jpg"), env=env, cwd=tmp_path)
    assert done.code == 2
    assert "cannot read" in done.stderr


async def test_upload_sends_a_prepared_face_photo(
    fake_agent_ai: FakeAgentAI, env: dict[str, str], tmp_path: Path
) -> None:
    from tests.bot_world import face_photo

    photo = tmp_path / "IMG_0001.HEIC"
    photo.write_bytes(face_photo("HEIC"))

    done = await run_cli("upload", str(photo), "--name", "Me", env=env, cwd=tmp_path)

    assert done.code == 0, done.stderr
    assert json.loads(done.stdout)["source_type"] == "upload"
    (sent,) = fake_agent_ai.requests[0].photo_bytes()
    assert sent.startswith(b"\xff\xd8\xff")
    assert b"Exif" not in sent


async def test_upload_prints_every_preflight_problem_on_one_line(
    fake_agent_ai: FakeAgentAI, env: dict[str, str], tmp_path: Path
) -> None:
    from tests.photo_factory import make_jpeg

    for name in ("a.jpg", "b.jpg"):
        (tmp_path / name).write_bytes(make_jpeg(800, 800))

    done = await run_cli("upload", "a.jpg", "b.jpg", env=env, cwd=tmp_path)

    assert done.code == 3
    assert done.stderr.count("\n") == 1
    assert "photo 1" in done.stderr.lower()
    assert "photo 2" in done.stderr.lower()
    assert "nothing was sent" in done.stderr
    assert fake_agent_ai.calls == 0

    forced = await run_cli("upload", "a.jpg", "--no-preflight", env=env, cwd=tmp_path)
    assert forced.code == 0, forced.stderr
    assert fake_agent_ai.calls == 1


def test_the_corrupt_exif_photo_makes_pillow_warn() -> None:
    """The input of the next tests: Pillow warns when it reads this photo's EXIF."""
    from PIL import Image

    from tests.photo_factory import jpeg_with_corrupt_exif

    data = jpeg_with_corrupt_exif(Image.new("RGB", (600, 600), (90, 90, 90)))
    pillow_warns = pytest.warns(UserWarning, match=r"(?i)truncated|corrupt|tag data")
    with pillow_warns, Image.open(io.BytesIO(data)) as image:
        image.getexif()


async def test_a_refused_photo_with_corrupt_exif_is_one_line_and_no_warning(
    fake_agent_ai: FakeAgentAI, env: dict[str, str], tmp_path: Path
) -> None:
    from PIL import Image

    from tests.photo_factory import jpeg_with_corrupt_exif

    photo = tmp_path / "bad_exif.jpg"
    photo.write_bytes(jpeg_with_corrupt_exif(Image.new("RGB", (600, 600), (90, 90, 90))))

    done = await run_cli("upload", str(photo), env=env, cwd=tmp_path)

    assert done.code == 3
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: invalid input: ")
    assert "Warning" not in done.stderr
    assert fake_agent_ai.calls == 0


async def test_a_sent_photo_with_corrupt_exif_prints_nothing_on_stderr(
    fake_agent_ai: FakeAgentAI, env: dict[str, str], tmp_path: Path
) -> None:
    from tests.bot_world import face_image
    from tests.photo_factory import jpeg_with_corrupt_exif

    photo = tmp_path / "bad_exif.jpg"
    photo.write_bytes(jpeg_with_corrupt_exif(face_image()))

    done = await run_cli("upload", str(photo), env=env, cwd=tmp_path)
    assert (done.code, done.stderr) == (0, "")
    assert fake_agent_ai.calls == 1

    logged = await run_cli("upload", str(photo), env={**env, "LOG_LEVEL": "INFO"}, cwd=tmp_path)
    assert logged.code == 0, logged.stderr
    assert "WARNING py.warnings:" in logged.stderr  # captured into logging, not lost
    assert "INFO " in logged.stderr


async def test_retries_print_nothing_unless_log_level_is_set(
    fake_agent_ai: FakeAgentAI, env: dict[str, str], tmp_path: Path
) -> None:
    fake_agent_ai.script(Reply(status=503, body={}), Reply(status=502, body={}))

    done = await run_cli("generate", env=env, cwd=tmp_path)

    assert (done.code, done.stderr) == (0, "")
    assert json.loads(done.stdout)["group_id"]
    assert fake_agent_ai.calls == 3

    fake_agent_ai.script(Reply(status=503, body={}))
    logged = await run_cli("generate", env={**env, "LOG_LEVEL": "WARNING"}, cwd=tmp_path)
    assert logged.code == 0
    assert logged.stderr.count("WARNING avatar_api.client: agent.ai attempt 1 failed") == 1


async def test_retries_that_all_fail_end_in_one_line(
    fake_agent_ai: FakeAgentAI, env: dict[str, str], tmp_path: Path
) -> None:
    fake_agent_ai.script(*[Reply(status=503, body={})] * 3)

    done = await run_cli("generate", env=env, cwd=tmp_path)

    assert done.code == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: agent.ai request failed: agent.ai failed on its side")
    assert fake_agent_ai.calls == 3


async def test_an_unanswered_request_is_one_line_saying_it_was_not_sent_again(
    fake_agent_ai: FakeAgentAI, env: dict[str, str], tmp_path: Path
) -> None:
    fake_agent_ai.script(Reply(kind="hang"))

    done = await run_cli("generate", env={**env, "AGENT_AI_TIMEOUT": "0.5"}, cwd=tmp_path)

    assert done.code == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert "did not answer within 0.5 s" in done.stderr
    assert "may or may not have been created" in done.stderr
    assert fake_agent_ai.calls == 1


@pytest.mark.parametrize(
    ("extra", "args", "fragment"),
    [
        ({"AGENT_AI_TIMEOUT": "soon"}, ("generate",), "AGENT_AI_TIMEOUT"),
        ({"LOG_LEVEL": "LOUD"}, ("generate",), "LOG_LEVEL"),
        ({}, ("generate", "--age", "Teen"), "invalid choice"),
        ({}, (), "required"),
        ({}, ("upload",), "required"),
    ],
    ids=["timeout", "log-level", "choice", "no-command", "no-photo"],
)
async def test_usage_and_configuration_errors_are_one_line(
    env: dict[str, str], tmp_path: Path, extra: dict[str, str], args: tuple[str, ...], fragment: str
) -> None:
    done = await run_cli(*args, env={**env, **extra}, cwd=tmp_path)

    assert done.code == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: ")
    assert fragment in done.stderr
