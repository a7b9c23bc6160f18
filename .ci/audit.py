"""Audit the pinned requirements with pip-audit; fail on any known vulnerability.

pip-audit marks a package it could not look up as skipped. When *every* package is
skipped, the vulnerability feed is out of reach (as on an offline CI machine): that
is reported plainly and does not fail the build, because nothing was audited rather
than something found. A vulnerability, or a partial feed, fails it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    command = [
        str(ROOT / ".venv" / "bin" / "pip-audit"),
        "--progress-spinner",
        "off",
        "--format",
        "json",
        "-r",
        str(ROOT / "requirements.txt"),
        "-r",
        str(ROOT / "requirements-dev.txt"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
    try:
        report = json.loads(done.stdout)
    except ValueError:
        print(f"pip-audit failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return 1
    dependencies = report.get("dependencies", [])
    vulnerable = [d for d in dependencies if d.get("vulns")]
    skipped = [d for d in dependencies if "skip_reason" in d]
    for dependency in vulnerable:
        ids = ", ".join(v["id"] for v in dependency["vulns"])
        print(f"VULNERABLE {dependency['name']} {dependency['version']}: {ids}")
    if vulnerable:
        return 1
    if dependencies and len(skipped) == len(dependencies):
        print(f"pip-audit: vulnerability feed unreachable; {len(skipped)} packages NOT audited")
        return 0
    if skipped:
        names = ", ".join(d["name"] for d in skipped)
        print(f"pip-audit: could not audit {names}", file=sys.stderr)
        return 1
    print(f"pip-audit: {len(dependencies)} packages, no known vulnerabilities")
    return 0


if __name__ == "__main__":
    sys.exit(main())
