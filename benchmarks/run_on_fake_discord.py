"""Run Avatar Bot's own entry point (``bot.main()``) against the loopback fake Discord.

``python -m benchmarks.run_on_fake_discord`` with the bot's usual environment
plus ``FAKE_DISCORD_URL``: discord.py is pointed at the fake before ``bot.main()``
starts. With ``PROFILE_TO=<path>``, SIGUSR1 starts cProfile on the main thread
(the event loop) and SIGUSR2 stops it and writes the stats to that path.
"""

from __future__ import annotations

import cProfile
import os
import signal
import sys
from types import FrameType

from tests.fake_discord.client import use_fake_discord_from_env


def install_profiler(path: str) -> None:
    profiler = cProfile.Profile()

    def start(_: int, __: FrameType | None) -> None:
        profiler.enable()

    def stop(_: int, __: FrameType | None) -> None:
        profiler.disable()
        profiler.dump_stats(path)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)


def main() -> int:
    if not use_fake_discord_from_env():
        print("error: FAKE_DISCORD_URL is not set", file=sys.stderr)
        return 2
    profile_to = os.environ.get("PROFILE_TO")
    if profile_to:
        install_profiler(profile_to)
    import bot

    return bot.main()


if __name__ == "__main__":
    sys.exit(main())
