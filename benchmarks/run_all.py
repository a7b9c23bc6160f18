"""Run the benchmarks one after another (``make bench``): photos/JSON, preflight, load, queue.

Run: ``.venv/bin/python benchmarks/run_all.py [--only load queue] [--with-soak SECONDS]``

Each benchmark runs in its own process (so one's memory does not colour the
next one's figures) with the repository root as the working directory. The
soak is left out by default (ten minutes); ``--with-soak 120`` adds a short one.
Exits non-zero if any benchmark failed to run; the figures themselves are for
people to read, not pass/fail checks.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Bench:
    name: str
    command: tuple[str, ...]


BENCHES: tuple[Bench, ...] = (
    Bench("photos_json", ("benchmarks/photos_json_bench.py",)),
    Bench("preflight", ("-m", "benchmarks.preflight_bench")),
    Bench("load", ("benchmarks/load_bench.py",)),
    Bench("queue", ("benchmarks/queue_bench.py",)),
)


def run(bench: Bench) -> tuple[int, float]:
    print(f"\n=== {bench.name} {'=' * (60 - len(bench.name))}", flush=True)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, *bench.command], cwd=ROOT, check=False)
    return result.returncode, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=[b.name for b in BENCHES])
    parser.add_argument("--with-soak", type=float, metavar="SECONDS")
    args = parser.parse_args()
    chosen = [b for b in BENCHES if not args.only or b.name in args.only]
    if args.with_soak:
        chosen.append(
            Bench("soak", ("benchmarks/soak_bench.py", "--duration", str(args.with_soak)))
        )
    outcomes = [(bench, *run(bench)) for bench in chosen]
    print("\n=== summary " + "=" * 52)
    for bench, code, seconds in outcomes:
        status = "ok" if code == 0 else f"FAILED (exit {code})"
        print(f"  {bench.name:12} {status:18} {seconds:6.0f} s")
    print(f"  JSON results: {ROOT / 'benchmarks' / 'results'}/")
    return 0 if all(code == 0 for _, code, _ in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
