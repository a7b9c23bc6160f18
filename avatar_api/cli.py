"""``python -m avatar_api``: try an agent.ai token without Discord.

Prints the result as one JSON object on stdout and exits 0; on failure prints
one line on stderr and exits non-zero (1: agent.ai failed, 2: usage or
configuration, 3: bad input such as a photo that cannot be used). Nothing else
reaches stderr — no log lines, no Python warnings — unless LOG_LEVEL is set.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import NoReturn

from dotenv import find_dotenv, load_dotenv

from .client import DEFAULT_BASE_URL, AvatarClient, timeout_from_text
from .exceptions import AvatarAPIError, PhotoError, ValidationError
from .models import (
    MAX_PHOTOS,
    Age,
    AvatarRequest,
    AvatarResult,
    Ethnicity,
    Gender,
    Orientation,
    Pose,
    Style,
)

log = logging.getLogger(__name__)

TOKEN_HELP = "create one at https://agent.ai/user/integrations#api and set AGENT_AI_TOKEN"


class ExitCode(IntEnum):
    OK = 0
    API_ERROR = 1
    USAGE = 2
    BAD_INPUT = 3


class CLIError(Exception):
    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.code = code


class OneLineParser(argparse.ArgumentParser):
    """Usage errors become one line (a :class:`CLIError`), not usage text and an error."""

    def error(self, message: str) -> NoReturn:
        raise CLIError(f"{message} (see {self.prog} --help)", ExitCode.USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m avatar_api",
        description="Create a HeyGen photo avatar through agent.ai, to test a token.",
        epilog="Reads AGENT_AI_TOKEN, AGENT_AI_BASE_URL, AGENT_AI_TIMEOUT and LOG_LEVEL from "
        "the environment or .env.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    generate = commands.add_parser("generate", help="generate an avatar from options")
    generate.add_argument("--name", help='display name (default "My Avatar")')
    _add_enum_option(generate, "--age", Age)
    _add_enum_option(generate, "--gender", Gender)
    _add_enum_option(generate, "--ethnicity", Ethnicity)
    _add_enum_option(generate, "--orientation", Orientation)
    _add_enum_option(generate, "--pose", Pose)
    _add_enum_option(generate, "--style", Style)
    generate.add_argument("--appearance", help="free-text appearance, at most 1000 characters")
    upload = commands.add_parser("upload", help=f"create an avatar from 1-{MAX_PHOTOS} photos")
    upload.add_argument("photos", nargs="+", metavar="PHOTO", type=Path, help="JPEG/PNG/HEIC/WebP")
    upload.add_argument("--name", help='display name (default "My Avatar")')
    upload.add_argument(
        "--no-preflight",
        action="store_true",
        help="send even photos the face/sharpness/exposure/duplicate checks would refuse",
    )
    return parser


def _add_enum_option(parser: argparse.ArgumentParser, flag: str, enum: type[StrEnum]) -> None:
    values = [member.value for member in enum]
    parser.add_argument(
        flag, choices=values, metavar=flag.lstrip("-").upper(), help=" | ".join(values)
    )


async def run(args: argparse.Namespace) -> AvatarResult:
    token = os.environ.get("AGENT_AI_TOKEN", "").strip()
    if not token:
        raise CLIError(f"AGENT_AI_TOKEN is not set: {TOKEN_HELP}", ExitCode.USAGE)
    base_url = os.environ.get("AGENT_AI_BASE_URL", "").strip() or DEFAULT_BASE_URL
    timeout = read_timeout(os.environ.get("AGENT_AI_TIMEOUT", ""))
    request = await build_request(args)
    async with AvatarClient(token, base_url=base_url, timeout=timeout) as client:
        return await client.create_avatar(request)


def read_timeout(value: str) -> float:
    try:
        return timeout_from_text(value)
    except ValueError:
        raise CLIError(
            "AGENT_AI_TIMEOUT is not a positive number of seconds (e.g. 90)", ExitCode.USAGE
        ) from None


async def build_request(args: argparse.Namespace) -> AvatarRequest:
    if args.command == "generate":
        return AvatarRequest.generate(
            name=args.name,
            age=args.age,
            gender=args.gender,
            ethnicity=args.ethnicity,
            orientation=args.orientation,
            pose=args.pose,
            style=args.style,
            appearance=args.appearance,
        )
    from .photos import PhotoLimits, prepare_photos
    from .preflight import preflight_photos_async

    limits = PhotoLimits()
    if len(args.photos) > limits.max_photos:
        raise PhotoError(f"{len(args.photos)} photos given; at most {limits.max_photos}")
    blobs = [
        read_photo_file(path, index, limits.max_bytes) for index, path in enumerate(args.photos, 1)
    ]
    photos = await prepare_photos(blobs, limits=limits)
    if not args.no_preflight:
        report = await preflight_photos_async(photos)
        if not report.ok:
            problems = " | ".join(problem.message for problem in report.problems)
            raise PhotoError(
                f"HeyGen would likely reject these photos (nothing was sent): {problems} "
                "(--no-preflight sends them anyway)"
            )
    return AvatarRequest.upload(photos, name=args.name)


def read_photo_file(path: Path, index: int, max_bytes: int) -> bytes:
    """The file's bytes, refusing an oversized file before reading it."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise PhotoError(
                f"{path.name} is {size / 1_048_576:.1f} MB; at most {max_bytes // 1_048_576} MB",
                photo_index=index,
                reason="too_large",
            )
        return path.read_bytes()
    except OSError as error:
        raise CLIError(f"cannot read {path}: {error.strerror}", ExitCode.USAGE) from None


def result_json(result: AvatarResult, request_kind: str) -> str:
    return json.dumps(
        {
            "group_id": result.group_id,
            "status": result.status,
            "action_status": result.action_status,
            "source_type": request_kind,
        }
    )


def main(argv: Sequence[str] | None = None) -> int:
    silence_logging()
    load_dotenv(find_dotenv(usecwd=True), override=False)
    try:
        configure_logging(os.environ.get("LOG_LEVEL", ""))
        args = build_parser().parse_args(argv)
        result = asyncio.run(run(args))
    except CLIError as error:
        return _fail(str(error), error.code)
    except ValidationError as error:
        return _fail(f"invalid input: {error}", ExitCode.BAD_INPUT)
    except AvatarAPIError as error:
        return _fail(f"agent.ai request failed: {error}", ExitCode.API_ERROR)
    except KeyboardInterrupt:
        return _fail("interrupted", ExitCode.USAGE)
    except Exception:
        log.debug("unexpected error", exc_info=True)
        return _fail("unexpected error; run again with LOG_LEVEL=DEBUG for details", ExitCode.USAGE)
    print(result_json(result, args.command))
    return ExitCode.OK


def silence_logging() -> None:
    """Nothing on stderr from logging or warnings (until :func:`configure_logging` says so).

    Python warnings (e.g. Pillow's about a photo's corrupt EXIF) are routed into logging,
    and the root logger gets a handler that drops everything: without one, logging's
    last resort would print warnings.
    """
    logging.captureWarnings(True)
    logging.basicConfig(handlers=[logging.NullHandler()], level=logging.CRITICAL + 1, force=True)


def configure_logging(level_name: str) -> None:
    """Log to stderr at LOG_LEVEL when it is set; stay silent when it is not."""
    name = level_name.strip().upper()
    if not name:
        return
    level = logging.getLevelNamesMapping().get(name)
    if level is None:
        raise CLIError(
            "LOG_LEVEL is not a logging level: one of DEBUG, INFO, WARNING, ERROR", ExitCode.USAGE
        )
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s", force=True
    )


def _fail(message: str, code: ExitCode) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code
