"""One bounded thread pool for photo CPU work (decoding, resizing, encoding, detection).

Kept apart from the event loop's default executor, which aiohttp also uses for DNS
lookups: a burst of uploads then waits for photo threads instead of delaying every
other request. One core is left free for the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

PHOTO_THREADS = max(1, (os.cpu_count() or 2) - 1)
_executor = ThreadPoolExecutor(max_workers=PHOTO_THREADS, thread_name_prefix="photos")


async def run_photo_work(function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run CPU-bound photo work off the event loop, in the photo pool."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor, functools.partial(function, *args, **kwargs))
