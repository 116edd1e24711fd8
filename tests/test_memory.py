"""Freed pictures are kept for the next ones: no page faults per frame (glibc)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from camerapump import _memory

pytestmark = pytest.mark.timeout(60)

GLIBC = (os.confstr("CS_GNU_LIBC_VERSION") or "") if hasattr(os, "confstr") else ""

# One pump of the 720p test source in a fresh process, with every thread in one
# arena (MALLOC_ARENA_MAX=1, as container images often set): minor page faults
# per frame while a consumer that keeps the last six frames takes 30 of them.
# (With only the newest frame or three held, glibc's own rule faults or not
# depending on where the allocations happen to fall: the size of the environment
# changed it. With six held it faulted 90 to 245 times a frame at every size tried.)
_CHILD = """
import asyncio, collections, json, resource
import camerapump as cp

async def main():
    config = cp.StreamConfig(width=1280, height=720, fps=30)
    taken = 0
    held = collections.deque(maxlen=6)  # a consumer that looks back a few frames
    async with cp.open_pump(cp.Source.test(), config) as pump:
        async for frame in pump:
            taken += 1
            held.append(frame)
            if taken == 10:
                start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            if taken == 40:
                end = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                break
    print(json.dumps({"faults_per_frame": (end - start) / 30}))

asyncio.run(main())
"""


def _faults_per_frame(**env: str) -> float:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    environ.pop("CAMERAPUMP_MALLOC_TUNING", None)
    environ.update(MALLOC_ARENA_MAX="1", **env)
    done = subprocess.run(
        [sys.executable, "-c", _CHILD],
        env=environ,
        capture_output=True,
        text=True,
        timeout=45,
        check=True,
    )
    return float(json.loads(done.stdout.strip().splitlines()[-1])["faults_per_frame"])


def test_tuning_wanted_respects_the_environment_and_the_platform() -> None:
    glibc = "glibc 2.36"
    assert _memory.tuning_wanted({}, glibc, 64) is None
    assert _memory.tuning_wanted({"CAMERAPUMP_MALLOC_TUNING": "1"}, glibc, 64) is None
    assert _memory.tuning_wanted({"MALLOC_ARENA_MAX": "2"}, glibc, 64) is None
    assert _memory.tuning_wanted({"CAMERAPUMP_MALLOC_TUNING": " 0 "}, glibc, 64) is not None
    assert _memory.tuning_wanted({}, None, 64) == "the C library is not glibc"
    assert _memory.tuning_wanted({}, "musl", 64) == "the C library is not glibc"
    assert _memory.tuning_wanted({}, glibc, 32) == "a 32-bit build"
    for name in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_"):
        assert _memory.tuning_wanted({name: "131072"}, glibc, 64) == f"{name} is set"
    tunables = {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=131072"}
    assert _memory.tuning_wanted(tunables, glibc, 64) == "GLIBC_TUNABLES sets glibc.malloc"
    assert _memory.tuning_wanted({"GLIBC_TUNABLES": "glibc.cpu.x86_ibt=on"}, glibc, 64) is None


@pytest.mark.skipif(not GLIBC.startswith("glibc"), reason="glibc's allocator only")
def test_a_pump_keeps_freed_pictures_and_the_user_can_say_no() -> None:
    """A 720p bgr24 picture is 675 pages: faulted in again for every frame, or not at all."""
    tuned = _faults_per_frame()
    untuned = _faults_per_frame(CAMERAPUMP_MALLOC_TUNING="0")
    # The user's own threshold stands (here one that sends every picture to mmap).
    users = _faults_per_frame(MALLOC_TRIM_THRESHOLD_="131072")
    assert tuned < 10, tuned
    assert untuned > 50, untuned
    assert users > 200, users
