"""Virtual time: timers fire in order, at their virtual times, without real waiting."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from onex_adapters.clock import Clock, LoopClock, SystemClock, run_virtual


def test_an_hour_of_sleeping_takes_no_real_time() -> None:
    async def main() -> float:
        await asyncio.sleep(3600)
        return asyncio.get_running_loop().time()

    started = time.perf_counter()
    assert run_virtual(main()) == 3600
    assert time.perf_counter() - started < 1.0


def test_concurrent_sleepers_wake_in_deadline_order() -> None:
    async def main() -> list[tuple[str, float]]:
        woke: list[tuple[str, float]] = []

        async def sleeper(name: str, seconds: float) -> None:
            await asyncio.sleep(seconds)
            woke.append((name, asyncio.get_running_loop().time()))

        await asyncio.gather(sleeper("slow", 10), sleeper("fast", 5), sleeper("mid", 7))
        return woke

    assert run_virtual(main()) == [("fast", 5), ("mid", 7), ("slow", 10)]


def test_timeouts_fire_at_their_virtual_deadline_and_not_before() -> None:
    async def main() -> tuple[float, list[int]]:
        loop = asyncio.get_running_loop()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(2):
                await asyncio.sleep(100)
        timed_out_at = loop.time()
        # Work that is ready to run never lets time jump: a busy queue does not time out.
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(3):
            queue.put_nowait(i)
        got = [await asyncio.wait_for(queue.get(), 0.001) for _ in range(3)]
        return timed_out_at, got

    assert run_virtual(main()) == (2, [0, 1, 2])


def test_loop_clock_gives_virtual_wall_time_from_its_start() -> None:
    start = datetime(2026, 11, 21, 5, 0, tzinfo=UTC)

    async def main() -> timedelta:
        clock = LoopClock(start)
        first = clock.now()
        await asyncio.sleep(90)
        return clock.now() - first

    assert run_virtual(main()) == timedelta(seconds=90)


def test_clocks_satisfy_the_protocol_and_are_timezone_aware() -> None:
    assert isinstance(SystemClock(), Clock)
    assert isinstance(LoopClock(), Clock)
    assert SystemClock().now().utcoffset() == timedelta(0)
    with pytest.raises(ValueError):
        LoopClock(datetime(2026, 1, 1))
