"""One process of a bot fleet under test: ``python -m tests.fleet_bot``.

The real entry point, ``bot.main()``, with discord.py pointed at the loopback fake
Discord (``FAKE_DISCORD_URL``) by ``benchmarks/run_on_fake_discord.py``.
``FLEET_BUDGET`` (``per_window,window_seconds,margin_seconds``) shortens
agent.ai's 60 s window where the limit itself is not what a test measures; the
fake agent.ai then enforces the same short window.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta

from avatarbot.store.base import Budget


def fleet_budget(spec: str) -> Budget:
    per_window, window, margin = (float(part) for part in spec.split(","))
    return Budget(
        per_minute=int(per_window),
        per_day=100_000,
        window=timedelta(seconds=window),
        margin=timedelta(seconds=margin),
    )


def main() -> int:
    import bot
    from benchmarks.run_on_fake_discord import main as run_on_fake_discord

    spec = os.environ.get("FLEET_BUDGET")
    if spec:
        use_budget(bot, fleet_budget(spec))
    return run_on_fake_discord()


def use_budget(bot: object, budget: Budget) -> None:
    """Replace the bot's budget (``run_bot`` reads it when it starts)."""
    bot.DEFAULT_BUDGET = budget  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.exit(main())
