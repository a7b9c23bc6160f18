"""The Makefile, run for real by ``make`` in a scratch copy of the repository's build files.

An old interpreter is stood in for by a small script that answers as Python 3.10 would
(none is installed here); everything else uses the interpreter running the tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BUILD_FILES = ("Makefile", "requirements.txt", "requirements-dev.txt")
TOO_OLD = "error: Python 3.11 or newer is needed (found 3.10); set PYTHON=python3.11"
REAL_PYTHON = str(Path(sys.executable).resolve())
# Answers the Makefile's probes as Python 3.10.14 would, and refuses to do anything else.
PYTHON_3_10 = f"""#!{REAL_PYTHON}
import sys
if sys.argv[1:2] != ["-c"]:
    sys.exit("this stand-in only answers -c probes")
sys.version_info = (3, 10, 14, "final", 0)
sys.version = "3.10.14 (main) [GCC]"
exec(compile(sys.argv[2], "<string>", "exec"))
"""

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    for name in BUILD_FILES:
        shutil.copy(REPO / name, tmp_path / name)
    return tmp_path


def make(checkout: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PIP_NO_INDEX": "1", **env}
    environment.pop("MAKEFLAGS", None)
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=checkout,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def python_3_10(directory: Path) -> str:
    script = directory / "python3.10"
    script.write_text(PYTHON_3_10)
    script.chmod(0o755)
    return str(script)


@pytest.mark.parametrize("target", ["run", "test", "lint"])
def test_an_old_python_is_refused_first_with_one_clear_line(checkout: Path, target: str) -> None:
    result = make(checkout, target, f"PYTHON={python_3_10(checkout)}")
    assert result.returncode != 0
    assert result.stderr.splitlines()[0] == TOO_OLD
    assert "pip" not in result.stdout + result.stderr
    assert not (checkout / ".venv").exists()


def test_a_missing_python_is_named(checkout: Path) -> None:
    result = make(checkout, "run", "PYTHON=python3.99-not-installed")
    assert result.returncode != 0
    assert result.stderr.splitlines()[0] == (
        "error: Python 3.11 or newer is needed (found no python3.99-not-installed); "
        "set PYTHON=python3.11"
    )
    assert not (checkout / ".venv").exists()


def test_a_venv_that_fails_to_build_is_removed(checkout: Path) -> None:
    result = make(checkout, ".venv/.python", f"PYTHON={REAL_PYTHON}", PIP_PROGRESS_BAR="bad")
    assert result.returncode != 0
    assert not (checkout / ".venv").exists()


def test_a_venv_of_another_python_is_rebuilt_and_a_failed_install_is_retried(
    checkout: Path,
) -> None:
    venv = checkout / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / ".python").write_text("3.10.14 /usr/bin/python3.10\n")
    (venv / "left-by-3.10").write_text("")
    (checkout / "requirements.txt").write_text("no-such-package-anywhere==1.0\n")

    first = make(checkout, "run", f"PYTHON={REAL_PYTHON}")
    assert "creating .venv with Python 3." in first.stdout
    assert not (venv / "left-by-3.10").exists()
    assert (venv / ".python").read_text().split() == [
        sys.version.split()[0],
        REAL_PYTHON,
    ]
    assert first.returncode != 0  # the requirement cannot be installed...
    assert "no-such-package-anywhere" in first.stderr
    assert not (venv / ".runtime").exists()  # ...so it is not marked installed

    second = make(checkout, "run", f"PYTHON={REAL_PYTHON}")
    assert "creating .venv" not in second.stdout  # the venv is kept: same interpreter
    assert "no-such-package-anywhere" in second.stderr  # and the install is tried again
    assert not (venv / ".runtime").exists()

    (checkout / "requirements.txt").write_text("")
    (checkout / "bot.py").write_text("print('bot started')\n")
    third = make(checkout, "run", f"PYTHON={REAL_PYTHON}")
    assert third.returncode == 0, third.stderr
    assert "bot started" in third.stdout
    assert (venv / ".runtime").exists()


def test_clean_removes_the_venv_and_every_cache(checkout: Path) -> None:
    for name in (".venv/bin", ".pytest_cache", ".ruff_cache", ".hypothesis/examples"):
        (checkout / name).mkdir(parents=True)
    result = make(checkout, "clean")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in checkout.iterdir()) == sorted(BUILD_FILES)
