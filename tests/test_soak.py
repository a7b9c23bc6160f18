"""A 30-second version of the soak run (the 10-minute one is `benchmarks/soak_bench.py`).

Real time, a steady stream of generate and upload requests from many members, and
faults injected into agent.ai (500s, resets, slow answers) and Discord (failing
edits and follow-ups). Timing figures are printed, not asserted: CI machines are
shared and noisy. What is asserted cannot be noise: nothing lost, nobody untold,
no 429 provoked by the bot's own pacing, and the budget never exceeded.
"""

from __future__ import annotations

import pytest

from benchmarks.soak_bench import run_soak


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_a_short_soak_loses_nothing_and_provokes_no_429() -> None:
    report = await run_soak(30.0, seed=7)

    print(
        f"soak 30 s: submitted {report.submitted}, accepted {report.accepted}, "
        f"succeeded {report.completed}, failed {report.failed}, refused {report.refused}; "
        f"ack p99 {report.ack_p99_ms:.1f} ms; RSS {report.rss_start_mb:.0f} -> "
        f"{report.rss_end_mb:.0f} MB"
    )
    assert report.accepted > 0
    assert report.unfinished == 0, "every accepted job ends succeeded or failed"
    assert report.untold == 0, "every requester is told"
    assert report.accepted == report.completed + report.failed
    assert report.provoked_429 == 0
    assert report.submitted == report.accepted + report.refused
