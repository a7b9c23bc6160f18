"""Run Python as an operator would: a fresh process, a clean environment, no shell."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Completed:
    code: int
    stdout: str
    stderr: str


async def run_python(*args: str, env: dict[str, str], cwd: Path) -> Completed:
    """``python ARGS`` with only PATH, the project on PYTHONPATH and ``env``."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **env},
        cwd=cwd,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return Completed(process.returncode, out.decode(), err.decode())
