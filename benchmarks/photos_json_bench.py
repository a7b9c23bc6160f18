"""How long and how much memory an upload body takes, and how fast photos prepare.

Run: ``.venv/bin/python benchmarks/photos_json_bench.py [--photos 4] [--mb 10]``

1. Request body for N photos of M MB (random bytes behind a JPEG magic number;
   encoding only base64s them): time for ``to_payload()`` and for the body as
   the client builds it, the longest event-loop stall while the client builds
   it through ``asyncio.to_thread``, and peak extra memory (tracemalloc) as a
   multiple of the photo bytes.
2. ``prepare_photo`` on a 12-megapixel JPEG and a 12-megapixel HEIC.

Goals: body well under 1 s; peak extra memory under 3× the photo bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import binascii
import gc
import json
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avatar_api.models import AvatarRequest, Photo, encode_photos_json
from avatar_api.photos import prepare_photo
from tests import photo_factory

MB = 1024 * 1024


def _dump_payload(request: AvatarRequest) -> bytes:
    """The body exactly as the client sends it."""
    return request.to_body()


BODY_TIME_GOAL = 1.0
MEMORY_GOAL = 3.0


@dataclass(frozen=True, slots=True)
class Measure:
    seconds: float
    peak_bytes: int


def timed(func: Callable[[], object], repeat: int = 3) -> float:
    """The median wall time of ``func`` over ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def peak_memory(func: Callable[[], object]) -> int:
    """Peak bytes allocated while ``func`` runs, beyond what existed before."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        baseline, _ = tracemalloc.get_traced_memory()
        func()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - baseline


async def longest_loop_stall(func: Callable[[], object], tick: float = 0.001) -> float:
    """Run ``func`` in a thread and return the longest gap a 1 ms ticker saw."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(tick)
            now = time.perf_counter()
            gaps.append(now - last - tick)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    await asyncio.to_thread(func)
    done.set()
    await task
    return max(gaps)


# --- a further option: fill an exact-size buffer -------------------------------
#
# AvatarRequest.to_body splices base64 into the body with one join (~2.7x the
# photo bytes). Filling a preallocated buffer chunk by chunk holds one body copy
# (~1.4x); it is measured here against the shipped body, byte for byte.


def _body_head(request: AvatarRequest) -> bytes:
    small = {
        "source_type": request.source_type.value,
        "output_variable_name": request.output_variable_name,
        "name": request.name,
    }
    return json.dumps(small, ensure_ascii=False)[:-1].encode("utf-8") + b', "photos_json": "['


def _photo_pieces(photo: Photo) -> tuple[bytes, bytes]:
    prefix = b'{\\"base64\\": \\"'
    suffix = b'\\", \\"mimeType\\": \\"' + photo.mime_type.value.encode() + b'\\"}'
    return prefix, suffix


_CHUNK = 3 * 256 * 1024  # a multiple of 3, so chunks base64 without padding


def proposed_body_prealloc(request: AvatarRequest) -> bytearray:
    """Exact-size buffer filled chunk by chunk (~1.3× photo bytes, short GIL holds)."""
    head, tail = _body_head(request), b']"}'
    pieces = [_photo_pieces(photo) for photo in request.photos]
    size = (
        len(head)
        + len(tail)
        + 2 * (len(pieces) - 1)
        + sum(
            len(prefix) + len(suffix) + 4 * -(-photo.size // 3)
            for (prefix, suffix), photo in zip(pieces, request.photos, strict=True)
        )
    )
    body = bytearray(size)
    view = memoryview(body)
    position = 0

    def put(data: bytes) -> None:
        nonlocal position
        view[position : position + len(data)] = data
        position += len(data)

    put(head)
    for number, ((prefix, suffix), photo) in enumerate(zip(pieces, request.photos, strict=True)):
        put(b", " if number else b"")
        put(prefix)
        data = memoryview(photo.data)
        for start in range(0, len(data), _CHUNK):
            put(binascii.b2a_base64(data[start : start + _CHUNK], newline=False))
        put(suffix)
    put(tail)
    view.release()
    assert position == size
    return body


def bench_body(count: int, size_mb: float) -> None:
    size = int(size_mb * MB)
    photos = [Photo.from_bytes(photo_factory.fake_jpeg_blob(size, seed=i)) for i in range(count)]
    request = AvatarRequest.upload(photos, name="Bench")
    photo_bytes = count * size
    print(f"Request body: {count} photos × {size_mb:g} MB = {photo_bytes / MB:.0f} MB of photos")

    steps: list[tuple[str, Callable[[], object]]] = [
        ("encode_photos_json", lambda: encode_photos_json(request.photos)),
        ("to_payload()", request.to_payload),
        ("full body as sent (AvatarRequest.to_body)", lambda: _dump_payload(request)),
        ("option: preallocated, chunked base64", lambda: proposed_body_prealloc(request)),
    ]
    for label, func in steps:
        seconds = timed(func)
        peak = peak_memory(func)
        print(
            f"  {label:45} {seconds * 1000:7.0f} ms   peak extra {peak / MB:6.0f} MB "
            f"= {peak / photo_bytes:4.2f}× photo bytes"
        )
    body_seconds = timed(lambda: _dump_payload(request))
    body_peak = peak_memory(lambda: _dump_payload(request)) / photo_bytes
    stall = asyncio.run(longest_loop_stall(lambda: _dump_payload(request)))
    print(f"  longest event-loop stall while built in asyncio.to_thread: {stall * 1000:.0f} ms")
    assert proposed_body_prealloc(request) == _dump_payload(request), "the option's body differs"
    stall = asyncio.run(longest_loop_stall(lambda: proposed_body_prealloc(request)))
    print(f"  option: preallocated (byte-identical body): longest stall {stall * 1000:.0f} ms")
    print(
        f"  goal: body < {BODY_TIME_GOAL:g} s: {_verdict(body_seconds < BODY_TIME_GOAL)}; "
        f"peak < {MEMORY_GOAL:g}× photo bytes: {_verdict(body_peak < MEMORY_GOAL)}"
    )


def bench_prepare() -> None:
    print("prepare_photo (default limits: long side to 2048 px):")
    cases = [
        ("12 MP JPEG 4032×3024, EXIF orientation 6 + GPS", photo_factory.make_12mp_jpeg),
        ("12 MP HEIC 4032×3024", photo_factory.make_12mp_heic),
    ]
    for label, make in cases:
        data = make()
        seconds = timed(lambda data=data: prepare_photo(data), repeat=5)
        print(
            f"  {label:48} {len(data) / MB:4.1f} MB in: {seconds * 1000:4.0f} ms, "
            f"peak RSS growth {_child_peak_rss_growth(data) / MB:4.0f} MB"
        )


def _child_peak_rss_growth(data: bytes) -> int:
    """Peak RSS growth of one prepare_photo in a fresh process (covers C buffers too)."""
    result = subprocess.run(
        [sys.executable, __file__, "--child-prepare"],
        input=data,
        capture_output=True,
        check=True,
    )
    return int(result.stdout)


def _child_prepare() -> None:
    data = sys.stdin.buffer.read()
    prepare_photo(photo_factory.make_jpeg(600, 600))  # load the plugins first
    prepare_photo(photo_factory.make_heic(600, 600))
    gc.collect()
    before = _peak_rss()
    prepare_photo(data)
    print(_peak_rss() - before)


def _peak_rss() -> int:
    """This process's peak RSS in bytes (VmHWM; ru_maxrss would include the parent's)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=4)
    parser.add_argument("--mb", type=float, default=10.0)
    parser.add_argument("--skip-prepare", action="store_true")
    parser.add_argument("--child-prepare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_prepare:
        _child_prepare()
        return
    bench_body(args.photos, args.mb)
    if not args.skip_prepare:
        bench_prepare()


if __name__ == "__main__":
    main()
